//! Run with `cargo run --release --bin whisk-standalone` (then try the printed curl line).
//!
//! A whole OpenWhisk-compatible platform in one process: embedded durable store (or memory,
//! or CouchDB), memory bus, process (or Docker) executor and one invoker, on OpenWhisk standalone's port
//! 3233 with its `guest` key.

use clap::Parser;
use std::time::Duration;
use whisk_core::entity::identity::GUEST_KEY;
use whisk_examples::admin_cli::{self, AdminCommand};
use whisk_examples::cli::{
    init_tracing, report, say, terminated, ExecutorArgs, LimitArgs, ListenArgs, ManifestArgs,
    PoolArgs, RetentionArgs, SchedulerArgs, StoreArgs, UserEventsArgs,
};
use whisk_examples::standalone::{Standalone, StandaloneConfig, StoreBackend};

/// jemalloc: the request path allocates a lot, and glibc malloc took a quarter of the
/// platform's CPU under load (README, "Load harness").
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// whisk standalone: an OpenWhisk-compatible serverless platform in one process.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Where the REST API listens.
    #[command(flatten)]
    listen: ListenArgs,
    /// The container pool.
    #[command(flatten)]
    pool: PoolArgs,
    /// What runs the containers.
    #[command(flatten)]
    executor: ExecutorArgs,
    /// Where activations are placed.
    #[command(flatten)]
    scheduler: SchedulerArgs,
    /// Throttles and limits.
    #[command(flatten)]
    limits: LimitArgs,
    /// The runtime manifest.
    #[command(flatten)]
    manifest: ManifestArgs,
    /// Where entities, activations and keys are kept.
    #[command(flatten)]
    store: StoreArgs,
    /// Which activation records are kept.
    #[command(flatten)]
    retention: RetentionArgs,
    /// OpenWhisk's user events.
    #[command(flatten)]
    events: UserEventsArgs,
    /// Do not run the feed provider (the alarms, Kafka and CouchDB event sources).
    #[arg(long)]
    no_feeds: bool,
    /// Administration of the store instead of running the platform.
    #[command(subcommand)]
    command: Option<AdminCommand>,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    report(run().await)
}

async fn run() -> std::io::Result<()> {
    init_tracing();
    let args: Args = admin_cli::parse_args(admin_cli::STANDALONE_GLOBAL_ARGS);
    let store = args.store.backend(args.listen.port)?;
    if let Some(cmd) = &args.command {
        std::process::exit(admin_cli::run_on_backend(&store, cmd).await);
    }
    let serve = args.listen.serve_settings()?;
    let platform = Standalone::start(StandaloneConfig {
        store: store.clone(),
        retention: args.retention.retention(),
        listen: args.listen.addr(),
        user_memory_mb: args.pool.user_memory,
        idle_timeout: Duration::from_secs(args.pool.idle_timeout),
        manifest: args.manifest.manifest()?,
        prewarm: !args.pool.no_prewarm,
        pause_grace: Duration::from_secs(args.pool.pause_grace),
        max_concurrency: args.limits.max_concurrency,
        namespace_limits: args.limits.namespace_limits(),
        executor: args.executor.choice(),
        user_events: args.events.user_events,
        scheduler: args.scheduler.scheduler,
        feeds: whisk_examples::feeds::FeedSettings {
            enabled: !args.no_feeds,
            ..Default::default()
        },
        drain: Duration::from_secs(args.pool.drain_timeout),
        allow_default_keys: args.listen.allow_default_keys,
        serve,
        ..StandaloneConfig::default()
    })
    .await?;
    let url = platform.url();
    say(&format!(
        "whisk standalone listening on {url} (namespace guest, {} MB for containers, scheduler {})\n\
         try:\n  \
         curl -u {GUEST_KEY} -X PUT -H 'Content-Type: application/json' \\\n    \
         -d '{{\"exec\":{{\"kind\":\"nodejs:20\",\"code\":\"function main(p) {{ return {{greeting: \\\"hello \\\" + (p.name || \\\"world\\\")}}; }}\"}}}}' \\\n    \
         {url}/api/v1/namespaces/_/actions/hello\n  \
         curl -u {GUEST_KEY} -X POST '{url}/api/v1/namespaces/_/actions/hello?blocking=true&result=true' \\\n    \
         -H 'Content-Type: application/json' -d '{{\"name\":\"whisk\"}}'\n\
         or point the wsk CLI at it: wsk property set --apihost {url} --auth {GUEST_KEY}",
        args.pool.user_memory, args.scheduler.scheduler
    ));
    say(&match &store {
        StoreBackend::Memory => "store: memory (nothing is kept after exit)".to_string(),
        StoreBackend::Embedded(dir) => format!("store: embedded, in {}", dir.display()),
        StoreBackend::CouchDb(c) => format!("store: CouchDB, databases {}*", c.db_prefix),
    });

    terminated().await?;
    say(&format!(
        "stopping: no new requests; activations in flight may finish within {} s, then containers are removed",
        args.pool.drain_timeout
    ));
    platform.shutdown().await;
    Ok(())
}
