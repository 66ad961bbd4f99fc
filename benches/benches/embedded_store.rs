//! Run with `cargo bench -p whisk-benches --bench embedded_store`.
//!
//! Activation-record writes per second through `Store::put` on the embedded (redb) store, with
//! 1 writer and with 64 concurrent writers, each printed beside its floor measured in the same
//! run: `MemoryStore` taking the same writes. Every embedded write is durable (fsync) before it
//! is acknowledged; concurrent writers share commits (group commit).
//! Target: over 5,000 activation writes/s with 64 concurrent writers.

use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use whisk_benches::{closed_loop, report, Stats};
use whisk_core::store::{Collection, Store};
use whisk_store::{EmbeddedStore, MemoryStore};

const TARGET_PER_SEC: f64 = 5_000.0;
const NAMESPACES: u64 = 8;

/// An activation record as the invoker stores it, with a distinct id.
fn activation(n: u64) -> (String, Value) {
    let ns = format!("bench{}", n % NAMESPACES);
    let aid = format!("{n:032x}");
    let start = 1_700_000_000_000u64 + n;
    let body = json!({
        "namespace": ns, "name": "hello", "version": "0.0.1", "subject": ns,
        "activationId": aid, "start": start, "end": start + 12, "duration": 12,
        "cause": null, "publish": false, "entityType": "activation",
        "response": {"status": "success", "statusCode": 0, "success": true,
                     "result": {"greeting": format!("Hello, world #{n}!")}},
        "logs": [
            "2024-01-01T00:00:00.000000000Z stdout: handling request",
            "2024-01-01T00:00:00.000100000Z stdout: done",
        ],
        "annotations": [
            {"key": "path", "value": format!("{ns}/hello")},
            {"key": "waitTime", "value": 3},
            {"key": "kind", "value": "nodejs:20"},
            {"key": "timeout", "value": false},
            {"key": "limits", "value": {"concurrency": 1, "logs": 10, "memory": 256, "timeout": 60000}},
            {"key": "initTime", "value": 25},
        ],
    });
    (format!("{ns}/{aid}"), body)
}

/// Closed-loop activation writes into `store` from `clients` writers.
async fn writes(store: Arc<dyn Store>, clients: usize, total: u64, max_time: Duration) -> Stats {
    let next = Arc::new(AtomicU64::new(0));
    closed_loop(clients, total, max_time, move || {
        let (store, next) = (store.clone(), next.clone());
        async move {
            let (id, body) = activation(next.fetch_add(1, Ordering::Relaxed));
            store
                .put(Collection::Activations, &id, body, None)
                .await
                .expect("activation written");
        }
    })
    .await
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let root = std::env::temp_dir().join(format!(
        "whisk-bench-embedded-{}-{nanos}",
        std::process::id()
    ));
    println!(
        "whisk embedded_store: durable activation writes through Store::put vs MemoryStore (floor)"
    );
    rt.block_on(async {
        for (clients, total, max_time) in [
            (1usize, 5_000u64, Duration::from_secs(5)),
            (64, 100_000, Duration::from_secs(8)),
        ] {
            let dir = root.join(format!("c{clients}"));
            let embedded: Arc<dyn Store> =
                Arc::new(EmbeddedStore::open(&dir).expect("embedded store opens"));
            let e = writes(embedded, clients, total, max_time).await;
            let floor = writes(Arc::new(MemoryStore::new()), clients, total, max_time).await;
            report("embedded activation put", clients, e, floor);
            println!(
                "  -> {:.0} durable writes/s; target > {TARGET_PER_SEC:.0}/s: {}",
                e.per_sec,
                if e.per_sec > TARGET_PER_SEC {
                    "met"
                } else if clients == 1 {
                    "not met (one writer waits for every fsync; the target is for concurrent writers)"
                } else {
                    "NOT MET"
                }
            );
        }
    });
    let _ = std::fs::remove_dir_all(&root);
}
