//! Command-line pieces shared by the example binaries (flattened into each one's flags), so
//! every binary spells a setting the same way.

use crate::server::{ServeSettings, Tls};
use crate::standalone::StoreBackend;
use whisk_core::api::RequestLimits;
use whisk_core::store::retention::{Retention, RetentionPolicy};
use whisk_store::CouchConfig;

/// How to reach CouchDB: `--couchdb-url`, `--couchdb-user`, `--couchdb-password`,
/// `--couchdb-prefix`.
#[derive(clap::Args, Debug, Clone)]
pub struct CouchArgs {
    /// CouchDB URL (credentials may be in the URL).
    #[arg(long, default_value = "http://127.0.0.1:5984")]
    pub couchdb_url: String,
    /// CouchDB admin user.
    #[arg(long, env = "WHISK_COUCHDB_USER")]
    pub couchdb_user: Option<String>,
    /// CouchDB admin password.
    #[arg(long, env = "WHISK_COUCHDB_PASSWORD", hide_env_values = true)]
    pub couchdb_password: Option<String>,
    /// Prefix of the CouchDB database names (OpenWhisk's db_prefix).
    #[arg(long, default_value = "whisk_local_")]
    pub couchdb_prefix: String,
}

impl CouchArgs {
    /// The CouchDB configuration these flags give.
    pub fn config(&self) -> CouchConfig {
        CouchConfig {
            url: self.couchdb_url.clone(),
            username: self.couchdb_user.clone(),
            password: self.couchdb_password.clone(),
            db_prefix: self.couchdb_prefix.clone(),
            ..CouchConfig::default()
        }
    }
}

/// The store backends `--store` names.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreKind {
    /// The embedded durable store under `--data-dir`.
    Embedded,
    /// Process memory (lost on exit).
    Memory,
    /// A CouchDB server at `--couchdb-url`, in OpenWhisk's layout.
    Couchdb,
}

/// `--store` and what each backend needs.
#[derive(clap::Args, Debug, Clone)]
pub struct StoreArgs {
    /// Where entities, activations and keys are kept.
    #[arg(long, value_enum, default_value_t = StoreKind::Embedded)]
    pub store: StoreKind,
    /// Directory of the embedded store (default: the user's data directory,
    /// e.g. ~/.local/share/whisk/standalone-<port>).
    #[arg(long)]
    pub data_dir: Option<std::path::PathBuf>,
    /// CouchDB settings for `--store couchdb`.
    #[command(flatten)]
    pub couch: CouchArgs,
}

impl StoreArgs {
    /// The backend these flags choose; the embedded store's default directory is named after
    /// `port`, so two platforms on one machine keep apart.
    pub fn backend(&self, port: u16) -> std::io::Result<StoreBackend> {
        Ok(match self.store {
            StoreKind::Memory => StoreBackend::Memory,
            StoreKind::Embedded => StoreBackend::Embedded(match &self.data_dir {
                Some(dir) => dir.clone(),
                None => dirs::data_dir()
                    .ok_or_else(|| {
                        std::io::Error::other("no user data directory; pass --data-dir")
                    })?
                    .join("whisk")
                    .join(format!("standalone-{port}")),
            }),
            StoreKind::Couchdb => StoreBackend::CouchDb(self.couch.config()),
        })
    }
}

/// Which scheduler the load balancer asks where each activation runs (`--scheduler`).
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum SchedulerChoice {
    /// OpenWhisk's sharding container pool balancer: each action has a home invoker and a
    /// fixed probe order ([`ShardingBalancer`](whisk_core::scheduler::ShardingBalancer)).
    Sharding,
    /// The usable invoker with the most free memory
    /// ([`LeastLoaded`](whisk_core::scheduler::LeastLoaded)); the default.
    #[default]
    LeastLoaded,
    /// whisk's warm-aware scheduler: an idle warm container first, then pack by action, then
    /// least loaded ([`WarmAware`](whisk_core::scheduler::WarmAware)).
    WarmAware,
}

impl SchedulerChoice {
    /// Every choice, in `--scheduler`'s order.
    pub const ALL: [SchedulerChoice; 3] = [
        SchedulerChoice::Sharding,
        SchedulerChoice::LeastLoaded,
        SchedulerChoice::WarmAware,
    ];

    /// The flag value naming this choice (`sharding`, `least-loaded`, `warm-aware`).
    pub fn name(self) -> &'static str {
        match self {
            SchedulerChoice::Sharding => "sharding",
            SchedulerChoice::LeastLoaded => "least-loaded",
            SchedulerChoice::WarmAware => "warm-aware",
        }
    }

    /// A fresh scheduler of this kind. `keep_alive` is how long the invokers keep an idle
    /// container (their idle timeout); only the warm-aware scheduler uses it.
    pub fn build(
        self,
        keep_alive: std::time::Duration,
    ) -> std::sync::Arc<dyn whisk_core::scheduler::Scheduler> {
        use whisk_core::scheduler::{LeastLoaded, ShardingBalancer, WarmAware};
        match self {
            SchedulerChoice::Sharding => std::sync::Arc::new(ShardingBalancer::default()),
            SchedulerChoice::LeastLoaded => std::sync::Arc::new(LeastLoaded),
            SchedulerChoice::WarmAware => std::sync::Arc::new(WarmAware::new(keep_alive)),
        }
    }
}

impl std::fmt::Display for SchedulerChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for SchedulerChoice {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|c| c.name() == s)
            .ok_or_else(|| {
                format!("unknown scheduler '{s}' (expected sharding, least-loaded or warm-aware)")
            })
    }
}

/// `--scheduler`.
#[derive(clap::Args, Debug, Clone, Copy)]
pub struct SchedulerArgs {
    /// Where the load balancer places activations: `sharding` (OpenWhisk's sharding
    /// balancer), `least-loaded` (most free memory) or `warm-aware` (idle warm container
    /// first, then pack by action, then least loaded).
    #[arg(long, value_enum, default_value_t = SchedulerChoice::LeastLoaded)]
    pub scheduler: SchedulerChoice,
}

/// `--activation-retention` and `--namespace-retention`.
#[derive(clap::Args, Debug, Clone)]
pub struct RetentionArgs {
    /// Activation retention of every namespace, e.g. `max-age=7d,max-count=10000,successful=false`.
    #[arg(long, default_value = "")]
    pub activation_retention: RetentionPolicy,
    /// Retention of one namespace, `NAMESPACE=POLICY` (repeatable), e.g. `guest=max-count=100`.
    #[arg(long, value_parser = namespace_retention)]
    pub namespace_retention: Vec<(String, RetentionPolicy)>,
}

impl RetentionArgs {
    /// The retention these flags give.
    pub fn retention(&self) -> Retention {
        Retention {
            default: self.activation_retention.clone(),
            namespaces: self.namespace_retention.iter().cloned().collect(),
        }
    }
}

/// Parses `NAMESPACE=POLICY`.
fn namespace_retention(s: &str) -> Result<(String, RetentionPolicy), String> {
    let (ns, policy) = s
        .split_once('=')
        .ok_or_else(|| format!("expected NAMESPACE=POLICY, got '{s}'"))?;
    Ok((ns.to_string(), policy.parse()?))
}

/// How to reach Kafka: `--kafka-brokers`, `--kafka-prefix`.
#[derive(clap::Args, Debug, Clone)]
pub struct KafkaArgs {
    /// Bootstrap brokers, `host:port[,host:port...]`.
    #[arg(long, default_value = "127.0.0.1:9092")]
    pub kafka_brokers: String,
    /// Prefix of every topic (and consumer group) name (OpenWhisk's `whisk.kafka.topics.prefix`).
    #[arg(long, default_value = "")]
    pub kafka_prefix: String,
    /// Longest time (ms) the broker may hold a fetch of the activation topics
    /// (`fetch.wait.max.ms`). Apache Kafka answers as soon as data arrives, so 100-500 costs
    /// nothing there; tansu sleeps it out, so keep it small on tansu (see the README).
    #[arg(long, default_value_t = 3)]
    pub kafka_fetch_wait_ms: u64,
    /// Partitions of the topics this process creates (OpenWhisk: 1).
    #[arg(long, default_value_t = 1)]
    pub kafka_partitions: i32,
}

impl KafkaArgs {
    /// Connects to the brokers (a clear error when none answers) as process `member` (e.g.
    /// `invoker0`): its consumers are static group members with that id, so a restarted
    /// process takes its topics back at once.
    pub async fn connect(&self, member: &str) -> std::io::Result<whisk_bus::KafkaBus> {
        let mut config = whisk_bus::KafkaConfig::new(&self.kafka_brokers)
            .with_topic_prefix(&self.kafka_prefix)
            .with_group_instance_id(member);
        config.fetch_wait_max = std::time::Duration::from_millis(self.kafka_fetch_wait_ms);
        config.partitions = self.kafka_partitions.max(1);
        whisk_bus::KafkaBus::connect(config)
            .await
            .map_err(std::io::Error::other)
    }
}

/// `--user-events`: OpenWhisk's user events on topic `events`.
#[derive(clap::Args, Debug, Clone, Copy, Default)]
pub struct UserEventsArgs {
    /// Publish OpenWhisk's user events on topic `events`: an `Activation` event per
    /// activation (invoker) and a `Metric` event per throttled request (controller).
    #[arg(long)]
    pub user_events: bool,
}

/// Where the REST API listens: `--port`, `--host`.
#[derive(clap::Args, Debug, Clone)]
pub struct ListenArgs {
    /// Port of the OpenWhisk REST API.
    #[arg(long, default_value_t = 3233)]
    pub port: u16,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: std::net::IpAddr,
    /// Serve on a non-loopback `--host` even while OpenWhisk's well-known guest or
    /// whisk.system key still opens the API (refused otherwise).
    #[arg(long)]
    pub allow_default_keys: bool,
    /// Serve HTTPS with this PEM certificate chain (server certificate first); needs
    /// `--tls-key`.
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    pub tls_cert: Option<std::path::PathBuf>,
    /// The PEM private key of `--tls-cert`.
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    pub tls_key: Option<std::path::PathBuf>,
    /// Largest request body in bytes (OpenWhisk: 50 MB); 413 beyond.
    #[arg(long, default_value_t = RequestLimits::default().max_body_bytes)]
    pub max_body_bytes: u64,
    /// Longest request path and query in bytes (OpenWhisk: 8 KB); 414 beyond.
    #[arg(long, default_value_t = RequestLimits::default().max_uri_bytes)]
    pub max_uri_bytes: usize,
    /// Most header fields in a request; 431 beyond.
    #[arg(long, default_value_t = RequestLimits::default().max_headers)]
    pub max_headers: usize,
    /// Largest total size of a request's header names and values in bytes; 431 beyond.
    #[arg(long, default_value_t = RequestLimits::default().max_header_bytes)]
    pub max_header_bytes: usize,
    /// Seconds from a request's head to its response (OpenWhisk: 65): 408 while the body is
    /// still arriving, else 503.
    #[arg(long, default_value_t = RequestLimits::default().request_timeout.as_secs())]
    pub request_timeout: u64,
    /// Seconds a client may take to send a request's head (and the TLS handshake), and a
    /// keep-alive connection may stay idle, before the connection is closed.
    #[arg(long, default_value_t = ServeSettings::default().header_read_timeout.as_secs())]
    pub header_read_timeout: u64,
    /// Most connections served at once (OpenWhisk's controller: 8192); beyond it new clients
    /// wait until one closes.
    #[arg(long, default_value_t = ServeSettings::default().max_connections)]
    pub max_connections: usize,
}

impl ListenArgs {
    /// The socket address.
    pub fn addr(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::new(self.host, self.port)
    }

    /// How the API is served: the TLS files read (an error naming the file when one cannot
    /// be used) and the request limits.
    pub fn serve_settings(&self) -> std::io::Result<ServeSettings> {
        let tls = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Some(Tls::from_pem_files(cert, key)?),
            _ => None,
        };
        Ok(ServeSettings {
            tls,
            limits: RequestLimits {
                max_body_bytes: self.max_body_bytes,
                max_uri_bytes: self.max_uri_bytes,
                max_headers: self.max_headers,
                max_header_bytes: self.max_header_bytes,
                request_timeout: std::time::Duration::from_secs(self.request_timeout),
            },
            header_read_timeout: std::time::Duration::from_secs(self.header_read_timeout),
            max_connections: self.max_connections,
        })
    }
}

/// Per-namespace throttles and the intra-container concurrency limit.
#[derive(clap::Args, Debug, Clone)]
pub struct LimitArgs {
    /// Action invocations per minute per namespace (429 beyond).
    #[arg(long, default_value_t = 60)]
    pub invokes_per_minute: u64,
    /// Activations in flight per namespace (429 beyond).
    #[arg(long, default_value_t = 30)]
    pub concurrent_invocations: u64,
    /// Trigger fires per minute per namespace (429 beyond).
    #[arg(long, default_value_t = 60)]
    pub fires_per_minute: u64,
    /// Highest intra-container concurrency (`limits.concurrency`) an action may set; nodejs
    /// actions then run that many activations at once in one container.
    #[arg(long, default_value_t = 1)]
    pub max_concurrency: u64,
}

impl LimitArgs {
    /// The per-namespace throttles.
    pub fn namespace_limits(&self) -> whisk_core::controller::NamespaceLimits {
        whisk_core::controller::NamespaceLimits {
            invocations_per_minute: self.invokes_per_minute,
            concurrent_invocations: self.concurrent_invocations,
            fires_per_minute: self.fires_per_minute,
        }
    }
}

/// The container pool of an invoker.
#[derive(clap::Args, Debug, Clone)]
pub struct PoolArgs {
    /// Memory for action containers, in MB (the pool's one capacity knob).
    #[arg(long, default_value_t = 2048)]
    pub user_memory: u64,
    /// Seconds an idle container is kept warm.
    #[arg(long, default_value_t = 600)]
    pub idle_timeout: u64,
    /// Seconds before an idle container is paused.
    #[arg(long, default_value_t = 10)]
    pub pause_grace: u64,
    /// Do not keep prewarmed containers (the manifest's stem cells).
    #[arg(long)]
    pub no_prewarm: bool,
    /// On SIGTERM or Ctrl-C: seconds the activations in flight may take to finish; those
    /// still running then are recorded as failed (`whisk internal error`).
    #[arg(long, default_value_t = 30)]
    pub drain_timeout: u64,
}

/// What runs the action containers: `--executor`, and the Docker daemon and network.
#[derive(clap::Args, Debug, Clone)]
pub struct ExecutorArgs {
    /// `process` (local runtime processes) or `docker` (OpenWhisk's runtime images and
    /// blackbox images, as Docker containers).
    #[arg(long, default_value = "process", value_parser = ["process", "docker"])]
    pub executor: String,
    /// The Docker daemon (default: `DOCKER_HOST`, else the local socket).
    #[arg(long)]
    pub docker_host: Option<String>,
    /// The Docker network action containers join; the invoker reaches them by their IP on it.
    #[arg(long, default_value = "bridge")]
    pub docker_network: String,
    /// `process` executor: keep the host's network for every container, so actions can call
    /// the platform's API (`__OW_API_HOST`) and any service the host reaches. Without it,
    /// Node.js, Python and blackbox actions run in a network namespace of their own (no
    /// network but their own loopback).
    #[arg(long)]
    pub action_host_network: bool,
}

impl ExecutorArgs {
    /// The executor chosen.
    pub fn choice(&self) -> crate::cluster::ExecutorChoice {
        match self.executor.as_str() {
            "docker" => crate::cluster::ExecutorChoice::Docker {
                host: self.docker_host.clone(),
                network: self.docker_network.clone(),
            },
            _ => crate::cluster::ExecutorChoice::Process {
                host_network: self.action_host_network,
            },
        }
    }
}

/// `--runtimes-manifest`.
#[derive(clap::Args, Debug, Clone)]
pub struct ManifestArgs {
    /// A runtime manifest in OpenWhisk's runtimes.json shape (default: the bundled one).
    #[arg(long)]
    pub runtimes_manifest: Option<std::path::PathBuf>,
}

impl ManifestArgs {
    /// The manifest: the file given, or the bundled one.
    pub fn manifest(&self) -> std::io::Result<whisk_core::entity::RuntimeManifest> {
        match &self.runtimes_manifest {
            Some(path) => whisk_core::entity::RuntimeManifest::from_file(path),
            None => Ok(whisk_core::entity::RuntimeManifest::default()),
        }
    }
}

/// Prints a line to stdout, ignoring a closed pipe (the process keeps running either way).
pub fn say(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}");
    let _ = out.flush();
}

/// A binary's exit: success, or the error printed to stderr (its message, not its debug
/// form) and exit code 1.
pub fn report(outcome: std::io::Result<()>) -> std::process::ExitCode {
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Logs to stderr at `RUST_LOG` (default `warn`).
pub fn init_tracing() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
}

/// Waits for Ctrl-C (SIGINT) or SIGTERM.
pub async fn terminated() -> std::io::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::ExecutorChoice;
    use clap::Parser;

    #[derive(Parser)]
    struct Args {
        #[command(flatten)]
        executor: ExecutorArgs,
    }

    fn choice(args: &[&str]) -> ExecutorChoice {
        let argv = std::iter::once("whisk").chain(args.iter().copied());
        Args::try_parse_from(argv).unwrap().executor.choice()
    }

    #[test]
    fn action_host_network_keeps_the_host_network_of_process_containers() {
        let process = |host_network| ExecutorChoice::Process { host_network };
        assert_eq!(choice(&[]), process(false));
        assert_eq!(choice(&[]), ExecutorChoice::default());
        assert_eq!(choice(&["--action-host-network"]), process(true));
        let docker = ExecutorChoice::Docker {
            host: None,
            network: "bridge".into(),
        };
        assert_eq!(choice(&["--executor", "docker"]), docker);
        assert!(Args::try_parse_from(["whisk", "--action-host-network=maybe"]).is_err());
    }
}
