//! whisk's own scheduler: warm first, then where a new container costs the least.
//!
//! It keeps a picture of every invoker's pool: per action, the idle warm containers with when
//! each was last used and when its keep-alive ends (the load balancer's booking tells what
//! in-flight activations hold). The picture is rebuilt from each invoker's [`PoolReport`] (sent with
//! its pings, every second by default) and kept current in between from its own placements
//! and the completions: a completed activation leaves an idle container behind, a new
//! container evicts the least recently used idle ones as the pool does. It places each
//! activation:
//!
//! 1. **Warm**: on an invoker with room that has an idle container of the action, the one
//!    with the most of them.
//! 2. **New container**: on an invoker where it fits beside the containers there without
//!    evicting any, the first in a fixed probe order derived from the action's name (so an
//!    action's containers gather on few invokers); when every invoker would have to evict,
//!    on the one whose evicted containers are the least recently used, so the invokers
//!    together evict as one pool of their joint memory would (least recently used first),
//!    instead of each evicting its own newest containers while others hold old ones.
//! 3. **Least loaded** (overload): when no invoker has room, the usable invoker with the most
//!    free memory, which queues the least.
//!
//! Recent run times per action (an exponentially weighted mean) are kept for callers that
//! order work by predicted run time ([`WarmAware::predicted_ms`]).

use super::{Completion, InvokerView, Placement, Scheduler};
use crate::message::PoolReport;
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// The warm-aware scheduler.
#[derive(Debug)]
pub struct WarmAware {
    /// How long an idle container is assumed to stay on its invoker until the invoker's next
    /// report says otherwise (match the invokers' keep-alive; OpenWhisk's default idle
    /// timeout is 10 minutes).
    pub keep_alive: Duration,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Per invoker, per action (`ns/[pkg/]name`): what is believed there.
    pools: HashMap<u32, HashMap<String, Held>>,
    /// Per action: the weighted mean run time in ms.
    durations: HashMap<String, f64>,
}

/// One action's share of one invoker's pool.
#[derive(Debug, Default)]
struct Held {
    /// Memory of each of its containers, MB.
    memory_mb: u64,
    /// Idle warm containers.
    idle: Vec<Idle>,
}

#[derive(Debug, Clone, Copy)]
struct Idle {
    last_used: Instant,
    expires: Instant,
}

impl Held {
    fn idle_at(&self, now: Instant) -> impl Iterator<Item = &Idle> {
        self.idle.iter().filter(move |i| i.expires > now)
    }
}

/// What starting a new container on an invoker would evict.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Eviction {
    /// Nothing: it fits beside what is there.
    None,
    /// Idle containers, the newest of them last used at this instant.
    Newest(Instant),
    /// It does not fit even with every idle container gone.
    Impossible,
}

/// Weight of the newest run time in the mean.
const EWMA_WEIGHT: f64 = 0.3;

impl Default for WarmAware {
    fn default() -> Self {
        Self::new(Duration::from_secs(600))
    }
}

impl WarmAware {
    /// A scheduler assuming idle containers live `keep_alive` (until reported otherwise).
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

    /// The idle containers of `pool` in the order its pool evicts them (least recently used
    /// first), with their actions.
    fn eviction_order(pool: &HashMap<String, Held>, now: Instant) -> Vec<(&str, Idle)> {
        let mut idle: Vec<(&str, Idle)> = pool
            .iter()
            .flat_map(|(a, h)| h.idle_at(now).map(move |i| (a.as_str(), *i)))
            .collect();
        idle.sort_by_key(|(_, i)| i.last_used);
        idle
    }

    /// Memory a new `memory_mb` container on `invoker` needs beyond its user memory: the
    /// booked in-flight activations and the idle containers believed there leave too little.
    fn excess_mb(
        pool: &HashMap<String, Held>,
        invoker: &InvokerView,
        memory_mb: u64,
        now: Instant,
    ) -> u64 {
        let idle: u64 = pool
            .values()
            .map(|h| h.idle_at(now).count() as u64 * h.memory_mb)
            .sum();
        (invoker.booked_memory_mb + idle + memory_mb).saturating_sub(invoker.user_memory_mb)
    }

    /// The idle containers (action, last use) the pool of `invoker` evicts for a new
    /// `memory_mb` container, least recently used first, and whether it then fits.
    fn victims(
        pool: &HashMap<String, Held>,
        invoker: &InvokerView,
        memory_mb: u64,
        now: Instant,
    ) -> (Vec<(String, Instant)>, bool) {
        let mut excess = Self::excess_mb(pool, invoker, memory_mb, now);
        let victims = Self::eviction_order(pool, now)
            .into_iter()
            .take_while(|(action, _)| {
                let before = excess;
                excess = excess.saturating_sub(pool[*action].memory_mb);
                before > 0
            })
            .map(|(a, i)| (a.to_string(), i.last_used))
            .collect();
        (victims, excess == 0)
    }

    /// What a new `memory_mb` container on `invoker` would evict.
    fn eviction(
        pool: &HashMap<String, Held>,
        invoker: &InvokerView,
        memory_mb: u64,
        now: Instant,
    ) -> Eviction {
        match Self::victims(pool, invoker, memory_mb, now) {
            (_, false) => Eviction::Impossible,
            (victims, true) => victims.last().map_or(Eviction::None, |(_, last_used)| {
                Eviction::Newest(*last_used)
            }),
        }
    }

    /// Forgets the idle containers of `pool` its invoker evicts for a new `memory_mb` one.
    fn evict(
        pool: &mut HashMap<String, Held>,
        invoker: &InvokerView,
        memory_mb: u64,
        now: Instant,
    ) {
        let (victims, _) = Self::victims(pool, invoker, memory_mb, now);
        for (action, last_used) in victims {
            let held = pool.get_mut(&action).expect("victim of a listed action");
            if let Some(at) = held.idle.iter().position(|i| i.last_used == last_used) {
                held.idle.swap_remove(at);
            }
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
        let fits = |i: &&InvokerView| i.free_memory_mb >= placement.memory_mb;
        let empty = HashMap::new();
        // 1. An idle warm container with room around it.
        let warm = usable
            .iter()
            .filter(|i| fits(i))
            .filter_map(|i| {
                let idle = st
                    .pools
                    .get(&i.id)?
                    .get(placement.action)?
                    .idle_at(now)
                    .count();
                (idle > 0).then_some((idle, i.free_memory_mb, i.id))
            })
            .max_by_key(|&(idle, free, id)| (idle, free, std::cmp::Reverse(id)))
            .map(|(_, _, id)| id);
        // 2. A new container where it evicts nothing (probe order), else where it evicts
        // the least recently used.
        let new = || {
            let mut best: Option<(Eviction, u32)> = None;
            for id in Self::probe_order(placement.action, &usable) {
                let view = usable
                    .iter()
                    .find(|i| i.id == id)
                    .expect("probed id is usable");
                if !fits(view) {
                    continue;
                }
                let pool = st.pools.get(&id).unwrap_or(&empty);
                let e = Self::eviction(pool, view, placement.memory_mb, now);
                let better = match (best, e) {
                    (_, Eviction::Impossible) => false,
                    (None, _) => true,
                    (Some((Eviction::Newest(_), _)), Eviction::None) => true,
                    (Some((Eviction::Newest(b), _)), Eviction::Newest(t)) => t < b,
                    _ => false,
                };
                if better {
                    best = Some((e, id));
                }
            }
            best.map(|(_, id)| id)
        };
        // 3. Else the least loaded.
        let chosen = warm.or_else(new).or_else(|| {
            usable
                .iter()
                .max_by_key(|i| (i.headroom_mb(), std::cmp::Reverse(i.id)))
                .map(|i| i.id)
        })?;
        let view = *usable
            .iter()
            .find(|i| i.id == chosen)
            .expect("chosen is usable");
        let pool = st.pools.entry(chosen).or_default();
        if warm == Some(chosen) {
            let held = pool.get_mut(placement.action).expect("warm action is held");
            let newest = held
                .idle
                .iter()
                .enumerate()
                .filter(|(_, i)| i.expires > now)
                .max_by_key(|(_, i)| i.last_used)
                .map(|(at, _)| at)
                .expect("warm action has an idle container");
            held.idle.swap_remove(newest);
        } else {
            Self::evict(pool, view, placement.memory_mb, now);
        }
        let held = pool.entry(placement.action.to_string()).or_default();
        held.memory_mb = placement.memory_mb;
        Some(chosen)
    }

    async fn completed(&self, c: &Completion<'_>) {
        let now = Instant::now();
        let mut st = self.state.lock().unwrap();
        if let Some(held) = st
            .pools
            .get_mut(&c.invoker)
            .and_then(|p| p.get_mut(c.action))
        {
            held.idle.retain(|i| i.expires > now);
            if !c.system_error {
                held.idle.push(Idle {
                    last_used: now,
                    expires: now + self.keep_alive,
                });
            }
        }
        if let Some(d) = c.duration_ms {
            let mean = st.durations.entry(c.action.to_string()).or_insert(d as f64);
            *mean += EWMA_WEIGHT * (d as f64 - *mean);
        }
    }

    async fn invoker_report(&self, invoker: u32, report: &PoolReport) {
        let now = Instant::now();
        let mut st = self.state.lock().unwrap();
        let pool = st.pools.entry(invoker).or_default();
        for held in pool.values_mut() {
            held.idle.clear();
        }
        for c in report.containers.iter().filter(|c| !c.busy) {
            let held = pool.entry(c.action.clone()).or_default();
            held.memory_mb = c.memory_mb;
            held.idle.push(Idle {
                last_used: now
                    .checked_sub(Duration::from_millis(c.idle_ms))
                    .unwrap_or(now),
                expires: now + Duration::from_millis(c.expires_in_ms),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inv(id: u32, free: u64) -> InvokerView {
        InvokerView::new(id, 1024, 1024 - free)
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

    fn report(containers: &[(&str, bool, u64, u64)]) -> PoolReport {
        PoolReport {
            containers: containers
                .iter()
                .map(
                    |&(action, busy, idle_ms, expires_in_ms)| crate::message::ContainerReport {
                        action: action.to_string(),
                        memory_mb: 256,
                        busy,
                        idle_ms,
                        expires_in_ms,
                    },
                )
                .collect(),
        }
    }

    #[tokio::test]
    async fn invoker_reports_replace_what_is_believed() {
        let s = WarmAware::default();
        let invokers = [inv(0, 1024), inv(1, 1024), inv(2, 1024)];
        let views: Vec<&InvokerView> = invokers.iter().collect();
        let home = WarmAware::probe_order("ns/a", &views)[0];
        let other = (home + 1) % 3;
        // An invoker reports an idle container of `a` this scheduler never placed there
        // (another controller did): the next `a` goes there, not to a's home.
        s.invoker_report(
            other,
            &report(&[("ns/a", false, 1000, 60_000), ("ns/b", true, 0, 0)]),
        )
        .await;
        assert_eq!(s.schedule(&place("ns/a"), &invokers).await, Some(other));
        s.completed(&done(other, "ns/a", false)).await;
        // It reports the container gone (evicted, or its keep-alive ended): back to the home.
        s.invoker_report(other, &report(&[("ns/b", false, 10, 60_000)]))
            .await;
        assert_eq!(s.schedule(&place("ns/a"), &invokers).await, Some(home));
        // A reported container whose keep-alive ends is not used after it ends: c's home is
        // full, its container was on the last invoker in its probe order, c goes to the
        // second.
        tokio::time::pause();
        let order = WarmAware::probe_order("ns/c", &views);
        s.invoker_report(order[2], &report(&[("ns/c", false, 0, 5_000)]))
            .await;
        let mut c_home_full = invokers.clone();
        c_home_full[order[0] as usize] = InvokerView::new(order[0], 1024, 1024);
        tokio::time::advance(Duration::from_secs(4)).await;
        assert_eq!(
            s.schedule(&place("ns/c"), &c_home_full).await,
            Some(order[2])
        );
        s.completed(&done(order[2], "ns/c", false)).await;
        s.invoker_report(order[2], &report(&[("ns/c", false, 0, 5_000)]))
            .await;
        tokio::time::advance(Duration::from_secs(6)).await;
        assert_eq!(
            s.schedule(&place("ns/c"), &c_home_full).await,
            Some(order[1])
        );
    }

    #[tokio::test]
    async fn when_every_invoker_must_evict_the_least_recently_used_go() {
        tokio::time::pause();
        let s = WarmAware::default();
        // Two full invokers of 512 MB: 0 holds containers last used 60 s and 50 s ago, 1 holds
        // ones used 30 s and 10 s ago. A new 256 MB container evicts the oldest: on 0.
        let invokers = [InvokerView::new(0, 512, 0), InvokerView::new(1, 512, 0)];
        s.invoker_report(
            0,
            &report(&[
                ("ns/x", false, 60_000, 540_000),
                ("ns/y", false, 50_000, 550_000),
            ]),
        )
        .await;
        s.invoker_report(
            1,
            &report(&[
                ("ns/p", false, 30_000, 570_000),
                ("ns/q", false, 10_000, 590_000),
            ]),
        )
        .await;
        assert_eq!(s.schedule(&place("ns/new"), &invokers).await, Some(0));
        // 0 evicted x (its least recently used): y is still believed warm there, x is not.
        assert_eq!(s.schedule(&place("ns/y"), &invokers).await, Some(0));
        let x = s.schedule(&place("ns/x"), &invokers).await.unwrap();
        s.completed(&done(x, "ns/x", true)).await;
        // Now 1 holds the least recently used containers (p, q): the next new one goes there.
        let invokers = [InvokerView::new(0, 512, 256), InvokerView::new(1, 512, 0)];
        assert_eq!(s.schedule(&place("ns/other"), &invokers).await, Some(1));
    }
}
