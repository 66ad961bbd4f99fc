//! The invoker engine: consumes `invoker{N}`, runs activations in its container pool, stores
//! the activation records and acknowledges to `completed{controller}`.

pub mod pool;

use crate::bus::{topics, MessageBus};
use crate::entity::{
    ActivationId, ActivationResponse, Parameters, SemVer, WhiskAction, WhiskActivation,
};
use crate::events::{EventPublisher, PendingEvent};
use crate::message::{
    AckResponse, Acknowledgement, ActivationMessage, InvokerInstanceId, PingMessage,
};
use crate::metrics::Metrics;
use crate::runtime::ActivationContext;
use crate::store::{ActivationRecorder, Retention, Store, StoreError, StoreExt};
use pool::{init_params_env, ContainerPool, Job, JobOutcome};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How many recent activation ids are remembered to drop duplicate deliveries.
const RECENT_IDS: usize = 16_384;

/// The error of an activation still running when a graceful shutdown's drain ran out
/// (recorded as a `whisk internal error`).
pub const DRAIN_MESSAGE: &str =
    "The invoker shut down before the action finished; the activation was aborted.";

/// How long a drain waits, after its deadline, for activations that ended before it to finish
/// writing their records and acknowledgements.
const FINISH_GRACE: Duration = Duration::from_secs(10);

/// Held while an activation taken off the in-flight list is recorded and acknowledged;
/// dropping it (also when the task is cancelled) tells a waiting drain.
struct Finishing<'a>(&'a Invoker);

impl Drop for Finishing<'_> {
    fn drop(&mut self) {
        self.0
            .finishing
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        self.0.settled.notify_waiters();
    }
}

/// Remembers recently seen activation ids (bounded).
#[derive(Default)]
struct RecentIds {
    set: HashSet<ActivationId>,
    order: VecDeque<ActivationId>,
}

impl RecentIds {
    /// Records `id`; false when it was seen already.
    fn insert(&mut self, id: &ActivationId) -> bool {
        if !self.set.insert(id.clone()) {
            return false;
        }
        self.order.push_back(id.clone());
        if self.order.len() > RECENT_IDS {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
        true
    }
}

/// Settings of an [`Invoker`] beyond its pool's.
#[derive(Debug, Clone)]
pub struct InvokerConfig {
    /// Which activation records are kept.
    pub retention: Arc<Retention>,
    /// How often a [`PingMessage`] goes to topic `health` (OpenWhisk: 1 s).
    pub ping_interval: Duration,
    /// Where activations and the pool are counted (shared with the controller in a
    /// single-process platform).
    pub metrics: Arc<Metrics>,
    /// Whether to publish an `Activation` user event on topic `events` after each activation
    /// (OpenWhisk's `whisk.user-events.enabled`); default off.
    pub user_events: bool,
}

impl Default for InvokerConfig {
    fn default() -> Self {
        Self {
            retention: Arc::default(),
            ping_interval: Duration::from_secs(1),
            metrics: Arc::default(),
            user_events: false,
        }
    }
}

/// An invoker: one consumer of `invoker{id}` driving one container pool.
pub struct Invoker {
    instance: InvokerInstanceId,
    store: Arc<dyn Store>,
    recorder: ActivationRecorder,
    bus: Arc<dyn MessageBus>,
    pool: Arc<ContainerPool>,
    recent: Mutex<RecentIds>,
    /// Activations being processed, by id; whoever removes one (its task when done, or
    /// [`Invoker::drain`] at its deadline) writes its one record.
    in_flight: Mutex<HashMap<ActivationId, Arc<ActivationMessage>>>,
    /// Signalled each time an activation in flight is done, and each time one finishes
    /// recording.
    settled: tokio::sync::Notify,
    /// Activations taken off the in-flight list whose record and acknowledgement are still
    /// being written ([`Finishing`]).
    finishing: std::sync::atomic::AtomicUsize,
    actions: Mutex<HashMap<String, (String, Arc<WhiskAction>)>>,
    ping_interval: Duration,
    enabled: AtomicBool,
    metrics: Arc<Metrics>,
    events: Option<EventPublisher>,
}

impl Invoker {
    /// An invoker over `pool`, numbered by the pool's `invoker_id`, storing every activation.
    pub fn new(
        store: Arc<dyn Store>,
        bus: Arc<dyn MessageBus>,
        pool: Arc<ContainerPool>,
    ) -> Arc<Self> {
        Self::with_config(store, bus, pool, InvokerConfig::default())
    }

    /// An invoker whose activation records follow `retention`.
    pub fn with_retention(
        store: Arc<dyn Store>,
        bus: Arc<dyn MessageBus>,
        pool: Arc<ContainerPool>,
        retention: Arc<Retention>,
    ) -> Arc<Self> {
        Self::with_config(
            store,
            bus,
            pool,
            InvokerConfig {
                retention,
                ..InvokerConfig::default()
            },
        )
    }

    /// An invoker with `config`.
    pub fn with_config(
        store: Arc<dyn Store>,
        bus: Arc<dyn MessageBus>,
        pool: Arc<ContainerPool>,
        config: InvokerConfig,
    ) -> Arc<Self> {
        let cfg = pool.config();
        config.metrics.register_pool(&pool);
        let instance = InvokerInstanceId::new(cfg.invoker_id, cfg.user_memory_mb);
        Arc::new(Self {
            events: config
                .user_events
                .then(|| EventPublisher::new(bus.clone(), format!("invoker{}", instance.instance))),
            instance,
            recorder: ActivationRecorder::new(store.clone(), config.retention),
            store,
            bus,
            pool,
            recent: Mutex::new(RecentIds::default()),
            in_flight: Mutex::new(HashMap::new()),
            settled: tokio::sync::Notify::new(),
            finishing: std::sync::atomic::AtomicUsize::new(0),
            actions: Mutex::new(HashMap::new()),
            ping_interval: config.ping_interval.max(Duration::from_millis(1)),
            enabled: AtomicBool::new(true),
            metrics: config.metrics,
        })
    }

    /// Its instance id.
    pub fn instance(&self) -> &InvokerInstanceId {
        &self.instance
    }

    /// Its metrics registry.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Its pool.
    pub fn pool(&self) -> &Arc<ContainerPool> {
        &self.pool
    }

    /// Whether it is pinging as enabled.
    pub fn is_enabled(&self) -> bool {
        self.enabled.load(Ordering::SeqCst)
    }

    /// Disables the invoker, as OpenWhisk's `disable`: publishes one ping with `isEnabled:
    /// false` (controllers take it out of scheduling at once) and stops the regular pings.
    /// Call it before a graceful shutdown. Activations still arriving are run.
    pub async fn disable(&self) -> Result<(), crate::bus::BusError> {
        self.enabled.store(false, Ordering::SeqCst);
        self.ping(false).await
    }

    /// Enables a disabled invoker again: regular pings resume (controllers test it and
    /// take it back once healthy).
    pub fn enable(&self) {
        self.enabled.store(true, Ordering::SeqCst);
    }

    /// Publishes one ping to topic `health`.
    async fn ping(&self, enabled: bool) -> Result<(), crate::bus::BusError> {
        let mut ping = PingMessage::new(self.instance.clone(), enabled);
        ping.pool = Some(self.pool.report());
        self.bus
            .publish(topics::HEALTH, ping.to_bytes().into())
            .await
    }

    /// Subscribes to `invoker{id}` and processes messages, and pings topic `health` every
    /// [`InvokerConfig::ping_interval`] while enabled, until the task is aborted.
    pub async fn start(
        self: &Arc<Self>,
    ) -> Result<tokio::task::JoinHandle<()>, crate::bus::BusError> {
        let topic = topics::invoker(self.instance.instance);
        self.bus.create_topic(&topic).await?;
        self.bus.create_topic(topics::HEALTH).await?;
        let mut consumer = self
            .bus
            .subscribe(&topic, &format!("invoker{}", self.instance.instance))
            .await?;
        self.pool.start();
        let me = self.clone();
        let pinger = async move {
            let mut interval = tokio::time::interval(me.ping_interval);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                interval.tick().await;
                if me.is_enabled() {
                    if let Err(e) = me.ping(true).await {
                        tracing::error!(error = %e, "failed to ping the controller");
                    }
                }
            }
        };
        let me = self.clone();
        let consume = async move {
            loop {
                let batch = match consumer.poll(128, Duration::from_secs(1)).await {
                    Ok(b) => {
                        me.metrics.bus_lag(&topic, consumer.lag());
                        b
                    }
                    Err(crate::bus::BusError::Closed) => return,
                    Err(e) => {
                        tracing::warn!(error = %e, "invoker poll failed");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        continue;
                    }
                };
                for bytes in &batch {
                    match serde_json::from_slice::<ActivationMessage>(bytes) {
                        Ok(msg) => {
                            let me = me.clone();
                            tokio::spawn(async move { me.handle(msg).await });
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "dropping unreadable activation message")
                        }
                    }
                }
                if !batch.is_empty() {
                    if let Err(e) = consumer.commit().await {
                        tracing::warn!(error = %e, "invoker commit failed");
                    }
                }
            }
        };
        Ok(tokio::spawn(async move {
            tokio::select! {
                _ = consume => {}
                _ = pinger => {}
            }
        }))
    }

    /// The action of `msg`, from the per-revision cache or the store.
    async fn action(
        &self,
        msg: &ActivationMessage,
    ) -> Result<(Arc<WhiskAction>, String), StoreError> {
        let id = format!("{}/{}", msg.action.path, msg.action.name);
        if let Some(rev) = &msg.revision {
            if let Some((r, a)) = self.actions.lock().unwrap().get(&id) {
                if r == rev {
                    return Ok((a.clone(), r.clone()));
                }
            }
        }
        let (action, rev) = self.store.get_action(&id).await?;
        let action = Arc::new(action);
        self.actions
            .lock()
            .unwrap()
            .insert(id, (rev.clone(), action.clone()));
        Ok((action, rev))
    }

    /// Runs one activation end to end. Duplicates are never run twice: an id seen recently
    /// by this process is dropped, and an id whose record is already in the store (run
    /// before a restart, or force-completed by the controller) is not run again — its
    /// acknowledgement is repeated from the stored record instead, in case the first was lost.
    ///
    /// Runs in a span with the message's transaction and activation ids, so every event of
    /// the activation (pool, executor) carries them.
    pub async fn handle(&self, msg: ActivationMessage) {
        let span = tracing::info_span!(
            "activation",
            tid = %msg.transid.id(),
            activation = %msg.activation_id
        );
        tracing::Instrument::instrument(self.process(Arc::new(msg)), span).await
    }

    /// How many activations are being processed.
    pub fn in_flight(&self) -> usize {
        self.in_flight.lock().unwrap().len()
    }

    /// Graceful shutdown's drain: waits up to `deadline` for the activations in flight to
    /// finish (call it once no new ones arrive), then records each one still running as a
    /// `whisk internal error` ([`DRAIN_MESSAGE`]) and acknowledges it, so every activation
    /// the invoker took ends with exactly one record. Returns how many it ended that way.
    /// Their runs go on until the pool is shut down, and write nothing.
    pub async fn drain(&self, deadline: Duration) -> usize {
        let _ = tokio::time::timeout(
            deadline,
            self.settled_until(|me| me.in_flight() == 0 && me.finishing() == 0),
        )
        .await;
        let left: Vec<_> = self.in_flight.lock().unwrap().drain().collect();
        for (id, msg) in &left {
            tracing::warn!(activation = %id, "still running at the drain deadline: recorded as failed");
            let outcome = unrun(ActivationResponse::whisk_error(DRAIN_MESSAGE));
            self.finish(msg, self.record(msg, None, outcome), false)
                .await;
        }
        // Activations that ended before the deadline may still be writing their records
        // (a blocking one's result goes out first): a process that exits now would lose them.
        let _ =
            tokio::time::timeout(FINISH_GRACE, self.settled_until(|me| me.finishing() == 0)).await;
        left.len()
    }

    /// Returns once `done` holds, looking again each time an activation settles or finishes.
    async fn settled_until(&self, done: impl Fn(&Self) -> bool) {
        loop {
            let settled = self.settled.notified();
            if done(self) {
                return;
            }
            settled.await;
        }
    }

    /// Activations whose record and acknowledgement are being written.
    fn finishing(&self) -> usize {
        self.finishing.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Takes activation `id` off the in-flight list; `None` when the drain already ended it.
    /// The caller records and acknowledges it while holding the returned guard.
    fn settle(&self, id: &ActivationId) -> Option<Finishing<'_>> {
        let guard = {
            let mut in_flight = self.in_flight.lock().unwrap();
            // Counted as finishing before the in-flight list lets go of it, so a drain never
            // sees both empty in between.
            in_flight.remove(id).map(|_| {
                self.finishing
                    .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                Finishing(self)
            })
        };
        self.settled.notify_waiters();
        guard
    }

    async fn process(&self, msg: Arc<ActivationMessage>) {
        tracing::debug!(action = %msg.action.name, "activation received");
        if !self.recent.lock().unwrap().insert(&msg.activation_id) {
            tracing::info!(activation = %msg.activation_id, "duplicate delivery dropped");
            return;
        }
        self.in_flight
            .lock()
            .unwrap()
            .insert(msg.activation_id.clone(), msg.clone());
        if let Ok(done) = self
            .store
            .get_activation(&msg.user.namespace.name, &msg.activation_id)
            .await
        {
            tracing::info!(activation = %msg.activation_id,
                "activation already recorded; duplicate delivery not run");
            if let Some(_finishing) = self.settle(&msg.activation_id) {
                self.acknowledge(&msg, done).await;
            }
            return;
        }
        let (activation, result_sent) = match self.action(&msg).await {
            Ok((action, rev)) => self.run(&msg, action, rev).await,
            Err(e) => {
                let response = match e {
                    StoreError::NotFound => ActivationResponse::error(
                        crate::entity::StatusCode::ApplicationError,
                        "Action could not be found or may have been deleted.",
                    ),
                    _ => ActivationResponse::whisk_error("Action could not be fetched."),
                };
                (self.record(&msg, None, unrun(response)), false)
            }
        };
        if let Some(_finishing) = self.settle(&msg.activation_id) {
            self.finish(&msg, activation, result_sent).await;
        }
    }

    /// Records `activation` and acknowledges it (a completion only when its result went out
    /// before), then publishes its user event.
    async fn finish(
        &self,
        msg: &ActivationMessage,
        activation: WhiskActivation,
        result_sent: bool,
    ) {
        self.metrics.observe_activation(&activation);
        self.recorder.record(&activation).await;
        // The user event goes out after the ack (it is made first: the ack takes the record).
        let event = self
            .events
            .as_ref()
            .and_then(|e| e.activation(&activation, &msg.user));
        if result_sent {
            self.completed(msg, &activation).await;
        } else {
            self.acknowledge(msg, activation).await;
        }
        event.into_iter().for_each(PendingEvent::publish);
    }

    /// Runs `action` for `msg` in the pool. A blocking activation's result goes to its
    /// controller as soon as the runtime has answered, before the logs are collected
    /// (OpenWhisk's `ResultMessage`, so the waiting client does not wait for the logs; its
    /// activation then shows no logs, the stored record has them). Returns the record with
    /// its logs, and whether the result was sent that way.
    async fn run(
        &self,
        msg: &ActivationMessage,
        action: Arc<WhiskAction>,
        revision: String,
    ) -> (WhiskActivation, bool) {
        let job = self.job(msg, action.clone(), revision);
        if !msg.blocking {
            let outcome = self.pool.run(job).await;
            return (self.record(msg, Some(&action), outcome), false);
        }
        let (tx, mut rx) = tokio::sync::oneshot::channel();
        let run = self.pool.run_reporting(job, tx);
        tokio::pin!(run);
        // The run may also finish in the poll that reported its result (logs already there):
        // the result still goes out on its own, so a blocking response never has logs.
        let (early, finished) = tokio::select! {
            biased;
            Ok(early) = &mut rx => (Some(early), None),
            outcome = &mut run => (rx.try_recv().ok(), Some(outcome)),
        };
        let Some(early) = early else {
            let outcome = finished.expect("the run finished without reporting a result");
            return (self.record(msg, Some(&action), outcome), false);
        };
        let mut activation = self.record(msg, Some(&action), early);
        let result = Acknowledgement::Result {
            transid: msg.transid.clone(),
            response: AckResponse::Activation(Box::new(activation.clone())),
        };
        let outcome = match finished {
            Some(outcome) => {
                self.publish_ack(msg, &result).await;
                outcome
            }
            None => tokio::join!(self.publish_ack(msg, &result), run).1,
        };
        activation.logs = outcome.logs;
        (activation, true)
    }

    /// Sends the Combined acknowledgement of `activation` to `completed{controller}`.
    async fn acknowledge(&self, msg: &ActivationMessage, activation: WhiskActivation) {
        let system_error = is_system_error(&activation);
        let response = if msg.blocking {
            AckResponse::Activation(Box::new(activation))
        } else {
            AckResponse::Id(msg.activation_id.clone())
        };
        let ack = Acknowledgement::Combined {
            transid: msg.transid.clone(),
            response,
            is_system_error: system_error,
            instance: self.instance.clone(),
        };
        self.publish_ack(msg, &ack).await;
    }

    /// Sends the completion of `activation` (its result went out before) to
    /// `completed{controller}`: frees its slot.
    async fn completed(&self, msg: &ActivationMessage, activation: &WhiskActivation) {
        let ack = Acknowledgement::Completion {
            transid: msg.transid.clone(),
            activation_id: msg.activation_id.clone(),
            is_system_error: is_system_error(activation),
            instance: self.instance.clone(),
        };
        self.publish_ack(msg, &ack).await;
    }

    /// Publishes `ack` to the `completed{controller}` topic of `msg`'s controller.
    async fn publish_ack(&self, msg: &ActivationMessage, ack: &Acknowledgement) {
        let topic =
            crate::bus::topics::completed(msg.root_controller_index.as_string.parse().unwrap_or(0));
        let bytes = serde_json::to_vec(ack).expect("ack serialises");
        if let Err(e) = self.bus.publish(&topic, bytes.into()).await {
            tracing::error!(error = %e, "publishing ack failed");
        }
    }

    fn job(&self, msg: &ActivationMessage, action: Arc<WhiskAction>, revision: String) -> Job {
        let mut args = msg.content.clone().unwrap_or_else(|| json!({}));
        // Init parameters go to /init as environment and are left out of the /run argument,
        // as OpenWhisk's ContainerProxy partitions them. They are the message's: the
        // controller took them from the resolved action, whose parameters include its
        // package's and binding's (the stored action here has only its own).
        let init_env = init_params_env(&msg.init_args, &args);
        if let Value::Object(m) = &mut args {
            m.retain(|k, _| !init_env.contains_key(k));
        }
        // An identity found by namespace in a store that keeps only hashes of keys has no
        // key to give (a web action's owner, a feed's trigger owner).
        let api_key = action
            .annotations
            .is_truthy("provide-api-key", true)
            .then(|| msg.user.api_key().to_string())
            .filter(|k| !k.is_empty());
        Job {
            namespace: msg.user.namespace.name.clone(),
            context: ActivationContext {
                api_key,
                namespace: msg.user.namespace.name.clone(),
                action_name: action.fqn().absolute(),
                action_version: action.version.to_string(),
                activation_id: msg.activation_id.to_string(),
                transaction_id: msg.transid.id().to_string(),
                deadline_ms: 0,
            },
            init_env,
            args,
            action,
            revision,
        }
    }

    /// The activation record for `outcome`.
    fn record(
        &self,
        msg: &ActivationMessage,
        action: Option<&WhiskAction>,
        o: JobOutcome,
    ) -> WhiskActivation {
        let mut annotations = Parameters::new()
            .with(
                "path",
                json!(format!("{}/{}", msg.action.path, msg.action.name)),
            )
            .with(
                "waitTime",
                json!(o.start.saturating_sub(msg.transid.start_ms())),
            );
        match action {
            Some(a) => {
                annotations.set("kind", json!(a.exec.kind()));
                annotations.set("limits", json!(a.limits));
                annotations.set("timeout", json!(o.timed_out));
                if let Some(t) = o.init_time {
                    annotations.set("initTime", json!(t));
                }
            }
            None => annotations.set("kind", json!("unknown")),
        }
        if msg.cause.is_some() {
            annotations.set("causedBy", json!("sequence"));
        }
        if let Some(b) = &msg.action.binding {
            annotations.set("binding", json!(b));
        }
        WhiskActivation {
            namespace: msg.user.namespace.name.clone(),
            name: msg.action.name.clone(),
            subject: msg.user.subject.clone(),
            activation_id: msg.activation_id.clone(),
            start: o.start,
            end: o.end,
            cause: msg.cause.clone(),
            response: o.response,
            logs: o.logs,
            version: action.map(|a| a.version).unwrap_or(SemVer::INITIAL),
            publish: false,
            annotations,
            duration: Some(o.end.saturating_sub(o.start)),
        }
    }
}

/// Whether `activation` failed with a whisk (system) error.
fn is_system_error(activation: &WhiskActivation) -> bool {
    activation.response.status == crate::entity::StatusCode::WhiskError
}

/// The outcome of an activation that ended without running: `response`, now.
fn unrun(response: ActivationResponse) -> JobOutcome {
    let now = crate::message::now_ms();
    JobOutcome {
        response,
        logs: vec![],
        start: now,
        end: now,
        init_time: None,
        timed_out: false,
        start_kind: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_ids_drop_duplicates_and_stay_bounded() {
        let mut r = RecentIds::default();
        let id = ActivationId::generate();
        assert!(r.insert(&id));
        assert!(!r.insert(&id));
        for _ in 0..RECENT_IDS {
            r.insert(&ActivationId::generate());
        }
        assert_eq!(r.set.len(), RECENT_IDS);
        assert!(
            r.insert(&id),
            "oldest id forgotten once the bound is reached"
        );
    }
}
