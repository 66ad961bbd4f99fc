//! [`FaultyStore`]: a [`Store`] that injects [`Faults`] into another.

use super::{Fault, FaultHandle, Faults, Injector, INJECTED, LOST};
use crate::entity::identity::Identity;
use crate::store::{Collection, Document, Query, Store, StoreError};
use async_trait::async_trait;
use serde_json::Value;
use std::future::Future;
use std::sync::Arc;

/// A store that delays, fails, loses and repeats the calls to `S`. Reads see errors (a drop
/// of a read is an error too) and latency; writes (`put`, `delete`) also see drops (applied,
/// answer lost) and duplicates (applied twice; the second answer is ignored, as a retried
/// request's would be).
pub struct FaultyStore<S> {
    inner: S,
    injector: Arc<Injector>,
}

impl<S: Store> FaultyStore<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, faults: Faults) -> Self {
        Self {
            inner,
            injector: Injector::new(faults),
        }
    }

    /// Switches the faults and reads the counts.
    pub fn handle(&self) -> FaultHandle {
        FaultHandle(self.injector.clone())
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// Runs write `op` under one roll: once, not at all, once with its answer lost, or twice
    /// (the first answer counts).
    async fn write<T, F, Fut>(&self, op: F) -> Result<T, StoreError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        match self.injector.roll().await {
            Fault::Pass => op().await,
            Fault::Error => Err(StoreError::Unavailable(INJECTED.into())),
            Fault::Drop => {
                op().await?;
                Err(StoreError::Unavailable(LOST.into()))
            }
            Fault::Duplicate => {
                let first = op().await;
                let _ = op().await;
                first
            }
        }
    }

    /// The faults of a read: latency, and errors (a lost read is an error too).
    async fn read(&self) -> Result<(), StoreError> {
        self.injector
            .gate(|| StoreError::Unavailable(INJECTED.into()))
            .await
    }
}

#[async_trait]
impl<S: Store> Store for FaultyStore<S> {
    async fn put(
        &self,
        collection: Collection,
        id: &str,
        body: Value,
        rev: Option<&str>,
    ) -> Result<String, StoreError> {
        self.write(|| self.inner.put(collection, id, body.clone(), rev))
            .await
    }

    async fn get(&self, collection: Collection, id: &str) -> Result<Document, StoreError> {
        self.read().await?;
        self.inner.get(collection, id).await
    }

    async fn get_shared(
        &self,
        collection: Collection,
        id: &str,
    ) -> Result<Arc<Document>, StoreError> {
        self.read().await?;
        self.inner.get_shared(collection, id).await
    }

    async fn delete(&self, collection: Collection, id: &str, rev: &str) -> Result<(), StoreError> {
        self.write(|| self.inner.delete(collection, id, rev)).await
    }

    async fn query(&self, query: &Query) -> Result<Vec<Value>, StoreError> {
        self.read().await?;
        self.inner.query(query).await
    }

    async fn count(&self, query: &Query) -> Result<u64, StoreError> {
        self.read().await?;
        self.inner.count(query).await
    }

    async fn identity(&self, uuid: &str, key: &str) -> Result<Option<Identity>, StoreError> {
        self.read().await?;
        self.inner.identity(uuid, key).await
    }

    async fn namespace_identity(&self, namespace: &str) -> Result<Option<Identity>, StoreError> {
        self.read().await?;
        self.inner.namespace_identity(namespace).await
    }

    async fn activation_namespaces(&self) -> Result<Vec<String>, StoreError> {
        self.read().await?;
        self.inner.activation_namespaces().await
    }
}
