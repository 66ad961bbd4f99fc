//! Durable storage end to end: the embedded store across restarts and `kill -9`, a
//! CouchDB-backed platform, CouchDB going away and coming back, corrupt documents, and
//! activation retention.

mod common;

use common::cluster::OwnCouch;
use common::{assert_error, couch_config, couchdb_url, Platform, StandaloneConfig};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::process::{Child, Command};
use std::time::Duration;
use whisk_core::entity::identity::GUEST_KEY;
use whisk_core::store::Collection;
use whisk_examples::standalone::StoreBackend;

const ECHO: &str = "function main(p) { return p.fail ? {error: 'asked to'} : {echo: p.v}; }";

fn config(store: StoreBackend) -> StandaloneConfig {
    StandaloneConfig {
        store,
        prewarm: false,
        ..Default::default()
    }
}

/// Invokes `echo` with `v` and returns the activation id of the (successful) run.
async fn run_echo(p: &Platform, v: i64) -> String {
    let r = p.invoke("echo", json!({ "v": v }), "").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["response"]["result"], json!({ "echo": v }));
    r.body["activationId"].as_str().unwrap().to_string()
}

/// Polls `path` until it answers 200 (hang guard only, no timing assertion).
async fn eventually_ok(p: &Platform, path: &str) -> common::Resp {
    for _ in 0..600 {
        let r = p.get(path).await;
        if r.status == StatusCode::OK {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{path} never answered 200");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_store_keeps_actions_and_activations_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let store = StoreBackend::Embedded(dir.path().join("data"));
    let p = Platform::start_config(config(store.clone())).await;
    p.action("echo", "nodejs:20", ECHO, json!({})).await;
    let aid = run_echo(&p, 7).await;
    p.platform.shutdown().await;

    let p = Platform::start_config(config(store)).await;
    let r = p.get("/api/v1/namespaces/_/actions/echo").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["exec"]["code"], ECHO);
    let r = p
        .get(&format!("/api/v1/namespaces/_/activations/{aid}"))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["response"]["result"], json!({"echo": 7}));
    let listed = p.get("/api/v1/namespaces/_/activations?name=echo").await;
    assert_eq!(listed.body.as_array().map(Vec::len), Some(1));
    run_echo(&p, 8).await;
    p.platform.shutdown().await;
}

/// Starts the binary on a free port over `data_dir`; returns it and its URL.
fn spawn_binary(data_dir: &std::path::Path) -> (Child, String) {
    let args = ["--port", "0", "--no-prewarm", "--data-dir"].map(std::ffi::OsStr::new);
    common::spawn_standalone(args.into_iter().chain([data_dir.as_os_str()]))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let (user, pass) = GUEST_KEY.split_once(':').unwrap();
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let (mut child, url) = spawn_binary(dir.path());
    let mut acked = Vec::new();
    for i in 0..20 {
        let r = http
            .put(format!("{url}/api/v1/namespaces/_/actions/a{i}"))
            .basic_auth(user, Some(pass))
            .json(&json!({"exec": {"kind": "nodejs:20", "code": format!("function main() {{ return {{n: {i}}}; }}")}}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        acked.push(i);
    }
    let r = http
        .post(format!(
            "{url}/api/v1/namespaces/_/actions/a3?blocking=true"
        ))
        .basic_auth(user, Some(pass))
        .send()
        .await
        .unwrap();
    let activation: Value = r.json().await.unwrap();
    let aid = activation["activationId"].as_str().unwrap().to_string();
    // The blocking response goes out before the record is stored (OpenWhisk's result
    // message comes before its completion): wait until the record is readable, i.e. stored.
    let record = format!("{url}/api/v1/namespaces/_/activations/{aid}");
    let mut stored = false;
    for _ in 0..200 {
        let r = http
            .get(&record)
            .basic_auth(user, Some(pass))
            .send()
            .await
            .unwrap();
        if r.status() == 200 {
            stored = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(stored, "the activation record was never stored");
    // SIGKILL: no shutdown code runs.
    child.kill().unwrap();
    child.wait().unwrap();

    let (mut child, url) = spawn_binary(dir.path());
    for i in acked {
        let r = http
            .get(format!("{url}/api/v1/namespaces/_/actions/a{i}"))
            .basic_auth(user, Some(pass))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "action a{i} lost");
    }
    let r = http
        .get(format!("{url}/api/v1/namespaces/_/activations/{aid}"))
        .basic_auth(user, Some(pass))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "activation lost");
    assert_eq!(
        r.json::<Value>().await.unwrap()["response"]["result"],
        json!({"n": 3})
    );
    child.kill().unwrap();
    child.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn couchdb_backed_platform_runs_and_keeps_everything() {
    let Some(url) = couchdb_url() else { return };
    let store = StoreBackend::CouchDb(couch_config(&url));
    let p = Platform::start_config(config(store.clone())).await;
    p.action("echo", "nodejs:20", ECHO, json!({})).await;
    let aid = run_echo(&p, 1).await;
    let r = p.get("/api/v1/namespaces/_/actions?limit=5").await;
    assert_eq!(r.body.as_array().map(Vec::len), Some(1), "{}", r.text);
    p.platform.shutdown().await;

    // A second platform over the same databases sees it all.
    let p = Platform::start_config(config(store)).await;
    let r = eventually_ok(&p, &format!("/api/v1/namespaces/_/activations/{aid}")).await;
    assert_eq!(r.body["response"]["result"], json!({"echo": 1}));
    let r = p.get("/api/v1/namespaces/_/activations?count=true").await;
    assert_eq!(r.body, json!({"activations": 1}));
    run_echo(&p, 2).await;
    p.platform.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn couchdb_outage_answers_503_keeps_activations_and_recovers() {
    let Some(bin) = whisk_core::testkit::service_from_env("WHISK_TEST_POUCHDB", "pouchdb-server")
    else {
        return;
    };
    let mut couch = OwnCouch::start(bin);
    let p = Platform::start_config(config(StoreBackend::CouchDb(couch_config(&couch.url())))).await;
    p.action("echo", "nodejs:20", ECHO, json!({})).await;
    run_echo(&p, 1).await;

    let stranger = p.add_user("stranger").await;

    couch.stop();
    // A key that was never looked up cannot be checked: 503, not 401.
    let r = p
        .call_as(&stranger, Method::GET, "/api/v1/namespaces/_/actions", None)
        .await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text);
    // Listings need the store: 503 with OpenWhisk's error body.
    let r = p.get("/api/v1/namespaces/_/actions").await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text);
    let msg = r.body["error"].as_str().unwrap_or_default();
    assert!(msg.starts_with("The data store is unavailable"), "{msg}");
    assert_eq!(
        r.headers["x-request-id"].to_str().unwrap(),
        r.body["code"].as_str().unwrap()
    );
    // The cached action still runs; its record waits for the store.
    let aid = run_echo(&p, 2).await;
    let r = p
        .get(&format!("/api/v1/namespaces/_/activations/{aid}"))
        .await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text);

    couch.resume();
    // No restart of the platform: the record appears, listings work again.
    let r = eventually_ok(&p, &format!("/api/v1/namespaces/_/activations/{aid}")).await;
    assert_eq!(r.body["response"]["result"], json!({"echo": 2}));
    let r = eventually_ok(&p, "/api/v1/namespaces/_/actions").await;
    assert_eq!(r.body.as_array().map(Vec::len), Some(1));
    run_echo(&p, 3).await;
    p.platform.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_document_fails_only_itself() {
    let p = Platform::start().await;
    p.action("good", "nodejs:20", ECHO, json!({})).await;
    let bad = json!({"namespace": "guest", "name": "bad", "entityType": "action", "exec": 42, "updated": 1});
    p.platform
        .store()
        .put(Collection::Whisks, "guest/bad", bad, None)
        .await
        .unwrap();
    let r = p.get("/api/v1/namespaces/_/actions/bad").await;
    assert_error(
        &r,
        StatusCode::INTERNAL_SERVER_ERROR,
        "Resource is corrupted and cannot be read.",
    );
    let r = p
        .call(
            Method::POST,
            "/api/v1/namespaces/_/actions/bad?blocking=true",
            None,
        )
        .await;
    assert_error(
        &r,
        StatusCode::INTERNAL_SERVER_ERROR,
        "Resource is corrupted and cannot be read.",
    );
    assert_eq!(
        p.get("/api/v1/namespaces/_/actions/good").await.status,
        StatusCode::OK
    );
    let r = p.get("/api/v1/namespaces/_/actions").await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "the listing still works: {}",
        r.text
    );
    run_echo_named(&p, "good").await;
    p.platform.shutdown().await;
}

async fn run_echo_named(p: &Platform, name: &str) {
    let r = p.invoke(name, json!({"v": 5}), "").await;
    assert_eq!(
        r.body["response"]["result"],
        json!({"echo": 5}),
        "{}",
        r.text
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_can_drop_successful_activations_and_sweep_old_ones() {
    let p = Platform::start_config(StandaloneConfig {
        retention: whisk_core::store::Retention {
            default: "successful=false,max-count=1".parse().unwrap(),
            ..Default::default()
        },
        retention_sweep: Duration::from_millis(100),
        ..config(StoreBackend::Memory)
    })
    .await;
    p.action("echo", "nodejs:20", ECHO, json!({})).await;
    let ok = run_echo(&p, 1).await;
    let r = p
        .get(&format!("/api/v1/namespaces/_/activations/{ok}"))
        .await;
    assert_eq!(
        r.status,
        StatusCode::NOT_FOUND,
        "successful activation not stored"
    );
    let mut failed = Vec::new();
    for _ in 0..3 {
        let r = p.invoke("echo", json!({"fail": true}), "").await;
        failed.push(r.body["activationId"].as_str().unwrap().to_string());
    }
    // The sweeper keeps the newest one.
    for _ in 0..600 {
        let r = p.get("/api/v1/namespaces/_/activations?count=true").await;
        if r.body == json!({"activations": 1}) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let r = p.get("/api/v1/namespaces/_/activations").await;
    let ids: Vec<&str> = r
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["activationId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [failed[2].as_str()]);
    p.platform.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_takes_its_store_and_retention_from_flags() {
    let Some(url) = couchdb_url() else { return };
    let prefix = format!("{}_", whisk_core::testkit::unique("whisk_bin_"));
    let (mut child, api) = common::spawn_standalone([
        "--port",
        "0",
        "--no-prewarm",
        "--store",
        "couchdb",
        "--couchdb-url",
        &url,
        "--couchdb-prefix",
        &prefix,
        "--activation-retention",
        "max-count=5",
        "--namespace-retention",
        "guest=successful=false",
    ]);
    let (user, pass) = GUEST_KEY.split_once(':').unwrap();
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let r = http
        .put(format!("{api}/api/v1/namespaces/_/actions/flagged"))
        .basic_auth(user, Some(pass))
        .json(&json!({"exec": {"kind": "nodejs:20", "code": ECHO}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // The action is a document of `<prefix>whisks` on the CouchDB server.
    let doc: Value = http
        .get(format!("{url}/{prefix}whisks/guest%2Fflagged"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["_id"], "guest/flagged", "{doc}");
    assert_eq!(doc["entityType"], "action");
    // guest stores no successful activations.
    let r = http
        .post(format!(
            "{api}/api/v1/namespaces/_/actions/flagged?blocking=true"
        ))
        .basic_auth(user, Some(pass))
        .json(&json!({"v": 1}))
        .send()
        .await
        .unwrap();
    let aid = r.json::<Value>().await.unwrap()["activationId"]
        .as_str()
        .unwrap()
        .to_string();
    let r = http
        .get(format!("{api}/api/v1/namespaces/_/activations/{aid}"))
        .basic_auth(user, Some(pass))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    child.kill().unwrap();
    child.wait().unwrap();

    // A bad policy is refused before anything starts.
    let out = Command::new(env!("CARGO_BIN_EXE_whisk-standalone"))
        .args([
            "--store",
            "memory",
            "--activation-retention",
            "max-age=soon",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("max-age"));
}

/// The embedded store keeps only hashes of keys: a key authenticates across a restart, a
/// wrong one does not, and the secret is nowhere in the store's files. An action run as an
/// identity found by namespace (a web action's owner) gets no `__OW_API_KEY`, since the
/// platform cannot know that key; run by an authenticated caller it gets the caller's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_store_keeps_keys_hashed_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let store = StoreBackend::Embedded(dir.path().join("data"));
    let p = Platform::start_config(config(store.clone())).await;
    let alice = p.add_user("alice").await;
    let code = "function main() { const k = process.env.__OW_API_KEY; \
                return {key: k === undefined ? 'none' : k}; }";
    let r = p
        .call_as(
            &alice,
            Method::PUT,
            "/api/v1/namespaces/_/actions/key",
            Some(json!({"exec": {"kind": "nodejs:20", "code": code},
                        "annotations": [{"key": "provide-api-key", "value": true},
                                        {"key": "web-export", "value": true}]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    p.platform.shutdown().await;

    let mut files = vec![dir.path().to_path_buf()];
    while let Some(f) = files.pop() {
        if f.is_dir() {
            files.extend(std::fs::read_dir(&f).unwrap().map(|e| e.unwrap().path()));
            continue;
        }
        let bytes = std::fs::read(&f).unwrap();
        let secret = alice.split_once(':').unwrap().1.as_bytes();
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret),
            "{f:?} holds alice's secret"
        );
    }

    let p = Platform::start_config(config(store)).await;
    let r = p
        .call_as(
            &alice,
            Method::POST,
            "/api/v1/namespaces/_/actions/key?blocking=true&result=true",
            None,
        )
        .await;
    assert_eq!(r.body, json!({"key": alice}), "{}", r.text);
    let r = p
        .send(
            Method::GET,
            "/api/v1/web/alice/default/key.json",
            None,
            None,
        )
        .await;
    assert_eq!(r.body, json!({"key": "none"}), "{}", r.text);
    let (uuid, _) = alice.split_once(':').unwrap();
    let wrong = format!("{uuid}:{}", "w".repeat(64));
    let r = p
        .send(Method::GET, "/api/v1/namespaces", None, Some(&wrong))
        .await;
    assert_error(
        &r,
        StatusCode::UNAUTHORIZED,
        "The supplied authentication is invalid",
    );
    // The guest key seeded on the first start authenticates as well.
    assert_eq!(p.get("/api/v1/namespaces").await.body, json!(["guest"]));
    p.platform.shutdown().await;
}
