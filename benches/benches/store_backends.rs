//! Run with `cargo bench -p whisk-benches --bench store_backends`.
//!
//! 1. Entity reads through the cache (`CachingStore` over the store), beside the floor: the
//!    same document handed out from a plain locked `HashMap` (what an owned read must cost at
//!    least), and the uncached stores for context. Target: under 2 µs per cached get.
//! 2. Warm blocking invoke latency of the standalone platform on each store backend, printed
//!    beside the memory-backed platform (the floor) in the same run: embedded, and CouchDB
//!    when a CouchDB-API server is given (`WHISK_TEST_COUCHDB_URL`, as `.ci/run` sets).

use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use whisk_benches::{closed_loop, report};
use whisk_core::entity::identity::GUEST_KEY;
use whisk_core::store::{CacheConfig, CachingStore, Collection, Document, Store};
use whisk_examples::standalone::{Standalone, StandaloneConfig, StoreBackend};
use whisk_store::{CouchConfig, EmbeddedStore, MemoryStore};

const NOOP: &str = "function main() { return {}; }";
const ID: &str = "guest/noop";
const GETS: u32 = 200_000;

fn action_doc() -> serde_json::Value {
    json!({
        "namespace": "guest", "name": "noop", "entityType": "action", "updated": 1,
        "version": "0.0.1", "publish": false, "annotations": [{"key": "exec", "value": "nodejs:20"}],
        "parameters": [], "limits": {"timeout": 60000, "memory": 256, "logs": 10, "concurrency": 1},
        "exec": {"kind": "nodejs:20", "code": NOOP, "binary": false},
    })
}

/// Mean time of one `get` of `ID` over `GETS` calls, in µs.
async fn mean_get_us(store: &dyn Store) -> f64 {
    for _ in 0..1000 {
        store.get(Collection::Whisks, ID).await.unwrap();
    }
    let t = Instant::now();
    for _ in 0..GETS {
        std::hint::black_box(store.get(Collection::Whisks, ID).await.unwrap());
    }
    t.elapsed().as_secs_f64() * 1e6 / GETS as f64
}

async fn cache_gets() {
    let memory = Arc::new(MemoryStore::new());
    memory
        .put(Collection::Whisks, ID, action_doc(), None)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let embedded = Arc::new(EmbeddedStore::open(dir.path()).unwrap());
    embedded
        .put(Collection::Whisks, ID, action_doc(), None)
        .await
        .unwrap();

    let floor_map: RwLock<HashMap<String, Document>> = RwLock::new(HashMap::from([(
        ID.to_string(),
        memory.get(Collection::Whisks, ID).await.unwrap(),
    )]));
    let t = Instant::now();
    for _ in 0..GETS {
        std::hint::black_box(floor_map.read().unwrap().get(ID).cloned().unwrap());
    }
    let floor = t.elapsed().as_secs_f64() * 1e6 / GETS as f64;

    println!("whisk store_backends: entity get (action document, {GETS} gets)");
    println!("  floor: locked HashMap get + clone            {floor:>7.3} us");
    for (name, inner) in [("memory", memory as Arc<dyn Store>), ("embedded", embedded)] {
        let uncached = mean_get_us(inner.as_ref()).await;
        let cached = CachingStore::new(inner, CacheConfig::default());
        let hit = mean_get_us(&cached).await;
        println!(
            "  cached get over {name:<8} {hit:>7.3} us (x{:.2} floor; uncached {uncached:.3} us): target < 2 us {}",
            hit / floor,
            if hit < 2.0 { "MET" } else { "NOT MET" }
        );
    }
}

/// Starts a platform on `store` with the no-op action created; returns it and the invoke URL.
async fn platform(store: StoreBackend) -> (Standalone, String) {
    let p = Standalone::start(StandaloneConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        user_memory_mb: 256,
        prewarm: false,
        store,
        namespace_limits: whisk_core::controller::NamespaceLimits {
            invocations_per_minute: u64::MAX / 2,
            concurrent_invocations: u64::MAX / 2,
            fires_per_minute: u64::MAX / 2,
        },
        ..Default::default()
    })
    .await
    .expect("platform starts");
    let base = format!("http://{}", p.addr);
    let (user, pass) = GUEST_KEY.split_once(':').unwrap();
    let r = reqwest::Client::new()
        .put(format!(
            "{base}/api/v1/namespaces/_/actions/noop?overwrite=true"
        ))
        .basic_auth(user, Some(pass))
        .json(&json!({"exec": {"kind": "nodejs:20", "code": NOOP}}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    (
        p,
        format!("{base}/api/v1/namespaces/_/actions/noop?blocking=true&result=true"),
    )
}

/// Warm blocking invoke latency of a platform on `store`, 1 client.
async fn invoke_latency(store: StoreBackend) -> whisk_benches::Stats {
    let (p, url) = platform(store).await;
    let url = Arc::new(url);
    let http = reqwest::Client::builder()
        .no_proxy()
        .tcp_nodelay(true)
        .build()
        .unwrap();
    let (user, pass) = GUEST_KEY.split_once(':').unwrap();
    let invoke = move || {
        let (http, url) = (http.clone(), url.clone());
        async move {
            let r = http
                .post(url.as_str())
                .basic_auth(user, Some(pass))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            let _ = r.bytes().await.unwrap();
        }
    };
    closed_loop(1, 100, Duration::from_secs(10), invoke.clone()).await;
    let stats = closed_loop(1, 1000, Duration::from_secs(20), invoke).await;
    p.shutdown().await;
    stats
}

async fn invokes() {
    println!(
        "whisk store_backends: warm blocking invoke (nodejs:20 no-op), 1 client, by store backend"
    );
    let memory = invoke_latency(StoreBackend::Memory).await;
    report("invoke, memory store (floor)", 1, memory, memory);
    let dir = tempfile::tempdir().unwrap();
    let embedded = invoke_latency(StoreBackend::Embedded(dir.path().to_path_buf())).await;
    report("invoke, embedded store", 1, embedded, memory);
    match std::env::var("WHISK_TEST_COUCHDB_URL") {
        Ok(url) => {
            let couch = invoke_latency(StoreBackend::CouchDb(CouchConfig {
                url,
                db_prefix: format!("whisk_bench_{}_", std::process::id()),
                ..CouchConfig::default()
            }))
            .await;
            report("invoke, CouchDB store", 1, couch, memory);
        }
        Err(_) => {
            println!("  CouchDB: not measured (set WHISK_TEST_COUCHDB_URL to a CouchDB-API server)")
        }
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    cache_gets().await;
    invokes().await;
}
