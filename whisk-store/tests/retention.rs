//! Activation retention over a real store: age and count sweeps, per-namespace overrides,
//! and not storing successful activations.

use serde_json::json;
use std::sync::Arc;
use whisk_core::entity::{ActivationId, ActivationResponse, StatusCode, WhiskActivation};
use whisk_core::store::retention::{Retention, RetentionPolicy};
use whisk_core::store::{ActivationRecorder, Collection, Query, Store, StoreExt};
use whisk_store::MemoryStore;

const HOUR: u64 = 3_600_000;
const NOW: u64 = 100 * HOUR;

fn activation(ns: &str, start: u64, ok: bool) -> WhiskActivation {
    let response = if ok {
        ActivationResponse::success(json!({}))
    } else {
        ActivationResponse::error(StatusCode::ApplicationError, "failed")
    };
    let mut a: WhiskActivation = serde_json::from_value(json!({
        "namespace": ns, "name": "a", "subject": ns, "activationId": ActivationId::generate().to_string(),
        "start": start, "end": start + 1, "response": {"statusCode": 0, "result": {}, "success": true, "size": 2},
        "logs": [], "version": "0.0.1", "publish": false, "annotations": [],
    }))
    .unwrap();
    a.response = response;
    a
}

async fn starts(store: &MemoryStore, ns: &str) -> Vec<u64> {
    let q = Query {
        collection: Some(Collection::Activations),
        namespace: ns.into(),
        ..Default::default()
    };
    let docs = store.query(&q).await.unwrap();
    docs.iter().map(|d| d["start"].as_u64().unwrap()).collect()
}

#[tokio::test]
async fn sweeps_delete_by_age_and_count_with_namespace_overrides() {
    let store = MemoryStore::new();
    for h in 0..5 {
        for ns in ["aged", "counted", "kept"] {
            store
                .put_activation(&activation(ns, NOW - h * HOUR - 1, true))
                .await
                .unwrap();
        }
    }
    let retention = Retention {
        default: "max-age=150m".parse().unwrap(),
        namespaces: [
            ("counted".to_string(), "max-count=2".parse().unwrap()),
            ("kept".to_string(), RetentionPolicy::default()),
        ]
        .into(),
    };
    let deleted = retention.sweep(&store, NOW).await.unwrap();
    assert_eq!(deleted, 2 + 3);
    assert_eq!(
        starts(&store, "aged").await,
        [NOW - 1, NOW - HOUR - 1, NOW - 2 * HOUR - 1]
    );
    assert_eq!(starts(&store, "counted").await, [NOW - 1, NOW - HOUR - 1]);
    assert_eq!(starts(&store, "kept").await.len(), 5);
    assert_eq!(
        retention.sweep(&store, NOW).await.unwrap(),
        0,
        "nothing left to do"
    );
}

#[tokio::test]
async fn successful_activations_are_not_stored_when_the_policy_says_so() {
    let store = Arc::new(MemoryStore::new());
    let retention = Retention {
        default: "successful=false".parse().unwrap(),
        namespaces: [("all".to_string(), RetentionPolicy::default())].into(),
    };
    let recorder = ActivationRecorder::new(store.clone(), Arc::new(retention));
    let (ok, failed, other) = (
        activation("ns", 1, true),
        activation("ns", 2, false),
        activation("all", 3, true),
    );
    for a in [&ok, &failed, &other] {
        recorder.record(a).await;
    }
    assert!(
        store.get_activation("ns", &ok.activation_id).await.is_err(),
        "success dropped"
    );
    assert!(
        store
            .get_activation("ns", &failed.activation_id)
            .await
            .is_ok(),
        "failure kept"
    );
    assert!(
        store
            .get_activation("all", &other.activation_id)
            .await
            .is_ok(),
        "override keeps all"
    );
}
