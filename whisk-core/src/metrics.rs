//! Prometheus metrics of the controller and the invoker, in the spirit of OpenWhisk's
//! (Kamon) metrics, exposed in the Prometheus text format (version 0.0.4) by the
//! `prometheus-client` crate.
//!
//! One [`Metrics`] is one registry. The standalone platform shares one between its controller
//! and its invoker; the cluster binaries each have their own. The engines are handed theirs in
//! their configuration ([`ControllerConfig::metrics`](crate::controller::ControllerConfig),
//! [`InvokerConfig::metrics`](crate::invoker::InvokerConfig)); the REST API serves it at
//! `GET /metrics`.
//!
//! | name | type | labels | meaning |
//! |---|---|---|---|
//! | `whisk_activations_total` | counter | `kind`, `status` | activations run by the invoker, by runtime kind and outcome (`success`, `application_error`, `developer_error`, `whisk_error`) |
//! | `whisk_activation_duration_seconds` | histogram | `kind` | activation duration (`end - start`: container creation and `/init`, if any, plus the run) |
//! | `whisk_activation_init_seconds` | histogram | `kind` | `/init` duration of cold and prewarm starts |
//! | `whisk_activation_wait_seconds` | histogram | — | time from the request's arrival at the controller (transaction start) to the start of the activation |
//! | `whisk_container_starts_total` | counter | `invoker`, `start` | runs by how they got their container: `cold`, `warm`, `prewarm` |
//! | `whisk_container_failures_total` | counter | `invoker` | containers destroyed after a failed init or run |
//! | `whisk_containers` | gauge | `invoker`, `state` | containers by state: `prewarmed`, `busy`, `idle`, `paused` |
//! | `whisk_pool_waiting_runs` | gauge | `invoker` | runs waiting for pool memory |
//! | `whisk_pool_memory_used_megabytes` | gauge | `invoker` | memory booked by containers and stem cells |
//! | `whisk_pool_memory_total_megabytes` | gauge | `invoker` | the pool's user memory |
//! | `whisk_runtime_tasks` | gauge | — | live tasks of the process's Tokio runtime (read at scrape time) |
//! | `whisk_throttled_requests_total` | counter | `reason` | requests refused with 429: `invocations_per_minute`, `concurrent_invocations`, `fires_per_minute` |
//!
//! The pool series are read from [`ContainerPool::metrics`] at scrape time, not counted twice.

use crate::entity::{StatusCode, WhiskActivation};
use crate::invoker::pool::{ContainerPool, PoolMetrics};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::TypedMetric;
use prometheus_client::registry::Registry;
use std::sync::{Arc, Mutex, Weak};

/// The `Content-Type` of [`Metrics::encode`]'s text.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Throttle reason: too many invocations in the current minute.
pub const THROTTLE_INVOCATIONS_PER_MINUTE: &str = "invocations_per_minute";
/// Throttle reason: too many activations in flight.
pub const THROTTLE_CONCURRENT_INVOCATIONS: &str = "concurrent_invocations";
/// Throttle reason: too many trigger fires in the current minute.
pub const THROTTLE_FIRES_PER_MINUTE: &str = "fires_per_minute";

/// Bucket bounds (seconds) of the duration, init and wait histograms: 5 ms to the 5-minute
/// maximum action time limit.
const BUCKETS: [f64; 16] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
];

type KindStatus = [(&'static str, String); 2];
type Kind = [(&'static str, String); 1];
type Reason = [(&'static str, &'static str); 1];
type Topic = [(&'static str, String); 1];
/// A label value and how to read its series from a pool snapshot.
type Field = (&'static str, fn(&PoolMetrics) -> u64);
type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn histogram() -> Histogram {
    Histogram::new(BUCKETS)
}

/// A metrics registry: the platform's counters, histograms and gauges.
pub struct Metrics {
    registry: Registry,
    activations: Family<KindStatus, Counter>,
    duration: HistogramFamily<Kind>,
    init: HistogramFamily<Kind>,
    wait: Histogram,
    throttled: Family<Reason, Counter>,
    bus_lag: Family<Topic, Gauge>,
    pools: Arc<Pools>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry with every metric registered (and none observed yet).
    pub fn new() -> Self {
        let activations = Family::<KindStatus, Counter>::default();
        let duration = HistogramFamily::<Kind>::new_with_constructor(histogram);
        let init = HistogramFamily::<Kind>::new_with_constructor(histogram);
        let wait = histogram();
        let throttled = Family::<Reason, Counter>::default();
        let bus_lag = Family::<Topic, Gauge>::default();
        let pools = Arc::new(Pools::default());
        let mut registry = Registry::default();
        registry.register(
            "whisk_activations",
            "Activations run by the invoker, by runtime kind and status",
            activations.clone(),
        );
        registry.register(
            "whisk_activation_duration_seconds",
            "Activation duration (container start and init, if any, plus run), by runtime kind",
            duration.clone(),
        );
        registry.register(
            "whisk_activation_init_seconds",
            "Duration of /init on cold and prewarm starts, by runtime kind",
            init.clone(),
        );
        registry.register(
            "whisk_activation_wait_seconds",
            "Time from the request's arrival at the controller to the activation's start",
            wait.clone(),
        );
        registry.register(
            "whisk_throttled_requests",
            "Requests refused with 429 by a per-namespace throttle, by reason",
            throttled.clone(),
        );
        registry.register(
            "whisk_bus_lag",
            "Messages on a topic this process consumes that it has not received yet, by topic",
            bus_lag.clone(),
        );
        registry.register_collector(Box::new(pools.clone()));
        registry.register_collector(Box::new(RuntimeTasks));
        Self {
            bus_lag,
            registry,
            activations,
            duration,
            init,
            wait,
            throttled,
            pools,
        }
    }

    /// Counts a finished activation record by kind (its `kind` annotation) and status and
    /// observes its duration, init time and wait time (`initTime`, `waitTime` annotations).
    pub fn observe_activation(&self, a: &WhiskActivation) {
        let annotation = |k: &str| a.annotations.get(k);
        let kind = annotation("kind")
            .and_then(|v| v.as_str())
            .unwrap_or("unknown")
            .to_string();
        let status = match a.response.status {
            StatusCode::Success => "success",
            StatusCode::ApplicationError => "application_error",
            StatusCode::DeveloperError => "developer_error",
            StatusCode::WhiskError => "whisk_error",
        };
        self.activations
            .get_or_create(&[("kind", kind.clone()), ("status", status.to_string())])
            .inc();
        let seconds = |ms: u64| ms as f64 / 1000.0;
        let kind = [("kind", kind)];
        self.duration
            .get_or_create(&kind)
            .observe(seconds(a.end.saturating_sub(a.start)));
        if let Some(init) = annotation("initTime").and_then(|v| v.as_u64()) {
            self.init.get_or_create(&kind).observe(seconds(init));
        }
        if let Some(wait) = annotation("waitTime").and_then(|v| v.as_u64()) {
            self.wait.observe(seconds(wait));
        }
    }

    /// Counts a request refused by a throttle; `reason` is one of the `THROTTLE_*` constants.
    pub fn throttled(&self, reason: &'static str) {
        self.throttled.get_or_create(&[("reason", reason)]).inc();
    }

    /// Records the lag of this process's consumer of `topic` (see
    /// [`Consumer::lag`](crate::bus::Consumer::lag)); nothing when the bus cannot tell.
    pub fn bus_lag(&self, topic: &str, lag: Option<u64>) {
        if let Some(lag) = lag {
            self.bus_lag
                .get_or_create(&[("topic", topic.to_string())])
                .set(i64::try_from(lag).unwrap_or(i64::MAX));
        }
    }

    /// Exposes `pool`'s counters and memory (read at scrape time, labelled
    /// `invoker="invoker{id}"`). The registry holds it weakly: a dropped pool disappears.
    pub fn register_pool(&self, pool: &Arc<ContainerPool>) {
        self.pools.0.lock().unwrap().push(Arc::downgrade(pool));
    }

    /// The registry in the Prometheus text format (version 0.0.4), see [`CONTENT_TYPE`].
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

/// The live tasks of the Tokio runtime that serves the scrape (`whisk_runtime_tasks`; absent
/// when encoded outside a runtime): a leak of spawned tasks shows as steady growth.
#[derive(Debug)]
struct RuntimeTasks;

impl Collector for RuntimeTasks {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return Ok(());
        };
        let tasks = runtime.metrics().num_alive_tasks();
        let metric = encoder.encode_descriptor(
            "whisk_runtime_tasks",
            "Live tasks of the process's Tokio runtime",
            None,
            ConstGauge::<i64>::TYPE,
        )?;
        ConstGauge::new(i64::try_from(tasks).unwrap_or(i64::MAX)).encode(metric)
    }
}

/// The container pools whose snapshots are exposed.
#[derive(Default)]
struct Pools(Mutex<Vec<Weak<ContainerPool>>>);

impl std::fmt::Debug for Pools {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pools").finish_non_exhaustive()
    }
}

/// `series` as counters.
fn counters<L>(series: Vec<(L, u64)>) -> Vec<(L, ConstCounter)> {
    series
        .into_iter()
        .map(|(l, v)| (l, ConstCounter::new(v)))
        .collect()
}

/// `series` as gauges.
fn gauges<L>(series: Vec<(L, u64)>) -> Vec<(L, ConstGauge)> {
    series
        .into_iter()
        .map(|(l, v)| (l, ConstGauge::new(i64::try_from(v).unwrap_or(i64::MAX))))
        .collect()
}

/// Writes one metric family: `name` with one series per `(labels, value)`.
fn family<M: EncodeMetric + TypedMetric, L: prometheus_client::encoding::EncodeLabelSet>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: &[(L, M)],
) -> Result<(), std::fmt::Error> {
    let mut metric = encoder.encode_descriptor(name, help, None, M::TYPE)?;
    for (labels, value) in series {
        value.encode(metric.encode_family(labels)?)?;
    }
    Ok(())
}

impl Collector for Pools {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let pools: Vec<_> = {
            let mut list = self.0.lock().unwrap();
            list.retain(|p| p.strong_count() > 0);
            list.iter().filter_map(Weak::upgrade).collect()
        };
        if pools.is_empty() {
            return Ok(());
        }
        let snapshots: Vec<(String, PoolMetrics)> = pools
            .iter()
            .map(|p| (format!("invoker{}", p.config().invoker_id), p.metrics()))
            .collect();
        let per_pool = |f: &dyn Fn(&PoolMetrics) -> u64| {
            snapshots
                .iter()
                .map(|(inv, m)| ([("invoker", inv.clone())], f(m)))
                .collect::<Vec<_>>()
        };
        let by = |label: &'static str, values: &[Field]| {
            snapshots
                .iter()
                .flat_map(|(inv, m)| {
                    values.iter().map(move |(v, f)| {
                        ([("invoker", inv.clone()), (label, v.to_string())], f(m))
                    })
                })
                .collect::<Vec<_>>()
        };
        family(
            &mut encoder,
            "whisk_container_starts",
            "Runs by how they got their container (cold, warm, prewarm)",
            &counters(by(
                "start",
                &[
                    ("cold", |m| m.cold_starts),
                    ("warm", |m| m.warm_starts),
                    ("prewarm", |m| m.prewarm_starts),
                ],
            )),
        )?;
        family(
            &mut encoder,
            "whisk_container_failures",
            "Containers destroyed after a failed init or run",
            &counters(per_pool(&|m| m.failures)),
        )?;
        family(
            &mut encoder,
            "whisk_containers",
            "Containers of the pool by state (prewarmed, busy, idle, paused)",
            &gauges(by(
                "state",
                &[
                    ("prewarmed", |m| m.prewarmed as u64),
                    ("busy", |m| m.busy as u64),
                    ("idle", |m| m.idle as u64),
                    ("paused", |m| m.paused as u64),
                ],
            )),
        )?;
        family(
            &mut encoder,
            "whisk_pool_waiting_runs",
            "Runs waiting for pool memory",
            &gauges(per_pool(&|m| m.waiting as u64)),
        )?;
        family(
            &mut encoder,
            "whisk_pool_memory_used_megabytes",
            "Pool memory booked by containers and stem cells, in MB",
            &gauges(per_pool(&|m| m.used_memory_mb)),
        )?;
        family(
            &mut encoder,
            "whisk_pool_memory_total_megabytes",
            "Pool memory for user containers, in MB",
            &gauges(per_pool(&|m| m.user_memory_mb)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entity::{ActivationId, ActivationResponse, Parameters, SemVer};
    use serde_json::json;

    fn activation(status: StatusCode, start: u64, end: u64) -> WhiskActivation {
        WhiskActivation {
            namespace: "guest".into(),
            name: "a".into(),
            subject: "guest".into(),
            activation_id: ActivationId::generate(),
            start,
            end,
            cause: None,
            response: ActivationResponse::error(status, "x"),
            logs: vec![],
            version: SemVer::INITIAL,
            publish: false,
            annotations: Parameters::new()
                .with("kind", json!("nodejs:20"))
                .with("waitTime", json!(20))
                .with("initTime", json!(30)),
            duration: Some(end - start),
        }
    }

    #[test]
    fn activations_and_throttles_are_exposed() {
        let m = Metrics::new();
        m.observe_activation(&activation(StatusCode::ApplicationError, 1000, 1200));
        m.observe_activation(&activation(StatusCode::ApplicationError, 1000, 1100));
        m.throttled(THROTTLE_CONCURRENT_INVOCATIONS);
        let text = m.encode();
        for line in [
            "# TYPE whisk_activations_total counter",
            r#"whisk_activations_total{kind="nodejs:20",status="application_error"} 2"#,
            r#"whisk_activation_duration_seconds_count{kind="nodejs:20"} 2"#,
            r#"whisk_activation_duration_seconds_bucket{kind="nodejs:20",le="0.25"} 2"#,
            r#"whisk_activation_init_seconds_count{kind="nodejs:20"} 2"#,
            "whisk_activation_wait_seconds_count 2",
            r#"whisk_throttled_requests_total{reason="concurrent_invocations"} 1"#,
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
        assert!(
            !text.contains("whisk_container_starts"),
            "no pool, no pool series"
        );
        assert!(
            !text.contains("whisk_runtime_tasks"),
            "no runtime, no task count"
        );
    }

    /// The value of the unlabelled series `name` in `text`.
    fn value(text: &str, name: &str) -> i64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in\n{text}"))
    }

    #[tokio::test(flavor = "current_thread")]
    async fn the_runtime_tasks_are_counted_at_scrape_time() {
        let m = Metrics::new();
        let before = value(&m.encode(), "whisk_runtime_tasks");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let parked: Vec<_> = std::iter::once(tokio::spawn(async move {
            let _ = stopped.await;
        }))
        .chain((0..9).map(|_| tokio::spawn(std::future::pending::<()>())))
        .collect();
        assert_eq!(value(&m.encode(), "whisk_runtime_tasks"), before + 10);
        let _ = stop.send(());
        for t in &parked[1..] {
            t.abort();
        }
        for t in parked {
            let _ = t.await;
        }
        assert_eq!(value(&m.encode(), "whisk_runtime_tasks"), before);
    }
}
