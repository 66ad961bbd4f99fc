//! The container pool seen through the platform: warm reuse, LRU eviction under memory
//! pressure, queueing when nothing fits, and removal of idle containers.

mod common;

use common::Platform;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::time::Duration;
use whisk_core::testkit::procs::{host_pid, NODE_SELF};

/// Returns its process's reference (`whisk_core::testkit::procs`): one per container.
fn noop() -> String {
    format!("function main(p) {{ return {{pid: {NODE_SELF}}}; }}")
}

fn cold(r: &Value) -> bool {
    r["annotations"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["key"] == "initTime")
}

#[tokio::test]
async fn warm_reuse_is_per_action() {
    let p = Platform::start().await;
    p.action("a", "nodejs:20", &noop(), json!({})).await;
    p.action("b", "nodejs:20", &noop(), json!({})).await;
    let a1 = p.invoke("a", json!({}), "").await.body;
    let a2 = p.invoke("a", json!({}), "").await.body;
    let b1 = p.invoke("b", json!({}), "").await.body;
    assert!(cold(&a1) && !cold(&a2) && cold(&b1));
    assert_eq!(
        a1["response"]["result"]["pid"], a2["response"]["result"]["pid"],
        "same container reused"
    );
    assert_ne!(
        a1["response"]["result"]["pid"], b1["response"]["result"]["pid"],
        "another action gets its own"
    );
    assert_eq!(p.platform.pool().live_count(), 2);
    // Updating an action makes a new revision: its old warm container is not reused.
    p.action(
        "a",
        "nodejs:20",
        &format!("function main() {{ return {{pid: {NODE_SELF}, v: 2}}; }}"),
        json!({}),
    )
    .await;
    let a3 = p.invoke("a", json!({}), "").await.body;
    assert!(cold(&a3));
    assert_eq!(a3["response"]["result"]["v"], 2);
}

#[tokio::test]
async fn least_recently_used_idle_container_is_evicted() {
    let p = Platform::start_with(512, Duration::from_secs(600)).await;
    for name in ["a", "b", "c"] {
        p.action(name, "nodejs:20", &noop(), json!({})).await;
    }
    assert!(cold(&p.invoke("a", json!({}), "").await.body));
    assert!(cold(&p.invoke("b", json!({}), "").await.body));
    assert!(
        !cold(&p.invoke("a", json!({}), "").await.body),
        "a is now the most recently used"
    );
    assert!(
        cold(&p.invoke("c", json!({}), "").await.body),
        "c fits only by evicting b"
    );
    assert_eq!(p.platform.pool().used_memory_mb(), 512);
    assert!(
        !cold(&p.invoke("a", json!({}), "").await.body),
        "a survived"
    );
    assert!(
        cold(&p.invoke("b", json!({}), "").await.body),
        "b was evicted"
    );
}

#[tokio::test]
async fn runs_queue_when_nothing_fits() {
    let p = Platform::start_with(256, Duration::from_secs(600)).await;
    let sleepy = format!(
        "function main(p) {{ return new Promise(r => setTimeout(() => r({{pid: {NODE_SELF}}}), 200)); }}"
    );
    p.action("s", "nodejs:20", &sleepy, json!({})).await;
    let results = futures::future::join_all((0..4).map(|_| p.invoke("s", json!({}), ""))).await;
    let pids: Vec<Value> = results
        .iter()
        .map(|r| r.body["response"]["result"]["pid"].clone())
        .collect();
    assert!(results.iter().all(|r| r.status == StatusCode::OK));
    assert!(
        pids.iter().all(|pid| *pid == pids[0]),
        "one container served all four in turn"
    );
    assert_eq!(results.iter().filter(|r| cold(&r.body)).count(), 1);
    assert_eq!(p.platform.pool().live_count(), 1);
    // An action larger than the whole budget fails as a whisk error instead of waiting forever.
    p.action(
        "big",
        "nodejs:20",
        &noop(),
        json!({"limits": {"memory": 512}}),
    )
    .await;
    let r = p.invoke("big", json!({}), "").await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(r.body["response"]["status"], "whisk internal error");
}

#[tokio::test]
async fn back_to_back_runs_keep_their_own_logs() {
    // The container is released before its logs are collected, so the next run may start
    // while the last one's logs are still being taken: each record still has its own lines.
    let p = Platform::start().await;
    let code =
        "function main(p) { console.log('line ' + p.i); console.error('err ' + p.i); return {}; }";
    p.action("chatty", "nodejs:20", code, json!({})).await;
    let mut ids = Vec::new();
    for i in 0..10 {
        let r = p.invoke("chatty", json!({"i": i}), "").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        ids.push(r.body);
    }
    for (i, activation) in ids.iter().enumerate() {
        let lines = p.record_logs(activation).await;
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(
            lines
                .iter()
                .any(|l| l.ends_with(&format!("stdout: line {i}"))),
            "{lines:?}"
        );
        assert!(
            lines
                .iter()
                .any(|l| l.ends_with(&format!("stderr: err {i}"))),
            "{lines:?}"
        );
    }
    assert_eq!(p.platform.pool().live_count(), 1);
}

/// `n` concurrent runs of a no-op nodejs action on a fresh pool with `max_cold_starts`;
/// returns the pool's cold starts.
async fn concurrent_first_runs(n: usize, max_cold_starts: Option<usize>) -> u64 {
    use std::sync::Arc;
    use whisk_core::controller::ControllerConfig;
    use whisk_core::entity::{WhiskAction, WhiskActionPut};
    use whisk_core::invoker::pool::{ContainerPool, Job, PoolConfig};
    use whisk_core::runtime::{ActivationContext, RuntimeClient};
    let put: WhiskActionPut =
        serde_json::from_value(json!({"exec": {"kind": "nodejs:20", "code": &noop()}})).unwrap();
    let config = ControllerConfig::default();
    let action = Arc::new(
        WhiskAction::create("guest", "burst", put, &config.manifest, &config.limits, 0).unwrap(),
    );
    let pool = ContainerPool::new(
        Arc::new(whisk_exec::ProcessExecutor::new().unwrap()),
        RuntimeClient::default(),
        PoolConfig {
            max_cold_starts,
            ..PoolConfig::default()
        },
    );
    let job = |i: usize| Job {
        action: action.clone(),
        revision: "1".into(),
        namespace: "guest".into(),
        context: ActivationContext {
            api_key: None,
            namespace: "guest".into(),
            action_name: "/guest/burst".into(),
            action_version: "0.0.1".into(),
            activation_id: format!("{i:032x}"),
            transaction_id: "t".into(),
            deadline_ms: 0,
        },
        args: json!({}),
        init_env: Default::default(),
    };
    let outcomes = futures::future::join_all((0..n).map(|i| pool.run(job(i)))).await;
    assert!(
        outcomes.iter().all(|o| o.response.is_success()),
        "{outcomes:?}"
    );
    let cold = pool.metrics().cold_starts;
    pool.shutdown().await;
    cold
}

#[tokio::test]
async fn a_burst_of_first_runs_starts_only_as_many_containers_as_may_start_at_once() {
    // One new container at a time: the first one serves most of the burst while the second
    // starts (runs take a millisecond, starts a hundred or more).
    let capped = concurrent_first_runs(6, Some(1)).await;
    assert!((1..=2).contains(&capped), "{capped} cold starts");
    // OpenWhisk's pool: a container for every run that finds none idle.
    assert_eq!(concurrent_first_runs(6, None).await, 6);
}

#[tokio::test]
async fn idle_containers_are_removed_after_the_timeout() {
    let p = Platform::start_with(1024, Duration::from_millis(300)).await;
    p.action("a", "nodejs:20", &noop(), json!({})).await;
    p.invoke("a", json!({}), "").await;
    assert_eq!(p.platform.pool().live_count(), 1);
    let mut gone = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if p.platform.pool().live_count() == 0 {
            gone = true;
            break;
        }
    }
    assert!(gone, "idle container removed");
    assert_eq!(p.platform.pool().used_memory_mb(), 0);
    assert!(cold(&p.invoke("a", json!({}), "").await.body));
}

/// Polls the pool's metrics until `done` holds (or 10 s pass).
async fn metrics_until(p: &Platform, done: impl Fn(&Value) -> bool) -> Value {
    let mut last = Value::Null;
    for _ in 0..200 {
        last = p
            .send(reqwest::Method::GET, "/invokers/0/pool", None, None)
            .await
            .body;
        if done(&last) {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("pool never reached the expected state: {last}");
}

#[tokio::test]
async fn prewarmed_stem_cells_serve_cold_starts_and_are_replaced() {
    let p = Platform::start_config(common::StandaloneConfig {
        user_memory_mb: 2048,
        prewarm: true,
        ..Default::default()
    })
    .await;
    // The bundled manifest keeps two nodejs:20 and one python:3.11 stem cell of 256 MB.
    let m = metrics_until(&p, |m| m["prewarmed"] == 3).await;
    assert_eq!(m["usedMemoryMb"], 768);
    p.action("a", "nodejs:20", &noop(), json!({})).await;
    p.action(
        "py",
        "python:3.11",
        "def main(a):\n    return {'ok': True}\n",
        json!({}),
    )
    .await;
    let r = p.invoke("a", json!({}), "").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(cold(&r.body), "a prewarmed container still runs /init");
    assert_eq!(
        p.invoke("py", json!({}), "&result=true").await.body,
        json!({"ok": true})
    );
    let m = metrics_until(&p, |m| m["prewarmed"] == 3).await;
    assert_eq!(
        (m["prewarmStarts"].clone(), m["coldStarts"].clone()),
        (json!(2), json!(0))
    );
    assert_eq!(m["idle"], 2, "the used stem cells are now warm containers");
    // A kind or memory without stem cells starts cold.
    p.action(
        "big",
        "nodejs:20",
        &noop(),
        json!({"limits": {"memory": 512}}),
    )
    .await;
    p.invoke("big", json!({}), "").await;
    assert_eq!(
        metrics_until(&p, |m| m["coldStarts"] == 1).await["prewarmed"],
        3
    );
}

#[tokio::test]
async fn a_manifest_file_overrides_the_stem_cells() {
    let dir = std::env::temp_dir().join(format!("whisk-manifest-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("runtimes.json");
    std::fs::write(
        &file,
        r#"{"runtimes": {
            "nodejs": [{"kind": "nodejs:20", "default": true, "image": {"name": "n"}}],
            "python": [{"kind": "python:3.11", "default": true, "image": {"name": "p"},
                        "stemCells": [{"count": 1, "memory": "128 MB"}]}]}}"#,
    )
    .unwrap();
    let manifest = whisk_core::entity::RuntimeManifest::from_file(&file).unwrap();
    let p = Platform::start_config(common::StandaloneConfig {
        manifest,
        prewarm: true,
        ..Default::default()
    })
    .await;
    let m = metrics_until(&p, |m| m["prewarmed"] == 1).await;
    assert_eq!(m["usedMemoryMb"], 128);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn idle_containers_are_paused_and_resumed_on_use() {
    let p = Platform::start_config(common::StandaloneConfig {
        pause_grace: Duration::from_millis(200),
        prewarm: false,
        ..Default::default()
    })
    .await;
    p.action("a", "nodejs:20", &noop(), json!({})).await;
    let first = p.invoke("a", json!({}), "").await.body;
    let reference = first["response"]["result"]["pid"].clone();
    let pid = host_pid(reference.as_str().unwrap()).expect("running");
    metrics_until(&p, |m| m["paused"] == 1).await;
    let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let state = state[state.rfind(')').unwrap() + 2..]
        .chars()
        .next()
        .unwrap();
    assert_eq!(state, 'T', "the runtime process is stopped while paused");
    let again = p.invoke("a", json!({}), "").await.body;
    assert_eq!(
        again["response"]["result"]["pid"], reference,
        "same container, resumed"
    );
    assert!(!cold(&again));
    let m = metrics_until(&p, |m| m["resumes"] == 1).await;
    assert_eq!(
        (m["pauses"].as_u64().unwrap() >= 1, m["warmStarts"].clone()),
        (true, json!(1))
    );
}
