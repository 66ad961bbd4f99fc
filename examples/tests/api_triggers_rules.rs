//! Triggers and rules: CRUD, fire (204/202), the trigger activation's per-rule log lines,
//! the action's argument, enable/disable with status kept in the trigger.

mod common;

use common::{assert_error, Platform, Resp};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::time::Duration;

const ECHO: &str = "function main(p) { return p; }";

/// Polls until activation `id` is recorded.
async fn activation(p: &Platform, id: &str) -> Value {
    for _ in 0..200 {
        let r = p
            .get(&format!("/api/v1/namespaces/_/activations/{id}"))
            .await;
        if r.status == StatusCode::OK {
            return r.body;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("activation {id} never recorded");
}

fn fire_id(r: &Resp) -> String {
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let id = r.body["activationId"].as_str().unwrap().to_string();
    assert_eq!(r.headers["x-openwhisk-activation-id"].to_str().unwrap(), id);
    id
}

#[tokio::test]
async fn trigger_rule_action_end_to_end() {
    let p = Platform::start().await;
    let r = p.call(Method::PUT, "/api/v1/namespaces/_/triggers/t", Some(json!({"parameters": [{"key": "from", "value": "trigger"}, {"key": "x", "value": "trigger"}]}))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["limits"], json!({}));
    assert_eq!(r.body["version"], "0.0.1");
    assert_error(
        &p.call(
            Method::PUT,
            "/api/v1/namespaces/_/triggers/t",
            Some(json!({})),
        )
        .await,
        StatusCode::CONFLICT,
        "resource already exists",
    );

    // No rules: 204 and nothing recorded.
    let r = p
        .call(
            Method::POST,
            "/api/v1/namespaces/_/triggers/t",
            Some(json!({"x": 1})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);

    p.action(
        "echo",
        "nodejs:20",
        ECHO,
        json!({"parameters": [{"key": "own", "value": 1}]}),
    )
    .await;
    let r = p
        .call(
            Method::PUT,
            "/api/v1/namespaces/_/rules/r",
            Some(json!({"trigger": "/_/t", "action": "/_/echo"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["status"], "active", "new rules are active");
    assert_eq!(r.body["trigger"], json!({"path": "guest", "name": "t"}));
    assert_eq!(r.body["action"], json!({"path": "guest", "name": "echo"}));
    let t = p.get("/api/v1/namespaces/_/triggers/t").await.body;
    assert_eq!(
        t["rules"],
        json!({"guest/r": {"action": {"path": "guest", "name": "echo"}, "status": "active"}})
    );

    let r = p
        .call(
            Method::POST,
            "/api/v1/namespaces/_/triggers/t",
            Some(json!({"x": "payload"})),
        )
        .await;
    let id = fire_id(&r);
    let trig = activation(&p, &id).await;
    assert_eq!(trig["name"], "t");
    assert!(
        trig.get("end").is_none() && trig.get("duration").is_none(),
        "trigger activations have no end"
    );
    assert_eq!(trig["response"]["result"], json!({"x": "payload"}));
    let logs = trig["logs"].as_array().unwrap();
    assert_eq!(logs.len(), 1);
    let line: Value = serde_json::from_str(logs[0].as_str().unwrap()).unwrap();
    assert_eq!(line["statusCode"], 0);
    assert_eq!(line["success"], true);
    assert_eq!(line["rule"], "guest/r");
    assert_eq!(line["action"], "guest/echo");
    let action_act = activation(&p, line["activationId"].as_str().unwrap()).await;
    let result = &action_act["response"]["result"];
    assert_eq!(result["from"], "trigger");
    assert_eq!(
        result["x"], "payload",
        "payload overrides trigger parameters"
    );
    assert_eq!(result["own"], 1, "action parameters are kept");
    assert!(result["__ow_headers"]["content-type"]
        .as_str()
        .unwrap()
        .starts_with("application/json"));

    // Disable: fires record nothing for the rule; status lives in the trigger.
    let r = p
        .call(
            Method::POST,
            "/api/v1/namespaces/_/rules/r",
            Some(json!({"status": "inactive"})),
        )
        .await;
    assert_eq!(
        (r.status, r.body["status"].clone()),
        (StatusCode::OK, json!("inactive"))
    );
    assert_eq!(
        p.get("/api/v1/namespaces/_/rules/r").await.body["status"],
        "inactive"
    );
    assert_eq!(
        p.get("/api/v1/namespaces/_/triggers/t").await.body["rules"]["guest/r"]["status"],
        "inactive"
    );
    assert_eq!(
        p.call(
            Method::POST,
            "/api/v1/namespaces/_/triggers/t",
            Some(json!({}))
        )
        .await
        .status,
        StatusCode::NO_CONTENT
    );
    let r = p
        .call(
            Method::POST,
            "/api/v1/namespaces/_/rules/r",
            Some(json!({"status": "inactive"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "no-op is 200 too");
    let r = p
        .call(
            Method::POST,
            "/api/v1/namespaces/_/rules/r",
            Some(json!({"status": "paused"})),
        )
        .await;
    assert_error(
        &r,
        StatusCode::BAD_REQUEST,
        "'paused' is not a recognized rule state, must be one of ['active', 'inactive']",
    );
    p.call(
        Method::POST,
        "/api/v1/namespaces/_/rules/r",
        Some(json!({"status": "active"})),
    )
    .await;

    // Two rules: one log line each; a rule whose action is gone records its error.
    p.action("second", "nodejs:20", ECHO, json!({})).await;
    p.call(Method::PUT, "/api/v1/namespaces/_/rules/r2", Some(json!({"trigger": {"path": "guest", "name": "t"}, "action": {"path": "guest", "name": "second"}}))).await;
    p.call(Method::DELETE, "/api/v1/namespaces/_/actions/second", None)
        .await;
    let id = fire_id(
        &p.call(Method::POST, "/api/v1/namespaces/_/triggers/t", None)
            .await,
    );
    let logs = activation(&p, &id).await["logs"].clone();
    let lines: Vec<Value> = logs
        .as_array()
        .unwrap()
        .iter()
        .map(|l| serde_json::from_str(l.as_str().unwrap()).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    let failed = lines.iter().find(|l| l["rule"] == "guest/r2").unwrap();
    assert_eq!(failed["success"], false);
    assert_eq!(failed["statusCode"], 1);
    assert_eq!(failed["error"], "The requested resource does not exist.");

    // Lists and counts.
    assert_eq!(
        p.get("/api/v1/namespaces/_/rules?count=true").await.body,
        json!({"rules": 2})
    );
    assert_eq!(
        p.get("/api/v1/namespaces/_/triggers?count=true").await.body,
        json!({"triggers": 1})
    );
    let rules = p.get("/api/v1/namespaces/_/rules").await.body;
    assert!(
        rules[0].get("status").is_none(),
        "rule list items have no status"
    );

    // Delete: the rule answers inactive and leaves the trigger.
    let r = p
        .call(Method::DELETE, "/api/v1/namespaces/_/rules/r2", None)
        .await;
    assert_eq!(r.body["status"], "inactive");
    let t = p.get("/api/v1/namespaces/_/triggers/t").await.body;
    assert!(t["rules"].get("guest/r2").is_none());
    assert_eq!(
        p.call(Method::DELETE, "/api/v1/namespaces/_/triggers/t", None)
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        p.get("/api/v1/namespaces/_/rules/r").await.body["status"],
        "inactive",
        "trigger gone: inactive"
    );
    let r = p
        .call(
            Method::POST,
            "/api/v1/namespaces/_/rules/r",
            Some(json!({"status": "active"})),
        )
        .await;
    assert_error(
        &r,
        StatusCode::NOT_FOUND,
        "Only rules with existing triggers can be activated",
    );
}

#[tokio::test]
async fn rule_and_trigger_errors() {
    let p = Platform::start().await;
    p.call(
        Method::PUT,
        "/api/v1/namespaces/_/triggers/t",
        Some(json!({})),
    )
    .await;
    p.action("a", "nodejs:20", ECHO, json!({})).await;
    let put = |body: Value| p.call(Method::PUT, "/api/v1/namespaces/_/rules/r", Some(body));
    assert_error(
        &put(json!({"trigger": "/_/t"})).await,
        StatusCode::BAD_REQUEST,
        "rule requires a valid trigger and a valid action",
    );
    assert_error(
        &put(json!({"trigger": "/_/nope", "action": "/_/a"})).await,
        StatusCode::BAD_REQUEST,
        "trigger /guest/nope does not exist",
    );
    assert_error(
        &put(json!({"trigger": "/_/t", "action": "/_/nope"})).await,
        StatusCode::BAD_REQUEST,
        "action /guest/nope does not exist",
    );
    assert_error(
        &put(json!({"trigger": "t", "action": "/_/a"})).await,
        StatusCode::BAD_REQUEST,
        "rule requires a valid trigger and a valid action",
    );
    assert_eq!(
        put(json!({"trigger": "/_/t", "action": "/_/a", "status": "inactive"}))
            .await
            .body["status"],
        "active",
        "status in PUT is ignored"
    );
    // Re-pointing a rule at another trigger moves its link and keeps its status.
    p.call(
        Method::POST,
        "/api/v1/namespaces/_/rules/r",
        Some(json!({"status": "inactive"})),
    )
    .await;
    p.call(
        Method::PUT,
        "/api/v1/namespaces/_/triggers/t2",
        Some(json!({})),
    )
    .await;
    let r = p
        .call(
            Method::PUT,
            "/api/v1/namespaces/_/rules/r?overwrite=true",
            Some(json!({"trigger": "/_/t2", "action": "/_/a"})),
        )
        .await;
    assert_eq!(
        (
            r.status,
            r.body["status"].clone(),
            r.body["version"].clone()
        ),
        (StatusCode::OK, json!("inactive"), json!("0.0.2"))
    );
    assert!(p.get("/api/v1/namespaces/_/triggers/t").await.body["rules"]
        .get("guest/r")
        .is_none());
    assert_eq!(
        p.get("/api/v1/namespaces/_/triggers/t2").await.body["rules"]["guest/r"]["status"],
        "inactive"
    );

    let r = p
        .call(
            Method::PUT,
            "/api/v1/namespaces/_/triggers/f",
            Some(json!({"annotations": [{"key": "feed", "value": "not a path"}]})),
        )
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "Feed name is not valid");
    assert_eq!(
        p.call(
            Method::PUT,
            "/api/v1/namespaces/_/triggers/f",
            Some(json!({"annotations": [{"key": "feed", "value": "/whisk.system/alarms/alarm"}]}))
        )
        .await
        .status,
        StatusCode::OK
    );
    assert_error(
        &p.call(Method::POST, "/api/v1/namespaces/_/triggers/missing", None)
            .await,
        StatusCode::NOT_FOUND,
        "The requested resource does not exist.",
    );
    let r = p
        .raw(Method::POST, "/api/v1/namespaces/_/triggers/t", "[1,2]")
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    // An action is not a trigger.
    assert_error(
        &p.get("/api/v1/namespaces/_/triggers/a").await,
        StatusCode::CONFLICT,
        "Resource by this name exists but is not in this collection.",
    );
}

#[tokio::test]
async fn updating_an_entity_at_the_largest_patch_version_carries_into_minor() {
    // Found by the API fuzzing: the update's version bump overflowed, and the handler panicked
    // (the connection closed without an answer).
    let p = Platform::start().await;
    p.action("a", "nodejs:20", ECHO, json!({})).await;
    let largest = json!({"version": "0.0.4294967295"});
    for (collection, create) in [
        ("triggers", largest.clone()),
        ("packages", largest.clone()),
        (
            "actions",
            json!({"version": "0.0.4294967295", "exec": {"kind": "nodejs:20", "code": ECHO}}),
        ),
        (
            "rules",
            json!({"version": "0.0.4294967295", "trigger": "/_/triggers0", "action": "/_/a"}),
        ),
    ] {
        let name = format!("{collection}0");
        let path = format!("/api/v1/namespaces/_/{collection}/{name}");
        let r = p.call(Method::PUT, &path, Some(create)).await;
        assert_eq!(r.status, StatusCode::OK, "{collection}: {}", r.text);
        assert_eq!(r.body["version"], "0.0.4294967295");
        let r = p
            .call(
                Method::PUT,
                &format!("{path}?overwrite=true"),
                Some(json!({})),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{collection}: {}", r.text);
        assert_eq!(r.body["version"], "0.1.0", "{collection}");
        assert_eq!(p.get(&path).await.body["version"], "0.1.0", "{collection}");
    }
}
