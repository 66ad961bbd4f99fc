//! The caching decorator over a real store: conformance, hits, invalidation on write, and
//! invalidation between two controllers through the bus.

use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use whisk_bus::MemoryBus;
use whisk_core::bus::{topics, MessageBus};
use whisk_core::entity::identity::{AuthKey, SubjectDoc};
use whisk_core::store::{CacheConfig, CachingStore, Collection, Store, StoreExt};
use whisk_store::MemoryStore;

whisk_core::store_conformance_tests!(CachingStore::new(
    MemoryStore::new(),
    CacheConfig::default()
));

const ID: &str = "guest/cached";

#[tokio::test]
async fn entity_reads_are_served_from_the_cache_until_written_through_it() {
    let cache = CachingStore::new(Arc::new(MemoryStore::new()), CacheConfig::default());
    let r1 = cache
        .put(Collection::Whisks, ID, json!({"v": 1}), None)
        .await
        .unwrap();
    assert_eq!(
        cache.get(Collection::Whisks, ID).await.unwrap().body["v"],
        1
    );
    // A write that bypasses the cache is not seen: the read above was cached.
    let r2 = cache
        .inner()
        .put(Collection::Whisks, ID, json!({"v": 2}), Some(&r1))
        .await
        .unwrap();
    assert_eq!(
        cache.get(Collection::Whisks, ID).await.unwrap().body["v"],
        1
    );
    // A write through the cache invalidates it.
    cache
        .put(Collection::Whisks, ID, json!({"v": 3}), Some(&r2))
        .await
        .unwrap();
    let doc = cache.get(Collection::Whisks, ID).await.unwrap();
    assert_eq!(doc.body["v"], 3);
    cache
        .delete(Collection::Whisks, ID, &doc.rev)
        .await
        .unwrap();
    assert!(
        cache.get(Collection::Whisks, ID).await.is_err(),
        "deleted entity gone"
    );
}

#[tokio::test]
async fn identity_changes_through_the_cache_revoke_old_keys() {
    let cache = CachingStore::new(MemoryStore::new(), CacheConfig::default());
    let old = AuthKey::generate();
    cache
        .put_subject(&SubjectDoc::single("someone", &old))
        .await
        .unwrap();
    assert!(cache.identity(&old.uuid, &old.key).await.unwrap().is_some());
    assert!(cache.namespace_identity("someone").await.unwrap().is_some());
    let bystander = AuthKey::generate();
    cache
        .put_subject(&SubjectDoc::single("bystander", &bystander))
        .await
        .unwrap();
    assert!(cache
        .identity(&bystander.uuid, &bystander.key)
        .await
        .unwrap()
        .is_some());
    let new = AuthKey::generate();
    cache
        .put_subject(&SubjectDoc::single("someone", &new))
        .await
        .unwrap();
    assert!(
        cache.identity(&old.uuid, &old.key).await.unwrap().is_none(),
        "old key revoked"
    );
    let owner = cache.namespace_identity("someone").await.unwrap().unwrap();
    assert_eq!(owner.api_key(), new.compact());
    // Limits changes show at once too.
    cache
        .put_namespace_limits("someone", json!({"invocationsPerMinute": 3}))
        .await
        .unwrap();
    let limited = cache.identity(&new.uuid, &new.key).await.unwrap().unwrap();
    assert_eq!(limited.limits["invocationsPerMinute"], 3);
    // Other subjects' cached identities stay (a write that bypasses the cache is not seen).
    cache
        .inner()
        .put_subject(&SubjectDoc::single("bystander", &AuthKey::generate()))
        .await
        .unwrap();
    assert!(
        cache
            .identity(&bystander.uuid, &bystander.key)
            .await
            .unwrap()
            .is_some(),
        "bystander's identity is still cached"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controllers_invalidate_each_other_through_the_cache_invalidation_topic() {
    let shared = Arc::new(MemoryStore::new());
    let bus: Arc<dyn MessageBus> = Arc::new(MemoryBus::new());
    bus.create_topic(topics::CACHE_INVALIDATION).await.unwrap();
    let mut observer = bus
        .subscribe(topics::CACHE_INVALIDATION, "observer")
        .await
        .unwrap();
    let (a, _ta) = CachingStore::new(shared.clone(), CacheConfig::default())
        .with_bus(bus.clone(), "controller0")
        .await
        .unwrap();
    let (b, _tb) = CachingStore::new(shared, CacheConfig::default())
        .with_bus(bus.clone(), "controller1")
        .await
        .unwrap();
    let r1 = a
        .put(Collection::Whisks, ID, json!({"v": 1}), None)
        .await
        .unwrap();
    assert_eq!(b.get(Collection::Whisks, ID).await.unwrap().body["v"], 1);
    a.put(Collection::Whisks, ID, json!({"v": 2}), Some(&r1))
        .await
        .unwrap();
    // b drops its entry when controller0's message arrives (hang guard only).
    let seen = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            if b.get(Collection::Whisks, ID).await.unwrap().body["v"] == 2 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(seen.is_ok(), "controller1 still serves the stale entity");
    // The messages are OpenWhisk's CacheInvalidationMessage.
    let msgs = observer.poll(10, Duration::from_secs(5)).await.unwrap();
    let first: Value = serde_json::from_slice(&msgs[0]).unwrap();
    assert_eq!(
        first,
        json!({"key": {"mainId": ID}, "instanceId": "controller0"})
    );
}
