//! Criterion micro-benchmarks of whisk's per-request hot paths.
//!
//! Run with `cargo bench -p whisk-benches --bench micro`. Shorten a run with
//! `cargo bench -p whisk-benches --bench micro -- --quick`, or with criterion's options,
//! e.g. `-- --sample-size 10 --warm-up-time 0.5 --measurement-time 1`; pass a filter such
//! as `-- scheduler_decision` to run one group.
//!
//! Groups (each measures one operation; times are per operation):
//!
//! 1. `entity_json`: an action document and an activation record to and from JSON bytes,
//!    the way the store keeps them (`to_document()` then `serde_json::to_vec`; serde
//!    deserialisation from the stored bytes).
//! 2. `auth_lookup`: resolving a Basic `uuid:key` to an identity as the controller does per
//!    request (`Controller::authenticate` is `Store::identity` on the controller's store,
//!    a `CachingStore` over the backend): a warm cache hit, the uncached `MemoryStore`
//!    lookup, and a wrong key (never cached, so it always reaches the store). The store holds
//!    [`SUBJECTS`] subjects and lookups rotate over all of their keys. Decoding the
//!    `Authorization` header is not included (it is crate-private to whisk-core).
//! 3. `scheduler_decision`: one `Scheduler::schedule` over [`INVOKERS`] invokers for
//!    `ShardingBalancer`, `LeastLoaded` and `WarmAware` (cold: no warm container of the
//!    action; warm: a schedule plus its `completed`, so each decision finds the container the
//!    last one left idle). `WarmAware` also holds warm containers of other actions.
//! 4. `bus_memory`: publish, poll and commit on `whisk_bus::MemoryBus`, one message and a
//!    batch of [`BATCH`].
//! 5. `activation_write`: `ActivationRecorder::record` (what the controller and the invoker
//!    call; it is `Store::put` of the activation document) on `MemoryStore` and on the durable
//!    `EmbeddedStore` (redb, fsync per commit, one writer) in a temporary directory.
//!
//! Async operations run on a Tokio current-thread runtime; each sample times a loop of
//! awaited calls inside one `block_on`, so the runtime's entry cost is not counted.

use bytes::Bytes;
use criterion::{black_box, criterion_group, criterion_main, Bencher, Criterion, Throughput};
use serde_json::{json, Value};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::runtime::Runtime;
use whisk_core::bus::MessageBus;
use whisk_core::entity::exec::ExecPut;
use whisk_core::entity::limits::ActionLimitsPut;
use whisk_core::entity::{
    ActivationId, ActivationResponse, AuthKey, Parameters, RuntimeManifest, SemVer, SubjectDoc,
    SystemLimits, WhiskAction, WhiskActionPut, WhiskActivation,
};
use whisk_core::scheduler::{
    Completion, InvokerView, LeastLoaded, Placement, Scheduler, ShardingBalancer, WarmAware,
};
use whisk_core::store::{
    ActivationRecorder, CacheConfig, CachingStore, Retention, Store, StoreExt,
};
use whisk_store::{EmbeddedStore, MemoryStore};

/// Invokers the schedulers choose among.
const INVOKERS: u32 = 16;
/// Subjects (each with one namespace and key) in the store for `auth_lookup`.
const SUBJECTS: usize = 100;
/// Messages per batch in `bus_memory`.
const BATCH: usize = 64;
/// Other actions with warm containers when `WarmAware` decides.
const WARM_ACTIONS: usize = 64;

/// This file's short default timings; command-line options (`--warm-up-time`,
/// `--measurement-time`, `--sample-size`, `--quick`) override them.
fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
}

/// A Tokio current-thread runtime with timers (the memory bus polls with a timeout).
fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Times `iters` awaited calls of `op` inside one `block_on`.
fn iter_async<F, Fut>(b: &mut Bencher<'_>, rt: &Runtime, mut op: F)
where
    F: FnMut() -> Fut,
    Fut: Future,
{
    b.iter_custom(|iters| {
        rt.block_on(async {
            let start = Instant::now();
            for _ in 0..iters {
                black_box(op().await);
            }
            start.elapsed()
        })
    });
}

/// A typical Node.js action as `PUT /actions/hello` creates it: code, two default
/// parameters, a description annotation and a raised memory limit.
fn action() -> WhiskAction {
    let put = WhiskActionPut {
        exec: Some(ExecPut {
            kind: "nodejs:20".into(),
            code: Some(
                "function main(params) {\n  const name = params.name || 'world';\n  \
                 return { greeting: `Hello, ${name}!` };\n}\n"
                    .into(),
            ),
            ..ExecPut::default()
        }),
        parameters: Some(
            Parameters::new()
                .with("name", json!("world"))
                .with("place", json!("Naboo")),
        ),
        limits: Some(ActionLimitsPut {
            memory: Some(512),
            ..ActionLimitsPut::default()
        }),
        annotations: Some(Parameters::new().with("description", json!("says hello"))),
        ..WhiskActionPut::default()
    };
    WhiskAction::create(
        "guest",
        "hello",
        put,
        &RuntimeManifest::default(),
        &SystemLimits::default(),
        1_700_000_000_000,
    )
    .expect("valid action")
}

/// The 32-hex-digit activation id numbered `n`.
fn activation_id(n: u64) -> ActivationId {
    ActivationId::parse(&format!("{n:032x}")).expect("valid activation id")
}

/// A successful activation record as the invoker writes it: result, two log lines and the
/// usual annotations.
fn activation(n: u64) -> WhiskActivation {
    let start = 1_700_000_000_000 + n;
    WhiskActivation {
        namespace: "guest".into(),
        name: "hello".into(),
        subject: "guest".into(),
        activation_id: activation_id(n),
        start,
        end: start + 12,
        cause: None,
        response: ActivationResponse::success(json!({"greeting": "Hello, world!"})),
        logs: vec![
            "2024-01-01T00:00:00.000000000Z stdout: handling request".into(),
            "2024-01-01T00:00:00.000100000Z stdout: done".into(),
        ],
        version: SemVer::default(),
        publish: false,
        annotations: Parameters::new()
            .with("path", json!("guest/hello"))
            .with("waitTime", json!(3))
            .with("kind", json!("nodejs:20"))
            .with("timeout", json!(false))
            .with(
                "limits",
                json!({"concurrency": 1, "logs": 10, "memory": 256, "timeout": 60000}),
            )
            .with("initTime", json!(25)),
        duration: None,
    }
}

/// Serialises `doc` as the store does (one JSON document of bytes).
fn to_bytes(doc: &Value) -> Vec<u8> {
    serde_json::to_vec(doc).expect("document serialises")
}

/// `entity_json`: action and activation documents to and from JSON bytes.
fn entity_json(c: &mut Criterion) {
    let action = action();
    let action_bytes = to_bytes(&action.to_document());
    let record = activation(1);
    let record_bytes = to_bytes(&record.to_document());

    let mut g = c.benchmark_group("entity_json");
    g.throughput(Throughput::Bytes(action_bytes.len() as u64));
    g.bench_function("action_serialize", |b| {
        b.iter(|| to_bytes(&black_box(&action).to_document()))
    });
    g.bench_function("action_deserialize", |b| {
        b.iter(|| {
            serde_json::from_slice::<WhiskAction>(black_box(&action_bytes)).expect("action parses")
        })
    });
    g.throughput(Throughput::Bytes(record_bytes.len() as u64));
    g.bench_function("activation_serialize", |b| {
        b.iter(|| to_bytes(&black_box(&record).to_document()))
    });
    g.bench_function("activation_deserialize", |b| {
        b.iter(|| {
            serde_json::from_slice::<WhiskActivation>(black_box(&record_bytes))
                .expect("activation parses")
        })
    });
    g.finish();
}

/// A `MemoryStore` holding [`SUBJECTS`] subjects, and their keys.
async fn subjects_store() -> (Arc<MemoryStore>, Vec<AuthKey>) {
    let store = Arc::new(MemoryStore::new());
    let mut keys = Vec::with_capacity(SUBJECTS);
    for n in 0..SUBJECTS {
        let key = AuthKey::generate();
        store
            .put_subject(&SubjectDoc::single(&format!("user{n}"), &key))
            .await
            .expect("subject stored");
        keys.push(key);
    }
    (store, keys)
}

/// `auth_lookup`: `uuid:key` to identity, cached and uncached.
fn auth_lookup(c: &mut Criterion) {
    let rt = runtime();
    let (backend, keys) = rt.block_on(subjects_store());
    // The controller's store: a cache over the backend, held as `Arc<dyn Store>`.
    let cached: Arc<dyn Store> =
        Arc::new(CachingStore::new(backend.clone(), CacheConfig::default()));
    rt.block_on(async {
        for k in &keys {
            let id = cached.identity(&k.uuid, &k.key).await.expect("lookup");
            assert!(id.is_some(), "every key resolves");
        }
    });
    let keys = &keys;

    let mut g = c.benchmark_group("auth_lookup");
    let backend_dyn: &dyn Store = &backend;
    let cases: [(&str, &dyn Store, bool); 3] = [
        ("cached_hit", cached.as_ref(), false),
        ("memory_store_uncached", backend_dyn, false),
        ("cached_wrong_key", cached.as_ref(), true),
    ];
    for (name, store, wrong) in cases {
        g.bench_function(name, |b| {
            let mut n = 0;
            iter_async(b, &rt, || {
                n = (n + 1) % keys.len();
                let k = &keys[n];
                let key = if wrong { "wrong" } else { k.key.as_str() };
                async move { store.identity(&k.uuid, key).await.expect("lookup") }
            })
        });
    }
    g.finish();
}

/// [`INVOKERS`] usable invokers of 32 GB user memory with different bookings.
fn invokers() -> Vec<InvokerView> {
    (0..INVOKERS)
        .map(|id| InvokerView::new(id, 32_768, u64::from(id * 7 % INVOKERS) * 1_024))
        .collect()
}

/// The placement of `action` in namespace `guest` (256 MB, Node.js).
fn placement(action: &str) -> Placement<'_> {
    Placement {
        namespace: "guest",
        action,
        memory_mb: 256,
        kind: "nodejs:20",
    }
}

/// A finished warm run of `action` on `invoker`.
fn completion(invoker: u32, action: &str) -> Completion<'_> {
    Completion {
        invoker,
        action,
        duration_ms: Some(12),
        init_ms: None,
        system_error: false,
    }
}

/// A `WarmAware` that has seen [`WARM_ACTIONS`] other actions run, so idle containers of
/// theirs are spread over the invokers.
async fn warm_scheduler(invokers: &[InvokerView]) -> WarmAware {
    let s = WarmAware::default();
    for n in 0..WARM_ACTIONS {
        let action = format!("guest/other{n}");
        let id = s
            .schedule(&placement(&action), invokers)
            .await
            .expect("placed");
        s.completed(&completion(id, &action)).await;
    }
    s
}

/// `scheduler_decision`: one placement per scheduler.
fn scheduler_decision(c: &mut Criterion) {
    let rt = runtime();
    let invokers = invokers();
    let invokers = &invokers[..];
    let hello = placement("guest/hello");
    let hello = &hello;

    let mut g = c.benchmark_group("scheduler_decision");
    let sharding = ShardingBalancer::new().with_seed(7);
    g.bench_function("sharding", |b| {
        iter_async(b, &rt, || sharding.schedule(hello, invokers))
    });
    g.bench_function("least_loaded", |b| {
        iter_async(b, &rt, || LeastLoaded.schedule(hello, invokers))
    });
    let cold = rt.block_on(warm_scheduler(invokers));
    g.bench_function("warm_aware_cold", |b| {
        // `guest/hello` never completes here, so no warm container of it exists.
        iter_async(b, &rt, || cold.schedule(hello, invokers))
    });
    let warm = rt.block_on(warm_scheduler(invokers));
    g.bench_function("warm_aware_schedule_completed", |b| {
        iter_async(b, &rt, || async {
            let id = warm.schedule(hello, invokers).await.expect("placed");
            warm.completed(&completion(id, hello.action)).await;
            id
        })
    });
    g.finish();
}

/// `bus_memory`: publish, poll and commit on the in-process bus.
fn bus_memory(c: &mut Criterion) {
    let rt = runtime();
    let bus: Arc<dyn MessageBus> = Arc::new(whisk_bus::MemoryBus::new());
    let mut consumer = rt
        .block_on(bus.subscribe("invoker0", "invoker0"))
        .expect("subscribed");
    // About the size of an activation message.
    let payload = Bytes::from(to_bytes(&activation(1).to_document()));
    let timeout = Duration::from_secs(1);

    let mut g = c.benchmark_group("bus_memory");
    g.throughput(Throughput::Elements(1));
    g.bench_function("publish_poll_commit", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    bus.publish("invoker0", payload.clone())
                        .await
                        .expect("published");
                    let got = consumer.poll(1, timeout).await.expect("polled");
                    assert_eq!(got.len(), 1);
                    consumer.commit().await.expect("committed");
                }
                start.elapsed()
            })
        })
    });
    g.throughput(Throughput::Elements(BATCH as u64));
    g.bench_function("publish_poll_commit_batch", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    for _ in 0..BATCH {
                        bus.publish("invoker0", payload.clone())
                            .await
                            .expect("published");
                    }
                    let got = consumer.poll(BATCH, timeout).await.expect("polled");
                    assert_eq!(got.len(), BATCH);
                    consumer.commit().await.expect("committed");
                }
                start.elapsed()
            })
        })
    });
    g.finish();
}

/// Times `iters` recorder writes of distinct activations into `store`, starting at activation number `*next`. The ids are made before the clock starts.
fn record_writes(rt: &Runtime, store: Arc<dyn Store>, next: &mut u64, iters: u64) -> Duration {
    let recorder = ActivationRecorder::new(store, Arc::new(Retention::default()));
    let mut record = activation(*next);
    let ids: Vec<ActivationId> = (*next..*next + iters).map(activation_id).collect();
    *next += iters;
    rt.block_on(async {
        let start = Instant::now();
        for id in ids {
            record.activation_id = id;
            recorder.record(&record).await;
        }
        start.elapsed()
    })
}

/// `activation_write`: one activation record into the memory and the embedded store.
fn activation_write(c: &mut Criterion) {
    let rt = runtime();
    let dir = tempfile::tempdir().expect("temporary directory");
    let embedded: Arc<dyn Store> =
        Arc::new(EmbeddedStore::open(dir.path()).expect("embedded store opens"));

    // Activation numbers go on across samples (criterion calls each routine many times), so
    // every write creates a new record.
    let mut next = 0;
    let mut g = c.benchmark_group("activation_write");
    g.bench_function("memory_store", |b| {
        // A fresh store per sample keeps memory bounded over millions of writes.
        b.iter_custom(|iters| record_writes(&rt, Arc::new(MemoryStore::new()), &mut next, iters))
    });
    // Every write waits for its fsync: far slower, so fewer samples (this overrides
    // `--sample-size` for this benchmark).
    g.sample_size(20);
    g.bench_function("embedded_store", |b| {
        b.iter_custom(|iters| record_writes(&rt, embedded.clone(), &mut next, iters))
    });
    g.finish();
    drop(embedded);
    drop(dir);
}

criterion_group! {
    name = micro;
    config = config();
    targets = entity_json, auth_lookup, scheduler_decision, bus_memory, activation_write
}
criterion_main!(micro);
