//! Intra-container concurrency (`limits.concurrency > 1`, nodejs): activations share one
//! container at once, and each activation's logs are exactly its own.

mod common;

use common::{Platform, StandaloneConfig};
use reqwest::StatusCode;
use serde_json::{json, Value};

/// Returns its process's reference (`whisk_core::testkit::procs`), one per container.
const OVERLAP: &str = r#"
let active = 0;
async function main(p) {
  active += 1;
  const seen = active;
  console.log(`start ${p.n}`);
  await new Promise(r => setTimeout(r, 300));
  console.error(`end ${p.n}`);
  const most = Math.max(seen, active);
  active -= 1;
  const pid = require('fs').readlinkSync('/proc/self/ns/pid') + ' ' + process.pid;
  return {n: p.n, pid, most};
}"#;

#[tokio::test]
async fn concurrent_activations_share_a_container_with_separate_logs() {
    let p = Platform::start_config(StandaloneConfig {
        user_memory_mb: 256,
        max_concurrency: 4,
        prewarm: false,
        ..Default::default()
    })
    .await;
    p.action(
        "overlap",
        "nodejs:20",
        OVERLAP,
        json!({"limits": {"concurrency": 4}}),
    )
    .await;
    let runs =
        futures::future::join_all((0..4).map(|n| p.invoke("overlap", json!({"n": n}), ""))).await;
    let mut pids = Vec::new();
    let mut most = 0;
    for (n, r) in runs.iter().enumerate() {
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let result = &r.body["response"]["result"];
        assert_eq!(result["n"], n);
        pids.push(result["pid"].clone());
        most = most.max(result["most"].as_u64().unwrap());
        let logs = p.record_logs(&r.body).await;
        assert_eq!(logs.len(), 2, "exactly this activation's lines: {logs:?}");
        assert!(logs[0].ends_with(&format!("stdout: start {n}")), "{logs:?}");
        assert!(logs[1].ends_with(&format!("stderr: end {n}")), "{logs:?}");
    }
    assert!(
        pids.iter().all(|pid| *pid == pids[0]),
        "one container ran all four: {pids:?}"
    );
    assert!(
        most >= 2,
        "activations overlapped inside the container (most at once: {most})"
    );
    let m: Value = p
        .send(reqwest::Method::GET, "/invokers/0/pool", None, None)
        .await
        .body;
    assert_eq!(m["coldStarts"], 1);
}

#[tokio::test]
async fn concurrency_is_refused_above_the_configured_maximum() {
    let p = Platform::start_config(StandaloneConfig {
        max_concurrency: 4,
        prewarm: false,
        ..Default::default()
    })
    .await;
    let r = p
        .call(
            reqwest::Method::PUT,
            "/api/v1/namespaces/_/actions/x",
            Some(json!({"exec": {"kind": "nodejs:20", "code": "function main() { return {}; }"}, "limits": {"concurrency": 5}})),
        )
        .await;
    common::assert_error(
        &r,
        StatusCode::BAD_REQUEST,
        "concurrency 5 exceeds allowed threshold of 4",
    );
}
