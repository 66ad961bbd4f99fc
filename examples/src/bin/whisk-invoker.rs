//! Run with `cargo run --release --bin whisk-invoker -- --id 0 --kafka-brokers 127.0.0.1:9092
//! --couchdb-url http://127.0.0.1:5984`.
//!
//! An OpenWhisk-compatible invoker: consumes `invoker{id}` from Kafka, runs actions in its
//! container pool (local processes), stores activation records in CouchDB, acknowledges to
//! the controller and pings `health` every second.

use clap::Parser;
use std::sync::Arc;
use std::time::Duration;
use whisk_core::bus::MessageBus;
use whisk_core::store::Store;
use whisk_examples::cli::{
    init_tracing, say, terminated, CouchArgs, ExecutorArgs, KafkaArgs, ManifestArgs, PoolArgs,
    RetentionArgs, UserEventsArgs,
};
use whisk_examples::cluster::{InvokerProcess, InvokerSettings, Server};
use whisk_store::CouchStore;

/// jemalloc: the request path allocates a lot, and glibc malloc took a quarter of the
/// platform's CPU under load (README, "Load harness").
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// whisk invoker: runs the actions of a whisk cluster.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// This invoker's id (it consumes `invoker{id}`); unique in the cluster.
    #[arg(long)]
    id: u32,
    /// OpenWhisk's `--uniqueName`: part of this invoker's container names
    /// (`wsk{unique-name}{id}_...`), for invokers sharing a Docker daemon.
    #[arg(long, default_value = "")]
    unique_name: String,
    /// The API host actions call back (`__OW_API_HOST`): a controller's URL.
    #[arg(long, default_value = "http://127.0.0.1:3233")]
    api_host: String,
    /// The container pool.
    #[command(flatten)]
    pool: PoolArgs,
    /// What runs the containers.
    #[command(flatten)]
    executor: ExecutorArgs,
    /// The runtime manifest.
    #[command(flatten)]
    manifest: ManifestArgs,
    /// The Kafka cluster.
    #[command(flatten)]
    kafka: KafkaArgs,
    /// The CouchDB server.
    #[command(flatten)]
    couch: CouchArgs,
    /// Which activation records are kept.
    #[command(flatten)]
    retention: RetentionArgs,
    /// OpenWhisk's user events (`Activation` events).
    #[command(flatten)]
    events: UserEventsArgs,
    /// Serve Prometheus metrics at `http://{metrics-host}:{metrics-port}/metrics`
    /// (OpenWhisk's invoker uses 8085 inside its container); off unless set.
    #[arg(long)]
    metrics_port: Option<u16>,
    /// Address the metrics endpoint listens on.
    #[arg(long, default_value = "127.0.0.1")]
    metrics_host: std::net::IpAddr,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    init_tracing();
    let args = Args::parse();
    let bus: Arc<dyn MessageBus> =
        Arc::new(args.kafka.connect(&format!("invoker{}", args.id)).await?);
    let store: Arc<dyn Store> = Arc::new(
        CouchStore::connect(args.couch.config())
            .await
            .map_err(std::io::Error::other)?,
    );
    let process = InvokerProcess::start(
        store,
        bus,
        InvokerSettings {
            id: args.id,
            user_memory_mb: args.pool.user_memory,
            idle_timeout: Duration::from_secs(args.pool.idle_timeout),
            pause_grace: Duration::from_secs(args.pool.pause_grace),
            manifest: args.manifest.manifest()?,
            prewarm: !args.pool.no_prewarm,
            api_host: args.api_host.clone(),
            retention: Arc::new(args.retention.retention()),
            hidden: Vec::new(),
            executor: args.executor.choice(),
            unique_name: args.unique_name.clone(),
            user_events: args.events.user_events,
            ..InvokerSettings::default()
        },
    )
    .await?;
    let metrics = match args.metrics_port {
        Some(port) => {
            let listener = tokio::net::TcpListener::bind((args.metrics_host, port)).await?;
            let app = whisk_core::api::metrics_router(process.invoker.metrics().clone());
            Some(Server::start(listener, app)?)
        }
        None => None,
    };
    say(&format!(
        "whisk invoker{} running ({} MB for containers, Kafka {}, CouchDB databases {}*){}",
        args.id,
        args.pool.user_memory,
        args.kafka.kafka_brokers,
        args.couch.couchdb_prefix,
        metrics
            .as_ref()
            .map(|s| format!(", metrics at http://{}/metrics", s.addr))
            .unwrap_or_default()
    ));
    terminated().await?;
    say(&format!(
        "stopping: leaving the cluster; activations in flight may finish within {} s, then containers are removed",
        args.pool.drain_timeout
    ));
    if let Err(e) = process.invoker.disable().await {
        tracing::warn!(error = %e, "could not announce the shutdown");
    }
    if let Some(server) = metrics {
        server.shutdown().await;
    }
    process
        .shutdown_within(Duration::from_secs(args.pool.drain_timeout))
        .await;
    Ok(())
}
