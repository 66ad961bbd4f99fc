//! The `blackbox` kind on the process executor: native executables driven in process over
//! the actionloop protocol (one JSON line per activation on stdin, one result line on fd 3).
//! Executables are scripts and zip archives built at test time.

use serde_json::{json, Map, Value};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};
use whisk_core::entity::{ActivationId, StatusCode};
use whisk_core::executor::{Container, ContainerExecutor, ContainerSpec};
use whisk_core::logs::Stream;
use whisk_core::runtime::{init_body, ActivationContext, CallOutcome, RuntimeClient};
use whisk_exec::ProcessExecutor;

const TIMEOUT: Duration = Duration::from_secs(20);

/// A Python actionloop child: answers each JSON line with what it saw, prints a line on stdout
/// and stderr, and obeys `exit` (exit status) and `raw` (answer this text verbatim).
const PY_CHILD: &str = r#"#!/usr/bin/env python3
import json, os, sys
results = os.fdopen(3, "w")
if os.environ.get("OW_WAIT_FOR_ACK"):
    results.write('{"ok":true}\n')
    results.flush()
count = 0
for line in sys.stdin:
    msg = json.loads(line)
    count += 1
    args = msg.get("value") or {}
    print("out:", args.get("msg"), flush=True)
    print("err:", args.get("msg"), file=sys.stderr, flush=True)
    if "exit" in args:
        sys.exit(args["exit"])
    if "raw" in args:
        results.write(args["raw"] + "\n")
    else:
        env = {k: os.environ.get(k) for k in
               ["GREETING", "NUM", "__OW_ACTION_NAME", "__OW_API_HOST", "WHISK_RUNTIME_PORT"]}
        results.write(json.dumps({"args": args, "activation_id": msg.get("activation_id"),
                                  "keys": sorted(msg), "count": count, "env": env,
                                  "cwd": os.getcwd()}) + "\n")
    results.flush()
"#;

/// A shell child that answers every line with a fixed object.
const SH_CHILD: &str = "#!/bin/sh\nwhile read line; do\n  echo \"sh saw a line\"\n  echo '{\"shell\":true}' >&3\ndone\n";

fn spec(env: &[(&str, &str)]) -> ContainerSpec {
    ContainerSpec {
        name: format!("actionloop_{}", uuid_like()),
        kind: "blackbox".into(),
        image: Some("openwhisk/dockerskeleton".into()),
        memory_mb: 128,
        env: env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        host_network: false,
    }
}

fn uuid_like() -> String {
    ActivationId::generate().to_string()
}

fn context() -> ActivationContext {
    ActivationContext {
        api_key: None,
        namespace: "guest".into(),
        action_name: "/guest/native".into(),
        action_version: "0.0.1".into(),
        activation_id: ActivationId::generate().to_string(),
        transaction_id: "actionloop-test".into(),
        deadline_ms: whisk_core::message::now_ms() + TIMEOUT.as_millis() as u64,
    }
}

async fn container(exec: &ProcessExecutor, env: &[(&str, &str)]) -> Arc<dyn Container> {
    exec.create(&spec(env))
        .await
        .expect("the actionloop container is made")
}

async fn init(c: &Arc<dyn Container>, code: Option<&str>, binary: bool, env: Value) -> CallOutcome {
    let env: Map<String, Value> = env.as_object().cloned().unwrap_or_default();
    RuntimeClient::default()
        .init_container(
            c.as_ref(),
            &init_body("native", None, code, binary, env),
            TIMEOUT,
        )
        .await
}

/// A container with `code` initialised; panics when /init fails.
async fn ready(exec: &ProcessExecutor, code: &str, binary: bool) -> Arc<dyn Container> {
    let c = container(exec, &[]).await;
    let out = init(&c, Some(code), binary, json!({})).await;
    assert!(out.response.is_success(), "init failed: {:?}", out.response);
    c
}

async fn run_with(c: &Arc<dyn Container>, ctx: &ActivationContext, args: Value) -> CallOutcome {
    RuntimeClient::default()
        .run_container(c.as_ref(), &ctx.run_body(args), TIMEOUT)
        .await
}

async fn run(c: &Arc<dyn Container>, args: Value) -> CallOutcome {
    run_with(c, &context(), args).await
}

/// The successful result of a run.
async fn result(c: &Arc<dyn Container>, args: Value) -> Value {
    let out = run(c, args).await;
    assert!(out.response.is_success(), "run failed: {:?}", out.response);
    out.response.result.unwrap()
}

/// The error value of a developer error.
fn developer_error(out: &CallOutcome) -> String {
    assert_eq!(
        out.response.status,
        StatusCode::DeveloperError,
        "{:?}",
        out.response
    );
    out.response.result.as_ref().unwrap()["error"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// The base64 text of a zip archive of `entries`: `[name, text, unix mode]`. Built with
/// Python's zipfile; `corrupt` flips the bytes of the stored text `CORRUPTME`.
fn zip_b64(entries: Value, corrupt: bool) -> String {
    let script = r#"
import base64, io, json, sys, zipfile
buf = io.BytesIO()
with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
    for name, text, mode in json.loads(sys.argv[1]):
        info = zipfile.ZipInfo(name)
        info.external_attr = mode << 16
        z.writestr(info, text)
data = buf.getvalue()
if sys.argv[2] == "1":
    data = data.replace(b"CORRUPTME", b"XXXXXXXXX")
sys.stdout.write(base64.b64encode(data).decode())
"#;
    let out = Command::new("python3")
        .args([
            "-c",
            script,
            &entries.to_string(),
            if corrupt { "1" } else { "0" },
        ])
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn base64_of(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(text)
}

const FILE: u32 = 0o100644;
const EXECUTABLE: u32 = 0o100755;
const SYMLINK: u32 = 0o120777;

/// The state letter of process `pid` (`R`, `S`, `T`, `Z`, ...), if it exists.
fn state(pid: u64) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

/// Whether process `pid` is gone (or a zombie nobody reaped yet).
fn gone(pid: u64) -> bool {
    matches!(state(pid), None | Some('Z'))
}

#[tokio::test]
async fn a_script_runs_once_per_line_and_sees_the_whole_run_body() {
    let exec = ProcessExecutor::new().unwrap();
    assert!(exec.kinds().contains(&"blackbox".to_string()));
    let c = container(&exec, &[("__OW_API_HOST", "http://127.0.0.1:1")]).await;
    let ctx = context();
    let mut env = ctx.init_env();
    env.insert("GREETING".into(), json!("hi"));
    env.insert("NUM".into(), json!(5));
    let out = init(&c, Some(PY_CHILD), false, Value::Object(env)).await;
    assert!(out.response.is_success(), "{:?}", out.response);

    let first = run_with(&c, &ctx, json!({"msg": "one\ntwo"})).await;
    assert!(first.response.is_success(), "{:?}", first.response);
    let first = first.response.result.unwrap();
    assert_eq!(
        first["args"],
        json!({"msg": "one\ntwo"}),
        "newlines travel escaped"
    );
    assert_eq!(first["activation_id"], json!(ctx.activation_id));
    assert_eq!(
        first["keys"],
        json!([
            "action_name",
            "action_version",
            "activation_id",
            "deadline",
            "namespace",
            "transaction_id",
            "value"
        ])
    );
    assert_eq!(
        first["env"],
        json!({"GREETING": "hi", "NUM": "5", "__OW_ACTION_NAME": "/guest/native",
               "__OW_API_HOST": "http://127.0.0.1:1", "WHISK_RUNTIME_PORT": null})
    );
    let cwd = first["cwd"].as_str().unwrap();
    assert!(cwd.contains("/action-"), "runs in its own directory: {cwd}");

    // The same long-lived process answers the next activation, with its own id.
    let next = context();
    let second = run_with(&c, &next, json!({"msg": "again"})).await;
    let second = second.response.result.unwrap();
    assert_eq!(second["count"], json!(2));
    assert_eq!(second["activation_id"], json!(next.activation_id));

    let again = init(&c, Some(PY_CHILD), false, json!({})).await;
    assert_eq!(
        developer_error(&again),
        "Cannot initialize the action more than once."
    );
    c.destroy().await.unwrap();
}

#[tokio::test]
async fn a_shell_script_and_a_base64_executable_run() {
    let exec = ProcessExecutor::new().unwrap();
    let c = ready(&exec, SH_CHILD, false).await;
    for _ in 0..3 {
        assert_eq!(result(&c, json!({})).await, json!({"shell": true}));
    }
    c.destroy().await.unwrap();

    // binary, not a zip: the decoded bytes are the executable.
    let c = ready(&exec, &base64_of(SH_CHILD), true).await;
    assert_eq!(result(&c, json!({})).await, json!({"shell": true}));
    c.destroy().await.unwrap();
}

#[tokio::test]
async fn a_zip_runs_its_exec_in_the_extracted_directory() {
    let exec = ProcessExecutor::new().unwrap();
    let script = "#!/bin/sh\ngreeting=$(cat data/greeting.txt)\nwhile read line; do\n  echo \"{\\\"greeting\\\":\\\"$greeting\\\"}\" >&3\ndone\n";
    // `exec` is stored without any execute bit: the proxy makes it executable.
    let zip = zip_b64(
        json!([
            ["exec", script, FILE],
            ["data/", "", 0o40755],
            ["data/greeting.txt", "hello from the zip", FILE]
        ]),
        false,
    );
    let c = ready(&exec, &zip, true).await;
    assert_eq!(
        result(&c, json!({})).await,
        json!({"greeting": "hello from the zip"})
    );
    c.destroy().await.unwrap();

    // `exec` may be a link to a file inside the archive; links inside are fine.
    let zip = zip_b64(
        json!([
            ["bin/run", SH_CHILD, EXECUTABLE],
            ["exec", "bin/run", SYMLINK],
            ["lib", "bin", SYMLINK]
        ]),
        false,
    );
    let c = ready(&exec, &zip, true).await;
    assert_eq!(result(&c, json!({})).await, json!({"shell": true}));
    c.destroy().await.unwrap();
}

#[tokio::test]
async fn bad_archives_fail_the_init_without_writing_outside() {
    let exec = ProcessExecutor::new().unwrap();
    let tmp = std::env::temp_dir();

    let zip = zip_b64(json!([["main.sh", SH_CHILD, EXECUTABLE]]), false);
    let c = container(&exec, &[]).await;
    let err = developer_error(&init(&c, Some(&zip), true, json!({})).await);
    assert!(err.starts_with("Missing exec"), "{err}");

    let corrupt = base64_of("PK\u{3}\u{4}this is not really a zip archive");
    let c = container(&exec, &[]).await;
    let err = developer_error(&init(&c, Some(&corrupt), true, json!({})).await);
    assert!(err.starts_with("Invalid action archive"), "{err}");

    let bad_crc = zip_b64(
        json!([["exec", "#!/bin/sh\n# CORRUPTME\n", EXECUTABLE]]),
        true,
    );
    let c = container(&exec, &[]).await;
    let err = developer_error(&init(&c, Some(&bad_crc), true, json!({})).await);
    assert!(err.starts_with("Invalid action archive"), "{err}");

    let escapes = [
        ("../../{}", FILE, "outside the action directory"),
        ("../{}", FILE, "outside the action directory"),
        ("/tmp/{}", FILE, "outside the action directory"),
        ("data/../../../{}", FILE, "outside the action directory"),
    ];
    for (pattern, mode, expected) in escapes {
        let name = format!("whisk-escape-{}", uuid_like());
        let entry = pattern.replace("{}", &name);
        let zip = zip_b64(
            json!([["exec", SH_CHILD, EXECUTABLE], [entry, "escaped", mode]]),
            false,
        );
        let c = container(&exec, &[]).await;
        let err = developer_error(&init(&c, Some(&zip), true, json!({})).await);
        assert!(err.contains(expected), "{entry}: {err}");
        assert!(!tmp.join(&name).exists(), "{entry} was written outside");
        c.destroy().await.unwrap();
    }

    // Links leading outside, directly or through another link, are refused.
    let name = format!("whisk-escape-{}", uuid_like());
    let link_cases = [
        json!([["up", "../../..", SYMLINK]]),
        json!([["abs", "/etc", SYMLINK]]),
        json!([
            ["a/b/top", "../..", SYMLINK],
            ["out", "a/b/top/..", SYMLINK]
        ]),
        json!([["up", "../..", SYMLINK], ["up/x", "y", SYMLINK]]),
        json!([
            ["up", "../..", SYMLINK],
            [format!("up/{name}"), "escaped", FILE]
        ]),
    ];
    for case in link_cases {
        let mut entries = case.as_array().unwrap().clone();
        entries.insert(0, json!(["exec", SH_CHILD, EXECUTABLE]));
        let zip = zip_b64(Value::Array(entries), false);
        let c = container(&exec, &[]).await;
        let out = init(&c, Some(&zip), true, json!({})).await;
        let err = developer_error(&out);
        assert!(
            err.contains("outside the action directory") || err.starts_with("Cannot extract"),
            "{case}: {err}"
        );
        assert!(!tmp.join(&name).exists(), "{case} wrote outside");
        assert!(!tmp.join("x").is_symlink(), "{case} linked outside");
        c.destroy().await.unwrap();
    }
}

#[tokio::test]
async fn start_failures_are_init_errors() {
    let exec = ProcessExecutor::new().unwrap();
    let cases = [
        (
            "echo no interpreter line\n",
            "Cannot start the action executable",
        ),
        (
            "#!/nonexistent/interpreter\n",
            "Cannot start the action executable",
        ),
        (
            "#!/bin/sh\necho dying >&2\nexit 7\n",
            "The action exited with status 7 during initialization.",
        ),
    ];
    for (code, expected) in cases {
        let c = container(&exec, &[]).await;
        let out = init(&c, Some(code), false, json!({})).await;
        let err = developer_error(&out);
        assert!(err.starts_with(expected), "{code:?}: {err}");
        let logs = c.logs(true, Duration::from_secs(5)).await.unwrap();
        if code.contains("dying") {
            assert!(logs.iter().any(|l| l.message == "dying"), "{logs:?}");
        }
        c.destroy().await.unwrap();
    }

    let c = container(&exec, &[]).await;
    assert_eq!(
        developer_error(&run(&c, json!({})).await),
        "System not ready."
    );
    let out = init(&c, None, false, json!({})).await;
    assert_eq!(developer_error(&out), "Missing main/no code to execute.");
    let out = init(&c, Some(""), false, json!({})).await;
    assert_eq!(developer_error(&out), "Missing main/no code to execute.");
    c.destroy().await.unwrap();
}

#[tokio::test]
async fn results_must_be_objects_or_arrays() {
    let exec = ProcessExecutor::new().unwrap();
    let c = ready(&exec, PY_CHILD, false).await;
    for raw in ["42", "\"text\"", "not json", "", "NaN", "{\"a\": 1"] {
        let out = run(&c, json!({ "raw": raw })).await;
        assert_eq!(
            developer_error(&out),
            "The action did not return a dictionary or array.",
            "{raw:?}"
        );
    }
    assert_eq!(result(&c, json!({"raw": "[1, 2]"})).await, json!([1, 2]));
    let app = run(&c, json!({"raw": "{\"error\": \"boom\"}"})).await;
    assert_eq!(app.response.status, StatusCode::ApplicationError);
    assert_eq!(app.response.result, Some(json!({"error": "boom"})));
    // The process lived through all of it.
    assert_eq!(result(&c, json!({"msg": "still"})).await["count"], json!(9));
    c.destroy().await.unwrap();
}

#[tokio::test]
async fn a_child_that_exits_kills_the_proxy_for_good() {
    let exec = ProcessExecutor::new().unwrap();
    let c = ready(&exec, PY_CHILD, false).await;
    assert_eq!(result(&c, json!({"msg": "fine"})).await["count"], json!(1));
    let _ = c.logs(true, Duration::from_secs(5)).await;

    let out = run(&c, json!({"msg": "bye", "exit": 3})).await;
    assert_eq!(developer_error(&out), "command exited");
    let logs: Vec<String> = c
        .logs(true, Duration::from_secs(5))
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.message)
        .collect();
    assert!(logs.contains(&"out: bye".to_string()), "{logs:?}");
    assert!(
        logs.contains(&"actionloop: the action's process exited with status 3.".to_string()),
        "{logs:?}"
    );
    for _ in 0..2 {
        let out = run(&c, json!({"msg": "after"})).await;
        assert_eq!(developer_error(&out), "command exited");
    }
    c.destroy().await.unwrap();

    // Closing fd 3 while staying alive is the same: the proxy cannot get answers any more.
    let c = ready(
        &exec,
        "#!/bin/sh\nexec 3>&-\nwhile read line; do :; done\n",
        false,
    )
    .await;
    assert_eq!(developer_error(&run(&c, json!({})).await), "command exited");
    assert_eq!(developer_error(&run(&c, json!({})).await), "command exited");
    c.destroy().await.unwrap();
}

#[tokio::test]
async fn wait_for_ack_waits_for_the_acknowledgement() {
    let exec = ProcessExecutor::new().unwrap();
    let ack = json!({"OW_WAIT_FOR_ACK": "true"});
    let c = container(&exec, &[]).await;
    let out = init(&c, Some(PY_CHILD), false, ack.clone()).await;
    assert!(out.response.is_success(), "{:?}", out.response);
    let r = result(&c, json!({"msg": "acked"})).await;
    assert_eq!(
        (r["count"].clone(), r["args"].clone()),
        (json!(1), json!({"msg": "acked"})),
        "the acknowledgement is not taken for a result"
    );
    c.destroy().await.unwrap();

    let cases = [
        (
            "#!/bin/sh\nexit 4\n",
            "The action exited with status 4 before acknowledging its start.",
        ),
        (
            "#!/bin/sh\necho '{\"ok\":false}' >&3\nexec sleep 30\n",
            "The action acknowledged its start with '{\"ok\":false}', not {\"ok\":true}.",
        ),
        (
            "#!/bin/sh\nexec sleep 30\n",
            "The action did not acknowledge its start on fd 3 within 1 seconds.",
        ),
    ];
    for (code, expected) in cases {
        let c = container(&exec, &[("WHISK_ACTIONLOOP_ACK_TIMEOUT", "1")]).await;
        let out = init(&c, Some(code), false, ack.clone()).await;
        assert_eq!(developer_error(&out), expected);
        c.destroy().await.unwrap();
    }
}

#[tokio::test]
async fn logs_of_each_run_end_at_the_sentinels() {
    let exec = ProcessExecutor::new().unwrap();
    let c = ready(&exec, PY_CHILD, false).await;
    let _ = c.logs(true, Duration::from_millis(200)).await;
    for word in ["alpha", "beta", "gamma"] {
        result(&c, json!({ "msg": word })).await;
        let lines = c.logs(true, Duration::from_secs(5)).await.unwrap();
        let mut got: Vec<(Stream, String)> =
            lines.into_iter().map(|l| (l.stream, l.message)).collect();
        got.sort_by_key(|(s, _)| *s == Stream::Stderr);
        assert_eq!(
            got,
            [
                (Stream::Stdout, format!("out: {word}")),
                (Stream::Stderr, format!("err: {word}"))
            ]
        );
    }
    c.destroy().await.unwrap();
}

#[tokio::test]
async fn destroy_kills_the_child_and_what_it_started() {
    let exec = ProcessExecutor::new().unwrap();
    // Ignores the end of its stdin and leaves a background process behind.
    // It reports its own and its background process's references (see testkit::procs).
    let code = "#!/bin/sh\nsleep 300 &\nbg=$!\nns=$(readlink /proc/self/ns/pid)\nwhile read line; do echo \"{\\\"me\\\":\\\"$ns $$\\\",\\\"bg\\\":\\\"$ns $bg\\\"}\" >&3; done\nwhile :; do sleep 1; done\n";
    let c = ready(&exec, code, false).await;
    let pids = result(&c, json!({})).await;
    let host = |key: &str| {
        let reference = pids[key].as_str().unwrap();
        whisk_core::testkit::procs::host_pid(reference).expect("a running process") as u64
    };
    let (me, bg) = (host("me"), host("bg"));
    assert!(!gone(me) && !gone(bg));

    // The child is in the container's process group: pause stops it too.
    c.pause().await.unwrap();
    let started = Instant::now();
    while state(me) != Some('T') {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the paused container's child keeps running: {:?}",
            state(me)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    c.resume().await.unwrap();
    assert_eq!(result(&c, json!({})).await, pids, "usable after resume");

    c.destroy().await.unwrap();
    let started = Instant::now();
    while !(gone(me) && gone(bg)) {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "child {me} / background {bg} survived the container"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn an_action_that_logs_more_than_a_pipe_holds_is_not_stuck() {
    let exec = ProcessExecutor::new().unwrap();
    // 30,000 lines (about 330 KB, five times a pipe's buffer) before each answer.
    let code =
        "#!/bin/sh\nwhile read line; do\n  seq 1 30000\n  echo '{\"done\":true}' >&3\ndone\n";
    let c = ready(&exec, code, false).await;
    for _ in 0..2 {
        assert_eq!(result(&c, json!({})).await, json!({"done": true}));
        let lines = c.logs(true, Duration::from_secs(5)).await.unwrap();
        assert_eq!(lines.len(), 30_000);
        assert_eq!(lines.last().map(|l| l.message.as_str()), Some("30000"));
    }
    c.destroy().await.unwrap();
}
