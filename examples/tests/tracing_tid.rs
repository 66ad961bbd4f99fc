//! Structured logging: every log line of one request's path (controller, bus, invoker)
//! carries the request's transaction id (`tid=`, from `X-Request-ID`); and no key secret ever
//! reaches the log, at debug level, whatever the platform does.

mod common;

use common::Platform;
use reqwest::StatusCode;
use serde_json::json;
use std::io::Write;
use std::sync::{Arc, Mutex};
use whisk_core::entity::identity::{AuthKey, GUEST_KEY};

/// A `MakeWriter` appending to a shared in-memory buffer.
#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Buffer {
    type Writer = Buffer;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// The log of this test binary: every event of every crate at debug level, captured by one
/// global subscriber (the platform's tasks run on other threads, where a scoped default is
/// not set), shared by the tests here.
fn captured() -> Buffer {
    static BUF: std::sync::OnceLock<Buffer> = std::sync::OnceLock::new();
    BUF.get_or_init(|| {
        let buf = Buffer::default();
        tracing::subscriber::set_global_default(
            tracing_subscriber::fmt()
                .with_writer(buf.clone())
                .with_ansi(false)
                .with_env_filter("debug")
                .finish(),
        )
        .expect("the only subscriber of this test binary");
        buf
    })
    .clone()
}

impl Buffer {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).to_string()
    }
}

const TID: &str = "test-tid-12345";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_line_of_a_request_carries_its_tid() {
    let buf = captured();

    let p = Platform::start().await;
    p.action(
        "tidecho",
        "nodejs:20",
        "function main(p) { return p; }",
        json!({}),
    )
    .await;
    let (user, pass) = GUEST_KEY.split_once(':').unwrap();
    let r = p
        .http
        .post(format!(
            "{}/api/v1/namespaces/_/actions/tidecho?blocking=true",
            p.base
        ))
        .basic_auth(user, Some(pass))
        .header("x-request-id", TID)
        .json(&json!({"x": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["x-request-id"].to_str().unwrap(), TID);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["response"]["result"], json!({"x": 1}));

    // The ack is processed (and logged) before the blocking caller is answered; give
    // background lines a moment anyway.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let logs = buf.text();
    let line = |msg: &str| {
        logs.lines()
            .find(|l| l.contains(msg) && l.contains(TID))
            .unwrap_or_else(|| panic!("no `{msg}` line with {TID} in:\n{logs}"))
            .to_string()
    };
    // Controller side: the load balancer publishing the activation, inside the request span.
    let published = line("activation published");
    assert!(published.contains(&format!("tid={TID}")), "{published}");
    // Invoker side: the activation span, from the message's transid.
    let received = line("activation received");
    assert!(received.contains(&format!("tid={TID}")), "{received}");
    // Every line naming this activation carries the tid.
    let id = body["activationId"].as_str().unwrap();
    for l in logs.lines().filter(|l| l.contains(id)) {
        assert!(l.contains(TID), "line without the tid: {l}");
    }
}

/// The secret and the `uuid:key` of `key` appear nowhere in `logs`.
fn assert_absent(logs: &str, key: &AuthKey, whose: &str) {
    for (what, secret) in [("secret", key.key.clone()), ("uuid:key", key.compact())] {
        if let Some(line) = logs.lines().find(|l| l.contains(&secret)) {
            panic!("{whose}'s key {what} was logged: {line}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_never_reach_the_log() {
    use reqwest::Method;
    use whisk_core::admin;
    let buf = captured();
    let dir = tempfile::tempdir().unwrap();
    let p = Platform::start_config(common::StandaloneConfig {
        store: whisk_examples::standalone::StoreBackend::Embedded(dir.path().join("data")),
        prewarm: false,
        ..Default::default()
    })
    .await;
    let store = p.platform.store().as_ref();

    // Administration: create, read, look up, list, block, unblock, and its errors.
    let alice = admin::create_user(store, "alice", None, None)
        .await
        .unwrap();
    let given = AuthKey::generate();
    admin::create_user(store, "alice", Some("alice-two"), Some(given.clone()))
        .await
        .unwrap();
    for attempt in [
        admin::create_user(store, "bobby", None, Some(given.clone())).await,
        admin::create_user(store, "alice", None, None).await,
    ] {
        assert!(attempt.is_err());
    }
    admin::get_user(store, "alice").await.unwrap();
    assert!(
        admin::get_key(store, "alice", None).await.is_err(),
        "hashed"
    );
    admin::whois(store, &given).await.unwrap();
    assert!(admin::whois(store, &AuthKey::generate()).await.is_err());
    admin::list_namespace(store, "alice").await.unwrap();
    admin::block(store, "alice").await.unwrap();
    admin::unblock(store, "alice").await.unwrap();
    admin::delete_user(store, "alice", Some("alice-two"))
        .await
        .unwrap();

    // Creates and invokes, with the key handed to the action (`provide-api-key`), as alice
    // and as guest; a web action; a trigger fired through a rule.
    let echo = json!({"kind": "nodejs:20", "code": "function main(p) { return {ok: true}; }"});
    let keyed = json!([{"key": "provide-api-key", "value": true},
                       {"key": "web-export", "value": true},
                       {"key": "require-whisk-auth", "value": true}]);
    let guest = GUEST_KEY;
    let alice_key = alice.compact();
    for auth in [guest, alice_key.as_str()] {
        let put = |path: &'static str, body: serde_json::Value| {
            p.call_as(auth, Method::PUT, path, Some(body))
        };
        let r = put(
            "/api/v1/namespaces/_/actions/keyed?overwrite=true",
            json!({"exec": echo, "annotations": keyed}),
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        put(
            "/api/v1/namespaces/_/triggers/tick?overwrite=true",
            json!({}),
        )
        .await;
        put(
            "/api/v1/namespaces/_/rules/on-tick?overwrite=true",
            json!({"trigger": "/_/tick", "action": "/_/keyed"}),
        )
        .await;
        let r = p
            .call_as(
                auth,
                Method::POST,
                "/api/v1/namespaces/_/actions/keyed?blocking=true",
                Some(json!({})),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let r = p
            .call_as(
                auth,
                Method::POST,
                "/api/v1/namespaces/_/triggers/tick",
                Some(json!({})),
            )
            .await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
        let ns = if auth == guest { "guest" } else { "alice" };
        let r = p
            .send(
                Method::GET,
                &format!("/api/v1/web/{ns}/default/keyed.json"),
                None,
                Some(auth),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    }

    // Failures: a wrong secret for a known UUID, a malformed header, a foreign namespace,
    // a missing action, a malformed body, a web action refusing an anonymous caller.
    let wrong = format!("{}:{}", alice.uuid, "w".repeat(64));
    let r = p
        .send(Method::GET, "/api/v1/namespaces", None, Some(&wrong))
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = p
        .http
        .get(format!("{}/api/v1/namespaces", p.base))
        .header("authorization", format!("Basic {alice_key}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = p
        .call_as(
            &alice_key,
            Method::GET,
            "/api/v1/namespaces/guest/actions",
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = p
        .call_as(
            &alice_key,
            Method::POST,
            "/api/v1/namespaces/_/actions/nothing",
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = p
        .send(
            Method::PUT,
            "/api/v1/namespaces/_/actions/bad",
            Some("{not json"),
            Some(&alice_key),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = p
        .send(
            Method::GET,
            "/api/v1/web/alice/default/keyed.json",
            None,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);

    // The rules' activations finish in the background: wait for them, then read the log.
    for auth in [guest, alice_key.as_str()] {
        for _ in 0..200 {
            let r = p
                .call_as(
                    auth,
                    Method::GET,
                    "/api/v1/namespaces/_/activations?name=keyed",
                    None,
                )
                .await;
            if r.body.as_array().is_some_and(|a| a.len() >= 3) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
    drop(p);
    let logs = buf.text();
    // The log did record all of this (at debug level), so its silence about keys means
    // something.
    for expected in [
        "subject created",
        "activation published",
        "activation received",
    ] {
        assert!(logs.contains(expected), "no `{expected}` in the log");
    }
    assert_absent(&logs, &AuthKey::parse(GUEST_KEY).unwrap(), "guest");
    assert_absent(&logs, &alice, "alice");
    assert_absent(&logs, &given, "alice-two");
}
