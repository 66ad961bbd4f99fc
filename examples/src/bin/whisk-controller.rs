//! Run with `cargo run --release --bin whisk-controller -- --kafka-brokers 127.0.0.1:9092
//! --couchdb-url http://127.0.0.1:5984`.
//!
//! An OpenWhisk-compatible controller: the REST API, entitlement and throttles, and the load
//! balancer, talking to any number of `whisk-invoker` processes over Kafka and sharing
//! CouchDB with them. Invokers are discovered from their health pings and used once healthy.

use clap::Parser;
use std::sync::Arc;
use std::time::Duration;
use whisk_core::bus::MessageBus;
use whisk_core::controller::ControllerConfig;
use whisk_core::entity::identity::GUEST_KEY;
use whisk_core::entity::SystemLimits;
use whisk_core::loadbalancer::LoadBalancerConfig;
use whisk_core::store::{CacheConfig, CachingStore, Store};
use whisk_examples::admin_cli::{self, AdminCommand};
use whisk_examples::cli::{
    init_tracing, report, say, terminated, CouchArgs, KafkaArgs, LimitArgs, ListenArgs,
    ManifestArgs, RetentionArgs, SchedulerArgs, UserEventsArgs,
};
use whisk_examples::cluster::{seed_keys, ControllerProcess, ControllerSettings};
use whisk_store::CouchStore;

/// jemalloc: the request path allocates a lot, and glibc malloc took a quarter of the
/// platform's CPU under load (README, "Load harness").
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// whisk controller: the REST API and load balancer of a whisk cluster.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// This controller's id (its acknowledgements arrive on `completed{id}`).
    #[arg(long, default_value_t = 0)]
    id: u32,
    /// Where the REST API listens.
    #[command(flatten)]
    listen: ListenArgs,
    /// The Kafka cluster.
    #[command(flatten)]
    kafka: KafkaArgs,
    /// The CouchDB server.
    #[command(flatten)]
    couch: CouchArgs,
    /// Throttles and limits.
    #[command(flatten)]
    limits: LimitArgs,
    /// The runtime manifest (which kinds are accepted).
    #[command(flatten)]
    manifest: ManifestArgs,
    /// Which activation records are kept.
    #[command(flatten)]
    retention: RetentionArgs,
    /// OpenWhisk's user events (`Metric` events of throttled requests).
    #[command(flatten)]
    events: UserEventsArgs,
    /// Run the feed provider (alarms, Kafka and CouchDB sources) in this controller. Enable
    /// it on one controller of a cluster only: each provider fires every registration.
    #[arg(long)]
    feeds: bool,
    /// Seconds past its time limit after which an activation whose invoker never answered is
    /// recorded as a whisk internal error (default: OpenWhisk's max(limit, 60 s) x 2 + 60 s).
    #[arg(long)]
    forced_completion_after: Option<u64>,
    /// Where activations are placed.
    #[command(flatten)]
    scheduler: SchedulerArgs,
    /// The invokers' `--idle-timeout` in seconds: how long the warm-aware scheduler assumes
    /// an idle container stays warm.
    #[arg(long, default_value_t = 600)]
    invoker_idle_timeout: u64,
    /// Seconds without a ping after which an invoker is down.
    #[arg(long, default_value_t = 10)]
    ping_timeout: u64,
    /// Administration of the CouchDB store instead of running the controller.
    #[command(subcommand)]
    command: Option<AdminCommand>,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    report(run().await)
}

async fn run() -> std::io::Result<()> {
    init_tracing();
    let args: Args = admin_cli::parse_args(admin_cli::CONTROLLER_GLOBAL_ARGS);
    if let Some(cmd) = &args.command {
        let backend = whisk_examples::standalone::StoreBackend::CouchDb(args.couch.config());
        std::process::exit(admin_cli::run_on_backend(&backend, cmd).await);
    }
    let serve = args.listen.serve_settings()?;
    let bus: Arc<dyn MessageBus> = Arc::new(
        args.kafka
            .connect(&format!("controller{}", args.id))
            .await?,
    );
    let couch = CouchStore::connect(args.couch.config())
        .await
        .map_err(std::io::Error::other)?;
    let (cache, invalidations) = CachingStore::new(couch, CacheConfig::default())
        .with_bus(bus.clone(), &format!("controller{}", args.id))
        .await
        .map_err(std::io::Error::other)?;
    let store: Arc<dyn Store> = Arc::new(cache);
    seed_keys(store.as_ref())
        .await
        .map_err(std::io::Error::other)?;

    let mut limits = SystemLimits::default();
    limits.concurrency.max = args.limits.max_concurrency.max(1);
    let config = ControllerConfig {
        limits,
        manifest: args.manifest.manifest()?,
        namespace_limits: args.limits.namespace_limits(),
        retention: Arc::new(args.retention.retention()),
        user_events: args.events.user_events,
        ..ControllerConfig::default()
    };
    let mut balancer = LoadBalancerConfig::default();
    balancer.health.ping_timeout = Duration::from_secs(args.ping_timeout);
    if let Some(after) = args.forced_completion_after {
        balancer.min_action_timeout = Duration::ZERO;
        balancer.timeout_factor = 1;
        balancer.timeout_addon = Duration::from_secs(after);
    }
    whisk_examples::cluster::check_default_keys(
        store.as_ref(),
        args.listen.addr(),
        args.listen.allow_default_keys,
    )
    .await?;
    let listener = tokio::net::TcpListener::bind(args.listen.addr()).await?;
    let feeds = whisk_examples::feeds::FeedSettings {
        enabled: args.feeds,
        ..Default::default()
    };
    let settings = ControllerSettings {
        id: args.id,
        config,
        balancer,
        scheduler: args.scheduler.scheduler,
        invoker_idle_timeout: Duration::from_secs(args.invoker_idle_timeout),
        feeds,
        serve,
    };
    let process = ControllerProcess::start_with(store, bus, listener, settings).await?;
    let url = process.server.url();
    say(&format!(
        "whisk controller{} listening on {url} (Kafka {}, CouchDB databases {}*, scheduler {})\n\
         invokers: curl {url}/invokers\n\
         wsk property set --apihost {url} --auth {GUEST_KEY}",
        args.id, args.kafka.kafka_brokers, args.couch.couchdb_prefix, args.scheduler.scheduler
    ));
    terminated().await?;
    say("stopping");
    invalidations.abort();
    process.shutdown().await;
    Ok(())
}
