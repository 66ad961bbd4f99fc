//! The load harness: `cargo bench -p whisk-benches --bench load` (add `-- --smoke` for the
//! short run `.ci/run` does, `-- --only warm-native,sequence` for some scenarios).
//!
//! It builds and starts the real `whisk-standalone` binary (memory store, no feeds, no
//! throttles) as its own process and drives its REST API with N concurrent clients, closed
//! loop and at a fixed offered rate. Each figure is printed as an absolute number and as a
//! ratio to its floor, measured in the same run by the same client:
//! - `direct /run`: a warm runtime process of the same kind, its `/run` called directly;
//! - `bare http`: an axum server on the same stack (tokio, hyper) answering a fixed JSON body.
//!
//! Scenarios: warm no-op in `nodejs:20`, `python:3.11` and a native actionloop executable
//! (`src/bin/noop_action.rs`); 100 distinct actions round robin; a burst of cold starts; a
//! trigger with 10 rules; a sequence of 10 actions; the platform's memory (idle RSS and per
//! warm container); and, when `WHISK_TEST_KAFKA` names a broker, the warm no-op through a
//! controller and an invoker over Kafka.

use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};
use whisk_benches::standalone::{client, native_exec, Api, Platform};
use whisk_benches::{closed_loop, open_loop, unthrottled, Stats};
use whisk_core::executor::{Container, ContainerExecutor, ContainerSpec};
use whisk_core::runtime::{init_body, RuntimeClient};
use whisk_exec::ProcessExecutor;

/// How long each measurement runs, and the client counts.
struct Plan {
    smoke: bool,
    only: Option<Vec<String>>,
}

impl Plan {
    fn from_args() -> Self {
        let args: Vec<String> = std::env::args().collect();
        let only = args
            .iter()
            .position(|a| a == "--only")
            .and_then(|i| args.get(i + 1))
            .map(|s| s.split(',').map(str::to_string).collect());
        Self {
            smoke: args.iter().any(|a| a == "--smoke"),
            only,
        }
    }

    fn runs(&self, scenario: &str) -> bool {
        self.only
            .as_ref()
            .is_none_or(|o| o.iter().any(|s| s == scenario))
    }

    /// Requests per closed-loop measurement.
    fn requests(&self, clients: usize) -> u64 {
        if self.smoke {
            50
        } else {
            (3000 * clients as u64).min(40_000)
        }
    }

    /// Length of a fixed-rate measurement.
    fn open_for(&self) -> Duration {
        Duration::from_secs(if self.smoke { 1 } else { 10 })
    }

    fn max_time(&self) -> Duration {
        Duration::from_secs(if self.smoke { 10 } else { 30 })
    }
}

/// Invokes under load that failed (transport error or not 200) since the last [`row`].
static FAILED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Prints one measurement beside its floor, and the failed invokes, if any, since the last.
fn row(name: &str, load: &str, it: &Stats, floor_name: &str, floor: &Stats) {
    let failed = FAILED.swap(0, std::sync::atomic::Ordering::Relaxed);
    if failed > 0 {
        println!("{name:<26} {load:<12} FAILED invokes: {failed} (latency below counts them too)");
    }
    let ms = |us: f64| us / 1000.0;
    println!(
        "{name:<26} {load:<12} p50 {:>7.3} p95 {:>7.3} p99 {:>7.3} max {:>8.3} ms {:>7.0}/s | {floor_name:<11} p50 {:>7.3} p99 {:>7.3} ms {:>7.0}/s | x{:.2} p50, x{:.2} p99, x{:.2} rate, overhead p50 {:+.3} p99 {:+.3} ms",
        ms(it.p50_us),
        ms(it.p95_us),
        ms(it.p99_us),
        ms(it.max_us),
        it.per_sec,
        ms(floor.p50_us),
        ms(floor.p99_us),
        floor.per_sec,
        it.p50_us / floor.p50_us.max(1.0),
        it.p99_us / floor.p99_us.max(1.0),
        it.per_sec / floor.per_sec.max(1e-9),
        ms(it.p50_us - floor.p50_us),
        ms(it.p99_us - floor.p99_us),
    );
}

/// A kind under test: how to create its no-op action and its floor container.
struct Kind {
    scenario: &'static str,
    exec: Value,
    kind: &'static str,
    code: String,
    binary: bool,
}

fn kinds() -> Vec<Kind> {
    let executable = std::fs::read(env!("CARGO_BIN_EXE_noop_action")).expect("native no-op built");
    let native = native_exec(&executable);
    let js = "function main() { return {}; }";
    let py = "def main(args):\n    return {}\n";
    vec![
        Kind {
            scenario: "warm-nodejs",
            exec: json!({"kind": "nodejs:20", "code": js}),
            kind: "nodejs:20",
            code: js.into(),
            binary: false,
        },
        Kind {
            scenario: "warm-python",
            exec: json!({"kind": "python:3.11", "code": py}),
            kind: "python:3.11",
            code: py.into(),
            binary: false,
        },
        Kind {
            scenario: "warm-native",
            code: native["code"].as_str().expect("base64 code").to_string(),
            exec: native,
            kind: "blackbox",
            binary: true,
        },
    ]
}

/// A warm runtime process of `kind` with its no-op initialised: the `direct /run` floor.
async fn floor_container(exec: &ProcessExecutor, kind: &Kind, name: &str) -> Arc<dyn Container> {
    let spec = ContainerSpec {
        name: format!("floor_{name}"),
        kind: kind.kind.into(),
        image: (kind.kind == "blackbox").then(|| "openwhisk/dockerskeleton".into()),
        memory_mb: 128,
        env: vec![],
        host_network: false,
    };
    let c = exec.create(&spec).await.expect("floor container starts");
    let body = init_body(
        "noop",
        None,
        Some(&kind.code),
        kind.binary,
        Default::default(),
    );
    let out = RuntimeClient::default()
        .init_container(c.as_ref(), &body, Duration::from_secs(30))
        .await;
    assert!(out.response.is_success(), "floor init: {:?}", out.response);
    c
}

/// `/run` on `container` as an op for the load drivers.
fn direct_run(
    container: &Arc<dyn Container>,
) -> impl Fn() -> futures::future::BoxFuture<'static, ()> + Clone {
    direct_runs(std::slice::from_ref(container))
}

/// `/run` on one of `containers` not in use by another call, as an op for the load drivers:
/// each concurrent client gets a runtime process of its own, as the platform gives each
/// concurrent activation a container (a runtime runs one activation at a time). With more
/// calls in flight than processes, the extra ones share the first process. The platform's
/// own runtime client calls them (HTTP runtimes over their socket or port, in-process ones,
/// the actionloop driver, directly).
fn direct_runs(
    containers: &[Arc<dyn Container>],
) -> impl Fn() -> futures::future::BoxFuture<'static, ()> + Clone {
    let runtime = RuntimeClient::default();
    let containers: Arc<Vec<Arc<dyn Container>>> = Arc::new(containers.to_vec());
    let free = Arc::new(std::sync::Mutex::new(
        (0..containers.len()).collect::<Vec<usize>>(),
    ));
    let value = Arc::new(whisk_benches::bench_context().run_body(json!({})));
    move || {
        let (runtime, containers, free, value) = (
            runtime.clone(),
            containers.clone(),
            free.clone(),
            value.clone(),
        );
        Box::pin(async move {
            let taken = free.lock().expect("free list").pop();
            let n = taken.unwrap_or(0);
            let c = &containers[n];
            let out = runtime
                .run_container(c.as_ref(), &value, Duration::from_secs(30))
                .await;
            assert!(out.response.is_success(), "{:?}", out.response);
            if let Some(n) = taken {
                free.lock().expect("free list").push(n);
            }
        })
    }
}

/// A blocking invoke of one of `names` (round robin) as an op for the load drivers.
fn invokes(
    api: &Api,
    names: Vec<String>,
) -> impl Fn() -> futures::future::BoxFuture<'static, ()> + Clone {
    let api = api.clone();
    let names = Arc::new(names);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    move || {
        let (api, names, next) = (api.clone(), names.clone(), next.clone());
        Box::pin(async move {
            let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % names.len();
            let ok = api.try_invoke(&names[n]).await.is_ok();
            if !ok {
                FAILED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        })
    }
}

/// Runs `serve` in a thread of its own on a two-thread Tokio runtime (the platform binaries'
/// shape, apart from the load client's thread) until the harness exits; `serve` sends its URL
/// once it listens, which this returns.
fn on_own_runtime<F, Fut>(serve: F) -> String
where
    F: FnOnce(std::sync::mpsc::Sender<String>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()>,
{
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(serve(tx))
    });
    rx.recv().expect("server started")
}

/// The `bare http` floor: an axum server on its own runtime answering `{}` to every POST;
/// returns its URL.
fn bare_http_server() -> String {
    on_own_runtime(|tx| async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("bound address");
        tx.send(format!("http://{addr}/")).expect("harness waits");
        let app =
            axum::Router::new().fallback(axum::routing::post(|| async { axum::Json(json!({})) }));
        axum::serve(listener, app)
            .await
            .expect("bare server serves");
    })
}

fn bare_op(url: &str) -> impl Fn() -> futures::future::BoxFuture<'static, ()> + Clone {
    let http = client();
    let url = Arc::new(url.to_string());
    move || {
        let (http, url) = (http.clone(), url.clone());
        Box::pin(async move {
            let r = http
                .post(url.as_str())
                .json(&json!({}))
                .send()
                .await
                .expect("bare server");
            assert_eq!(r.status(), 200);
            let _ = r.bytes().await;
        })
    }
}

/// One client on the platform (`op`) and on its floor (`direct`), in alternating rounds (3
/// in a full run), so that a slow spell of this shared machine hits both alike; returns the
/// round with the median p50 overhead, after printing every round's.
async fn one_client_rounds<F, G, Fut, Gut>(plan: &Plan, op: &F, direct: &G) -> (Stats, Stats)
where
    F: Fn() -> Fut + Clone,
    Fut: std::future::Future<Output = ()>,
    G: Fn() -> Gut + Clone,
    Gut: std::future::Future<Output = ()>,
{
    let mut rounds = Vec::new();
    for _ in 0..if plan.smoke { 1 } else { 3 } {
        let d = closed(plan, 1, direct.clone()).await;
        let e = closed(plan, 1, op.clone()).await;
        rounds.push((e, d));
    }
    let overhead = |(e, d): &(Stats, Stats)| e.p50_us - d.p50_us;
    rounds.sort_by(|a, b| overhead(a).total_cmp(&overhead(b)));
    let each: Vec<String> = rounds
        .iter()
        .map(|r| format!("{:+.3}", overhead(r) / 1000.0))
        .collect();
    println!(
        "  one client, p50 overhead of each round (ms): {}",
        each.join(", ")
    );
    rounds.swap_remove(rounds.len() / 2)
}

/// Closed loop with `clients`, after a warm-up of a fifth as many requests.
async fn closed<F, Fut>(plan: &Plan, clients: usize, op: F) -> Stats
where
    F: Fn() -> Fut + Clone,
    Fut: std::future::Future<Output = ()>,
{
    let n = plan.requests(clients);
    closed_loop(clients, n / 5, plan.max_time(), op.clone()).await;
    closed_loop(clients, n, plan.max_time(), op).await
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let plan = Plan::from_args();
    let platform = Platform::start(32_768, &["--store", "memory"], "load-platform.log");
    let api = Api::new(&platform.base);
    let idle_rss_kb = platform.rss_kb();
    let bare_url = bare_http_server();
    let bare = bare_op(&bare_url);
    let exec = ProcessExecutor::new().expect("process executor");
    println!(
        "whisk load harness: whisk-standalone (memory store, process executor) at {}; client: one tokio thread; {}",
        platform.base,
        if plan.smoke { "SMOKE run (numbers not meaningful)" } else { "full run" }
    );
    let bare_1 = closed(&plan, 1, bare.clone()).await;
    let bare_32 = closed(&plan, 32, bare.clone()).await;
    row("bare http (floor)", "c=1", &bare_1, "-", &bare_1);
    row("bare http (floor)", "c=32", &bare_32, "-", &bare_32);

    // First, on the fresh platform: 100 actions' warm containers (the memory figure per
    // warm container is taken before other scenarios fill the activation store).
    if plan.runs("many-actions") {
        many_actions(&plan, &api, &platform, idle_rss_kb).await;
    }
    for kind in kinds() {
        if !plan.runs(kind.scenario) {
            continue;
        }
        api.action(kind.scenario, kind.exec.clone()).await;
        let op = invokes(&api, vec![kind.scenario.to_string()]);
        let floor_c = floor_container(&exec, &kind, kind.scenario).await;
        let direct = direct_run(&floor_c);
        let (e1, d1) = one_client_rounds(&plan, &op, &direct).await;
        row(kind.scenario, "c=1", &e1, "direct /run", &d1);
        row(kind.scenario, "c=1", &e1, "bare http", &bare_1);
        let mut floor_pool = vec![floor_c.clone()];
        for i in 1..32 {
            floor_pool.push(floor_container(&exec, &kind, &format!("{}_{i}", kind.scenario)).await);
        }
        let direct = direct_runs(&floor_pool);
        let d32 = closed(&plan, 32, direct.clone()).await;
        let e32 = closed(&plan, 32, op.clone()).await;
        row(kind.scenario, "c=32", &e32, "direct /run", &d32);
        row(kind.scenario, "c=32", &e32, "bare http", &bare_32);
        let rate = (e1.per_sec * 0.5).max(10.0);
        let f_open = open_loop(rate, plan.open_for(), direct.clone()).await;
        let e_open = open_loop(rate, plan.open_for(), op.clone()).await;
        row(
            kind.scenario,
            &format!("{rate:.0}/s"),
            &e_open,
            "direct /run",
            &f_open,
        );
        for c in floor_pool {
            c.destroy().await.expect("floor container removed");
        }
    }

    let js = kinds().into_iter().next().expect("nodejs kind");
    if plan.runs("cold-burst") {
        let burst = if plan.smoke { 4 } else { 20 };
        let names: Vec<String> = (0..burst).map(|i| format!("cold{i:03}")).collect();
        for n in &names {
            api.action(n, js.exec.clone()).await;
        }
        let started = Instant::now();
        let timed = names.iter().map(|n| {
            let api = api.clone();
            async move {
                let t = Instant::now();
                api.invoke(n).await;
                t.elapsed()
            }
        });
        let cold = whisk_benches::stats(futures::future::join_all(timed).await);
        let cold_wall = started.elapsed();
        // Floor: the same burst of runtime processes started, initialised and run directly.
        let started = Instant::now();
        let direct = (0..burst).map(|i| {
            let (exec, js) = (&exec, &js);
            async move {
                let t = Instant::now();
                let c = floor_container(exec, js, &format!("cold{i}")).await;
                (direct_run(&c))().await;
                let took = t.elapsed();
                c.destroy().await.expect("removed");
                took
            }
        });
        let floor = whisk_benches::stats(futures::future::join_all(direct).await);
        let floor_wall = started.elapsed();
        row(
            &format!("cold burst of {burst}"),
            "at once",
            &cold,
            "direct start",
            &floor,
        );
        println!(
            "  burst wall time {:.0} ms (floor {:.0} ms, x{:.2})",
            cold_wall.as_secs_f64() * 1000.0,
            floor_wall.as_secs_f64() * 1000.0,
            cold_wall.as_secs_f64() / floor_wall.as_secs_f64()
        );
    }

    if plan.runs("trigger-rules") {
        api.put("triggers", "t10", json!({})).await;
        for i in 0..10 {
            let a = format!("rule_target{i}");
            api.action(&a, js.exec.clone()).await;
            api.put(
                "rules",
                &format!("r{i}"),
                json!({"trigger": "/_/t10", "action": format!("/_/{a}")}),
            )
            .await;
        }
        let fire = {
            let api = api.clone();
            move || {
                let api = api.clone();
                Box::pin(async move {
                    let (status, out) = api
                        .send(
                            reqwest::Method::POST,
                            "/api/v1/namespaces/_/triggers/t10",
                            json!({}),
                        )
                        .await;
                    assert_eq!(status, 202, "fire: {out}");
                }) as futures::future::BoxFuture<'static, ()>
            }
        };
        let rate = if plan.smoke { 5.0 } else { 20.0 };
        let fires = open_loop(rate, plan.open_for(), fire).await;
        row(
            "trigger with 10 rules",
            &format!("{rate:.0} fires/s"),
            &fires,
            "bare http",
            &bare_1,
        );
        // Every fire started 10 activations: wait for their records.
        let expected = fires.count * 10;
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut done = 0;
        while Instant::now() < deadline {
            done = 0;
            for i in 0..10 {
                let path = format!(
                    "/api/v1/namespaces/_/activations?name=rule_target{i}&limit=200&count=true"
                );
                let (_, out) = api.send(reqwest::Method::GET, &path, Value::Null).await;
                done += out["activations"].as_u64().unwrap_or(0);
            }
            if done >= expected {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        println!("  rule activations recorded: {done} of {expected}");
    }

    if plan.runs("sequence") {
        let mut components = vec![];
        for i in 0..10 {
            let a = format!("seq_step{i}");
            api.action(&a, js.exec.clone()).await;
            components.push(format!("/_/{a}"));
        }
        api.put(
            "actions",
            "seq10",
            json!({"exec": {"kind": "sequence", "components": components}}),
        )
        .await;
        let op = invokes(&api, vec!["seq10".into()]);
        let seq = closed(&plan, 1, op).await;
        // Floor: ten direct /run calls on one warm runtime process, one after the other.
        let floor_c = floor_container(&exec, &js, "sequence").await;
        let run = direct_run(&floor_c);
        let ten = move || {
            let run = run.clone();
            async move {
                for _ in 0..10 {
                    run().await;
                }
            }
        };
        let floor = closed(&plan, 1, ten).await;
        row("sequence of 10", "c=1", &seq, "10x /run", &floor);
        floor_c.destroy().await.expect("floor removed");
    }

    if plan.runs("kafka") {
        match std::env::var("WHISK_TEST_KAFKA") {
            Ok(brokers) => kafka(&plan, &brokers, &exec, &js).await,
            Err(_) => {
                println!("kafka: not run (set WHISK_TEST_KAFKA to a broker, as .ci/run does)")
            }
        }
    }
}

/// The warm no-op through a controller and an invoker talking over Kafka.
async fn kafka(plan: &Plan, brokers: &str, exec: &ProcessExecutor, js: &Kind) {
    let url = kafka_cluster(brokers.to_string());
    let api = Api::new(&url);
    api.action("kafka_noop", js.exec.clone()).await;
    let op = invokes(&api, vec!["kafka_noop".into()]);
    let floor_c = floor_container(exec, js, "kafka").await;
    let direct = direct_run(&floor_c);
    let d1 = closed(plan, 1, direct).await;
    let e1 = closed(plan, 1, op).await;
    row("kafka warm-nodejs", "c=1", &e1, "direct /run", &d1);
    floor_c.destroy().await.expect("floor removed");
}

/// A controller and one invoker over Kafka at `brokers` (memory store), on a runtime of their
/// own; returns the controller's URL.
fn kafka_cluster(brokers: String) -> String {
    use whisk_core::store::Store;
    use whisk_examples::cluster::{seed_keys, ControllerProcess, InvokerSettings};
    on_own_runtime(move |tx| async move {
        let bus: Arc<dyn whisk_core::bus::MessageBus> =
            Arc::new(whisk_benches::kafka_bus(&brokers, "load").await);
        let store: Arc<dyn Store> = Arc::new(whisk_store::MemoryStore::new());
        seed_keys(store.as_ref()).await.expect("keys");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let controller = ControllerProcess::start(
            store.clone(),
            bus.clone(),
            0,
            whisk_core::controller::ControllerConfig {
                namespace_limits: unthrottled(),
                ..Default::default()
            },
            whisk_core::loadbalancer::LoadBalancerConfig::default(),
            listener,
        )
        .await
        .expect("controller starts");
        let url = format!("http://{}", controller.server.addr);
        let settings = [InvokerSettings {
            id: 0,
            user_memory_mb: 1024,
            prewarm: false,
            ..InvokerSettings::default()
        }];
        let (_invokers, _) = whisk_benches::start_invokers(&store, &bus, &url, settings).await;
        tx.send(url).expect("harness waits");
        std::future::pending::<()>().await
    })
}

/// 100 distinct no-op actions invoked round robin by 32 clients, against one action by 32
/// clients; and the platform's resident memory idle and per warm container.
async fn many_actions(plan: &Plan, api: &Api, platform: &Platform, idle_rss_kb: u64) {
    let js = kinds().into_iter().next().expect("nodejs kind");
    let names: Vec<String> = (0..100).map(|i| format!("many{i:03}")).collect();
    for n in &names {
        api.action(n, js.exec.clone()).await;
    }
    for n in &names {
        api.invoke(n).await;
    }
    let warm_rss_kb = platform.rss_kb();
    println!(
        "platform memory: idle RSS {:.1} MB (target < 30 MB); with 100 warm containers {:.1} MB: {:.0} KB per warm container, its activation record included (target < 100 KB; the runtime processes themselves not counted)",
        idle_rss_kb as f64 / 1024.0,
        warm_rss_kb as f64 / 1024.0,
        warm_rss_kb.saturating_sub(idle_rss_kb) as f64 / 100.0,
    );
    let many = closed(plan, 32, invokes(api, names)).await;
    api.action("single", js.exec.clone()).await;
    let single = closed(plan, 32, invokes(api, vec!["single".into()])).await;
    row(
        "100 actions round robin",
        "c=32",
        &many,
        "1 action",
        &single,
    );
}
