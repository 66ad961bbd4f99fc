//! The soak: `cargo bench -p whisk-benches --bench soak` (options: `-- --minutes 10`,
//! `--measure-secs 20`, `--sample-secs 5`, `--fraction 0.5` of the maximum, `--store
//! embedded|memory`; `-- --smoke` for a short run whose numbers mean nothing).
//!
//! It starts the real `whisk-standalone` binary with its default store (the embedded,
//! durable one, in a temporary directory) and the load harness's main action (the warm
//! native no-op), measures the maximum throughput of blocking invokes with 32 closed-loop
//! clients, then offers half that rate for the soak's length from the same 32 clients, paced
//! (constant throughput, latency counted from each call's due time; see
//! [`paced_loop`]). Every few seconds it
//! samples the platform process: resident memory, open file descriptors, threads (tasks
//! under `/proc/<pid>/task`), its runtime processes, and at `/metrics` the containers its
//! pool reports and the live tasks of its Tokio runtime. At the end it checks that every activation the API answered has its record,
//! and prints each sample series' start, end, minimum and maximum with a flatness verdict.

use reqwest::Method;
use serde_json::json;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use whisk_benches::standalone::{native_exec, Api, Platform};
use whisk_benches::{closed_loop, paced_loop};

/// The clients of both the maximum's measurement and the soak.
const CLIENTS: usize = 32;

/// The run's lengths.
struct Plan {
    measure: Duration,
    soak: Duration,
    sample_every: Duration,
    /// The share of the measured maximum offered during the soak.
    fraction: f64,
    /// The platform's `--store`.
    store: String,
    smoke: bool,
}

impl Plan {
    fn from_args() -> Self {
        let args: Vec<String> = std::env::args().collect();
        // The word after flag `name`.
        let arg = |name: &str| {
            args.iter()
                .position(|a| a == name)
                .and_then(|i| args.get(i + 1))
        };
        let value = |name: &str| {
            arg(name).map(|v| {
                v.parse::<f64>()
                    .unwrap_or_else(|_| panic!("{name} takes a number"))
            })
        };
        let smoke = args.iter().any(|a| a == "--smoke");
        let secs = |name: &str, full: f64, short: f64| {
            Duration::from_secs_f64(value(name).unwrap_or(if smoke { short } else { full }))
        };
        Self {
            measure: secs("--measure-secs", 20.0, 2.0),
            soak: Duration::from_secs_f64(
                value("--minutes").map_or(if smoke { 12.0 } else { 600.0 }, |m| m * 60.0),
            ),
            sample_every: secs("--sample-secs", 5.0, 1.0),
            fraction: value("--fraction").unwrap_or(0.5),
            store: arg("--store").cloned().unwrap_or_else(|| "embedded".into()),
            smoke,
        }
    }
}

/// One sample of the platform process.
#[derive(Debug, Clone, Copy)]
struct Sample {
    at: Duration,
    rss_kb: u64,
    fds: u64,
    threads: u64,
    runtimes: u64,
    containers: u64,
    tokio_tasks: u64,
}

/// One row of the samples' table (its header is printed by the sampler).
impl std::fmt::Display for Sample {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:>7.0} {:>9.1} {:>5} {:>8} {:>9} {:>11} {:>12}",
            self.at.as_secs_f64(),
            self.rss_kb as f64 / 1024.0,
            self.fds,
            self.threads,
            self.runtimes,
            self.containers,
            self.tokio_tasks
        )
    }
}

/// A sampled series: its name, how to read it from a sample, and how much growth still
/// counts as flat (absolute, on top of 10 %).
type Series = (&'static str, fn(&Sample) -> u64, u64);

/// The series sampled.
const SERIES: [Series; 6] = [
    ("RSS (KB)", |s| s.rss_kb, 8 * 1024),
    ("open fds", |s| s.fds, 8),
    ("threads (/proc tasks)", |s| s.threads, 4),
    ("runtime processes", |s| s.runtimes, 4),
    ("containers (/metrics)", |s| s.containers, 4),
    ("tokio tasks (/metrics)", |s| s.tokio_tasks, 16),
];

/// Entries of directory `path` (0 when it cannot be read).
fn entries(path: &str) -> u64 {
    std::fs::read_dir(path).map_or(0, |d| d.count() as u64)
}

/// The direct children of process `pid` (over all its threads).
fn children(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .flatten()
        .map(|t| {
            std::fs::read_to_string(t.path().join("children"))
                .map_or(0, |c| c.split_whitespace().count() as u64)
        })
        .sum()
}

/// The sum of the series of metric `name` in the Prometheus text `metrics`.
fn metric(metrics: &str, name: &str) -> u64 {
    metrics
        .lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(['{', ' ']))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

async fn sample(platform: &Platform, api: &Api, started: Instant) -> Sample {
    let pid = platform.child.id();
    let metrics = api
        .http
        .get(format!("{}/metrics", api.base))
        .send()
        .await
        .expect("platform reachable")
        .text()
        .await
        .unwrap_or_default();
    Sample {
        at: started.elapsed(),
        rss_kb: platform.rss_kb(),
        fds: entries(&format!("/proc/{pid}/fd")),
        threads: entries(&format!("/proc/{pid}/task")),
        runtimes: children(pid),
        containers: metric(&metrics, "whisk_containers"),
        tokio_tasks: metric(&metrics, "whisk_runtime_tasks"),
    }
}

/// The median of `values`.
fn median(mut values: Vec<u64>) -> u64 {
    values.sort_unstable();
    values[values.len() / 2]
}

/// Flat when the median of the last tenth of the samples is at most 10 % plus `slack` above
/// the median of the second tenth (the first tenth is warm-up).
fn verdict(samples: &[Sample], get: fn(&Sample) -> u64, slack: u64) -> (u64, u64, &'static str) {
    let tenth = (samples.len() / 10).max(1);
    let early = median(
        samples[tenth.min(samples.len() - 1)..(2 * tenth).min(samples.len())]
            .iter()
            .map(get)
            .collect(),
    );
    let late = median(samples[samples.len() - tenth..].iter().map(get).collect());
    let flat = late <= early + early / 10 + slack;
    (early, late, if flat { "flat" } else { "GROWS" })
}

/// The activation id of a blocking invoke of `name` (`None`: refused or unreachable).
async fn invoke(api: &Api, name: &str) -> Option<String> {
    let path = format!("/api/v1/namespaces/_/actions/{name}?blocking=true");
    match api.try_send(Method::POST, &path, Some(json!({}))).await? {
        (200, body) => body["activationId"].as_str().map(str::to_string),
        _ => None,
    }
}

/// Whether activation `id` has a record.
async fn recorded(api: &Api, id: &str) -> bool {
    let path = format!("/api/v1/namespaces/_/activations/{id}");
    matches!(api.try_send(Method::GET, &path, None).await, Some((200, _)))
}

/// The ids of `ids` without a record, checked by 64 concurrent clients.
async fn unrecorded(api: &Api, ids: Vec<String>) -> Vec<String> {
    use futures::StreamExt;
    futures::stream::iter(ids)
        .map(|id| async move { (!recorded(api, &id).await).then_some(id) })
        .buffer_unordered(64)
        .filter_map(|missing| async move { missing })
        .collect()
        .await
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let plan = Plan::from_args();
    let data = tempfile::tempdir().expect("a temporary directory");
    let dir = data.path().to_str().expect("a UTF-8 path").to_string();
    let platform = Platform::start(
        32_768,
        &["--store", &plan.store, "--data-dir", &dir],
        "soak-platform.log",
    );
    let api = Api::new(&platform.base);
    let executable = std::fs::read(env!("CARGO_BIN_EXE_noop_action")).expect("native no-op");
    api.action("noop", native_exec(&executable)).await;
    api.invoke("noop").await;
    println!(
        "whisk soak: whisk-standalone ({} store, process executor) at {}, warm native no-op; {}",
        plan.store,
        platform.base,
        if plan.smoke {
            "SMOKE run (numbers not meaningful)"
        } else {
            "full run"
        }
    );

    // The maximum: closed-loop clients for the measuring time.
    let max = closed_loop(CLIENTS, u64::MAX / 2, plan.measure, || async {
        api.invoke("noop").await
    })
    .await;
    let rate = (max.per_sec * plan.fraction).max(1.0);
    println!(
        "maximum throughput: {:.0}/s ({CLIENTS} clients, {:.0} s, p50 {:.2} ms); soak at {:.2} of it: {rate:.0}/s from {CLIENTS} paced clients for {:.1} min, a sample every {:.0} s",
        max.per_sec,
        plan.measure.as_secs_f64(),
        max.p50_us / 1000.0,
        plan.fraction,
        plan.soak.as_secs_f64() / 60.0,
        plan.sample_every.as_secs_f64()
    );

    let accepted = Arc::new(Mutex::new(Vec::<String>::new()));
    let refused = Arc::new(AtomicU64::new(0));
    let samples = Arc::new(Mutex::new(Vec::<Sample>::new()));
    let started = Instant::now();
    let platform = Arc::new(platform);
    let sampler = {
        let (platform, api, samples) = (platform.clone(), api.clone(), samples.clone());
        let every = plan.sample_every;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            println!(
                "{:>7} {:>9} {:>5} {:>8} {:>9} {:>11} {:>12}",
                "t (s)", "RSS (MB)", "fds", "threads", "runtimes", "containers", "tokio tasks"
            );
            loop {
                tick.tick().await;
                let s = sample(&platform, &api, started).await;
                println!("{s}");
                samples.lock().expect("samples").push(s);
            }
        })
    };
    let load = paced_loop(CLIENTS, rate, plan.soak, {
        let (api, accepted, refused) = (api.clone(), accepted.clone(), refused.clone());
        move || {
            let (api, accepted, refused) = (api.clone(), accepted.clone(), refused.clone());
            async move {
                match invoke(&api, "noop").await {
                    Some(id) => accepted.lock().expect("ids").push(id),
                    None => {
                        refused.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
    })
    .await;
    // The verdict covers the load only; one more sample shows where the platform settles.
    sampler.abort();
    let _ = sampler.await;
    let samples = samples.lock().expect("samples").clone();
    tokio::time::sleep(plan.sample_every).await;
    let after = sample(&platform, &api, started).await;
    println!(
        "{after}  ({:.0} s after the load)",
        plan.sample_every.as_secs_f64()
    );

    let ids = accepted.lock().expect("ids").clone();
    let refused = refused.load(Ordering::Relaxed);
    println!(
        "load: {} offered at {rate:.0}/s over {:.0} s, {:.0}/s completed; p50 {:.2} ms, p99 {:.2} ms, max {:.0} ms; {} accepted, {refused} refused or failed",
        load.count,
        plan.soak.as_secs_f64(),
        load.per_sec,
        load.p50_us / 1000.0,
        load.p99_us / 1000.0,
        load.max_us / 1000.0,
        ids.len()
    );
    // Every accepted activation has its record (records written just after the answer get
    // a second look).
    let mut missing = unrecorded(&api, ids.clone()).await;
    if !missing.is_empty() {
        tokio::time::sleep(Duration::from_secs(5)).await;
        missing = unrecorded(&api, missing).await;
    }
    println!(
        "records: {} of {} accepted activations; lost: {}",
        ids.len() - missing.len(),
        ids.len(),
        missing.len()
    );

    println!(
        "\n{:<22} {:>9} {:>9} {:>9} {:>9} {:>11} {:>11}  verdict",
        "series", "start", "end", "min", "max", "early med", "late med"
    );
    for (name, get, slack) in SERIES {
        let values: Vec<u64> = samples.iter().map(get).collect();
        let (early, late, flat) = verdict(&samples, get, slack);
        println!(
            "{name:<22} {:>9} {:>9} {:>9} {:>9} {:>11} {:>11}  {flat}",
            values.first().copied().unwrap_or(0),
            values.last().copied().unwrap_or(0),
            values.iter().copied().min().unwrap_or(0),
            values.iter().copied().max().unwrap_or(0),
            early,
            late
        );
    }
    assert!(missing.is_empty(), "lost activations: {missing:?}");
}
