//! Wall-clock time for event sources, replaceable by a manual clock in tests.

use async_trait::async_trait;
use std::time::Duration;
use tokio::sync::watch;

/// The time sources schedule by (ms since the Unix epoch).
#[async_trait]
pub trait Clock: Send + Sync + 'static {
    /// The current time.
    fn now_ms(&self) -> u64;

    /// Returns once [`now_ms`](Clock::now_ms) is at least `ms`.
    async fn sleep_until(&self, ms: u64);
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

/// Longest single sleep of [`SystemClock`]: the clock is read again after it, so a wall-clock
/// step (NTP, suspend) delays a due event by at most this much.
const MAX_SLEEP: Duration = Duration::from_secs(30);

#[async_trait]
impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        crate::message::now_ms()
    }

    async fn sleep_until(&self, ms: u64) {
        loop {
            let now = self.now_ms();
            if now >= ms {
                return;
            }
            tokio::time::sleep(Duration::from_millis(ms - now).min(MAX_SLEEP)).await;
        }
    }
}

/// A clock that moves only when told: tests fast-forward schedules with it.
#[derive(Debug)]
pub struct ManualClock {
    now: watch::Sender<u64>,
}

impl ManualClock {
    /// A clock showing `start_ms`.
    pub fn new(start_ms: u64) -> Self {
        Self {
            now: watch::Sender::new(start_ms),
        }
    }

    /// Moves the clock forward by `by`, waking every sleeper whose time has come.
    pub fn advance(&self, by: Duration) {
        self.now
            .send_modify(|now| *now += u64::try_from(by.as_millis()).unwrap_or(u64::MAX));
    }

    /// How many tasks are in [`sleep_until`](Clock::sleep_until) now: tests wait for the
    /// sources to be asleep before they move the clock.
    pub fn sleepers(&self) -> usize {
        self.now.receiver_count()
    }

    /// Sets the clock to `ms` (never backwards).
    pub fn set(&self, ms: u64) {
        self.now.send_modify(|now| *now = (*now).max(ms));
    }
}

#[async_trait]
impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        *self.now.borrow()
    }

    async fn sleep_until(&self, ms: u64) {
        let mut rx = self.now.subscribe();
        // The sender lives as long as `self`, so `wait_for` only ends when the time comes.
        let _ = rx.wait_for(|now| *now >= ms).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test]
    async fn manual_clock_wakes_sleepers_when_advanced_past_their_time() {
        let clock = Arc::new(ManualClock::new(1_000));
        let c = clock.clone();
        let sleeper = tokio::spawn(async move { c.sleep_until(61_000).await });
        while clock.sleepers() == 0 {
            tokio::task::yield_now().await;
        }
        clock.advance(Duration::from_secs(30));
        tokio::task::yield_now().await;
        assert!(!sleeper.is_finished(), "woke 30 s early");
        clock.advance(Duration::from_secs(30));
        tokio::time::timeout(Duration::from_secs(5), sleeper)
            .await
            .expect("the sleeper wakes")
            .unwrap();
        assert_eq!(clock.sleepers(), 0);
        clock.set(10);
        assert_eq!(clock.now_ms(), 61_000, "the clock never goes back");
    }

    #[tokio::test]
    async fn system_clock_sleeps_until_the_time() {
        let clock = SystemClock;
        let target = clock.now_ms() + 20;
        clock.sleep_until(target).await;
        assert!(clock.now_ms() >= target);
    }
}
