//! Reading activations: list filters, get, logs, result and bad ids.

mod common;

use common::{assert_error, Platform};
use serde_json::json;

#[tokio::test]
async fn list_get_logs_result() {
    let p = Platform::start().await;
    p.action(
        "a",
        "nodejs:20",
        "function main(p) { console.log('one'); console.error('two'); return {n: p.n}; }",
        json!({}),
    )
    .await;
    p.action(
        "b",
        "python:3.11",
        "def main(a):\n    return {}\n",
        json!({}),
    )
    .await;
    let mut ids = Vec::new();
    for n in 0..3 {
        let r = p.invoke("a", json!({"n": n}), "").await;
        ids.push(r.body["activationId"].as_str().unwrap().to_string());
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let b = p.invoke("b", json!({}), "").await.body;

    let all = p.get("/api/v1/namespaces/_/activations").await.body;
    let listed: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["activationId"].as_str().unwrap())
        .collect();
    assert_eq!(
        listed,
        [
            b["activationId"].as_str().unwrap(),
            &ids[2],
            &ids[1],
            &ids[0]
        ],
        "newest first"
    );
    assert!(
        all[0].get("response").is_none() && all[0].get("logs").is_none(),
        "summaries"
    );
    assert_eq!(all[0]["statusCode"], 0);

    let only_a = p
        .get("/api/v1/namespaces/_/activations?name=a&limit=2")
        .await
        .body;
    assert_eq!(only_a.as_array().unwrap().len(), 2);
    assert!(only_a.as_array().unwrap().iter().all(|x| x["name"] == "a"));
    let docs = p
        .get("/api/v1/namespaces/_/activations?name=a&docs=true&skip=2")
        .await
        .body;
    assert_eq!(docs[0]["activationId"], ids[0].as_str());
    assert_eq!(docs[0]["response"]["result"], json!({"n": 0}));
    assert_eq!(
        p.get("/api/v1/namespaces/_/activations?count=true")
            .await
            .body,
        json!({"activations": 4})
    );
    let since = b["start"].as_u64().unwrap();
    let newer = p
        .get(&format!("/api/v1/namespaces/_/activations?since={since}"))
        .await
        .body;
    assert_eq!(newer.as_array().unwrap().len(), 1);
    let older = p
        .get(&format!(
            "/api/v1/namespaces/_/activations?upto={}",
            since - 1
        ))
        .await
        .body;
    assert_eq!(older.as_array().unwrap().len(), 3);

    let id = &ids[1];
    let full = p
        .get(&format!("/api/v1/namespaces/_/activations/{id}"))
        .await;
    assert_eq!(full.body["response"]["result"], json!({"n": 1}));
    let logs = p
        .get(&format!("/api/v1/namespaces/_/activations/{id}/logs"))
        .await
        .body;
    let lines = common::strings(&logs["logs"]);
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines.iter().any(|l| l.ends_with(" stdout: one")));
    assert!(lines.iter().any(|l| l.ends_with(" stderr: two")));
    assert!(
        lines
            .iter()
            .all(|l| l.len() > 31 && l.as_bytes()[30] == b' ' && l.contains('T')),
        "time padded to 30: {lines:?}"
    );
    let result = p
        .get(&format!("/api/v1/namespaces/_/activations/{id}/result"))
        .await
        .body;
    assert_eq!(
        result,
        json!({"result": {"n": 1}, "size": 7, "status": "success", "success": true})
    );
}

#[tokio::test]
async fn bad_activation_queries() {
    let p = Platform::start().await;
    use reqwest::StatusCode;
    assert_error(
        &p.get("/api/v1/namespaces/_/activations/abc").await,
        StatusCode::BAD_REQUEST,
        "Activation id length is 3 but must be 32.",
    );
    assert_error(
        &p.get(&format!(
            "/api/v1/namespaces/_/activations/{}",
            "z".repeat(32)
        ))
        .await,
        StatusCode::BAD_REQUEST,
        "The activation id is not valid.",
    );
    let unknown = "0123456789abcdef0123456789abcdef";
    assert_error(
        &p.get(&format!("/api/v1/namespaces/_/activations/{unknown}"))
            .await,
        StatusCode::NOT_FOUND,
        "The requested resource does not exist.",
    );
    assert_error(
        &p.get(&format!("/api/v1/namespaces/_/activations/{unknown}/logs"))
            .await,
        StatusCode::NOT_FOUND,
        "The requested resource does not exist.",
    );
    assert_error(
        &p.get("/api/v1/namespaces/_/activations?count=true&docs=true")
            .await,
        StatusCode::BAD_REQUEST,
        "The parameter 'docs' is not permitted with 'count'.",
    );
    assert_error(
        &p.get("/api/v1/namespaces/_/activations?name=a/b/c").await,
        StatusCode::BAD_REQUEST,
        "Parameter may be a 'simple' name or 'package-name/simple' name: a/b/c",
    );
    assert_error(
        &p.get("/api/v1/namespaces/_/activations?since=yesterday")
            .await,
        StatusCode::BAD_REQUEST,
        "Parameter is not a valid value for epoch seconds: yesterday",
    );
    // Found by the API fuzzing: bounds are epoch milliseconds in OpenWhisk's (signed) 64 bits;
    // a larger number was taken.
    assert_error(
        &p.get("/api/v1/namespaces/_/activations?upto=9223372036854775808")
            .await,
        StatusCode::BAD_REQUEST,
        "Parameter is not a valid value for epoch seconds: 9223372036854775808",
    );
    let r = p
        .get("/api/v1/namespaces/_/activations?upto=9223372036854775807&count=true")
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // Likewise `skip` (in every list): a number past 64-bit signed was taken, and one past
    // 64-bit unsigned refused, where OpenWhisk's description says int64.
    for list in ["activations", "actions", "rules", "triggers", "packages"] {
        let r = p
            .get(&format!(
                "/api/v1/namespaces/_/{list}?skip=9223372036854775808"
            ))
            .await;
        assert_error(
            &r,
            StatusCode::BAD_REQUEST,
            "The query parameter 'skip' was malformed:\n'9223372036854775808' is not a valid non-negative integer value",
        );
        let r = p
            .get(&format!(
                "/api/v1/namespaces/_/{list}?skip=9223372036854775807"
            ))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{list}: {}", r.text);
    }
    assert_error(
        &p.get("/api/v1/namespaces/_/activations?limit=300").await,
        StatusCode::BAD_REQUEST,
        "The value '300' is not in the range of 0 to 200 for activations.",
    );
}
