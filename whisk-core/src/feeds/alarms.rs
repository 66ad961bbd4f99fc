//! The alarms sources, shaped like OpenWhisk's `/whisk.system/alarms` package: `alarm` (a cron
//! schedule), `interval` (every N minutes) and `once` (at one date).
//!
//! Each fires its trigger with `trigger_payload` (an object) at each scheduled time. Times are
//! UTC. Before firing, the source saves the scheduled time as the registration's cursor, so a
//! restart resumes after it: a scheduled time fires at most once, and times that passed while
//! the platform was down are skipped (as OpenWhisk's alarm service does).

use super::{Clock, EventSource, FeedHandle, FeedParameter, SourceError};
use async_trait::async_trait;
use chrono::{DateTime, NaiveDateTime, Utc};
use croner::parser::{CronParser, Seconds};
use croner::Cron;
use serde_json::{json, Map, Value};
use std::sync::Arc;

/// The package of the alarms feeds.
pub const PACKAGE: &str = "alarms";

/// Which alarm feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlarmKind {
    /// `alarm`: a cron schedule (5 fields, or 6 with seconds first).
    Cron,
    /// `interval`: every `minutes` minutes.
    Interval,
    /// `once`: at `date`.
    Once,
}

/// One of the alarm feeds.
pub struct Alarms {
    kind: AlarmKind,
    clock: Arc<dyn Clock>,
}

const PAYLOAD: FeedParameter = FeedParameter {
    name: "trigger_payload",
    description: "The parameters (a JSON object) the trigger is fired with",
    required: false,
};
const START: FeedParameter = FeedParameter {
    name: "startDate",
    description: "No fire before this date (ISO 8601 or ms since the epoch)",
    required: false,
};
const STOP: FeedParameter = FeedParameter {
    name: "stopDate",
    description: "No fire after this date (ISO 8601 or ms since the epoch)",
    required: false,
};
const CRON_PARAMS: [FeedParameter; 4] = [
    FeedParameter {
        name: "cron",
        description: "A cron schedule in UTC: 5 fields, or 6 with seconds first",
        required: true,
    },
    PAYLOAD,
    START,
    STOP,
];
const INTERVAL_PARAMS: [FeedParameter; 4] = [
    FeedParameter {
        name: "minutes",
        description: "Minutes between fires (a positive integer)",
        required: true,
    },
    PAYLOAD,
    START,
    STOP,
];
const ONCE_PARAMS: [FeedParameter; 2] = [
    FeedParameter {
        name: "date",
        description: "When to fire (ISO 8601 or ms since the epoch), in the future",
        required: true,
    },
    PAYLOAD,
];

impl Alarms {
    /// The feed of `kind`, scheduling by `clock`.
    pub fn new(kind: AlarmKind, clock: Arc<dyn Clock>) -> Self {
        Self { kind, clock }
    }

    /// The three alarm feeds.
    pub fn all(clock: Arc<dyn Clock>) -> Vec<Arc<dyn EventSource>> {
        [AlarmKind::Cron, AlarmKind::Interval, AlarmKind::Once]
            .into_iter()
            .map(|k| Arc::new(Self::new(k, clock.clone())) as Arc<dyn EventSource>)
            .collect()
    }
}

/// A validated alarm configuration.
#[derive(Debug, Clone)]
struct Schedule {
    kind: AlarmKind,
    cron: Option<Cron>,
    period_ms: u64,
    date: Option<u64>,
    start: Option<u64>,
    stop: Option<u64>,
}

impl Schedule {
    fn from_config(kind: AlarmKind, config: &Value) -> Result<Self, String> {
        let ms = |k: &str| config.get(k).and_then(Value::as_u64);
        Ok(Self {
            kind,
            cron: match config.get("cron").and_then(Value::as_str) {
                Some(c) => Some(parse_cron(c)?),
                None => None,
            },
            period_ms: ms("minutes").unwrap_or(0) * 60_000,
            date: ms("date"),
            start: ms("startDate"),
            stop: ms("stopDate"),
        })
    }

    /// The first scheduled time strictly after `after`; `anchor` is when the registration
    /// was created (the origin of intervals without a start date).
    fn next(&self, after: u64, anchor: u64) -> Option<u64> {
        let next = match self.kind {
            AlarmKind::Once => self.date.filter(|d| *d > after)?,
            AlarmKind::Interval => {
                let period = self.period_ms.max(1);
                // Without a start date the first fire is one period after creation.
                let origin = self.start.unwrap_or(anchor + period);
                if after < origin {
                    origin
                } else {
                    origin + ((after - origin) / period + 1) * period
                }
            }
            AlarmKind::Cron => {
                let cron = self.cron.as_ref()?;
                let from = after.max(self.start.map_or(0, |s| s.saturating_sub(1)));
                let t = DateTime::<Utc>::from_timestamp_millis(from as i64)?;
                let next = cron.find_next_occurrence(&t, false).ok()?;
                u64::try_from(next.timestamp_millis()).ok()?
            }
        };
        match self.stop {
            Some(stop) if next > stop => None,
            _ => Some(next),
        }
    }
}

fn parse_cron(pattern: &str) -> Result<Cron, String> {
    CronParser::builder()
        .seconds(Seconds::Optional)
        .build()
        .parse(pattern)
        .map_err(|e| format!("cron pattern '{pattern}' is not valid: {e}"))
}

/// A date parameter: ms since the epoch, or an ISO 8601 / RFC 3339 time (UTC when it has no
/// offset).
fn parse_date(name: &str, v: &Value) -> Result<u64, String> {
    let bad = || format!("{name} is not a valid date: {v}");
    match v {
        Value::Number(n) => n.as_u64().ok_or_else(bad),
        Value::String(s) => {
            if let Ok(t) = DateTime::parse_from_rfc3339(s) {
                return u64::try_from(t.timestamp_millis()).map_err(|_| bad());
            }
            [
                "%Y-%m-%dT%H:%M:%S%.f",
                "%Y-%m-%dT%H:%M:%S",
                "%Y-%m-%dT%H:%M",
            ]
            .iter()
            .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
            .and_then(|t| u64::try_from(t.and_utc().timestamp_millis()).ok())
            .or_else(|| s.parse::<u64>().ok())
            .ok_or_else(bad)
        }
        _ => Err(bad()),
    }
}

/// `trigger_payload` as an object (a JSON string holding an object is accepted too).
fn parse_payload(v: Option<&Value>) -> Result<Map<String, Value>, String> {
    let bad = || "trigger_payload must be a JSON object".to_string();
    match v {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(m)) => Ok(m.clone()),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(Map::new()),
        Some(Value::String(s)) => match serde_json::from_str(s) {
            Ok(Value::Object(m)) => Ok(m),
            _ => Err(bad()),
        },
        Some(_) => Err(bad()),
    }
}

#[async_trait]
impl EventSource for Alarms {
    fn package(&self) -> &str {
        PACKAGE
    }

    fn name(&self) -> &str {
        match self.kind {
            AlarmKind::Cron => "alarm",
            AlarmKind::Interval => "interval",
            AlarmKind::Once => "once",
        }
    }

    fn description(&self) -> &str {
        match self.kind {
            AlarmKind::Cron => "Fire a trigger on a cron schedule",
            AlarmKind::Interval => "Fire a trigger every N minutes",
            AlarmKind::Once => "Fire a trigger once, at a date",
        }
    }

    fn parameters(&self) -> &[FeedParameter] {
        match self.kind {
            AlarmKind::Cron => &CRON_PARAMS,
            AlarmKind::Interval => &INTERVAL_PARAMS,
            AlarmKind::Once => &ONCE_PARAMS,
        }
    }

    async fn validate(&self, params: &Map<String, Value>) -> Result<Value, String> {
        let now = self.clock.now_ms();
        let mut config = Map::new();
        config.insert(
            "payload".into(),
            Value::Object(parse_payload(params.get("trigger_payload"))?),
        );
        let required = |k: &str| {
            params
                .get(k)
                .filter(|v| !v.is_null())
                .ok_or_else(|| format!("The parameter '{k}' is required."))
        };
        match self.kind {
            AlarmKind::Cron => {
                let cron = required("cron")?
                    .as_str()
                    .ok_or("cron must be a string")?
                    .trim()
                    .to_string();
                parse_cron(&cron)?;
                config.insert("cron".into(), json!(cron));
            }
            AlarmKind::Interval => {
                let minutes = required("minutes")?;
                let m = minutes
                    .as_u64()
                    .or_else(|| minutes.as_str().and_then(|s| s.trim().parse().ok()))
                    .filter(|m| *m > 0)
                    .ok_or_else(|| format!("minutes must be a positive integer, not {minutes}"))?;
                config.insert("minutes".into(), json!(m));
            }
            AlarmKind::Once => {
                let date = parse_date("date", required("date")?)?;
                if date <= now {
                    return Err(format!(
                        "date must be in the future: {}",
                        super::registration::iso8601(date)
                    ));
                }
                config.insert("date".into(), json!(date));
            }
        }
        if self.kind != AlarmKind::Once {
            for k in ["startDate", "stopDate"] {
                if let Some(v) = params.get(k).filter(|v| !v.is_null()) {
                    config.insert(k.into(), json!(parse_date(k, v)?));
                }
            }
            let (start, stop) = (config.get("startDate"), config.get("stopDate"));
            if let (Some(a), Some(b)) =
                (start.and_then(Value::as_u64), stop.and_then(Value::as_u64))
            {
                if b <= a {
                    return Err("stopDate must be later than startDate".into());
                }
            }
            if stop.and_then(Value::as_u64).is_some_and(|s| s <= now) {
                return Err("stopDate must be in the future".into());
            }
        }
        Ok(Value::Object(config))
    }

    async fn run(&self, feed: FeedHandle) -> Result<(), SourceError> {
        let schedule =
            Schedule::from_config(self.kind, feed.config()).map_err(SourceError::Failed)?;
        let payload = feed
            .config()
            .get("payload")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let mut last = feed
            .cursor()
            .and_then(Value::as_u64)
            .unwrap_or_else(|| feed.created());
        loop {
            let after = last.max(self.clock.now_ms());
            let Some(at) = schedule.next(after, feed.created()) else {
                return Ok(());
            };
            tracing::debug!(trigger = %feed.trigger(), at, last, now = self.clock.now_ms(), "next alarm");
            self.clock.sleep_until(at).await;
            // Saved first: after a restart this time is behind the cursor and never fires again.
            feed.save_cursor(json!(at)).await?;
            feed.fire(payload.clone()).await?;
            last = at;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feeds::ManualClock;

    const T0: u64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z

    fn alarm(kind: AlarmKind) -> Alarms {
        Alarms::new(kind, Arc::new(ManualClock::new(T0)))
    }

    async fn schedule(kind: AlarmKind, params: Value) -> Schedule {
        let config = alarm(kind)
            .validate(params.as_object().unwrap())
            .await
            .expect("valid");
        Schedule::from_config(kind, &config).unwrap()
    }

    #[tokio::test]
    async fn cron_schedules_follow_the_pattern_with_or_without_seconds() {
        let s = schedule(AlarmKind::Cron, json!({"cron": "*/5 * * * *"})).await;
        assert_eq!(s.next(T0, T0), Some(T0 + 5 * 60_000));
        assert_eq!(s.next(T0 + 5 * 60_000, T0), Some(T0 + 10 * 60_000));
        let s = schedule(AlarmKind::Cron, json!({"cron": "*/10 * * * * *"})).await;
        assert_eq!(s.next(T0, T0), Some(T0 + 10_000));
    }

    #[tokio::test]
    async fn start_and_stop_dates_bound_the_schedule() {
        let s = schedule(
            AlarmKind::Cron,
            json!({"cron": "* * * * *", "startDate": "2026-01-01T01:00:00Z", "stopDate": T0 + 3_660_000}),
        )
        .await;
        assert_eq!(
            s.next(T0, T0),
            Some(T0 + 3_600_000),
            "nothing before the start"
        );
        assert_eq!(s.next(T0 + 3_600_000, T0), Some(T0 + 3_660_000));
        assert_eq!(s.next(T0 + 3_660_000, T0), None, "nothing after the stop");
    }

    #[tokio::test]
    async fn intervals_start_one_period_after_creation_or_at_the_start_date() {
        let s = schedule(AlarmKind::Interval, json!({"minutes": 2})).await;
        assert_eq!(s.next(T0, T0), Some(T0 + 120_000));
        assert_eq!(s.next(T0 + 130_000, T0), Some(T0 + 240_000));
        let s = schedule(
            AlarmKind::Interval,
            json!({"minutes": "3", "startDate": T0 + 1000}),
        )
        .await;
        assert_eq!(s.next(T0, T0), Some(T0 + 1000));
        assert_eq!(s.next(T0 + 1000, T0), Some(T0 + 181_000));
    }

    #[tokio::test]
    async fn once_fires_at_its_date_only() {
        let s = schedule(AlarmKind::Once, json!({"date": "2026-01-01T00:10:00.000Z"})).await;
        assert_eq!(s.next(T0, T0), Some(T0 + 600_000));
        assert_eq!(s.next(T0 + 600_000, T0), None);
    }

    #[tokio::test]
    async fn bad_parameters_are_refused_with_a_clear_message() {
        let refused = |kind, params: Value| async move {
            alarm(kind)
                .validate(params.as_object().unwrap())
                .await
                .expect_err("refused")
        };
        let e = refused(AlarmKind::Cron, json!({"cron": "61 * * * *"})).await;
        assert!(
            e.starts_with("cron pattern '61 * * * *' is not valid"),
            "{e}"
        );
        assert_eq!(
            refused(AlarmKind::Cron, json!({})).await,
            "The parameter 'cron' is required."
        );
        let e = refused(
            AlarmKind::Cron,
            json!({"cron": "* * * * *", "trigger_payload": 3}),
        )
        .await;
        assert_eq!(e, "trigger_payload must be a JSON object");
        let e = refused(AlarmKind::Interval, json!({"minutes": 0})).await;
        assert!(e.starts_with("minutes must be a positive integer"), "{e}");
        let e = refused(AlarmKind::Once, json!({"date": "2025-12-31T00:00:00Z"})).await;
        assert!(e.starts_with("date must be in the future"), "{e}");
        let e = refused(AlarmKind::Once, json!({"date": "tomorrow"})).await;
        assert_eq!(e, "date is not a valid date: \"tomorrow\"");
        let e = refused(
            AlarmKind::Cron,
            json!({"cron": "* * * * *", "startDate": T0 + 10, "stopDate": T0 + 5}),
        )
        .await;
        assert_eq!(e, "stopDate must be later than startDate");
    }

    #[test]
    fn payloads_may_be_objects_or_json_text() {
        assert_eq!(parse_payload(Some(&json!("{\"a\":1}"))).unwrap()["a"], 1);
        assert!(parse_payload(None).unwrap().is_empty());
        assert!(parse_payload(Some(&json!("[1]"))).is_err());
    }
}
