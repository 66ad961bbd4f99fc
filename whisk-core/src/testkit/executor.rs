//! The ContainerExecutor conformance suite, driven through the shared runtime client.

use crate::executor::{ContainerExecutor, ContainerSpec};
use crate::runtime::{init_body, ActivationContext, RuntimeClient};
use serde_json::{json, Map, Value};
use std::sync::Arc;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(20);

/// A kind the executor under test runs, with an action in it that prints `log: <value of
/// "msg">` on stdout and returns its argument.
#[derive(Debug, Clone)]
pub struct Fixture {
    /// The kind.
    pub kind: String,
    /// The echo action's source.
    pub echo_code: String,
}

impl Fixture {
    /// The echo action for `nodejs:20`.
    pub fn nodejs() -> Self {
        Self {
            kind: "nodejs:20".into(),
            echo_code: "function main(args) { console.log('log: ' + args.msg); return args; }"
                .into(),
        }
    }

    /// The echo action for `python:3.11`.
    pub fn python() -> Self {
        Self {
            kind: "python:3.11".into(),
            echo_code:
                "def main(args):\n    print('log: ' + str(args.get('msg')))\n    return args\n"
                    .into(),
        }
    }
}

fn spec(kind: &str) -> ContainerSpec {
    ContainerSpec {
        name: super::unique("conformance_"),
        kind: kind.to_string(),
        image: None,
        memory_mb: 256,
        env: vec![],
        host_network: false,
    }
}

fn context() -> ActivationContext {
    ActivationContext {
        api_key: None,
        namespace: "guest".into(),
        action_name: "/guest/echo".into(),
        action_version: "0.0.1".into(),
        activation_id: crate::entity::ActivationId::generate().to_string(),
        transaction_id: "conformance".into(),
        deadline_ms: crate::message::now_ms() + TIMEOUT.as_millis() as u64,
    }
}

async fn ready(e: &impl ContainerExecutor, f: &Fixture) -> Arc<dyn crate::executor::Container> {
    let c = e.create(&spec(&f.kind)).await.expect("container starts");
    let init = RuntimeClient::default()
        .init(
            c.endpoint(),
            &init_body("echo", None, Some(&f.echo_code), false, Map::new()),
            TIMEOUT,
        )
        .await;
    assert!(
        init.response.is_success(),
        "init failed: {:?}",
        init.response
    );
    c
}

async fn run(c: &Arc<dyn crate::executor::Container>, args: Value) -> Value {
    let out = RuntimeClient::default()
        .run(c.endpoint(), &context().run_body(args), TIMEOUT)
        .await;
    assert!(out.response.is_success(), "run failed: {:?}", out.response);
    out.response.result.unwrap()
}

/// A container accepts `/init` once and answers `/run` with the action's result.
pub async fn init_then_run_returns_result(e: Arc<impl ContainerExecutor>, f: Fixture) {
    let c = ready(&*e, &f).await;
    assert_eq!(run(&c, json!({"msg": "one"})).await, json!({"msg": "one"}));
    assert_eq!(
        run(&c, json!({"msg": "two", "n": 2})).await,
        json!({"msg": "two", "n": 2})
    );
    let again = RuntimeClient::default()
        .init(
            c.endpoint(),
            &init_body("echo", None, Some(&f.echo_code), false, Map::new()),
            TIMEOUT,
        )
        .await;
    assert!(!again.response.is_success(), "a second /init is refused");
    c.destroy().await.unwrap();
}

/// Logs of each run end at the sentinels, which are not returned.
pub async fn logs_end_at_sentinels(e: Arc<impl ContainerExecutor>, f: Fixture) {
    let c = ready(&*e, &f).await;
    let _ = c.logs(true, Duration::from_millis(200)).await;
    for word in ["alpha", "beta"] {
        run(&c, json!({ "msg": word })).await;
        let lines = c.logs(true, Duration::from_secs(5)).await.unwrap();
        let msgs: Vec<&str> = lines.iter().map(|l| l.message.as_str()).collect();
        assert_eq!(msgs, [format!("log: {word}")], "exactly this run's line");
        assert_eq!(lines[0].stream, crate::logs::Stream::Stdout);
    }
    c.destroy().await.unwrap();
}

/// Two containers of the same kind run independently.
pub async fn containers_are_isolated(e: Arc<impl ContainerExecutor>, f: Fixture) {
    let a = ready(&*e, &f).await;
    let b = ready(&*e, &f).await;
    assert_ne!(a.id(), b.id());
    assert_ne!(a.endpoint(), b.endpoint());
    assert_eq!(run(&a, json!({"msg": "a"})).await, json!({"msg": "a"}));
    assert_eq!(run(&b, json!({"msg": "b"})).await, json!({"msg": "b"}));
    a.destroy().await.unwrap();
    assert_eq!(
        run(&b, json!({"msg": "still"})).await,
        json!({"msg": "still"})
    );
    b.destroy().await.unwrap();
}

/// After `destroy` the runtime no longer answers; `destroy` is idempotent.
pub async fn destroy_stops_the_container(e: Arc<impl ContainerExecutor>, f: Fixture) {
    let c = ready(&*e, &f).await;
    c.destroy().await.unwrap();
    c.destroy().await.unwrap();
    let out = RuntimeClient::default()
        .run(
            c.endpoint(),
            &context().run_body(json!({})),
            Duration::from_secs(2),
        )
        .await;
    assert!(
        out.container_failed,
        "a destroyed container must not answer: {:?}",
        out.response
    );
}

/// A paused container works again after `resume`.
pub async fn pause_and_resume_keep_it_usable(e: Arc<impl ContainerExecutor>, f: Fixture) {
    let c = ready(&*e, &f).await;
    c.pause().await.unwrap();
    c.resume().await.unwrap();
    assert_eq!(
        run(&c, json!({"msg": "back"})).await,
        json!({"msg": "back"})
    );
    c.destroy().await.unwrap();
}

/// A kind the executor does not run is refused with an error, not a panic.
pub async fn unsupported_kind_is_refused(e: Arc<impl ContainerExecutor>, _f: Fixture) {
    assert!(!e.supports("cobol:85"));
    assert!(e.create(&spec("cobol:85")).await.is_err());
}
