//! The controller engine: authentication, name resolution, throttles and invocation of
//! primitive actions, sequences and conductor compositions, and trigger fires — independent
//! of HTTP.

mod compose;
mod resolve;
mod throttle;
mod triggers;

pub use compose::{SequenceError, MAX_COMPONENTS};
pub use resolve::{ResolveError, ResolvedAction, ResolvedPackage};
pub use throttle::{NamespaceLimits, ThrottleError};
pub use triggers::{FireError, FireOutcome};

use crate::entity::exec::ExecPut;
use crate::entity::limits::ActionLimitsPut;
use crate::entity::{ActivationId, Identity, RuntimeManifest, SystemLimits, WhiskActivation};
use crate::entity::{WhiskAction, WhiskActionPut};
use crate::loadbalancer::{
    health_action_name, Completed, LoadBalancer, LoadBalancerError, HEALTH_ACTION_CODE,
    HEALTH_ACTION_KIND, HEALTH_ACTION_NAMESPACE,
};
use crate::message::{ActivationMessage, ControllerInstanceId, TransactionId};
use crate::store::Collection;
use crate::store::{ActivationRecorder, Retention, Store, StoreError, StoreExt};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use throttle::Throttles;

/// Controller settings.
#[derive(Debug, Clone, Default)]
pub struct ControllerConfig {
    /// The controller id (`completed{id}` topic).
    pub id: u32,
    /// System limits.
    pub limits: SystemLimits,
    /// Known runtime kinds.
    pub manifest: RuntimeManifest,
    /// Default per-namespace throttles.
    pub namespace_limits: NamespaceLimits,
    /// Which activation records (triggers, sequences, compositions) are kept.
    pub retention: Arc<Retention>,
    /// The metrics registry served at `/metrics` (shared with the invoker in a
    /// single-process platform).
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Whether to publish a `Metric` user event on topic `events` for each request a
    /// throttle refuses (OpenWhisk's `whisk.user-events.enabled`); default off.
    pub user_events: bool,
}

/// What an invocation produced for the caller.
#[derive(Debug, Clone, PartialEq)]
pub enum Invoked {
    /// The activation finished within the wait.
    Completed(Box<WhiskActivation>),
    /// Accepted; the result is not available yet (202).
    Accepted(ActivationId),
}

impl Invoked {
    /// The activation id.
    pub fn activation_id(&self) -> &ActivationId {
        match self {
            Invoked::Completed(a) => &a.activation_id,
            Invoked::Accepted(id) => id,
        }
    }
}

/// Why an invocation failed before it ran.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvokeError {
    /// Placement failed.
    #[error(transparent)]
    LoadBalancer(#[from] LoadBalancerError),
    /// A per-namespace throttle refused it (429).
    #[error(transparent)]
    Throttled(#[from] ThrottleError),
}

/// One invocation request.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// The invoking identity.
    pub user: Identity,
    /// The action.
    pub action: ResolvedAction,
    /// The argument: parameters already merged with the payload (object), or an array.
    pub args: Value,
    /// Whether the caller waits.
    pub blocking: bool,
    /// How long the caller waits at most.
    pub wait: Duration,
    /// The transaction.
    pub transid: TransactionId,
    /// The parent activation (sequence, composition or trigger).
    pub cause: Option<ActivationId>,
}

/// How many parsed actions a controller keeps (the most used ones).
const PARSED_ACTIONS: u64 = 1024;

/// The controller: the REST API's engine, written only against the traits.
pub struct Controller {
    store: Arc<dyn Store>,
    recorder: ActivationRecorder,
    lb: Arc<LoadBalancer>,
    config: ControllerConfig,
    throttles: Throttles,
    events: Option<crate::events::EventPublisher>,
    /// Parsed actions by document id, with the revision they were parsed from: an invoke
    /// parses an action's document (its code can be megabytes) only when it changed.
    actions: moka::sync::Cache<String, (String, Arc<WhiskAction>)>,
}

impl Controller {
    /// A controller over `store` and `lb`.
    pub fn new(
        store: Arc<dyn Store>,
        lb: Arc<LoadBalancer>,
        config: ControllerConfig,
    ) -> Arc<Self> {
        let recorder = ActivationRecorder::new(store.clone(), config.retention.clone());
        if !lb.has_recorder() {
            // Forced completions are recorded like any other activation.
            lb.set_recorder(recorder.clone());
        }
        lb.set_metrics(config.metrics.clone());
        let events = config.user_events.then(|| {
            crate::events::EventPublisher::new(lb.bus().clone(), format!("controller{}", config.id))
        });
        let me = Arc::new(Self {
            events,
            recorder,
            store,
            lb,
            throttles: Throttles::new(config.metrics.clone()),
            actions: moka::sync::Cache::new(PARSED_ACTIONS),
            config,
        });
        // OpenWhisk's controller creates the invoker health test action when it starts.
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let c = me.clone();
            rt.spawn(async move {
                if let Err(e) = c.prepare().await {
                    tracing::error!(error = %e, "creating the invoker health test action failed");
                }
            });
        }
        me
    }

    /// The invoker health test action of this controller (`whisk.system/
    /// invokerHealthTestAction{id}`, `function main(params) { return params; }`, kind
    /// `nodejs:default`, minimum memory); `None` when the manifest has no default Node.js.
    pub fn health_action(&self) -> Option<WhiskAction> {
        let put = WhiskActionPut {
            exec: Some(ExecPut {
                kind: HEALTH_ACTION_KIND.into(),
                code: Some(HEALTH_ACTION_CODE.into()),
                ..ExecPut::default()
            }),
            limits: Some(ActionLimitsPut {
                memory: Some(self.config.limits.memory_mb.min),
                ..ActionLimitsPut::default()
            }),
            ..WhiskActionPut::default()
        };
        WhiskAction::create(
            HEALTH_ACTION_NAMESPACE,
            &health_action_name(self.config.id),
            put,
            &self.config.manifest,
            &self.config.limits,
            crate::message::now_ms(),
        )
        .ok()
    }

    /// Creates or replaces the health test action in the store, so invokers can run the
    /// test actions the load balancer sends. [`Controller::new`] starts this in the
    /// background when called inside a Tokio runtime; await it to know it is done.
    pub async fn prepare(&self) -> Result<(), StoreError> {
        let Some(action) = self.health_action() else {
            return Err(StoreError::Other(format!(
                "cannot create the invoker health test action: no '{HEALTH_ACTION_KIND}' runtime"
            )));
        };
        self.store
            .upsert(Collection::Whisks, &action.doc_id(), action.to_document())
            .await?;
        tracing::info!(action = %action.doc_id(), "invoker health test action exists");
        Ok(())
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The load balancer.
    pub fn load_balancer(&self) -> &Arc<LoadBalancer> {
        &self.lb
    }

    /// The writer of activation records (triggers, compositions, feed failures).
    pub fn recorder(&self) -> &ActivationRecorder {
        &self.recorder
    }

    /// The configuration.
    pub fn config(&self) -> &ControllerConfig {
        &self.config
    }

    /// The identity for Basic credentials `uuid:key`, if valid.
    pub async fn authenticate(
        &self,
        uuid: &str,
        key: &str,
    ) -> Result<Option<Identity>, StoreError> {
        self.store.identity(uuid, key).await
    }

    /// The throttles in force for `user`: the namespace's own limits over the defaults.
    pub fn limits_for(&self, user: &Identity) -> NamespaceLimits {
        self.config.namespace_limits.overridden_by(&user.limits)
    }

    /// Invokes an action for a client: checks the invocation throttles, then runs it.
    pub async fn invoke(self: &Arc<Self>, inv: Invocation) -> Result<Invoked, InvokeError> {
        let limits = self.limits_for(&inv.user);
        let ns = &inv.user.namespace.uuid;
        let in_flight = self.lb.in_flight_of(&inv.user.namespace.name);
        self.throttles
            .check_invoke(ns, &limits, in_flight)
            .inspect_err(|e| self.throttled(&inv.user, e))?;
        if let Some(events) = &self.events {
            // OpenWhisk's entitlement check reports each accepted invocation with the
            // namespace's concurrent count, this one included.
            let count = i64::try_from(in_flight + 1).unwrap_or(i64::MAX);
            events.metric(
                &inv.user,
                crate::message::METRIC_CONCURRENT_INVOCATIONS,
                count,
            );
        }
        self.invoke_unthrottled(inv).await
    }

    /// Publishes the user event of a request of `user` that `refusal` turns away (429).
    fn throttled(&self, user: &Identity, refusal: &ThrottleError) {
        if let Some(events) = &self.events {
            events.metric(user, refusal.limit_name(), 1);
        }
    }

    /// Invokes without the per-namespace throttles (sequence components, composition steps).
    pub async fn invoke_unthrottled(
        self: &Arc<Self>,
        inv: Invocation,
    ) -> Result<Invoked, InvokeError> {
        if inv.action.action.exec.components().is_some()
            || inv.action.action.annotations.is_truthy("conductor", false)
        {
            return self.invoke_composition(inv).await;
        }
        self.invoke_primitive(inv).await
    }

    /// Sends a primitive action to an invoker and waits as the invocation asks.
    async fn invoke_primitive(&self, inv: Invocation) -> Result<Invoked, InvokeError> {
        let action = &inv.action.action;
        let activation_id = ActivationId::generate();
        let mut fqn = action.fqn();
        fqn.version = Some(action.version.to_string());
        fqn.binding = inv.action.binding.clone();
        let msg = ActivationMessage {
            transid: inv.transid,
            action: fqn,
            revision: Some(inv.action.revision.clone()),
            user: inv.user.clone(),
            activation_id: activation_id.clone(),
            root_controller_index: ControllerInstanceId::new(self.config.id),
            blocking: inv.blocking,
            content: Some(inv.args),
            init_args: action.parameters.init_keys(),
            locked_args: json!({}),
            cause: inv.cause,
        };
        let rx = self
            .lb
            .publish(
                &msg,
                action.limits.memory,
                action.exec.kind(),
                action.limits.timeout,
            )
            .await?;
        if !inv.blocking {
            return Ok(Invoked::Accepted(activation_id));
        }
        match tokio::time::timeout(inv.wait, rx).await {
            Ok(Ok(Completed::Activation(a))) => Ok(Invoked::Completed(a)),
            Ok(Ok(Completed::IdOnly)) => match self
                .store
                .get_activation(&inv.user.namespace.name, &activation_id)
                .await
            {
                Ok(a) => Ok(Invoked::Completed(Box::new(a))),
                Err(_) => Ok(Invoked::Accepted(activation_id)),
            },
            _ => Ok(Invoked::Accepted(activation_id)),
        }
    }
}
