//! Limits and throttles, truncation at the limits, and the OpenAPI description.

mod common;

use common::{assert_error, Platform};
use reqwest::{Method, StatusCode};
use serde_json::json;
use whisk_core::store::StoreExt;

/// Repeats `call` up to `attempts` times and returns the first answer that is not `ok`.
async fn first_refusal<F, Fut>(attempts: usize, ok: StatusCode, call: F) -> common::Resp
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = common::Resp>,
{
    for _ in 0..attempts {
        let r = call().await;
        if r.status != ok {
            return r;
        }
    }
    panic!("no call of {attempts} was refused");
}

#[tokio::test]
async fn namespace_limits_and_throttles() {
    let p = Platform::start().await;
    let l = p.get("/api/v1/namespaces/_/limits").await;
    assert_eq!(l.status, StatusCode::OK);
    assert_eq!(l.body["invocationsPerMinute"], 60);
    assert_eq!(l.body["concurrentInvocations"], 30);
    assert_eq!(l.body["firesPerMinute"], 60);
    assert_eq!(l.body["maxActionMemory"], 512);
    assert_eq!(l.body["maxActionTimeout"], 300000);
    assert_eq!(l.body["maxParameterSize"], "1048576 B");
    assert_eq!(
        p.get("/api/v1/namespaces/someone/limits").await.status,
        StatusCode::FORBIDDEN
    );

    p.platform
        .store()
        .put_namespace_limits(
            "guest",
            json!({"invocationsPerMinute": 2, "firesPerMinute": 1, "concurrentInvocations": 1}),
        )
        .await
        .unwrap();
    assert_eq!(
        p.get("/api/v1/namespaces/_/limits").await.body["invocationsPerMinute"],
        2
    );
    p.action(
        "a",
        "nodejs:20",
        "function main() { return {}; }",
        json!({}),
    )
    .await;
    // Counters follow the wall-clock minute, which may roll over once during the test: within
    // six calls the third of some minute is refused.
    let r = first_refusal(6, StatusCode::OK, || p.invoke("a", json!({}), "")).await;
    assert_error(
        &r,
        StatusCode::TOO_MANY_REQUESTS,
        "Too many requests in the last minute (count: 3, allowed: 2).",
    );

    p.call(
        Method::PUT,
        "/api/v1/namespaces/_/triggers/t",
        Some(json!({})),
    )
    .await;
    p.call(
        Method::PUT,
        "/api/v1/namespaces/_/rules/r",
        Some(json!({"trigger": "/_/t", "action": "/_/a"})),
    )
    .await;
    let r = first_refusal(4, StatusCode::ACCEPTED, || {
        p.call(Method::POST, "/api/v1/namespaces/_/triggers/t", None)
    })
    .await;
    assert_error(
        &r,
        StatusCode::TOO_MANY_REQUESTS,
        "Too many requests in the last minute (count: 2, allowed: 1).",
    );
}

#[tokio::test]
async fn concurrent_invocations_are_throttled() {
    let p = Platform::start().await;
    p.platform
        .store()
        .put_namespace_limits("guest", json!({"concurrentInvocations": 1}))
        .await
        .unwrap();
    p.action(
        "slow",
        "nodejs:20",
        "function main() { return new Promise(r => setTimeout(() => r({}), 1500)); }",
        json!({}),
    )
    .await;
    let r = p
        .call(
            Method::POST,
            "/api/v1/namespaces/_/actions/slow",
            Some(json!({})),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let r = p
        .call(
            Method::POST,
            "/api/v1/namespaces/_/actions/slow",
            Some(json!({})),
        )
        .await;
    assert_error(
        &r,
        StatusCode::TOO_MANY_REQUESTS,
        "Too many concurrent requests in flight (count: 1, allowed: 1).",
    );
}

#[tokio::test]
async fn results_and_logs_are_truncated_at_the_limits() {
    let p = Platform::start().await;
    p.action(
        "big",
        "nodejs:20",
        "function main() { return {s: 'x'.repeat(1100000)}; }",
        json!({}),
    )
    .await;
    let r = p.invoke("big", json!({}), "").await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);
    assert_eq!(r.body["response"]["status"], "application error");
    let msg = r.body["response"]["result"]["error"].as_str().unwrap();
    assert!(msg.starts_with("The action produced a response that exceeded the allowed length: 1100008 > 1048576 bytes. The truncated response was: {\"s\":\"xxx"), "{}", &msg[..120]);

    let chatty = "function main() { const line = 'y'.repeat(1000); for (let i = 0; i < 1100; i++) console.log(line); return {}; }";
    p.action(
        "chatty",
        "nodejs:20",
        chatty,
        json!({"limits": {"logs": 1}}),
    )
    .await;
    let r = p.invoke("chatty", json!({}), "").await;
    assert_eq!(r.status, StatusCode::OK);
    let record = p.record(&r.body).await;
    let logs = record["logs"].as_array().unwrap();
    assert_eq!(
        logs.len(),
        1049,
        "1048 whole lines fit in 1 MB, then the truncation line"
    );
    assert!(logs.last().unwrap().as_str().unwrap().ends_with("stderr: Logs were truncated because the total bytes size exceeds the limit of 1048576 bytes."));
    p.action(
        "quiet",
        "nodejs:20",
        "function main() { console.log('not kept'); return {}; }",
        json!({"limits": {"logs": 0}}),
    )
    .await;
    let r = p.invoke("quiet", json!({}), "").await;
    assert_eq!(p.record(&r.body).await["logs"], json!([]));
}

#[tokio::test]
async fn api_docs_describe_every_served_route() {
    let p = Platform::start().await;
    let r = p.send(Method::GET, "/api/v1/api-docs", None, None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["openapi"], "3.0.3");
    let paths = r.body["paths"].as_object().unwrap();
    assert!(paths.len() >= 20);
    // Every documented operation is routed by the server (no router 404/405).
    for (path, ops) in paths {
        let concrete = path
            .replace("{namespace}", "_")
            .replace("{actionNameWithExtension}", "x.json")
            .replace("{activationId}", "0123456789abcdef0123456789abcdef")
            .replace("{path}", "p")
            .replace("{file}", "console.js")
            .replace(['{', '}'], "");
        for method in ops
            .as_object()
            .unwrap()
            .keys()
            .filter(|m| *m != "parameters")
        {
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let r = p.call(m.clone(), &concrete, Some(json!({}))).await;
            assert_ne!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{m} {concrete}");
            let unrouted = r.body["error"] == "The requested resource could not be found.";
            assert!(!unrouted, "{m} {concrete} is documented but not routed");
        }
    }
}
