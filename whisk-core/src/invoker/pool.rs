//! The container pool: warm reuse, cold starts within a memory budget, LRU eviction of idle
//! containers, a wait queue when nothing fits, and removal of long-idle containers.

use crate::entity::{ActivationResponse, WhiskAction};
use crate::executor::{Container, ContainerExecutor, ContainerSpec};
use crate::logs::{format_with_limit, LogLine, Stream, DEVELOPER_ERROR_LINE};
use crate::message::now_ms;
use crate::runtime::{env_string, init_body, ActivationContext, CallOutcome, RuntimeClient};
use serde_json::Value;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// Pool settings.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// The invoker id, used in container names.
    pub invoker_id: u32,
    /// Memory for user containers in MB: the one capacity knob.
    pub user_memory_mb: u64,
    /// Idle containers older than this are removed.
    pub idle_timeout: Duration,
    /// How long to wait for the log sentinels after a run.
    pub log_wait: Duration,
    /// `__OW_API_HOST` given to containers.
    pub api_host: String,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            invoker_id: 0,
            user_memory_mb: 2048,
            idle_timeout: Duration::from_secs(600),
            log_wait: Duration::from_secs(2),
            api_host: "http://127.0.0.1:3233".into(),
        }
    }
}

/// Warm containers are reused only for the same invoking namespace and action revision.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct WarmKey {
    namespace: String,
    action: String,
    revision: String,
}

struct Idle {
    key: WarmKey,
    container: Arc<dyn Container>,
    memory_mb: u64,
    last_used: Instant,
}

/// A run waiting for a container, in arrival order.
struct Waiter {
    key: WarmKey,
    memory_mb: u64,
    tx: oneshot::Sender<Acquired>,
}

#[derive(Default)]
struct State {
    idle: Vec<Idle>,
    used_mb: u64,
    live: HashMap<String, Arc<dyn Container>>,
    waiters: VecDeque<Waiter>,
    closed: bool,
}

impl State {
    /// Satisfies a request for `key` at once if possible: a warm container of the same key,
    /// free memory for a cold start, or free memory after evicting least recently used idle
    /// containers (returned in `victims` for destruction).
    fn try_acquire(
        &mut self,
        key: &WarmKey,
        memory_mb: u64,
        cap: u64,
        victims: &mut Vec<Arc<dyn Container>>,
    ) -> Option<Acquired> {
        if let Some(i) = self.idle.iter().rposition(|w| &w.key == key) {
            return Some(Acquired::Warm(self.idle.swap_remove(i).container));
        }
        let idle_mb: u64 = self.idle.iter().map(|i| i.memory_mb).sum();
        if self.used_mb - idle_mb + memory_mb > cap {
            return None;
        }
        if self.used_mb + memory_mb > cap {
            self.idle.sort_by_key(|i| std::cmp::Reverse(i.last_used));
            while self.used_mb + memory_mb > cap {
                let v = self.idle.pop().expect("idle memory covers the gap");
                self.used_mb -= v.memory_mb;
                self.live.remove(v.container.id());
                victims.push(v.container);
            }
        }
        self.used_mb += memory_mb;
        Some(Acquired::Cold)
    }

    /// Hands containers and memory to waiting runs in arrival order.
    fn dispatch(&mut self, cap: u64, victims: &mut Vec<Arc<dyn Container>>) {
        let mut i = 0;
        while i < self.waiters.len() {
            let (key, memory_mb) = (self.waiters[i].key.clone(), self.waiters[i].memory_mb);
            match self.try_acquire(&key, memory_mb, cap, victims) {
                Some(got) => {
                    let w = self.waiters.remove(i).expect("index in range");
                    if let Err(got) = w.tx.send(got) {
                        self.undo(got, w.key, w.memory_mb);
                    }
                }
                None => i += 1,
            }
        }
    }

    /// Returns what a cancelled waiter was handed.
    fn undo(&mut self, got: Acquired, key: WarmKey, memory_mb: u64) {
        match got {
            Acquired::Warm(container) => self.idle.push(Idle {
                key,
                container,
                memory_mb,
                last_used: Instant::now(),
            }),
            Acquired::Cold => self.used_mb -= memory_mb,
        }
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
    /// Init duration for cold starts.
    pub init_time: Option<u64>,
    /// Whether init or run hit the timeout.
    pub timed_out: bool,
}

/// A pool of containers from one executor.
pub struct ContainerPool {
    executor: Arc<dyn ContainerExecutor>,
    client: RuntimeClient,
    config: PoolConfig,
    state: Mutex<State>,
    counter: AtomicU64,
}

enum Acquired {
    Warm(Arc<dyn Container>),
    Cold,
}

impl ContainerPool {
    /// A pool over `executor`.
    pub fn new(
        executor: Arc<dyn ContainerExecutor>,
        client: RuntimeClient,
        config: PoolConfig,
    ) -> Arc<Self> {
        Arc::new(Self {
            executor,
            client,
            config,
            state: Mutex::new(State::default()),
            counter: AtomicU64::new(0),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &PoolConfig {
        &self.config
    }

    /// Memory booked by live containers, in MB.
    pub fn used_memory_mb(&self) -> u64 {
        self.state.lock().unwrap().used_mb
    }

    /// Number of idle (warm) containers.
    pub fn idle_count(&self) -> usize {
        self.state.lock().unwrap().idle.len()
    }

    /// Number of live containers.
    pub fn live_count(&self) -> usize {
        self.state.lock().unwrap().live.len()
    }

    /// Starts the task that removes containers idle longer than the idle timeout.
    pub fn start_reaper(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(self);
        let period = (self.config.idle_timeout / 4)
            .clamp(Duration::from_millis(50), Duration::from_secs(30));
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(period).await;
                let Some(pool) = weak.upgrade() else { return };
                pool.remove_expired();
            }
        })
    }

    fn remove_expired(&self) {
        let timeout = self.config.idle_timeout;
        let mut victims = Vec::new();
        {
            let mut st = self.state.lock().unwrap();
            let (old, keep): (Vec<Idle>, Vec<Idle>) = std::mem::take(&mut st.idle)
                .into_iter()
                .partition(|i| i.last_used.elapsed() >= timeout);
            st.idle = keep;
            for i in old {
                st.used_mb -= i.memory_mb;
                st.live.remove(i.container.id());
                victims.push(i.container);
            }
            if !victims.is_empty() {
                st.dispatch(self.config.user_memory_mb, &mut victims);
            }
        }
        destroy_all(victims);
    }

    /// Destroys every container and refuses further work.
    pub async fn shutdown(&self) {
        let all: Vec<Arc<dyn Container>> = {
            let mut st = self.state.lock().unwrap();
            st.closed = true;
            st.idle.clear();
            st.waiters.clear();
            st.live.drain().map(|(_, c)| c).collect()
        };
        for c in all {
            if let Err(e) = c.destroy().await {
                tracing::warn!(container = c.id(), error = %e, "destroy failed at shutdown");
            }
        }
    }

    /// A warm container of `key`, or memory booked for a new one; waits in line when neither
    /// is available.
    async fn acquire(&self, key: &WarmKey, memory_mb: u64) -> Result<Acquired, String> {
        let cap = self.config.user_memory_mb;
        if memory_mb > cap {
            return Err(format!(
                "The action needs {memory_mb} MB but the invoker has only {cap} MB of user memory."
            ));
        }
        let mut victims = Vec::new();
        let rx = {
            let mut st = self.state.lock().unwrap();
            if st.closed {
                return Err("The invoker is shutting down.".into());
            }
            match st.try_acquire(key, memory_mb, cap, &mut victims) {
                Some(got) => {
                    drop(st);
                    destroy_all(victims);
                    return Ok(got);
                }
                None => {
                    let (tx, rx) = oneshot::channel();
                    st.waiters.push_back(Waiter {
                        key: key.clone(),
                        memory_mb,
                        tx,
                    });
                    rx
                }
            }
        };
        rx.await
            .map_err(|_| "The invoker is shutting down.".to_string())
    }

    /// Returns a healthy container: straight to a waiting run of the same action, else idle.
    fn release(&self, key: WarmKey, container: Arc<dyn Container>, memory_mb: u64) {
        let mut victims = Vec::new();
        {
            let mut st = self.state.lock().unwrap();
            if st.closed {
                victims.push(container);
            } else {
                st.idle.push(Idle {
                    key,
                    container,
                    memory_mb,
                    last_used: Instant::now(),
                });
                st.dispatch(self.config.user_memory_mb, &mut victims);
            }
        }
        destroy_all(victims);
    }

    /// Gives up a container (or only its memory booking when it never started).
    fn discard(&self, container: Option<Arc<dyn Container>>, memory_mb: u64) {
        let mut victims: Vec<Arc<dyn Container>> = container.into_iter().collect();
        {
            let mut st = self.state.lock().unwrap();
            st.used_mb = st.used_mb.saturating_sub(memory_mb);
            if let Some(c) = victims.first() {
                st.live.remove(c.id());
            }
            st.dispatch(self.config.user_memory_mb, &mut victims);
        }
        destroy_all(victims);
    }

    fn spec(&self, action: &WhiskAction, namespace: &str) -> ContainerSpec {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let clean = |s: &str| -> String {
            s.chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                .collect()
        };
        ContainerSpec {
            name: format!(
                "wsk{}_{}_{}_{}",
                self.config.invoker_id,
                n,
                clean(namespace),
                clean(&action.name)
            ),
            kind: action.exec.kind().to_string(),
            image: action.exec.image().map(str::to_string),
            memory_mb: action.limits.memory,
            env: vec![("__OW_API_HOST".into(), self.config.api_host.clone())],
        }
    }

    /// Runs `job`: warm container if one is idle, else a new one (waiting for memory).
    /// User failures are data in the outcome; a failed container is destroyed.
    pub async fn run(&self, job: Job) -> JobOutcome {
        let action = job.action.clone();
        let memory = action.limits.memory;
        let timeout = Duration::from_millis(action.limits.timeout);
        let key = WarmKey {
            namespace: job.namespace.clone(),
            action: action.doc_id(),
            revision: job.revision.clone(),
        };
        let acquired = match self.acquire(&key, memory).await {
            Ok(a) => a,
            Err(msg) => return failed_before_start(ActivationResponse::whisk_error(msg)),
        };
        let start = now_ms();
        let (container, init_time) = match acquired {
            Acquired::Warm(c) => (c, None),
            Acquired::Cold => {
                let spec = self.spec(&action, &job.namespace);
                let container = match self.executor.create(&spec).await {
                    Ok(c) => c,
                    Err(e) => {
                        self.discard(None, memory);
                        tracing::error!(error = %e, kind = spec.kind, "container start failed");
                        return failed_before_start(ActivationResponse::whisk_error(format!(
                            "Failed to start a container for kind '{}'.",
                            spec.kind
                        )));
                    }
                };
                self.state
                    .lock()
                    .unwrap()
                    .live
                    .insert(container.id().to_string(), container.clone());
                let init = self.init(&container, &job, timeout).await;
                let init_ms = init.elapsed.as_millis() as u64;
                if !init.response.is_success() {
                    let logs = self.collect_logs(&container, &action, true).await;
                    self.discard(Some(container), memory);
                    return JobOutcome {
                        response: init.response,
                        logs,
                        start,
                        end: now_ms(),
                        init_time: Some(init_ms),
                        timed_out: init.timed_out,
                    };
                }
                (container, Some(init_ms))
            }
        };
        let mut ctx = job.context.clone();
        ctx.deadline_ms = now_ms() + timeout.as_millis() as u64;
        let run: CallOutcome = self
            .client
            .run(container.endpoint(), &ctx.run_body(job.args), timeout)
            .await;
        let end = now_ms();
        let logs = self
            .collect_logs(&container, &action, run.container_failed)
            .await;
        if run.container_failed {
            self.discard(Some(container), memory);
        } else {
            self.release(key, container, memory);
        }
        JobOutcome {
            response: run.response,
            logs,
            start,
            end,
            init_time,
            timed_out: run.timed_out,
        }
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
        let exec = &job.action.exec;
        let body = init_body(
            &job.action.name,
            exec.main(),
            exec.code(),
            exec.binary(),
            env,
        );
        self.client.init(container.endpoint(), &body, timeout).await
    }

    /// Collects the activation's logs: up to the sentinels for a healthy container, whatever
    /// is there for a failed one (plus OpenWhisk's developer-error line).
    async fn collect_logs(
        &self,
        container: &Arc<dyn Container>,
        action: &WhiskAction,
        failed: bool,
    ) -> Vec<String> {
        let wait = if failed {
            Duration::from_millis(100)
        } else {
            self.config.log_wait
        };
        let lines = match container.logs(!failed, wait).await {
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

fn failed_before_start(response: ActivationResponse) -> JobOutcome {
    let now = now_ms();
    JobOutcome {
        response,
        logs: Vec::new(),
        start: now,
        end: now,
        init_time: None,
        timed_out: false,
    }
}

/// Destroys `containers` in the background.
fn destroy_all(containers: Vec<Arc<dyn Container>>) {
    for c in containers {
        tokio::spawn(async move {
            if let Err(e) = c.destroy().await {
                tracing::warn!(container = c.id(), error = %e, "destroy failed");
            }
        });
    }
}

/// The `/init` environment entries of an action's `init` parameters.
pub fn init_params_env(action: &WhiskAction, args: &Value) -> serde_json::Map<String, Value> {
    action
        .parameters
        .init_keys()
        .into_iter()
        .map(|k| {
            let v = args.get(&k).map(env_string).unwrap_or_default();
            (k, Value::String(v))
        })
        .collect()
}
