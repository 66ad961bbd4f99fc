//! Cross-namespace access with two subjects: `guest` reaches into `alice`'s namespace through
//! every collection (read, write, invoke, fire, list, activations), web actions, bindings,
//! rules, sequences and compositions, and gets exactly OpenWhisk's answer each time: only
//! published packages (and what is in them) are shared, everything else is 403 naming the
//! resource (or 404 where OpenWhisk hides it), and nothing of alice's changes.
//!
//! OpenWhisk's rules: `EN/Collection.scala` (owner-only collections), `EN/ActionCollection.scala`
//! and `EN/PackageCollection.scala` (published packages, bindings, missing packages refused
//! like private ones), `C/Actions.scala` (package listings, sequence components),
//! `EN/Entitlement.scala` `referencedEntities` (bindings, rules, sequences),
//! `C/actions/PrimitiveActions.scala` `tryInvokeNext` (compositions), `C/WebActions.scala`.

mod common;

use common::{assert_error, Platform};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const ECHO: &str = "function main(p) { return p; }";

/// OpenWhisk's entitlement refusal for `resource`.
fn refused(resource: &str) -> String {
    format!("The supplied authentication is not authorized to access '{resource}'.")
}

/// Alice's namespace, as alice creates it.
struct Alice {
    key: String,
    activation: String,
}

async fn alice(p: &Platform) -> Alice {
    let key = p.add_user("alice").await;
    let put = |path: &str, body: Value| {
        let path = format!("/api/v1/namespaces/_/{path}");
        let key = key.clone();
        async move {
            let r = p.call_as(&key, Method::PUT, &path, Some(body)).await;
            assert_eq!(r.status, StatusCode::OK, "alice PUT {path}: {}", r.text);
        }
    };
    let code = json!({"kind": "nodejs:20", "code": ECHO});
    let web = json!([{"key": "web-export", "value": true}]);
    put("actions/a", json!({"exec": code})).await;
    put("actions/w", json!({"exec": code, "annotations": web})).await;
    put(
        "actions/wa",
        json!({"exec": code, "annotations": [
            {"key": "web-export", "value": true},
            {"key": "require-whisk-auth", "value": true}
        ]}),
    )
    .await;
    put(
        "packages/shared",
        json!({"publish": true, "parameters": [{"key": "owner", "value": "alice"}]}),
    )
    .await;
    put("actions/shared/s", json!({"exec": code})).await;
    put("packages/private", json!({})).await;
    put(
        "actions/private/p",
        json!({"exec": code, "annotations": web}),
    )
    .await;
    put(
        "packages/bind",
        json!({"binding": {"namespace": "alice", "name": "shared"}}),
    )
    .await;
    put("triggers/t", json!({})).await;
    put("rules/r", json!({"trigger": "/_/t", "action": "/_/a"})).await;
    let r = p
        .call_as(
            &key,
            Method::POST,
            "/api/v1/namespaces/_/actions/a?blocking=true",
            Some(json!({"secret": "alice's"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let activation = r.body["activationId"].as_str().unwrap().to_string();
    // The record is written just after the blocking answer.
    for _ in 0..200 {
        let path = format!("/api/v1/namespaces/_/activations/{activation}");
        if p.call_as(&key, Method::GET, &path, None).await.status == StatusCode::OK {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    Alice { key, activation }
}

/// Guest's request `method path` (under `/api/v1/namespaces/`) with `body`.
async fn guest(p: &Platform, method: Method, path: &str, body: Option<Value>) -> common::Resp {
    let body = body.or_else(|| matches!(method, Method::PUT | Method::POST).then(|| json!({})));
    p.call(method, &format!("/api/v1/namespaces/{path}"), body)
        .await
}

/// Each `(method, path)` answers 403 refusing `resource`.
async fn all_refused(p: &Platform, requests: &[(Method, &str)], resource: &str) {
    for (m, path) in requests {
        let r = guest(p, m.clone(), path, None).await;
        assert_error(&r, StatusCode::FORBIDDEN, &refused(resource));
    }
}

#[tokio::test]
async fn another_namespaces_collections_and_entities_are_refused() {
    let p = Platform::start().await;
    let a = alice(&p).await;
    use Method as M;

    // Listing any collection but packages, and the limits, name the namespace.
    all_refused(
        &p,
        &[
            (M::GET, "alice/actions"),
            (M::GET, "alice/triggers"),
            (M::GET, "alice/rules"),
            (M::GET, "alice/activations"),
            (M::GET, "alice/activations?count=true"),
            (M::GET, "alice/limits"),
        ],
        "alice",
    )
    .await;
    let r = p.get("/api/v1/namespaces").await;
    assert_eq!(
        r.body,
        json!(["guest"]),
        "GET /namespaces lists only the caller's"
    );

    // Entities outside packages: read, write, delete, invoke / fire / enable.
    for (collection, name) in [("actions", "a"), ("triggers", "t"), ("rules", "r")] {
        let path = format!("alice/{collection}/{name}");
        all_refused(
            &p,
            &[
                (M::GET, &path),
                (M::PUT, &format!("{path}?overwrite=true")),
                (M::DELETE, &path),
                (M::POST, &path),
            ],
            &format!("alice/{name}"),
        )
        .await;
        // A name that does not exist is refused the same way (nothing leaks).
        let missing = format!("alice/{collection}/nothing");
        all_refused(&p, &[(M::GET, &missing)], "alice/nothing").await;
    }
    let r = guest(
        &p,
        M::POST,
        "alice/rules/r",
        Some(json!({"status": "inactive"})),
    )
    .await;
    assert_error(&r, StatusCode::FORBIDDEN, &refused("alice/r"));

    // Activations: by id, logs and result; the id through the caller's own namespace is not
    // there, and the caller's list does not show it.
    let id = &a.activation;
    all_refused(
        &p,
        &[
            (M::GET, &format!("alice/activations/{id}")),
            (M::GET, &format!("alice/activations/{id}/logs")),
            (M::GET, &format!("alice/activations/{id}/result")),
        ],
        &format!("alice/{id}"),
    )
    .await;
    for suffix in ["", "/logs", "/result"] {
        let r = guest(&p, M::GET, &format!("_/activations/{id}{suffix}"), None).await;
        assert_error(
            &r,
            StatusCode::NOT_FOUND,
            "The requested resource does not exist.",
        );
    }
    let own = guest(&p, M::GET, "_/activations?docs=true", None).await;
    assert_eq!(own.status, StatusCode::OK);
    assert!(!own.text.contains(id.as_str()), "{}", own.text);
    assert!(!own.text.contains("alice's"));

    // Nothing of alice's changed, and alice still reads it all.
    for path in [
        "_/actions/a",
        "_/triggers/t",
        "_/rules/r",
        "_/packages/shared",
        "_/actions/shared/s",
    ] {
        let r = p
            .call_as(&a.key, M::GET, &format!("/api/v1/namespaces/{path}"), None)
            .await;
        assert_eq!(r.status, StatusCode::OK, "alice GET {path}: {}", r.text);
        assert_eq!(r.body["version"], "0.0.1", "{path} untouched");
    }
    let r = p
        .call_as(&a.key, M::GET, "/api/v1/namespaces/_/rules/r", None)
        .await;
    assert_eq!(r.body["status"], "active");
}

#[tokio::test]
async fn only_published_packages_are_shared() {
    let p = Platform::start().await;
    let a = alice(&p).await;
    use Method as M;

    // A published package: readable, its actions readable, listable and invocable...
    let r = guest(&p, M::GET, "alice/packages/shared", None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["actions"][0]["name"], "s");
    let r = guest(&p, M::GET, "alice/actions/shared/s", None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["namespace"], "alice/shared");
    let r = guest(&p, M::GET, "alice/actions/shared/", None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body.as_array().unwrap().len(), 1);
    let r = guest(
        &p,
        M::POST,
        "alice/actions/shared/s?blocking=true&result=true",
        Some(json!({"x": 1})),
    )
    .await;
    assert_eq!(r.body, json!({"owner": "alice", "x": 1}), "{}", r.text);
    // ...but not writable.
    all_refused(
        &p,
        &[
            (M::PUT, "alice/actions/shared/s?overwrite=true"),
            (M::DELETE, "alice/actions/shared/s"),
        ],
        "alice/shared/s",
    )
    .await;
    let new = json!({"exec": {"kind": "nodejs:20", "code": ECHO}});
    let r = guest(&p, M::PUT, "alice/actions/shared/new", Some(new)).await;
    assert_error(&r, StatusCode::FORBIDDEN, &refused("alice/shared/new"));
    all_refused(
        &p,
        &[
            (M::PUT, "alice/packages/shared?overwrite=true"),
            (M::DELETE, "alice/packages/shared"),
        ],
        "alice/shared",
    )
    .await;
    all_refused(&p, &[(M::PUT, "alice/packages/mine")], "alice/mine").await;

    // A private package, a binding of alice's and a missing package are refused alike, by
    // package name, for the package and for anything in it.
    for pkg in ["private", "bind", "nothing"] {
        all_refused(
            &p,
            &[
                (M::GET, &format!("alice/packages/{pkg}")),
                (M::GET, &format!("alice/actions/{pkg}/")),
                (M::GET, &format!("alice/actions/{pkg}/p")),
                (M::POST, &format!("alice/actions/{pkg}/p")),
            ],
            &format!("alice/{pkg}"),
        )
        .await;
    }
    all_refused(
        &p,
        &[
            (M::PUT, "alice/actions/private/p?overwrite=true"),
            (M::DELETE, "alice/actions/private/p"),
        ],
        "alice/private/p",
    )
    .await;

    // The package list of another namespace shows its published packages only.
    let r = guest(&p, M::GET, "alice/packages", None).await;
    let names: Vec<&Value> = r
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|x| &x["name"])
        .collect();
    assert_eq!(names, [&json!("shared")], "{}", r.text);

    // Bindings: to the published package, yes; to anything else there, refused alike.
    let r = guest(
        &p,
        M::PUT,
        "_/packages/mine",
        Some(json!({"binding": {"namespace": "alice", "name": "shared"}})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = guest(
        &p,
        M::POST,
        "_/actions/mine/s?blocking=true&result=true",
        Some(json!({"y": 2})),
    )
    .await;
    assert_eq!(r.body, json!({"owner": "alice", "y": 2}), "{}", r.text);
    for target in ["private", "bind", "nothing", "a"] {
        let r = guest(
            &p,
            M::PUT,
            &format!("_/packages/to-{target}"),
            Some(json!({"binding": {"namespace": "alice", "name": target}})),
        )
        .await;
        assert_error(
            &r,
            StatusCode::FORBIDDEN,
            &refused(&format!("alice/{target}")),
        );
    }

    // Once alice unpublishes, the package and the binding to it are refused.
    let r = p
        .call_as(
            &a.key,
            M::PUT,
            "/api/v1/namespaces/_/packages/shared?overwrite=true",
            Some(json!({"publish": false})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    all_refused(
        &p,
        &[
            (M::GET, "alice/actions/shared/s"),
            (M::POST, "alice/actions/shared/s"),
        ],
        "alice/shared",
    )
    .await;
    let r = guest(&p, M::POST, "_/actions/mine/s?blocking=true", None).await;
    assert_error(&r, StatusCode::FORBIDDEN, &refused("alice/shared"));
}

#[tokio::test]
async fn references_to_another_namespace_are_checked() {
    let p = Platform::start().await;
    let a = alice(&p).await;
    use Method as M;
    let code = json!({"kind": "nodejs:20", "code": ECHO});
    let r = guest(&p, M::PUT, "_/actions/mine", Some(json!({"exec": code}))).await;
    assert_eq!(r.status, StatusCode::OK);
    let r = guest(&p, M::PUT, "_/triggers/gt", Some(json!({}))).await;
    assert_eq!(r.status, StatusCode::OK);

    // Rules: another namespace's trigger never, its actions only in a published package.
    for (body, resource) in [
        (json!({"trigger": "/_/gt", "action": "/alice/a"}), "alice/a"),
        (
            json!({"trigger": "/alice/t", "action": "/_/mine"}),
            "alice/t",
        ),
        (
            json!({"trigger": "/alice/t", "action": "/alice/a"}),
            "alice/a, alice/t",
        ),
        (
            json!({"trigger": "/_/gt", "action": "/alice/private/p"}),
            "alice/private",
        ),
    ] {
        let r = guest(&p, M::PUT, "_/rules/gr", Some(body)).await;
        assert_error(&r, StatusCode::FORBIDDEN, &refused(resource));
    }
    let r = guest(
        &p,
        M::PUT,
        "_/rules/gr",
        Some(json!({"trigger": "/_/gt", "action": "/alice/shared/s"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);

    // Sequences: components of another namespace only in a published package.
    for (component, resource) in [
        ("/alice/a", "alice/a"),
        ("/alice/private/p", "alice/private"),
        ("/alice/nothing/p", "alice/nothing"),
    ] {
        let body = json!({"exec": {"kind": "sequence", "components": ["/_/mine", component]}});
        let r = guest(&p, M::PUT, "_/actions/seq", Some(body)).await;
        assert_error(&r, StatusCode::FORBIDDEN, &refused(resource));
    }
    let body = json!({"exec": {"kind": "sequence", "components": ["/alice/shared/s", "/_/mine"]}});
    let r = guest(&p, M::PUT, "_/actions/seq", Some(body)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = guest(
        &p,
        M::POST,
        "_/actions/seq?blocking=true&result=true",
        Some(json!({"z": 3})),
    )
    .await;
    assert_eq!(r.body, json!({"owner": "alice", "z": 3}), "{}", r.text);

    // Compositions: a conductor naming another namespace's action gets OpenWhisk's error back.
    let conductor = r#"function main(p) {
      if (p.error) return {params: {error: p.error}};
      return {action: p.next, params: {}};
    }"#;
    let r = guest(
        &p,
        M::PUT,
        "_/actions/cond",
        Some(json!({"exec": {"kind": "nodejs:20", "code": conductor},
                    "annotations": [{"key": "conductor", "value": true}]})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    for (next, name) in [
        ("/alice/a", "alice/a"),
        ("/alice/private/p", "alice/private/p"),
    ] {
        let r = guest(
            &p,
            M::POST,
            "_/actions/cond?blocking=true",
            Some(json!({"next": next})),
        )
        .await;
        assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", r.text);
        assert_eq!(
            r.body["response"]["result"],
            json!({"error": format!("Failed entitlement check for action with name '{name}' during composition.")})
        );
    }
    let r = guest(
        &p,
        M::POST,
        "_/actions/cond?blocking=true&result=true",
        Some(json!({"next": "/alice/shared/s"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);

    // When alice unpublishes, invoking the sequence that uses her package is refused.
    let r = p
        .call_as(
            &a.key,
            M::PUT,
            "/api/v1/namespaces/_/packages/shared?overwrite=true",
            Some(json!({"publish": false})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = guest(&p, M::POST, "_/actions/seq?blocking=true", None).await;
    assert_error(&r, StatusCode::FORBIDDEN, &refused("alice/shared"));
}

#[tokio::test]
async fn web_actions_run_as_their_owner_and_honour_require_whisk_auth() {
    let p = Platform::start().await;
    let _a = alice(&p).await;
    let web = |path: &str, auth: Option<&str>| {
        let path = format!("/api/v1/web/alice/{path}");
        let auth = auth.map(str::to_string);
        let p = &p;
        async move { p.send(Method::GET, &path, None, auth.as_deref()).await }
    };
    let guest_key = whisk_core::entity::identity::GUEST_KEY;
    let wrong = guest_key.replace("123zO3", "999zO3");
    // Exported: anyone, anonymous or not, even in alice's private package.
    for path in ["default/w.json", "private/p.json"] {
        for auth in [None, Some(guest_key), Some(wrong.as_str())] {
            let r = web(path, auth).await;
            assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.text);
            assert_eq!(r.body["__ow_method"], "get");
        }
    }
    // The caller is named to the action only when authenticated.
    let r = web("default/w.json", Some(guest_key)).await;
    assert_eq!(r.body["__ow_user"], "guest");
    assert!(web("default/w.json", None)
        .await
        .body
        .get("__ow_user")
        .is_none());
    // Not exported, missing, or in a missing package: 404, nothing leaks.
    for path in ["default/a.json", "default/nothing.json", "nothing/p.json"] {
        let r = web(path, Some(guest_key)).await;
        assert_error(
            &r,
            StatusCode::NOT_FOUND,
            "The requested resource does not exist.",
        );
    }
    // require-whisk-auth: true admits any authenticated caller only.
    for auth in [None, Some(wrong.as_str())] {
        let r = web("default/wa.json", auth).await;
        assert_error(
            &r,
            StatusCode::UNAUTHORIZED,
            "Authentication is possible but has failed or not yet been provided.",
        );
    }
    let r = web("default/wa.json", Some(guest_key)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}
