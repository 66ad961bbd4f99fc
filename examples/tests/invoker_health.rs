//! Invoker health end to end with the real engines over the memory bus and store and the
//! process executor: discovery by pings, test actions, Offline after silence, rejoining
//! after a restart, the admin routes, forced completions writing records, and duplicate
//! deliveries running once across invoker restarts. Intervals are shortened; no assertion
//! depends on timing (polls are bounded only by generous hang guards).

mod common;

use reqwest::StatusCode;
use serde_json::{json, Value};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use whisk_bus::MemoryBus;
use whisk_core::bus::{topics, Consumer, MessageBus};
use whisk_core::controller::ControllerConfig;
use whisk_core::entity::identity::{AuthKey, GUEST_KEY};
use whisk_core::entity::{ActivationId, Identity, WhiskAction, WhiskActionPut};
use whisk_core::invoker::Invoker;
use whisk_core::loadbalancer::health::HealthConfig;
use whisk_core::loadbalancer::{LoadBalancer, LoadBalancerConfig};
use whisk_core::message::{
    AckResponse, Acknowledgement, ActivationMessage, ControllerInstanceId, TransactionId,
};
use whisk_core::store::{Collection, Query, Store, StoreExt};
use whisk_examples::cluster::{seed_keys, ControllerProcess, InvokerProcess, InvokerSettings};
use whisk_store::MemoryStore;

/// Longest any single wait in these tests may take before it counts as a hang.
const HANG_GUARD: Duration = Duration::from_secs(60);

/// Polls `check` until it yields `Some`, failing the test after [`HANG_GUARD`].
async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + HANG_GUARD;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "gave up waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A controller (the cluster binaries' composition) over a memory bus and store.
struct Cluster {
    store: Arc<dyn Store>,
    bus: Arc<dyn MessageBus>,
    lb: Arc<LoadBalancer>,
    base: String,
    http: reqwest::Client,
    _controller: ControllerProcess,
}

impl Cluster {
    async fn start(config: LoadBalancerConfig) -> Self {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        seed_keys(store.as_ref()).await.unwrap();
        let bus: Arc<dyn MessageBus> = Arc::new(MemoryBus::new());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let controller = ControllerProcess::start(
            store.clone(),
            bus.clone(),
            0,
            ControllerConfig::default(),
            config,
            listener,
        )
        .await
        .unwrap();
        Self {
            store,
            bus,
            lb: controller.controller.load_balancer().clone(),
            base: format!("http://{}", controller.server.addr),
            http: reqwest::Client::builder().no_proxy().build().unwrap(),
            _controller: controller,
        }
    }

    /// Starts invoker `id` (its own pool), pinging every 50 ms.
    async fn invoker(&self, id: u32) -> (Arc<Invoker>, JoinHandle<()>) {
        start_invoker(&self.store, &self.bus, id).await
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn guest(&self, method: reqwest::Method, path: &str, body: Value) -> (StatusCode, Value) {
        let (u, p) = GUEST_KEY.split_once(':').unwrap();
        let r = self
            .http
            .request(method, format!("{}/api/v1/namespaces/_{path}", self.base))
            .basic_auth(u, Some(p))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn state_of(&self, invoker: &str) -> Option<String> {
        let (_, v) = self.get("/invokers").await;
        v.get(invoker).and_then(Value::as_str).map(String::from)
    }

    async fn wait_state(&self, invoker: &str, state: &str) {
        eventually(&format!("{invoker} {state}"), || async {
            (self.state_of(invoker).await.as_deref() == Some(state)).then_some(())
        })
        .await
    }

    /// Creates action `echo` with a time limit of `timeout_ms`.
    async fn echo_action(&self, timeout_ms: u64) {
        let (status, _) = self
            .guest(
                reqwest::Method::PUT,
                "/actions/echo",
                json!({
                    "exec": {"kind": "nodejs:default", "code": "function main(p) { return p; }"},
                    "limits": {"timeout": timeout_ms}
                }),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
    }
}

/// Starts invoker `id` (the cluster binaries' composition) over `store` and `bus`, pinging
/// every 50 ms.
async fn start_invoker(
    store: &Arc<dyn Store>,
    bus: &Arc<dyn MessageBus>,
    id: u32,
) -> (Arc<Invoker>, JoinHandle<()>) {
    let settings = InvokerSettings {
        id,
        user_memory_mb: 1024,
        prewarm: false,
        ping_interval: Duration::from_millis(50),
        ..InvokerSettings::default()
    };
    let p = InvokerProcess::start(store.clone(), bus.clone(), settings)
        .await
        .unwrap();
    (p.invoker, p.task)
}

fn fast_health() -> LoadBalancerConfig {
    LoadBalancerConfig {
        health: HealthConfig {
            ping_timeout: Duration::from_millis(600),
            test_action_interval: Duration::from_millis(500),
        },
        tick: Duration::from_millis(50),
        // Short forced-completion deadlines, so a misrouted activation cannot hang a test.
        min_action_timeout: Duration::ZERO,
        timeout_factor: 1,
        timeout_addon: Duration::from_secs(2),
        ..LoadBalancerConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn invokers_are_discovered_supervised_and_rejoin_after_a_restart() {
    let c = Cluster::start(fast_health()).await;
    // No invoker yet: nothing to report, not ready, invocations refused.
    assert_eq!(c.get("/invokers").await, (StatusCode::OK, json!({})));
    assert_eq!(c.get("/invokers/healthy/count").await.1, json!(0));
    assert_eq!(
        c.get("/invokers/ready").await,
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({"unhealthy": "0/0"})
        )
    );
    c.echo_action(60_000).await;
    let (status, body) = c
        .guest(
            reqwest::Method::POST,
            "/actions/echo?blocking=true",
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["error"], "No invokers available");

    // Two invokers ping, get tested and come up.
    let (inv0, _t0) = c.invoker(0).await;
    let (_inv1, t1) = c.invoker(1).await;
    c.wait_state("invoker0", "up").await;
    c.wait_state("invoker1", "up").await;
    assert_eq!(
        c.get("/invokers").await.1,
        json!({"invoker0": "up", "invoker1": "up"})
    );
    assert_eq!(c.get("/invokers/healthy/count").await.1, json!(2));
    assert_eq!(
        c.get("/invokers/ready").await,
        (StatusCode::OK, json!({"healthy": "2/2"}))
    );
    // The test actions ran from the stored health action, and were recorded under whisk.system.
    assert!(c
        .store
        .get_action("whisk.system/invokerHealthTestAction0")
        .await
        .is_ok());

    // Invoker 1 dies (its task stops: no pings, no consumption): it goes down.
    t1.abort();
    c.wait_state("invoker1", "down").await;
    assert_eq!(c.get("/invokers/healthy/count").await.1, json!(1));
    assert_eq!(
        c.get("/invokers/ready").await,
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({"unhealthy": "1/2"})
        )
    );
    // Scheduling avoids it: every blocking invocation completes (on invoker 0).
    let runs_before = starts(&inv0);
    for i in 0..4 {
        let (status, body) = c
            .guest(
                reqwest::Method::POST,
                "/actions/echo?blocking=true",
                json!({"i": i}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["response"]["result"], json!({"i": i}));
    }
    assert!(starts(&inv0) >= runs_before + 4);

    // Restarted (a new process with the same id): it pings, is tested and rejoins.
    let (inv1, _t1) = c.invoker(1).await;
    c.wait_state("invoker1", "up").await;
    assert_eq!(
        c.get("/invokers/ready").await,
        (StatusCode::OK, json!({"healthy": "2/2"}))
    );
    // A graceful shutdown disables it: down without waiting for the ping timeout.
    inv1.disable().await.unwrap();
    c.wait_state("invoker1", "down").await;
    assert_eq!(c.lb.healthy_count(), 1);
}

/// The next acknowledgement of activation `id` on `acks` (health test actions ack there too).
async fn next_ack(acks: &mut dyn Consumer, id: &ActivationId) -> Acknowledgement {
    let deadline = tokio::time::Instant::now() + HANG_GUARD;
    loop {
        let batch = acks.poll(1, Duration::from_millis(200)).await.unwrap();
        if let Some(b) = batch.first() {
            acks.commit().await.unwrap();
            let ack = Acknowledgement::parse(b).unwrap();
            if ack.activation_id() == id {
                return ack;
            }
        }
        assert!(tokio::time::Instant::now() < deadline, "no ack");
    }
}

/// Activations a pool started (cold, warm or prewarmed).
fn starts(inv: &Invoker) -> u64 {
    let m = inv.pool().metrics();
    m.cold_starts + m.warm_starts + m.prewarm_starts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unanswered_activation_is_force_completed_with_a_record() {
    let c = Cluster::start(LoadBalancerConfig {
        tick: Duration::from_millis(50),
        min_action_timeout: Duration::ZERO,
        timeout_factor: 1,
        timeout_addon: Duration::from_millis(200),
        ..LoadBalancerConfig::default()
    })
    .await;
    // An invoker registered by hand that nobody runs: nothing ever answers.
    c.lb.add_invoker(7, 1024);
    // Deadline: max(100 ms, 0) x 1 + 200 ms.
    c.echo_action(100).await;
    let (status, body) = c
        .guest(
            reqwest::Method::POST,
            "/actions/echo?blocking=true",
            json!({"a": 1}),
        )
        .await;
    // As OpenWhisk: when no result arrives, the caller gets the activation id (202).
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let id = body["activationId"].as_str().unwrap().to_string();
    assert_eq!(c.lb.in_flight(), 0, "the slot was released");
    assert_eq!(c.lb.invokers()[0].free_memory_mb, 1024);
    // The record says what happened.
    let (status, record) = c
        .guest(
            reqwest::Method::GET,
            &format!("/activations/{id}"),
            json!(null),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{record}");
    assert_eq!(record["response"]["status"], "whisk internal error");
    assert_eq!(record["response"]["success"], false);
    assert_eq!(
        record["response"]["result"],
        json!({"error": "no completion or active ack received yet"})
    );
    assert_eq!(record["name"], "echo");
    assert_eq!(record["namespace"], "guest");
    let path = record["annotations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["key"] == "path")
        .unwrap();
    assert_eq!(path["value"], "guest/echo");
    // A non-blocking one is recorded too.
    let (status, body) = c
        .guest(reqwest::Method::POST, "/actions/echo", json!({}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let id = ActivationId::parse(body["activationId"].as_str().unwrap()).unwrap();
    let store = c.store.clone();
    let a = eventually("the forced record", || {
        let store = store.clone();
        let id = id.clone();
        async move { store.get_activation("guest", &id).await.ok() }
    })
    .await;
    assert_eq!(a.response.status.message(), "whisk internal error");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_duplicate_delivery_runs_once_also_across_an_invoker_restart() {
    // No controller: the invokers' pings reach nobody, so no test action runs on their pools.
    let (store, bus, mut acks) = without_controller().await;
    let msg = stored_action_message(&store, "once", "function main(p) { return p; }", false).await;
    let bytes = serde_json::to_vec(&msg).unwrap();

    // Delivered twice to the same invoker process: run once, acknowledged once.
    let (a, task_a) = start_invoker(&store, &bus, 3).await;
    let topic = topics::invoker(3);
    bus.publish(&topic, bytes.clone().into()).await.unwrap();
    bus.publish(&topic, bytes.clone().into()).await.unwrap();
    let ack = next_ack(&mut *acks, &msg.activation_id).await;
    assert_eq!(ack.activation_id(), &msg.activation_id);
    assert_eq!(starts(&a), 1);

    // Delivered again after a restart (a new process, empty memory): not run again, but the
    // acknowledgement is repeated from the stored record.
    task_a.abort();
    let (b, _task_b) = start_invoker(&store, &bus, 3).await;
    bus.publish(&topic, bytes.clone().into()).await.unwrap();
    let ack = next_ack(&mut *acks, &msg.activation_id).await;
    assert_eq!(ack.activation_id(), &msg.activation_id);
    match ack {
        Acknowledgement::Combined {
            is_system_error, ..
        } => assert!(!is_system_error),
        other => panic!("unexpected ack {other:?}"),
    }
    assert_eq!(starts(&b), 0, "the restarted invoker did not run it");
    assert_eq!(starts(&a), 1, "nor did the first one twice");
    let records = store
        .count(&Query {
            collection: Some(Collection::Activations),
            namespace: "guest".into(),
            ..Query::default()
        })
        .await
        .unwrap();
    assert_eq!(records, 1, "a single record");
    let record = store
        .get_activation("guest", &msg.activation_id)
        .await
        .unwrap();
    assert_eq!(
        record.response.result,
        Some(json!({"x": 1})),
        "the record of the one run"
    );
}

/// A memory store and bus with no controller, and a consumer of controller 0's acks.
async fn without_controller() -> (Arc<dyn Store>, Arc<dyn MessageBus>, Box<dyn Consumer>) {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let bus: Arc<dyn MessageBus> = Arc::new(MemoryBus::new());
    bus.create_topic(&topics::completed(0)).await.unwrap();
    let acks = bus.subscribe(&topics::completed(0), "test").await.unwrap();
    (store, bus, acks)
}

/// A nodejs action `name` with `code`, stored in `store` as guest's, and a message invoking
/// it with `{"x": 1}` from controller 0.
async fn stored_action_message(
    store: &Arc<dyn Store>,
    name: &str,
    code: &str,
    blocking: bool,
) -> ActivationMessage {
    let key = AuthKey::parse(GUEST_KEY).unwrap();
    let put: WhiskActionPut =
        serde_json::from_value(json!({"exec": {"kind": "nodejs:default", "code": code}})).unwrap();
    let config = ControllerConfig::default();
    let action =
        WhiskAction::create("guest", name, put, &config.manifest, &config.limits, 0).unwrap();
    store
        .upsert(Collection::Whisks, &action.doc_id(), action.to_document())
        .await
        .unwrap();
    ActivationMessage {
        transid: TransactionId::generate(),
        action: action.fqn(),
        revision: None,
        user: Identity::new("guest", "guest", &key),
        activation_id: ActivationId::generate(),
        root_controller_index: ControllerInstanceId::new(0),
        blocking,
        content: Some(json!({"x": 1})),
        init_args: vec![],
        locked_args: json!({}),
        cause: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_blocking_result_goes_out_before_its_logs_are_collected() {
    // OpenWhisk's ContainerProxy: for a blocking activation a ResultMessage (the activation
    // without logs) as soon as the runtime answered, then the CompletionMessage after the
    // logs were collected; the stored record has the logs.
    let (store, bus, mut acks) = without_controller().await;
    let code = "function main(p) { console.log('said ' + p.x); return p; }";
    let msg = stored_action_message(&store, "talks", code, true).await;
    let (_inv, _task) = start_invoker(&store, &bus, 4).await;
    let bytes = serde_json::to_vec(&msg).unwrap();
    bus.publish(&topics::invoker(4), bytes.into())
        .await
        .unwrap();
    match next_ack(&mut *acks, &msg.activation_id).await {
        Acknowledgement::Result {
            response: AckResponse::Activation(a),
            ..
        } => {
            assert_eq!(a.response.result, Some(json!({"x": 1})));
            assert!(a.logs.is_empty(), "no logs in the result: {:?}", a.logs);
        }
        other => panic!("expected the result first, got {other:?}"),
    }
    match next_ack(&mut *acks, &msg.activation_id).await {
        Acknowledgement::Completion {
            is_system_error, ..
        } => assert!(!is_system_error),
        other => panic!("expected the completion next, got {other:?}"),
    }
    let record = store
        .get_activation("guest", &msg.activation_id)
        .await
        .unwrap();
    assert_eq!(record.logs.len(), 1, "{:?}", record.logs);
    assert!(
        record.logs[0].ends_with("stdout: said 1"),
        "{:?}",
        record.logs
    );
}

#[tokio::test]
async fn the_standalone_invoker_is_up_without_supervision() {
    let p = common::Platform::start().await;
    let r = p.send(reqwest::Method::GET, "/invokers", None, None).await;
    assert_eq!(r.body, json!({"invoker0": "up"}));
    let r = p
        .send(reqwest::Method::GET, "/invokers/healthy/count", None, None)
        .await;
    assert_eq!(r.body, json!(1));
    let r = p
        .send(reqwest::Method::GET, "/invokers/ready", None, None)
        .await;
    assert_eq!(
        (r.status, r.body),
        (StatusCode::OK, json!({"healthy": "1/1"}))
    );
    p.platform.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn malformed_and_foreign_messages_are_skipped_without_harm() {
    let cluster = Cluster::start(fast_health()).await;
    let (_invoker, task) = cluster.invoker(0).await;
    cluster.wait_state("invoker0", "up").await;
    cluster.echo_action(5000).await;
    let junk: [&[u8]; 5] = [
        b"not json",
        b"{\"foo\": 1}",
        b"[1, 2, 3]",
        &[0xff, 0xfe, 0x00, 0x01],
        b"{\"transid\": 7, \"activationId\": {}, \"action\": null}",
    ];
    for topic in [
        topics::invoker(0),
        topics::completed(0),
        topics::HEALTH.to_string(),
        topics::CACHE_INVALIDATION.to_string(),
    ] {
        for bytes in junk {
            cluster
                .bus
                .publish(&topic, bytes::Bytes::copy_from_slice(bytes))
                .await
                .unwrap();
        }
    }
    // Every consumer is still alive: invokes complete and the invoker stays up.
    for n in 0..3 {
        let (status, body) = cluster
            .guest(
                reqwest::Method::POST,
                "/actions/echo?blocking=true&result=true",
                json!({ "n": n }),
            )
            .await;
        assert_eq!((status, body), (StatusCode::OK, json!({ "n": n })));
    }
    assert_eq!(cluster.state_of("invoker0").await.as_deref(), Some("up"));
    assert!(!task.is_finished(), "the invoker's consumer survived");
    task.abort();
}
