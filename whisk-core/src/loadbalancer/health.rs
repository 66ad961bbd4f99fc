//! Invoker health supervision, as OpenWhisk's `InvokerSupervision`: a small state machine
//! per invoker fed by pings (topic `health`), by the outcome of the activations it ran and by
//! a clock. Pure: every input carries its [`Instant`], nothing sleeps, so the transitions are
//! tested with explicit instants.
//!
//! - A new invoker starts [`InvokerState::Unhealthy`].
//! - No ping for [`HealthConfig::ping_timeout`] (10 s) → [`InvokerState::Offline`]; a ping
//!   while Offline → Unhealthy; a ping with `isEnabled: false` → Offline.
//! - The last [`BUFFER_SIZE`] results are kept: more than [`ERROR_TOLERANCE`] system errors →
//!   Unhealthy, more than [`ERROR_TOLERANCE`] timeouts (forced completions) → Unresponsive,
//!   otherwise a success → [`InvokerState::Healthy`].
//! - While Unhealthy or Unresponsive a test action is due on entry and every
//!   [`HealthConfig::test_action_interval`] (1 min); a success while Unhealthy asks for
//!   another one at once, to clear the buffer quickly.
//!
//! Only Healthy invokers are usable for scheduling.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How many recent activation results are kept per invoker (OpenWhisk's `bufferSize`).
pub const BUFFER_SIZE: usize = 10;
/// How many errors of one kind the buffer tolerates (OpenWhisk's `bufferErrorTolerance`).
pub const ERROR_TOLERANCE: usize = 3;

/// The health state of an invoker, with OpenWhisk's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InvokerState {
    /// Usable (`"up"`).
    Healthy,
    /// Failing activations with system errors, or just registered (`"unhealthy"`).
    Unhealthy,
    /// Not acknowledging activations in time (`"unresponsive"`).
    Unresponsive,
    /// Not pinging, or disabled (`"down"`).
    Offline,
}

impl InvokerState {
    /// The name `GET /invokers` shows: `up`, `unhealthy`, `unresponsive` or `down`.
    pub fn as_str(self) -> &'static str {
        match self {
            InvokerState::Healthy => "up",
            InvokerState::Unhealthy => "unhealthy",
            InvokerState::Unresponsive => "unresponsive",
            InvokerState::Offline => "down",
        }
    }

    /// Whether activations may be scheduled on it.
    pub fn is_usable(self) -> bool {
        self == InvokerState::Healthy
    }

    /// Whether test actions are sent while in this state.
    fn tests(self) -> bool {
        matches!(self, InvokerState::Unhealthy | InvokerState::Unresponsive)
    }
}

impl std::fmt::Display for InvokerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How an activation ended, from the supervision's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvocationResult {
    /// It ran (user and application errors included).
    Success,
    /// The invoker failed it with a system error (`isSystemError`).
    SystemError,
    /// No completion acknowledgement arrived in time (forced completion).
    Timeout,
}

/// The timings of the supervision; defaults are OpenWhisk's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthConfig {
    /// An invoker not heard from for this long goes Offline (10 s).
    pub ping_timeout: Duration,
    /// Test actions are sent this often while Unhealthy or Unresponsive (60 s).
    pub test_action_interval: Duration,
}

impl Default for HealthConfig {
    fn default() -> Self {
        Self {
            ping_timeout: Duration::from_secs(10),
            test_action_interval: Duration::from_secs(60),
        }
    }
}

/// What one input did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Step {
    /// `(from, to)` when the state changed.
    pub transition: Option<(InvokerState, InvokerState)>,
    /// Whether a test action should be sent to the invoker now.
    pub send_test_action: bool,
}

/// The supervision state of one invoker.
#[derive(Debug, Clone)]
pub struct InvokerHealth {
    state: InvokerState,
    buffer: VecDeque<InvocationResult>,
    last_ping: Instant,
    next_test: Option<Instant>,
}

impl InvokerHealth {
    /// A newly registered invoker, pinging at `now`: Unhealthy, and a test action is due at
    /// once (`step.send_test_action`).
    pub fn new(now: Instant, config: &HealthConfig) -> (Self, Step) {
        let mut h = Self::offline(now);
        let step = h.goto(InvokerState::Unhealthy, now, config);
        (h, step)
    }

    /// An invoker known only by number, never heard from: Offline until it pings.
    pub fn offline(now: Instant) -> Self {
        Self {
            state: InvokerState::Offline,
            buffer: VecDeque::with_capacity(BUFFER_SIZE),
            last_ping: now,
            next_test: None,
        }
    }

    /// The current state.
    pub fn state(&self) -> InvokerState {
        self.state
    }

    /// The results in the ring buffer, oldest first.
    pub fn results(&self) -> impl Iterator<Item = InvocationResult> + '_ {
        self.buffer.iter().copied()
    }

    /// A ping arrived at `now`.
    pub fn on_ping(&mut self, enabled: bool, now: Instant, config: &HealthConfig) -> Step {
        self.last_ping = now;
        match (self.state, enabled) {
            (InvokerState::Offline, true) => {
                // A rejoining invoker starts with a clean history: what was forced-completed
                // while it was gone says nothing about it now.
                self.buffer.clear();
                self.goto(InvokerState::Unhealthy, now, config)
            }
            (InvokerState::Offline, false) => Step::default(),
            (_, false) => self.goto(InvokerState::Offline, now, config),
            (_, true) => Step::default(),
        }
    }

    /// An activation (user or test) on this invoker ended with `result`.
    pub fn on_result(
        &mut self,
        result: InvocationResult,
        now: Instant,
        config: &HealthConfig,
    ) -> Step {
        if self.state == InvokerState::Offline {
            // A stale ack or a forced completion of a gone invoker neither revives it nor
            // counts against its next life.
            return Step::default();
        }
        if self.buffer.len() == BUFFER_SIZE {
            self.buffer.pop_front();
        }
        self.buffer.push_back(result);
        let success = result == InvocationResult::Success;
        // A success while Unhealthy asks for another test action at once, to clear the buffer.
        let extra_test = success && self.state == InvokerState::Unhealthy;
        let mut step = if self.state == InvokerState::Healthy && success {
            // Healthy stays healthy on success.
            Step::default()
        } else {
            let count = |r| self.buffer.iter().filter(|&&x| x == r).count();
            let primed = self.buffer.len() > ERROR_TOLERANCE;
            let target = if count(InvocationResult::SystemError) > ERROR_TOLERANCE {
                Some(InvokerState::Unhealthy)
            } else if count(InvocationResult::Timeout) > ERROR_TOLERANCE {
                Some(InvokerState::Unresponsive)
            } else {
                match result {
                    InvocationResult::Success => Some(InvokerState::Healthy),
                    InvocationResult::SystemError if !primed => Some(InvokerState::Unhealthy),
                    InvocationResult::Timeout if !primed => Some(InvokerState::Unresponsive),
                    _ => None,
                }
            };
            match target {
                Some(t) => self.goto(t, now, config),
                None => Step::default(),
            }
        };
        step.send_test_action |= extra_test;
        step
    }

    /// The clock at `now`: goes Offline after the ping timeout, and says when a periodic test
    /// action is due.
    pub fn on_tick(&mut self, now: Instant, config: &HealthConfig) -> Step {
        if self.state != InvokerState::Offline
            && now.saturating_duration_since(self.last_ping) >= config.ping_timeout
        {
            return self.goto(InvokerState::Offline, now, config);
        }
        match self.next_test {
            Some(due) if self.state.tests() && now >= due => {
                self.next_test = Some(now + config.test_action_interval);
                Step {
                    transition: None,
                    send_test_action: true,
                }
            }
            _ => Step::default(),
        }
    }

    /// Moves to `to` (no-op when already there); entering Unhealthy or Unresponsive sends a
    /// test action and starts the test timer, leaving them stops it.
    fn goto(&mut self, to: InvokerState, now: Instant, config: &HealthConfig) -> Step {
        let from = self.state;
        if from == to {
            return Step::default();
        }
        self.state = to;
        let send = to.tests();
        self.next_test = send.then(|| now + config.test_action_interval);
        Step {
            transition: Some((from, to)),
            send_test_action: send,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use InvocationResult::{Success, SystemError, Timeout};
    use InvokerState::{Healthy, Offline, Unhealthy, Unresponsive};

    fn cfg() -> HealthConfig {
        HealthConfig::default()
    }

    fn secs(t0: Instant, s: u64) -> Instant {
        t0 + Duration::from_secs(s)
    }

    #[test]
    fn names_and_usability() {
        assert_eq!(
            [Healthy, Unhealthy, Unresponsive, Offline].map(InvokerState::as_str),
            ["up", "unhealthy", "unresponsive", "down"]
        );
        assert!(Healthy.is_usable());
        assert!(!Unhealthy.is_usable() && !Unresponsive.is_usable() && !Offline.is_usable());
    }

    #[test]
    fn starts_unhealthy_with_a_test_action_and_a_success_makes_it_healthy() {
        let t0 = Instant::now();
        let (mut h, step) = InvokerHealth::new(t0, &cfg());
        assert_eq!(h.state(), Unhealthy);
        assert_eq!(step.transition, Some((Offline, Unhealthy)));
        assert!(step.send_test_action);
        let step = h.on_result(Success, secs(t0, 1), &cfg());
        assert_eq!(step.transition, Some((Unhealthy, Healthy)));
        assert!(
            step.send_test_action,
            "a success while unhealthy asks for another test"
        );
        assert_eq!(h.state(), Healthy);
        // Healthy stays healthy on success and sends no tests.
        let step = h.on_result(Success, secs(t0, 2), &cfg());
        assert_eq!(step, Step::default());
    }

    #[test]
    fn pings_keep_it_alive_silence_takes_it_offline_and_a_ping_brings_it_back() {
        let t0 = Instant::now();
        let c = cfg();
        let (mut h, _) = InvokerHealth::new(t0, &c);
        h.on_result(Success, t0, &c);
        for s in 1..=30 {
            assert_eq!(h.on_ping(true, secs(t0, s), &c), Step::default());
            assert_eq!(h.on_tick(secs(t0, s), &c).transition, None);
        }
        assert_eq!(h.state(), Healthy);
        assert_eq!(h.on_tick(secs(t0, 39), &c).transition, None);
        let step = h.on_tick(secs(t0, 40), &c);
        assert_eq!(step.transition, Some((Healthy, Offline)));
        assert!(!step.send_test_action);
        // Offline neither times out again nor sends tests.
        assert_eq!(h.on_tick(secs(t0, 500), &c), Step::default());
        // A stale result does not revive it.
        assert_eq!(h.on_result(Success, secs(t0, 501), &c), Step::default());
        assert_eq!(h.state(), Offline);
        // A ping does: back to Unhealthy with a test action.
        let step = h.on_ping(true, secs(t0, 502), &c);
        assert_eq!(step.transition, Some((Offline, Unhealthy)));
        assert!(step.send_test_action);
        // Unhealthy also goes Offline without pings.
        assert_eq!(
            h.on_tick(secs(t0, 512), &c).transition,
            Some((Unhealthy, Offline))
        );
    }

    #[test]
    fn a_disabled_ping_takes_it_offline_at_once() {
        let t0 = Instant::now();
        let c = cfg();
        let (mut h, _) = InvokerHealth::new(t0, &c);
        h.on_result(Success, t0, &c);
        let step = h.on_ping(false, secs(t0, 1), &c);
        assert_eq!(step.transition, Some((Healthy, Offline)));
        // Disabled pings keep it Offline; an enabled one brings it back.
        assert_eq!(h.on_ping(false, secs(t0, 2), &c), Step::default());
        assert_eq!(
            h.on_ping(true, secs(t0, 3), &c).transition,
            Some((Offline, Unhealthy))
        );
        // An unknown invoker that was never heard of stays Offline on a disabled ping.
        let mut fresh = InvokerHealth::offline(t0);
        assert_eq!(fresh.on_ping(false, t0, &c), Step::default());
        assert_eq!(fresh.state(), Offline);
    }

    #[test]
    fn system_errors_make_it_unhealthy() {
        let t0 = Instant::now();
        let c = cfg();
        let (mut h, _) = InvokerHealth::new(t0, &c);
        for _ in 0..6 {
            h.on_result(Success, t0, &c);
        }
        assert_eq!(h.state(), Healthy);
        // Up to three system errors at steady state are tolerated.
        for _ in 0..3 {
            assert_eq!(h.on_result(SystemError, t0, &c).transition, None);
        }
        assert_eq!(h.state(), Healthy);
        let step = h.on_result(SystemError, t0, &c);
        assert_eq!(step.transition, Some((Healthy, Unhealthy)));
        assert!(step.send_test_action);
        // Successes overwrite the errors: >3 errors remain until enough successes push them out.
        for _ in 0..6 {
            assert_eq!(h.on_result(Success, t0, &c).transition, None);
        }
        assert_eq!(h.state(), Unhealthy);
        assert_eq!(
            h.on_result(Success, t0, &c).transition,
            Some((Unhealthy, Healthy))
        );
    }

    #[test]
    fn timeouts_make_it_unresponsive() {
        let t0 = Instant::now();
        let c = cfg();
        let (mut h, _) = InvokerHealth::new(t0, &c);
        for _ in 0..6 {
            h.on_result(Success, t0, &c);
        }
        for _ in 0..3 {
            h.on_result(Timeout, t0, &c);
        }
        assert_eq!(h.state(), Healthy);
        let step = h.on_result(Timeout, t0, &c);
        assert_eq!(step.transition, Some((Healthy, Unresponsive)));
        assert!(step.send_test_action);
        assert_eq!(h.results().count(), BUFFER_SIZE);
        // A success while Unresponsive with >3 timeouts buffered changes nothing.
        assert_eq!(h.on_result(Success, t0, &c), Step::default());
        // System errors win over timeouts.
        for _ in 0..4 {
            h.on_result(SystemError, t0, &c);
        }
        assert_eq!(h.state(), Unhealthy);
    }

    #[test]
    fn errors_while_priming_the_buffer_count_at_once() {
        let t0 = Instant::now();
        let c = cfg();
        let (mut h, _) = InvokerHealth::new(t0, &c);
        assert_eq!(
            h.on_result(Timeout, t0, &c).transition,
            Some((Unhealthy, Unresponsive))
        );
        assert_eq!(
            h.on_result(SystemError, t0, &c).transition,
            Some((Unresponsive, Unhealthy))
        );
        assert_eq!(
            h.on_result(Success, t0, &c).transition,
            Some((Unhealthy, Healthy))
        );
        // A fourth entry primes the buffer: one error no longer flips a healthy invoker.
        assert_eq!(h.on_result(SystemError, t0, &c).transition, None);
        assert_eq!(h.state(), Healthy);
    }

    #[test]
    fn test_actions_repeat_while_unhealthy_and_stop_once_healthy() {
        let t0 = Instant::now();
        let c = HealthConfig {
            ping_timeout: Duration::from_secs(1000),
            ..cfg()
        };
        let (mut h, _) = InvokerHealth::new(t0, &c);
        assert!(!h.on_tick(secs(t0, 59), &c).send_test_action);
        assert!(h.on_tick(secs(t0, 60), &c).send_test_action);
        assert!(!h.on_tick(secs(t0, 61), &c).send_test_action);
        assert!(h.on_tick(secs(t0, 120), &c).send_test_action);
        h.on_result(Success, secs(t0, 121), &c);
        assert_eq!(h.state(), Healthy);
        assert!(!h.on_tick(secs(t0, 500), &c).send_test_action);
        // Entering Unresponsive restarts the timer from the entry.
        for _ in 0..4 {
            h.on_result(Timeout, secs(t0, 600), &c);
        }
        assert_eq!(h.state(), Unresponsive);
        assert!(!h.on_tick(secs(t0, 659), &c).send_test_action);
        assert!(h.on_tick(secs(t0, 660), &c).send_test_action);
    }

    #[test]
    fn a_rejoining_invoker_starts_with_a_clean_history() {
        let c = cfg();
        let t0 = Instant::now();
        let (mut h, _) = InvokerHealth::new(t0, &c);
        h.on_result(InvocationResult::Success, t0, &c);
        assert_eq!(h.state(), Healthy);
        // It dies: silence takes it Offline, then its held activations are forced.
        h.on_tick(secs(t0, 60), &c);
        assert_eq!(h.state(), Offline);
        for _ in 0..BUFFER_SIZE {
            h.on_result(InvocationResult::Timeout, secs(t0, 61), &c);
        }
        assert_eq!(
            h.results().count(),
            1,
            "results of a gone invoker are not kept"
        );
        // It comes back: one good test action makes it usable.
        h.on_ping(true, secs(t0, 70), &c);
        assert_eq!(h.state(), Unhealthy);
        assert_eq!(h.results().count(), 0);
        h.on_result(InvocationResult::Success, secs(t0, 71), &c);
        assert_eq!(h.state(), Healthy);
    }
}
