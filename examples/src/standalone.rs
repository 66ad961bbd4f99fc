//! The standalone platform: a store (embedded durable, memory or CouchDB) behind an entity
//! cache, memory bus, process executor and one in-process invoker, behind the OpenWhisk REST
//! API. The same engines as a distributed platform; only the backends differ.

use crate::cluster::{seed_keys, ExecutorChoice, InvokerProcess, InvokerSettings};
use crate::server::{ServeSettings, Server};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use whisk_bus::MemoryBus;
use whisk_core::bus::MessageBus;
use whisk_core::controller::{Controller, ControllerConfig, NamespaceLimits};
use whisk_core::entity::{RuntimeManifest, SystemLimits};
use whisk_core::feeds::FeedProvider;
use whisk_core::invoker::pool::ContainerPool;
use whisk_core::loadbalancer::LoadBalancer;
use whisk_core::store::{CacheConfig, CachingStore, Retention, Store, StoreError};
use whisk_store::{CouchConfig, CouchStore, EmbeddedStore, MemoryStore};

/// Where the standalone platform keeps its entities, activations and identities.
#[derive(Debug, Clone, Default)]
pub enum StoreBackend {
    /// In process memory: everything is lost when the platform stops.
    #[default]
    Memory,
    /// The embedded durable store in this directory (the `whisk-standalone` default).
    Embedded(PathBuf),
    /// A CouchDB server, in OpenWhisk's layout.
    CouchDb(CouchConfig),
}

impl StoreBackend {
    /// Opens the backend (creating databases or files on first start).
    pub async fn open(&self) -> Result<Arc<dyn Store>, StoreError> {
        Ok(match self {
            StoreBackend::Memory => Arc::new(MemoryStore::new()),
            StoreBackend::Embedded(dir) => Arc::new(EmbeddedStore::open(dir)?),
            StoreBackend::CouchDb(config) => Arc::new(CouchStore::connect(config.clone()).await?),
        })
    }
}

/// Settings of the standalone platform.
#[derive(Debug, Clone)]
pub struct StandaloneConfig {
    /// Address to listen on (port 0 picks a free one).
    pub listen: SocketAddr,
    /// The invoker's memory for user containers, in MB.
    pub user_memory_mb: u64,
    /// Idle containers are removed after this long.
    pub idle_timeout: Duration,
    /// Default per-namespace throttles (OpenWhisk's 60 invokes/min, 30 concurrent, 60 fires/min).
    pub namespace_limits: NamespaceLimits,
    /// The runtime manifest (kinds and their stem cells).
    pub manifest: RuntimeManifest,
    /// Whether to keep the manifest's prewarmed stem cells.
    pub prewarm: bool,
    /// Idle containers are paused after this long.
    pub pause_grace: Duration,
    /// Highest `limits.concurrency` an action may set (OpenWhisk's default 1).
    pub max_concurrency: u64,
    /// The store (memory unless set; the binary defaults to the embedded store).
    pub store: StoreBackend,
    /// The entity and identity cache in front of the store.
    pub cache: CacheConfig,
    /// Which activation records are kept, and for how long.
    pub retention: Retention,
    /// How often expired activation records are deleted (when `retention` bounds any).
    pub retention_sweep: Duration,
    /// What runs the containers (default: local processes).
    pub executor: ExecutorChoice,
    /// The invoker's unique name, part of its container names (see
    /// [`InvokerSettings::unique_name`]); default empty.
    pub unique_name: String,
    /// Whether OpenWhisk's user events are published on the bus's topic `events`
    /// (see [`Standalone::bus`]); default off.
    pub user_events: bool,
    /// The feed provider (on by default, on the system clock).
    pub feeds: crate::feeds::FeedSettings,
    /// Which scheduler places activations (default: least loaded; the warm-aware one assumes
    /// idle containers live [`idle_timeout`](Self::idle_timeout)).
    pub scheduler: crate::cli::SchedulerChoice,
    /// Whether a non-loopback [`listen`](Self::listen) address may be served while the
    /// well-known default keys still open the API (see
    /// [`check_default_keys`](crate::cluster::check_default_keys)); default false.
    pub allow_default_keys: bool,
    /// How long [`Standalone::shutdown`] lets requests and activations in flight finish
    /// before it records the activations still running as failed; default 30 s.
    pub drain: Duration,
    /// How the API is served: TLS and the request limits (default: plain HTTP, OpenWhisk's
    /// limits).
    pub serve: ServeSettings,
}

impl Default for StandaloneConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 3233)),
            user_memory_mb: 2048,
            idle_timeout: Duration::from_secs(600),
            namespace_limits: NamespaceLimits::default(),
            manifest: RuntimeManifest::default(),
            prewarm: true,
            pause_grace: Duration::from_secs(10),
            max_concurrency: 1,
            store: StoreBackend::default(),
            cache: CacheConfig::default(),
            retention: Retention::default(),
            retention_sweep: Duration::from_secs(60),
            executor: ExecutorChoice::default(),
            unique_name: String::new(),
            user_events: false,
            feeds: crate::feeds::FeedSettings::default(),
            scheduler: crate::cli::SchedulerChoice::default(),
            allow_default_keys: false,
            drain: Duration::from_secs(30),
            serve: ServeSettings::default(),
        }
    }
}

/// A running standalone platform.
pub struct Standalone {
    /// Where the API listens.
    pub addr: SocketAddr,
    store: Arc<dyn Store>,
    bus: Arc<dyn MessageBus>,
    invoker: InvokerProcess,
    server: Server,
    tasks: Vec<JoinHandle<()>>,
    feeds: Option<Arc<FeedProvider>>,
    drain: Duration,
}

impl Standalone {
    /// Composes the platform and starts serving.
    pub async fn start(config: StandaloneConfig) -> std::io::Result<Self> {
        let backend = config.store.open().await.map_err(std::io::Error::other)?;
        let store: Arc<dyn Store> = Arc::new(CachingStore::new(backend, config.cache.clone()));
        seed_keys(store.as_ref())
            .await
            .map_err(std::io::Error::other)?;
        crate::cluster::check_default_keys(
            store.as_ref(),
            config.listen,
            config.allow_default_keys,
        )
        .await?;
        let bus: Arc<dyn MessageBus> = Arc::new(MemoryBus::new());
        let listener = tokio::net::TcpListener::bind(config.listen).await?;
        let addr = listener.local_addr()?;

        let lb = LoadBalancer::new(bus.clone(), config.scheduler.build(config.idle_timeout), 0);
        lb.add_invoker(0, config.user_memory_mb);
        let lb_task = lb.start().await.map_err(std::io::Error::other)?;

        let retention = Arc::new(config.retention.clone());
        // One registry for the controller and the invoker, served at `/metrics`.
        let metrics = Arc::new(whisk_core::metrics::Metrics::new());
        let invoker = InvokerProcess::start(
            store.clone(),
            bus.clone(),
            InvokerSettings {
                id: 0,
                user_memory_mb: config.user_memory_mb,
                idle_timeout: config.idle_timeout,
                pause_grace: config.pause_grace,
                manifest: config.manifest.clone(),
                prewarm: config.prewarm,
                api_host: format!("{}://{addr}", config.serve.scheme()),
                retention: retention.clone(),
                // Actions must not read the platform's database.
                hidden: match &config.store {
                    StoreBackend::Embedded(dir) => vec![dir.clone()],
                    _ => Vec::new(),
                },
                executor: config.executor.clone(),
                unique_name: config.unique_name.clone(),
                metrics: metrics.clone(),
                user_events: config.user_events,
                ..InvokerSettings::default()
            },
        )
        .await?;
        let mut tasks = vec![lb_task];
        if retention.bounded() {
            tasks.push(
                retention
                    .clone()
                    .spawn_sweeper(store.clone(), config.retention_sweep),
            );
        }

        let mut limits = SystemLimits::default();
        limits.concurrency.max = config.max_concurrency.max(1);
        let controller_config = ControllerConfig {
            limits,
            namespace_limits: config.namespace_limits,
            manifest: config.manifest.clone(),
            retention,
            metrics,
            user_events: config.user_events,
            ..ControllerConfig::default()
        };
        let controller = Controller::new(store.clone(), lb, controller_config);
        let feeds = crate::feeds::start(controller.clone(), &config.feeds).await?;
        let metrics_pool = invoker.pool.clone();
        let app = crate::feeds::router(controller, feeds.as_ref(), &config.serve).route(
            "/invokers/0/pool",
            axum::routing::get(move || {
                let pool = metrics_pool.clone();
                async move { axum::Json(pool.metrics()) }
            }),
        );
        let server = Server::start_with(listener, app, &config.serve)?;
        Ok(Self {
            addr,
            store,
            bus,
            invoker,
            server,
            tasks,
            feeds,
            drain: config.drain,
        })
    }

    /// The base URL of the API (`https://` when it serves TLS).
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// The platform's store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The platform's (in-memory) message bus; subscribe to topic `events` for the user
    /// events.
    pub fn bus(&self) -> &Arc<dyn MessageBus> {
        &self.bus
    }

    /// The invoker's container pool.
    pub fn pool(&self) -> &Arc<ContainerPool> {
        &self.invoker.pool
    }

    /// The feed provider, unless disabled.
    pub fn feeds(&self) -> Option<&Arc<FeedProvider>> {
        self.feeds.as_ref()
    }

    /// Graceful shutdown: stops accepting, lets requests and activations in flight finish
    /// within [`StandaloneConfig::drain`], records the activations still running then as
    /// failed (`whisk internal error`), and removes every container (no runtime process is
    /// left behind).
    pub async fn shutdown(self) {
        let deadline = tokio::time::Instant::now() + self.drain;
        self.server.shutdown_within(self.drain).await;
        if let Some(feeds) = &self.feeds {
            feeds.shutdown().await;
        }
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        // The load balancer keeps taking acknowledgements while the invoker drains.
        self.invoker.shutdown_within(left).await;
        for t in self.tasks {
            t.abort();
            // Once the task is gone, so are its handles on the store.
            let _ = t.await;
        }
    }
}
