//! Structured logging: every log line of one request's path (controller, bus, invoker)
//! carries the request's transaction id (`tid=`, from `X-Request-ID`).

mod common;

use common::Platform;
use reqwest::StatusCode;
use serde_json::json;
use std::io::Write;
use std::sync::{Arc, Mutex};
use whisk_core::entity::identity::GUEST_KEY;

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

const TID: &str = "test-tid-12345";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_line_of_a_request_carries_its_tid() {
    // Global: the platform's tasks run on other threads, where a scoped default is not set.
    // This is the only test in this binary, so the global subscriber is ours alone.
    let buf = Buffer::default();
    tracing::subscriber::set_global_default(
        tracing_subscriber::fmt()
            .with_writer(buf.clone())
            .with_ansi(false)
            .with_env_filter("whisk_core=debug")
            .finish(),
    )
    .expect("first subscriber of this test binary");

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
    let logs = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
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
