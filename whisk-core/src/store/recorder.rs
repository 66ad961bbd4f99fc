//! [`ActivationRecorder`]: how the invoker and the controller write activation records.
//!
//! One place decides whether a record is kept (the [`Retention`] policy) and what happens
//! when the store is away: the write is retried in the background with backoff until the
//! store returns, so an activation that ran while the store was unreachable is not lost;
//! when the retries run out the failure is logged with the activation id.

use super::retention::Retention;
use super::{Store, StoreError, StoreExt};
use crate::entity::WhiskActivation;
use std::sync::Arc;
use std::time::Duration;

/// How long writes are retried while the store is unavailable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The first wait.
    pub initial: Duration,
    /// The longest wait between two attempts.
    pub max: Duration,
    /// Give up after this long in total.
    pub give_up_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(5),
            give_up_after: Duration::from_secs(600),
        }
    }
}

/// Writes activation records under a retention policy, retrying through store outages.
#[derive(Clone)]
pub struct ActivationRecorder {
    store: Arc<dyn Store>,
    retention: Arc<Retention>,
    retry: RetryPolicy,
}

impl ActivationRecorder {
    /// A recorder over `store` keeping what `retention` keeps.
    pub fn new(store: Arc<dyn Store>, retention: Arc<Retention>) -> Self {
        Self {
            store,
            retention,
            retry: RetryPolicy::default(),
        }
    }

    /// Replaces the retry policy.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// The retention policy.
    pub fn retention(&self) -> &Arc<Retention> {
        &self.retention
    }

    /// Stores `activation` unless the policy drops it. Returns once it is written, dropped,
    /// or handed to a background retry (store unavailable).
    pub async fn record(&self, activation: &WhiskActivation) {
        if !self.retention.stores(activation) {
            return;
        }
        match self.store.put_activation(activation).await {
            Ok(_) | Err(StoreError::AlreadyExists) => {}
            Err(StoreError::Unavailable(e)) => {
                tracing::warn!(error = %e, activation = %activation.activation_id,
                    "store unavailable; activation record will be written when it returns");
                let me = self.clone();
                let activation = activation.clone();
                tokio::spawn(async move { me.retry_until_written(activation).await });
            }
            Err(e) => {
                tracing::error!(error = %e, activation = %activation.activation_id,
                    "storing activation failed")
            }
        }
    }

    async fn retry_until_written(&self, activation: WhiskActivation) {
        let started = tokio::time::Instant::now();
        let mut wait = self.retry.initial;
        loop {
            tokio::time::sleep(wait).await;
            match self.store.put_activation(&activation).await {
                Ok(_) | Err(StoreError::AlreadyExists) => {
                    tracing::info!(activation = %activation.activation_id,
                        "activation record written after the store returned");
                    return;
                }
                Err(StoreError::Unavailable(e)) if started.elapsed() < self.retry.give_up_after => {
                    tracing::debug!(error = %e, "store still unavailable");
                    wait = (wait * 2).min(self.retry.max);
                }
                Err(e) => {
                    tracing::error!(error = %e, activation = %activation.activation_id,
                        "activation record lost: the store did not return in time");
                    return;
                }
            }
        }
    }
}
