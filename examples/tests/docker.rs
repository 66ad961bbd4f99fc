//! The platform on the Docker executor, against the Docker daemon `.ci/run` starts
//! (`WHISK_TEST_DOCKER`) with the images `whisk-exec/images/build.sh` builds there. Every test
//! makes its own Docker network and its own invoker name, so its containers are its own.

mod common;

use common::{Platform, StandaloneConfig};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::time::Duration;
use whisk_core::testkit::docker::{docker, TestNetwork as Network};
use whisk_examples::cluster::ExecutorChoice;

/// Longest any wait in these tests may take before it counts as a hang.
const HANG_GUARD: Duration = Duration::from_secs(60);

/// The daemon of the tests (`unix:///...`), or `None` to skip outside CI.
fn daemon() -> Option<String> {
    whisk_core::testkit::service_from_env("WHISK_TEST_DOCKER", "Docker daemon")
}

/// Waits (hang guard only) until no container name starts with `prefix`.
async fn until_no_containers(net: &Network, prefix: &str) {
    let deadline = tokio::time::Instant::now() + HANG_GUARD;
    loop {
        let left = net.containers(prefix);
        if left.is_empty() {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "containers left: {left:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A standalone platform running containers on the daemon at `host`, on `network`, as the
/// invoker named `unique` (its containers are named `wsk{unique}0_...`).
async fn platform(host: &str, network: &Network, unique: &str) -> Platform {
    Platform::start_config(StandaloneConfig {
        user_memory_mb: 1024,
        prewarm: false,
        executor: ExecutorChoice::Docker {
            host: Some(host.to_string()),
            network: network.name.clone(),
        },
        unique_name: unique.to_string(),
        ..Default::default()
    })
    .await
}

fn unique_name() -> String {
    whisk_core::testkit::unique("t")
}

/// Creates `name` with `exec` and `limits` as guest.
async fn create(p: &Platform, name: &str, exec: Value, limits: Value) {
    let r = p
        .call(
            reqwest::Method::PUT,
            &format!("/api/v1/namespaces/_/actions/{name}?overwrite=true"),
            Some(json!({"exec": exec, "limits": limits})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "creating {name}: {}", r.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runtime_images_and_blackbox_images_run_actions() {
    let Some(host) = daemon() else { return };
    let net = Network::create(&host);
    let unique = unique_name();
    let p = platform(&host, &net, &unique).await;

    let code =
        "function main(p) { console.log('hello ' + p.name); return {greeting: 'hi ' + p.name}; }";
    create(
        &p,
        "hello",
        json!({"kind": "nodejs:20", "code": code}),
        json!({}),
    )
    .await;
    let r = p.invoke("hello", json!({"name": "docker"}), "").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        r.body["response"]["result"],
        json!({"greeting": "hi docker"})
    );
    let record = p.record(&r.body).await;
    let logs = record["logs"].as_array().unwrap();
    assert_eq!(logs.len(), 1, "{logs:?}");
    assert!(
        logs[0].as_str().unwrap().ends_with("stdout: hello docker"),
        "{logs:?}"
    );
    // The container is named as OpenWhisk names it and stays warm for the next invoke.
    let names = net.containers(&format!("wsk{unique}0_"));
    assert_eq!(names.len(), 1, "{names:?}");
    assert!(names[0].ends_with("_guest_hello"), "{names:?}");
    let r = p.invoke("hello", json!({"name": "again"}), "").await;
    assert_eq!(
        r.body["response"]["result"],
        json!({"greeting": "hi again"})
    );
    assert_eq!(net.containers(&format!("wsk{unique}0_")), names);

    // A blackbox action runs the image it names.
    create(
        &p,
        "custom",
        json!({"kind": "blackbox", "image": "whisk/blackbox-echo:1"}),
        json!({}),
    )
    .await;
    let r = p.invoke("custom", json!({"n": 7}), "").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        r.body["response"]["result"],
        json!({"echo": {"n": 7}, "image": "whisk/blackbox-echo:1"})
    );
    assert_eq!(net.containers(&format!("wsk{unique}0_")).len(), 2);

    p.platform.shutdown().await;
    until_no_containers(&net, &format!("wsk{unique}0_")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_end_in_openwhisk_records_and_leave_no_container() {
    let Some(host) = daemon() else { return };
    let net = Network::create(&host);
    let unique = unique_name();
    let prefix = format!("wsk{unique}0_");
    let p = platform(&host, &net, &unique).await;

    // An image that is not there and cannot be pulled: its registry is a closed loopback
    // port, so the daemon's pull fails at once without leaving the machine.
    let missing = "127.0.0.1:9/whisk/no-such-image:1";
    create(
        &p,
        "missing",
        json!({"kind": "blackbox", "image": missing}),
        json!({}),
    )
    .await;
    let r = p.invoke("missing", json!({}), "").await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", r.text);
    assert_eq!(r.body["response"]["status"], "action developer error");
    assert_eq!(
        r.body["response"]["result"],
        json!({ "error": format!("Failed to pull container image '{missing}'.") })
    );
    until_no_containers(&net, &prefix).await;

    // A container that never opens its port: the init times out.
    create(
        &p,
        "silent",
        json!({"kind": "blackbox", "image": "whisk/blackbox-silent:1"}),
        json!({"timeout": 3000}),
    )
    .await;
    let r = p.invoke("silent", json!({}), "").await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", r.text);
    assert_eq!(r.body["response"]["status"], "action developer error");
    assert_eq!(
        r.body["response"]["result"],
        json!({"error": "The action exceeded its time limits of 3000 milliseconds during initialization."})
    );
    until_no_containers(&net, &prefix).await;

    // A container killed for exceeding its memory limit.
    let hog = "function main() { const keep = []; for (;;) keep.push(Buffer.alloc(8 << 20, 1)); }";
    create(
        &p,
        "hog",
        json!({"kind": "nodejs:20", "code": hog}),
        json!({"memory": 128}),
    )
    .await;
    let r = p.invoke("hog", json!({}), "").await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", r.text);
    assert_eq!(r.body["response"]["status"], "action developer error");
    assert_eq!(
        r.body["response"]["result"],
        json!({"error": "The action exhausted its memory and was aborted."})
    );
    until_no_containers(&net, &prefix).await;
    p.platform.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leftover_containers_of_the_invoker_are_removed_at_start() {
    let Some(host) = daemon() else { return };
    let net = Network::create(&host);
    let unique = unique_name();
    let leftover = format!("wsk{unique}0_41_guest_old");
    let other = format!("other{unique}");
    for name in [&leftover, &other] {
        docker(
            &host,
            &[
                "run",
                "-d",
                "--name",
                name,
                "--network",
                &net.name,
                "openwhisk/action-nodejs-v20:nightly",
                "/bin/sleep",
                "1000",
            ],
        );
    }
    let p = platform(&host, &net, &unique).await;
    assert!(
        net.containers(&leftover).is_empty(),
        "the leftover is removed"
    );
    assert_eq!(
        net.containers(&other),
        vec![other.clone()],
        "others are kept"
    );
    docker(&host, &["rm", "-f", &other]);
    p.platform.shutdown().await;
}

/// A unix-socket relay to the daemon, so a test can make the daemon unreachable.
struct Relay {
    path: std::path::PathBuf,
    task: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl Relay {
    fn start(daemon_socket: &str) -> Relay {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("docker.sock");
        let listener = tokio::net::UnixListener::bind(&path).unwrap();
        let target = daemon_socket.to_string();
        let task = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let target = target.clone();
                tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::UnixStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        Relay {
            path,
            task,
            _dir: dir,
        }
    }

    /// Stops accepting and removes the socket: new connections are refused.
    fn cut(&self) {
        self.task.abort();
        let _ = std::fs::remove_file(&self.path);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_daemon_gives_a_whisk_error_record() {
    let Some(host) = daemon() else { return };
    let socket = host.strip_prefix("unix://").unwrap_or(&host).to_string();
    let net = Network::create(&host);
    let unique = unique_name();
    let relay = Relay::start(&socket);
    let relayed = format!("unix://{}", relay.path.display());
    let p = platform(&relayed, &net, &unique).await;
    create(
        &p,
        "echo",
        json!({"kind": "nodejs:20", "code": "function main(p) { return p; }"}),
        json!({}),
    )
    .await;
    assert_eq!(
        p.invoke("echo", json!({"a": 1}), "").await.status,
        StatusCode::OK
    );

    relay.cut();
    // A new action needs a new container, which the daemon can no longer start.
    create(
        &p,
        "fresh",
        json!({"kind": "nodejs:20", "code": "function main(p) { return p; }"}),
        json!({}),
    )
    .await;
    let r = tokio::time::timeout(HANG_GUARD, p.invoke("fresh", json!({}), ""))
        .await
        .expect("the invoke answers");
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR, "{}", r.text);
    assert_eq!(r.body["response"]["status"], "whisk internal error");
    assert_eq!(
        r.body["response"]["result"],
        json!({"error": "Failed to provision resources to run the action."})
    );
    let id = r.body["activationId"].as_str().unwrap();
    let stored = p
        .get(&format!("/api/v1/namespaces/_/activations/{id}"))
        .await;
    assert_eq!(stored.status, StatusCode::OK);
    assert_eq!(stored.body["response"]["status"], "whisk internal error");
    p.platform.shutdown().await;
    // The warm container of `echo` could not be removed through the cut relay.
    for name in net.containers(&format!("wsk{unique}0_")) {
        docker(&host, &["rm", "-f", &name]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_leaves_no_container_even_with_starts_in_flight() {
    let Some(host) = daemon() else { return };
    let net = Network::create(&host);
    let unique = unique_name();
    // Prewarming only nodejs:20 (its image is on the daemon): two stem cells start at once.
    let mut manifest = whisk_core::entity::RuntimeManifest::default();
    manifest.runtimes.retain(|family, _| family == "nodejs");
    manifest.blackboxes.clear();
    let p = Platform::start_config(StandaloneConfig {
        user_memory_mb: 1024,
        prewarm: true,
        manifest,
        executor: ExecutorChoice::Docker {
            host: Some(host.clone()),
            network: net.name.clone(),
        },
        unique_name: unique.clone(),
        ..Default::default()
    })
    .await;
    // Shut down while the stem cells are still starting: when shutdown returns, none is
    // left, and none appears later (a start still in flight would create it after).
    p.platform.shutdown().await;
    for _ in 0..20 {
        let left = net.containers(&format!("wsk{unique}0_"));
        assert!(left.is_empty(), "left behind: {left:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
