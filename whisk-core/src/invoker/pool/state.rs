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
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Want {
    pub key: WarmKey,
    pub kind: String,
    pub memory_mb: u64,
    /// Activations one container of this action may run at once.
    pub capacity: usize,
    /// The action needs the host's network ([`ContainerSpec::host_network`]): it never takes
    /// a pre-warmed container, which has a network of its own.
    ///
    /// [`ContainerSpec::host_network`]: crate::executor::ContainerSpec::host_network
    pub host_network: bool,
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
    /// Taken by a run before it releases the container and held while its logs are
    /// collected, so runs of a container that runs one at a time (sharing one untagged log
    /// stream) collect their logs in the order they ran.
    pub log_turn: Arc<tokio::sync::Mutex<()>>,
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
}

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
    /// Per action (document id), the weighted mean run time in ms (kept for
    /// [`QueueOrder::ShortestPredicted`]).
    pub predicted_ms: HashMap<String, f64>,
    /// How many new containers may be starting at once
    /// ([`PoolConfig::max_cold_starts`](super::PoolConfig::max_cold_starts)).
    pub cold_cap: Option<usize>,
    /// New containers handed out and not yet initialised (or failed).
    pub cold_starting: usize,
}

impl State {
    /// Satisfies `want` at once if possible, in OpenWhisk's order: a warm container of the same
    /// action with room, a prewarmed container of the same kind and memory, free memory for a
    /// cold start, or free memory after evicting least recently used idle containers (returned
    /// in `victims` for destruction). Stem cells are never evicted for space. No cold start
    /// while [`cold_cap`](Self::cold_cap) new containers are starting.
    pub fn try_acquire(
        &mut self,
        want: &Want,
        cap: u64,
        victims: &mut Vec<Arc<dyn Container>>,
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
        if let Some(i) = self
            .stems
            .iter()
            .position(|s| s.kind == want.kind && s.memory_mb == want.memory_mb)
            .filter(|_| !want.host_network)
        {
            return Some(Acquired::Prewarm(self.stems.swap_remove(i).container));
        }
        if self.cold_cap.is_some_and(|cap| self.cold_starting >= cap) {
            return None; // waits for a start to end, or for a warm container
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
        self.cold_starting += 1;
        Some(Acquired::Cold)
    }

    /// Records a run of `action` that took `ms`.
    pub fn observe_run(&mut self, action: &str, ms: u64) {
        if self.order == QueueOrder::Fifo {
            return;
        }
        let mean = self
            .predicted_ms
            .entry(action.to_string())
            .or_insert(ms as f64);
        *mean += 0.3 * (ms as f64 - *mean);
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
        // A want that cannot be met now cannot be met later in this pass: meeting others only
        // takes containers, memory and start permits (see `try_acquire`). So each distinct
        // want is tried once per pass, and a long line of runs of one action costs a
        // comparison each, not a search of the pool each.
        let mut unmet: Vec<Want> = Vec::new();
        let mut i = 0;
        while i < self.waiters.len() {
            if unmet.contains(&self.waiters[i].want) {
                i += 1;
                continue;
            }
            let want = self.waiters[i].want.clone();
            match self.try_acquire(&want, cap, victims) {
                Some(got) => {
                    let w = self.waiters.remove(i).expect("index in range");
                    if let Err(got) = w.tx.send(got) {
                        // Given back: what was unmet may be met now.
                        self.undo(got, &w.want);
                        unmet.clear();
                    }
                }
                None => {
                    unmet.push(want);
                    i += 1;
                }
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
            Acquired::Prewarm(container) => self.stems.push(Stem {
                kind: want.kind.clone(),
                memory_mb: want.memory_mb,
                container,
            }),
            Acquired::Cold => {
                self.used_mb -= want.memory_mb;
                self.cold_starting -= 1;
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
    struct Named(&'static str);

    #[async_trait::async_trait]
    impl Container for Named {
        fn id(&self) -> &str {
            self.0
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
            host_network: false,
        }
    }

    /// A pre-warmed container has a network of its own: an action that needs the host's
    /// network starts a container of its own instead.
    #[test]
    fn an_action_on_the_host_network_never_takes_a_prewarmed_container() {
        let mut st = State::default();
        let host = Want {
            host_network: true,
            ..want("feed")
        };
        st.stems.push(Stem {
            kind: host.kind.clone(),
            memory_mb: host.memory_mb,
            container: Arc::new(Named("stem")),
        });
        let mut victims = vec![];
        assert!(matches!(
            st.try_acquire(&host, 4096, &mut victims),
            Some(Acquired::Cold)
        ));
        assert_eq!(st.stems.len(), 1, "the stem is left for others");
        assert!(matches!(
            st.try_acquire(&want("user"), 4096, &mut victims),
            Some(Acquired::Prewarm(_))
        ));
    }

    #[test]
    fn no_cold_start_beyond_the_cap_but_warm_and_prewarmed_containers_still_serve() {
        let (a, b) = (want("a"), want("b"));
        let mut st = State {
            cold_cap: Some(1),
            ..State::default()
        };
        let mut victims = vec![];
        assert!(matches!(
            st.try_acquire(&a, 4096, &mut victims),
            Some(Acquired::Cold)
        ));
        assert_eq!(st.cold_starting, 1);
        assert!(st.try_acquire(&b, 4096, &mut victims).is_none(), "capped");
        assert_eq!(st.used_mb, 256, "no memory booked for it");
        // A stem cell needs no start.
        st.stems.push(Stem {
            kind: b.kind.clone(),
            memory_mb: b.memory_mb,
            container: Arc::new(Named("stem")),
        });
        assert!(matches!(
            st.try_acquire(&b, 4096, &mut victims),
            Some(Acquired::Prewarm(_))
        ));
        // a's container is ready and busy; a second run of a waits in line, and gets it
        // when it is released, before any start ends.
        st.slots.push(Slot {
            active: 1,
            ..idle_slot(&a, "a1")
        });
        let (tx, mut rx) = oneshot::channel();
        st.waiters.push_back(Waiter {
            want: a.clone(),
            tx,
            since: Instant::now(),
        });
        st.dispatch(4096, &mut victims);
        assert!(rx.try_recv().is_err(), "still capped, still busy");
        st.slots[0].active = 0;
        st.dispatch(4096, &mut victims);
        assert!(matches!(rx.try_recv(), Ok(Acquired::Warm { .. })));
        // The start ended: the cap allows the next one.
        st.cold_starting -= 1;
        assert!(matches!(
            st.try_acquire(&want("c"), 4096, &mut victims),
            Some(Acquired::Cold)
        ));
        // Without a cap (OpenWhisk's pool) starts are never held back.
        st.cold_cap = None;
        assert!(matches!(
            st.try_acquire(&want("d"), 4096, &mut victims),
            Some(Acquired::Cold)
        ));
        assert_eq!(st.cold_starting, 2);
    }

    fn idle_slot(w: &Want, id: &'static str) -> Slot {
        Slot {
            key: w.key.clone(),
            container: Arc::new(Named(id)),
            memory_mb: w.memory_mb,
            active: 0,
            capacity: 1,
            last_used: Instant::now(),
            keep_alive: Duration::from_secs(600),
            phase: Phase::Ready,
            log_turn: Default::default(),
        }
    }

    /// A long line of one action's runs behind a full pool: a run of another action further
    /// back still gets that action's idle container, the line keeps its order, and a run whose
    /// caller went away gives its container to the next in line.
    #[test]
    fn a_long_line_keeps_its_order_and_does_not_hold_up_other_actions() {
        // a's runs need more memory than evicting b's idle container would free.
        let (a, b) = (
            Want {
                memory_mb: 512,
                ..want("a")
            },
            want("b"),
        );
        let mut st = State {
            used_mb: 768,
            ..State::default()
        };
        st.slots.push(Slot {
            active: 1,
            ..idle_slot(&a, "a1")
        });
        st.slots.push(idle_slot(&b, "b1"));
        st.slots[1].active = 1; // busy too, so no eviction makes room
        let mut line = Vec::new();
        for n in 0..1000 {
            let (tx, rx) = oneshot::channel();
            st.waiters.push_back(Waiter {
                want: if n == 999 { b.clone() } else { a.clone() },
                tx,
                since: Instant::now(),
            });
            line.push(rx);
        }
        let mut victims = vec![];
        st.dispatch(768, &mut victims);
        assert!(line.iter_mut().all(|rx| rx.try_recv().is_err()), "all busy");
        st.slots[1].active = 0;
        st.dispatch(768, &mut victims);
        assert!(
            matches!(line[999].try_recv(), Ok(Acquired::Warm { .. })),
            "b served"
        );
        assert_eq!(st.waiters.len(), 998 + 1);
        // The first two in line went away; a's container goes to the third.
        line.remove(0);
        line.remove(0);
        st.slots[0].active = 0;
        st.dispatch(768, &mut victims);
        assert!(matches!(line[0].try_recv(), Ok(Acquired::Warm { .. })));
        assert!(line[1..998].iter_mut().all(|rx| rx.try_recv().is_err()));
        assert_eq!(st.waiters.len(), 996);
        assert!(victims.is_empty());
    }
}
