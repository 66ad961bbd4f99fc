//! whisk's own scheduler: warm first, then pack by action, then least loaded.
//!
//! It learns from completions where each action has warm containers (a completion with an
//! `/init` time means a new container of that action now exists on that invoker) and how long
//! it runs, and places each activation:
//!
//! 1. **Warm**: on an invoker with room that has more containers of the action than activations
//!    of it in flight there, i.e. an idle warm container, preferring the most idle ones. A
//!    container is assumed gone after [`WarmAware::keep_alive`] without use (the invokers'
//!    keep-alive).
//! 2. **Pack** (low load): on the action's home invoker, or the next one with room in a fixed
//!    probe order derived from the action's name, so one action's containers gather on few
//!    invokers and later calls find them warm (as OpenWhisk's sharding balancer does; unlike
//!    it, step 1 first uses warm containers wherever they are).
//! 3. **Least loaded** (high load): when no invoker has room, the usable invoker with the most
//!    free memory, which queues the least.
//!
//! Recent run times per action (an exponentially weighted mean) are kept for callers that
//! order work by predicted run time ([`WarmAware::predicted_ms`]).

use super::{Completion, InvokerView, Placement, Scheduler};
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// The warm-aware scheduler.
#[derive(Debug)]
pub struct WarmAware {
    /// How long an idle container is assumed to stay on its invoker (match the invokers'
    /// keep-alive; OpenWhisk's default idle timeout is 10 minutes).
    pub keep_alive: Duration,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Per (invoker, action): containers believed warm, activations in flight, last use.
    warm: HashMap<(u32, String), Warm>,
    /// Per action: the weighted mean run time in ms.
    durations: HashMap<String, f64>,
}

#[derive(Debug)]
struct Warm {
    containers: u32,
    busy: u32,
    last_used: Instant,
    memory_mb: u64,
}

impl Warm {
    /// Containers believed idle on the invoker at `now`.
    fn idle(&self, now: Instant, keep_alive: Duration) -> u32 {
        let alive = self.busy > 0 || now.duration_since(self.last_used) < keep_alive;
        if alive {
            self.containers.saturating_sub(self.busy)
        } else {
            0
        }
    }
}

/// Weight of the newest run time in the mean.
const EWMA_WEIGHT: f64 = 0.3;

impl Default for WarmAware {
    fn default() -> Self {
        Self::new(Duration::from_secs(600))
    }
}

impl WarmAware {
    /// A scheduler assuming idle containers live `keep_alive`.
    pub fn new(keep_alive: Duration) -> Self {
        Self {
            keep_alive,
            state: Mutex::new(State::default()),
        }
    }

    /// The predicted run time of `action` (`ns/[pkg/]name`) in ms, once one completed.
    pub fn predicted_ms(&self, action: &str) -> Option<f64> {
        self.state.lock().unwrap().durations.get(action).copied()
    }

    /// Forgets idle containers on `invoker`, least recently used first, until `memory_mb`
    /// more fits in `cap` beside the containers believed there (as the pool evicts).
    fn evict_for(
        st: &mut State,
        invoker: u32,
        cap: u64,
        memory_mb: u64,
        now: Instant,
        keep_alive: Duration,
    ) {
        let held: u64 = st
            .warm
            .iter()
            .filter(|((inv, _), w)| {
                *inv == invoker && (w.busy > 0 || now.duration_since(w.last_used) < keep_alive)
            })
            .map(|(_, w)| u64::from(w.containers.max(w.busy)) * w.memory_mb)
            .sum();
        let mut excess = (held + memory_mb).saturating_sub(cap);
        while excess > 0 {
            let Some(w) = st
                .warm
                .iter_mut()
                .filter(|((inv, _), w)| *inv == invoker && w.idle(now, keep_alive) > 0)
                .min_by_key(|(_, w)| w.last_used)
                .map(|(_, w)| w)
            else {
                return;
            };
            w.containers -= 1;
            excess = excess.saturating_sub(w.memory_mb);
        }
    }

    /// The invoker ids in `action`'s probe order: its home first (a stable hash of the name),
    /// then the others in id order after it.
    fn probe_order(action: &str, invokers: &[&InvokerView]) -> Vec<u32> {
        let mut ids: Vec<u32> = invokers.iter().map(|i| i.id).collect();
        ids.sort_unstable();
        if ids.is_empty() {
            return ids;
        }
        let home = fnv1a(action) as usize % ids.len();
        ids.rotate_left(home);
        ids
    }
}

/// FNV-1a: a stable hash (the same in every process and version).
fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[async_trait]
impl Scheduler for WarmAware {
    async fn schedule(&self, placement: &Placement<'_>, invokers: &[InvokerView]) -> Option<u32> {
        let usable: Vec<&InvokerView> = invokers.iter().filter(|i| i.usable).collect();
        if usable.is_empty() {
            return None;
        }
        let now = Instant::now();
        let mut st = self.state.lock().unwrap();
        let fits = |i: &InvokerView| i.free_memory_mb >= placement.memory_mb;
        // 1. An idle warm container with room around it.
        let warm_among = |candidates: &mut dyn Iterator<Item = &&InvokerView>| {
            candidates
                .filter_map(|i| {
                    let w = st.warm.get(&(i.id, placement.action.to_string()))?;
                    let idle = w.idle(now, self.keep_alive);
                    (idle > 0).then_some((idle, i.free_memory_mb, i.id))
                })
                .max_by_key(|&(idle, free, id)| (idle, free, std::cmp::Reverse(id)))
                .map(|(_, _, id)| id)
        };
        let any_fits = usable.iter().any(|i| fits(i));
        // Where there is room; when there is none anywhere (overload), the least loaded
        // invoker queues the least, and a container believed idle may be busy or evicted.
        let warm = any_fits
            .then(|| warm_among(&mut usable.iter().filter(|i| fits(i))))
            .flatten();
        // 2. A new container: along the action's probe order, the first invoker where it
        // fits without evicting other actions' idle containers, else the first where it fits.
        // 3. Else the least loaded.
        let idle_mb = |id: u32| -> u64 {
            st.warm
                .iter()
                .filter(|((inv, _), _)| *inv == id)
                .map(|(_, w)| u64::from(w.idle(now, self.keep_alive)) * w.memory_mb)
                .sum()
        };
        let chosen = warm
            .or_else(|| {
                let order = Self::probe_order(placement.action, &usable);
                let view = |id: u32| usable.iter().find(|i| i.id == id).copied();
                order
                    .iter()
                    .copied()
                    .find(|&id| {
                        view(id).is_some_and(|i| {
                            i.free_memory_mb.saturating_sub(idle_mb(id)) >= placement.memory_mb
                        })
                    })
                    .or_else(|| order.into_iter().find(|&id| view(id).is_some_and(fits)))
            })
            .or_else(|| {
                usable
                    .iter()
                    .max_by_key(|i| (i.free_memory_mb, std::cmp::Reverse(i.id)))
                    .map(|i| i.id)
            })?;
        if warm != Some(chosen) {
            // A new container: the invoker's pool evicts its least recently used idle
            // containers when memory runs short; believe the same.
            let cap = usable
                .iter()
                .find(|i| i.id == chosen)
                .map_or(0, |i| i.user_memory_mb);
            Self::evict_for(
                &mut st,
                chosen,
                cap,
                placement.memory_mb,
                now,
                self.keep_alive,
            );
        }
        let entry = st
            .warm
            .entry((chosen, placement.action.to_string()))
            .or_insert(Warm {
                containers: 0,
                busy: 0,
                last_used: now,
                memory_mb: placement.memory_mb,
            });
        if entry.busy == 0 && now.duration_since(entry.last_used) >= self.keep_alive {
            entry.containers = 0;
        }
        entry.busy += 1;
        Some(chosen)
    }

    async fn completed(&self, c: &Completion<'_>) {
        let mut st = self.state.lock().unwrap();
        if let Some(w) = st.warm.get_mut(&(c.invoker, c.action.to_string())) {
            w.busy = w.busy.saturating_sub(1);
            if c.init_ms.is_some() && !c.system_error {
                w.containers += 1;
            }
            w.last_used = Instant::now();
        }
        if let Some(d) = c.duration_ms {
            let mean = st.durations.entry(c.action.to_string()).or_insert(d as f64);
            *mean += EWMA_WEIGHT * (d as f64 - *mean);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inv(id: u32, free: u64) -> InvokerView {
        InvokerView {
            id,
            usable: true,
            user_memory_mb: 1024,
            free_memory_mb: free,
        }
    }

    fn place(action: &str) -> Placement<'_> {
        Placement {
            namespace: "ns",
            action,
            memory_mb: 256,
            kind: "nodejs:20",
        }
    }

    fn done(invoker: u32, action: &str, cold: bool) -> Completion<'_> {
        Completion {
            invoker,
            action,
            duration_ms: Some(100),
            init_ms: cold.then_some(50),
            system_error: false,
        }
    }

    #[tokio::test]
    async fn an_action_goes_where_it_has_an_idle_warm_container() {
        let s = WarmAware::default();
        let invokers = [inv(0, 1024), inv(1, 1024), inv(2, 1024)];
        let home = s.schedule(&place("ns/a"), &invokers).await.unwrap();
        s.completed(&done(home, "ns/a", true)).await;
        // Its home stays its home while the container there is idle.
        for _ in 0..3 {
            assert_eq!(s.schedule(&place("ns/a"), &invokers).await, Some(home));
            s.completed(&done(home, "ns/a", false)).await;
        }
        // Busy there: a second container packs on the home while it has room.
        assert_eq!(s.schedule(&place("ns/a"), &invokers).await, Some(home));
        assert_eq!(s.schedule(&place("ns/a"), &invokers).await, Some(home));
        // The home full, the next starts elsewhere and leaves a warm container there...
        let mut full = invokers.clone();
        full[home as usize].free_memory_mb = 0;
        let other = s.schedule(&place("ns/a"), &full).await.unwrap();
        assert_ne!(other, home);
        s.completed(&done(other, "ns/a", true)).await;
        // ...which the next one uses, though the probe order would pick a third invoker.
        assert_eq!(s.schedule(&place("ns/a"), &full).await, Some(other));
    }

    #[tokio::test]
    async fn a_new_container_avoids_evicting_other_actions_idle_ones() {
        let s = WarmAware::default();
        let invokers = [inv(0, 512), inv(1, 512)];
        let views: Vec<&InvokerView> = invokers.iter().collect();
        let b_home = WarmAware::probe_order("ns/b", &views)[0];
        // An idle container of `a` (256 MB) on b's home leaves 256 MB truly free there.
        let mut only_home = invokers.clone();
        only_home[1 - b_home as usize].usable = false;
        assert_eq!(s.schedule(&place("ns/a"), &only_home).await, Some(b_home));
        s.completed(&done(b_home, "ns/a", true)).await;
        let mut big = place("ns/b");
        big.memory_mb = 512;
        assert_eq!(
            s.schedule(&big, &invokers).await,
            Some(1 - b_home),
            "not the home, where a's idle container would be evicted"
        );
    }

    #[tokio::test]
    async fn containers_are_forgotten_after_the_keep_alive() {
        tokio::time::pause();
        let s = WarmAware::new(Duration::from_secs(60));
        let invokers = [inv(0, 1024), inv(1, 1024)];
        let home = s.schedule(&place("ns/a"), &invokers).await.unwrap();
        s.completed(&done(home, "ns/a", true)).await;
        tokio::time::advance(Duration::from_secs(61)).await;
        let mut home_full = invokers.clone();
        home_full[home as usize].free_memory_mb = 0;
        let next = s.schedule(&place("ns/a"), &home_full).await.unwrap();
        assert_ne!(next, home, "no warm container is believed left on the home");
    }

    #[tokio::test]
    async fn overload_goes_to_the_least_loaded_usable_invoker() {
        let s = WarmAware::default();
        let mut invokers = [inv(0, 100), inv(1, 200), inv(2, 0)];
        assert_eq!(s.schedule(&place("ns/a"), &invokers).await, Some(1));
        invokers[1].usable = false;
        assert_eq!(s.schedule(&place("ns/a"), &invokers).await, Some(0));
        for i in &mut invokers {
            i.usable = false;
        }
        assert_eq!(s.schedule(&place("ns/a"), &invokers).await, None);
    }

    #[tokio::test]
    async fn run_times_are_predicted_from_recent_completions() {
        let s = WarmAware::default();
        assert_eq!(s.predicted_ms("ns/a"), None);
        let mut c = done(0, "ns/a", false);
        c.duration_ms = Some(100);
        s.completed(&c).await;
        assert_eq!(s.predicted_ms("ns/a"), Some(100.0));
        c.duration_ms = Some(200);
        s.completed(&c).await;
        assert_eq!(s.predicted_ms("ns/a"), Some(130.0));
    }
}
