//! The `whisk-standalone` binary: prints where it listens, serves, and leaves no runtime
//! process behind on Ctrl-C (SIGINT) or SIGTERM.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};
use whisk_core::entity::identity::GUEST_KEY;

/// Pids whose parent is `parent`.
fn children(parent: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // Fields after the parenthesised command: state, ppid, ...
        let after = &stat[stat.rfind(')').unwrap() + 2..];
        let ppid: u32 = after.split(' ').nth(1).unwrap().parse().unwrap();
        if ppid == parent {
            out.push(pid);
        }
    }
    out
}

async fn stops_cleanly_on(signal: &str) {
    let (mut child, url) = common::spawn_standalone(["--port", "0", "--store", "memory"]);
    let (user, pass) = GUEST_KEY.split_once(':').unwrap();
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    for (name, kind, code) in [
        ("n", "nodejs:20", "function main() { return {ok: true}; }"),
        (
            "p",
            "python:3.11",
            "def main(a):\n    return {'ok': True}\n",
        ),
    ] {
        let r = http
            .put(format!("{url}/api/v1/namespaces/_/actions/{name}"))
            .basic_auth(user, Some(pass))
            .json(&serde_json::json!({"exec": {"kind": kind, "code": code}}))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
        let r = http
            .post(format!(
                "{url}/api/v1/namespaces/_/actions/{name}?blocking=true&result=true"
            ))
            .basic_auth(user, Some(pass))
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.json::<serde_json::Value>().await.unwrap(),
            serde_json::json!({"ok": true})
        );
    }
    let runtimes = children(child.id());
    assert!(
        runtimes.len() >= 2,
        "runtime processes are children of the platform: {runtimes:?}"
    );
    assert!(Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap()
        .success());
    let started = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "platform did not stop"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "clean exit: {status:?}");
    for pid in runtimes {
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "runtime {pid} left behind"
        );
    }
}

#[tokio::test]
async fn ctrl_c_removes_every_runtime_process() {
    stops_cleanly_on("-INT").await;
}

#[tokio::test]
async fn sigterm_removes_every_runtime_process() {
    stops_cleanly_on("-TERM").await;
}

/// Waits (up to `limit`) for `child` to exit; its status.
async fn exit_of(child: &mut std::process::Child, limit: Duration) -> std::process::ExitStatus {
    let started = Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        assert!(started.elapsed() < limit, "platform did not stop");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// SIGTERM drains: a blocking invoke in flight gets its result and non-blocking activations
/// that end within `--drain-timeout` get their records, while one that runs past it is
/// recorded as a `whisk internal error`. Each has exactly one record (read after a restart on
/// the same data), and no runtime process is left.
#[tokio::test]
async fn sigterm_drains_activations_in_flight_and_records_the_rest() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().to_str().unwrap();
    let args = ["--port", "0", "--store", "embedded", "--data-dir", dir];
    let (mut child, url) = common::spawn_standalone(args.iter().chain(&["--drain-timeout", "5"]));
    let (user, pass) = GUEST_KEY.split_once(':').unwrap();
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let sleeper = |ms: u64| {
        serde_json::json!({
            "exec": {"kind": "nodejs:20", "code": format!(
                "function main() {{ return new Promise(r => setTimeout(() => r({{ok: true}}), {ms})); }}"
            )},
            "limits": {"timeout": 120000}
        })
    };
    for (name, ms) in [("quick", 1500), ("stuck", 100_000)] {
        let r = http
            .put(format!("{url}/api/v1/namespaces/_/actions/{name}"))
            .basic_auth(user, Some(pass))
            .json(&sleeper(ms))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
    }
    let invoke = |name: &str, blocking: bool| {
        http.post(format!(
            "{url}/api/v1/namespaces/_/actions/{name}?blocking={blocking}&result={blocking}"
        ))
        .basic_auth(user, Some(pass))
        .send()
    };
    let mut ids = Vec::new();
    for name in ["quick", "quick", "stuck"] {
        let r = invoke(name, false).await.unwrap();
        assert_eq!(r.status(), 202);
        let body: serde_json::Value = r.json().await.unwrap();
        ids.push((name, body["activationId"].as_str().unwrap().to_string()));
    }
    let blocking = tokio::spawn(invoke("quick", true));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let runtimes = children(child.id());
    assert!(!runtimes.is_empty());
    let addr = url.trim_start_matches("http://").to_string();
    std::net::TcpStream::connect(&addr).expect("accepting before SIGTERM");

    assert!(Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success());
    // New connections are refused while the drain goes on (the stuck activation holds the
    // process for the whole --drain-timeout).
    loop {
        if std::net::TcpStream::connect(&addr).is_err() {
            break;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the platform exited before it stopped accepting"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        child.try_wait().unwrap().is_none(),
        "still draining when it stopped accepting"
    );
    let answer = blocking
        .await
        .unwrap()
        .expect("the blocking call is answered");
    assert_eq!(answer.status(), 200);
    assert_eq!(
        answer.json::<serde_json::Value>().await.unwrap(),
        serde_json::json!({"ok": true})
    );
    let status = exit_of(&mut child, Duration::from_secs(60)).await;
    assert!(status.success(), "clean exit: {status:?}");
    for pid in runtimes {
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "runtime {pid} left behind"
        );
    }

    let (mut again, url) = common::spawn_standalone(args);
    for (name, id) in &ids {
        let r = http
            .get(format!("{url}/api/v1/namespaces/_/activations/{id}"))
            .basic_auth(user, Some(pass))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{name} {id} has its record");
        let record: serde_json::Value = r.json().await.unwrap();
        let response = &record["response"];
        match *name {
            "quick" => assert_eq!(response["status"], "success", "{record}"),
            _ => {
                assert_eq!(response["status"], "whisk internal error", "{record}");
                assert_eq!(
                    response["result"]["error"],
                    whisk_core::invoker::DRAIN_MESSAGE,
                    "{record}"
                );
            }
        }
    }
    let _ = again.kill();
    let _ = again.wait();
}
