//! Actions that misbehave on purpose — fork bombs, memory hogs, floods of output, actions
//! that never answer or close their stdout — through the REST API: each gives an OpenWhisk
//! activation record, its container is cleaned up, and the platform keeps serving.

mod common;

use common::Platform;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use whisk_core::testkit::procs::{self, NODE_REF, NODE_SELF};

const EXITED: &str = "The action did not produce a valid response and exited unexpectedly.";

/// The platform still runs a normal action.
async fn still_serves(p: &Platform) {
    p.action(
        "fine",
        "nodejs:20",
        "function main(a) { return {fine: true}; }",
        json!({}),
    )
    .await;
    let r = p.invoke("fine", json!({}), "&result=true").await;
    assert_eq!((r.status, r.body), (StatusCode::OK, json!({"fine": true})));
}

/// The record's log lines without their time and stream prefix.
fn messages(record: &Value) -> Vec<String> {
    record["logs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            let l = l.as_str().unwrap();
            let rest = l.split_once(": ").map_or(l, |(_, m)| m);
            rest.to_string()
        })
        .collect()
}

/// Whether the process with reference `reference` (see `whisk_core::testkit::procs`) is
/// gone (or a zombie) within `wait`.
async fn dies(reference: &str, wait: Duration) -> bool {
    let deadline = Instant::now() + wait;
    loop {
        if procs::gone(reference) {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The resident memory of this test process (the platform runs in it), in bytes.
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap()
        * 1024
}

#[tokio::test]
async fn a_fork_bomb_is_stopped_by_the_process_limit() {
    let p = Platform::start().await;
    let limited = whisk_exec::isolation::enforcement().pids_cgroup;
    // Bounded in case the limit fails: at most 500 `sleep 20` children. Spawning fails
    // (EAGAIN) at the container's process limit; the unhandled error crashes the runtime.
    p.action(
        "forkbomb",
        "nodejs:20",
        &format!(
            "const {{ spawn }} = require('child_process');\n\
             {NODE_REF}\n\
             function main() {{\n\
               for (let i = 0; i < 500; i++) {{\n\
                 const kid = spawn('sleep', ['20'], {{stdio: 'ignore'}});\n\
                 if (kid.pid) console.log('kid ' + ref(kid.pid));\n\
               }}\n\
               return new Promise(r => setTimeout(() => r({{survived: true}}), 500));\n\
             }}"
        ),
        json!({}),
    )
    .await;
    let r = p.invoke("forkbomb", json!({}), "").await;
    let kids: Vec<String> = messages(&p.record(&r.body).await)
        .iter()
        .filter_map(|m| Some(m.strip_prefix("kid ")?.to_string()))
        .collect();
    if limited {
        assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", r.text);
        assert_eq!(r.body["response"]["status"], "action developer error");
        assert_eq!(r.body["response"]["result"]["error"], EXITED);
        assert!(
            !kids.is_empty() && kids.len() < whisk_exec::isolation::PIDS_MAX as usize,
            "{} children",
            kids.len()
        );
        // The crashed container was destroyed with everything it started.
        for kid in &kids {
            assert!(dies(kid, Duration::from_secs(5)).await, "child {kid} gone");
        }
    } else {
        eprintln!("no pids cgroup on this machine: the fork bomb was not limited");
    }
    still_serves(&p).await;
}

#[tokio::test]
async fn an_action_allocating_past_its_memory_fails_and_is_removed() {
    let p = Platform::start().await;
    let enforced = whisk_exec::isolation::enforcement();
    // 2 GB in a 128 MB action.
    p.action(
        "hog",
        "nodejs:20",
        "function main() { const keep = [];\n\
           for (let i = 0; i < 2048; i++) keep.push(Buffer.alloc(1 << 20, 1));\n\
           return {allocated: keep.length}; }",
        json!({"limits": {"memory": 128}}),
    )
    .await;
    p.action(
        "pyhog",
        "python:3.11",
        "def main(a):\n    keep = b'x' * (2 * 1024 * 1024 * 1024)\n    return {'n': len(keep)}\n",
        json!({"limits": {"memory": 128}}),
    )
    .await;
    if enforced.memory_cgroup {
        let r = p.invoke("hog", json!({}), "").await;
        assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", r.text);
        assert_eq!(r.body["response"]["status"], "action developer error");
        assert_eq!(r.body["response"]["result"]["error"], EXITED);
        let logs = messages(&p.record(&r.body).await);
        assert!(
            logs.iter()
                .any(|l| l == "The action exhausted its memory and was aborted."),
            "{logs:?}"
        );
    } else {
        eprintln!("no memory cgroup on this machine: Node.js memory is not limited");
    }
    if enforced.rlimits || enforced.memory_cgroup {
        // RLIMIT_AS: MemoryError, an application error (or the OOM killer: a crash).
        let r = p.invoke("pyhog", json!({}), "").await;
        assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", r.text);
        assert!(
            r.body["response"]["result"]["error"].is_string(),
            "{}",
            r.text
        );
    }
    still_serves(&p).await;
}

#[tokio::test]
async fn an_action_printing_hundreds_of_megabytes_gets_truncated_logs() {
    let p = Platform::start().await;
    // 200 MB on stdout in 1 KB lines.
    p.action(
        "loud",
        "nodejs:20",
        "function main(a) { if (a.quiet) { console.log('quiet now'); return {}; }\n\
           const mb = ('x'.repeat(1023) + '\\n').repeat(1024);\n\
           for (let i = 0; i < 200; i++) process.stdout.write(mb);\n\
           return {printed: 200}; }",
        json!({}),
    )
    .await;
    let baseline = rss();
    let peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(baseline));
    let sampling = {
        let peak = peak.clone();
        tokio::spawn(async move {
            loop {
                peak.fetch_max(rss(), std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    let r = p.invoke("loud", json!({}), "").await;
    sampling.abort();
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        &r.text[..r.text.len().min(500)]
    );
    assert_eq!(r.body["response"]["result"], json!({"printed": 200}));
    let record = p.record(&r.body).await;
    let logs = record["logs"].as_array().unwrap();
    assert!(logs.len() < 11_000, "{} lines", logs.len());
    assert!(logs.last().unwrap().as_str().unwrap().ends_with(
        "stderr: Logs were truncated because the total bytes size exceeds the limit of 10485760 bytes."
    ));
    let grown = peak.load(std::sync::atomic::Ordering::Relaxed) - baseline;
    assert!(
        grown < 150 * 1024 * 1024,
        "the platform grew by {} MB for 200 MB of output",
        grown >> 20
    );
    // The same (warm) container is fine and its next activation has its own logs.
    let r = p.invoke("loud", json!({"quiet": true}), "").await;
    assert_eq!(messages(&p.record(&r.body).await), ["quiet now"]);
    still_serves(&p).await;
}

#[tokio::test]
async fn an_action_that_never_answers_times_out_and_is_killed() {
    let p = Platform::start().await;
    p.action(
        "spin",
        "nodejs:20",
        &format!("function main() {{ console.log('pid ' + {NODE_SELF}); while (true) {{}} }}"),
        json!({"limits": {"timeout": 1000}}),
    )
    .await;
    let r = p.invoke("spin", json!({}), "").await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", r.text);
    assert_eq!(r.body["response"]["status"], "action developer error");
    assert_eq!(
        r.body["response"]["result"],
        json!({"error": "The action exceeded its time limits of 1000 milliseconds."})
    );
    let pid = messages(&p.record(&r.body).await)
        .iter()
        .find_map(|m| Some(m.strip_prefix("pid ")?.to_string()))
        .expect("the action logged its pid");
    assert!(
        dies(&pid, Duration::from_secs(5)).await,
        "runtime {pid} killed"
    );
    still_serves(&p).await;
}

#[tokio::test]
async fn an_action_that_closes_its_stdout_gets_a_record_quickly() {
    let p = Platform::start().await;
    p.action(
        "mute",
        "nodejs:20",
        "function main() { console.log('before'); require('fs').closeSync(1);\n\
           console.error('after'); return {closed: true}; }",
        json!({}),
    )
    .await;
    p.action(
        "pymute",
        "python:3.11",
        "import os, sys\ndef main(a):\n    print('before', flush=True)\n    os.close(1)\n    \
         print('after', file=sys.stderr)\n    return {'closed': True}\n",
        json!({}),
    )
    .await;
    for name in ["mute", "pymute"] {
        let r = p.invoke(name, json!({}), "").await;
        let result = &r.body["response"]["result"];
        // The runtime may survive (the result) or crash writing its end marker to the
        // closed stdout (Node.js does: a developer error); either way a full record.
        match r.status {
            StatusCode::OK => assert_eq!(*result, json!({"closed": true}), "{name}"),
            StatusCode::BAD_GATEWAY => assert_eq!(result["error"], EXITED, "{name}"),
            other => panic!("{name}: {other} {}", r.text),
        }
        let logs = messages(&p.record(&r.body).await);
        assert!(logs.iter().any(|l| l == "before"), "{name}: {logs:?}");
        assert!(logs.iter().any(|l| l == "after"), "{name}: {logs:?}");
    }
    still_serves(&p).await;
}
