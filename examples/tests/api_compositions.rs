//! Sequences and conductor actions.

mod common;

use common::{assert_error, Platform};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const INC: &str = "function main(p) { return {n: (p.n || 0) + (p.by || 1)}; }";
const DOUBLE: &str = "def main(a):\n    return {'n': a['n'] * 2}\n";

fn annotation(a: &Value, key: &str) -> Option<Value> {
    a["annotations"]
        .as_array()?
        .iter()
        .find(|x| x["key"] == key)
        .map(|x| x["value"].clone())
}

async fn sequence(p: &Platform, name: &str, components: Value) -> common::Resp {
    p.call(
        Method::PUT,
        &format!("/api/v1/namespaces/_/actions/{name}"),
        Some(json!({"exec": {"kind": "sequence", "components": components}})),
    )
    .await
}

#[tokio::test]
async fn sequences_feed_results_and_record_components() {
    let p = Platform::start().await;
    p.action(
        "inc",
        "nodejs:20",
        INC,
        json!({"parameters": [{"key": "by", "value": 10}]}),
    )
    .await;
    p.action("double", "python:3.11", DOUBLE, json!({})).await;
    let r = sequence(&p, "s", json!(["/_/inc", "/guest/double", "/_/inc"])).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        r.body["exec"],
        json!({"kind": "sequence", "components": ["/guest/inc", "/guest/double", "/guest/inc"]})
    );
    assert_eq!(
        r.body["parameters"],
        json!([{"key": "_actions", "value": ["/guest/inc", "/guest/double", "/guest/inc"]}])
    );

    let r = p.invoke("s", json!({"n": 1}), "").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        r.body["response"]["result"],
        json!({"n": 32}),
        "(1+10)*2+10"
    );
    let logs = r.body["logs"].as_array().unwrap().clone();
    assert_eq!(logs.len(), 3, "component ids as logs");
    assert_eq!(annotation(&r.body, "kind"), Some(json!("sequence")));
    assert_eq!(annotation(&r.body, "topmost"), Some(json!(true)));
    let mut sum = 0;
    for id in &logs {
        let c = p
            .get(&format!(
                "/api/v1/namespaces/_/activations/{}",
                id.as_str().unwrap()
            ))
            .await
            .body;
        assert_eq!(c["cause"], r.body["activationId"]);
        assert_eq!(annotation(&c, "causedBy"), Some(json!("sequence")));
        sum += c["duration"].as_u64().unwrap();
    }
    assert_eq!(r.body["duration"].as_u64().unwrap(), sum, "summed duration");
    assert_eq!(
        p.invoke("s", json!({"n": 0}), "&result=true").await.body,
        json!({"n": 30})
    );

    // Nested sequences, and early stop on error.
    assert_eq!(
        sequence(&p, "outer", json!(["/_/s", "/_/double"]))
            .await
            .status,
        StatusCode::OK
    );
    let r = p.invoke("outer", json!({"n": 1}), "").await;
    assert_eq!(r.body["response"]["result"], json!({"n": 64}));
    let inner = p
        .get(&format!(
            "/api/v1/namespaces/_/activations/{}",
            r.body["logs"][0].as_str().unwrap()
        ))
        .await
        .body;
    assert_eq!(inner["cause"], r.body["activationId"]);
    assert_eq!(annotation(&inner, "topmost"), Some(json!(false)));
    p.action(
        "fail",
        "nodejs:20",
        "function main() { return {error: 'stop here'}; }",
        json!({}),
    )
    .await;
    sequence(&p, "broken", json!(["/_/inc", "/_/fail", "/_/double"])).await;
    let r = p.invoke("broken", json!({"n": 1}), "").await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);
    assert_eq!(r.body["response"]["result"], json!({"error": "stop here"}));
    assert_eq!(
        r.body["logs"].as_array().unwrap().len(),
        2,
        "third component never ran"
    );

    // A component deleted after definition fails the sequence at run time.
    p.action("gone", "nodejs:20", INC, json!({})).await;
    sequence(&p, "dangling", json!(["/_/gone"])).await;
    p.call(Method::DELETE, "/api/v1/namespaces/_/actions/gone", None)
        .await;
    let r = p.invoke("dangling", json!({}), "").await;
    assert_eq!(
        r.body["response"]["result"],
        json!({"error": "Sequence component does not exist."})
    );
}

#[tokio::test]
async fn sequence_validation() {
    let p = Platform::start().await;
    p.action("inc", "nodejs:20", INC, json!({})).await;
    assert_error(
        &sequence(&p, "s", json!([])).await,
        StatusCode::BAD_REQUEST,
        "No component specified for the sequence.",
    );
    assert_error(
        &sequence(&p, "s", json!(["/_/missing"])).await,
        StatusCode::BAD_REQUEST,
        "Sequence component does not exist.",
    );
    assert_error(
        &sequence(&p, "s", json!(["/_/s"])).await,
        StatusCode::BAD_REQUEST,
        "Sequence may not refer to itself.",
    );
    assert_eq!(
        sequence(&p, "a", json!(["/_/inc"])).await.status,
        StatusCode::OK
    );
    assert_eq!(
        sequence(&p, "b", json!(["/_/a"])).await.status,
        StatusCode::OK
    );
    let r = p
        .call(
            Method::PUT,
            "/api/v1/namespaces/_/actions/a?overwrite=true",
            Some(json!({"exec": {"kind": "sequence", "components": ["/_/b"]}})),
        )
        .await;
    assert_error(
        &r,
        StatusCode::BAD_REQUEST,
        "Sequence may not refer to itself.",
    );
    let fifty: Vec<String> = (0..50).map(|_| "/_/inc".to_string()).collect();
    assert_eq!(
        sequence(&p, "fifty", json!(fifty)).await.status,
        StatusCode::OK
    );
    assert_error(
        &sequence(&p, "more", json!(["/_/fifty", "/_/inc"])).await,
        StatusCode::BAD_REQUEST,
        "Too many actions in the sequence.",
    );
}

const CONDUCTOR: &str = r#"function main(p) {
  const step = p.$step || 0;
  delete p.$step;
  if (p.error) return {params: p};
  switch (step) {
    case 0: return {action: p.first || 'inc', params: p, state: {$step: 1}};
    case 1: return {action: p.next || 'double', params: p, state: {$step: 2}};
    default: return {params: p};
  }
}"#;

#[tokio::test]
async fn conductor_actions_drive_their_components() {
    let p = Platform::start().await;
    p.action("inc", "nodejs:20", INC, json!({})).await;
    p.action("double", "python:3.11", DOUBLE, json!({})).await;
    p.action(
        "conductor",
        "nodejs:20",
        CONDUCTOR,
        json!({"annotations": [{"key": "conductor", "value": true}]}),
    )
    .await;
    let r = p.invoke("conductor", json!({"n": 3}), "").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["response"]["result"], json!({"n": 8}), "(3+1)*2");
    assert_eq!(annotation(&r.body, "conductor"), Some(json!(true)));
    assert_eq!(
        r.body["logs"].as_array().unwrap().len(),
        5,
        "3 conductor steps + 2 components"
    );
    // An unknown component name is reported back to the conductor as an error.
    let r = p
        .invoke("conductor", json!({"n": 3, "first": "nowhere"}), "")
        .await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);
    assert_eq!(r.body["response"]["status"], "application error");
    assert_eq!(
        r.body["response"]["result"],
        json!({"error": "Failed to resolve action with name 'nowhere' during composition."})
    );
    // A conductor that never stops hits the composition limit.
    p.action(
        "forever",
        "nodejs:20",
        "function main(p) { return {action: 'inc', params: p}; }",
        json!({"annotations": [{"key": "conductor", "value": true}]}),
    )
    .await;
    let r = p.invoke("forever", json!({"n": 0}), "").await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);
    assert_eq!(
        r.body["response"]["result"],
        json!({"error": "Too many actions in the composition."})
    );
}
