//! Packages and bindings: CRUD, publish, bindings across namespaces, parameter precedence,
//! actions addressed as `ns/pkg/action`, delete with and without `force`.

mod common;

use common::{assert_error, Platform};
use reqwest::{Method, StatusCode};
use serde_json::json;

const ECHO: &str = "function main(p) { return p; }";

#[tokio::test]
async fn package_crud_actions_and_parameter_precedence() {
    let p = Platform::start().await;
    let r = p.call(Method::PUT, "/api/v1/namespaces/_/packages/utils", Some(json!({"parameters": [{"key": "a", "value": "pkg"}, {"key": "b", "value": "pkg"}, {"key": "c", "value": "pkg"}, {"key": "d", "value": "pkg"}]}))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["binding"], json!({}));
    assert_eq!(r.body["version"], "0.0.1");
    assert_eq!(r.body["publish"], false);
    let r = p
        .call(
            Method::PUT,
            "/api/v1/namespaces/_/packages/utils",
            Some(json!({})),
        )
        .await;
    assert_error(&r, StatusCode::CONFLICT, "resource already exists");

    let put = json!({"exec": {"kind": "nodejs:20", "code": ECHO}, "parameters": [{"key": "c", "value": "action"}, {"key": "d", "value": "action"}]});
    let r = p
        .call(
            Method::PUT,
            "/api/v1/namespaces/_/actions/utils/echo",
            Some(put),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["namespace"], "guest/utils");

    // A binding overrides package parameters; action parameters and the payload override both.
    let r = p.call(Method::PUT, "/api/v1/namespaces/_/packages/mine", Some(json!({"binding": {"namespace": "_", "name": "utils"}, "parameters": [{"key": "b", "value": "binding"}, {"key": "c", "value": "binding"}]}))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        r.body["binding"],
        json!({"namespace": "guest", "name": "utils"})
    );
    assert!(r.body["annotations"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["key"] == "binding"
            && a["value"] == json!({"namespace": "guest", "name": "utils"})));
    let r = p
        .call(
            Method::POST,
            "/api/v1/namespaces/_/actions/mine/echo?blocking=true",
            Some(json!({"d": "payload"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        r.body["response"]["result"],
        json!({"a": "pkg", "b": "binding", "c": "action", "d": "payload"})
    );
    let ann = r.body["annotations"].as_array().unwrap();
    assert!(
        ann.iter()
            .any(|a| a["key"] == "path" && a["value"] == "guest/utils/echo"),
        "path is the real action"
    );
    assert!(ann
        .iter()
        .any(|a| a["key"] == "binding" && a["value"] == "guest/mine"));
    let r = p
        .call(
            Method::POST,
            "/api/v1/namespaces/_/actions/utils/echo?blocking=true&result=true",
            Some(json!({})),
        )
        .await;
    assert_eq!(
        r.body,
        json!({"a": "pkg", "b": "pkg", "c": "action", "d": "action"})
    );
    // Activations of packaged actions are listed by pkg/name; through a binding, by the
    // binding's name (OpenWhisk's `whisks-filters` view).
    for (name, n) in [("utils/echo", 1), ("mine/echo", 1), ("echo", 0)] {
        let list = p
            .get(&format!("/api/v1/namespaces/_/activations?name={name}"))
            .await
            .body;
        assert_eq!(list.as_array().unwrap().len(), n, "{name}");
    }

    // GET lists actions and feeds; a binding shows the bound package's actions and merged parameters.
    p.call(Method::PUT, "/api/v1/namespaces/_/actions/utils/changes", Some(json!({"exec": {"kind": "nodejs:20", "code": ECHO}, "annotations": [{"key": "feed", "value": true}]}))).await;
    let r = p.get("/api/v1/namespaces/_/packages/utils").await.body;
    assert_eq!(
        r["actions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["name"].clone())
            .collect::<Vec<_>>(),
        [json!("echo")]
    );
    assert_eq!(r["feeds"][0]["name"], "changes");
    let r = p.get("/api/v1/namespaces/_/packages/mine").await.body;
    assert_eq!(r["name"], "mine");
    assert_eq!(r["actions"][0]["name"], "echo");
    let params = r["parameters"].as_array().unwrap();
    assert!(params
        .iter()
        .any(|x| x["key"] == "b" && x["value"] == "binding"));
    assert!(params
        .iter()
        .any(|x| x["key"] == "a" && x["value"] == "pkg"));
    let r = p.get("/api/v1/namespaces/_/actions/mine/").await.body;
    assert_eq!(r.as_array().unwrap().len(), 2);
    let r = p.get("/api/v1/namespaces/_/actions/utils/echo").await.body;
    assert_eq!(
        r["parameters"].as_array().unwrap().len(),
        4,
        "GET merges package parameters"
    );
    let r = p.get("/api/v1/namespaces/_/packages").await.body;
    assert_eq!(r.as_array().unwrap().len(), 2);
    assert_eq!(
        p.get("/api/v1/namespaces/_/packages?count=true").await.body,
        json!({"packages": 2})
    );

    // Bindings cannot hold actions; packages are not converted; bindings of bindings are refused.
    let r = p
        .call(
            Method::PUT,
            "/api/v1/namespaces/_/actions/mine/x",
            Some(json!({"exec": {"kind": "nodejs:20", "code": ECHO}})),
        )
        .await;
    assert_error(
        &r,
        StatusCode::BAD_REQUEST,
        "Operation not permitted on package binding.",
    );
    let r = p
        .call(
            Method::DELETE,
            "/api/v1/namespaces/_/actions/mine/echo",
            None,
        )
        .await;
    assert_error(
        &r,
        StatusCode::BAD_REQUEST,
        "Operation not permitted on package binding.",
    );
    let r = p
        .call(
            Method::PUT,
            "/api/v1/namespaces/_/packages/utils?overwrite=true",
            Some(json!({"binding": {"namespace": "guest", "name": "mine"}})),
        )
        .await;
    assert_error(
        &r,
        StatusCode::BAD_REQUEST,
        "Cannot bind to another package binding.",
    );
    let r = p
        .call(
            Method::PUT,
            "/api/v1/namespaces/_/packages/b2",
            Some(json!({"binding": {"namespace": "guest", "name": "nothing"}})),
        )
        .await;
    assert_error(
        &r,
        StatusCode::BAD_REQUEST,
        "Binding references a package that does not exist.",
    );
    p.action("plain", "nodejs:20", ECHO, json!({})).await;
    let r = p
        .call(
            Method::PUT,
            "/api/v1/namespaces/_/packages/b3",
            Some(json!({"binding": {"namespace": "guest", "name": "plain"}})),
        )
        .await;
    assert_error(
        &r,
        StatusCode::CONFLICT,
        "Cannot bind to a resource that is not a package.",
    );
    p.call(
        Method::PUT,
        "/api/v1/namespaces/_/packages/other",
        Some(json!({})),
    )
    .await;
    let r = p
        .call(
            Method::PUT,
            "/api/v1/namespaces/_/packages/other?overwrite=true",
            Some(json!({"binding": {"namespace": "guest", "name": "utils"}})),
        )
        .await;
    assert_error(
        &r,
        StatusCode::CONFLICT,
        "Resource is a package and cannot be converted into a binding.",
    );
    let r = p
        .call(
            Method::PUT,
            "/api/v1/namespaces/_/packages/default",
            Some(json!({})),
        )
        .await;
    assert_error(
        &r,
        StatusCode::BAD_REQUEST,
        "Package name 'default' is reserved.",
    );

    // Delete: bindings always; packages only empty or with force.
    assert_eq!(
        p.call(Method::DELETE, "/api/v1/namespaces/_/packages/mine", None)
            .await
            .status,
        StatusCode::OK
    );
    let r = p
        .call(Method::DELETE, "/api/v1/namespaces/_/packages/utils", None)
        .await;
    assert_error(
        &r,
        StatusCode::CONFLICT,
        "Package not empty (contains 2 entities). Set force param or delete package contents.",
    );
    assert_eq!(
        p.call(
            Method::DELETE,
            "/api/v1/namespaces/_/packages/utils?force=true",
            None
        )
        .await
        .status,
        StatusCode::OK
    );
    assert_error(
        &p.get("/api/v1/namespaces/_/actions/utils/echo").await,
        StatusCode::NOT_FOUND,
        "The requested resource does not exist.",
    );
    assert_error(
        &p.get("/api/v1/namespaces/_/packages/utils").await,
        StatusCode::NOT_FOUND,
        "The requested resource does not exist.",
    );
}

#[tokio::test]
async fn published_packages_are_shared_across_namespaces() {
    let p = Platform::start().await;
    let alice = p.add_user("alice").await;
    let put = |path: &'static str, body| p.call_as(&alice, Method::PUT, path, Some(body));
    assert_eq!(
        put(
            "/api/v1/namespaces/_/packages/shared",
            json!({"publish": true, "parameters": [{"key": "owner", "value": "alice"}]})
        )
        .await
        .status,
        StatusCode::OK
    );
    assert_eq!(
        put("/api/v1/namespaces/_/packages/private", json!({}))
            .await
            .status,
        StatusCode::OK
    );
    put(
        "/api/v1/namespaces/_/actions/shared/hello",
        json!({"exec": {"kind": "nodejs:20", "code": ECHO}}),
    )
    .await;
    put(
        "/api/v1/namespaces/_/actions/private/secret",
        json!({"exec": {"kind": "nodejs:20", "code": ECHO}}),
    )
    .await;

    // guest sees alice's published packages only, and may invoke their actions.
    let list = p.get("/api/v1/namespaces/alice/packages").await.body;
    assert_eq!(
        list.as_array()
            .unwrap()
            .iter()
            .map(|x| x["name"].clone())
            .collect::<Vec<_>>(),
        [json!("shared")]
    );
    let r = p
        .call(
            Method::POST,
            "/api/v1/namespaces/alice/actions/shared/hello?blocking=true&result=true",
            Some(json!({"x": 1})),
        )
        .await;
    assert_eq!(r.body, json!({"owner": "alice", "x": 1}), "{}", r.text);
    let r = p
        .get("/api/v1/namespaces/alice/actions/private/secret")
        .await;
    assert_error(
        &r,
        StatusCode::FORBIDDEN,
        "The supplied authentication is not authorized to access 'alice/private'.",
    );
    let r = p
        .call(
            Method::PUT,
            "/api/v1/namespaces/alice/actions/shared/mine",
            Some(json!({"exec": {"kind": "nodejs:20", "code": ECHO}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = p.get("/api/v1/namespaces/alice/actions/nothing").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    // guest binds alice's published package in its own namespace.
    let r = p.call(Method::PUT, "/api/v1/namespaces/_/packages/alices", Some(json!({"binding": {"namespace": "alice", "name": "shared"}, "parameters": [{"key": "via", "value": "guest"}]}))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = p
        .call(
            Method::POST,
            "/api/v1/namespaces/_/actions/alices/hello?blocking=true&result=true",
            Some(json!({})),
        )
        .await;
    assert_eq!(r.body, json!({"owner": "alice", "via": "guest"}));
    let r = p
        .call(
            Method::PUT,
            "/api/v1/namespaces/_/packages/sneaky",
            Some(json!({"binding": {"namespace": "alice", "name": "private"}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
}
