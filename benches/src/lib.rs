//! Shared pieces of the whisk benchmarks: a closed-loop load driver with latency histograms
//! and the report format that prints each figure beside its floor.
#![warn(missing_docs)]

pub mod standalone;

use bytes::Bytes;
use futures::future::join_all;
use hdrhistogram::Histogram;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;
use whisk_core::bus::{Consumer, MessageBus};
use whisk_core::entity::identity::GUEST_KEY;

/// Latency percentiles and throughput of one load run.
#[derive(Debug, Clone, Copy)]
pub struct Stats {
    /// Median latency in µs.
    pub p50_us: f64,
    /// 95th percentile latency in µs.
    pub p95_us: f64,
    /// 99th percentile latency in µs.
    pub p99_us: f64,
    /// Highest latency in µs.
    pub max_us: f64,
    /// Completed requests per second.
    pub per_sec: f64,
    /// Requests completed.
    pub count: u64,
}

/// Runs `clients` closed-loop clients, each calling `op` back to back, for `total` requests
/// in all (or until `max_time` passes), and returns the latency statistics.
pub async fn closed_loop<F, Fut>(clients: usize, total: u64, max_time: Duration, op: F) -> Stats
where
    F: Fn() -> Fut + Clone,
    Fut: Future<Output = ()>,
{
    let per_client = total.div_ceil(clients as u64);
    let started = Instant::now();
    let runs = (0..clients).map(|_| {
        let op = op.clone();
        async move {
            let mut h = new_histogram();
            for _ in 0..per_client {
                if started.elapsed() > max_time {
                    break;
                }
                let t = Instant::now();
                op().await;
                h.saturating_record(t.elapsed().as_micros().max(1) as u64);
            }
            h
        }
    });
    let hists = join_all(runs).await;
    from_histograms(&hists, started.elapsed())
}

/// A latency histogram in µs, 1 µs to 60 s, 3 significant digits.
/// Latencies above its range (60 s) are recorded as 60 s: a stalled call shows as the
/// maximum instead of ending the run.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds")
}

/// The statistics of the latencies of all `hists` together, over `elapsed`.
fn from_histograms(hists: &[Histogram<u64>], elapsed: Duration) -> Stats {
    let mut all = new_histogram();
    for h in hists {
        all.add(h).expect("same bounds");
    }
    from_histogram(&all, elapsed)
}

/// The statistics of latencies (µs) recorded in `h` over `elapsed`.
pub fn from_histogram(h: &Histogram<u64>, elapsed: Duration) -> Stats {
    Stats {
        p50_us: h.value_at_quantile(0.50) as f64,
        p95_us: h.value_at_quantile(0.95) as f64,
        p99_us: h.value_at_quantile(0.99) as f64,
        max_us: h.max() as f64,
        per_sec: h.len() as f64 / elapsed.as_secs_f64(),
        count: h.len(),
    }
}

/// Calls `op` at a fixed offered `rate` per second for `duration` from `clients` clients
/// that each wait for their call's answer before the next (wrk2's model: constant throughput
/// over a fixed number of connections). The calls are spread evenly over the clients and the
/// time: client `i`'s `k`-th call is due at `(k * clients + i) / rate` seconds. A client that
/// is late calls at once; each latency counts from the call's due time, so a server that falls
/// behind shows in the percentiles (no coordinated omission), while the calls in flight never
/// exceed `clients`. Throughput is completions over the time until the last one.
pub async fn paced_loop<F, Fut>(clients: usize, rate: f64, duration: Duration, op: F) -> Stats
where
    F: Fn() -> Fut + Clone,
    Fut: Future<Output = ()>,
{
    let started = tokio::time::Instant::now();
    let total = (rate * duration.as_secs_f64()).round().max(1.0) as u64;
    let gap = Duration::from_secs_f64(1.0 / rate);
    let runs = (0..clients as u64).map(|i| {
        let op = op.clone();
        async move {
            let mut h = new_histogram();
            for n in (i..total).step_by(clients) {
                let due = started + gap.mul_f64(n as f64);
                tokio::time::sleep_until(due).await;
                op().await;
                h.saturating_record(due.elapsed().as_micros().max(1) as u64);
            }
            h
        }
    });
    let hists = join_all(runs).await;
    from_histograms(&hists, started.elapsed())
}

/// Calls `op` at a fixed offered `rate` per second for `duration` (open loop: a call starts on
/// schedule whether or not earlier ones finished) and returns the latency statistics, each
/// latency counted from the call's scheduled start so a stalled server is not hidden
/// (no coordinated omission). Throughput is completions over the time until the last one.
pub async fn open_loop<F, Fut>(rate: f64, duration: Duration, op: F) -> Stats
where
    F: Fn() -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let hist = Arc::new(std::sync::Mutex::new(new_histogram()));
    let started = Instant::now();
    let total = (rate * duration.as_secs_f64()).round().max(1.0) as u64;
    let gap = Duration::from_secs_f64(1.0 / rate);
    let mut calls = Vec::with_capacity(total as usize);
    for n in 0..total {
        let due = started + gap.mul_f64(n as f64);
        tokio::time::sleep_until(due.into()).await;
        let (call, hist) = (op(), hist.clone());
        calls.push(tokio::spawn(async move {
            call.await;
            let us = due.elapsed().as_micros().max(1) as u64;
            hist.lock().expect("histogram lock").saturating_record(us);
        }));
    }
    for c in calls {
        c.await.expect("call task");
    }
    let elapsed = started.elapsed();
    let h = hist.lock().expect("histogram lock");
    from_histogram(&h, elapsed)
}

/// Median, p99 and rate of individually timed `samples`.
pub fn stats(mut samples: Vec<Duration>) -> Stats {
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize].as_micros() as f64;
    let total: Duration = samples.iter().sum();
    Stats {
        p50_us: at(0.5),
        p95_us: at(0.95),
        p99_us: at(0.99),
        max_us: at(1.0),
        per_sec: samples.len() as f64 / total.as_secs_f64(),
        count: samples.len() as u64,
    }
}

/// Prints a start-time scenario (`it`) beside its floor: medians, p99s, ratio and difference.
pub fn report_start(name: &str, it: Stats, floor: Stats, target: &str) {
    println!(
        "{name:<44} p50 {:>9.0} us  p99 {:>9.0} us | floor p50 {:>9.0} us  p99 {:>9.0} us | x{:.2}, {:+.2} ms | {target}",
        it.p50_us,
        it.p99_us,
        floor.p50_us,
        floor.p99_us,
        it.p50_us / floor.p50_us,
        (it.p50_us - floor.p50_us) / 1000.0
    );
}

/// Prints one scenario's figures beside its floor.
pub fn report(name: &str, clients: usize, e2e: Stats, floor: Stats) {
    println!(
        "{name:<34} c={clients:<3} p50 {:>8.0} us (floor {:>6.0}, x{:.2}, overhead {:>6.0} us)  p99 {:>8.0} us (floor {:>6.0}, x{:.2})  {:>7.0}/s (floor {:>7.0}/s, x{:.2})  n={}",
        e2e.p50_us,
        floor.p50_us,
        e2e.p50_us / floor.p50_us,
        e2e.p50_us - floor.p50_us,
        e2e.p99_us,
        floor.p99_us,
        e2e.p99_us / floor.p99_us,
        e2e.per_sec,
        floor.per_sec,
        e2e.per_sec / floor.per_sec,
        e2e.count,
    );
}

/// Per-namespace throttles high enough that a benchmark's load is never refused (the load
/// exceeds OpenWhisk's default 60 invokes per minute by design).
pub fn unthrottled() -> whisk_core::controller::NamespaceLimits {
    whisk_core::controller::NamespaceLimits {
        invocations_per_minute: u64::MAX / 2,
        concurrent_invocations: u64::MAX / 2,
        fires_per_minute: u64::MAX / 2,
    }
}

/// Creates the no-op `nodejs:20` action `noop` as `guest` on the platform at `base`.
pub async fn create_noop(base: &str) {
    let (user, pass) = GUEST_KEY.split_once(':').expect("key has a colon");
    let r = reqwest::Client::new()
        .put(format!(
            "{base}/api/v1/namespaces/_/actions/noop?overwrite=true"
        ))
        .basic_auth(user, Some(pass))
        .json(&serde_json::json!({"exec": {"kind": "nodejs:20", "code": NOOP}}))
        .send()
        .await
        .expect("platform reachable");
    assert!(r.status().is_success(), "creating noop: {}", r.status());
}

/// The no-op action's code.
pub const NOOP: &str = "function main() { return {}; }";

/// Warm blocking invokes of `noop` on the platform at `base` by `clients` closed-loop
/// clients: a warm-up of a fifth of `total`, then `total` measured (or `max_time`).
pub async fn blocking_invokes(base: &str, clients: usize, total: u64, max_time: Duration) -> Stats {
    let http = reqwest::Client::builder()
        .no_proxy()
        .tcp_nodelay(true)
        .build()
        .expect("client builds");
    let url = std::sync::Arc::new(format!(
        "{base}/api/v1/namespaces/_/actions/noop?blocking=true&result=true"
    ));
    let (user, pass) = GUEST_KEY.split_once(':').expect("key has a colon");
    let invoke = move || {
        let (http, url) = (http.clone(), url.clone());
        async move {
            let r = http
                .post(url.as_str())
                .basic_auth(user, Some(pass))
                .send()
                .await
                .expect("invoke sent");
            assert_eq!(r.status(), 200);
            let _ = r.bytes().await;
        }
    };
    closed_loop(clients, total / 5, max_time, invoke.clone()).await;
    closed_loop(clients, total, max_time, invoke).await
}

/// A topic pair with an echo task: what goes out on `ping` comes back on `pong`.
pub struct Echo {
    bus: Arc<dyn MessageBus>,
    replies: Mutex<Box<dyn Consumer>>,
}

impl Echo {
    /// Creates topics `ping` and `pong` on `bus` and starts the echo task.
    pub async fn start(bus: Arc<dyn MessageBus>) -> Arc<Echo> {
        for t in ["ping", "pong"] {
            bus.create_topic(t).await.expect("create topic");
        }
        let replies = bus
            .subscribe("pong", "bench")
            .await
            .expect("subscribe pong");
        let mut requests = bus
            .subscribe("ping", "bench")
            .await
            .expect("subscribe ping");
        let echo_bus = bus.clone();
        tokio::spawn(async move {
            loop {
                let Ok(batch) = requests.poll(64, Duration::from_secs(1)).await else {
                    return;
                };
                for m in batch {
                    echo_bus.publish("pong", m).await.expect("publish pong");
                }
                let _ = requests.commit().await;
            }
        });
        Arc::new(Echo {
            bus,
            replies: Mutex::new(replies),
        })
    }

    /// `n` round trips back to back, one at a time.
    pub async fn round_trips(self: &Arc<Self>, n: u64) -> Stats {
        let echo = self.clone();
        closed_loop(1, n, Duration::from_secs(120), move || {
            let echo = echo.clone();
            async move { echo.round_trip().await }
        })
        .await
    }

    /// One round trip (the reply's offset is committed later, off the measured path, as the
    /// controller does).
    pub async fn round_trip(&self) {
        let mut replies = self.replies.lock().await;
        self.bus
            .publish("ping", Bytes::from_static(b"{}"))
            .await
            .expect("publish ping");
        let got = replies
            .poll(1, Duration::from_secs(30))
            .await
            .expect("poll pong");
        assert!(!got.is_empty(), "no echo within 30 s");
    }
}

/// The broker of a Kafka benchmark from `WHISK_TEST_KAFKA`; when unset, prints that `bench`
/// was not measured and returns `None`.
pub fn kafka_brokers(bench: &str) -> Option<String> {
    let brokers = std::env::var("WHISK_TEST_KAFKA").ok();
    if brokers.is_none() {
        println!("whisk {bench}: not measured (set WHISK_TEST_KAFKA to a Kafka-protocol broker)");
    }
    brokers
}

/// A Kafka bus on `brokers` whose topics and groups carry `name` and this process's id. Its
/// activation topics' fetch wait is `WHISK_KAFKA_FETCH_WAIT_MS` when set (the cluster
/// binaries' `--kafka-fetch-wait-ms`), else the bus's default.
pub async fn kafka_bus(brokers: &str, name: &str) -> whisk_bus::KafkaBus {
    let prefix = format!("bench-{}-{name}-", std::process::id());
    let mut config = whisk_bus::KafkaConfig::new(brokers).with_topic_prefix(prefix);
    if let Some(ms) = std::env::var("WHISK_KAFKA_FETCH_WAIT_MS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        config.fetch_wait_max = std::time::Duration::from_millis(ms);
    }
    whisk_bus::KafkaBus::connect(config)
        .await
        .expect("Kafka broker reachable")
}

/// The activation context of the benchmarks' direct runtime calls (guest's `noop`).
pub fn bench_context() -> whisk_core::runtime::ActivationContext {
    whisk_core::runtime::ActivationContext {
        api_key: None,
        namespace: "guest".into(),
        action_name: "/guest/noop".into(),
        action_version: "0.0.1".into(),
        activation_id: "0".repeat(32),
        transaction_id: "bench".into(),
        deadline_ms: u64::MAX / 2,
    }
}

/// Starts one invoker per `settings` on `store` and `bus` (each told to call back the
/// controller at `url`), then waits (up to 2 minutes) until the controller at `url` reports
/// them all `up` (discovered by their pings, the health test action passed). Returns them
/// and an HTTP client for the controller.
pub async fn start_invokers(
    store: &Arc<dyn whisk_core::store::Store>,
    bus: &Arc<dyn MessageBus>,
    url: &str,
    settings: impl IntoIterator<Item = whisk_examples::cluster::InvokerSettings>,
) -> (
    Vec<whisk_examples::cluster::InvokerProcess>,
    reqwest::Client,
) {
    let mut procs = Vec::new();
    for s in settings {
        let s = whisk_examples::cluster::InvokerSettings {
            api_host: url.to_string(),
            ..s
        };
        procs.push(
            whisk_examples::cluster::InvokerProcess::start(store.clone(), bus.clone(), s)
                .await
                .unwrap(),
        );
    }
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    for _ in 0..1200 {
        let states: serde_json::Value = http
            .get(format!("{url}/invokers"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let up = states
            .as_object()
            .map_or(0, |m| m.values().filter(|v| *v == "up").count());
        if up == procs.len() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    (procs, http)
}
