//! Replays a [`Trace`] against simulated invokers in virtual time.
//!
//! The platform is the real one: a [`LoadBalancer`] asking the [`Scheduler`] under test,
//! [`Invoker`]s consuming the bus, and one [`ContainerPool`] per invoker with the keep-alive
//! policy under test. Only the containers are virtual ([`SimExecutor`]: creation, `/init` and
//! `/run` take the trace's times on Tokio's clock). The run happens on a current-thread Tokio
//! runtime with paused time, which jumps ahead whenever every task waits, so an hour of trace
//! replays in seconds; activation times ([`now_ms`](crate::message::now_ms)) follow the
//! virtual clock.

use super::executor::{action_code, run_args, SimExecutor};
use super::trace::Trace;
use crate::bus::MessageBus;
use crate::entity::exec::{ExecPut, StemCell};
use crate::entity::limits::ActionLimitsPut;
use crate::entity::{
    ActivationId, AuthKey, Identity, RuntimeManifest, SystemLimits, WhiskAction, WhiskActionPut,
};
use crate::invoker::pool::{ContainerPool, KeepAlive, PoolConfig, PoolMetrics, QueueOrder};
use crate::invoker::{Invoker, InvokerConfig};
use crate::loadbalancer::{Completed, LoadBalancer};
use crate::message::{ActivationMessage, ControllerInstanceId, TransactionId};
use crate::runtime::RuntimeClient;
use crate::scheduler::Scheduler;
use crate::store::{Collection, Store};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// The namespace the simulated actions live in.
pub const SIM_NAMESPACE: &str = "sim";

/// What to simulate the trace on.
#[derive(Clone)]
pub struct SimConfig {
    /// Number of invokers.
    pub invokers: u32,
    /// User memory of each invoker, MB.
    pub invoker_memory_mb: u64,
    /// Time to create a container before its `/init` (the executor's start).
    pub container_create: Duration,
    /// The pools' fixed idle timeout (used when `keep_alive` gives none).
    pub idle_timeout: Duration,
    /// Makes the keep-alive policy of each invoker's pool (one per pool: policies learn).
    pub keep_alive: Option<Arc<dyn Fn() -> Arc<dyn KeepAlive> + Send + Sync>>,
    /// Stem cells per invoker (OpenWhisk's prewarm configuration).
    pub stem_cells: Vec<StemCell>,
    /// How often idle memory is sampled for the memory-time figure.
    pub sample_every: Duration,
    /// The order in which each pool serves runs waiting for memory.
    pub queue: QueueOrder,
}

impl std::fmt::Debug for SimConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimConfig")
            .field("invokers", &self.invokers)
            .field("invoker_memory_mb", &self.invoker_memory_mb)
            .field("container_create", &self.container_create)
            .field("idle_timeout", &self.idle_timeout)
            .field("stem_cells", &self.stem_cells)
            .field("queue", &self.queue)
            .finish_non_exhaustive()
    }
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            invokers: 4,
            invoker_memory_mb: 2048,
            container_create: Duration::from_millis(300),
            idle_timeout: Duration::from_secs(600),
            keep_alive: None,
            stem_cells: Vec::new(),
            sample_every: Duration::from_secs(1),
            queue: QueueOrder::Fifo,
        }
    }
}

/// Why a simulation could not run.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The trace does not fit the invokers.
    #[error(transparent)]
    Trace(#[from] super::trace::TraceError),
    /// The platform refused a step (store, bus, placement).
    #[error("simulation failed: {0}")]
    Platform(String),
}

/// What one simulation measured.
#[derive(Debug, Clone, PartialEq)]
pub struct SimReport {
    /// The scheduler's and keep-alive policy's names.
    pub label: String,
    /// Invocations replayed.
    pub invocations: u64,
    /// Activations that did not succeed (timeouts, placement failures).
    pub failed: u64,
    /// Runs that created a container.
    pub cold_starts: u64,
    /// Runs on a prewarmed stem cell.
    pub prewarm_starts: u64,
    /// Runs on a warm container.
    pub warm_starts: u64,
    /// Containers a keep-alive policy warmed ahead of an expected call.
    pub action_prewarms: u64,
    /// Latency (submission to completion) percentiles, ms: p50, p95, p99, max.
    pub latency_ms: [f64; 4],
    /// Slowdown (latency over the run time) percentiles: p50, p95, p99; and the mean.
    pub slowdown: [f64; 4],
    /// Completed invocations per second of virtual time.
    pub throughput: f64,
    /// Memory held by idle containers and stem cells over time, GB·s.
    pub idle_memory_gb_s: f64,
    /// Virtual time from the first submission to the last completion.
    pub virtual_time: Duration,
    /// Wall time the simulation took.
    pub wall_time: Duration,
}

impl SimReport {
    /// Cold starts per invocation.
    pub fn cold_start_rate(&self) -> f64 {
        self.cold_starts as f64 / (self.invocations.max(1)) as f64
    }
}

/// One invocation's measurement.
struct Sample {
    latency_ms: f64,
    duration_ms: u64,
    ok: bool,
}

/// Replays `trace` with `scheduler` on `config`, over `store` and `bus` (fresh, empty
/// backends: the memory ones from `whisk-store` and `whisk-bus`). Runs its own paused-time
/// runtime on the calling thread: call it outside any Tokio runtime (or from
/// `spawn_blocking`).
pub fn simulate(
    trace: &Trace,
    scheduler: Arc<dyn Scheduler>,
    config: &SimConfig,
    store: Arc<dyn Store>,
    bus: Arc<dyn MessageBus>,
    label: &str,
) -> Result<SimReport, SimError> {
    trace.check_fits(config.invoker_memory_mb)?;
    let wall = std::time::Instant::now();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .map_err(|e| SimError::Platform(e.to_string()))?;
    let result = rt.block_on(async {
        crate::message::use_virtual_clock(crate::message::now_ms());
        let out = replay(trace, scheduler, config, store, bus).await;
        crate::message::use_system_clock();
        out
    });
    let (samples, metrics, idle_mb_ms, virtual_time) = result?;
    Ok(report(
        label,
        &samples,
        &metrics,
        idle_mb_ms,
        virtual_time,
        wall.elapsed(),
    ))
}

type Replayed = (Vec<Sample>, PoolMetrics, f64, Duration);

async fn replay(
    trace: &Trace,
    scheduler: Arc<dyn Scheduler>,
    config: &SimConfig,
    store: Arc<dyn Store>,
    bus: Arc<dyn MessageBus>,
) -> Result<Replayed, SimError> {
    let platform = |e: &dyn std::fmt::Display| SimError::Platform(e.to_string());
    // The actions: one per trace function, its /init time as its code.
    let manifest = RuntimeManifest::default();
    let limits = SystemLimits::default();
    let mut actions = Vec::with_capacity(trace.functions.len());
    for (i, f) in trace.functions.iter().enumerate() {
        let init_ms = trace
            .invocations
            .iter()
            .find(|inv| inv.function == i)
            .map_or(0, |inv| inv.init_ms);
        let put = WhiskActionPut {
            exec: Some(ExecPut {
                kind: f.kind.clone(),
                code: Some(action_code(init_ms)),
                ..ExecPut::default()
            }),
            limits: Some(ActionLimitsPut {
                memory: Some(f.memory_mb),
                timeout: Some(limits.timeout_ms.max),
                ..ActionLimitsPut::default()
            }),
            ..WhiskActionPut::default()
        };
        let action = WhiskAction::create(SIM_NAMESPACE, &f.name, put, &manifest, &limits, 0)
            .map_err(|e| platform(&format!("function {}: {e}", f.name)))?;
        let rev = store
            .put(
                Collection::Whisks,
                &action.doc_id(),
                action.to_document(),
                None,
            )
            .await
            .map_err(|e| platform(&e))?;
        actions.push((action, rev));
    }

    let lb = LoadBalancer::new(bus.clone(), scheduler, 0);
    for id in 0..config.invokers {
        lb.add_invoker(id, config.invoker_memory_mb);
    }
    let mut tasks = vec![lb.start().await.map_err(|e| platform(&e))?];
    let mut pools = Vec::new();
    for id in 0..config.invokers {
        let pool = ContainerPool::new(
            Arc::new(SimExecutor::new(config.container_create)),
            RuntimeClient::new(1024 * 1024),
            PoolConfig {
                invoker_id: id,
                user_memory_mb: config.invoker_memory_mb,
                idle_timeout: config.idle_timeout,
                pause_grace: config.idle_timeout,
                log_wait: Duration::ZERO,
                stem_cells: config.stem_cells.clone(),
                keep_alive: config.keep_alive.as_ref().map(|make| make()),
                queue: config.queue,
                // OpenWhisk's pool: no cap on containers starting at once.
                max_cold_starts: None,
                ..PoolConfig::default()
            },
        );
        let invoker = Invoker::with_config(
            store.clone(),
            bus.clone(),
            pool.clone(),
            InvokerConfig {
                ping_interval: Duration::from_secs(1),
                ..InvokerConfig::default()
            },
        );
        tasks.push(invoker.start().await.map_err(|e| platform(&e))?);
        pools.push(pool);
    }

    let user = Identity::new(SIM_NAMESPACE, SIM_NAMESPACE, &AuthKey::generate());
    let start = Instant::now();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let pools = pools.clone();
        let every = config.sample_every.max(Duration::from_millis(1));
        let done = done.clone();
        tokio::spawn(async move {
            let mut mb_ms = 0.0;
            let mut tick = tokio::time::interval(every);
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                tick.tick().await;
                let idle: u64 = pools.iter().map(|p| p.idle_memory_mb()).sum();
                mb_ms += idle as f64 * every.as_millis() as f64;
            }
            mb_ms
        })
    };

    let mut runs = Vec::with_capacity(trace.invocations.len());
    for inv in &trace.invocations {
        tokio::time::sleep_until(start + Duration::from_millis(inv.at_ms)).await;
        let (action, rev) = &actions[inv.function];
        let mut fqn = action.fqn();
        fqn.version = Some(action.version.to_string());
        let msg = ActivationMessage {
            transid: TransactionId::generate(),
            action: fqn,
            revision: Some(rev.clone()),
            user: user.clone(),
            activation_id: ActivationId::generate(),
            root_controller_index: ControllerInstanceId::new(0),
            blocking: true,
            content: Some(run_args(inv.duration_ms)),
            init_args: Vec::new(),
            locked_args: serde_json::json!({}),
            cause: None,
        };
        let lb = lb.clone();
        let (memory, kind, timeout) = (
            action.limits.memory,
            action.exec.kind().to_string(),
            action.limits.timeout,
        );
        let duration_ms = inv.duration_ms;
        runs.push(tokio::spawn(async move {
            let submitted = Instant::now();
            let ok = match lb.publish(&msg, memory, &kind, timeout).await {
                Ok(rx) => match rx.await {
                    Ok(Completed::Activation(a)) => a.response.is_success(),
                    Ok(Completed::IdOnly) => true,
                    Err(_) => false,
                },
                Err(_) => false,
            };
            Sample {
                latency_ms: submitted.elapsed().as_secs_f64() * 1000.0,
                duration_ms,
                ok,
            }
        }));
    }
    let mut samples = Vec::with_capacity(runs.len());
    for r in runs {
        samples.push(r.await.map_err(|e| platform(&e))?);
    }
    let virtual_time = start.elapsed();
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let idle_mb_ms = sampler.await.map_err(|e| platform(&e))?;
    let mut total = PoolMetrics::default();
    for pool in &pools {
        total.add(&pool.metrics());
        pool.shutdown().await;
    }
    for t in tasks {
        t.abort();
    }
    Ok((samples, total, idle_mb_ms, virtual_time))
}

/// The `p`-th percentile (0..=1) of sorted `xs` (nearest rank).
fn percentile(xs: &[f64], p: f64) -> f64 {
    if xs.is_empty() {
        return 0.0;
    }
    let rank = ((p * xs.len() as f64).ceil() as usize).clamp(1, xs.len());
    xs[rank - 1]
}

fn report(
    label: &str,
    samples: &[Sample],
    m: &PoolMetrics,
    idle_mb_ms: f64,
    virtual_time: Duration,
    wall_time: Duration,
) -> SimReport {
    let mut latency: Vec<f64> = samples.iter().map(|s| s.latency_ms).collect();
    latency.sort_by(f64::total_cmp);
    let mut slowdown: Vec<f64> = samples
        .iter()
        .map(|s| s.latency_ms / (s.duration_ms.max(1)) as f64)
        .collect();
    slowdown.sort_by(f64::total_cmp);
    let mean = slowdown.iter().sum::<f64>() / (slowdown.len().max(1)) as f64;
    SimReport {
        label: label.to_string(),
        invocations: samples.len() as u64,
        failed: samples.iter().filter(|s| !s.ok).count() as u64,
        cold_starts: m.cold_starts,
        prewarm_starts: m.prewarm_starts,
        warm_starts: m.warm_starts,
        action_prewarms: m.action_prewarms,
        latency_ms: [
            percentile(&latency, 0.5),
            percentile(&latency, 0.95),
            percentile(&latency, 0.99),
            latency.last().copied().unwrap_or(0.0),
        ],
        slowdown: [
            percentile(&slowdown, 0.5),
            percentile(&slowdown, 0.95),
            percentile(&slowdown, 0.99),
            mean,
        ],
        throughput: samples.len() as f64 / virtual_time.as_secs_f64().max(1e-9),
        idle_memory_gb_s: idle_mb_ms / 1024.0 / 1000.0,
        virtual_time,
        wall_time,
    }
}
