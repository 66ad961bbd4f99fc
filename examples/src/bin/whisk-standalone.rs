//! Run with `cargo run --release --bin whisk-standalone` (then try the printed curl line).
//!
//! A whole OpenWhisk-compatible platform in one process: embedded durable store (or memory,
//! or CouchDB), memory bus, process executor and one invoker, on OpenWhisk standalone's port
//! 3233 with its `guest` key.

use clap::Parser;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use whisk_core::controller::NamespaceLimits;
use whisk_core::entity::identity::GUEST_KEY;
use whisk_core::entity::RuntimeManifest;
use whisk_examples::cli::{RetentionArgs, StoreArgs};
use whisk_examples::standalone::{Standalone, StandaloneConfig, StoreBackend};

/// whisk standalone: an OpenWhisk-compatible serverless platform in one process.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Port of the OpenWhisk REST API.
    #[arg(long, default_value_t = 3233)]
    port: u16,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// Memory for action containers, in MB (the pool's one capacity knob).
    #[arg(long, default_value_t = 2048)]
    user_memory: u64,
    /// Seconds an idle container is kept warm.
    #[arg(long, default_value_t = 600)]
    idle_timeout: u64,
    /// Action invocations per minute per namespace (429 beyond).
    #[arg(long, default_value_t = 60)]
    invokes_per_minute: u64,
    /// Activations in flight per namespace (429 beyond).
    #[arg(long, default_value_t = 30)]
    concurrent_invocations: u64,
    /// Trigger fires per minute per namespace (429 beyond).
    #[arg(long, default_value_t = 60)]
    fires_per_minute: u64,
    /// A runtime manifest in OpenWhisk's runtimes.json shape (default: the bundled one).
    #[arg(long)]
    runtimes_manifest: Option<std::path::PathBuf>,
    /// Do not keep prewarmed containers (the manifest's stem cells).
    #[arg(long)]
    no_prewarm: bool,
    /// Seconds before an idle container is paused.
    #[arg(long, default_value_t = 10)]
    pause_grace: u64,
    /// Highest intra-container concurrency (`limits.concurrency`) an action may set; nodejs
    /// actions then run that many activations at once in one container.
    #[arg(long, default_value_t = 1)]
    max_concurrency: u64,
    /// Where entities, activations and keys are kept.
    #[command(flatten)]
    store: StoreArgs,
    /// Which activation records are kept.
    #[command(flatten)]
    retention: RetentionArgs,
}

/// Prints a line to stdout, ignoring a closed pipe.
fn say(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}");
    let _ = out.flush();
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let args = Args::parse();
    let store = args.store.backend(args.port)?;
    let platform = Standalone::start(StandaloneConfig {
        store: store.clone(),
        retention: args.retention.retention(),
        listen: SocketAddr::new(args.host, args.port),
        user_memory_mb: args.user_memory,
        idle_timeout: Duration::from_secs(args.idle_timeout),
        manifest: match &args.runtimes_manifest {
            Some(path) => RuntimeManifest::from_file(path)?,
            None => RuntimeManifest::default(),
        },
        prewarm: !args.no_prewarm,
        pause_grace: Duration::from_secs(args.pause_grace),
        max_concurrency: args.max_concurrency,
        namespace_limits: NamespaceLimits {
            invocations_per_minute: args.invokes_per_minute,
            concurrent_invocations: args.concurrent_invocations,
            fires_per_minute: args.fires_per_minute,
        },
        ..StandaloneConfig::default()
    })
    .await?;
    let url = format!("http://{}", platform.addr);
    // Output may go to a closed pipe; the platform keeps running either way.
    say(&format!(
        "whisk standalone listening on {url} (namespace guest, {} MB for containers)\n\
         try:\n  \
         curl -u {GUEST_KEY} -X PUT -H 'Content-Type: application/json' \\\n    \
         -d '{{\"exec\":{{\"kind\":\"nodejs:20\",\"code\":\"function main(p) {{ return {{greeting: \\\"hello \\\" + (p.name || \\\"world\\\")}}; }}\"}}}}' \\\n    \
         {url}/api/v1/namespaces/_/actions/hello\n  \
         curl -u {GUEST_KEY} -X POST '{url}/api/v1/namespaces/_/actions/hello?blocking=true&result=true' \\\n    \
         -H 'Content-Type: application/json' -d '{{\"name\":\"whisk\"}}'\n\
         or point the wsk CLI at it: wsk property set --apihost {url} --auth {GUEST_KEY}",
        args.user_memory
    ));
    say(&match &store {
        StoreBackend::Memory => "store: memory (nothing is kept after exit)".to_string(),
        StoreBackend::Embedded(dir) => format!("store: embedded, in {}", dir.display()),
        StoreBackend::CouchDb(c) => format!("store: CouchDB, databases {}*", c.db_prefix),
    });

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    say("stopping: removing containers");
    platform.shutdown().await;
    Ok(())
}
