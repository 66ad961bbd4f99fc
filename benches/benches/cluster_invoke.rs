//! Run with `WHISK_TEST_KAFKA=127.0.0.1:9092 cargo bench -p whisk-benches --bench cluster_invoke`
//! (`.ci/run` prints how it starts a broker; any Kafka-protocol broker works).
//!
//! Warm blocking invokes of a no-op `nodejs:20` action through a controller and invokers that
//! talk over Kafka (the cluster binaries' composition, in one process, memory store), beside
//! the floor: the same composition over the in-process memory bus. Then throughput with two
//! invokers beside one. Targets: p50 under 5 ms and p99 under 20 ms through Kafka.

use std::sync::Arc;
use std::time::Duration;
use whisk_benches::{
    blocking_invokes, create_noop, kafka_brokers, kafka_bus, report, unthrottled, Echo, Stats,
};
use whisk_core::bus::MessageBus;
use whisk_core::controller::ControllerConfig;
use whisk_core::loadbalancer::LoadBalancerConfig;
use whisk_core::store::Store;
use whisk_examples::cluster::{seed_keys, ControllerProcess, InvokerProcess, InvokerSettings};
use whisk_store::MemoryStore;

/// A controller and `invokers` invokers (256 MB each: one container) over `bus`.
struct Cluster {
    controller: ControllerProcess,
    invokers: Vec<InvokerProcess>,
    url: String,
}

async fn cluster(bus: Arc<dyn MessageBus>, invokers: u32) -> Cluster {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    seed_keys(store.as_ref()).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let config = ControllerConfig {
        namespace_limits: unthrottled(),
        ..ControllerConfig::default()
    };
    let controller = ControllerProcess::start(
        store.clone(),
        bus.clone(),
        0,
        config,
        LoadBalancerConfig::default(),
        listener,
    )
    .await
    .unwrap();
    let url = format!("http://{}", controller.server.addr);
    let settings = (0..invokers).map(|id| InvokerSettings {
        id,
        user_memory_mb: 256,
        prewarm: false,
        ..InvokerSettings::default()
    });
    let (procs, _) = whisk_benches::start_invokers(&store, &bus, &url, settings).await;
    create_noop(&url).await;
    Cluster {
        controller,
        invokers: procs,
        url,
    }
}

async fn load(url: &str, clients: usize, total: u64) -> Stats {
    blocking_invokes(url, clients, total, Duration::from_secs(30)).await
}

impl Cluster {
    async fn shutdown(self) {
        for i in self.invokers {
            i.shutdown().await;
        }
        self.controller.shutdown().await;
    }
}

async fn kafka(brokers: &str, name: &str) -> Arc<dyn MessageBus> {
    Arc::new(kafka_bus(brokers, name).await)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let Some(brokers) = kafka_brokers("cluster_invoke") else {
        return;
    };
    println!("whisk cluster_invoke: warm blocking invoke (nodejs:20 no-op), controller + invokers over Kafka vs over the memory bus (floor)");
    let floor_cluster = cluster(Arc::new(whisk_bus::MemoryBus::new()), 1).await;
    let floor = load(&floor_cluster.url, 1, 1000).await;
    floor_cluster.shutdown().await;

    // The broker's share: the same two hops (out and back) with nothing else, as many
    // round trips as the invoke run below makes (its warm-up, then the measured ones).
    let echo = Echo::start(kafka(&brokers, "echo").await).await;
    echo.round_trips(200).await;
    let broker = echo.round_trips(1000).await;

    let one = cluster(kafka(&brokers, "one").await, 1).await;
    let through_kafka = load(&one.url, 1, 1000).await;
    report("invoke via Kafka, 1 invoker", 1, through_kafka, floor);
    println!(
        "  the broker alone, two hops (publish, consume, echo back): p50 {:.2} ms, p99 {:.2} ms; \
         memory-bus invoke p50 + that: {:.2} ms",
        broker.p50_us / 1000.0,
        broker.p99_us / 1000.0,
        (floor.p50_us + broker.p50_us) / 1000.0
    );
    println!(
        "  p50 {:.2} ms (target < 5 ms: {}), p99 {:.2} ms (target < 20 ms: {})",
        through_kafka.p50_us / 1000.0,
        if through_kafka.p50_us < 5000.0 {
            "MET"
        } else {
            "NOT MET"
        },
        through_kafka.p99_us / 1000.0,
        if through_kafka.p99_us < 20_000.0 {
            "MET"
        } else {
            "NOT MET"
        },
    );
    one.shutdown().await;

    // Throughput runs each start on fresh topics: tansu's fetch slows down as a partition
    // fills (see the README), which would otherwise favour whichever run came first.
    let one = cluster(kafka(&brokers, "one-busy").await, 1).await;
    let one_busy = load(&one.url, 8, 2000).await;
    one.shutdown().await;

    let two = cluster(kafka(&brokers, "two").await, 2).await;
    let two_busy = load(&two.url, 8, 2000).await;
    two.shutdown().await;
    report("invoke via Kafka, 2 invokers vs 1", 8, two_busy, one_busy);
    println!(
        "  throughput: 1 invoker {:.0}/s, 2 invokers {:.0}/s (x{:.2})",
        one_busy.per_sec,
        two_busy.per_sec,
        two_busy.per_sec / one_busy.per_sec
    );
}
