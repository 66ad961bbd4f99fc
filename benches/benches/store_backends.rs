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
use whisk_benches::{blocking_invokes, create_noop, report, unthrottled, NOOP};
use whisk_core::store::{CacheConfig, CachingStore, Collection, Document, Store};
use whisk_examples::standalone::{Standalone, StandaloneConfig, StoreBackend};
use whisk_store::{CouchConfig, EmbeddedStore, MemoryStore};

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

/// Mean time of one `op` over `GETS` calls (after a warm-up), in µs.
async fn mean_us<F, Fut, T>(op: F) -> f64
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = T>,
{
    for _ in 0..1000 {
        std::hint::black_box(op().await);
    }
    let t = Instant::now();
    for _ in 0..GETS {
        std::hint::black_box(op().await);
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

    // The floor: the same document shared out of a plain locked map.
    let doc = Arc::new(memory.get(Collection::Whisks, ID).await.unwrap());
    let map: RwLock<HashMap<String, Arc<Document>>> =
        RwLock::new(HashMap::from([(ID.to_string(), doc)]));
    let floor = mean_us(|| async { map.read().unwrap().get(ID).cloned().unwrap() }).await;
    let floor_owned =
        mean_us(|| async { (*map.read().unwrap().get(ID).cloned().unwrap()).clone() }).await;

    println!("whisk store_backends: entity get of an action document ({GETS} gets each)");
    println!("  floor: locked HashMap get, shared {floor:.3} us; owned copy {floor_owned:.3} us");
    for (name, inner) in [("memory", memory as Arc<dyn Store>), ("embedded", embedded)] {
        let uncached = mean_us(|| inner.get(Collection::Whisks, ID)).await;
        let cached = CachingStore::new(inner, CacheConfig::default());
        let shared = mean_us(|| cached.get_shared(Collection::Whisks, ID)).await;
        let owned = mean_us(|| cached.get(Collection::Whisks, ID)).await;
        println!(
            "  cache over {name:<8}: get_shared {shared:.3} us (floor {floor:.3}, x{:.1}), owned get {owned:.3} us (floor {floor_owned:.3}), uncached {uncached:.3} us: target < 2 us {}",
            shared / floor,
            if shared < 2.0 { "MET" } else { "NOT MET" }
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
        namespace_limits: unthrottled(),
        ..Default::default()
    })
    .await
    .expect("platform starts");
    let base = format!("http://{}", p.addr);
    create_noop(&base).await;
    (p, base)
}

/// Warm blocking invoke latency of a platform on `store`, 1 client. The platform runs on its
/// own runtime so the load client does not share its threads (as in `e2e_invoke`).
fn invoke_latency(
    platform_rt: &tokio::runtime::Runtime,
    store: StoreBackend,
) -> whisk_benches::Stats {
    let (p, url) = platform_rt.block_on(platform(store));
    let client_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let stats = client_rt.block_on(blocking_invokes(&url, 1, 1000, Duration::from_secs(20)));
    platform_rt.block_on(p.shutdown());
    stats
}

fn invokes() {
    let platform_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    println!(
        "whisk store_backends: warm blocking invoke (nodejs:20 no-op), 1 client, by store backend"
    );
    let memory = invoke_latency(&platform_rt, StoreBackend::Memory);
    report("invoke, memory store (floor)", 1, memory, memory);
    let dir = tempfile::tempdir().unwrap();
    let embedded = invoke_latency(
        &platform_rt,
        StoreBackend::Embedded(dir.path().to_path_buf()),
    );
    report("invoke, embedded store", 1, embedded, memory);
    match std::env::var("WHISK_TEST_COUCHDB_URL") {
        Ok(url) => {
            let config = CouchConfig {
                url,
                db_prefix: format!("whisk_bench_{}_", std::process::id()),
                ..CouchConfig::default()
            };
            let couch = invoke_latency(&platform_rt, StoreBackend::CouchDb(config));
            report("invoke, CouchDB store", 1, couch, memory);
        }
        Err(_) => {
            println!("  CouchDB: not measured (set WHISK_TEST_COUCHDB_URL to a CouchDB-API server)")
        }
    }
}

fn main() {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(cache_gets());
    invokes();
}
