//! The load balancer: books invoker memory, asks the [`Scheduler`] where to run, publishes
//! the `ActivationMessage` and matches acknowledgements back to waiting requests.
//!
//! It also supervises invoker health as OpenWhisk's `InvokerSupervision` does ([`health`]):
//! invokers announce themselves by pinging topic `health`; each one discovered that way is
//! *managed* — usable only while [`InvokerState::Healthy`], with test actions sent while it is
//! not. Invokers registered by hand with [`LoadBalancer::add_invoker`] are *unmanaged*: always
//! usable (unless [`LoadBalancer::set_usable`] says otherwise), their pings and results ignored
//! by the supervision. A single-process platform adds its one invoker by hand; a distributed
//! one lets the pings discover them.
//!
//! An activation whose invoker does not acknowledge it within the forced-completion deadline
//! ([`LoadBalancerConfig::completion_deadline`]) is completed by the balancer: its memory is
//! released, its waiter dropped (the caller gets 202 with the activation id, as OpenWhisk's
//! caller does when the wait runs out), the invoker's health learns a timeout, and — when a
//! recorder is attached ([`LoadBalancer::set_recorder`], done by the controller) — a whisk
//! internal error record is written so no accepted activation vanishes.

pub mod health;

use crate::bus::{topics, BusError, MessageBus};
use crate::entity::identity::AuthKey;
use crate::entity::{
    ActivationId, ActivationResponse, FullyQualifiedEntityName, Identity, Parameters, SemVer,
    WhiskActivation,
};
use crate::message::{
    now_ms, AckResponse, Acknowledgement, ActivationMessage, ControllerInstanceId,
    InvokerInstanceId, PingMessage, TransactionId,
};
use crate::scheduler::{Completion, InvokerView, Placement, Scheduler};
use crate::store::ActivationRecorder;
pub use health::InvokerState;
use health::{HealthConfig, InvocationResult, InvokerHealth, Step};
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// The transaction id of health test actions (OpenWhisk's `TransactionId.invokerHealth`).
pub const HEALTH_TRANSACTION_ID: &str = "sid_invokerHealth";
/// The namespace of the health test action.
pub const HEALTH_ACTION_NAMESPACE: &str = "whisk.system";
/// The code of the health test action.
pub const HEALTH_ACTION_CODE: &str = "function main(params) { return params; }";
/// The kind of the health test action (resolved against the runtime manifest).
pub const HEALTH_ACTION_KIND: &str = "nodejs:default";
/// The message of the whisk internal error recorded for a forced completion (the failure
/// OpenWhisk's balancer completes the waiting promise with).
pub const FORCED_COMPLETION_MESSAGE: &str = "no completion or active ack received yet";

/// The name of controller `controller`'s health test action: `invokerHealthTestAction{id}`.
pub fn health_action_name(controller: u32) -> String {
    format!("invokerHealthTestAction{controller}")
}

/// Settings of the load balancer; the defaults are OpenWhisk's.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadBalancerConfig {
    /// Invoker health timings (ping timeout 10 s, test action every 60 s).
    pub health: HealthConfig,
    /// How often ping timeouts, periodic test actions and forced completions are checked (1 s).
    pub tick: Duration,
    /// Action time limits below this count as this much in the deadline (OpenWhisk's
    /// `TimeLimit.STD_DURATION`, 60 s).
    pub min_action_timeout: Duration,
    /// Multiplier of the action time limit in the deadline (`timeout-factor`, 2).
    pub timeout_factor: u32,
    /// Slack added to the deadline (`timeout-addon`, 1 min).
    pub timeout_addon: Duration,
    /// Share of invokers that must be healthy for `GET /invokers/ready`
    /// (`whisk.controller.readiness-fraction`, 100%).
    pub readiness_fraction: f64,
}

impl Default for LoadBalancerConfig {
    fn default() -> Self {
        Self {
            health: HealthConfig::default(),
            tick: Duration::from_secs(1),
            min_action_timeout: Duration::from_secs(60),
            timeout_factor: 2,
            timeout_addon: Duration::from_secs(60),
            readiness_fraction: 1.0,
        }
    }
}

impl LoadBalancerConfig {
    /// How long an activation with time limit `action_timeout` may go unacknowledged before
    /// it is force-completed: `max(action_timeout, min_action_timeout) × timeout_factor +
    /// timeout_addon` (OpenWhisk: `max(t, 60 s) × 2 + 1 min`).
    pub fn completion_deadline(&self, action_timeout: Duration) -> Duration {
        action_timeout.max(self.min_action_timeout) * self.timeout_factor + self.timeout_addon
    }
}

/// What `GET /invokers` shows about one invoker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvokerStatus {
    /// Its instance id (as last pinged, or as registered).
    pub instance: InvokerInstanceId,
    /// Its health; an unmanaged invoker is `Healthy` while usable, else `Offline`.
    pub state: InvokerState,
    /// Whether pings and the supervision decide its health.
    pub managed: bool,
}

/// Whether a controller with `healthy` of `all` invokers healthy is ready, by OpenWhisk's
/// `Controller.readyState`: at least one invoker and `healthy / all >= fraction` — with
/// OpenWhisk's integer division, so any fraction above 0 needs every invoker healthy.
pub fn ready_state(all: usize, healthy: usize, fraction: f64) -> bool {
    all > 0 && (healthy / all) as f64 >= fraction
}

/// Why an activation could not be placed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LoadBalancerError {
    /// No usable invoker (HTTP 503).
    #[error("No invokers available")]
    NoInvokers,
    /// The bus refused the message.
    #[error(transparent)]
    Bus(#[from] BusError),
}

/// What a waiting request learns when its activation completes.
#[derive(Debug, Clone, PartialEq)]
pub enum Completed {
    /// The full record arrived with the acknowledgement.
    Activation(Box<WhiskActivation>),
    /// Only the id arrived; read the record from the store.
    IdOnly,
}

struct Slot {
    view: InvokerView,
    instance: InvokerInstanceId,
    /// `None` for unmanaged invokers.
    health: Option<InvokerHealth>,
}

impl Slot {
    fn status(&self) -> InvokerStatus {
        InvokerStatus {
            instance: self.instance.clone(),
            state: match &self.health {
                Some(h) => h.state(),
                None if self.view.usable => InvokerState::Healthy,
                None => InvokerState::Offline,
            },
            managed: self.health.is_some(),
        }
    }

    /// Applies a supervision step: usability follows the state.
    fn apply(&mut self, step: Step) -> Step {
        if let (Some(h), Some((from, to))) = (&self.health, step.transition) {
            self.view.usable = h.state().is_usable();
            if to.is_usable() {
                tracing::info!(invoker = self.view.id, %from, %to, "invoker state changed");
            } else {
                tracing::warn!(invoker = self.view.id, %from, %to, "invoker state changed");
            }
        }
        step
    }
}

/// What a forced completion needs to write the activation record.
struct RecordInfo {
    subject: String,
    name: String,
    version: Option<String>,
    cause: Option<ActivationId>,
    binding: Option<String>,
    kind: String,
}

struct Pending {
    namespace: String,
    invoker: u32,
    memory_mb: u64,
    action: String,
    waiter: Option<oneshot::Sender<Completed>>,
    expires: Instant,
    record: RecordInfo,
    /// The duration and init time of its result, when the result came before the
    /// completion (blocking activations): the completion carries neither.
    timing: Option<Timing>,
}

/// An activation's duration and init time (ms), as its record says.
type Timing = (Option<u64>, Option<u64>);

/// The duration and init time of `activation`.
fn timing(activation: &crate::entity::WhiskActivation) -> Timing {
    (
        activation.effective_duration(),
        activation
            .annotations
            .get("initTime")
            .and_then(serde_json::Value::as_u64),
    )
}

/// The controller's load balancer.
pub struct LoadBalancer {
    bus: Arc<dyn MessageBus>,
    scheduler: Arc<dyn Scheduler>,
    controller: u32,
    config: LoadBalancerConfig,
    invokers: Mutex<Vec<Slot>>,
    pending: Mutex<HashMap<ActivationId, Pending>>,
    per_namespace: Mutex<HashMap<String, u64>>,
    recorder: Mutex<Option<ActivationRecorder>>,
    metrics: Mutex<Option<Arc<crate::metrics::Metrics>>>,
    health_identity: Identity,
}

impl LoadBalancer {
    /// A balancer for controller `controller` with OpenWhisk's default timings.
    pub fn new(
        bus: Arc<dyn MessageBus>,
        scheduler: Arc<dyn Scheduler>,
        controller: u32,
    ) -> Arc<Self> {
        Self::with_config(bus, scheduler, controller, LoadBalancerConfig::default())
    }

    /// A balancer for controller `controller` with `config`.
    pub fn with_config(
        bus: Arc<dyn MessageBus>,
        scheduler: Arc<dyn Scheduler>,
        controller: u32,
        config: LoadBalancerConfig,
    ) -> Arc<Self> {
        Arc::new(Self {
            bus,
            scheduler,
            controller,
            config,
            invokers: Mutex::new(Vec::new()),
            pending: Mutex::new(HashMap::new()),
            per_namespace: Mutex::new(HashMap::new()),
            recorder: Mutex::new(None),
            metrics: Mutex::new(None),
            // A stub identity for the test actions, as OpenWhisk's `healthActionIdentity`.
            health_identity: Identity::new(
                HEALTH_ACTION_NAMESPACE,
                HEALTH_ACTION_NAMESPACE,
                &AuthKey::generate(),
            ),
        })
    }

    /// The bus it publishes to and consumes from.
    pub fn bus(&self) -> &Arc<dyn MessageBus> {
        &self.bus
    }

    /// The controller id.
    pub fn controller(&self) -> u32 {
        self.controller
    }

    /// The configuration.
    pub fn config(&self) -> &LoadBalancerConfig {
        &self.config
    }

    /// Writes the records of forced completions through `recorder` from now on. The
    /// [`Controller`](crate::controller::Controller) attaches its own when it is created.
    pub fn set_recorder(&self, recorder: ActivationRecorder) {
        *self.recorder.lock().unwrap() = Some(recorder);
    }

    /// Reports the lag of its `completed{controller}` consumer to `metrics` from now on
    /// (`whisk_bus_lag`). The [`Controller`](crate::controller::Controller) attaches its own.
    pub fn set_metrics(&self, metrics: Arc<crate::metrics::Metrics>) {
        *self.metrics.lock().unwrap() = Some(metrics);
    }

    /// Whether a recorder is attached.
    pub fn has_recorder(&self) -> bool {
        self.recorder.lock().unwrap().is_some()
    }

    /// Registers (or updates) invoker `id` with `user_memory_mb` as an *unmanaged* invoker:
    /// usable at once and kept usable without pings (the supervision leaves it alone).
    pub fn add_invoker(&self, id: u32, user_memory_mb: u64) {
        let mut inv = self.invokers.lock().unwrap();
        let view = InvokerView::new(id, user_memory_mb, 0);
        match inv.iter_mut().find(|s| s.view.id == id) {
            Some(s) => {
                s.view = InvokerView::new(id, user_memory_mb, s.view.booked_memory_mb);
                s.instance = InvokerInstanceId::new(id, user_memory_mb);
                s.health = None;
            }
            None => inv.push(Slot {
                view,
                instance: InvokerInstanceId::new(id, user_memory_mb),
                health: None,
            }),
        }
    }

    /// Marks invoker `id` usable or not. Meant for unmanaged invokers; for a managed one the
    /// override lasts until its next health transition.
    pub fn set_usable(&self, id: u32, usable: bool) {
        self.with_invoker(id, |v| v.usable = usable);
    }

    /// The health of every known invoker, by id.
    pub fn invoker_health(&self) -> Vec<InvokerStatus> {
        let mut v: Vec<InvokerStatus> = self
            .invokers
            .lock()
            .unwrap()
            .iter()
            .map(Slot::status)
            .collect();
        v.sort_by_key(|s| s.instance.instance);
        v
    }

    /// The number of healthy invokers.
    pub fn healthy_count(&self) -> usize {
        self.invoker_health()
            .iter()
            .filter(|s| s.state == InvokerState::Healthy)
            .count()
    }

    /// Handles one ping received at `now`: hands its pool report to the scheduler, then
    /// discovers a new invoker (managed, starting Unhealthy, with a test action on the way),
    /// or feeds a known managed one's health. Unmanaged invokers' health is not tracked.
    pub async fn on_ping(&self, ping: &PingMessage, now: Instant) {
        let id = ping.name.instance;
        if let Some(report) = &ping.pool {
            self.scheduler.invoker_report(id, report).await;
        }
        let enabled = ping.invoker_enabled();
        let step = {
            let mut inv = self.invokers.lock().unwrap();
            // Like OpenWhisk's pool, ids below a new one are listed too (Offline) until they ping.
            let memory_mb = ping.name.user_memory_mb().unwrap_or(0);
            for missing in 0..id {
                if !inv.iter().any(|s| s.view.id == missing) {
                    inv.push(Slot {
                        view: InvokerView {
                            usable: false,
                            ..InvokerView::new(missing, memory_mb, 0)
                        },
                        instance: InvokerInstanceId::new(missing, memory_mb),
                        health: Some(InvokerHealth::offline(now)),
                    });
                }
            }
            match inv.iter_mut().find(|s| s.view.id == id) {
                Some(slot) => match slot.health.as_mut() {
                    None => return,
                    Some(h) => {
                        let step = h.on_ping(enabled, now, &self.config.health);
                        if slot.instance != ping.name {
                            // Restarted, maybe with other memory or names.
                            slot.view.user_memory_mb = memory_mb;
                            slot.view.book(0);
                            slot.instance = ping.name.clone();
                        }
                        slot.apply(step)
                    }
                },
                None => {
                    tracing::info!(invoker = id, "registered a new invoker");
                    let mut h = InvokerHealth::offline(now);
                    let step = h.on_ping(enabled, now, &self.config.health);
                    let mut slot = Slot {
                        view: InvokerView {
                            usable: false,
                            ..InvokerView::new(id, memory_mb, 0)
                        },
                        instance: ping.name.clone(),
                        health: Some(h),
                    };
                    let step = slot.apply(step);
                    inv.push(slot);
                    step
                }
            }
        };
        if step.send_test_action {
            self.send_test_action(id).await;
        }
    }

    /// The supervision clock at `now`: managed invokers not heard from for the ping timeout
    /// go Offline, and periodic test actions go out.
    pub async fn supervise(&self, now: Instant) {
        let due: Vec<u32> = {
            let mut inv = self.invokers.lock().unwrap();
            inv.iter_mut()
                .filter_map(|slot| {
                    let step = slot.health.as_mut()?.on_tick(now, &self.config.health);
                    slot.apply(step).send_test_action.then_some(slot.view.id)
                })
                .collect()
        };
        for id in due {
            self.send_test_action(id).await;
        }
    }

    /// Feeds one activation result of `invoker` to its supervision.
    async fn invocation_finished(&self, invoker: u32, result: InvocationResult) {
        let send = {
            let mut inv = self.invokers.lock().unwrap();
            let Some(slot) = inv.iter_mut().find(|s| s.view.id == invoker) else {
                return;
            };
            let Some(h) = slot.health.as_mut() else {
                return;
            };
            let step = h.on_result(result, Instant::now(), &self.config.health);
            slot.apply(step).send_test_action
        };
        if send {
            self.send_test_action(invoker).await;
        }
    }

    /// The test action message for `invoker`: `whisk.system/invokerHealthTestAction{c}`,
    /// non-blocking, no revision (the invoker reads it from the store), transaction
    /// `sid_invokerHealth`.
    pub fn test_action_message(&self) -> ActivationMessage {
        ActivationMessage {
            transid: TransactionId(HEALTH_TRANSACTION_ID.into(), now_ms()),
            action: FullyQualifiedEntityName {
                path: HEALTH_ACTION_NAMESPACE.into(),
                name: health_action_name(self.controller),
                version: Some(SemVer::INITIAL.to_string()),
                binding: None,
            },
            revision: None,
            user: self.health_identity.clone(),
            activation_id: ActivationId::generate(),
            root_controller_index: ControllerInstanceId::new(self.controller),
            blocking: false,
            content: None,
            init_args: vec![],
            locked_args: json!({}),
            cause: None,
        }
    }

    /// Publishes a test action to `invoker{id}`. It books nothing and is not tracked: its
    /// acknowledgement (told apart by its transaction id) only feeds the supervision.
    async fn send_test_action(&self, invoker: u32) {
        let msg = self.test_action_message();
        let bytes = serde_json::to_vec(&msg).expect("activation message serialises");
        tracing::debug!(invoker, activation = %msg.activation_id, "sending health test action");
        if let Err(e) = self
            .bus
            .publish(&topics::invoker(invoker), bytes.into())
            .await
        {
            tracing::warn!(invoker, error = %e, "publishing health test action failed");
        }
    }

    /// The invokers as the scheduler sees them.
    pub fn invokers(&self) -> Vec<InvokerView> {
        self.invokers
            .lock()
            .unwrap()
            .iter()
            .map(|s| s.view.clone())
            .collect()
    }

    /// Number of activations in flight.
    pub fn in_flight(&self) -> usize {
        self.pending.lock().unwrap().len()
    }

    /// Number of activations of invoking namespace `namespace` in flight.
    pub fn in_flight_of(&self, namespace: &str) -> u64 {
        self.per_namespace
            .lock()
            .unwrap()
            .get(namespace)
            .copied()
            .unwrap_or(0)
    }

    fn count_namespace(&self, namespace: &str, delta: i64) {
        let mut m = self.per_namespace.lock().unwrap();
        let n = m.entry(namespace.to_string()).or_insert(0);
        *n = n.saturating_add_signed(delta);
        if *n == 0 {
            m.remove(namespace);
        }
    }

    /// Applies `f` to the view of `invoker`, if registered.
    fn with_invoker(&self, invoker: u32, f: impl FnOnce(&mut InvokerView)) {
        if let Some(s) = self
            .invokers
            .lock()
            .unwrap()
            .iter_mut()
            .find(|s| s.view.id == invoker)
        {
            f(&mut s.view);
        }
    }

    /// Books `memory_mb` on `invoker`; overload is allowed (free memory saturates at zero,
    /// the booking counts on).
    fn book(&self, invoker: u32, memory_mb: u64) {
        self.with_invoker(invoker, |v| v.book(memory_mb as i64));
    }

    /// Returns `memory_mb` booked on `invoker`.
    fn release(&self, invoker: u32, memory_mb: u64) {
        self.with_invoker(invoker, |v| v.book(-(memory_mb as i64)));
    }

    /// Releases what a finished activation booked.
    fn finish(&self, p: &Pending) {
        self.release(p.invoker, p.memory_mb);
        self.count_namespace(&p.namespace, -1);
    }

    /// Places and publishes `msg`. The receiver resolves when the activation completes (it
    /// is dropped if the invoker never answers before the forced-completion deadline, see
    /// [`LoadBalancerConfig::completion_deadline`]).
    pub async fn publish(
        &self,
        msg: &ActivationMessage,
        memory_mb: u64,
        kind: &str,
        timeout_ms: u64,
    ) -> Result<oneshot::Receiver<Completed>, LoadBalancerError> {
        let action = format!("{}/{}", msg.action.path, msg.action.name);
        let views = self.invokers();
        let placement = Placement {
            namespace: &msg.user.namespace.name,
            action: &action,
            memory_mb,
            kind,
        };
        let invoker = self
            .scheduler
            .schedule(&placement, &views)
            .await
            .ok_or(LoadBalancerError::NoInvokers)?;
        self.book(invoker, memory_mb);
        let (tx, rx) = oneshot::channel();
        // OpenWhisk's forced completion: max(timeout, 60 s) x 2 + 1 min.
        let expires = Instant::now()
            + self
                .config
                .completion_deadline(Duration::from_millis(timeout_ms));
        let namespace = msg.user.namespace.name.clone();
        self.count_namespace(&namespace, 1);
        self.pending.lock().unwrap().insert(
            msg.activation_id.clone(),
            Pending {
                namespace,
                invoker,
                memory_mb,
                action,
                waiter: Some(tx),
                expires,
                record: RecordInfo {
                    subject: msg.user.subject.clone(),
                    name: msg.action.name.clone(),
                    version: msg.action.version.clone(),
                    cause: msg.cause.clone(),
                    binding: msg.action.binding.clone(),
                    kind: kind.to_string(),
                },
                timing: None,
            },
        );
        let bytes = serde_json::to_vec(msg).expect("activation message serialises");
        if let Err(e) = self
            .bus
            .publish(&topics::invoker(invoker), bytes.into())
            .await
        {
            if let Some(p) = self.pending.lock().unwrap().remove(&msg.activation_id) {
                self.finish(&p);
            }
            return Err(e.into());
        }
        tracing::debug!(invoker, activation = %msg.activation_id, "activation published");
        Ok(rx)
    }

    /// Handles one acknowledgement, in a span with its transaction and activation ids.
    pub async fn on_ack(&self, ack: Acknowledgement) {
        let span = tracing::info_span!(
            "ack",
            tid = %ack.transid().id(),
            activation = %ack.activation_id()
        );
        tracing::Instrument::instrument(self.ack(ack), span).await
    }

    async fn ack(&self, ack: Acknowledgement) {
        let id = ack.activation_id().clone();
        let health = ack.transid().id() == HEALTH_TRANSACTION_ID;
        let (completes, response, system_error, instance) = match ack {
            Acknowledgement::Combined {
                response,
                is_system_error,
                instance,
                ..
            } => (
                true,
                Some(response),
                is_system_error,
                Some(instance.instance),
            ),
            Acknowledgement::Completion {
                is_system_error,
                instance,
                ..
            } => (true, None, is_system_error, Some(instance.instance)),
            Acknowledgement::Result { response, .. } => (false, Some(response), false, None),
        };
        let response_timing = match &response {
            Some(AckResponse::Activation(a)) => Some(timing(a)),
            _ => None,
        };
        let result = if system_error {
            InvocationResult::SystemError
        } else {
            InvocationResult::Success
        };
        let tracked = {
            let mut pending = self.pending.lock().unwrap();
            match pending.get_mut(&id) {
                Some(p) => {
                    let waiter = if response.is_some() {
                        p.waiter.take()
                    } else {
                        None
                    };
                    if response_timing.is_some() {
                        p.timing = response_timing;
                    }
                    let done = if completes { pending.remove(&id) } else { None };
                    Some((waiter, done))
                }
                None => None,
            }
        };
        let Some((waiter, done)) = tracked else {
            if completes && health {
                // A health test action: not tracked, delivered to nobody.
                if let Some(invoker) = instance {
                    self.invocation_finished(invoker, result).await;
                }
            } else if completes {
                tracing::debug!(activation = %id, "completion without an entry (forced before?)");
            }
            return;
        };
        if let (Some(w), Some(r)) = (waiter, response) {
            let _ = w.send(match r {
                AckResponse::Activation(a) => Completed::Activation(a),
                AckResponse::Id(_) => Completed::IdOnly,
            });
        }
        if let Some(p) = done {
            self.finish(&p);
            let (duration, init) = p.timing.unwrap_or_default();
            self.scheduler
                .completed(&Completion {
                    invoker: p.invoker,
                    action: &p.action,
                    duration_ms: duration,
                    init_ms: init,
                    system_error,
                })
                .await;
            self.invocation_finished(p.invoker, result).await;
        }
    }

    /// Force-completes the activations whose deadline passed by `now`: writes a whisk
    /// internal error record for each (when a recorder is attached), releases its memory,
    /// drops its waiter (the caller gets 202) and tells the invoker's supervision of a
    /// timeout. Returns how many were completed.
    pub async fn expire(&self, now: Instant) -> usize {
        let expired: Vec<(ActivationId, Pending)> = {
            let mut pending = self.pending.lock().unwrap();
            let ids: Vec<ActivationId> = pending
                .iter()
                .filter(|(_, p)| p.expires <= now)
                .map(|(id, _)| id.clone())
                .collect();
            ids.into_iter()
                .filter_map(|id| pending.remove(&id).map(|p| (id, p)))
                .collect()
        };
        let recorder = self.recorder.lock().unwrap().clone();
        for (id, p) in &expired {
            tracing::warn!(
                activation = %id,
                invoker = p.invoker,
                action = p.action,
                "forced completion of an unanswered activation"
            );
            if let Some(r) = &recorder {
                r.record(&forced_record(id, p)).await;
            }
            self.finish(p);
            self.scheduler
                .completed(&Completion {
                    invoker: p.invoker,
                    action: &p.action,
                    duration_ms: None,
                    init_ms: None,
                    system_error: false,
                })
                .await;
            self.invocation_finished(p.invoker, InvocationResult::Timeout)
                .await;
        }
        expired.len()
    }

    /// Consumes `completed{controller}` (group `completed{controller}`) and `health` (group
    /// `health{controller}`), and runs the supervision clock and the forced-completion sweep
    /// every [`LoadBalancerConfig::tick`], until the returned task is aborted.
    pub async fn start(self: &Arc<Self>) -> Result<tokio::task::JoinHandle<()>, BusError> {
        let topic = topics::completed(self.controller);
        self.bus.create_topic(&topic).await?;
        let mut acks = self
            .bus
            .subscribe(&topic, &format!("completed{}", self.controller))
            .await?;
        self.bus.create_topic(topics::HEALTH).await?;
        let mut pings = self
            .bus
            .subscribe(topics::HEALTH, &format!("health{}", self.controller))
            .await?;
        let me = self.clone();
        let ack_loop = async move {
            loop {
                match acks.poll(256, Duration::from_secs(1)).await {
                    Ok(batch) => {
                        if let Some(m) = me.metrics.lock().unwrap().as_ref() {
                            m.bus_lag(&topic, acks.lag());
                        }
                        for bytes in &batch {
                            match Acknowledgement::parse(bytes) {
                                Ok(ack) => me.on_ack(ack).await,
                                Err(e) => {
                                    tracing::error!(error = %e, "dropping unreadable acknowledgement")
                                }
                            }
                        }
                        if !batch.is_empty() {
                            let _ = acks.commit().await;
                        }
                    }
                    Err(BusError::Closed) => return,
                    Err(e) => {
                        tracing::warn!(error = %e, "ack poll failed");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            }
        };
        let me = self.clone();
        let ping_loop = async move {
            loop {
                match pings.poll(256, Duration::from_secs(1)).await {
                    Ok(batch) => {
                        for bytes in &batch {
                            match PingMessage::parse(bytes) {
                                Ok(ping) => me.on_ping(&ping, Instant::now()).await,
                                Err(e) => {
                                    tracing::error!(error = %e, "dropping unreadable ping")
                                }
                            }
                        }
                        if !batch.is_empty() {
                            let _ = pings.commit().await;
                        }
                    }
                    Err(BusError::Closed) => return,
                    Err(e) => {
                        tracing::warn!(error = %e, "ping poll failed");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            }
        };
        let me = self.clone();
        let tick = self.config.tick.max(Duration::from_millis(1));
        let clock = async move {
            let mut interval = tokio::time::interval(tick);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                interval.tick().await;
                let now = Instant::now();
                me.expire(now).await;
                me.supervise(now).await;
            }
        };
        Ok(tokio::spawn(async move {
            // The clock runs for as long as either feed does.
            tokio::select! {
                _ = async { tokio::join!(ack_loop, ping_loop) } => {}
                _ = clock => {}
            }
        }))
    }
}

/// The record of a force-completed activation, shaped like OpenWhisk's fallback activations.
fn forced_record(id: &ActivationId, p: &Pending) -> WhiskActivation {
    let now = now_ms();
    let r = &p.record;
    let mut annotations = Parameters::new()
        .with("path", json!(p.action))
        .with("kind", json!(r.kind));
    if r.cause.is_some() {
        annotations.set("causedBy", json!("sequence"));
    }
    if let Some(b) = &r.binding {
        annotations.set("binding", json!(b));
    }
    WhiskActivation {
        namespace: p.namespace.clone(),
        name: r.name.clone(),
        subject: r.subject.clone(),
        activation_id: id.clone(),
        start: now,
        end: now,
        cause: r.cause.clone(),
        response: ActivationResponse::whisk_error(FORCED_COMPLETION_MESSAGE),
        logs: vec![],
        version: r
            .version
            .as_deref()
            .and_then(|v| v.parse().ok())
            .unwrap_or(SemVer::INITIAL),
        publish: false,
        annotations,
        duration: Some(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::Consumer;
    use crate::entity::identity::GUEST_KEY;
    use crate::scheduler::LeastLoaded;
    use async_trait::async_trait;
    use bytes::Bytes;

    /// A bus that only records what is published.
    #[derive(Default)]
    struct Recording(Mutex<Vec<(String, Bytes)>>);

    impl Recording {
        fn take(&self, topic: &str) -> Vec<ActivationMessage> {
            let mut all = self.0.lock().unwrap();
            let (mine, rest) = all.drain(..).partition(|(t, _)| t == topic);
            *all = rest;
            mine.into_iter()
                .map(|(_, b): (String, Bytes)| serde_json::from_slice(&b).unwrap())
                .collect()
        }
    }

    #[async_trait]
    impl MessageBus for Recording {
        async fn create_topic(&self, _: &str) -> Result<(), BusError> {
            Ok(())
        }
        async fn publish(&self, topic: &str, payload: Bytes) -> Result<(), BusError> {
            self.0.lock().unwrap().push((topic.to_string(), payload));
            Ok(())
        }
        async fn subscribe(&self, _: &str, _: &str) -> Result<Box<dyn Consumer>, BusError> {
            Err(BusError::Other("not in this test".into()))
        }
    }

    fn balancer(config: LoadBalancerConfig) -> (Arc<LoadBalancer>, Arc<Recording>) {
        let bus = Arc::new(Recording::default());
        let lb = LoadBalancer::with_config(bus.clone(), Arc::new(LeastLoaded), 0, config);
        (lb, bus)
    }

    fn user_message() -> ActivationMessage {
        let key = AuthKey::parse(GUEST_KEY).unwrap();
        ActivationMessage {
            transid: TransactionId::generate(),
            action: FullyQualifiedEntityName::new("guest", "hello"),
            revision: None,
            user: Identity::new("guest", "guest", &key),
            activation_id: ActivationId::generate(),
            root_controller_index: ControllerInstanceId::new(0),
            blocking: true,
            content: None,
            init_args: vec![],
            locked_args: json!({}),
            cause: None,
        }
    }

    fn health_ack(msg: &ActivationMessage, invoker: u32, system_error: bool) -> Acknowledgement {
        Acknowledgement::Combined {
            transid: msg.transid.clone(),
            response: AckResponse::Id(msg.activation_id.clone()),
            is_system_error: system_error,
            instance: InvokerInstanceId::new(invoker, 1024),
        }
    }

    fn states(lb: &LoadBalancer) -> Vec<(String, &'static str)> {
        lb.invoker_health()
            .into_iter()
            .map(|s| (s.instance.display(), s.state.as_str()))
            .collect()
    }

    #[tokio::test]
    async fn pings_discover_invokers_and_test_actions_make_them_healthy() {
        let (lb, bus) = balancer(LoadBalancerConfig::default());
        let t0 = Instant::now();
        lb.on_ping(&PingMessage::new(InvokerInstanceId::new(1, 1024), true), t0)
            .await;
        assert_eq!(
            states(&lb),
            [
                ("invoker0".into(), "down"),
                ("invoker1".into(), "unhealthy")
            ],
            "a gap below a pinging invoker is listed as down"
        );
        assert_eq!(lb.invokers()[1].user_memory_mb, 1024);
        let tests = bus.take("invoker1");
        assert_eq!(tests.len(), 1, "a test action on registration");
        let test = &tests[0];
        assert_eq!(test.transid.id(), HEALTH_TRANSACTION_ID);
        assert_eq!(test.action.path, "whisk.system");
        assert_eq!(test.action.name, "invokerHealthTestAction0");
        assert!(!test.blocking && test.revision.is_none());
        // Nothing is usable yet.
        assert_eq!(
            lb.publish(&user_message(), 256, "nodejs:20", 1000)
                .await
                .unwrap_err(),
            LoadBalancerError::NoInvokers
        );
        // The test action's ack is not tracked but feeds the supervision.
        lb.on_ack(health_ack(test, 1, false)).await;
        assert_eq!(states(&lb)[1].1, "up");
        assert_eq!(lb.healthy_count(), 1);
        assert_eq!(
            bus.take("invoker1").len(),
            1,
            "one more test to clear the buffer"
        );
        let msg = user_message();
        lb.publish(&msg, 256, "nodejs:20", 1000).await.unwrap();
        assert_eq!(bus.take("invoker1")[0].activation_id, msg.activation_id);
        // Silence for the ping timeout takes it offline; scheduling avoids it.
        lb.supervise(t0 + Duration::from_secs(9)).await;
        assert_eq!(states(&lb)[1].1, "up");
        lb.supervise(t0 + Duration::from_secs(10)).await;
        assert_eq!(states(&lb)[1].1, "down");
        assert!(lb
            .publish(&user_message(), 256, "nodejs:20", 1000)
            .await
            .is_err());
        // Pinging again: unhealthy, tested, then up again.
        let t1 = t0 + Duration::from_secs(20);
        lb.on_ping(&PingMessage::new(InvokerInstanceId::new(1, 1024), true), t1)
            .await;
        assert_eq!(states(&lb)[1].1, "unhealthy");
        let test = bus.take("invoker1").pop().unwrap();
        lb.on_ack(health_ack(&test, 1, false)).await;
        assert_eq!(states(&lb)[1].1, "up");
        // A disabled ping takes it out at once.
        lb.on_ping(
            &PingMessage::new(InvokerInstanceId::new(1, 1024), false),
            t1,
        )
        .await;
        assert_eq!(states(&lb)[1].1, "down");
    }

    #[tokio::test]
    async fn manual_invokers_stay_usable_without_pings() {
        let (lb, bus) = balancer(LoadBalancerConfig::default());
        lb.add_invoker(0, 2048);
        assert_eq!(states(&lb), [("invoker0".into(), "up")]);
        let t0 = Instant::now();
        lb.on_ping(
            &PingMessage::new(InvokerInstanceId::new(0, 2048), false),
            t0,
        )
        .await;
        lb.supervise(t0 + Duration::from_secs(3600)).await;
        assert_eq!(states(&lb), [("invoker0".into(), "up")]);
        assert!(bus.take("invoker0").is_empty(), "never tested");
        lb.publish(&user_message(), 256, "nodejs:20", 1000)
            .await
            .unwrap();
        lb.set_usable(0, false);
        assert_eq!(states(&lb), [("invoker0".into(), "down")]);
    }

    #[tokio::test]
    async fn forced_completions_release_and_count_as_timeouts() {
        let config = LoadBalancerConfig {
            min_action_timeout: Duration::ZERO,
            timeout_factor: 1,
            timeout_addon: Duration::ZERO,
            ..LoadBalancerConfig::default()
        };
        let (lb, bus) = balancer(config);
        let t0 = Instant::now();
        lb.on_ping(&PingMessage::new(InvokerInstanceId::new(0, 1024), true), t0)
            .await;
        let test = bus.take("invoker0").pop().unwrap();
        lb.on_ack(health_ack(&test, 0, false)).await;
        let mut waiters = vec![];
        for _ in 0..5 {
            waiters.push(
                lb.publish(&user_message(), 256, "nodejs:20", 100)
                    .await
                    .unwrap(),
            );
        }
        assert_eq!(lb.in_flight(), 5);
        // Overbooked: 1280 MB of 1024 booked, counted beyond the free memory's zero.
        assert_eq!(lb.invokers()[0].free_memory_mb, 0);
        assert_eq!(lb.invokers()[0].booked_memory_mb, 1280);
        assert_eq!(lb.invokers()[0].headroom_mb(), -256);
        assert_eq!(lb.expire(Instant::now() + Duration::from_secs(1)).await, 5);
        assert_eq!(lb.in_flight(), 0);
        assert_eq!(lb.invokers()[0].free_memory_mb, 1024);
        assert_eq!(lb.invokers()[0].booked_memory_mb, 0);
        for w in waiters {
            assert!(
                w.await.is_err(),
                "the waiter is dropped: the caller gets 202"
            );
        }
        // The buffer was primed by the test action's success: five timeouts are > 3.
        assert_eq!(states(&lb)[0].1, "unresponsive");
        let tests: Vec<_> = bus
            .take("invoker0")
            .into_iter()
            .filter(|m| m.transid.id() == HEALTH_TRANSACTION_ID)
            .collect();
        // One after the first success (to clear the buffer), one on entering unresponsive.
        assert_eq!(tests.len(), 2);
    }

    #[tokio::test]
    async fn pool_reports_reach_the_scheduler() {
        let bus = Arc::new(Recording::default());
        let lb = LoadBalancer::new(
            bus.clone(),
            Arc::new(crate::scheduler::WarmAware::default()),
            0,
        );
        lb.add_invoker(0, 1024);
        lb.add_invoker(1, 1024);
        // Two invokers report their pools; 1 has an idle container of guest/hello.
        let mut ping = PingMessage::new(InvokerInstanceId::new(1, 1024), true);
        ping.pool = Some(crate::message::PoolReport {
            containers: vec![crate::message::ContainerReport {
                action: "guest/hello".into(),
                memory_mb: 256,
                busy: false,
                idle_ms: 5,
                expires_in_ms: 60_000,
            }],
        });
        let ping = PingMessage::parse(&ping.to_bytes()).unwrap();
        lb.on_ping(&ping, Instant::now()).await;
        let _w = lb
            .publish(&user_message(), 256, "nodejs:20", 1000)
            .await
            .unwrap();
        assert_eq!(
            bus.take("invoker1").len(),
            1,
            "sent where the warm container is"
        );
    }

    #[test]
    fn deadline_formula() {
        let c = LoadBalancerConfig::default();
        assert_eq!(
            c.completion_deadline(Duration::from_secs(1)),
            Duration::from_secs(180)
        );
        assert_eq!(
            c.completion_deadline(Duration::from_secs(300)),
            Duration::from_secs(660)
        );
        let short = LoadBalancerConfig {
            min_action_timeout: Duration::ZERO,
            timeout_factor: 1,
            timeout_addon: Duration::from_millis(50),
            ..c
        };
        assert_eq!(
            short.completion_deadline(Duration::from_millis(100)),
            Duration::from_millis(150)
        );
    }

    #[test]
    fn readiness_follows_openwhisk() {
        assert!(!ready_state(0, 0, 1.0));
        assert!(ready_state(2, 2, 1.0));
        assert!(!ready_state(2, 1, 1.0));
        assert!(!ready_state(2, 1, 0.5), "integer division, as in OpenWhisk");
        assert!(ready_state(2, 0, 0.0));
    }
}
