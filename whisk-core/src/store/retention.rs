//! Activation retention: how long activation records are kept, how many per namespace, and
//! whether successful ones are stored at all. Activation storage is what grows without
//! bound; a [`Retention`] bounds it, globally or per namespace.
//!
//! Policies are written `max-age=7d,max-count=1000,successful=false` (every part optional):
//!
//! ```
//! use whisk_core::store::retention::RetentionPolicy;
//! let p: RetentionPolicy = "max-age=1h,max-count=500".parse().unwrap();
//! assert_eq!(p.max_age, Some(std::time::Duration::from_secs(3600)));
//! assert_eq!(p.max_count, Some(500));
//! assert!(p.store_successful);
//! ```

use super::{Collection, Query, Store, StoreError};
use crate::entity::WhiskActivation;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// One retention policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// Records whose `start` is older than this are deleted (none: kept forever).
    pub max_age: Option<Duration>,
    /// Only the newest this many records of a namespace are kept (none: no bound).
    pub max_count: Option<u64>,
    /// Whether successful activations (status code 0) are stored; failures always are.
    /// OpenWhisk's `STORE_FAILURES` level is `false`.
    pub store_successful: bool,
}

impl Default for RetentionPolicy {
    fn default() -> Self {
        Self {
            max_age: None,
            max_count: None,
            store_successful: true,
        }
    }
}

impl RetentionPolicy {
    /// Whether the sweeper has anything to delete under this policy.
    pub fn bounded(&self) -> bool {
        self.max_age.is_some() || self.max_count.is_some()
    }
}

impl std::str::FromStr for RetentionPolicy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let mut p = RetentionPolicy::default();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| format!("expected key=value, got '{part}'"))?;
            match k.trim() {
                "max-age" => {
                    let d = humantime::parse_duration(v.trim())
                        .map_err(|e| format!("max-age '{v}': {e}"))?;
                    p.max_age = Some(d);
                }
                "max-count" => {
                    let n = v
                        .trim()
                        .parse()
                        .map_err(|e| format!("max-count '{v}': {e}"))?;
                    p.max_count = Some(n);
                }
                "successful" => {
                    p.store_successful = v
                        .trim()
                        .parse()
                        .map_err(|e| format!("successful '{v}': {e}"))?;
                }
                other => {
                    return Err(format!(
                        "unknown retention setting '{other}' (max-age, max-count, successful)"
                    ))
                }
            }
        }
        Ok(p)
    }
}

/// The retention of a platform: a default policy and per-namespace overrides.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Retention {
    /// The policy of namespaces without an override.
    pub default: RetentionPolicy,
    /// Overrides by namespace name.
    pub namespaces: HashMap<String, RetentionPolicy>,
}

impl Retention {
    /// The policy of `namespace`.
    pub fn policy(&self, namespace: &str) -> &RetentionPolicy {
        self.namespaces.get(namespace).unwrap_or(&self.default)
    }

    /// Whether `activation` is to be stored.
    pub fn stores(&self, activation: &WhiskActivation) -> bool {
        activation.response.status != crate::entity::StatusCode::Success
            || self.policy(&activation.namespace).store_successful
    }

    /// Whether any policy bounds storage (so a sweeper is worth running).
    pub fn bounded(&self) -> bool {
        self.default.bounded() || self.namespaces.values().any(RetentionPolicy::bounded)
    }

    /// Deletes the activation records the policies no longer keep, as of `now_ms` (epoch
    /// ms). Returns how many were deleted.
    pub async fn sweep(&self, store: &dyn Store, now_ms: u64) -> Result<u64, StoreError> {
        let mut deleted = 0;
        for ns in store.activation_namespaces().await? {
            let policy = self.policy(&ns);
            let base = Query {
                collection: Some(Collection::Activations),
                namespace: ns.clone(),
                ..Default::default()
            };
            if let Some(age) = policy.max_age {
                let cutoff = now_ms.saturating_sub(age.as_millis() as u64);
                let expired = Query {
                    upto: Some(cutoff.saturating_sub(1)),
                    ..base.clone()
                };
                deleted += delete_all(store, &expired).await?;
            }
            if let Some(max) = policy.max_count {
                let surplus = Query {
                    skip: max as usize,
                    ..base
                };
                deleted += delete_all(store, &surplus).await?;
            }
        }
        Ok(deleted)
    }

    /// Runs [`sweep`](Self::sweep) every `every` until the task is aborted.
    pub fn spawn_sweeper(
        self: Arc<Self>,
        store: Arc<dyn Store>,
        every: Duration,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                match self.sweep(store.as_ref(), crate::message::now_ms()).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(deleted = n, "activation retention sweep"),
                    Err(e) => tracing::warn!(error = %e, "activation retention sweep failed"),
                }
            }
        })
    }
}

/// Page size of a sweep.
const SWEEP_PAGE: usize = 500;

/// Deletes every activation `query` matches, a page at a time. A `skip` in the query stays
/// in place (what is past it shrinks as records go).
async fn delete_all(store: &dyn Store, query: &Query) -> Result<u64, StoreError> {
    let mut deleted = 0;
    loop {
        let page = store
            .query(&Query {
                limit: SWEEP_PAGE,
                ..query.clone()
            })
            .await?;
        if page.is_empty() {
            return Ok(deleted);
        }
        let mut progressed = false;
        for doc in page {
            let id = match (
                doc.get("namespace").and_then(|v| v.as_str()),
                doc.get("activationId").and_then(|v| v.as_str()),
            ) {
                (Some(ns), Some(aid)) => format!("{ns}/{aid}"),
                _ => continue,
            };
            let rev = match store.get(Collection::Activations, &id).await {
                Ok(d) => d.rev,
                Err(StoreError::NotFound) => continue,
                Err(e) => return Err(e),
            };
            match store.delete(Collection::Activations, &id, &rev).await {
                Ok(()) => {
                    deleted += 1;
                    progressed = true;
                }
                Err(StoreError::NotFound | StoreError::Conflict) => {}
                Err(e) => return Err(e),
            }
        }
        if !progressed {
            return Ok(deleted);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_parse_and_reject_nonsense() {
        let p: RetentionPolicy = "max-age=2d, max-count=10, successful=false"
            .parse()
            .unwrap();
        assert_eq!(p.max_age, Some(Duration::from_secs(2 * 86400)));
        assert_eq!(p.max_count, Some(10));
        assert!(!p.store_successful);
        assert!(p.bounded());
        assert_eq!(
            "".parse::<RetentionPolicy>().unwrap(),
            RetentionPolicy::default()
        );
        assert!("max-age=soon".parse::<RetentionPolicy>().is_err());
        assert!("max-count=-1".parse::<RetentionPolicy>().is_err());
        assert!("forever".parse::<RetentionPolicy>().is_err());
        assert!("keep=1".parse::<RetentionPolicy>().is_err());
    }
}
