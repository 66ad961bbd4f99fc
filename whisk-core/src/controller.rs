//! The controller engine: authentication and invocation, independent of HTTP.

use crate::entity::{
    ActivationId, Identity, RuntimeManifest, SystemLimits, WhiskAction, WhiskActivation,
};
use crate::loadbalancer::{Completed, LoadBalancer, LoadBalancerError};
use crate::message::{ActivationMessage, ControllerInstanceId, TransactionId};
use crate::store::{Store, StoreError, StoreExt};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

/// Controller settings.
#[derive(Debug, Clone, Default)]
pub struct ControllerConfig {
    /// The controller id (`completed{id}` topic).
    pub id: u32,
    /// System limits.
    pub limits: SystemLimits,
    /// Known runtime kinds.
    pub manifest: RuntimeManifest,
}

/// What an invocation produced for the caller.
#[derive(Debug, Clone, PartialEq)]
pub enum Invoked {
    /// The activation finished within the wait.
    Completed(Box<WhiskActivation>),
    /// Accepted; the result is not available yet (202).
    Accepted(ActivationId),
}

/// Why an invocation failed before it ran.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvokeError {
    /// Placement failed.
    #[error(transparent)]
    LoadBalancer(#[from] LoadBalancerError),
}

/// The controller: the REST API's engine, written only against the traits.
pub struct Controller {
    store: Arc<dyn Store>,
    lb: Arc<LoadBalancer>,
    config: ControllerConfig,
}

impl Controller {
    /// A controller over `store` and `lb`.
    pub fn new(
        store: Arc<dyn Store>,
        lb: Arc<LoadBalancer>,
        config: ControllerConfig,
    ) -> Arc<Self> {
        Arc::new(Self { store, lb, config })
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The load balancer.
    pub fn load_balancer(&self) -> &Arc<LoadBalancer> {
        &self.lb
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

    /// Invokes `action` (stored at `revision`) with `args` for `user`. With `blocking`, waits
    /// up to `wait` for the result.
    #[allow(clippy::too_many_arguments)]
    pub async fn invoke(
        &self,
        user: &Identity,
        action: &WhiskAction,
        revision: &str,
        args: Value,
        blocking: bool,
        wait: Duration,
        transid: TransactionId,
    ) -> Result<Invoked, InvokeError> {
        let activation_id = ActivationId::generate();
        let mut fqn = action.fqn();
        fqn.version = Some(action.version.to_string());
        let msg = ActivationMessage {
            transid,
            action: fqn,
            revision: Some(revision.to_string()),
            user: user.clone(),
            activation_id: activation_id.clone(),
            root_controller_index: ControllerInstanceId::new(self.config.id),
            blocking,
            content: Some(args),
            init_args: action.parameters.init_keys(),
            locked_args: json!({}),
            cause: None,
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
        if !blocking {
            return Ok(Invoked::Accepted(activation_id));
        }
        match tokio::time::timeout(wait, rx).await {
            Ok(Ok(Completed::Activation(a))) => Ok(Invoked::Completed(a)),
            Ok(Ok(Completed::IdOnly)) => match self
                .store
                .get_activation(&user.namespace.name, &activation_id)
                .await
            {
                Ok(a) => Ok(Invoked::Completed(Box::new(a))),
                Err(_) => Ok(Invoked::Accepted(activation_id)),
            },
            _ => Ok(Invoked::Accepted(activation_id)),
        }
    }
}
