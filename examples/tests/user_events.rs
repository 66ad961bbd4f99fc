//! OpenWhisk's user events (`--user-events`): `Activation` events from the invoker (and from
//! the controller for sequences), and `Metric` events from the controller (each accepted
//! invocation's `ConcurrentInvocations`, each throttled request's limit), on topic `events`.

mod common;

use common::{Platform, StandaloneConfig};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::time::Duration;
use whisk_core::bus::{topics, Consumer};
use whisk_core::controller::NamespaceLimits;
use whisk_core::entity::identity::GUEST_KEY;
use whisk_core::message::{EventBody, EventMessage};

/// A platform with `user_events` and at most two invocations a minute per namespace.
async fn platform(user_events: bool) -> Platform {
    Platform::start_config(StandaloneConfig {
        user_memory_mb: 1024,
        prewarm: false,
        user_events,
        namespace_limits: NamespaceLimits {
            invocations_per_minute: 2,
            ..NamespaceLimits::default()
        },
        ..StandaloneConfig::default()
    })
    .await
}

/// A platform with user events, a consumer of them, and action `hello`.
async fn platform_with_hello() -> (Platform, Box<dyn Consumer>) {
    let p = platform(true).await;
    let consumer = events(&p).await;
    p.action(
        "hello",
        "nodejs:20",
        "function main() { return {greeting: 'hi'}; }",
        json!({}),
    )
    .await;
    (p, consumer)
}

/// Subscribes to the platform's `events` topic (a new group starts at the end).
async fn events(p: &Platform) -> Box<dyn Consumer> {
    let bus = p.platform.bus();
    bus.create_topic(topics::EVENTS).await.unwrap();
    bus.subscribe(topics::EVENTS, "test").await.unwrap()
}

/// The events of namespace `guest` that arrive within `wait` (the invoker health test
/// actions of `whisk.system`, if any ran, are left out).
async fn guest_events(c: &mut dyn Consumer, want: usize, wait: Duration) -> Vec<EventMessage> {
    let deadline = tokio::time::Instant::now() + wait;
    let mut got = Vec::new();
    while got.len() < want && tokio::time::Instant::now() < deadline {
        for bytes in c.poll(16, Duration::from_millis(50)).await.unwrap() {
            let e = EventMessage::parse(&bytes).expect("an EventMessage");
            if e.namespace == "guest" {
                got.push(e);
            }
        }
    }
    got
}

/// Invokes `name` until a request is refused (the minute counter may roll over once);
/// returns the answers, the refusal last.
async fn invoke_until_throttled(p: &Platform, name: &str) -> Vec<common::Resp> {
    let mut answers = Vec::new();
    for _ in 0..6 {
        let r = p.invoke(name, json!({}), "").await;
        let refused = r.status == StatusCode::TOO_MANY_REQUESTS;
        answers.push(r);
        if refused {
            return answers;
        }
    }
    panic!("no invocation of 6 was throttled");
}

fn guest_uuid() -> &'static str {
    GUEST_KEY.split_once(':').unwrap().0
}

/// Asserts that `e` is the `Activation` event of the activation record `a`.
fn assert_activation_event(e: &EventMessage, a: &Value, status_code: u8, user_code: Option<i32>) {
    assert_eq!(e.event_type, "Activation");
    assert_eq!(e.source, "invoker0");
    assert_eq!(e.subject, "guest");
    assert_eq!(e.namespace, "guest");
    assert_eq!(e.user_id, guest_uuid());
    let EventBody::Activation(b) = &e.body else {
        panic!("not an activation body: {e:?}")
    };
    let ann = |k: &str| {
        a["annotations"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["key"] == k)
            .map(|p| p["value"].clone())
    };
    assert_eq!(b.name, format!("guest/{}", a["name"].as_str().unwrap()));
    assert_eq!(b.activation_id.as_str(), a["activationId"]);
    assert_eq!(b.status_code, status_code);
    let status = ["success", "application error"][status_code as usize];
    assert_eq!(a["response"]["status"], status);
    assert_eq!(json!(b.duration), a["duration"]);
    assert_eq!(json!(b.wait_time), ann("waitTime").unwrap());
    assert_eq!(json!(b.init_time), ann("initTime").unwrap_or(json!(0)));
    assert_eq!(b.kind, "nodejs:20");
    assert!(!b.conductor);
    assert_eq!(b.memory, 256);
    assert_eq!(b.caused_by, None);
    assert_eq!(json!(b.size), a["response"]["size"]);
    assert_eq!(b.user_defined_status_code, user_code);
    // The wire form: OpenWhisk's field names, absent options left out.
    let v = serde_json::to_value(e).unwrap();
    let keys: Vec<&str> = v["body"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut expected = vec![
        "activationId",
        "conductor",
        "duration",
        "initTime",
        "kind",
        "memory",
        "name",
        "size",
        "statusCode",
        "waitTime",
    ];
    if user_code.is_some() {
        expected.push("userDefinedStatusCode");
    }
    let mut keys = keys;
    keys.sort_unstable();
    expected.sort_unstable();
    assert_eq!(keys, expected);
    assert!(e.timestamp >= a["end"].as_u64().unwrap());
}

#[tokio::test]
async fn activations_and_throttles_are_published() {
    let (p, mut consumer) = platform_with_hello().await;
    p.action(
        "fails",
        "nodejs:20",
        "function main() { return {error: {statusCode: 404, body: 'nope'}}; }",
        json!({}),
    )
    .await;

    let ok = p.invoke("hello", json!({}), "").await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);
    let failed = p.invoke("fails", json!({}), "").await;
    assert_eq!(failed.status, StatusCode::BAD_GATEWAY, "{}", failed.text);
    // Two invocations a minute: the next is refused (unless the minute just turned).
    let more = invoke_until_throttled(&p, "hello").await;
    let ran: Vec<&Value> = more[..more.len() - 1].iter().map(|r| &r.body).collect();

    // An Activation and a ConcurrentInvocations metric per accepted invocation, and the
    // refusal's metric.
    let accepted = 2 + ran.len();
    let want = 2 * accepted + 1;
    let got = guest_events(consumer.as_mut(), want, Duration::from_secs(10)).await;
    assert_eq!(got.len(), want, "events: {got:#?}");
    let by_id = |a: &Value| {
        got.iter()
            .find(|e| match &e.body {
                EventBody::Activation(b) => b.activation_id.as_str() == a["activationId"],
                _ => false,
            })
            .unwrap_or_else(|| panic!("no event of {a}"))
    };
    assert_activation_event(by_id(&ok.body), &ok.body, 0, None);
    assert_activation_event(by_id(&failed.body), &failed.body, 1, Some(404));
    for a in ran {
        assert_activation_event(by_id(a), a, 0, None);
    }

    let metric = |e: &&EventMessage| match &e.body {
        EventBody::Metric(m) => Some((m.metric_name.clone(), m.metric_value)),
        _ => None,
    };
    let concurrent: Vec<(String, i64)> = got
        .iter()
        .filter_map(|e| metric(&e))
        .filter(|(name, _)| name == "ConcurrentInvocations")
        .collect();
    // One at a time: each saw only itself in flight.
    assert_eq!(
        concurrent,
        vec![("ConcurrentInvocations".to_string(), 1); accepted]
    );
    let metrics: Vec<&EventMessage> = got
        .iter()
        .filter(|e| metric(e).is_some_and(|(name, _)| name != "ConcurrentInvocations"))
        .collect();
    assert_eq!(metrics.len(), 1, "one throttled request: {metrics:#?}");
    let m = serde_json::to_value(metrics[0]).unwrap();
    assert_eq!(
        m,
        json!({
            "source": "controller0",
            "body": {"metricName": "TimedRateLimit", "metricValue": 1},
            "subject": "guest",
            "namespace": "guest",
            "userId": guest_uuid(),
            "eventType": "Metric",
            "timestamp": metrics[0].timestamp,
        })
    );
    assert!(
        guest_events(consumer.as_mut(), 1, Duration::from_millis(300))
            .await
            .is_empty(),
        "nothing more"
    );
    p.platform.shutdown().await;
}

#[tokio::test]
async fn sequences_get_their_activation_event_from_the_controller() {
    let (p, mut consumer) = platform_with_hello().await;
    let r = p
        .call(
            reqwest::Method::PUT,
            "/api/v1/namespaces/_/actions/twice",
            Some(json!({"exec": {"kind": "sequence", "components": ["/_/hello", "/_/hello"]}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let seq = p.invoke("twice", json!({}), "").await;
    assert_eq!(seq.status, StatusCode::OK, "{}", seq.text);

    // Two components from the invoker, the sequence from the controller, and one
    // ConcurrentInvocations metric: components are not throttled, so not counted.
    let got = guest_events(consumer.as_mut(), 4, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 4, "events: {got:#?}");
    let activations: Vec<&whisk_core::message::ActivationEvent> = got
        .iter()
        .filter_map(|e| match &e.body {
            EventBody::Activation(b) => Some(b),
            _ => None,
        })
        .collect();
    let seq_event = got
        .iter()
        .find(|e| matches!(&e.body, EventBody::Activation(b) if b.activation_id.as_str() == seq.body["activationId"]))
        .expect("the sequence's event");
    assert_eq!(seq_event.source, "controller0");
    let EventBody::Activation(b) = &seq_event.body else {
        unreachable!()
    };
    assert_eq!(b.kind, "sequence");
    assert_eq!(b.name, "guest/twice");
    let components: Vec<_> = activations
        .iter()
        .filter(|b| b.caused_by.as_deref() == Some("sequence"))
        .collect();
    assert_eq!(components.len(), 2, "{activations:#?}");
    let metrics: Vec<_> = got
        .iter()
        .filter(
            |e| matches!(&e.body, EventBody::Metric(m) if m.metric_name == "ConcurrentInvocations"),
        )
        .collect();
    assert_eq!(metrics.len(), 1, "{got:#?}");
    p.platform.shutdown().await;
}

#[tokio::test]
async fn nothing_is_published_when_off() {
    let p = platform(false).await;
    let mut consumer = events(&p).await;
    p.action(
        "hello",
        "nodejs:20",
        "function main() { return {}; }",
        json!({}),
    )
    .await;
    let answers = invoke_until_throttled(&p, "hello").await;
    assert!(answers.len() >= 3);
    let mut all = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_millis(500);
    while tokio::time::Instant::now() < deadline {
        all.extend(consumer.poll(16, Duration::from_millis(50)).await.unwrap());
    }
    assert!(all.is_empty(), "published: {all:?}");
    p.platform.shutdown().await;
}
