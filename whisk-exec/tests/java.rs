//! The `java:17` kind of the process executor: jar actions built at test time with `javac` and
//! `jar`, driven through the shared runtime client (as the invoker does).

use base64::Engine;
use serde_json::{json, Map, Value};
use std::process::Command;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use whisk_core::entity::StatusCode;
use whisk_core::executor::{Container, ContainerExecutor, ContainerSpec};
use whisk_core::logs::Stream;
use whisk_core::runtime::{init_body, ActivationContext, CallOutcome, RuntimeClient};
use whisk_exec::ProcessExecutor;

const TIMEOUT: Duration = Duration::from_secs(30);
const GSON: &str = "/usr/share/java/gson.jar";

/// The test actions, compiled into one jar.
const SOURCES: &[(&str, &str)] = &[
    (
        "Echo.java",
        r#"
import com.google.gson.JsonObject;

public class Echo {
    public static JsonObject main(JsonObject args) {
        System.out.println("log: " + (args.has("msg") ? args.get("msg").getAsString() : "none"));
        return args;
    }

    public static JsonObject boom(JsonObject args) {
        System.err.println("about to fail");
        throw new IllegalStateException("boom");
    }

    public static JsonObject nothing(JsonObject args) {
        return null;
    }

    public JsonObject notStatic(JsonObject args) {
        return args;
    }

    public static JsonObject context(JsonObject args) {
        JsonObject o = new JsonObject();
        o.addProperty("activation", System.getProperty("__OW_ACTIVATION_ID"));
        o.addProperty("action", System.getProperty("__OW_ACTION_NAME"));
        o.addProperty("env", System.getProperty("GREETING"));
        return o;
    }
}
"#,
    ),
    (
        "demo/Greeter.java",
        r#"
package demo;

import com.google.gson.JsonObject;

public class Greeter {
    public static JsonObject greet(JsonObject args) {
        JsonObject o = new JsonObject();
        o.addProperty("greeting", "Hello, " + args.get("name").getAsString() + "!");
        return o;
    }
}
"#,
    ),
];

fn run_tool(cmd: &mut Command) {
    let out = cmd.output().expect("JDK tool runs (javac, jar)");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The base64 jar of [`SOURCES`], built once per test binary.
fn jar() -> &'static str {
    static JAR: OnceLock<String> = OnceLock::new();
    JAR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("whisk-java-test-{}", std::process::id()));
        let (src, classes) = (dir.join("src"), dir.join("classes"));
        for (name, text) in SOURCES {
            let path = src.join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        std::fs::create_dir_all(&classes).unwrap();
        let files: Vec<_> = SOURCES.iter().map(|(n, _)| src.join(n)).collect();
        run_tool(
            Command::new("javac")
                .args(["-cp", GSON, "-d"])
                .arg(&classes)
                .args(&files),
        );
        let jar = dir.join("actions.jar");
        run_tool(
            Command::new("jar")
                .arg("cf")
                .arg(&jar)
                .arg("-C")
                .arg(&classes)
                .arg("."),
        );
        let bytes = std::fs::read(&jar).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        base64::engine::general_purpose::STANDARD.encode(bytes)
    })
}

fn spec() -> ContainerSpec {
    ContainerSpec {
        name: format!("java_{}", std::process::id()),
        kind: "java:17".into(),
        image: None,
        memory_mb: 256,
        env: vec![],
        host_network: false,
    }
}

fn context(id: &str) -> ActivationContext {
    ActivationContext {
        api_key: None,
        namespace: "guest".into(),
        action_name: "/guest/java".into(),
        action_version: "0.0.1".into(),
        activation_id: id.into(),
        transaction_id: "java-test".into(),
        deadline_ms: whisk_core::message::now_ms() + TIMEOUT.as_millis() as u64,
    }
}

async fn start(exec: &ProcessExecutor) -> Arc<dyn Container> {
    exec.create(&spec()).await.expect("java container starts")
}

async fn init(
    c: &Arc<dyn Container>,
    main: &str,
    code: &str,
    env: Map<String, Value>,
) -> CallOutcome {
    let body = init_body("java", Some(main), Some(code), true, env);
    RuntimeClient::default()
        .init(c.endpoint(), &body, TIMEOUT)
        .await
}

async fn run(c: &Arc<dyn Container>, args: Value) -> CallOutcome {
    RuntimeClient::default()
        .run(c.endpoint(), &context("a1").run_body(args), TIMEOUT)
        .await
}

/// The `error` text of a failed call.
fn error(out: &CallOutcome) -> String {
    let e = &out.response.result.as_ref().expect("error result")["error"];
    e.as_str().expect("error is a string").to_string()
}

#[tokio::test]
async fn echo_logs_reinit_and_destroy() {
    let exec = ProcessExecutor::new().unwrap();
    assert!(exec.supports("java:17"));
    let code = jar();
    // The first container of a process also compiles the launcher (javac).
    for which in ["first (javac)", "second"] {
        let started = Instant::now();
        let c = start(&exec).await;
        let out = init(&c, "Echo", code, Map::new()).await;
        assert!(out.response.is_success(), "init: {:?}", out.response);
        eprintln!("java:17 cold start, {which}: {:?}", started.elapsed());
        c.destroy().await.unwrap();
    }
    let c = start(&exec).await;
    assert!(init(&c, "Echo", jar(), Map::new())
        .await
        .response
        .is_success());
    let _ = c.logs(true, Duration::from_millis(200)).await;
    for word in ["alpha", "beta"] {
        let out = run(
            &c,
            json!({"msg": word, "n": 1.5, "nested": {"x": [1, null]}}),
        )
        .await;
        assert_eq!(
            out.response.result,
            Some(json!({"msg": word, "n": 1.5, "nested": {"x": [1, null]}}))
        );
        let lines = c.logs(true, Duration::from_secs(5)).await.unwrap();
        let msgs: Vec<&str> = lines.iter().map(|l| l.message.as_str()).collect();
        assert_eq!(msgs, [format!("log: {word}")], "exactly this run's line");
        assert_eq!(lines[0].stream, Stream::Stdout);
    }
    let again = init(&c, "Echo", jar(), Map::new()).await;
    assert_eq!(
        error(&again),
        "Cannot initialize the action more than once."
    );

    c.destroy().await.unwrap();
    c.destroy().await.unwrap();
    let out = RuntimeClient::default()
        .run(
            c.endpoint(),
            &context("gone").run_body(json!({})),
            Duration::from_secs(2),
        )
        .await;
    assert!(out.container_failed, "destroyed: {:?}", out.response);
}

#[tokio::test]
async fn class_hash_method_in_a_package() {
    let exec = ProcessExecutor::new().unwrap();
    let c = start(&exec).await;
    let out = init(&c, "demo.Greeter#greet", jar(), Map::new()).await;
    assert!(out.response.is_success(), "init: {:?}", out.response);
    let out = run(&c, json!({"name": "Duke"})).await;
    assert_eq!(
        out.response.result,
        Some(json!({"greeting": "Hello, Duke!"}))
    );
    c.destroy().await.unwrap();
}

#[tokio::test]
async fn env_and_activation_values_are_system_properties() {
    let exec = ProcessExecutor::new().unwrap();
    let c = start(&exec).await;
    let env = Map::from_iter([("GREETING".to_string(), json!("hi"))]);
    let out = init(&c, "Echo#context", jar(), env).await;
    assert!(out.response.is_success(), "init: {:?}", out.response);
    let out = run(&c, json!({})).await;
    assert_eq!(
        out.response.result,
        Some(json!({"activation": "a1", "action": "/guest/java", "env": "hi"}))
    );
    c.destroy().await.unwrap();
}

#[tokio::test]
async fn exception_and_null_result_are_developer_errors() {
    let exec = ProcessExecutor::new().unwrap();
    let c = start(&exec).await;
    assert!(init(&c, "Echo#boom", jar(), Map::new())
        .await
        .response
        .is_success());
    let _ = c.logs(true, Duration::from_millis(200)).await;
    let out = run(&c, json!({})).await;
    assert_eq!(out.response.status, StatusCode::DeveloperError);
    assert_eq!(
        error(&out),
        "An error has occurred (see logs for details): java.lang.IllegalStateException: boom"
    );
    let lines = c.logs(true, Duration::from_secs(5)).await.unwrap();
    assert!(
        lines.iter().all(|l| l.stream == Stream::Stderr),
        "{lines:?}"
    );
    assert_eq!(lines[0].message, "about to fail");
    assert_eq!(lines[1].message, "java.lang.IllegalStateException: boom");
    assert!(
        lines
            .iter()
            .any(|l| l.message.contains("at Echo.boom(Echo.java")),
        "stack trace: {lines:?}"
    );
    // The runtime itself survives an exception.
    let out = run(&c, json!({})).await;
    assert_eq!(out.response.status, StatusCode::DeveloperError);
    c.destroy().await.unwrap();

    let c = start(&exec).await;
    assert!(init(&c, "Echo#nothing", jar(), Map::new())
        .await
        .response
        .is_success());
    let out = run(&c, json!({})).await;
    assert_eq!(out.response.status, StatusCode::DeveloperError);
    assert_eq!(error(&out), "The action did not return a dictionary.");
    let out = run(&c, json!([1, 2])).await;
    assert_eq!(error(&out), "The action did not receive a dictionary.");
    c.destroy().await.unwrap();
}

#[tokio::test]
async fn init_failures_are_reported() {
    let exec = ProcessExecutor::new().unwrap();
    let bad_method =
        "Method 'Echo#notStatic' must be 'public static com.google.gson.JsonObject notStatic(com.google.gson.JsonObject)'.";
    let not_a_jar = base64::engine::general_purpose::STANDARD.encode("not a jar");
    let cases = [
        (
            "Nope",
            jar(),
            "Class 'Nope' was not found in the action jar.",
        ),
        (
            "Echo#missing",
            jar(),
            "Class 'Echo' has no public method 'missing(com.google.gson.JsonObject)'.",
        ),
        ("Echo#notStatic", jar(), bad_method),
        (
            "Echo",
            not_a_jar.as_str(),
            "The action code is not a valid jar",
        ),
    ];
    for (main, code, message) in cases {
        let c = start(&exec).await;
        let out = init(&c, main, code, Map::new()).await;
        assert_eq!(out.response.status, StatusCode::DeveloperError, "{main}");
        assert!(out.container_failed);
        let text = error(&out);
        assert!(
            text.starts_with(&format!("Initialization has failed due to: {message}")),
            "{main}: {text}"
        );
        // A failed init ends with the sentinels, so its logs can be collected.
        let started = Instant::now();
        let _ = c.logs(true, Duration::from_secs(60)).await.unwrap();
        // Ended by the sentinels, not by the (long) wait running out.
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "sentinels written"
        );
        c.destroy().await.unwrap();
    }

    let c = start(&exec).await;
    let out = run(&c, json!({})).await;
    assert_eq!(error(&out), "System not ready.");
    let body = json!({"value": {"main": "Echo", "binary": true}});
    let out = RuntimeClient::default()
        .init(c.endpoint(), &body, TIMEOUT)
        .await;
    assert_eq!(error(&out), "Missing main/no code to execute.");
    c.destroy().await.unwrap();
}
