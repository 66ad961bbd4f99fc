//! Fault injection: wrappers that make any [`Store`](crate::store::Store),
//! [`MessageBus`](crate::bus::MessageBus) or [`ContainerExecutor`](crate::executor::ContainerExecutor)
//! slow, failing, lossy or repetitive on purpose, to test what the platform does when its
//! backends misbehave.
//!
//! Each wrapper implements the trait it wraps, so wrappers compose the way tower middleware
//! wraps a service: around any backend, under a cache, or around each other
//! (`FaultyStore::new(CachingStore::new(FaultyStore::new(couch, slow), cache), lossy)`).
//!
//! A [`Faults`] describes what to inject; every call through a wrapper first waits the
//! latency, then rolls one [`Fault`] (seeded, so a run can be repeated):
//! - **error**: the call fails as the backend would when unreachable
//!   (`Unavailable`), and the backend never sees it;
//! - **drop**: the request is lost. A write reaches the backend but its answer is lost
//!   (the caller gets `Unavailable` after the effect); a published message is acknowledged
//!   but never delivered; a container is started and dies at once;
//! - **duplicate**: the request arrives twice. A write is applied a second time (as a retry
//!   would be); a message is delivered twice. Executors have no duplicate: a container
//!   start is passed through unchanged.
//!
//! [`FaultHandle`] switches the faults on and off while the wrapped backend runs (a test heals
//! its backend) and counts what was injected.

mod bus;
mod executor;
mod store;

pub use bus::FaultyBus;
pub use executor::FaultyExecutor;
pub use store::FaultyStore;

use crate::sim::generate::Rng;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What a wrapper injects. The probabilities are per call and exclusive (error, then drop,
/// then duplicate, out of one roll); their sum must not exceed 1.
#[derive(Debug, Clone, PartialEq)]
pub struct Faults {
    /// Added to every call before it runs.
    pub latency: Duration,
    /// Extra latency, uniform in `0..=jitter`, on top of `latency`.
    pub jitter: Duration,
    /// Probability of an error.
    pub error: f64,
    /// Probability of a drop.
    pub drop: f64,
    /// Probability of a duplicate.
    pub duplicate: f64,
    /// Seed of the rolls: the same seed and calls give the same faults.
    pub seed: u64,
}

impl Default for Faults {
    fn default() -> Self {
        Self::none()
    }
}

impl Faults {
    /// No faults: the wrapper passes every call through.
    pub fn none() -> Self {
        Self {
            latency: Duration::ZERO,
            jitter: Duration::ZERO,
            error: 0.0,
            drop: 0.0,
            duplicate: 0.0,
            seed: 1,
        }
    }

    /// Sets the latency and its jitter.
    pub fn latency(mut self, latency: Duration, jitter: Duration) -> Self {
        self.latency = latency;
        self.jitter = jitter;
        self
    }

    /// Sets the probability of an error.
    pub fn errors(mut self, p: f64) -> Self {
        self.error = p;
        self
    }

    /// Sets the probability of a drop.
    pub fn drops(mut self, p: f64) -> Self {
        self.drop = p;
        self
    }

    /// Sets the probability of a duplicate.
    pub fn duplicates(mut self, p: f64) -> Self {
        self.duplicate = p;
        self
    }

    /// Sets the seed.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }
}

/// The fault of one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The call goes through unchanged (after the latency).
    Pass,
    /// The call fails without reaching the backend.
    Error,
    /// The call is lost (see the [module docs](self) for what that means per backend).
    Drop,
    /// The call arrives twice.
    Duplicate,
}

/// How many faults a wrapper injected.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FaultCounts {
    /// Calls that went through unchanged.
    pub passed: u64,
    /// Calls failed.
    pub errors: u64,
    /// Calls lost.
    pub drops: u64,
    /// Calls repeated.
    pub duplicates: u64,
}

/// Switches a wrapper's faults on and off, and reads its counts; clones share the wrapper.
#[derive(Clone)]
pub struct FaultHandle(Arc<Injector>);

impl FaultHandle {
    /// Turns the faults (latency included) on or off; on at first.
    pub fn set_enabled(&self, on: bool) {
        self.0.enabled.store(on, Ordering::Relaxed);
    }

    /// What was injected so far.
    pub fn counts(&self) -> FaultCounts {
        let c = &self.0.counts;
        FaultCounts {
            passed: c[0].load(Ordering::Relaxed),
            errors: c[1].load(Ordering::Relaxed),
            drops: c[2].load(Ordering::Relaxed),
            duplicates: c[3].load(Ordering::Relaxed),
        }
    }
}

/// The shared state of one wrapper: its faults, its dice and its counts.
struct Injector {
    faults: Faults,
    rng: Mutex<Rng>,
    enabled: AtomicBool,
    counts: [AtomicU64; 4],
}

impl Injector {
    fn new(faults: Faults) -> Arc<Self> {
        Arc::new(Self {
            rng: Mutex::new(Rng::derive(faults.seed, 0)),
            faults,
            enabled: AtomicBool::new(true),
            counts: Default::default(),
        })
    }

    /// Waits the latency and rolls the fault of one call.
    async fn roll(&self) -> Fault {
        if !self.enabled.load(Ordering::Relaxed) {
            self.counts[0].fetch_add(1, Ordering::Relaxed);
            return Fault::Pass;
        }
        let f = &self.faults;
        let (delay, dice) = {
            let mut rng = self.rng.lock().unwrap();
            let jitter = if f.jitter.is_zero() {
                Duration::ZERO
            } else {
                f.jitter.mul_f64(rng.uniform())
            };
            (f.latency + jitter, rng.uniform())
        };
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let fault = if dice < f.error {
            Fault::Error
        } else if dice < f.error + f.drop {
            Fault::Drop
        } else if dice < f.error + f.drop + f.duplicate {
            Fault::Duplicate
        } else {
            Fault::Pass
        };
        let slot = match fault {
            Fault::Pass => 0,
            Fault::Error => 1,
            Fault::Drop => 2,
            Fault::Duplicate => 3,
        };
        self.counts[slot].fetch_add(1, Ordering::Relaxed);
        fault
    }
}

impl Injector {
    /// Latency, then `Err(fail())` on an error or a drop: the faults of a call that has no
    /// answer to lose and nothing to repeat (reads, polls, commits, topic creation).
    async fn gate<E>(&self, fail: impl FnOnce() -> E) -> Result<(), E> {
        match self.roll().await {
            Fault::Pass | Fault::Duplicate => Ok(()),
            Fault::Error | Fault::Drop => Err(fail()),
        }
    }
}

/// The message of an injected failure.
const INJECTED: &str = "injected fault";
/// The message of an injected lost answer.
const LOST: &str = "injected fault: the answer was lost";

#[cfg(test)]
mod tests {
    use super::*;

    fn tally(faults: Faults, n: usize) -> (Vec<Fault>, FaultCounts) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let inj = Injector::new(faults);
        let rolls = rt.block_on(async {
            let mut v = Vec::new();
            for _ in 0..n {
                v.push(inj.roll().await);
            }
            v
        });
        (rolls, FaultHandle(inj).counts())
    }

    #[test]
    fn rolls_follow_the_probabilities_and_the_seed() {
        let faults = Faults::none()
            .errors(0.2)
            .drops(0.1)
            .duplicates(0.3)
            .seed(7);
        let (a, counts) = tally(faults.clone(), 10_000);
        assert!((1_800..2_200).contains(&counts.errors), "{counts:?}");
        assert!((800..1_200).contains(&counts.drops), "{counts:?}");
        assert!((2_700..3_300).contains(&counts.duplicates), "{counts:?}");
        assert_eq!(
            counts.passed + counts.errors + counts.drops + counts.duplicates,
            10_000
        );
        let (b, _) = tally(faults.clone(), 10_000);
        assert_eq!(a, b, "the same seed gives the same faults");
        let (c, _) = tally(faults.seed(8), 10_000);
        assert_ne!(a, c, "another seed gives others");
    }

    #[test]
    fn no_faults_pass_everything() {
        let (rolls, counts) = tally(Faults::none(), 1_000);
        assert!(rolls.iter().all(|f| *f == Fault::Pass));
        assert_eq!(counts.passed, 1_000);
    }

    #[tokio::test(start_paused = true)]
    async fn latency_delays_each_call_on_the_clock() {
        let inj = Injector::new(
            Faults::none().latency(Duration::from_millis(50), Duration::from_millis(10)),
        );
        let start = tokio::time::Instant::now();
        for _ in 0..10 {
            inj.roll().await;
        }
        let took = start.elapsed();
        assert!(
            took >= Duration::from_millis(500) && took <= Duration::from_millis(600),
            "{took:?} on the paused clock"
        );
        let handle = FaultHandle(inj.clone());
        handle.set_enabled(false);
        let start = tokio::time::Instant::now();
        inj.roll().await;
        assert_eq!(start.elapsed(), Duration::ZERO, "off: no latency");
    }
}
