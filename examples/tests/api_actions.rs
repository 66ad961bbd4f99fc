//! Action CRUD and every malformed-request path of it.

mod common;

use common::{assert_error, assert_error_prefix, Platform};
use reqwest::{Method, StatusCode};
use serde_json::json;

const NOOP: &str = "function main(p) { return p; }";

#[tokio::test]
async fn create_get_update_list_delete() {
    let p = Platform::start().await;
    let path = "/api/v1/namespaces/_/actions/hello";
    let body = json!({"exec": {"kind": "nodejs:default", "code": NOOP}, "parameters": [{"key": "a", "value": 1}]});
    let r = p.call(Method::PUT, path, Some(body.clone())).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["namespace"], "guest");
    assert_eq!(r.body["version"], "0.0.1");
    assert_eq!(
        r.body["exec"],
        json!({"kind": "nodejs:20", "code": NOOP, "binary": false})
    );
    assert_eq!(
        r.body["limits"],
        json!({"timeout": 60000, "memory": 256, "logs": 10, "concurrency": 1})
    );
    assert_eq!(
        r.body["annotations"],
        json!([{"key": "provide-api-key", "value": false}, {"key": "exec", "value": "nodejs:20"}])
    );
    assert!(r.body["updated"].as_u64().unwrap() > 0);

    let r = p.call(Method::PUT, path, Some(body.clone())).await;
    assert_error(&r, StatusCode::CONFLICT, "resource already exists");

    let update = json!({"limits": {"memory": 128}, "annotations": [{"key": "x", "value": true}]});
    let r = p
        .call(Method::PUT, &format!("{path}?overwrite=true"), Some(update))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["version"], "0.0.2");
    assert_eq!(r.body["limits"]["memory"], 128);
    assert_eq!(
        r.body["exec"]["code"], NOOP,
        "absent fields keep their values"
    );
    assert_eq!(r.body["parameters"], json!([{"key": "a", "value": 1}]));

    let r = p.get(path).await;
    assert_eq!(r.body["exec"]["code"], NOOP, "code is returned by default");
    let r = p.get(&format!("{path}?code=false")).await;
    assert!(r.body["exec"].get("code").is_none());
    assert_eq!(r.body["exec"]["binary"], false);

    // Listing orders by the `updated` millisecond: make sure the next write gets a later one.
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    p.action(
        "second",
        "python:3.11",
        "def main(a):\n    return a\n",
        json!({}),
    )
    .await;
    let r = p.get("/api/v1/namespaces/_/actions").await;
    let names: Vec<_> = r
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].clone())
        .collect();
    assert_eq!(names, [json!("second"), json!("hello")], "newest first");
    assert_eq!(
        r.body[0]["exec"],
        json!({"binary": false}),
        "list items are summaries"
    );
    assert!(r.body[0].get("parameters").is_none());
    assert_eq!(
        p.get("/api/v1/namespaces/_/actions?count=true").await.body,
        json!({"actions": 2})
    );
    let r = p.get("/api/v1/namespaces/_/actions?limit=1&skip=1").await;
    assert_eq!(r.body.as_array().unwrap().len(), 1);
    assert_eq!(r.body[0]["name"], "hello");

    let r = p.call(Method::DELETE, path, None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["name"], "hello");
    assert_error(
        &p.get(path).await,
        StatusCode::NOT_FOUND,
        "The requested resource does not exist.",
    );
    assert_error(
        &p.call(Method::DELETE, path, None).await,
        StatusCode::NOT_FOUND,
        "The requested resource does not exist.",
    );
    let r = p.call(Method::PUT, path, Some(body)).await;
    assert_eq!(
        r.body["version"], "0.0.1",
        "re-created after delete starts over"
    );
}

#[tokio::test]
async fn invalid_names_and_list_parameters() {
    let p = Platform::start().await;
    let put = Some(json!({"exec": {"kind": "nodejs:20", "code": NOOP}}));
    let r = p
        .call(
            Method::PUT,
            "/api/v1/namespaces/_/actions/bad$name",
            put.clone(),
        )
        .await;
    assert_error(
        &r,
        StatusCode::BAD_REQUEST,
        "The name of the entity contains illegal characters.",
    );
    let long = "a".repeat(257);
    let r = p
        .call(
            Method::PUT,
            &format!("/api/v1/namespaces/_/actions/{long}"),
            put,
        )
        .await;
    assert_error(
        &r,
        StatusCode::BAD_REQUEST,
        "Name segement longer than allowed: 257 > 256.",
    );
    let r = p.get("/api/v1/namespaces/_/actions?limit=201").await;
    assert_error(
        &r,
        StatusCode::BAD_REQUEST,
        "The value '201' is not in the range of 0 to 200 for actions.",
    );
    let r = p.get("/api/v1/namespaces/_/actions?limit=abc").await;
    assert_error(
        &r,
        StatusCode::BAD_REQUEST,
        "The value 'abc' is not an integer for actions.",
    );
    let r = p.get("/api/v1/namespaces/_/actions?skip=-1").await;
    assert_error_prefix(
        &r,
        StatusCode::BAD_REQUEST,
        "The query parameter 'skip' was malformed:",
    );
    let r = p.get("/api/v1/namespaces/_/actions?count=maybe").await;
    assert_error(
        &r,
        StatusCode::BAD_REQUEST,
        "The query parameter 'count' was malformed:\n'maybe' is not a valid Boolean value",
    );
}

#[tokio::test]
async fn malformed_bodies_kinds_and_limits() {
    let p = Platform::start().await;
    let path = "/api/v1/namespaces/_/actions/x";
    let r = p.raw(Method::PUT, path, "{not json").await;
    assert_error_prefix(
        &r,
        StatusCode::BAD_REQUEST,
        "The request content was malformed:\n",
    );
    let r = p.call(Method::PUT, path, Some(json!({}))).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "exec undefined");
    let r = p
        .call(
            Method::PUT,
            path,
            Some(json!({"exec": {"kind": "cobol:85", "code": "x"}})),
        )
        .await;
    assert_error(
        &r,
        StatusCode::BAD_REQUEST,
        "The specified runtime 'cobol:85' is not supported by this platform. Valid values are: 'java:17', 'nodejs:20', 'python:3.11'.",
    );
    let r = p
        .call(
            Method::PUT,
            path,
            Some(json!({"exec": {"kind": "nodejs:20"}})),
        )
        .await;
    assert_error(
        &r,
        StatusCode::BAD_REQUEST,
        "'code' must be a string defined in 'exec' for 'nodejs:20' actions",
    );
    let exec = json!({"kind": "nodejs:20", "code": NOOP});
    for (limits, msg) in [
        (
            json!({"memory": 1024}),
            "memory size 1024 MB exceeds allowed threshold of 512 MB",
        ),
        (
            json!({"memory": 64}),
            "memory size 64 MB below allowed threshold of 128 MB",
        ),
        (
            json!({"timeout": 10}),
            "duration 10 milliseconds below allowed threshold of 100 milliseconds",
        ),
        (
            json!({"timeout": 300001}),
            "duration 300001 milliseconds exceeds allowed threshold of 300000 milliseconds",
        ),
        (
            json!({"logs": 11}),
            "log size 11 MB exceeds allowed threshold of 10 MB",
        ),
        (
            json!({"concurrency": 5}),
            "concurrency 5 exceeds allowed threshold of 1",
        ),
    ] {
        let r = p
            .call(
                Method::PUT,
                path,
                Some(json!({"exec": exec, "limits": limits})),
            )
            .await;
        assert_error(&r, StatusCode::BAD_REQUEST, msg);
    }
    // Parameters must be an array of {key, value}.
    let r = p
        .call(
            Method::PUT,
            path,
            Some(json!({"exec": exec, "parameters": {"a": 1}})),
        )
        .await;
    assert_error_prefix(
        &r,
        StatusCode::BAD_REQUEST,
        "The request content was malformed:\n",
    );
    let r = p
        .call(
            Method::PUT,
            path,
            Some(json!({"exec": exec, "limits": {"memory": "lots"}})),
        )
        .await;
    assert_error_prefix(
        &r,
        StatusCode::BAD_REQUEST,
        "The request content was malformed:\n",
    );
    let big = json!([{"key": "big", "value": "x".repeat(1024 * 1024 + 10)}]);
    let r = p
        .call(
            Method::PUT,
            path,
            Some(json!({"exec": exec, "parameters": big})),
        )
        .await;
    assert_error_prefix(
        &r,
        StatusCode::PAYLOAD_TOO_LARGE,
        "parameters larger than allowed:",
    );
    assert_eq!(
        p.get(path).await.status,
        StatusCode::NOT_FOUND,
        "nothing was stored"
    );
}
