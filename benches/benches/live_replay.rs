//! Run with `cargo bench -p whisk-benches --bench live_replay` (about 6 minutes; needs `node`).
//!
//! A short invocation trace replayed on the live platform, once per scheduler, beside the
//! simulator's replay of the very same trace on the same invoker configuration: do the
//! simulator's directions (the warm-aware scheduler makes fewer cold starts than OpenWhisk's
//! sharding balancer, with p99 no worse) hold on the real controller and invokers?
//!
//! Each live run is a fresh platform in this process: the controller engine behind the REST API
//! on a loopback port, the load balancer with the scheduler under test, and [`INVOKERS`] real
//! invokers ([`INVOKER_MB`] MB each, no stem cells, idle timeout [`IDLE_TIMEOUT`]) running
//! Node.js runtime processes (the process executor), over the memory bus and memory store.
//! Each trace function is a `nodejs:20` action with the function's memory limit whose code
//! blocks for the function's `/init` time when it loads and sleeps (`setTimeout`) for the
//! `duration_ms` parameter of each invocation. Invocations are blocking invokes through the
//! REST API, each sent from its own task at its trace time; latency is from sending to the
//! response. Cold starts are the invokers' pool counters (minus the health test actions').
//!
//! The trace is [`Synthetic`] with [`FUNCTIONS`] functions over [`MINUTES`] minutes, its time
//! axis compressed [`COMPRESS`]× (arrival times divided by it), run times capped at
//! [`MAX_DURATION_MS`] and `/init` times at [`MAX_INIT_MS`]: a replay takes about 90 s. The
//! simulator's container creation time is measured first on the live platform (cold minus warm
//! invoke of a no-op action), so both sides pay the same cold-start cost.

use std::sync::Arc;
use std::time::{Duration, Instant};
use whisk_benches::{report_start, stats, unthrottled, Stats};
use whisk_core::bus::MessageBus;
use whisk_core::controller::ControllerConfig;
use whisk_core::entity::identity::GUEST_KEY;
use whisk_core::invoker::pool::PoolMetrics;
use whisk_core::sim::generate::Synthetic;
use whisk_core::sim::simulate::{SimConfig, SimReport};
use whisk_core::sim::trace::Trace;
use whisk_core::store::Store;
use whisk_examples::cli::SchedulerChoice;
use whisk_examples::cluster::{
    seed_keys, ControllerProcess, ControllerSettings, InvokerProcess, InvokerSettings,
};
use whisk_store::MemoryStore;

/// Functions of the synthetic trace.
const FUNCTIONS: usize = 40;
/// Its length in trace minutes.
const MINUTES: u32 = 3;
/// Its seed.
const SEED: u64 = 3;
/// Its rate scale (the paper's absolute per-function rates).
const RATE_SCALE: f64 = 1.0;
/// Arrival times are divided by this (3 trace minutes replay in 90 s).
const COMPRESS: u64 = 2;
/// Run times are capped at this many ms.
const MAX_DURATION_MS: u64 = 2_000;
/// `/init` times are capped at this many ms.
const MAX_INIT_MS: u64 = 500;
/// Invokers of each platform.
const INVOKERS: u32 = 2;
/// User memory of each invoker, MB.
const INVOKER_MB: u64 = 1024;
/// The invokers' idle timeout (and the warm-aware scheduler's keep-alive).
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// The schedulers compared, OpenWhisk's first.
const SCHEDULERS: [SchedulerChoice; 3] = [
    SchedulerChoice::Sharding,
    SchedulerChoice::WarmAware,
    SchedulerChoice::LeastLoaded,
];

/// The replayed trace: the synthetic one, compressed and capped.
fn replay_trace() -> Trace {
    let mut trace = Synthetic {
        functions: FUNCTIONS,
        minutes: MINUTES,
        seed: SEED,
        rate_scale: RATE_SCALE,
        ..Synthetic::default()
    }
    .generate();
    for inv in &mut trace.invocations {
        inv.at_ms /= COMPRESS;
        inv.duration_ms = inv.duration_ms.min(MAX_DURATION_MS);
        inv.init_ms = inv.init_ms.min(MAX_INIT_MS);
    }
    trace
}

/// The `/init` time of function `f` (its first invocation's, as the simulator takes it).
fn init_ms(trace: &Trace, f: usize) -> u64 {
    trace
        .invocations
        .iter()
        .find(|i| i.function == f)
        .map_or(0, |i| i.init_ms)
}

/// An action that blocks `init_ms` when loaded and sleeps `params.duration_ms` per run.
fn action_code(init_ms: u64) -> String {
    format!(
        "if ({init_ms} > 0) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, {init_ms});\n\
         function main(params) {{\n  \
           const ms = params.duration_ms || 0;\n  \
           return new Promise((resolve) => setTimeout(() => resolve({{ slept: ms }}), ms));\n\
         }}"
    )
}

/// A live platform: a controller with `scheduler` and `invokers` process-executor invokers.
struct Platform {
    controller: ControllerProcess,
    invokers: Vec<InvokerProcess>,
    url: String,
    http: reqwest::Client,
}

impl Platform {
    async fn start(scheduler: SchedulerChoice, invokers: u32, memory_mb: u64) -> Platform {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        seed_keys(store.as_ref()).await.unwrap();
        let bus: Arc<dyn MessageBus> = Arc::new(whisk_bus::MemoryBus::new());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let settings = ControllerSettings {
            config: ControllerConfig {
                namespace_limits: unthrottled(),
                ..ControllerConfig::default()
            },
            scheduler,
            invoker_idle_timeout: IDLE_TIMEOUT,
            ..ControllerSettings::default()
        };
        let controller =
            ControllerProcess::start_with(store.clone(), bus.clone(), listener, settings)
                .await
                .unwrap();
        let url = format!("http://{}", controller.server.addr);
        let settings = (0..invokers).map(|id| InvokerSettings {
            id,
            user_memory_mb: memory_mb,
            idle_timeout: IDLE_TIMEOUT,
            // As the simulator: no pausing within the keep-alive.
            pause_grace: IDLE_TIMEOUT,
            prewarm: false,
            ..InvokerSettings::default()
        });
        let (procs, http) = whisk_benches::start_invokers(&store, &bus, &url, settings).await;
        Platform {
            controller,
            invokers: procs,
            url,
            http,
        }
    }

    /// Creates action `name` as `guest`.
    async fn create(&self, name: &str, memory_mb: u64, code: &str) {
        let (user, pass) = GUEST_KEY.split_once(':').unwrap();
        let r = self
            .http
            .put(format!(
                "{}/api/v1/namespaces/_/actions/{name}?overwrite=true",
                self.url
            ))
            .basic_auth(user, Some(pass))
            .json(&serde_json::json!({
                "exec": {"kind": "nodejs:20", "code": code},
                "limits": {"memory": memory_mb, "timeout": 60_000},
            }))
            .send()
            .await
            .expect("platform reachable");
        assert!(r.status().is_success(), "creating {name}: {}", r.status());
    }

    /// The invokers' pool counters, summed.
    fn metrics(&self) -> PoolMetrics {
        let mut total = PoolMetrics::default();
        for i in &self.invokers {
            total.add(&i.pool.metrics());
        }
        total
    }

    async fn shutdown(self) {
        for i in self.invokers {
            i.shutdown().await;
        }
        self.controller.shutdown().await;
    }
}

/// One blocking invoke of `name` with `params`: its latency and whether it succeeded.
async fn invoke(
    http: &reqwest::Client,
    url: &str,
    name: &str,
    params: serde_json::Value,
) -> (Duration, bool) {
    let (user, pass) = GUEST_KEY.split_once(':').unwrap();
    let sent = Instant::now();
    let r = http
        .post(format!(
            "{url}/api/v1/namespaces/_/actions/{name}?blocking=true"
        ))
        .basic_auth(user, Some(pass))
        .json(&params)
        .send()
        .await;
    let ok = match r {
        Ok(r) => {
            let ok = r.status() == 200;
            let _ = r.bytes().await;
            ok
        }
        Err(_) => false,
    };
    (sent.elapsed(), ok)
}

/// The live platform's container creation time: cold minus warm invoke of a no-op action.
async fn measure_container_create() -> (Duration, Stats, Stats) {
    let platform = Platform::start(SchedulerChoice::LeastLoaded, 1, INVOKER_MB).await;
    let noop = action_code(0);
    let (mut cold, mut warm) = (Vec::new(), Vec::new());
    for i in 0..5 {
        let name = format!("probe{i}");
        platform.create(&name, 128, &noop).await;
        let p = serde_json::json!({"duration_ms": 0});
        let (t, ok) = invoke(&platform.http, &platform.url, &name, p.clone()).await;
        assert!(ok, "cold probe failed");
        cold.push(t);
        for _ in 0..3 {
            let (t, ok) = invoke(&platform.http, &platform.url, &name, p.clone()).await;
            assert!(ok, "warm probe failed");
            warm.push(t);
        }
    }
    platform.shutdown().await;
    let (cold, warm) = (stats(cold), stats(warm));
    let create = Duration::from_micros((cold.p50_us - warm.p50_us).max(0.0) as u64);
    (create, cold, warm)
}

/// What one live replay measured.
struct Live {
    invocations: u64,
    failed: u64,
    cold_starts: u64,
    warm_starts: u64,
    evictions: u64,
    latency: Stats,
    wall: Duration,
}

/// Replays `trace` on a fresh platform with `scheduler`.
async fn live(trace: &Trace, scheduler: SchedulerChoice) -> Live {
    let platform = Platform::start(scheduler, INVOKERS, INVOKER_MB).await;
    for (i, f) in trace.functions.iter().enumerate() {
        platform
            .create(&f.name, f.memory_mb, &action_code(init_ms(trace, i)))
            .await;
    }
    let before = platform.metrics();
    let start = tokio::time::Instant::now();
    let mut runs = Vec::with_capacity(trace.invocations.len());
    for inv in &trace.invocations {
        tokio::time::sleep_until(start + Duration::from_millis(inv.at_ms)).await;
        let (http, url) = (platform.http.clone(), platform.url.clone());
        let name = trace.functions[inv.function].name.clone();
        let params = serde_json::json!({"duration_ms": inv.duration_ms});
        runs.push(tokio::spawn(async move {
            invoke(&http, &url, &name, params).await
        }));
    }
    let mut latencies = Vec::with_capacity(runs.len());
    let mut failed = 0;
    for r in runs {
        let (t, ok) = r.await.unwrap();
        failed += u64::from(!ok);
        latencies.push(t);
    }
    let wall = start.elapsed();
    let after = platform.metrics();
    platform.shutdown().await;
    Live {
        invocations: latencies.len() as u64,
        failed,
        cold_starts: after.cold_starts - before.cold_starts,
        warm_starts: after.warm_starts - before.warm_starts,
        evictions: after.evictions - before.evictions,
        latency: stats(latencies),
        wall,
    }
}

/// A simulator report's latency as benchmark statistics.
fn sim_stats(r: &SimReport) -> Stats {
    Stats {
        p50_us: r.latency_ms[0] * 1000.0,
        p95_us: r.latency_ms[1] * 1000.0,
        p99_us: r.latency_ms[2] * 1000.0,
        max_us: r.latency_ms[3] * 1000.0,
        per_sec: r.throughput,
        count: r.invocations,
    }
}

/// One result line; `counts` are invocations, failed, cold starts and warm starts.
fn row(side: &str, name: &str, counts: [u64; 4], lat: Stats, extra: &str) {
    let [n, failed, cold, warm] = counts;
    println!(
        "{side:<5} {name:<13} n={n:<4} failed {failed:<3} cold {cold:>4} ({:>5.1} %)  warm {warm:>4}  p50 {:>7.1} ms  p99 {:>7.1} ms  {extra}",
        100.0 * cold as f64 / n.max(1) as f64,
        lat.p50_us / 1000.0,
        lat.p99_us / 1000.0,
    );
}

fn main() {
    let trace = replay_trace();
    trace
        .check_fits(INVOKER_MB)
        .expect("trace fits the invokers");
    let invoked: std::collections::HashSet<usize> =
        trace.invocations.iter().map(|i| i.function).collect();
    println!(
        "whisk live_replay: Synthetic {{ functions: {FUNCTIONS}, minutes: {MINUTES}, seed: {SEED}, rate_scale: {RATE_SCALE} }}, \
         time /{COMPRESS}, run time <= {MAX_DURATION_MS} ms, init <= {MAX_INIT_MS} ms: \
         {} invocations of {} functions over {:.0} s, memory {}-{} MB; \
         {INVOKERS} invokers x {INVOKER_MB} MB, idle timeout {} s, no stem cells",
        trace.invocations.len(),
        invoked.len(),
        trace.duration_ms() as f64 / 1000.0,
        trace.functions.iter().map(|f| f.memory_mb).min().unwrap_or(0),
        trace.max_memory_mb(),
        IDLE_TIMEOUT.as_secs(),
    );
    let sim_only = std::env::var_os("WHISK_LIVE_REPLAY_SIM_ONLY").is_some();

    let mut lives = Vec::new();
    let mut container_create = Duration::from_millis(300);
    if !sim_only {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let (create, cold, warm) = measure_container_create().await;
            report_start(
                "process-executor cold vs warm no-op invoke",
                cold,
                warm,
                "difference = the simulator's container_create",
            );
            container_create = create;
            for scheduler in SCHEDULERS {
                lives.push(live(&trace, scheduler).await);
            }
        });
        rt.shutdown_timeout(Duration::from_secs(5));
    }

    // The simulator on the same trace and invokers (after the live runs: it switches the
    // process's activation clock to virtual time while it runs).
    let config = SimConfig {
        invokers: INVOKERS,
        invoker_memory_mb: INVOKER_MB,
        container_create,
        idle_timeout: IDLE_TIMEOUT,
        ..SimConfig::default()
    };
    println!(
        "simulator: container_create {} ms (live measurement{})",
        container_create.as_millis(),
        if sim_only { " skipped: default" } else { "" }
    );
    let sims: Vec<SimReport> = SCHEDULERS
        .iter()
        .map(|s| {
            whisk_examples::sim::run(&trace, s.build(IDLE_TIMEOUT), &config, s.name())
                .expect("simulation runs")
        })
        .collect();

    for (i, s) in SCHEDULERS.iter().enumerate() {
        if let Some(l) = lives.get(i) {
            row(
                "live",
                s.name(),
                [l.invocations, l.failed, l.cold_starts, l.warm_starts],
                l.latency,
                &format!(
                    "evictions {}  wall {:.0} s",
                    l.evictions,
                    l.wall.as_secs_f64()
                ),
            );
        }
        let r = &sims[i];
        row(
            "sim",
            s.name(),
            [r.invocations, r.failed, r.cold_starts, r.warm_starts],
            sim_stats(r),
            &format!("wall {:.1} s", r.wall_time.as_secs_f64()),
        );
    }

    // Warm-aware (index 1) against sharding (index 0).
    let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { f64::NAN };
    let sim_cold = ratio(sims[1].cold_starts as f64, sims[0].cold_starts as f64);
    let sim_p99 = ratio(sims[1].latency_ms[2], sims[0].latency_ms[2]);
    println!("warm-aware vs sharding, simulator: cold starts x{sim_cold:.2}, p99 x{sim_p99:.2}");
    if lives.len() >= 2 {
        let (sh, wa) = (&lives[0], &lives[1]);
        let live_cold = ratio(wa.cold_starts as f64, sh.cold_starts as f64);
        let live_p99 = ratio(wa.latency.p99_us, sh.latency.p99_us);
        println!(
            "warm-aware vs sharding, live:      cold starts x{live_cold:.2}, p99 x{live_p99:.2}"
        );
        report_start(
            "live latency, warm-aware vs sharding",
            wa.latency,
            sh.latency,
            "target: p99 no worse",
        );
        let same = |a: f64, b: f64| (a < 1.0) == (b < 1.0) || a == b;
        println!(
            "  fewer cold starts live: {}; p99 no worse live (within 2 %): {}; direction of cold starts as the simulator's: {}",
            if wa.cold_starts < sh.cold_starts { "YES" } else { "NO" },
            // Within 2 %: two runs of one scheduler differ by about that much.
            if wa.latency.p99_us <= sh.latency.p99_us * 1.02 { "YES" } else { "NO" },
            if same(live_cold, sim_cold) { "YES" } else { "NO" },
        );
    }
}
