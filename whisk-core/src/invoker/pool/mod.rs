//! The container pool: warm reuse per namespace and action, prewarmed stem cells per kind
//! and memory (replaced after use), cold starts within a memory budget, LRU eviction of idle
//! containers, a wait queue when nothing fits, pause after an idle grace and resume on use,
//! and removal of long-idle containers.

mod keepalive;
mod state;

pub use keepalive::{FixedKeepAlive, HybridHistogram, KeepAlive, Windows};
pub use state::QueueOrder;

use crate::entity::{ActivationResponse, WhiskAction};
use crate::executor::{Container, ContainerExecutor, ContainerSpec, ExecutorError};
use crate::logs::{format_with_limit, LogLine, Stream, DEVELOPER_ERROR_LINE};
use crate::message::now_ms;
use crate::runtime::{env_string, init_body, ActivationContext, CallOutcome, RuntimeClient};
use serde::Serialize;
use serde_json::Value;
use state::{Acquired, Phase, Slot, State, Stem, Waiter, Want, WarmKey};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;
// The pool's clock is Tokio's, so a runtime with paused time (the simulator) drives it.
use tokio::time::Instant;

pub use crate::entity::exec::StemCell;

/// Pool settings.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// The invoker id, used in container names.
    pub invoker_id: u32,
    /// OpenWhisk's optional unique invoker name, part of every container name
    /// (`wsk{unique_name}{invoker_id}_...`), so invokers sharing a Docker daemon can tell
    /// their containers apart; default empty.
    pub unique_name: String,
    /// Memory for user containers in MB: the one capacity knob.
    pub user_memory_mb: u64,
    /// Idle containers older than this are removed.
    pub idle_timeout: Duration,
    /// Idle containers are paused (for executors that can) after this long.
    pub pause_grace: Duration,
    /// How long to wait for the log sentinels after a run.
    pub log_wait: Duration,
    /// `__OW_API_HOST` given to containers.
    pub api_host: String,
    /// Prewarmed containers to keep per kind and memory.
    pub stem_cells: Vec<StemCell>,
    /// How long idle containers stay, per action; `None`: every one for `idle_timeout`
    /// (OpenWhisk's [`FixedKeepAlive`]).
    pub keep_alive: Option<Arc<dyn KeepAlive>>,
    /// In which order runs waiting for memory are served.
    pub queue: QueueOrder,
    /// How many new containers may be starting (created and initialised) at once; a run that
    /// would start one more waits in line, and takes a warm container of its action if one
    /// is released first. Against cold-start storms: without a cap, a burst of short runs
    /// starts a container for every run that finds none idle, and on a busy machine the
    /// starts slow each other down until every run is a cold start. `None`: no cap
    /// (OpenWhisk's pool; the simulator models that one). Default: twice the machine's
    /// CPUs, at least 4.
    pub max_cold_starts: Option<usize>,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            invoker_id: 0,
            unique_name: String::new(),
            user_memory_mb: 2048,
            idle_timeout: Duration::from_secs(600),
            pause_grace: Duration::from_secs(10),
            log_wait: Duration::from_secs(2),
            api_host: "http://127.0.0.1:3233".into(),
            stem_cells: Vec::new(),
            keep_alive: None,
            queue: QueueOrder::Fifo,
            max_cold_starts: Some(
                (std::thread::available_parallelism().map_or(2, |n| n.get()) * 2).max(4),
            ),
        }
    }
}

impl PoolConfig {
    /// What every container name of this invoker starts with (before `_`): OpenWhisk's
    /// `wsk{unique_name}{invoker_id}`, with characters Docker refuses in names dropped.
    pub fn container_prefix(&self) -> String {
        format!("wsk{}{}", self.unique_name, self.invoker_id)
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
            .collect()
    }
}

/// One activation for the pool to run.
#[derive(Debug, Clone)]
pub struct Job {
    /// The action.
    pub action: Arc<WhiskAction>,
    /// Its document revision (part of the warm key).
    pub revision: String,
    /// The invoking namespace.
    pub namespace: String,
    /// Per-activation values (deadline is recomputed for init and run).
    pub context: ActivationContext,
    /// The action argument.
    pub args: Value,
    /// Parameters passed to `/init` as environment.
    pub init_env: serde_json::Map<String, Value>,
}

/// How a run got its container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StartKind {
    /// A warm container of the same action.
    Warm,
    /// A prewarmed stem cell of the same kind.
    Prewarm,
    /// A new container.
    Cold,
}

/// What running a job produced.
#[derive(Debug, Clone)]
pub struct JobOutcome {
    /// The response.
    pub response: ActivationResponse,
    /// Formatted log lines.
    pub logs: Vec<String>,
    /// Start (epoch ms): when init (cold) or run began.
    pub start: u64,
    /// End (epoch ms).
    pub end: u64,
    /// Init duration for cold and prewarm starts.
    pub init_time: Option<u64>,
    /// Whether init or run hit the timeout.
    pub timed_out: bool,
    /// How the container was obtained (`None` when none was).
    pub start_kind: Option<StartKind>,
}

/// Counters of a pool's life.
#[derive(Debug, Default)]
struct Counters {
    cold: AtomicU64,
    warm: AtomicU64,
    prewarm: AtomicU64,
    idle_removals: AtomicU64,
    pauses: AtomicU64,
    resumes: AtomicU64,
    failures: AtomicU64,
    action_prewarms: AtomicU64,
}

/// A snapshot of the pool: containers by state and the counters of its life.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PoolMetrics {
    /// Prewarmed stem cells.
    pub prewarmed: usize,
    /// Warm containers running at least one activation.
    pub busy: usize,
    /// Warm containers ready and idle.
    pub idle: usize,
    /// Warm containers paused.
    pub paused: usize,
    /// Runs waiting for memory.
    pub waiting: usize,
    /// Memory booked, MB.
    pub used_memory_mb: u64,
    /// The budget, MB.
    pub user_memory_mb: u64,
    /// Runs that started a new container.
    pub cold_starts: u64,
    /// Runs on a warm container.
    pub warm_starts: u64,
    /// Runs on a prewarmed container.
    pub prewarm_starts: u64,
    /// Idle containers evicted for memory.
    pub evictions: u64,
    /// Idle containers removed after the idle timeout.
    pub idle_removals: u64,
    /// Pauses and resumes.
    pub pauses: u64,
    /// Resumes.
    pub resumes: u64,
    /// Containers destroyed after a failed init or run.
    pub failures: u64,
    /// Containers started and initialised for an action ahead of its expected next
    /// invocation (a keep-alive policy's pre-warming).
    pub action_prewarms: u64,
}

impl PoolMetrics {
    /// Adds `other` to these figures (for totals over several pools).
    pub fn add(&mut self, other: &PoolMetrics) {
        self.prewarmed += other.prewarmed;
        self.busy += other.busy;
        self.idle += other.idle;
        self.paused += other.paused;
        self.waiting += other.waiting;
        self.used_memory_mb += other.used_memory_mb;
        self.user_memory_mb += other.user_memory_mb;
        self.cold_starts += other.cold_starts;
        self.warm_starts += other.warm_starts;
        self.prewarm_starts += other.prewarm_starts;
        self.evictions += other.evictions;
        self.idle_removals += other.idle_removals;
        self.pauses += other.pauses;
        self.resumes += other.resumes;
        self.failures += other.failures;
        self.action_prewarms += other.action_prewarms;
    }
}

/// A pool of containers from one executor.
pub struct ContainerPool {
    executor: Arc<dyn ContainerExecutor>,
    client: RuntimeClient,
    config: PoolConfig,
    state: Mutex<State>,
    counter: AtomicU64,
    counters: Counters,
    /// Signalled whenever a container start ends.
    start_ended: tokio::sync::Notify,
}

impl ContainerPool {
    /// A pool over `executor`.
    pub fn new(
        executor: Arc<dyn ContainerExecutor>,
        client: RuntimeClient,
        config: PoolConfig,
    ) -> Arc<Self> {
        let state = State {
            order: config.queue,
            cold_cap: config.max_cold_starts,
            ..State::default()
        };
        Arc::new(Self {
            executor,
            client,
            config,
            state: Mutex::new(state),
            counter: AtomicU64::new(0),
            counters: Counters::default(),
            start_ended: tokio::sync::Notify::new(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &PoolConfig {
        &self.config
    }

    /// Memory booked by live containers and stem cells, in MB.
    pub fn used_memory_mb(&self) -> u64 {
        self.state.lock().unwrap().used_mb
    }

    /// Number of idle (warm, not running) containers.
    pub fn idle_count(&self) -> usize {
        self.state
            .lock()
            .unwrap()
            .slots
            .iter()
            .filter(|s| s.active == 0)
            .count()
    }

    /// Memory held by containers that run nothing (idle or paused warm containers and stem
    /// cells), in MB.
    pub fn idle_memory_mb(&self) -> u64 {
        let st = self.state.lock().unwrap();
        let warm: u64 = st
            .slots
            .iter()
            .filter(|s| s.active == 0)
            .map(|s| s.memory_mb)
            .sum();
        warm + st.stems.iter().map(|s| s.memory_mb).sum::<u64>()
    }

    /// Its warm containers, as the invoker's pings report them to schedulers.
    pub fn report(&self) -> crate::message::PoolReport {
        let st = self.state.lock().unwrap();
        let containers = st
            .slots
            .iter()
            .map(|s| {
                let busy = s.active > 0;
                let idle = if busy {
                    Duration::ZERO
                } else {
                    s.last_used.elapsed()
                };
                crate::message::ContainerReport {
                    action: s.key.action.clone(),
                    memory_mb: s.memory_mb,
                    busy,
                    idle_ms: idle.as_millis() as u64,
                    expires_in_ms: if busy {
                        0
                    } else {
                        s.keep_alive.saturating_sub(idle).as_millis() as u64
                    },
                }
            })
            .collect();
        crate::message::PoolReport { containers }
    }

    /// Number of live containers (warm, busy or prewarmed).
    pub fn live_count(&self) -> usize {
        self.state.lock().unwrap().live.len()
    }

    /// Containers by state and the pool's counters.
    pub fn metrics(&self) -> PoolMetrics {
        let st = self.state.lock().unwrap();
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let idle = |p: Phase| {
            st.slots
                .iter()
                .filter(|s| s.active == 0 && s.phase == p)
                .count()
        };
        PoolMetrics {
            prewarmed: st.stems.len(),
            busy: st.slots.iter().filter(|s| s.active > 0).count(),
            idle: idle(Phase::Ready) + idle(Phase::Pausing),
            paused: idle(Phase::Paused),
            waiting: st.waiters.len(),
            used_memory_mb: st.used_mb,
            user_memory_mb: self.config.user_memory_mb,
            cold_starts: get(&c.cold),
            warm_starts: get(&c.warm),
            prewarm_starts: get(&c.prewarm),
            evictions: st.evictions,
            idle_removals: get(&c.idle_removals),
            pauses: get(&c.pauses),
            resumes: get(&c.resumes),
            failures: get(&c.failures),
            action_prewarms: get(&c.action_prewarms),
        }
    }

    /// Starts the configured stem cells and the task that pauses and removes idle containers.
    pub fn start(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        for cell in &self.config.stem_cells {
            for _ in 0..cell.count {
                self.spawn_stem(cell.kind.clone(), cell.memory_mb);
            }
        }
        let weak = Arc::downgrade(self);
        let shortest = self.config.idle_timeout.min(self.config.pause_grace);
        let period = (shortest / 4).clamp(Duration::from_millis(20), Duration::from_secs(30));
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(period).await;
                let Some(pool) = weak.upgrade() else { return };
                pool.remove_expired();
                pool.client.forget_closed();
                pool.pause_idle().await;
            }
        })
    }

    /// Starts one prewarmed container of `kind` with `memory_mb`, if memory allows.
    fn spawn_stem(self: &Arc<Self>, kind: String, memory_mb: u64) {
        {
            let mut st = self.state.lock().unwrap();
            if st.closed || st.used_mb + memory_mb > self.config.user_memory_mb {
                return;
            }
            st.used_mb += memory_mb;
        }
        let me = self.clone();
        tokio::spawn(async move {
            let spec = me.spec(
                &kind,
                None,
                memory_mb,
                &format!("prewarm_{}", clean(&kind)),
                false,
            );
            match me.start_container(&spec).await {
                Ok(container) => {
                    // Warm the runtime's request path and the pooled connection to it: a /run
                    // before /init is refused by every runtime without side effects.
                    if container.in_process().is_none() {
                        let _ = me
                            .client
                            .run(
                                container.endpoint(),
                                &serde_json::json!({"value": {}}),
                                Duration::from_secs(2),
                            )
                            .await;
                    }
                    let mut victims = Vec::new();
                    {
                        let mut st = me.state.lock().unwrap();
                        if st.closed {
                            victims.push(container);
                        } else {
                            st.stems.push(Stem {
                                kind,
                                memory_mb,
                                container,
                            });
                            st.dispatch(me.config.user_memory_mb, &mut victims);
                        }
                    }
                    destroy_all(victims);
                }
                Err(e) => {
                    tracing::warn!(error = %e, kind, "prewarm start failed");
                    me.give_back(None, memory_mb);
                }
            }
        });
    }

    fn remove_expired(&self) {
        let mut victims = Vec::new();
        {
            let mut st = self.state.lock().unwrap();
            let expired: Vec<usize> = (0..st.slots.len())
                .rev()
                .filter(|&i| {
                    let s = &st.slots[i];
                    s.active == 0 && s.last_used.elapsed() >= s.keep_alive
                })
                .collect();
            for i in expired {
                let slot = st.slots.swap_remove(i);
                st.used_mb -= slot.memory_mb;
                st.live.remove(slot.container.id());
                victims.push(slot.container);
                self.counters.idle_removals.fetch_add(1, Ordering::Relaxed);
            }
            if !victims.is_empty() {
                st.dispatch(self.config.user_memory_mb, &mut victims);
            }
        }
        destroy_all(victims);
    }

    /// Pauses containers idle longer than the pause grace.
    async fn pause_idle(&self) {
        let grace = self.config.pause_grace;
        let due: Vec<Arc<dyn Container>> = {
            let mut st = self.state.lock().unwrap();
            st.slots
                .iter_mut()
                .filter(|s| {
                    s.active == 0 && s.phase == Phase::Ready && s.last_used.elapsed() >= grace
                })
                .map(|s| {
                    s.phase = Phase::Pausing;
                    s.container.clone()
                })
                .collect()
        };
        for c in due {
            let ok = c.pause().await.is_ok();
            let mut victims = Vec::new();
            {
                let mut st = self.state.lock().unwrap();
                let memory = st.slot_mut(&c).map(|s| s.memory_mb);
                match (ok, memory) {
                    (true, Some(_)) => {
                        tracing::debug!(container = c.id(), "paused");
                        if let Some(s) = st.slot_mut(&c) {
                            s.phase = Phase::Paused;
                        }
                        self.counters.pauses.fetch_add(1, Ordering::Relaxed);
                    }
                    (false, Some(m)) => {
                        st.forget(&c, m);
                        victims.push(c.clone());
                    }
                    _ => {}
                }
                st.dispatch(self.config.user_memory_mb, &mut victims);
            }
            destroy_all(victims);
        }
    }

    /// Destroys every container and refuses further work.
    pub async fn shutdown(&self) {
        let all: Vec<Arc<dyn Container>> = {
            let mut st = self.state.lock().unwrap();
            st.closed = true;
            st.slots.clear();
            st.stems.clear();
            st.waiters.clear();
            st.live.drain().map(|(_, c)| c).collect()
        };
        for c in all {
            if let Err(e) = c.destroy().await {
                tracing::warn!(container = c.id(), error = %e, "destroy failed at shutdown");
            }
        }
        // Starts still in flight destroy their container themselves once it exists.
        loop {
            let ended = self.start_ended.notified();
            if self.state.lock().unwrap().starting == 0 {
                return;
            }
            ended.await;
        }
    }

    /// Starts a container for `spec` and registers it as live. A container that comes up
    /// after the pool was shut down is destroyed at once (an error for the caller).
    async fn start_container(
        &self,
        spec: &ContainerSpec,
    ) -> Result<Arc<dyn Container>, ExecutorError> {
        self.state.lock().unwrap().starting += 1;
        let result = match self.executor.create(spec).await {
            Ok(c) => {
                let closed = {
                    let mut st = self.state.lock().unwrap();
                    if !st.closed {
                        st.live.insert(c.id().to_string(), c.clone());
                    }
                    st.closed
                };
                if closed {
                    if let Err(e) = c.destroy().await {
                        tracing::warn!(container = c.id(), error = %e, "destroy failed at shutdown");
                    }
                    Err(ExecutorError::Other("the invoker is shutting down".into()))
                } else {
                    Ok(c)
                }
            }
            Err(e) => Err(e),
        };
        self.state.lock().unwrap().starting -= 1;
        self.start_ended.notify_waiters();
        result
    }

    /// A container for `want`, waiting in line when nothing is available.
    async fn acquire(&self, want: &Want) -> Result<Acquired, String> {
        let cap = self.config.user_memory_mb;
        if want.memory_mb > cap {
            return Err(format!(
                "The action needs {} MB but the invoker has only {cap} MB of user memory.",
                want.memory_mb
            ));
        }
        let mut victims = Vec::new();
        let rx = {
            let mut st = self.state.lock().unwrap();
            if st.closed {
                return Err("The invoker is shutting down.".into());
            }
            if let Some(got) = st.try_acquire(want, cap, &mut victims) {
                drop(st);
                destroy_all(victims);
                return Ok(got);
            }
            let (tx, rx) = oneshot::channel();
            st.waiters.push_back(Waiter {
                want: want.clone(),
                tx,
                since: Instant::now(),
            });
            rx
        };
        rx.await
            .map_err(|_| "The invoker is shutting down.".to_string())
    }

    /// The keep-alive windows of `action`'s idle containers.
    fn windows(&self, action: &str) -> Windows {
        match &self.config.keep_alive {
            Some(policy) => policy.windows(action),
            None => FixedKeepAlive(self.config.idle_timeout).windows(action),
        }
    }

    /// Ends a run on a healthy container: it stays warm for its action, or, when the
    /// keep-alive policy pre-warms the action and nothing else runs in it, it is removed now
    /// and a new one is warmed for `job`'s action after the pre-warm window. Returns the
    /// containers to destroy (this one, or idle ones evicted for waiting runs), for the
    /// caller to destroy once it has its logs.
    #[must_use]
    fn release(
        self: &Arc<Self>,
        container: &Arc<dyn Container>,
        job: &Job,
        want: &Want,
    ) -> Vec<Arc<dyn Container>> {
        let windows = self.windows(&want.key.action);
        let mut victims = Vec::new();
        let mut prewarm = None;
        {
            let mut st = self.state.lock().unwrap();
            if st.closed {
                victims.push(container.clone());
            } else if let Some(s) = st.slot_mut(container) {
                s.active -= 1;
                s.last_used = Instant::now();
                s.keep_alive = windows.keep_alive;
                if let (0, Some(w)) = (s.active, windows.prewarm) {
                    st.forget(container, want.memory_mb);
                    victims.push(container.clone());
                    prewarm = Some(w);
                }
            }
            st.dispatch(self.config.user_memory_mb, &mut victims);
        }
        if let Some(w) = prewarm {
            let me = self.clone();
            let (job, want) = (job.clone(), want.clone());
            tokio::spawn(async move {
                tokio::time::sleep(w).await;
                me.warm_up(&job, &want, windows.keep_alive).await;
            });
        }
        victims
    }

    /// Starts and initialises an idle container for `job`'s action if memory is free now
    /// (never evicting, never waiting): the pre-warming of a keep-alive policy.
    async fn warm_up(self: &Arc<Self>, job: &Job, want: &Want, keep_alive: Duration) {
        {
            let mut st = self.state.lock().unwrap();
            if st.closed || st.used_mb + want.memory_mb > self.config.user_memory_mb {
                return;
            }
            st.used_mb += want.memory_mb;
        }
        let action = &job.action;
        let spec = self.spec(
            &want.kind,
            action.exec.image(),
            want.memory_mb,
            &format!("{}_{}", clean(&job.namespace), clean(&action.name)),
            want.host_network,
        );
        let container = match self.start_container(&spec).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "pre-warm start failed");
                return self.give_back(None, want.memory_mb);
            }
        };
        let timeout = Duration::from_millis(action.limits.timeout);
        let init = self.init(&container, job, timeout).await;
        if !init.response.is_success() {
            return self.give_back(Some(&container), want.memory_mb);
        }
        self.counters
            .action_prewarms
            .fetch_add(1, Ordering::Relaxed);
        let mut victims = Vec::new();
        {
            let mut st = self.state.lock().unwrap();
            if st.closed {
                victims.push(container);
            } else {
                st.slots.push(Slot {
                    key: want.key.clone(),
                    container,
                    memory_mb: want.memory_mb,
                    active: 0,
                    capacity: want.capacity,
                    last_used: Instant::now(),
                    keep_alive,
                    phase: Phase::Ready,
                    log_turn: Default::default(),
                });
                st.dispatch(self.config.user_memory_mb, &mut victims);
            }
        }
        destroy_all(victims);
    }

    /// Gives up a container (or only its memory booking when it never started).
    fn give_back(&self, container: Option<&Arc<dyn Container>>, memory_mb: u64) {
        self.change_and_dispatch(|st, victims| match container {
            Some(c) => {
                st.forget(c, memory_mb);
                victims.push(c.clone());
            }
            None => st.used_mb = st.used_mb.saturating_sub(memory_mb),
        });
    }

    /// Applies `change` to the state (it may add containers to destroy), hands what is free
    /// to the runs waiting in line, all under one lock, then destroys the victims.
    fn change_and_dispatch(&self, change: impl FnOnce(&mut State, &mut Vec<Arc<dyn Container>>)) {
        let mut victims = Vec::new();
        {
            let mut st = self.state.lock().unwrap();
            change(&mut st, &mut victims);
            st.dispatch(self.config.user_memory_mb, &mut victims);
        }
        destroy_all(victims);
    }

    fn spec(
        &self,
        kind: &str,
        image: Option<&str>,
        memory_mb: u64,
        label: &str,
        host_network: bool,
    ) -> ContainerSpec {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        ContainerSpec {
            name: format!("{}_{}_{}", self.config.container_prefix(), n, label),
            kind: kind.to_string(),
            image: image.map(str::to_string),
            memory_mb,
            env: vec![("__OW_API_HOST".into(), self.config.api_host.clone())],
            host_network,
        }
    }

    /// Runs `job`: a warm container of the action if one has room, else a prewarmed one of its
    /// kind, else a new one (waiting for memory). User failures are data in the outcome; a
    /// failed container is destroyed.
    pub async fn run(self: &Arc<Self>, job: Job) -> JobOutcome {
        self.run_job(job, None).await
    }

    /// Runs `job` like [`ContainerPool::run`], and sends its outcome without logs to `result`
    /// as soon as the runtime has answered `/init` (when it failed) or `/run`, before the
    /// logs are collected (OpenWhisk's `ResultMessage` goes out at that point for blocking
    /// activations). Nothing is sent when the job fails before it reaches a runtime.
    pub async fn run_reporting(
        self: &Arc<Self>,
        job: Job,
        result: tokio::sync::oneshot::Sender<JobOutcome>,
    ) -> JobOutcome {
        self.run_job(job, Some(result)).await
    }

    async fn run_job(
        self: &Arc<Self>,
        mut job: Job,
        mut result: Option<tokio::sync::oneshot::Sender<JobOutcome>>,
    ) -> JobOutcome {
        let action = job.action.clone();
        if let Some(policy) = &self.config.keep_alive {
            policy.invoked(&action.doc_id(), Instant::now());
        }
        let memory = action.limits.memory;
        let timeout = Duration::from_millis(action.limits.timeout);
        let want = Want {
            key: WarmKey {
                namespace: job.namespace.clone(),
                action: action.doc_id(),
                revision: job.revision.clone(),
            },
            kind: action.exec.kind().to_string(),
            memory_mb: memory,
            capacity: capacity(&action),
            host_network: needs_host_network(&action),
        };
        let acquired = match self.acquire(&want).await {
            Ok(a) => a,
            Err(msg) => return failed_before_start(ActivationResponse::whisk_error(msg)),
        };
        let start = now_ms();
        let (container, init_time, start_kind) = match acquired {
            Acquired::Warm { container, paused } => {
                if paused {
                    if let Err(e) = container.resume().await {
                        tracing::warn!(error = %e, "resume failed");
                        self.give_back(Some(&container), memory);
                        return failed_before_start(ActivationResponse::whisk_error(
                            "Failed to resume the container.",
                        ));
                    }
                    tracing::debug!(container = container.id(), "resumed");
                    self.counters.resumes.fetch_add(1, Ordering::Relaxed);
                }
                self.counters.warm.fetch_add(1, Ordering::Relaxed);
                (container, None, StartKind::Warm)
            }
            fresh => {
                // A new container counts as starting until initialised or failed.
                let _cold = matches!(fresh, Acquired::Cold).then(|| ColdStart(self));
                let (container, kind) = match fresh {
                    Acquired::Prewarm(c) => (c, StartKind::Prewarm),
                    _ => {
                        let spec = self.spec(
                            &want.kind,
                            action.exec.image(),
                            memory,
                            &format!("{}_{}", clean(&job.namespace), clean(&action.name)),
                            want.host_network,
                        );
                        match self.start_container(&spec).await {
                            Ok(c) => (c, StartKind::Cold),
                            Err(e) => {
                                self.give_back(None, memory);
                                tracing::error!(error = %e, kind = spec.kind, "container start failed");
                                return failed_before_start(start_failure(&e));
                            }
                        }
                    }
                };
                let counter = if kind == StartKind::Prewarm {
                    &self.counters.prewarm
                } else {
                    &self.counters.cold
                };
                counter.fetch_add(1, Ordering::Relaxed);
                let init =
                    oom_checked(&container, self.init(&container, &job, timeout).await).await;
                let init_ms = init.elapsed.as_millis() as u64;
                if !init.response.is_success() {
                    let mut outcome = JobOutcome {
                        response: init.response,
                        logs: Vec::new(),
                        start,
                        end: now_ms(),
                        init_time: Some(init_ms),
                        timed_out: init.timed_out,
                        start_kind: Some(kind),
                    };
                    report(&mut result, &outcome);
                    outcome.logs = self.collect_logs(&container, &action, true, None).await;
                    self.counters.failures.fetch_add(1, Ordering::Relaxed);
                    self.give_back(Some(&container), memory);
                    if kind == StartKind::Prewarm {
                        self.spawn_stem(want.kind.clone(), memory);
                    }
                    return outcome;
                }
                self.state.lock().unwrap().slots.push(Slot {
                    key: want.key.clone(),
                    container: container.clone(),
                    memory_mb: memory,
                    active: 1,
                    capacity: want.capacity,
                    last_used: Instant::now(),
                    keep_alive: self.config.idle_timeout,
                    phase: Phase::Ready,
                    log_turn: Default::default(),
                });
                (container, Some(init_ms), kind)
            }
        };
        let mut ctx = job.context.clone();
        ctx.deadline_ms = now_ms() + timeout.as_millis() as u64;
        let body = ctx.run_body(std::mem::take(&mut job.args));
        let run = self
            .client
            .run_container(container.as_ref(), &body, timeout)
            .await;
        let run = oom_checked(&container, run).await;
        let end = now_ms();
        if self.config.queue != QueueOrder::Fifo {
            self.state
                .lock()
                .unwrap()
                .observe_run(&want.key.action, run.elapsed.as_millis() as u64);
        }
        let mut outcome = JobOutcome {
            response: run.response,
            logs: Vec::new(),
            start,
            end,
            init_time,
            timed_out: run.timed_out,
            start_kind: Some(start_kind),
        };
        report(&mut result, &outcome);
        let tagged = (want.capacity > 1).then_some(job.context.activation_id.as_str());
        // A healthy container is released before its logs are collected, so the next run
        // need not wait for them; the log turn keeps the next run's collection behind this
        // one's, and what the release evicts is destroyed only after.
        let mut victims = Vec::new();
        let mut turn = None;
        if !run.container_failed {
            if tagged.is_none() {
                turn = self.log_turn(&container).await;
            }
            victims = self.release(&container, &job, &want);
        }
        outcome.logs = self
            .collect_logs(&container, &action, run.container_failed, tagged)
            .await;
        drop(turn);
        destroy_all(victims);
        if start_kind == StartKind::Prewarm {
            // Replace the stem cell only now, so its start does not compete with this run.
            self.spawn_stem(want.kind.clone(), memory);
        }
        if run.container_failed {
            self.counters.failures.fetch_add(1, Ordering::Relaxed);
            self.give_back(Some(&container), memory);
        }
        outcome
    }

    /// Waits for `container`'s log turn (see `Slot::log_turn`); `None` if it has no slot.
    async fn log_turn(
        &self,
        container: &Arc<dyn Container>,
    ) -> Option<tokio::sync::OwnedMutexGuard<()>> {
        let turn = self
            .state
            .lock()
            .unwrap()
            .slot_mut(container)?
            .log_turn
            .clone();
        Some(turn.lock_owned().await)
    }

    async fn init(
        &self,
        container: &Arc<dyn Container>,
        job: &Job,
        timeout: Duration,
    ) -> CallOutcome {
        let mut ctx = job.context.clone();
        ctx.deadline_ms = now_ms() + timeout.as_millis() as u64;
        let mut env = job.init_env.clone();
        env.extend(ctx.init_env());
        if capacity(&job.action) > 1 {
            env.insert("__OW_ALLOW_CONCURRENT".into(), Value::String("true".into()));
        }
        let exec = &job.action.exec;
        let body = init_body(
            &job.action.name,
            exec.main(),
            exec.code(),
            exec.binary(),
            env,
        );
        self.client
            .init_container(container.as_ref(), &body, timeout)
            .await
    }

    /// Collects the activation's logs: up to the sentinels for a healthy container (its own
    /// tagged lines when `activation` is given, for concurrent containers), whatever is there
    /// for a failed one (plus OpenWhisk's developer-error line).
    async fn collect_logs(
        &self,
        container: &Arc<dyn Container>,
        action: &WhiskAction,
        failed: bool,
        activation: Option<&str>,
    ) -> Vec<String> {
        let wait = if failed {
            Duration::from_millis(100)
        } else {
            self.config.log_wait
        };
        let lines = match activation {
            Some(id) if !failed => container.activation_logs(id, wait).await,
            _ => container.logs(!failed, wait).await,
        };
        let lines = match lines {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "log collection failed");
                vec![LogLine::now(
                    Stream::Stderr,
                    "There was an issue while collecting your logs. Data might be missing.",
                )]
            }
        };
        if action.limits.logs == 0 {
            return Vec::new();
        }
        let mut out = format_with_limit(&lines, action.limits.logs * 1024 * 1024);
        if failed {
            out.push(LogLine::now(Stream::Stderr, DEVELOPER_ERROR_LINE).format());
        }
        out
    }
}

/// A new container being started and initialised, counted against
/// [`PoolConfig::max_cold_starts`] until this is dropped; the runs waiting in line are then
/// looked at again.
struct ColdStart<'a>(&'a ContainerPool);

impl Drop for ColdStart<'_> {
    fn drop(&mut self) {
        self.0.change_and_dispatch(|st, _| st.cold_starting -= 1);
    }
}

/// Sends `outcome` (still without logs) to the waiting `result`, once.
fn report(result: &mut Option<tokio::sync::oneshot::Sender<JobOutcome>>, outcome: &JobOutcome) {
    if let Some(tx) = result.take() {
        let _ = tx.send(outcome.clone());
    }
}

fn failed_before_start(response: ActivationResponse) -> JobOutcome {
    let now = now_ms();
    JobOutcome {
        response,
        logs: Vec::new(),
        start: now,
        end: now,
        init_time: None,
        timed_out: false,
        start_kind: None,
    }
}

/// Activations one container of `action` may run at once.
fn capacity(action: &WhiskAction) -> usize {
    if crate::entity::exec::supports_concurrency(action.exec.kind()) {
        action.limits.concurrency.max(1) as usize
    } else {
        1
    }
}

/// Whether `action` is one of the platform's own (in the `whisk.system` namespace, such as the
/// feed actions, which call the platform's API) and so keeps the host's network.
fn needs_host_network(action: &WhiskAction) -> bool {
    action.namespace.split('/').next() == Some(crate::feeds::SYSTEM_NAMESPACE)
}

/// A name part safe for container names.
fn clean(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

/// Destroys `containers` in the background.
fn destroy_all(containers: Vec<Arc<dyn Container>>) {
    for c in containers {
        // Spawned tasks do not inherit spans: this one keeps the activation's, if any.
        let task = async move {
            if let Err(e) = c.destroy().await {
                tracing::warn!(container = c.id(), error = %e, "destroy failed");
            }
        };
        tokio::spawn(tracing::Instrument::in_current_span(task));
    }
}

/// The `/init` environment of an activation: the fields of its argument `args` named in
/// `init_args` (the activation message's `initArgs`, the `init` parameters of the action as
/// resolved, package and binding included), as OpenWhisk's `ContainerProxy` partitions them.
/// An argument that is not an object (an array payload) gives none.
pub fn init_params_env(init_args: &[String], args: &Value) -> serde_json::Map<String, Value> {
    let Value::Object(fields) = args else {
        return serde_json::Map::new();
    };
    init_args
        .iter()
        .filter_map(|k| {
            let v = fields.get(k)?;
            Some((k.clone(), Value::String(env_string(v))))
        })
        .collect()
}

/// OpenWhisk's response when a container cannot be started: a user-named image that cannot be
/// pulled is the developer's error, anything else the platform's.
fn start_failure(e: &ExecutorError) -> ActivationResponse {
    match e {
        ExecutorError::ImagePull(image) => ActivationResponse::developer_error(format!(
            "Failed to pull container image '{image}'."
        )),
        _ => ActivationResponse::whisk_error("Failed to provision resources to run the action."),
    }
}

/// `outcome`, or OpenWhisk's memory-exhausted developer error when the call failed because the
/// container was killed for exceeding its memory limit.
async fn oom_checked(container: &Arc<dyn Container>, outcome: CallOutcome) -> CallOutcome {
    if outcome.container_failed && !outcome.timed_out && container.out_of_memory().await {
        return CallOutcome {
            response: ActivationResponse::developer_error(
                "The action exhausted its memory and was aborted.",
            ),
            ..outcome
        };
    }
    outcome
}
