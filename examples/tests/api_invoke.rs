//! Invocations end to end: results, status codes, user failures, timeouts and bad input.

mod common;

use common::{assert_error, assert_error_prefix, Platform};
use reqwest::{Method, StatusCode};
use serde_json::json;

const ECHO: &str = "function main(p) { console.log('got ' + JSON.stringify(p)); return p; }";

#[tokio::test]
async fn blocking_nonblocking_and_result_forms() {
    let p = Platform::start().await;
    p.action(
        "echo",
        "nodejs:20",
        ECHO,
        json!({"parameters": [{"key": "a", "value": 1}, {"key": "b", "value": 2}]}),
    )
    .await;
    let r = p.invoke("echo", json!({"b": 3}), "").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let id = r.body["activationId"].as_str().unwrap().to_string();
    assert_eq!(r.headers["x-openwhisk-activation-id"].to_str().unwrap(), id);
    assert_eq!(
        r.body["response"]["result"],
        json!({"a": 1, "b": 3}),
        "payload overrides parameters"
    );
    assert_eq!(r.body["response"]["status"], "success");
    assert_eq!(r.body["response"]["success"], true);
    assert_eq!(r.body["namespace"], "guest");
    assert_eq!(r.body["subject"], "guest");
    assert_eq!(r.body["version"], "0.0.1");
    let ann = r.body["annotations"].as_array().unwrap();
    let get = |k: &str| {
        ann.iter()
            .find(|a| a["key"] == k)
            .map(|a| a["value"].clone())
    };
    assert_eq!(get("path"), Some(json!("guest/echo")));
    assert_eq!(get("kind"), Some(json!("nodejs:20")));
    assert_eq!(
        get("limits"),
        Some(json!({"timeout": 60000, "memory": 256, "logs": 10, "concurrency": 1}))
    );
    assert!(get("waitTime").unwrap().is_u64());
    assert!(
        get("initTime").unwrap().is_u64(),
        "first call is a cold start"
    );
    assert_eq!(
        r.body["duration"].as_u64().unwrap(),
        r.body["end"].as_u64().unwrap() - r.body["start"].as_u64().unwrap()
    );
    assert_eq!(
        r.body["logs"],
        json!([]),
        "as OpenWhisk's, before the logs are collected"
    );
    let record = p.record(&r.body).await;
    assert_eq!(record["response"], r.body["response"]);
    assert_eq!(record["logs"].as_array().unwrap().len(), 1);
    assert!(record["logs"][0]
        .as_str()
        .unwrap()
        .ends_with(" stdout: got {\"a\":1,\"b\":3}"));

    let r = p.invoke("echo", json!({"z": 1}), "&result=true").await;
    assert_eq!(r.body, json!({"a": 1, "b": 2, "z": 1}));
    assert!(r.headers.contains_key("x-openwhisk-activation-id"));
    let ann = p.invoke("echo", json!({}), "").await.body["annotations"].clone();
    assert!(
        ann.as_array()
            .unwrap()
            .iter()
            .all(|a| a["key"] != "initTime"),
        "warm calls have no initTime"
    );

    let r = p
        .call(
            Method::POST,
            "/api/v1/namespaces/_/actions/echo",
            Some(json!({})),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let id = r.body["activationId"].as_str().unwrap().to_string();
    assert_eq!(r.body, json!({"activationId": id}));
    // The non-blocking activation's record appears in the store.
    let mut found = false;
    for _ in 0..100 {
        if p.get(&format!("/api/v1/namespaces/_/activations/{id}"))
            .await
            .status
            == StatusCode::OK
        {
            found = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(found, "non-blocking activation recorded");

    // Empty body means {}; an array payload is passed verbatim and an array result returned raw.
    let r = p
        .raw(
            Method::POST,
            "/api/v1/namespaces/_/actions/echo?blocking=true&result=true",
            "",
        )
        .await;
    assert_eq!(r.body, json!({"a": 1, "b": 2}));
    let r = p.invoke("echo", json!([1, 2, 3]), "").await;
    assert_eq!(
        (r.status, r.body.clone()),
        (StatusCode::OK, json!([1, 2, 3]))
    );
}

#[tokio::test]
async fn user_failures_are_activation_records_with_openwhisk_statuses() {
    let p = Platform::start().await;
    p.action(
        "apperr",
        "nodejs:20",
        "function main() { return {error: 'nope'}; }",
        json!({}),
    )
    .await;
    p.action(
        "rejects",
        "nodejs:20",
        "function main() { return Promise.reject({reason: 1}); }",
        json!({}),
    )
    .await;
    p.action(
        "throws",
        "nodejs:20",
        "function main() { throw new Error('kaput'); }",
        json!({}),
    )
    .await;
    p.action(
        "scalar",
        "nodejs:20",
        "function main() { return 42; }",
        json!({}),
    )
    .await;
    p.action(
        "exits",
        "nodejs:20",
        "function main() { process.exit(1); }",
        json!({}),
    )
    .await;
    p.action("badinit", "nodejs:20", "this is not javascript", json!({}))
        .await;
    p.action(
        "pyerr",
        "python:3.11",
        "def main(a):\n    raise ValueError('bad value')\n",
        json!({}),
    )
    .await;
    p.action(
        "pyexit",
        "python:3.11",
        "import sys\ndef main(a):\n    sys.exit(2)\n",
        json!({}),
    )
    .await;

    let cases = [
        ("apperr", 1, "application error", json!({"error": "nope"})),
        (
            "rejects",
            1,
            "application error",
            json!({"error": {"reason": 1}}),
        ),
        (
            "pyerr",
            1,
            "application error",
            json!({"error": "bad value"}),
        ),
        (
            "scalar",
            2,
            "action developer error",
            json!({"error": "The action did not return a dictionary."}),
        ),
        (
            "exits",
            2,
            "action developer error",
            json!({"error": "The action did not produce a valid response and exited unexpectedly."}),
        ),
        (
            "pyexit",
            2,
            "action developer error",
            json!({"error": "The action did not produce a valid response and exited unexpectedly."}),
        ),
    ];
    for (name, code, status, result) in cases {
        let r = p.invoke(name, json!({}), "").await;
        assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{name}: {}", r.text);
        assert_eq!(r.body["response"]["status"], status, "{name}");
        assert_eq!(r.body["response"]["success"], false);
        assert_eq!(r.body["response"]["result"], result, "{name}");
        let id = r.body["activationId"].as_str().unwrap();
        let list = p
            .get(&format!("/api/v1/namespaces/_/activations?name={name}"))
            .await;
        assert_eq!(list.body[0]["activationId"], id);
        assert_eq!(
            list.body[0]["statusCode"], code,
            "{name}: list carries the numeric status"
        );
    }
    let r = p.invoke("throws", json!({}), "").await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);
    assert_eq!(r.body["response"]["status"], "action developer error");
    assert!(r.body["response"]["result"]["error"]
        .as_str()
        .unwrap()
        .contains("kaput"));
    let record = p.record(&r.body).await;
    let logs = record["logs"].as_array().unwrap();
    assert!(logs.last().unwrap().as_str().unwrap().ends_with(
        "stderr: The action did not initialize or run as expected. Log data might be missing."
    ));
    let r = p.invoke("badinit", json!({}), "").await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);
    assert_eq!(r.body["response"]["status"], "action developer error");
    assert!(r.body["response"]["result"]["error"].is_string());

    // Crashed containers were destroyed and the platform keeps serving.
    let r = p.invoke("scalar", json!({}), "").await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);
    p.action(
        "ok",
        "python:3.11",
        "def main(a):\n    return {'fine': True}\n",
        json!({}),
    )
    .await;
    assert_eq!(
        p.invoke("ok", json!({}), "&result=true").await.body,
        json!({"fine": true})
    );
    let r = p.invoke("exits", json!({}), "").await;
    assert_eq!(
        r.status,
        StatusCode::BAD_GATEWAY,
        "a fresh container after the crash"
    );
}

#[tokio::test]
async fn timeouts_and_blocking_wait() {
    let p = Platform::start().await;
    let sleepy =
        "function main(p) { return new Promise(r => setTimeout(() => r({slept: p.ms}), p.ms)); }";
    p.action(
        "sleepy",
        "nodejs:20",
        sleepy,
        json!({"limits": {"timeout": 1500}}),
    )
    .await;
    let r = p.invoke("sleepy", json!({"ms": 3000}), "").await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", r.text);
    assert_eq!(
        r.body["response"]["result"],
        json!({"error": "The action exceeded its time limits of 1500 milliseconds."})
    );
    let ann = r.body["annotations"].as_array().unwrap();
    assert!(ann
        .iter()
        .any(|a| a["key"] == "timeout" && a["value"] == true));
    assert_eq!(
        p.invoke("sleepy", json!({"ms": 10}), "&result=true")
            .await
            .body,
        json!({"slept": 10})
    );

    // A blocking wait shorter than the run answers 202 with the id; the record comes later.
    p.action("slow", "nodejs:20", sleepy, json!({})).await;
    let r = p.invoke("slow", json!({"ms": 1500}), "&timeout=200").await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let id = r.body["activationId"].as_str().unwrap().to_string();
    assert_eq!(r.headers["x-openwhisk-activation-id"].to_str().unwrap(), id);
    let mut done = None;
    for _ in 0..100 {
        let r = p
            .get(&format!("/api/v1/namespaces/_/activations/{id}/result"))
            .await;
        if r.status == StatusCode::OK {
            done = Some(r.body);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        done.expect("finished later")["result"],
        json!({"slept": 1500})
    );
}

#[tokio::test]
async fn bad_invoke_requests() {
    let p = Platform::start().await;
    p.action("echo", "nodejs:20", ECHO, json!({"annotations": [{"key": "final", "value": true}], "parameters": [{"key": "fixed", "value": "x"}]})).await;
    let r = p.invoke("missing", json!({}), "").await;
    assert_error(
        &r,
        StatusCode::NOT_FOUND,
        "The requested resource does not exist.",
    );
    let r = p.invoke("echo", json!({}), "&timeout=0").await;
    assert_error(&r, StatusCode::BAD_REQUEST, "The query parameter 'timeout' was malformed:\nTimeout must be number of milliseconds up to 60000.");
    let r = p.invoke("echo", json!({}), "&timeout=60001").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = p
        .call(
            Method::POST,
            "/api/v1/namespaces/_/actions/echo?blocking=perhaps",
            None,
        )
        .await;
    assert_error(
        &r,
        StatusCode::BAD_REQUEST,
        "The query parameter 'blocking' was malformed:\n'perhaps' is not a valid Boolean value",
    );
    let r = p.invoke("echo", json!(5), "").await;
    assert_error_prefix(
        &r,
        StatusCode::BAD_REQUEST,
        "The request content was malformed:\n",
    );
    let r = p
        .raw(
            Method::POST,
            "/api/v1/namespaces/_/actions/echo?blocking=true",
            "{oops",
        )
        .await;
    assert_error_prefix(
        &r,
        StatusCode::BAD_REQUEST,
        "The request content was malformed:\n",
    );
    let big = json!({"x": "y".repeat(1024 * 1024)});
    let r = p.invoke("echo", big, "").await;
    assert_error(
        &r,
        StatusCode::PAYLOAD_TOO_LARGE,
        "Request larger than allowed: 1048584 > 1048576 bytes.",
    );
    let r = p.invoke("echo", json!({"fixed": "override"}), "").await;
    assert_error(
        &r,
        StatusCode::BAD_REQUEST,
        "Request defines parameters that are not allowed (e.g., reserved properties).",
    );
    assert_eq!(
        p.invoke("echo", json!({"other": 1}), "&result=true")
            .await
            .body,
        json!({"fixed": "x", "other": 1})
    );
}

#[tokio::test]
async fn runtime_values_zip_code_and_python() {
    let p = Platform::start().await;
    let env = "function main() { return {id: process.env.__OW_ACTIVATION_ID, name: process.env.__OW_ACTION_NAME, ns: process.env.__OW_NAMESPACE, key: process.env.__OW_API_KEY || null, deadline: Number(process.env.__OW_DEADLINE), version: process.env.__OW_ACTION_VERSION}; }";
    p.action("env", "nodejs:20", env, json!({})).await;
    let r = p.invoke("env", json!({}), "").await;
    let res = &r.body["response"]["result"];
    assert_eq!(res["id"], r.body["activationId"]);
    assert_eq!(res["name"], "/guest/env");
    assert_eq!(res["ns"], "guest");
    assert_eq!(res["version"], "0.0.1");
    assert_eq!(
        res["key"],
        json!(null),
        "provide-api-key is false for new actions"
    );
    assert!(res["deadline"].as_u64().unwrap() > r.body["start"].as_u64().unwrap());
    p.action(
        "envkey",
        "nodejs:20",
        env,
        json!({"annotations": [{"key": "provide-api-key", "value": true}]}),
    )
    .await;
    let r = p.invoke("envkey", json!({}), "&result=true").await;
    assert_eq!(r.body["key"], whisk_core::entity::identity::GUEST_KEY);

    // Zip archives, built with Python's zipfile, for both runtimes; and a custom entry point.
    let zip = |files: &[(&str, &str)]| -> String {
        let script = "import sys, zipfile, io, base64, json\nbuf = io.BytesIO()\nwith zipfile.ZipFile(buf, 'w') as z:\n    for n, t in json.loads(sys.argv[1]):\n        z.writestr(n, t)\nprint(base64.b64encode(buf.getvalue()).decode())";
        let arg = serde_json::to_string(files).unwrap();
        let out = std::process::Command::new("python3")
            .args(["-c", script, &arg])
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    let nodezip = zip(&[
        ("package.json", "{\"main\": \"lib/entry.js\"}"),
        (
            "lib/entry.js",
            "const h = require('./helper'); exports.handler = p => ({zipped: h(p.n)});",
        ),
        ("lib/helper.js", "module.exports = n => n * 2;"),
    ]);
    let r = p
        .call(
            Method::PUT,
            "/api/v1/namespaces/_/actions/nodezip",
            Some(json!({"exec": {"kind": "nodejs:20", "code": nodezip, "main": "handler"}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["exec"]["binary"], true);
    assert_eq!(r.body["exec"]["main"], "handler");
    assert_eq!(
        p.invoke("nodezip", json!({"n": 21}), "&result=true")
            .await
            .body,
        json!({"zipped": 42})
    );
    let pyzip = zip(&[("__main__.py", "from helper import triple\ndef main(a):\n    print('py log')\n    return {'tripled': triple(a['n'])}\n"), ("helper.py", "def triple(n):\n    return 3 * n\n")]);
    let r = p
        .call(
            Method::PUT,
            "/api/v1/namespaces/_/actions/pyzip",
            Some(json!({"exec": {"kind": "python:default", "code": pyzip}})),
        )
        .await;
    assert_eq!(r.body["exec"]["kind"], "python:3.11");
    let r = p.invoke("pyzip", json!({"n": 5}), "").await;
    assert_eq!(r.body["response"]["result"], json!({"tripled": 15}));
    assert!(p.record(&r.body).await["logs"][0]
        .as_str()
        .unwrap()
        .ends_with("stdout: py log"));
    // A zip whose entry is missing is a developer error at init.
    let broken = zip(&[("other.py", "x = 1\n")]);
    p.call(
        Method::PUT,
        "/api/v1/namespaces/_/actions/broken",
        Some(json!({"exec": {"kind": "python:3.11", "code": broken}})),
    )
    .await;
    let r = p.invoke("broken", json!({}), "").await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);
    assert_eq!(r.body["response"]["status"], "action developer error");
}

#[tokio::test]
async fn init_parameters_are_environment_not_arguments() {
    let p = Platform::start().await;
    let code = "function main(p) { return {env: process.env.SECRET, arg: p.SECRET === undefined ? null : p.SECRET, other: p.other}; }";
    p.action(
        "initparams",
        "nodejs:20",
        code,
        json!({"parameters": [{"key": "SECRET", "value": "s3", "init": true}, {"key": "other", "value": 1}]}),
    )
    .await;
    let r = p.invoke("initparams", json!({}), "&result=true").await;
    assert_eq!(r.body, json!({"env": "s3", "arg": null, "other": 1}));
}

/// The controller keeps parsed actions by revision: an update is what the next invoke runs,
/// parameters included, and a deleted action is gone at once.
#[tokio::test]
async fn an_updated_action_runs_its_new_code_at_once() {
    let p = Platform::start().await;
    for (version, code) in [(1, "return {v: 1, p: p.x};"), (2, "return {v: 2, p: p.x};")] {
        p.action(
            "changing",
            "nodejs:20",
            &format!("function main(p) {{ {code} }}"),
            json!({"parameters": [{"key": "x", "value": version * 10}]}),
        )
        .await;
        for _ in 0..2 {
            let r = p.invoke("changing", json!({}), "&result=true").await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.text);
            assert_eq!(r.body, json!({"v": version, "p": version * 10}));
        }
    }
    let r = p
        .call(
            Method::DELETE,
            "/api/v1/namespaces/_/actions/changing",
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = p.invoke("changing", json!({}), "&result=true").await;
    assert_error(
        &r,
        StatusCode::NOT_FOUND,
        "The requested resource does not exist.",
    );
}
