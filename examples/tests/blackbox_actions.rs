//! `blackbox` actions end to end: native executables (scripts, zips with `exec`) created
//! through the REST API and run by the standalone platform's actionloop proxy.

mod common;

use common::Platform;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// An actionloop child: logs on both streams, answers with its arguments, the activation id
/// from the JSON line and how many activations this process has served; `exit` ends it.
const CHILD: &str = r#"#!/usr/bin/env python3
import json, os, sys
results = os.fdopen(3, "w")
count = 0
for line in sys.stdin:
    msg = json.loads(line)
    count += 1
    args = msg["value"]
    print("child out:", args.get("msg"), flush=True)
    print("child err:", args.get("msg"), file=sys.stderr, flush=True)
    if "exit" in args:
        sys.exit(args["exit"])
    results.write(json.dumps({"args": args, "activation": msg["activation_id"],
                              "count": count, "greeting": os.environ.get("GREETING")}) + "\n")
    results.flush()
"#;

/// Creates blackbox action `name` with `code` (text or base64) and extra fields.
async fn blackbox(p: &Platform, name: &str, code: &str, extra: Value) -> Value {
    let mut body =
        json!({"exec": {"kind": "blackbox", "image": "openwhisk/dockerskeleton", "code": code}});
    if let Value::Object(m) = extra {
        body.as_object_mut().unwrap().extend(m);
    }
    let r = p
        .call(
            Method::PUT,
            &format!("/api/v1/namespaces/_/actions/{name}?overwrite=true"),
            Some(body),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "creating {name}: {}", r.text);
    r.body
}

/// Base64 of a zip of `(name, text, unix mode)` entries, built with Python's zipfile.
fn zip(entries: &[(&str, &str, u32)]) -> String {
    let script = "import sys, zipfile, io, base64, json\nbuf = io.BytesIO()\nwith zipfile.ZipFile(buf, 'w') as z:\n    for n, t, m in json.loads(sys.argv[1]):\n        i = zipfile.ZipInfo(n)\n        i.external_attr = m << 16\n        z.writestr(i, t)\nprint(base64.b64encode(buf.getvalue()).decode())";
    let arg = serde_json::to_string(entries).unwrap();
    let out = std::process::Command::new("python3")
        .args(["-c", script, &arg])
        .output()
        .expect("python3 runs");
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn annotation(r: &Value, key: &str) -> Option<Value> {
    r["annotations"]
        .as_array()?
        .iter()
        .find(|a| a["key"] == key)
        .map(|a| a["value"].clone())
}

#[tokio::test]
async fn a_native_script_runs_warm_with_its_logs() {
    let p = Platform::start().await;
    let created = blackbox(
        &p,
        "native",
        CHILD,
        json!({"parameters": [{"key": "GREETING", "value": "hi", "init": true}]}),
    )
    .await;
    assert_eq!(created["exec"]["kind"], "blackbox");
    assert_eq!(created["exec"]["image"], "openwhisk/dockerskeleton");

    let r = p.invoke("native", json!({"msg": "hello"}), "").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let res = &r.body["response"]["result"];
    assert_eq!(res["args"]["msg"], "hello");
    assert_eq!(
        res["activation"], r.body["activationId"],
        "the JSON line carries the activation id"
    );
    assert_eq!(res["count"], 1);
    assert_eq!(
        res["greeting"], "hi",
        "init parameters are in the environment"
    );
    assert_eq!(annotation(&r.body, "kind"), Some(json!("blackbox")));
    assert!(annotation(&r.body, "initTime").is_some(), "a cold start");
    let lines = p.record_logs(&r.body).await;
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines
        .iter()
        .any(|l| l.ends_with(" stdout: child out: hello")));
    assert!(lines
        .iter()
        .any(|l| l.ends_with(" stderr: child err: hello")));

    // Warm: the same process serves the next activation, with only its own logs.
    let r = p.invoke("native", json!({"msg": "again"}), "").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["response"]["result"]["count"], 2);
    assert_eq!(
        r.body["response"]["result"]["activation"],
        r.body["activationId"]
    );
    assert!(annotation(&r.body, "initTime").is_none(), "a warm start");
    assert_eq!(p.record_logs(&r.body).await.len(), 2);

    let r = p
        .invoke("native", json!({"msg": "x"}), "&result=true")
        .await;
    assert_eq!(r.body["args"]["msg"], "x");
}

#[tokio::test]
async fn a_zip_with_exec_runs_and_one_without_fails_at_init() {
    let p = Platform::start().await;
    let exec = "#!/bin/sh\nanswer=$(cat data/answer)\nwhile read line; do\n  echo \"zip child got a line\"\n  echo \"{\\\"answer\\\":$answer}\" >&3\ndone\n";
    let code = zip(&[("exec", exec, 0o100755), ("data/answer", "42", 0o100644)]);
    let created = blackbox(&p, "zipped", &code, json!({})).await;
    assert_eq!(created["exec"]["binary"], true);
    for _ in 0..2 {
        let r = p.invoke("zipped", json!({}), "").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.body["response"]["result"], json!({"answer": 42}));
        let lines = p.record_logs(&r.body).await;
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(lines[0].ends_with(" stdout: zip child got a line"));
    }

    let code = zip(&[("run.sh", exec, 0o100755)]);
    blackbox(&p, "noexec", &code, json!({})).await;
    let r = p.invoke("noexec", json!({}), "").await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", r.text);
    assert_eq!(r.body["response"]["status"], "action developer error");
    let err = r.body["response"]["result"]["error"].as_str().unwrap();
    assert!(err.starts_with("Missing exec"), "{err}");

    let code = zip(&[("exec", exec, 0o100755), ("../../evil", "x", 0o100644)]);
    blackbox(&p, "escape", &code, json!({})).await;
    let r = p.invoke("escape", json!({}), "").await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", r.text);
    let err = r.body["response"]["result"]["error"].as_str().unwrap();
    assert!(err.contains("outside the action directory"), "{err}");
}

#[tokio::test]
async fn a_failing_child_is_a_developer_error_and_the_platform_keeps_serving() {
    let p = Platform::start().await;
    blackbox(&p, "fragile", CHILD, json!({})).await;
    let r = p.invoke("fragile", json!({"msg": "ok"}), "").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);

    let r = p
        .invoke("fragile", json!({"msg": "dying", "exit": 3}), "")
        .await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", r.text);
    assert_eq!(r.body["response"]["status"], "action developer error");
    assert_eq!(r.body["response"]["success"], false);
    assert_eq!(
        r.body["response"]["result"],
        json!({"error": "command exited"})
    );
    let lines = p.record_logs(&r.body).await;
    assert!(
        lines
            .iter()
            .any(|l| l.ends_with(" stdout: child out: dying")),
        "{lines:?}"
    );
    let id = r.body["activationId"].as_str().unwrap();
    let stored = p
        .get(&format!("/api/v1/namespaces/_/activations/{id}"))
        .await;
    assert_eq!(
        stored.body["response"]["status"], "action developer error",
        "{}",
        stored.text
    );

    // The broken container is gone: the next call starts a fresh process.
    let r = p.invoke("fragile", json!({"msg": "back"}), "").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["response"]["result"]["count"], 1);
    assert!(annotation(&r.body, "initTime").is_some());

    // A result that is not an object: a developer error too.
    blackbox(
        &p,
        "scalar",
        "#!/bin/sh\nwhile read line; do echo 42 >&3; done\n",
        json!({}),
    )
    .await;
    let r = p.invoke("scalar", json!({}), "").await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", r.text);
    assert_eq!(
        r.body["response"]["result"],
        json!({"error": "The action did not return a dictionary or array."})
    );

    // A script that cannot start fails its init; other actions are unaffected.
    blackbox(&p, "nostart", "#!/bin/sh\nexit 9\n", json!({})).await;
    let r = p.invoke("nostart", json!({}), "").await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", r.text);
    assert_eq!(
        r.body["response"]["result"]["error"],
        "The action exited with status 9 during initialization."
    );
    let r = p.invoke("fragile", json!({"msg": "still"}), "").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["response"]["result"]["count"], 2);
}
