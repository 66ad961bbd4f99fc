//! The fault-injecting wrappers (`whisk_core::faults`) around the real backends: the memory
//! store and bus, and the process executor under the container pool. With no faults they pass
//! the conformance suites; each fault does what its docs say, and is healed by switching it
//! off.

use bytes::Bytes;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use whisk_bus::MemoryBus;
use whisk_core::bus::{BusError, MessageBus};
use whisk_core::faults::{Faults, FaultyBus, FaultyExecutor, FaultyStore};
use whisk_core::store::{Collection, Store, StoreError};
use whisk_store::MemoryStore;

/// A wrapper with latency (and no other fault) passes the suites unchanged.
mod store_suite {
    use super::*;
    whisk_core::store_conformance_tests!(FaultyStore::new(
        MemoryStore::new(),
        Faults::none().latency(Duration::from_micros(200), Duration::from_micros(300))
    ));
}

mod bus_suite {
    use super::*;
    whisk_core::bus_conformance_tests!(FaultyBus::new(
        MemoryBus::new(),
        Faults::none().latency(Duration::from_micros(200), Duration::from_micros(300))
    ));
}

fn unavailable(r: Result<impl std::fmt::Debug, StoreError>) -> String {
    match r {
        Err(StoreError::Unavailable(m)) => m,
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

#[tokio::test]
async fn store_errors_fail_before_the_store_and_heal() {
    let s = FaultyStore::new(MemoryStore::new(), Faults::none().errors(1.0));
    let doc = json!({"n": 1});
    unavailable(
        s.put(Collection::Whisks, "guest/a", doc.clone(), None)
            .await,
    );
    unavailable(s.get(Collection::Whisks, "guest/a").await);
    assert!(
        matches!(
            s.inner().get(Collection::Whisks, "guest/a").await,
            Err(StoreError::NotFound)
        ),
        "a failed write never reached the store"
    );
    assert_eq!(s.handle().counts().errors, 2);

    s.handle().set_enabled(false);
    let rev = s
        .put(Collection::Whisks, "guest/a", doc.clone(), None)
        .await
        .unwrap();
    assert_eq!(s.get(Collection::Whisks, "guest/a").await.unwrap().rev, rev);
}

#[tokio::test]
async fn store_drops_apply_the_write_and_lose_its_answer() {
    let s = FaultyStore::new(MemoryStore::new(), Faults::none().drops(1.0));
    let msg = unavailable(
        s.put(Collection::Whisks, "guest/a", json!({"n": 1}), None)
            .await,
    );
    assert!(msg.contains("answer was lost"), "{msg}");
    let stored = s.inner().get(Collection::Whisks, "guest/a").await.unwrap();
    assert_eq!(stored.body["n"], 1, "the write was applied");
    unavailable(s.delete(Collection::Whisks, "guest/a", &stored.rev).await);
    assert!(matches!(
        s.inner().get(Collection::Whisks, "guest/a").await,
        Err(StoreError::NotFound)
    ));
    // A lost read is a failed read.
    unavailable(s.get(Collection::Whisks, "guest/a").await);
    assert_eq!(s.handle().counts().drops, 3);
}

#[tokio::test]
async fn store_duplicates_apply_a_write_twice_and_answer_the_first() {
    let s = FaultyStore::new(MemoryStore::new(), Faults::none().duplicates(1.0));
    let rev1 = s
        .put(Collection::Whisks, "guest/a", json!({"n": 1}), None)
        .await
        .expect("the first create answers; the repeat finds the id taken");
    let rev2 = s
        .put(Collection::Whisks, "guest/a", json!({"n": 2}), Some(&rev1))
        .await
        .expect("the first update answers; the repeat has a stale revision");
    let stored = s.inner().get(Collection::Whisks, "guest/a").await.unwrap();
    assert_eq!(
        (stored.rev.as_str(), &stored.body["n"]),
        (rev2.as_str(), &json!(2))
    );
    s.delete(Collection::Whisks, "guest/a", &rev2)
        .await
        .expect("the first delete answers; the repeat finds nothing");
    assert_eq!(s.handle().counts().duplicates, 3);
}

/// Everything `c` delivers within `wait`.
async fn drain(c: &mut Box<dyn whisk_core::bus::Consumer>, wait: Duration) -> Vec<Bytes> {
    let mut got = Vec::new();
    let end = tokio::time::Instant::now() + wait;
    while tokio::time::Instant::now() < end {
        got.extend(c.poll(100, Duration::from_millis(20)).await.unwrap());
    }
    got
}

#[tokio::test]
async fn bus_drops_acknowledge_and_lose_messages() {
    let bus = FaultyBus::new(MemoryBus::new(), Faults::none().drops(1.0));
    bus.handle().set_enabled(false);
    bus.create_topic("t").await.unwrap();
    let mut c = bus.subscribe("t", "g").await.unwrap();
    bus.handle().set_enabled(true);
    bus.publish("t", Bytes::from("lost")).await.unwrap();
    bus.handle().set_enabled(false);
    bus.publish("t", Bytes::from("kept")).await.unwrap();
    assert_eq!(drain(&mut c, Duration::from_millis(200)).await, ["kept"]);
    assert_eq!(bus.handle().counts().drops, 1);
}

#[tokio::test]
async fn bus_duplicates_deliver_twice() {
    let bus = FaultyBus::new(MemoryBus::new(), Faults::none().duplicates(1.0));
    bus.create_topic("t").await.unwrap();
    let mut c = bus.subscribe("t", "g").await.unwrap();
    bus.publish("t", Bytes::from("m")).await.unwrap();
    assert_eq!(drain(&mut c, Duration::from_millis(200)).await, ["m", "m"]);
}

#[tokio::test]
async fn bus_errors_fail_publish_and_a_failed_commit_redelivers() {
    let bus = FaultyBus::new(MemoryBus::new(), Faults::none().errors(1.0));
    assert!(matches!(
        bus.create_topic("t").await,
        Err(BusError::Unavailable(_))
    ));
    bus.handle().set_enabled(false);
    bus.create_topic("t").await.unwrap();
    let mut c = bus.subscribe("t", "g").await.unwrap();
    bus.handle().set_enabled(true);
    assert!(matches!(
        bus.publish("t", Bytes::from("never")).await,
        Err(BusError::Unavailable(_))
    ));
    bus.handle().set_enabled(false);
    bus.publish("t", Bytes::from("m")).await.unwrap();
    assert_eq!(drain(&mut c, Duration::from_millis(200)).await, ["m"]);
    bus.handle().set_enabled(true);
    assert!(matches!(c.commit().await, Err(BusError::Unavailable(_))));
    bus.handle().set_enabled(false);
    drop(c);
    let mut again = bus.subscribe("t", "g").await.unwrap();
    assert_eq!(
        drain(&mut again, Duration::from_millis(200)).await,
        ["m"],
        "the uncommitted message comes again"
    );
}

/// A pool on the process executor behind `faults`, and one nodejs no-op job.
fn pool_and_job(
    faults: Faults,
) -> (
    Arc<whisk_core::invoker::pool::ContainerPool>,
    whisk_core::faults::FaultHandle,
    whisk_core::invoker::pool::Job,
) {
    use whisk_core::controller::ControllerConfig;
    use whisk_core::entity::{WhiskAction, WhiskActionPut};
    use whisk_core::invoker::pool::{ContainerPool, Job, PoolConfig};
    use whisk_core::runtime::{ActivationContext, RuntimeClient};
    let executor = FaultyExecutor::new(whisk_exec::ProcessExecutor::new().unwrap(), faults);
    let handle = executor.handle();
    let pool = ContainerPool::new(
        Arc::new(executor),
        RuntimeClient::default(),
        PoolConfig::default(),
    );
    // The default time limit (60 s): a container that died at its start must not be waited
    // for that long (the test's guard is 30 s).
    let put: WhiskActionPut = serde_json::from_value(json!({
        "exec": {"kind": "nodejs:20", "code": "function main(p) { return {ok: true}; }"}
    }))
    .unwrap();
    let config = ControllerConfig::default();
    let action = Arc::new(
        WhiskAction::create("guest", "noop", put, &config.manifest, &config.limits, 0).unwrap(),
    );
    let job = Job {
        action,
        revision: "1".into(),
        namespace: "guest".into(),
        context: ActivationContext {
            api_key: None,
            namespace: "guest".into(),
            action_name: "/guest/noop".into(),
            action_version: "0.0.1".into(),
            activation_id: "0".repeat(32),
            transaction_id: "t".into(),
            deadline_ms: 0,
        },
        args: json!({}),
        init_env: Default::default(),
    };
    (pool, handle, job)
}

/// A failed start ends the run as a system error (nothing ran); a container that died right
/// after its start is seen gone at once, not waited for until the time limit, and the run
/// ends as OpenWhisk's abnormal initialisation. Switched off, the same pool runs the job.
#[tokio::test]
async fn executor_start_errors_and_dead_containers_end_runs_at_once() {
    use whisk_core::entity::StatusCode;
    let cases = [
        (
            Faults::none().errors(1.0),
            StatusCode::WhiskError,
            "Failed to provision resources to run the action.",
        ),
        (
            Faults::none().drops(1.0),
            StatusCode::DeveloperError,
            "The action did not initialize and exited unexpectedly.",
        ),
    ];
    for (faults, status, message) in cases {
        let (pool, handle, job) = pool_and_job(faults.clone());
        let failed = tokio::time::timeout(Duration::from_secs(30), pool.run(job.clone()))
            .await
            .expect("a run on a failing executor ends before its time limit");
        assert_eq!(failed.response.status, status, "{faults:?}: {failed:?}");
        let error = failed.response.result.as_ref().unwrap()["error"].to_string();
        assert!(error.contains(message), "{faults:?}: {error}");
        handle.set_enabled(false);
        let ok = pool.run(job).await;
        assert_eq!(ok.response.status, StatusCode::Success, "healed: {ok:?}");
        pool.shutdown().await;
    }
}
