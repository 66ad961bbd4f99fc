//! Action limits (`timeout`, `memory`, `logs`, `concurrency`) with OpenWhisk's ranges and defaults.

use serde::{Deserialize, Serialize};

/// A `min..=max` range with a default, for one limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LimitRange {
    /// Smallest allowed value.
    pub min: u64,
    /// Largest allowed value.
    pub max: u64,
    /// Value used when a new action does not set it.
    pub default: u64,
}

/// The system-wide limit ranges (OpenWhisk's `whisk.time-limit`, `whisk.memory`, ...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SystemLimits {
    /// Action timeout in milliseconds: 100..=300000, default 60000.
    pub timeout_ms: LimitRange,
    /// Action memory in MB: 128..=512, default 256.
    pub memory_mb: LimitRange,
    /// Log size in MB: 0..=10, default 10.
    pub logs_mb: LimitRange,
    /// Intra-container concurrency: 1..=1, default 1.
    pub concurrency: LimitRange,
    /// Largest invoke payload in bytes (1 MB).
    pub max_payload_bytes: u64,
    /// Largest `parameters` or `annotations` in bytes (1 MB).
    pub max_parameter_bytes: u64,
    /// Largest `exec` in bytes (48 MB).
    pub max_exec_bytes: u64,
    /// Results larger than this become the truncation application error (1 MB).
    pub result_truncation_bytes: u64,
    /// Longest blocking wait in milliseconds (60 s).
    pub max_blocking_wait_ms: u64,
}

impl Default for SystemLimits {
    fn default() -> Self {
        const MB: u64 = 1024 * 1024;
        Self {
            timeout_ms: LimitRange {
                min: 100,
                max: 300_000,
                default: 60_000,
            },
            memory_mb: LimitRange {
                min: 128,
                max: 512,
                default: 256,
            },
            logs_mb: LimitRange {
                min: 0,
                max: 10,
                default: 10,
            },
            concurrency: LimitRange {
                min: 1,
                max: 1,
                default: 1,
            },
            max_payload_bytes: MB,
            max_parameter_bytes: MB,
            max_exec_bytes: 48 * MB,
            result_truncation_bytes: MB,
            max_blocking_wait_ms: 60_000,
        }
    }
}

/// The limits of a stored action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionLimits {
    /// Milliseconds each of `/init` and `/run` may take.
    pub timeout: u64,
    /// Memory in MB.
    pub memory: u64,
    /// Log size in MB.
    #[serde(default = "default_logs")]
    pub logs: u64,
    /// Activations one container may run at once.
    #[serde(default = "default_concurrency")]
    pub concurrency: u64,
    /// Most containers of this action at once, when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instances: Option<u64>,
}

fn default_logs() -> u64 {
    SystemLimits::default().logs_mb.default
}

fn default_concurrency() -> u64 {
    1
}

impl ActionLimits {
    /// The defaults of `limits`.
    pub fn defaults(limits: &SystemLimits) -> Self {
        Self {
            timeout: limits.timeout_ms.default,
            memory: limits.memory_mb.default,
            logs: limits.logs_mb.default,
            concurrency: limits.concurrency.default,
            instances: None,
        }
    }
}

/// The optional limits of a `PUT` body.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionLimitsPut {
    /// New timeout in ms.
    pub timeout: Option<u64>,
    /// New memory in MB.
    pub memory: Option<u64>,
    /// New log size in MB.
    pub logs: Option<u64>,
    /// New intra-container concurrency.
    pub concurrency: Option<u64>,
    /// New instance limit.
    pub instances: Option<u64>,
}

/// A limit outside its range; `Display` is OpenWhisk's message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    /// Timeout out of range.
    #[error("duration {value} milliseconds {dir} allowed threshold of {bound} milliseconds")]
    Timeout {
        /// Requested value.
        value: u64,
        /// "exceeds" or "below".
        dir: &'static str,
        /// The violated bound.
        bound: u64,
    },
    /// Memory out of range.
    #[error("memory size {value} MB {dir} allowed threshold of {bound} MB")]
    Memory {
        /// Requested value.
        value: u64,
        /// "exceeds" or "below".
        dir: &'static str,
        /// The violated bound.
        bound: u64,
    },
    /// Log size out of range.
    #[error("log size {value} MB {dir} allowed threshold of {bound} MB")]
    Logs {
        /// Requested value.
        value: u64,
        /// "exceeds" or "below".
        dir: &'static str,
        /// The violated bound.
        bound: u64,
    },
    /// Concurrency out of range.
    #[error("concurrency {value} {dir} allowed threshold of {bound}")]
    Concurrency {
        /// Requested value.
        value: u64,
        /// "exceeds" or "below".
        dir: &'static str,
        /// The violated bound.
        bound: u64,
    },
}

/// Checks `value` against `range`, returning `(direction, bound)` on a violation.
fn check(value: u64, range: LimitRange) -> Result<u64, (&'static str, u64)> {
    if value > range.max {
        Err(("exceeds", range.max))
    } else if value < range.min {
        Err(("below", range.min))
    } else {
        Ok(value)
    }
}

impl ActionLimitsPut {
    /// Applies these optional limits over `base`, checking each against `system`.
    pub fn apply(
        &self,
        base: ActionLimits,
        system: &SystemLimits,
    ) -> Result<ActionLimits, LimitError> {
        let mut out = base;
        if let Some(v) = self.timeout {
            out.timeout =
                check(v, system.timeout_ms).map_err(|(dir, bound)| LimitError::Timeout {
                    value: v,
                    dir,
                    bound,
                })?;
        }
        if let Some(v) = self.memory {
            out.memory = check(v, system.memory_mb).map_err(|(dir, bound)| LimitError::Memory {
                value: v,
                dir,
                bound,
            })?;
        }
        if let Some(v) = self.logs {
            out.logs = check(v, system.logs_mb).map_err(|(dir, bound)| LimitError::Logs {
                value: v,
                dir,
                bound,
            })?;
        }
        if let Some(v) = self.concurrency {
            out.concurrency =
                check(v, system.concurrency).map_err(|(dir, bound)| LimitError::Concurrency {
                    value: v,
                    dir,
                    bound,
                })?;
        }
        if self.instances.is_some() {
            out.instances = self.instances;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_ranges() {
        let sys = SystemLimits::default();
        let d = ActionLimits::defaults(&sys);
        assert_eq!(
            serde_json::to_value(d).unwrap(),
            serde_json::json!({"timeout":60000,"memory":256,"logs":10,"concurrency":1})
        );
        let put = ActionLimitsPut {
            memory: Some(1024),
            ..Default::default()
        };
        assert_eq!(
            put.apply(d, &sys).unwrap_err().to_string(),
            "memory size 1024 MB exceeds allowed threshold of 512 MB"
        );
        let put = ActionLimitsPut {
            timeout: Some(50),
            ..Default::default()
        };
        assert_eq!(
            put.apply(d, &sys).unwrap_err().to_string(),
            "duration 50 milliseconds below allowed threshold of 100 milliseconds"
        );
        let put = ActionLimitsPut {
            logs: Some(11),
            ..Default::default()
        };
        assert!(put.apply(d, &sys).is_err());
        let put = ActionLimitsPut {
            concurrency: Some(2),
            ..Default::default()
        };
        assert_eq!(
            put.apply(d, &sys).unwrap_err().to_string(),
            "concurrency 2 exceeds allowed threshold of 1"
        );
        let put = ActionLimitsPut {
            timeout: Some(300_000),
            memory: Some(128),
            logs: Some(0),
            ..Default::default()
        };
        let l = put.apply(d, &sys).unwrap();
        assert_eq!((l.timeout, l.memory, l.logs), (300_000, 128, 0));
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// A range `min..=min+span` with its default inside.
        fn range() -> impl Strategy<Value = LimitRange> {
            (0u64..1000, 0u64..1000).prop_map(|(min, span)| LimitRange {
                min,
                max: min + span,
                default: min + span / 2,
            })
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

            /// Every value in its range is taken as it is and every other one refused with
            /// OpenWhisk's message naming the value, the direction and the bound crossed;
            /// the limits not given keep the base's value.
            #[test]
            fn every_limit_is_checked_against_its_range(
                ranges in [range(), range(), range(), range()],
                values in [prop::option::of(0u64..3000), prop::option::of(0u64..3000),
                           prop::option::of(0u64..3000), prop::option::of(0u64..3000)],
            ) {
                let [timeout_ms, memory_mb, logs_mb, concurrency] = ranges;
                let system = SystemLimits { timeout_ms, memory_mb, logs_mb, concurrency, ..SystemLimits::default() };
                let base = ActionLimits::defaults(&system);
                let put = ActionLimitsPut {
                    timeout: values[0],
                    memory: values[1],
                    logs: values[2],
                    concurrency: values[3],
                    instances: None,
                };
                let units = [("duration", " milliseconds"), ("memory size", " MB"), ("log size", " MB"), ("concurrency", "")];
                let refusal = ranges.iter().zip(values).zip(units).find_map(|((r, v), (what, unit))| {
                    let v = v?;
                    let (dir, bound) = if v > r.max { ("exceeds", r.max) } else if v < r.min { ("below", r.min) } else { return None };
                    Some(format!("{what} {v}{unit} {dir} allowed threshold of {bound}{unit}"))
                });
                match (put.apply(base, &system), refusal) {
                    (Err(e), Some(message)) => prop_assert_eq!(e.to_string(), message),
                    (Ok(l), None) => {
                        let got = [l.timeout, l.memory, l.logs, l.concurrency];
                        let old = [base.timeout, base.memory, base.logs, base.concurrency];
                        for ((g, v), o) in got.into_iter().zip(values).zip(old) {
                            prop_assert_eq!(g, v.unwrap_or(o));
                        }
                    }
                    (got, want) => prop_assert!(false, "got {:?}, want refusal {:?}", got, want),
                }
            }
        }
    }
}
