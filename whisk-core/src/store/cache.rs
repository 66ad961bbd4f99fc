//! [`CachingStore`]: a read cache for entities and identities over any [`Store`].
//!
//! Entity documents (`whisks`) are cached by document id and identities by key or
//! namespace. A write through the cache invalidates the written id at once; with a bus, the
//! cache also tells the other controllers, as OpenWhisk does on its `cacheInvalidation`
//! topic (`{"key":{"mainId":"<doc id>"},"instanceId":"controller0"}`), and drops what they
//! tell it. Entries also expire after a time to live, so a write that bypassed every cache
//! (an operator editing CouchDB by hand) shows up eventually.
//!
//! A read that raced with a write never caches the value it read before the write: fills
//! are skipped when an invalidation happened while the read was in flight.

use super::{Collection, Document, Query, Store, StoreError};
use crate::bus::{topics, MessageBus};
use crate::entity::Identity;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// OpenWhisk's `CacheKey`: the document id, and an optional second part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CacheKey {
    /// The document id (`ns/[pkg/]name`, or a subject).
    pub main_id: String,
    /// Unused by entities; `"subjects"` when an identity document changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secondary_id: Option<String>,
}

/// The message on the `cacheInvalidation` topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CacheInvalidationMessage {
    /// What changed.
    pub key: CacheKey,
    /// Who changed it (`controller0`); an instance ignores its own messages.
    pub instance_id: String,
}

/// The `secondaryId` marking an identity (subjects database) change.
const SUBJECTS: &str = "subjects";

/// Settings of a [`CachingStore`].
#[derive(Debug, Clone)]
pub struct CacheConfig {
    /// Most entities kept.
    pub max_entities: u64,
    /// Most identities kept (OpenWhisk: 100000).
    pub max_identities: u64,
    /// Entries are dropped this long after they were read from the store.
    pub time_to_live: Duration,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            max_entities: 10_000,
            max_identities: 100_000,
            time_to_live: Duration::from_secs(300),
        }
    }
}

/// What an identity is cached under. A key lookup is cached under the key's UUID and the
/// SHA-256 of its secret, so the cache holds no secret in its keys and a lookup compares
/// digests, never a presented secret with a stored one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum IdentityKey {
    Key(String, [u8; 32]),
    Namespace(String),
}

/// The caches and the invalidation epoch, shared with the invalidation listener.
struct Caches {
    entities: moka::sync::Cache<String, Arc<Document>>,
    identities: moka::sync::Cache<IdentityKey, Identity>,
    /// Bumped on every invalidation; a fill is skipped if it moved during the read.
    epoch: AtomicU64,
}

impl Caches {
    fn invalidate(&self, key: &CacheKey) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        if key.secondary_id.as_deref() == Some(SUBJECTS) {
            // A subject document (`<subject>`) or a namespace's limits (`<ns>/limits`): drop
            // the identities it makes.
            let limits_of = key.main_id.strip_suffix("/limits");
            let stale: Vec<_> = self
                .identities
                .iter()
                .filter(|(_, identity)| match limits_of {
                    Some(ns) => identity.namespace.name == ns,
                    None => identity.subject == key.main_id,
                })
                .map(|(k, _)| k)
                .collect();
            for k in stale {
                self.identities.invalidate(&*k);
            }
        } else {
            self.entities.invalidate(&key.main_id);
        }
    }

    /// Reads through `load` and caches its value unless an invalidation raced with it.
    async fn fill<K, V, F>(
        &self,
        cache: &moka::sync::Cache<K, V>,
        key: K,
        load: F,
    ) -> Result<Option<V>, StoreError>
    where
        K: std::hash::Hash + Eq + Send + Sync + 'static,
        V: Clone + Send + Sync + 'static,
        F: std::future::Future<Output = Result<Option<V>, StoreError>>,
    {
        if let Some(v) = cache.get(&key) {
            return Ok(Some(v));
        }
        let before = self.epoch.load(Ordering::SeqCst);
        let value = load.await?;
        if let Some(v) = &value {
            if self.epoch.load(Ordering::SeqCst) == before {
                cache.insert(key, v.clone());
            }
        }
        Ok(value)
    }
}

/// A [`Store`] decorator caching entity reads and identity lookups of the store it wraps.
/// Activations and listings always go to the store.
pub struct CachingStore<S> {
    inner: S,
    caches: Arc<Caches>,
    instance: String,
    bus: Option<Arc<dyn MessageBus>>,
}

impl<S: Store> CachingStore<S> {
    /// A cache over `inner` for this process only (one controller).
    pub fn new(inner: S, config: CacheConfig) -> Self {
        let caches = Arc::new(Caches {
            entities: moka::sync::Cache::builder()
                .max_capacity(config.max_entities)
                .time_to_live(config.time_to_live)
                .build(),
            identities: moka::sync::Cache::builder()
                .max_capacity(config.max_identities)
                .time_to_live(config.time_to_live)
                .build(),
            epoch: AtomicU64::new(0),
        });
        Self {
            inner,
            caches,
            instance: String::new(),
            bus: None,
        }
    }

    /// Shares invalidations with the other instances on `bus` (topic `cacheInvalidation`,
    /// consumer group `cacheInvalidation<instance>`), as controller `instance` (e.g.
    /// `controller0`). Returns the cache and the listener task.
    pub async fn with_bus(
        mut self,
        bus: Arc<dyn MessageBus>,
        instance: &str,
    ) -> Result<(Self, tokio::task::JoinHandle<()>), crate::bus::BusError> {
        bus.create_topic(topics::CACHE_INVALIDATION).await?;
        let group = format!("{}{instance}", topics::CACHE_INVALIDATION);
        let mut consumer = bus.subscribe(topics::CACHE_INVALIDATION, &group).await?;
        let caches = self.caches.clone();
        let me = instance.to_string();
        let task = tokio::spawn(async move {
            loop {
                let batch = match consumer.poll(128, Duration::from_secs(1)).await {
                    Ok(b) => b,
                    Err(crate::bus::BusError::Closed) => return,
                    Err(e) => {
                        tracing::warn!(error = %e, "cache invalidation feed failed");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                };
                for raw in &batch {
                    match serde_json::from_slice::<CacheInvalidationMessage>(raw) {
                        Ok(m) if m.instance_id != me => caches.invalidate(&m.key),
                        Ok(_) => {}
                        Err(e) => tracing::warn!(error = %e, "unreadable cache invalidation"),
                    }
                }
                if !batch.is_empty() {
                    let _ = consumer.commit().await;
                }
            }
        });
        self.instance = instance.to_string();
        self.bus = Some(bus);
        Ok((self, task))
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// Drops `id` of `collection` here and, with a bus, everywhere else.
    async fn invalidate(&self, collection: Collection, id: &str) {
        let key = CacheKey {
            main_id: id.to_string(),
            secondary_id: (collection == Collection::Subjects).then(|| SUBJECTS.to_string()),
        };
        self.caches.invalidate(&key);
        if let Some(bus) = &self.bus {
            let msg = CacheInvalidationMessage {
                key,
                instance_id: self.instance.clone(),
            };
            let bytes = serde_json::to_vec(&msg).expect("message serialises");
            if let Err(e) = bus.publish(topics::CACHE_INVALIDATION, bytes.into()).await {
                tracing::warn!(error = %e, id, "publishing cache invalidation failed");
            }
        }
    }
}

#[async_trait]
impl<S: Store> Store for CachingStore<S> {
    async fn put(
        &self,
        collection: Collection,
        id: &str,
        body: Value,
        rev: Option<&str>,
    ) -> Result<String, StoreError> {
        let result = self.inner.put(collection, id, body, rev).await;
        if collection != Collection::Activations {
            self.invalidate(collection, id).await;
        }
        result
    }

    async fn get(&self, collection: Collection, id: &str) -> Result<Document, StoreError> {
        if collection != Collection::Whisks {
            return self.inner.get(collection, id).await;
        }
        Ok((*self.get_shared(collection, id).await?).clone())
    }

    async fn get_shared(
        &self,
        collection: Collection,
        id: &str,
    ) -> Result<Arc<Document>, StoreError> {
        if collection != Collection::Whisks {
            return self.inner.get_shared(collection, id).await;
        }
        let load = async {
            match self.inner.get_shared(collection, id).await {
                Ok(doc) => Ok(Some(doc)),
                Err(StoreError::NotFound) => Ok(None),
                Err(e) => Err(e),
            }
        };
        self.caches
            .fill(&self.caches.entities, id.to_string(), load)
            .await?
            .ok_or(StoreError::NotFound)
    }

    async fn delete(&self, collection: Collection, id: &str, rev: &str) -> Result<(), StoreError> {
        let result = self.inner.delete(collection, id, rev).await;
        if collection != Collection::Activations {
            self.invalidate(collection, id).await;
        }
        result
    }

    async fn query(&self, query: &Query) -> Result<Vec<Value>, StoreError> {
        self.inner.query(query).await
    }

    async fn count(&self, query: &Query) -> Result<u64, StoreError> {
        self.inner.count(query).await
    }

    async fn identity(&self, uuid: &str, key: &str) -> Result<Option<Identity>, StoreError> {
        let k = IdentityKey::Key(
            uuid.to_string(),
            crate::entity::secret::sha256(key.as_bytes()),
        );
        let load = self.inner.identity(uuid, key);
        self.caches.fill(&self.caches.identities, k, load).await
    }

    async fn namespace_identity(&self, namespace: &str) -> Result<Option<Identity>, StoreError> {
        let k = IdentityKey::Namespace(namespace.to_string());
        let load = self.inner.namespace_identity(namespace);
        self.caches.fill(&self.caches.identities, k, load).await
    }

    async fn activation_namespaces(&self) -> Result<Vec<String>, StoreError> {
        self.inner.activation_namespaces().await
    }
}
