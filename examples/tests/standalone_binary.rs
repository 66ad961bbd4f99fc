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
