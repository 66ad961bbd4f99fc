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

/// The routes OpenWhisk serves without credentials, and where its source says so
/// (apache/openwhisk, `core/controller/.../controller/` unless noted):
/// - `GET /`: `Controller.scala` `routes` (`pathEndOrSingleSlash & get`, before `apiV1.routes`);
/// - `GET /ping`, `GET /metrics`: `common/.../http/BasicRasService.scala`
///   (`ping ~ MetricsRoute()`);
/// - `GET /invokers`, `/invokers/healthy/count`, `/invokers/ready`: `Controller.scala`
///   `internalInvokerHealth`, in `adminRoutes`, which extracts no credentials;
/// - `GET /api/v1`, `GET /api/v1/api-docs`: `RestAPIs.scala` `routes` (`info` and
///   `swaggerRoutes`, outside `authenticate`);
/// - `/api/v1/web/...`: `RestAPIs.scala` (`authenticate { web.routes(user) } ~ web.routes()`):
///   credentials are optional and the action's `require-whisk-auth` decides
///   (`WebActions.scala` `confirmAuthenticated`).
///
/// whisk adds `/console[/...]`: static files of the web console, which hold no data (the page
/// asks the API with the key the user types); and the standalone platform's
/// `/invokers/0/pool`: its container pool's counts, operator data like `/invokers` and
/// `/metrics`, naming no namespace or action.
const PUBLIC: &[&str] = &[
    "/",
    "/ping",
    "/metrics",
    "/invokers",
    "/invokers/healthy/count",
    "/invokers/ready",
    "/api/v1",
    "/api/v1/api-docs",
    "/console",
    "/console/",
    "/console/{}",
    "/invokers/0/pool",
    "/api/v1/web/{}/{}/{}",
    "/api/v1/web/{}/{}/{}/{}",
];

/// Routes the platform serves that the API's OpenAPI description leaves out, with their
/// methods: the standalone platform's own.
const UNDESCRIBED: &[(&str, &[&str])] = &[("/invokers/0/pool", &["GET"])];

/// `path` with every `{param}` (and axum's `{*rest}`) as `{}`.
fn shape(path: &str) -> String {
    let mut out = String::new();
    let mut depth = 0;
    for c in path.chars() {
        match c {
            '{' => {
                if depth == 0 {
                    out.push_str("{}");
                }
                depth += 1;
            }
            '}' => depth -= 1,
            c if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

/// The paths the API's route table (`routes()` in `whisk-core/src/api/mod.rs`) and the
/// standalone platform (`examples/src/standalone.rs`, with `.route(...)`) register, as
/// shapes: read from the source, so a route added there without a place in this test fails it.
fn router_paths() -> Vec<String> {
    let api = include_str!("../../whisk-core/src/api/mod.rs");
    let table = &api[api.find("fn routes()").expect("the route table")..];
    let table = &table[..table
        .find("\nfn build(")
        .expect("the end of the route table")];
    let standalone = include_str!("../src/standalone.rs");
    // The table's string literals (every other piece between quotes) that are paths.
    let mut paths: Vec<String> = table
        .split('"')
        .skip(1)
        .step_by(2)
        .filter(|lit| lit.starts_with('/'))
        .map(shape)
        .collect();
    for (i, _) in standalone.match_indices(".route(") {
        let rest = &standalone[i..];
        let lit = rest.split('"').nth(1).expect("a route path literal");
        paths.push(shape(lit));
    }
    assert!(paths.len() > 20, "found only {paths:?}");
    paths
}

/// A concrete request path for shape `s` (each `{}` becomes a name).
fn concrete(s: &str) -> String {
    s.replace("{}", "x1")
}

#[tokio::test]
async fn every_route_but_openwhisks_public_ones_requires_credentials() {
    let p = Platform::start().await;
    let docs = p.send(Method::GET, "/api/v1/api-docs", None, None).await;
    assert_eq!(docs.status, StatusCode::OK);
    let mut routes: Vec<(String, String)> = Vec::new();
    for (path, ops) in docs.body["paths"].as_object().expect("paths") {
        for (method, op) in ops.as_object().unwrap() {
            if method == "parameters" {
                continue;
            }
            let public = PUBLIC.contains(&shape(path).as_str());
            // The description agrees: public operations need no security scheme (web actions
            // accept both none and basic).
            let security = op.get("security").unwrap_or(&docs.body["security"]);
            let anonymous_ok = security
                .as_array()
                .is_some_and(|s| s.is_empty() || s.iter().any(|r| r == &json!({})));
            assert_eq!(anonymous_ok, public, "{method} {path}: security {security}");
            routes.push((method.to_uppercase(), shape(path)));
        }
    }
    for (path, methods) in UNDESCRIBED {
        for m in *methods {
            routes.push((m.to_string(), path.to_string()));
        }
    }
    // Every route the router registers is covered here.
    for path in router_paths() {
        assert!(
            routes.iter().any(|(_, p)| *p == path),
            "route {path} is neither in the OpenAPI description nor in UNDESCRIBED"
        );
    }

    let wrong = GUEST_KEY.replace("123zO3", "999zO3");
    let unknown_uuid = GUEST_KEY.replace("23bc46b1", "00000000");
    let mut checked = 0;
    for (method, shape) in &routes {
        let path = concrete(shape);
        let m = Method::from_bytes(method.as_bytes()).unwrap();
        let body = matches!(method.as_str(), "PUT" | "POST").then_some("{}");
        if PUBLIC.contains(&shape.as_str()) {
            let r = p.send(m.clone(), &path, body, None).await;
            assert_ne!(
                r.status,
                StatusCode::UNAUTHORIZED,
                "{method} {path} is public"
            );
            continue;
        }
        let r = p.send(m.clone(), &path, body, None).await;
        assert_unauthorized(
            &r,
            "The resource requires authentication, which was not supplied with the request",
            &format!("{method} {path} without credentials"),
        );
        for key in [wrong.as_str(), unknown_uuid.as_str(), "no-colon"] {
            let r = p.send(m.clone(), &path, body, Some(key)).await;
            assert_unauthorized(
                &r,
                "The supplied authentication is invalid",
                &format!("{method} {path} with a wrong key"),
            );
        }
        // Another namespace in the path changes nothing.
        let foreign = path.replacen("/namespaces/x1", "/namespaces/guest", 1);
        let r = p.send(m, &foreign, body, None).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{method} {foreign}");
        checked += 1;
    }
    assert!(checked >= 25, "only {checked} protected routes checked");
}

/// OpenWhisk's 401: exactly `{"error", "code"}` with the transaction id, and the challenge.
fn assert_unauthorized(r: &common::Resp, message: &str, what: &str) {
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{what}: {}", r.text);
    let tid = r.headers["x-request-id"].to_str().unwrap();
    assert_eq!(
        r.body,
        json!({"error": message, "code": tid}),
        "{what}: {}",
        r.text
    );
    assert_eq!(
        r.headers["www-authenticate"], "Basic realm=\"OpenWhisk secure realm\"",
        "{what}"
    );
}
