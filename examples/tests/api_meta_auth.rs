//! Platform information routes, authentication, CORS, transaction ids and unknown routes.

mod common;

use common::{assert_error, Platform};
use reqwest::{Method, StatusCode};
use serde_json::json;
use whisk_core::entity::identity::GUEST_KEY;

#[tokio::test]
async fn info_ping_and_api_routes() {
    let p = Platform::start().await;
    let r = p.send(Method::GET, "/", None, None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["description"], "OpenWhisk");
    assert_eq!(r.body["api_paths"], json!(["/api/v1"]));
    assert_eq!(r.body["runtimes"]["nodejs"][0]["kind"], "nodejs:20");
    assert_eq!(r.body["runtimes"]["python"][0]["default"], true);
    assert_eq!(
        r.body["limits"]["max_action_memory"],
        json!(512u64 * 1024 * 1024)
    );
    let r = p.send(Method::GET, "/ping", None, None).await;
    assert_eq!((r.status, r.text.as_str()), (StatusCode::OK, "pong"));
    let r = p.send(Method::GET, "/api/v1", None, None).await;
    assert_eq!(r.body["api_version"], "1.0.0");
    assert_eq!(r.body["api_version_path"], "v1");
    let r = p.get("/api/v1/namespaces").await;
    assert_eq!(r.body, json!(["guest"]));
}

#[tokio::test]
async fn missing_wrong_and_malformed_credentials_are_401() {
    let p = Platform::start().await;
    let path = "/api/v1/namespaces/_/actions";
    let r = p.send(Method::GET, path, None, None).await;
    assert_error(
        &r,
        StatusCode::UNAUTHORIZED,
        "The resource requires authentication, which was not supplied with the request",
    );
    assert_eq!(
        r.headers["www-authenticate"],
        "Basic realm=\"OpenWhisk secure realm\""
    );
    let wrong = GUEST_KEY.replace("123zO3", "999zO3");
    let r = p.send(Method::GET, path, None, Some(&wrong)).await;
    assert_error(
        &r,
        StatusCode::UNAUTHORIZED,
        "The supplied authentication is invalid",
    );
    let r = p
        .http
        .get(format!("{}{path}", p.base))
        .header("authorization", "Basic !!!not-base64")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = p.send(Method::GET, "/api/v1/namespaces", None, None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn other_namespaces_are_forbidden_and_bad_namespaces_rejected() {
    let p = Platform::start().await;
    let r = p.get("/api/v1/namespaces/someone/actions/x").await;
    assert_error(
        &r,
        StatusCode::FORBIDDEN,
        "The supplied authentication is not authorized to access 'someone/x'.",
    );
    let r = p.get("/api/v1/namespaces/bad$ns/actions").await;
    assert_error(
        &r,
        StatusCode::BAD_REQUEST,
        "The namespace contains illegal characters.",
    );
    // The caller's own namespace by name works like `_`.
    assert_eq!(
        p.get("/api/v1/namespaces/guest/actions").await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn request_ids_cors_options_and_unknown_routes() {
    let p = Platform::start().await;
    let r = p
        .http
        .get(format!("{}/api/v1/namespaces/_/actions/nope", p.base))
        .basic_auth(
            GUEST_KEY.split(':').next().unwrap(),
            GUEST_KEY.split(':').nth(1),
        )
        .header("x-request-id", "my-request-1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"], "my-request-1");
    assert_eq!(r.headers()["access-control-allow-origin"], "*");
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        body,
        json!({"error": "The requested resource does not exist.", "code": "my-request-1"})
    );

    let r = p
        .send(
            Method::OPTIONS,
            "/api/v1/namespaces/_/actions/x",
            None,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.headers["access-control-allow-methods"],
        "GET, DELETE, POST, PUT, HEAD"
    );

    let r = p.get("/api/v1/namespaces/_/nothing-here").await;
    assert_error(
        &r,
        StatusCode::NOT_FOUND,
        "The requested resource could not be found.",
    );
    // A 405 names the route's own methods, in its error and in `Allow` (RFC 9110).
    let r = p
        .call(Method::PATCH, "/api/v1/namespaces/_/actions/x", None)
        .await;
    assert_error(
        &r,
        StatusCode::METHOD_NOT_ALLOWED,
        "HTTP method not allowed, supported methods: GET, HEAD, PUT, DELETE, POST",
    );
    assert_eq!(r.headers["allow"], "GET,HEAD,PUT,DELETE,POST");
    let r = p.call(Method::DELETE, "/api/v1/namespaces", None).await;
    assert_error(
        &r,
        StatusCode::METHOD_NOT_ALLOWED,
        "HTTP method not allowed, supported methods: GET, HEAD",
    );
    assert_eq!(r.headers["allow"], "GET,HEAD");
}
