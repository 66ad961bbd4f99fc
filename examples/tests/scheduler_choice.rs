//! `--scheduler`: `whisk-standalone` runs actions with each scheduler and refuses an unknown
//! one.

mod common;

use std::time::{Duration, Instant};
use whisk_core::entity::identity::GUEST_KEY;
use whisk_examples::cli::SchedulerChoice;

/// Starts `whisk-standalone --scheduler {scheduler}`, runs an action, stops it with SIGTERM.
async fn runs_an_action_with(scheduler: &str) {
    let (mut child, url) = common::spawn_standalone([
        "--port",
        "0",
        "--store",
        "memory",
        "--no-feeds",
        "--scheduler",
        scheduler,
    ]);
    let (user, pass) = GUEST_KEY.split_once(':').unwrap();
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let r = http
        .put(format!("{url}/api/v1/namespaces/_/actions/hello"))
        .basic_auth(user, Some(pass))
        .json(&serde_json::json!({"exec": {"kind": "nodejs:20",
            "code": "function main(p) { return {hello: p.name}; }"}}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{scheduler}: {}", r.status());
    for _ in 0..2 {
        let r = http
            .post(format!(
                "{url}/api/v1/namespaces/_/actions/hello?blocking=true&result=true"
            ))
            .basic_auth(user, Some(pass))
            .json(&serde_json::json!({"name": scheduler}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{scheduler}");
        assert_eq!(
            r.json::<serde_json::Value>().await.unwrap(),
            serde_json::json!({"hello": scheduler})
        );
    }
    let pid = child.id().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        assert!(started.elapsed() < Duration::from_secs(15), "did not stop");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test]
async fn sharding_runs_actions() {
    runs_an_action_with("sharding").await;
}

#[tokio::test]
async fn warm_aware_runs_actions() {
    runs_an_action_with("warm-aware").await;
}

#[test]
fn an_unknown_scheduler_is_a_usage_error() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_whisk-standalone"))
        .args(["--port", "0", "--store", "memory", "--scheduler", "random"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "clap's usage error exit code");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("invalid value 'random'") && stderr.contains("warm-aware"),
        "{stderr}"
    );
}

#[test]
fn choices_parse_from_their_names() {
    for c in SchedulerChoice::ALL {
        assert_eq!(c.name().parse::<SchedulerChoice>(), Ok(c));
        assert_eq!(c.to_string(), c.name());
    }
    assert_eq!(SchedulerChoice::default(), SchedulerChoice::LeastLoaded);
    assert!("random".parse::<SchedulerChoice>().is_err());
}

/// The invoker's pings on topic `health` carry its pool (whisk's extension of OpenWhisk's
/// ping), which the warm-aware scheduler places by: after a run, its warm container is
/// reported idle with its keep-alive left.
#[tokio::test]
async fn invoker_pings_report_their_warm_containers() {
    use whisk_core::message::PingMessage;
    let p = common::Platform::start().await;
    p.action(
        "reported",
        "nodejs:20",
        "function main() { return {}; }",
        serde_json::json!({}),
    )
    .await;
    assert_eq!(
        p.invoke("reported", serde_json::json!({}), "").await.status,
        200
    );
    let mut health = p
        .platform
        .bus()
        .subscribe("health", "ping-reader")
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let container = loop {
        assert!(Instant::now() < deadline, "no ping reported the container");
        let found = health
            .poll(100, Duration::from_millis(500))
            .await
            .unwrap()
            .iter()
            .filter_map(|b| PingMessage::parse(b).ok()?.pool)
            .flat_map(|pool| pool.containers)
            .find(|c| c.action == "guest/reported" && !c.busy);
        if let Some(c) = found {
            break c;
        }
    };
    assert_eq!(container.memory_mb, 256);
    assert!(container.expires_in_ms > 0 && container.expires_in_ms <= 600_000);
    assert!(container.expires_in_ms + container.idle_ms <= 600_000);
}
