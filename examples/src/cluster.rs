//! The pieces a platform is composed of, shared by the standalone platform and the cluster
//! binaries: an invoker process (container pool + invoker on the bus), a controller process
//! (load balancer with invoker health + controller + REST API), the REST API server, and the
//! seed keys.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use whisk_core::bus::MessageBus;
use whisk_core::controller::{Controller, ControllerConfig};
use whisk_core::entity::identity::{AuthKey, SubjectDoc, GUEST_KEY, SYSTEM_KEY};
use whisk_core::entity::{RuntimeManifest, SystemLimits};
use whisk_core::executor::ContainerExecutor;
use whisk_core::invoker::pool::{ContainerPool, PoolConfig};
use whisk_core::invoker::{Invoker, InvokerConfig};
use whisk_core::loadbalancer::{LoadBalancer, LoadBalancerConfig};
use whisk_core::metrics::Metrics;
use whisk_core::runtime::RuntimeClient;
use whisk_core::store::{Collection, Retention, Store, StoreError};
use whisk_exec::docker::{DockerConfig, DockerExecutor};
use whisk_exec::ProcessExecutor;

pub use crate::server::Server;

/// Which executor runs an invoker's containers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecutorChoice {
    /// Local runtime processes (sandboxed; see the README's "Isolation").
    Process {
        /// Containers keep the host's network, so actions can call the platform's API
        /// (`__OW_API_HOST`); otherwise those of Node.js, Python and blackbox actions get a
        /// network namespace of their own ([`ProcessExecutor::with_host_network`]).
        host_network: bool,
    },
    /// Docker containers running the manifest's images (OpenWhisk's runtime images) and
    /// blackbox actions' own images, on `network` of the daemon at `host` (`None`:
    /// `DOCKER_HOST` or the local default socket).
    Docker {
        /// The daemon's socket, e.g. `unix:///var/run/docker.sock`.
        host: Option<String>,
        /// The Docker network the containers join (the invoker must reach their IPs).
        network: String,
    },
}

impl Default for ExecutorChoice {
    /// Local processes without the host's network.
    fn default() -> Self {
        Self::Process {
            host_network: false,
        }
    }
}

/// Settings of one invoker.
#[derive(Debug, Clone)]
pub struct InvokerSettings {
    /// Its id (`invoker{id}` topic).
    pub id: u32,
    /// Memory for its containers, in MB.
    pub user_memory_mb: u64,
    /// Idle containers are removed after this long.
    pub idle_timeout: Duration,
    /// Idle containers are paused after this long.
    pub pause_grace: Duration,
    /// The runtime manifest (kinds and their stem cells).
    pub manifest: RuntimeManifest,
    /// Whether to keep the manifest's prewarmed stem cells.
    pub prewarm: bool,
    /// The API host actions call back (`__OW_API_HOST`).
    pub api_host: String,
    /// Which activation records are kept.
    pub retention: Arc<Retention>,
    /// Paths actions must not see (e.g. the platform's data directory).
    pub hidden: Vec<PathBuf>,
    /// How often it pings the controllers (OpenWhisk: 1 s).
    pub ping_interval: Duration,
    /// What runs the containers.
    pub executor: ExecutorChoice,
    /// OpenWhisk's `--uniqueName`: part of its container names (`wsk{unique_name}{id}_...`),
    /// so invokers sharing a Docker daemon never remove each other's containers.
    pub unique_name: String,
    /// Where its activations and pool are counted (the standalone platform shares one
    /// registry with its controller).
    pub metrics: Arc<Metrics>,
    /// Whether it publishes an `Activation` user event per activation on topic `events`.
    pub user_events: bool,
}

impl Default for InvokerSettings {
    fn default() -> Self {
        Self {
            id: 0,
            user_memory_mb: 2048,
            idle_timeout: Duration::from_secs(600),
            pause_grace: Duration::from_secs(10),
            manifest: RuntimeManifest::default(),
            prewarm: true,
            api_host: "http://127.0.0.1:3233".into(),
            retention: Arc::default(),
            hidden: Vec::new(),
            ping_interval: InvokerConfig::default().ping_interval,
            executor: ExecutorChoice::default(),
            unique_name: String::new(),
            metrics: Arc::default(),
            user_events: false,
        }
    }
}

/// A running invoker: its pool and the task consuming `invoker{id}`.
pub struct InvokerProcess {
    /// The invoker.
    pub invoker: Arc<Invoker>,
    /// Its container pool.
    pub pool: Arc<ContainerPool>,
    /// The consuming task.
    pub task: JoinHandle<()>,
}

impl InvokerProcess {
    /// Starts an invoker on `store` and `bus` running actions on the executor `settings`
    /// choose. A Docker invoker first removes the containers a previous run of the same
    /// invoker id left behind (named `wsk{id}_...`), as OpenWhisk's invoker does.
    pub async fn start(
        store: Arc<dyn Store>,
        bus: Arc<dyn MessageBus>,
        settings: InvokerSettings,
    ) -> std::io::Result<Self> {
        let stem_cells = if settings.prewarm {
            settings.manifest.stem_cells()
        } else {
            Vec::new()
        };
        let pool_config = PoolConfig {
            invoker_id: settings.id,
            unique_name: settings.unique_name.clone(),
            user_memory_mb: settings.user_memory_mb,
            idle_timeout: settings.idle_timeout,
            pause_grace: settings.pause_grace,
            stem_cells,
            api_host: settings.api_host.clone(),
            ..PoolConfig::default()
        };
        let executor = executor(&settings, &pool_config.container_prefix()).await?;
        let truncation = SystemLimits::default().result_truncation_bytes as usize;
        let pool = ContainerPool::new(executor, RuntimeClient::new(truncation), pool_config);
        let config = InvokerConfig {
            retention: settings.retention,
            ping_interval: settings.ping_interval,
            metrics: settings.metrics,
            user_events: settings.user_events,
        };
        let invoker = Invoker::with_config(store, bus, pool.clone(), config);
        let task = invoker.start().await.map_err(std::io::Error::other)?;
        Ok(Self {
            invoker,
            pool,
            task,
        })
    }

    /// Stops at once: activations in flight are recorded as failed, every container removed.
    pub async fn shutdown(self) {
        self.shutdown_within(Duration::ZERO).await;
    }

    /// Graceful shutdown: lets the activations in flight (and any still arriving) finish
    /// for up to `drain`, records those still running as failed
    /// ([`Invoker::drain`](whisk_core::invoker::Invoker::drain)), stops consuming and
    /// removes every container.
    pub async fn shutdown_within(self, drain: Duration) {
        self.invoker.drain(drain).await;
        self.task.abort();
        let _ = self.task.await;
        // What started between the drain's end and the abort.
        self.invoker.drain(Duration::ZERO).await;
        self.pool.shutdown().await;
    }
}

/// The executor `settings` choose, ready to start containers.
async fn executor(
    settings: &InvokerSettings,
    container_prefix: &str,
) -> std::io::Result<Arc<dyn ContainerExecutor>> {
    match &settings.executor {
        ExecutorChoice::Process { host_network } => {
            let mut executor = ProcessExecutor::new()?
                .with_manifest(&settings.manifest)
                .with_host_network(*host_network);
            for path in &settings.hidden {
                executor = executor.with_hidden(path);
            }
            Ok(Arc::new(executor))
        }
        ExecutorChoice::Docker { host, network } => {
            let config = DockerConfig {
                host: host.clone(),
                network: network.clone(),
                name_prefix: format!("{container_prefix}_"),
                manifest: settings.manifest.clone(),
                user_memory_mb: settings.user_memory_mb,
                ..DockerConfig::default()
            };
            let executor = DockerExecutor::connect(config)
                .await
                .map_err(std::io::Error::other)?;
            executor.cleanup().await.map_err(std::io::Error::other)?;
            Ok(Arc::new(executor))
        }
    }
}

/// Settings of one controller ([`ControllerProcess::start_with`]).
#[derive(Clone)]
pub struct ControllerSettings {
    /// Its id (its acknowledgements arrive on `completed{id}`).
    pub id: u32,
    /// The controller's configuration (its `id` is overridden by [`id`](Self::id)).
    pub config: ControllerConfig,
    /// The load balancer's settings (invoker health, forced completions).
    pub balancer: LoadBalancerConfig,
    /// Which scheduler places activations (default: least loaded).
    pub scheduler: crate::cli::SchedulerChoice,
    /// How long the invokers keep an idle container (their idle timeout, default 10 minutes,
    /// the invokers' default): the warm-aware scheduler's keep-alive.
    pub invoker_idle_timeout: Duration,
    /// The feed provider (default: off).
    pub feeds: crate::feeds::FeedSettings,
    /// How the API is served: TLS and the request limits (default: plain HTTP, OpenWhisk's
    /// limits).
    pub serve: crate::server::ServeSettings,
}

impl Default for ControllerSettings {
    fn default() -> Self {
        Self {
            id: 0,
            config: ControllerConfig::default(),
            balancer: LoadBalancerConfig::default(),
            scheduler: crate::cli::SchedulerChoice::default(),
            invoker_idle_timeout: InvokerSettings::default().idle_timeout,
            feeds: crate::feeds::FeedSettings {
                enabled: false,
                ..Default::default()
            },
            serve: crate::server::ServeSettings::default(),
        }
    }
}

/// A running controller: load balancer (with invoker health), controller and REST API.
pub struct ControllerProcess {
    /// The controller.
    pub controller: Arc<Controller>,
    /// The REST API server.
    pub server: Server,
    tasks: Vec<JoinHandle<()>>,
    feeds: Option<Arc<whisk_core::feeds::FeedProvider>>,
}

impl ControllerProcess {
    /// Starts controller `id` on `store` and `bus`, serving the API on `listener`. Invokers
    /// are discovered from their pings and used once healthy.
    pub async fn start(
        store: Arc<dyn Store>,
        bus: Arc<dyn MessageBus>,
        id: u32,
        config: ControllerConfig,
        balancer: LoadBalancerConfig,
        listener: tokio::net::TcpListener,
    ) -> std::io::Result<Self> {
        let no_feeds = crate::feeds::FeedSettings {
            enabled: false,
            ..Default::default()
        };
        Self::start_with_feeds(store, bus, id, config, balancer, listener, &no_feeds).await
    }

    /// [`start`](Self::start), also running the feed provider when `feeds` enable it (on one
    /// controller of a cluster only: each provider fires every registration).
    pub async fn start_with_feeds(
        store: Arc<dyn Store>,
        bus: Arc<dyn MessageBus>,
        id: u32,
        config: ControllerConfig,
        balancer: LoadBalancerConfig,
        listener: tokio::net::TcpListener,
        feeds: &crate::feeds::FeedSettings,
    ) -> std::io::Result<Self> {
        let settings = ControllerSettings {
            id,
            config,
            balancer,
            feeds: feeds.clone(),
            ..ControllerSettings::default()
        };
        Self::start_with(store, bus, listener, settings).await
    }

    /// Starts a controller with every setting in `settings` (its scheduler among them),
    /// serving the API on `listener`.
    pub async fn start_with(
        store: Arc<dyn Store>,
        bus: Arc<dyn MessageBus>,
        listener: tokio::net::TcpListener,
        settings: ControllerSettings,
    ) -> std::io::Result<Self> {
        let ControllerSettings {
            id,
            config,
            balancer,
            scheduler,
            invoker_idle_timeout,
            feeds,
            serve,
        } = settings;
        let scheduler = scheduler.build(invoker_idle_timeout);
        let lb = LoadBalancer::with_config(bus, scheduler, id, balancer);
        let mut tasks = vec![lb.start().await.map_err(std::io::Error::other)?];
        let retention = config.retention.clone();
        if retention.bounded() {
            tasks.push(retention.spawn_sweeper(store.clone(), Duration::from_secs(60)));
        }
        let controller = Controller::new(store, lb, ControllerConfig { id, ..config });
        controller.prepare().await.map_err(std::io::Error::other)?;
        let feeds = crate::feeds::start(controller.clone(), &feeds).await?;
        let app = crate::feeds::router(controller.clone(), feeds.as_ref(), &serve);
        let server = Server::start_with(listener, app, &serve)?;
        Ok(Self {
            controller,
            server,
            tasks,
            feeds,
        })
    }

    /// Stops serving and consuming.
    pub async fn shutdown(self) {
        self.server.shutdown().await;
        if let Some(feeds) = &self.feeds {
            feeds.shutdown().await;
        }
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// The subjects every platform starts with, and their well-known keys (OpenWhisk
/// standalone's).
const DEFAULT_SUBJECTS: [(&str, &str); 2] = [("guest", GUEST_KEY), ("whisk.system", SYSTEM_KEY)];

/// Refuses to serve the API on `listen` when it is not a loopback address while OpenWhisk's
/// well-known `guest` or `whisk.system` key (published in OpenWhisk's sources) still opens it,
/// unless `allow` (`--allow-default-keys`). Blocked or replaced default subjects (the `user`
/// admin commands) pass. Run it before binding, so a refused start never listens.
pub async fn check_default_keys(
    store: &dyn Store,
    listen: SocketAddr,
    allow: bool,
) -> std::io::Result<()> {
    if allow || listen.ip().is_loopback() {
        return Ok(());
    }
    for (subject, key) in DEFAULT_SUBJECTS {
        let key = AuthKey::parse(key).expect("well-formed key");
        let open = store
            .identity(&key.uuid, &key.key)
            .await
            .map_err(std::io::Error::other)?
            .is_some();
        if open {
            return Err(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                format!(
                    "refusing to serve on {listen}: the well-known {subject} key still opens the \
                     API, and anyone who can reach this address knows it. Block or replace the \
                     default subjects (`user block guest whisk.system`), listen on a loopback \
                     address, or pass --allow-default-keys"
                ),
            ));
        }
    }
    Ok(())
}

/// Creates the `guest` and `whisk.system` subjects with OpenWhisk standalone's keys unless
/// they exist (keys changed by an operator are kept).
pub async fn seed_keys(store: &dyn Store) -> Result<(), StoreError> {
    for (subject, key) in DEFAULT_SUBJECTS {
        let key = AuthKey::parse(key).expect("well-formed key");
        let body = serde_json::to_value(SubjectDoc::single(subject, &key)).expect("serialises");
        match store.put(Collection::Subjects, subject, body, None).await {
            Ok(_) | Err(StoreError::AlreadyExists) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
