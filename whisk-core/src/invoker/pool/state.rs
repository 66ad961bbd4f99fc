//! The pool's bookkeeping: warm containers (slots), prewarmed stem cells, booked memory and
//! runs waiting in line. Pure decisions under one lock; no I/O here.

use crate::executor::Container;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use tokio::sync::oneshot;
use tokio::time::Instant;

/// Warm containers are reused only for the same invoking namespace and action revision.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct WarmKey {
    pub namespace: String,
    pub action: String,
    pub revision: String,
}

/// What a run asks the pool for.
#[derive(Debug, Clone)]
pub(super) struct Want {
    pub key: WarmKey,
    pub kind: String,
    pub memory_mb: u64,
    /// Activations one container of this action may run at once.
    pub capacity: usize,
}

/// Where an idle warm container stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    /// Ready to run.
    Ready,
    /// Being suspended; not handed out until suspended.
    Pausing,
    /// Suspended; resumed when handed out.
    Paused,
}

/// A warm (initialised) container.
pub(super) struct Slot {
    pub key: WarmKey,
    pub container: Arc<dyn Container>,
    pub memory_mb: u64,
    pub active: usize,
    pub capacity: usize,
    pub last_used: Instant,
    /// Removed when idle this long (the keep-alive policy's window at its last release).
    pub keep_alive: std::time::Duration,
    pub phase: Phase,
}

/// A prewarmed container of a kind, not yet initialised.
pub(super) struct Stem {
    pub kind: String,
    pub memory_mb: u64,
    pub container: Arc<dyn Container>,
}

/// What the pool handed out.
pub(super) enum Acquired {
    /// A warm container of the same action; `paused` when it must be resumed first.
    Warm {
        container: Arc<dyn Container>,
        paused: bool,
    },
    /// A prewarmed container of the same kind and memory (memory already booked).
    Prewarm(Arc<dyn Container>),
    /// Memory booked for a new container.
    Cold,
}

/// A run waiting in line.
pub(super) struct Waiter {
    pub want: Want,
    pub tx: oneshot::Sender<Acquired>,
    /// When it joined the line.
    pub since: Instant,
    /// Until then it takes only a warm container of its action (see [`State::patience`]).
    pub patient_until: Option<Instant>,
}

/// The cold start time (ms) assumed for a kind before one was measured in this pool.
const DEFAULT_COLD_START_MS: f64 = 1000.0;

/// Containers of one action that may start at once before its first run has finished (and
/// so its run time is unknown); more runs wait for them (see [`State::patience`]).
const BLIND_STARTS: usize = 2;

/// In which order runs waiting for memory get it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum QueueOrder {
    /// Arrival order (OpenWhisk's).
    #[default]
    Fifo,
    /// Shortest predicted run time first (the action's recent mean run time), aged by the
    /// time waited so long runs are not starved: a run's rank is its predicted time minus
    /// the time it has waited.
    ShortestPredicted,
}

/// Everything the pool knows, behind one lock.
#[derive(Default)]
pub(super) struct State {
    pub slots: Vec<Slot>,
    pub stems: Vec<Stem>,
    pub used_mb: u64,
    pub live: HashMap<String, Arc<dyn Container>>,
    pub waiters: VecDeque<Waiter>,
    pub closed: bool,
    /// Container starts in flight (shutdown waits for them, so none outlives the pool).
    pub starting: usize,
    /// Idle containers evicted for memory, over the pool's life.
    pub evictions: u64,
    /// How waiting runs are served.
    pub order: QueueOrder,
    /// Per action (document id), the weighted mean run time in ms.
    pub predicted_ms: HashMap<String, f64>,
    /// Whether a run may wait for a busy container of its action instead of starting one
    /// ([`PoolConfig::wait_for_warm`](super::PoolConfig::wait_for_warm)).
    pub wait_for_warm: bool,
    /// Per warm key, containers being started and initialised for it.
    pub starting_keys: HashMap<WarmKey, usize>,
    /// Per kind, the weighted mean time in ms from handing out memory for a new container
    /// to the end of its `/init`.
    pub cold_start_ms: HashMap<String, f64>,
}

/// Adds `sample` to the weighted mean `key` of `means` (the first sample is the mean).
fn observe(means: &mut HashMap<String, f64>, key: &str, sample: f64) {
    match means.get_mut(key) {
        Some(mean) => *mean += 0.3 * (sample - *mean),
        None => {
            means.insert(key.to_string(), sample);
        }
    }
}

impl State {
    /// Satisfies `want` at once if possible, in OpenWhisk's order: a warm container of the same
    /// action with room, a prewarmed container of the same kind and memory, free memory for a
    /// cold start, or free memory after evicting least recently used idle containers (returned
    /// in `victims` for destruction). Stem cells are never evicted for space.
    ///
    /// With `warm_only`, only a warm container will do.
    pub fn try_acquire(
        &mut self,
        want: &Want,
        cap: u64,
        victims: &mut Vec<Arc<dyn Container>>,
        warm_only: bool,
    ) -> Option<Acquired> {
        let usable =
            |s: &Slot| s.key == want.key && s.active < s.capacity && s.phase != Phase::Pausing;
        if let Some(slot) = self
            .slots
            .iter_mut()
            .filter(|s| usable(s))
            .max_by_key(|s| s.active)
        {
            slot.active += 1;
            let paused = slot.phase == Phase::Paused;
            slot.phase = Phase::Ready;
            return Some(Acquired::Warm {
                container: slot.container.clone(),
                paused,
            });
        }
        if warm_only {
            return None;
        }
        if let Some(i) = self
            .stems
            .iter()
            .position(|s| s.kind == want.kind && s.memory_mb == want.memory_mb)
        {
            self.started(&want.key, 1);
            return Some(Acquired::Prewarm(self.stems.swap_remove(i).container));
        }
        let idle_mb: u64 = self
            .slots
            .iter()
            .filter(|s| s.active == 0)
            .map(|s| s.memory_mb)
            .sum();
        if self.used_mb - idle_mb + want.memory_mb > cap {
            return None;
        }
        while self.used_mb + want.memory_mb > cap {
            let oldest = self
                .slots
                .iter()
                .enumerate()
                .filter(|(_, s)| s.active == 0)
                .min_by_key(|(_, s)| s.last_used)
                .map(|(i, _)| i)
                .expect("idle memory covers the gap");
            let v = self.slots.swap_remove(oldest);
            self.used_mb -= v.memory_mb;
            self.live.remove(v.container.id());
            self.evictions += 1;
            victims.push(v.container);
        }
        self.used_mb += want.memory_mb;
        self.started(&want.key, 1);
        Some(Acquired::Cold)
    }

    /// Counts `delta` (+1 or -1) containers starting for `key`.
    pub fn started(&mut self, key: &WarmKey, delta: isize) {
        if delta > 0 {
            *self.starting_keys.entry(key.clone()).or_default() += 1;
        } else if let Some(n) = self.starting_keys.get_mut(key) {
            *n -= 1;
            if *n == 0 {
                self.starting_keys.remove(key);
            }
        }
    }

    /// Records a run of `action` that took `ms`.
    pub fn observe_run(&mut self, action: &str, ms: u64) {
        observe(&mut self.predicted_ms, action, ms as f64);
    }

    /// Records a new container of `kind` that was ready (initialised) `ms` after its memory
    /// was handed out.
    pub fn observe_cold_start(&mut self, kind: &str, ms: u64) {
        observe(&mut self.cold_start_ms, kind, ms as f64);
    }

    /// How long a run of `want` that finds no free warm container should wait for one of
    /// its action's busy or starting containers rather than start another, if at all.
    ///
    /// It waits when its expected wait (the action's mean run time, times the runs already
    /// waiting so plus this one, over the action's busy and starting containers) is under
    /// half the kind's mean cold start, or when the action has no finished run yet and
    /// [`BLIND_STARTS`] of its containers are starting. It waits at most one mean cold
    /// start, then may start a container of its own. Without this, a burst of short runs
    /// starts a container per concurrent run, and on a loaded machine the starts slow each
    /// other down until every run is a cold start.
    pub fn patience(&self, want: &Want) -> Option<std::time::Duration> {
        if !self.wait_for_warm {
            return None;
        }
        let busy = self.slots.iter().filter(|s| s.key == want.key).count();
        let starting = self.starting_keys.get(&want.key).copied().unwrap_or(0);
        let containers = busy + starting;
        if containers == 0 {
            return None;
        }
        let cold = self
            .cold_start_ms
            .get(&want.kind)
            .copied()
            .unwrap_or(DEFAULT_COLD_START_MS);
        let wait = match self.predicted_ms.get(&want.key.action) {
            Some(run_ms) => {
                let queued = self
                    .waiters
                    .iter()
                    .filter(|w| w.patient_until.is_some() && w.want.key == want.key)
                    .count();
                run_ms * (queued + 1) as f64 / containers as f64 <= cold / 2.0
            }
            None => starting >= BLIND_STARTS,
        };
        wait.then(|| std::time::Duration::from_millis(cold as u64))
    }

    /// Whether a run of `want` waiting patiently still has a container of its action to
    /// wait for.
    fn has_company(&self, want: &Want) -> bool {
        self.starting_keys.contains_key(&want.key) || self.slots.iter().any(|s| s.key == want.key)
    }

    /// Hands containers and memory to waiting runs, in the [`QueueOrder`].
    pub fn dispatch(&mut self, cap: u64, victims: &mut Vec<Arc<dyn Container>>) {
        if self.order == QueueOrder::ShortestPredicted && self.waiters.len() > 1 {
            let now = Instant::now();
            let predicted = &self.predicted_ms;
            // Unknown actions rank as if instant: their first run teaches the mean.
            let rank = |w: &Waiter| {
                predicted.get(&w.want.key.action).copied().unwrap_or(0.0)
                    - now.duration_since(w.since).as_secs_f64() * 1000.0
            };
            self.waiters
                .make_contiguous()
                .sort_by(|a, b| rank(a).total_cmp(&rank(b)));
        }
        let now = Instant::now();
        let mut i = 0;
        while i < self.waiters.len() {
            let want = self.waiters[i].want.clone();
            let warm_only =
                self.waiters[i].patient_until.is_some_and(|t| now < t) && self.has_company(&want);
            match self.try_acquire(&want, cap, victims, warm_only) {
                Some(got) => {
                    let w = self.waiters.remove(i).expect("index in range");
                    if let Err(got) = w.tx.send(got) {
                        self.undo(got, &w.want);
                    }
                }
                None => i += 1,
            }
        }
    }

    /// Gives back what a cancelled waiter was handed.
    fn undo(&mut self, got: Acquired, want: &Want) {
        match got {
            Acquired::Warm { container, .. } => {
                if let Some(s) = self
                    .slots
                    .iter_mut()
                    .find(|s| s.container.id() == container.id())
                {
                    s.active -= 1;
                }
            }
            Acquired::Prewarm(container) => {
                self.started(&want.key, -1);
                self.stems.push(Stem {
                    kind: want.kind.clone(),
                    memory_mb: want.memory_mb,
                    container,
                })
            }
            Acquired::Cold => {
                self.started(&want.key, -1);
                self.used_mb -= want.memory_mb;
            }
        }
    }

    /// The slot of `container`.
    pub fn slot_mut(&mut self, container: &Arc<dyn Container>) -> Option<&mut Slot> {
        self.slots
            .iter_mut()
            .find(|s| s.container.id() == container.id())
    }

    /// Forgets `container` and its memory.
    pub fn forget(&mut self, container: &Arc<dyn Container>, memory_mb: u64) {
        self.slots.retain(|s| s.container.id() != container.id());
        self.live.remove(container.id());
        self.used_mb = self.used_mb.saturating_sub(memory_mb);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::executor::ExecutorError;
    use crate::logs::LogLine;
    use std::time::Duration;

    /// A container that is only an id.
    struct Named(String);

    #[async_trait::async_trait]
    impl Container for Named {
        fn id(&self) -> &str {
            &self.0
        }
        fn endpoint(&self) -> &str {
            ""
        }
        async fn destroy(&self) -> Result<(), ExecutorError> {
            Ok(())
        }
        async fn logs(&self, _: bool, _: Duration) -> Result<Vec<LogLine>, ExecutorError> {
            Ok(vec![])
        }
    }

    fn want(action: &str) -> Want {
        Want {
            key: WarmKey {
                namespace: "guest".into(),
                action: action.into(),
                revision: "1".into(),
            },
            kind: "nodejs:20".into(),
            memory_mb: 256,
            capacity: 1,
        }
    }

    /// A pool state with one busy container of `w`'s action, a 500 ms cold start measured
    /// and the action's runs taking `run_ms` (when given).
    fn busy(w: &Want, run_ms: Option<u64>) -> State {
        let mut st = State {
            wait_for_warm: true,
            ..State::default()
        };
        st.slots.push(Slot {
            key: w.key.clone(),
            container: Arc::new(Named("c1".into())),
            memory_mb: w.memory_mb,
            active: 1,
            capacity: 1,
            last_used: Instant::now(),
            keep_alive: Duration::from_secs(600),
            phase: Phase::Ready,
        });
        st.used_mb = w.memory_mb;
        st.observe_cold_start(&w.kind, 500);
        if let Some(ms) = run_ms {
            st.observe_run(&w.key.action, ms);
        }
        st
    }

    #[test]
    fn short_runs_wait_for_a_busy_container_and_long_ones_do_not() {
        let w = want("quick");
        let st = busy(&w, Some(5));
        assert_eq!(st.patience(&w), Some(Duration::from_millis(500)));
        let mut victims = vec![];
        let mut st = busy(&w, Some(5));
        assert!(st.try_acquire(&w, 2048, &mut victims, true).is_none());
        assert_eq!(st.used_mb, 256, "no memory booked for a new container");
        // Runs of more than half a cold start: a container of their own, as OpenWhisk's.
        assert_eq!(busy(&w, Some(300)).patience(&w), None);
        // Switched off: OpenWhisk's pool.
        let mut off = busy(&w, Some(5));
        off.wait_for_warm = false;
        assert_eq!(off.patience(&w), None);
        // Nothing of the action's running: nothing to wait for.
        assert_eq!(busy(&w, Some(5)).patience(&want("other")), None);
    }

    #[test]
    fn the_expected_wait_grows_with_the_runs_already_waiting() {
        let w = want("quick");
        let mut st = busy(&w, Some(100));
        for _ in 0..2 {
            assert!(st.patience(&w).is_some());
            let (tx, _rx) = oneshot::channel();
            st.waiters.push_back(Waiter {
                want: w.clone(),
                tx,
                since: Instant::now(),
                patient_until: Some(Instant::now() + Duration::from_secs(1)),
            });
        }
        // A third one would wait 3 x 100 ms > 250 ms: it starts a container.
        assert_eq!(st.patience(&w), None);
    }

    #[test]
    fn before_a_run_finished_two_containers_start_and_the_rest_wait() {
        let w = want("new");
        let mut st = State {
            wait_for_warm: true,
            ..State::default()
        };
        let mut victims = vec![];
        for _ in 0..BLIND_STARTS {
            assert_eq!(st.patience(&w), None);
            assert!(matches!(
                st.try_acquire(&w, 4096, &mut victims, false),
                Some(Acquired::Cold)
            ));
        }
        assert_eq!(st.starting_keys[&w.key], BLIND_STARTS);
        assert_eq!(
            st.patience(&w),
            Some(Duration::from_millis(DEFAULT_COLD_START_MS as u64))
        );
        st.started(&w.key, -1);
        st.started(&w.key, -1);
        assert!(st.starting_keys.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiting_run_gets_the_warm_container_or_after_its_patience_memory() {
        let w = want("quick");
        let mut st = busy(&w, Some(5));
        let mut victims = vec![];
        let (tx, mut rx) = oneshot::channel();
        st.waiters.push_back(Waiter {
            want: w.clone(),
            tx,
            since: Instant::now(),
            patient_until: Some(Instant::now() + Duration::from_millis(500)),
        });
        st.dispatch(2048, &mut victims);
        assert!(
            rx.try_recv().is_err(),
            "still waiting: memory is free, but it waits"
        );
        st.slots[0].active = 0; // the busy run ended
        st.dispatch(2048, &mut victims);
        assert!(matches!(rx.try_recv(), Ok(Acquired::Warm { .. })));

        let (tx, mut rx) = oneshot::channel();
        st.waiters.push_back(Waiter {
            want: w.clone(),
            tx,
            since: Instant::now(),
            patient_until: Some(Instant::now() + Duration::from_millis(500)),
        });
        tokio::time::advance(Duration::from_millis(501)).await;
        st.dispatch(2048, &mut victims);
        assert!(matches!(rx.try_recv(), Ok(Acquired::Cold)));
    }
}
