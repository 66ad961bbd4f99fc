//! Java actions end to end: a jar built at test time with `javac` and `jar`, created through
//! the REST API and invoked on the process executor's `java:17` runtime.

mod common;

use base64::Engine;
use common::{assert_error, Platform};
use reqwest::{Method, StatusCode};
use serde_json::json;
use std::process::Command;

const GSON: &str = "/usr/share/java/gson.jar";

const HELLO: &str = r#"
import com.google.gson.JsonObject;

public class Hello {
    public static JsonObject main(JsonObject args) {
        String name = args.has("name") ? args.get("name").getAsString() : "stranger";
        System.out.println("greeting " + name);
        JsonObject response = new JsonObject();
        response.addProperty("greeting", "Hello, " + name + "!");
        return response;
    }

    public static JsonObject fail(JsonObject args) {
        throw new IllegalArgumentException("no thanks");
    }
}
"#;

fn run_tool(cmd: &mut Command) {
    let out = cmd.output().expect("JDK tool runs (javac, jar)");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `Hello.java` compiled and packed into a jar, base64-encoded.
fn hello_jar() -> String {
    let dir = std::env::temp_dir().join(format!("whisk-java-e2e-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("classes")).unwrap();
    std::fs::write(dir.join("Hello.java"), HELLO).unwrap();
    run_tool(
        Command::new("javac")
            .args(["-cp", GSON, "-d"])
            .arg(dir.join("classes"))
            .arg(dir.join("Hello.java")),
    );
    run_tool(
        Command::new("jar")
            .arg("cf")
            .arg(dir.join("hello.jar"))
            .arg("-C")
            .arg(dir.join("classes"))
            .arg("."),
    );
    let bytes = std::fs::read(dir.join("hello.jar")).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[tokio::test]
async fn java_action_is_created_and_invoked() {
    let p = Platform::start().await;
    let jar = hello_jar();
    let put =
        |main: &str| Some(json!({"exec": {"kind": "java:default", "code": jar, "main": main}}));
    let r = p
        .call(
            Method::PUT,
            "/api/v1/namespaces/_/actions/hello",
            put("Hello"),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["exec"]["kind"], "java:17");
    assert_eq!(r.body["exec"]["main"], "Hello");
    assert_eq!(r.body["exec"]["binary"], true);

    let r = p.invoke("hello", json!({"name": "Duke"}), "").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        r.body["response"]["result"],
        json!({"greeting": "Hello, Duke!"})
    );
    assert_eq!(r.body["response"]["status"], "success");
    let record = p.record(&r.body).await;
    let logs = record["logs"].as_array().unwrap();
    assert_eq!(logs.len(), 1, "{logs:?}");
    assert!(logs[0]
        .as_str()
        .unwrap()
        .ends_with(" stdout: greeting Duke"));
    let ann = r.body["annotations"].as_array().unwrap();
    assert!(ann
        .iter()
        .any(|a| a["key"] == "kind" && a["value"] == "java:17"));

    // Warm: the same container answers again.
    let r = p.invoke("hello", json!({}), "&result=true").await;
    assert_eq!(r.body, json!({"greeting": "Hello, stranger!"}));

    // An exception is the developer's error (502), with the stack trace in the logs.
    let r = p
        .call(
            Method::PUT,
            "/api/v1/namespaces/_/actions/failing",
            put("Hello#fail"),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = p.invoke("failing", json!({}), "").await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", r.text);
    assert_eq!(r.body["response"]["status"], "action developer error");
    assert_eq!(
        r.body["response"]["result"]["error"],
        "An error has occurred (see logs for details): java.lang.IllegalArgumentException: no thanks"
    );
    let logs = p.record(&r.body).await["logs"].to_string();
    assert!(logs.contains("at Hello.fail(Hello.java"), "{logs}");
}

#[tokio::test]
async fn java_action_needs_main() {
    let p = Platform::start().await;
    let r = p
        .call(
            Method::PUT,
            "/api/v1/namespaces/_/actions/nomain",
            Some(json!({"exec": {"kind": "java:default", "code": "UEsDBA=="}})),
        )
        .await;
    assert_error(
        &r,
        StatusCode::BAD_REQUEST,
        "'main' must be a string defined in 'exec' for 'java:17' actions",
    );
}
