//! A whisk cluster of separate processes: a Kafka-protocol broker and a CouchDB-API server
//! (started by `.ci/run`), one `whisk-controller` and two `whisk-invoker`s. Load runs while
//! an invoker is killed; every accepted activation must end with a record, new work goes to
//! the survivor, the killed invoker rejoins when restarted, and a restarted controller still
//! serves every stored activation.

mod common;

use common::cluster::{Api, Cluster};
use common::couchdb_url;
use reqwest::StatusCode;
use serde_json::json;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_survives_an_invoker_dying_under_load() {
    let Some(kafka) =
        whisk_core::testkit::service_from_env("WHISK_TEST_KAFKA", "Kafka-protocol broker")
    else {
        return;
    };
    let Some(couch) = couchdb_url() else { return };
    let cluster = Cluster::new(kafka, couch, "cluster");
    let (controller, url) = cluster.controller();
    let api = Api {
        http: reqwest::Client::builder().no_proxy().build().unwrap(),
        url,
    };
    let _invoker0 = cluster.invoker(0, &api.url);
    let invoker1 = cluster.invoker(1, &api.url);
    api.await_invokers(json!({"invoker0": "up", "invoker1": "up"}))
        .await;

    let sleepy =
        "function main(p) { return new Promise(r => setTimeout(() => r({n: p.n}), 1500)); }";
    let (status, body) = api
        .call(
            reqwest::Method::PUT,
            "/api/v1/namespaces/_/actions/sleepy",
            Some(
                json!({"exec": {"kind": "nodejs:20", "code": sleepy}, "limits": {"timeout": 3000}}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // Load: non-blocking invokes spread over both invokers.
    let mut accepted = Vec::new();
    for n in 0..16 {
        let (status, body) = api
            .call(
                reqwest::Method::POST,
                "/api/v1/namespaces/_/actions/sleepy",
                Some(json!({"n": n})),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        accepted.push(body["activationId"].as_str().unwrap().to_string());
    }
    // One invoker dies with work in hand.
    drop(invoker1);

    // Every accepted activation ends with a record: a result, or a whisk internal error for
    // what the dead invoker held.
    let mut forced = 0;
    for id in &accepted {
        let record = api.record(id).await;
        match record["response"]["status"].as_str() {
            Some("success") => {}
            Some("whisk internal error") => forced += 1,
            other => panic!("unexpected status {other:?}: {record}"),
        }
    }
    assert!(forced > 0, "the killed invoker held some activations");

    // New work goes to the survivor.
    api.await_invokers(json!({"invoker0": "up", "invoker1": "down"}))
        .await;
    for n in 0..3 {
        let (status, body) = api
            .call(
                reqwest::Method::POST,
                "/api/v1/namespaces/_/actions/sleepy?blocking=true&result=true",
                Some(json!({"n": n})),
            )
            .await;
        assert_eq!((status, body), (StatusCode::OK, json!({"n": n})));
    }

    // The killed invoker rejoins when restarted.
    let _invoker1 = cluster.invoker(1, &api.url);
    api.await_invokers(json!({"invoker0": "up", "invoker1": "up"}))
        .await;

    // A restarted controller serves every stored activation.
    drop(controller);
    let (_controller, url) = cluster.controller();
    let api = Api { url, ..api };
    for id in &accepted {
        api.record(id).await;
    }
}

/// The broker stops answering (frozen: a hung broker or a partition) under a running
/// controller and invoker: while it is gone invokes answer 503 and never hang; when it
/// answers again the same processes carry on: the invoker is healthy again and invokes run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_survives_the_broker_going_away() {
    let Some(tansu) =
        whisk_core::testkit::service_from_env("WHISK_TEST_TANSU", "tansu broker binary")
    else {
        return;
    };
    let Some(couch) = couchdb_url() else { return };
    let broker = whisk_core::testkit::broker::OwnBroker::start(&tansu);
    let cluster = Cluster::new(broker.address(), couch, "outage");
    let (mut controller, url) = cluster.controller();
    let api = Api {
        http: reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap(),
        url,
    };
    let mut invoker = cluster.invoker(0, &api.url);
    api.await_invokers(json!({"invoker0": "up"})).await;
    let echo =
        json!({"exec": {"kind": "nodejs:20", "code": "function main(p) { return {n: p.n}; }"}});
    let (status, body) = api
        .call(
            reqwest::Method::PUT,
            "/api/v1/namespaces/_/actions/echo",
            Some(echo),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let invoke = |n: u32| {
        api.call(
            reqwest::Method::POST,
            "/api/v1/namespaces/_/actions/echo?blocking=true&result=true",
            Some(json!({ "n": n })),
        )
    };
    assert_eq!(invoke(1).await, (StatusCode::OK, json!({"n": 1})));

    broker.pause();
    // An invoke now cannot be handed over: 503, within the publish timeout.
    let (status, body) = invoke(2).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    // Pings stop arriving: the invoker goes down and invokes are refused at once.
    api.await_invokers(json!({"invoker0": "down"})).await;
    let (status, body) = invoke(3).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"], "No invokers available", "{body}");

    broker.resume();
    api.await_invokers(json!({"invoker0": "up"})).await;
    let mut ran = None;
    for n in 4..600 {
        let (status, body) = invoke(n).await;
        if status == StatusCode::OK {
            ran = Some((n, body));
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (n, body) = ran.expect("an invoke ran after the broker came back");
    assert_eq!(body, json!({ "n": n }));
    assert!(
        controller.0.try_wait().unwrap().is_none(),
        "controller exited"
    );
    assert!(invoker.0.try_wait().unwrap().is_none(), "invoker exited");
}
