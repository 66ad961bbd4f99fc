//! Per-namespace throttles: invocations per minute, concurrent invocations, trigger fires per
//! minute, with OpenWhisk's 429 messages. Minute counters follow the wall-clock minute.

use crate::message::now_ms;
use crate::metrics::{self, Metrics};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The throttles of a namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NamespaceLimits {
    /// Action invocations per minute (OpenWhisk's default 60).
    pub invocations_per_minute: u64,
    /// Activations in flight at once (default 30).
    pub concurrent_invocations: u64,
    /// Trigger fires per minute (default 60).
    pub fires_per_minute: u64,
}

impl Default for NamespaceLimits {
    fn default() -> Self {
        Self {
            invocations_per_minute: 60,
            concurrent_invocations: 30,
            fires_per_minute: 60,
        }
    }
}

impl NamespaceLimits {
    /// These limits with the fields a namespace's own limits (`Identity::limits`) set.
    pub fn overridden_by(&self, user: &Value) -> Self {
        let get = |k: &str, d: u64| user.get(k).and_then(Value::as_u64).unwrap_or(d);
        Self {
            invocations_per_minute: get("invocationsPerMinute", self.invocations_per_minute),
            concurrent_invocations: get("concurrentInvocations", self.concurrent_invocations),
            fires_per_minute: get("firesPerMinute", self.fires_per_minute),
        }
    }
}

/// A refused request; `Display` is OpenWhisk's 429 message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ThrottleError {
    /// Too many invocations or fires this minute.
    #[error("Too many requests in the last minute (count: {count}, allowed: {allowed}).")]
    Rate {
        /// Requests this minute, this one included.
        count: u64,
        /// The limit.
        allowed: u64,
    },
    /// Too many activations in flight.
    #[error("Too many concurrent requests in flight (count: {count}, allowed: {allowed}).")]
    Concurrency {
        /// Activations in flight.
        count: u64,
        /// The limit.
        allowed: u64,
    },
}

impl ThrottleError {
    /// OpenWhisk's name of the limit that refused the request, the `metricName` of its user
    /// event: `TimedRateLimit` or `ConcurrentRateLimit`.
    pub fn limit_name(&self) -> &'static str {
        match self {
            Self::Rate { .. } => crate::message::METRIC_TIMED_RATE_LIMIT,
            Self::Concurrency { .. } => crate::message::METRIC_CONCURRENT_RATE_LIMIT,
        }
    }
}

/// Minute counters per namespace.
#[derive(Default)]
pub(crate) struct Throttles {
    invokes: Mutex<HashMap<String, (u64, u64)>>,
    fires: Mutex<HashMap<String, (u64, u64)>>,
    /// Where refusals are counted.
    metrics: Arc<Metrics>,
}

/// Counts one request of `key` in the current minute; refuses when over `allowed`.
fn count(
    map: &Mutex<HashMap<String, (u64, u64)>>,
    key: &str,
    allowed: u64,
) -> Result<(), ThrottleError> {
    let minute = now_ms() / 60_000;
    let mut m = map.lock().unwrap();
    let entry = m.entry(key.to_string()).or_insert((minute, 0));
    if entry.0 != minute {
        *entry = (minute, 0);
    }
    entry.1 += 1;
    if entry.1 > allowed {
        return Err(ThrottleError::Rate {
            count: entry.1,
            allowed,
        });
    }
    Ok(())
}

impl Throttles {
    /// Throttles counting their refusals in `metrics`.
    pub(crate) fn new(metrics: Arc<Metrics>) -> Self {
        Self {
            metrics,
            ..Self::default()
        }
    }

    /// Checks an invocation by namespace `key` with `in_flight` activations running.
    pub(crate) fn check_invoke(
        &self,
        key: &str,
        limits: &NamespaceLimits,
        in_flight: u64,
    ) -> Result<(), ThrottleError> {
        count(&self.invokes, key, limits.invocations_per_minute).inspect_err(|_| {
            self.metrics
                .throttled(metrics::THROTTLE_INVOCATIONS_PER_MINUTE)
        })?;
        if in_flight >= limits.concurrent_invocations {
            self.metrics
                .throttled(metrics::THROTTLE_CONCURRENT_INVOCATIONS);
            return Err(ThrottleError::Concurrency {
                count: in_flight,
                allowed: limits.concurrent_invocations,
            });
        }
        Ok(())
    }

    /// Checks a trigger fire by namespace `key`.
    pub(crate) fn check_fire(
        &self,
        key: &str,
        limits: &NamespaceLimits,
    ) -> Result<(), ThrottleError> {
        count(&self.fires, key, limits.fires_per_minute)
            .inspect_err(|_| self.metrics.throttled(metrics::THROTTLE_FIRES_PER_MINUTE))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rate_and_concurrency() {
        let t = Throttles::default();
        let l = NamespaceLimits {
            invocations_per_minute: 2,
            concurrent_invocations: 1,
            fires_per_minute: 1,
        };
        assert!(t.check_invoke("a", &l, 0).is_ok());
        assert_eq!(
            t.check_invoke("a", &l, 1).unwrap_err().to_string(),
            "Too many concurrent requests in flight (count: 1, allowed: 1)."
        );
        assert_eq!(
            t.check_invoke("a", &l, 0).unwrap_err().to_string(),
            "Too many requests in the last minute (count: 3, allowed: 2)."
        );
        assert!(
            t.check_invoke("b", &l, 0).is_ok(),
            "namespaces are counted apart"
        );
        assert!(t.check_fire("a", &l).is_ok());
        let refused = t.check_fire("a", &l).unwrap_err();
        assert_eq!(refused.limit_name(), "TimedRateLimit");
        assert_eq!(
            t.check_invoke("c", &l, 1).unwrap_err().limit_name(),
            "ConcurrentRateLimit"
        );
    }

    #[test]
    fn namespace_overrides() {
        let l = NamespaceLimits::default().overridden_by(&json!({"invocationsPerMinute": 5}));
        assert_eq!(
            (
                l.invocations_per_minute,
                l.concurrent_invocations,
                l.fires_per_minute
            ),
            (5, 30, 60)
        );
    }
}
