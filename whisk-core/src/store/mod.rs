//! The `Store` trait: the documents of a namespace world (entities, activations, identities).
//!
//! Backends implement the small [`Store`] trait over JSON documents; the typed helpers of
//! [`StoreExt`] are written once on top of it. Query semantics (which documents match, how
//! they sort) are defined here by [`Query::matches`] and [`Query::sort_key`] so every backend
//! agrees, and the `testkit` conformance suite checks that they do.

pub mod cache;
pub mod recorder;
pub mod retention;

pub use cache::{CacheConfig, CachingStore};
pub use recorder::ActivationRecorder;
pub use retention::{Retention, RetentionPolicy};

use crate::entity::identity::Identity;
use crate::entity::{ActivationId, WhiskAction, WhiskActivation};
use async_trait::async_trait;
use serde_json::Value;

/// The three OpenWhisk databases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Collection {
    /// `whisks`: actions, triggers, rules, packages.
    Whisks,
    /// `activations`: activation records.
    Activations,
    /// `subjects`: identities and keys.
    Subjects,
}

impl Collection {
    /// The database name without prefix.
    pub fn db_name(self) -> &'static str {
        match self {
            Collection::Whisks => "whisks",
            Collection::Activations => "activations",
            Collection::Subjects => "subjects",
        }
    }
}

/// What a store operation failed with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// No document with that id.
    #[error("document not found")]
    NotFound,
    /// A create found the id taken.
    #[error("document already exists")]
    AlreadyExists,
    /// The given revision is not the current one.
    #[error("document update conflict")]
    Conflict,
    /// The backend cannot be reached (after the backend's own retries).
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The document exists but is not a readable whisk document (corrupt, or written by
    /// something else); the message names the document.
    #[error("corrupt document: {0}")]
    Corrupt(String),
    /// Anything else the backend reports.
    #[error("store error: {0}")]
    Other(String),
}

/// A stored document: id, revision and body (body without `_id`/`_rev`).
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    /// Document id, e.g. `guest/hello`.
    pub id: String,
    /// Current revision.
    pub rev: String,
    /// The JSON body.
    pub body: Value,
}

/// A listing of one collection within a namespace, newest first.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Query {
    /// `Whisks` or `Activations`.
    pub collection: Option<Collection>,
    /// The root namespace; entities in its packages (`ns/pkg`) match too.
    pub namespace: String,
    /// Only documents with this `entityType` (`action`, `trigger`, `rule`, `package`).
    /// Listings of `Whisks` set it: backends that list through OpenWhisk's per-type views
    /// (CouchDB) may reject a `Whisks` query without one.
    pub entity_type: Option<String>,
    /// Activations only: `name` or `pkg/name` of the action.
    pub name: Option<String>,
    /// Only sort keys `>= since` (epoch ms).
    pub since: Option<u64>,
    /// Only sort keys `<= upto` (epoch ms).
    pub upto: Option<u64>,
    /// Skip this many matches.
    pub skip: usize,
    /// Return at most this many (0 = all).
    pub limit: usize,
}

impl Query {
    /// The collection queried (`Whisks` when unset).
    pub fn collection(&self) -> Collection {
        self.collection.unwrap_or(Collection::Whisks)
    }

    /// The field documents are ordered by: `updated` for entities, `start` for activations.
    pub fn sort_field(&self) -> &'static str {
        match self.collection() {
            Collection::Activations => "start",
            _ => "updated",
        }
    }

    /// The sort key of `doc`.
    pub fn sort_key(&self, doc: &Value) -> u64 {
        doc.get(self.sort_field())
            .and_then(Value::as_u64)
            .unwrap_or(0)
    }

    /// Whether `doc` belongs to this listing.
    pub fn matches(&self, doc: &Value) -> bool {
        let ns = doc.get("namespace").and_then(Value::as_str).unwrap_or("");
        let ns_ok = match self.collection() {
            Collection::Activations => ns == self.namespace,
            _ => {
                ns == self.namespace
                    || ns
                        .strip_prefix(self.namespace.as_str())
                        .is_some_and(|rest| rest.starts_with('/'))
            }
        };
        if !ns_ok {
            return false;
        }
        if let Some(t) = &self.entity_type {
            if doc.get("entityType").and_then(Value::as_str) != Some(t.as_str()) {
                return false;
            }
        }
        if let Some(name) = &self.name {
            if activation_path_filter(doc) != *name {
                return false;
            }
        }
        let key = self.sort_key(doc);
        self.since.is_none_or(|s| key >= s) && self.upto.is_none_or(|u| key <= u)
    }

    /// Applies matching, newest-first ordering, `skip` and `limit` to `docs` (for backends
    /// that hold documents in memory).
    pub fn apply<'a>(&self, docs: impl Iterator<Item = &'a Value>) -> Vec<Value> {
        let mut hits: Vec<&Value> = docs.filter(|d| self.matches(d)).collect();
        // Newest first; equal keys in descending document-id order, as a descending CouchDB view.
        hits.sort_by_cached_key(|d| std::cmp::Reverse((self.sort_key(d), tie_break(d))));
        let it = hits.into_iter().skip(self.skip).cloned();
        if self.limit == 0 {
            it.collect()
        } else {
            it.take(self.limit).collect()
        }
    }

    /// The number of matches ignoring `skip`/`limit`.
    pub fn count<'a>(&self, docs: impl Iterator<Item = &'a Value>) -> u64 {
        docs.filter(|d| self.matches(d)).count() as u64
    }
}

/// The document-id part that orders documents with equal sort keys (descending, as a
/// descending CouchDB view orders equal keys by document id).
pub fn tie_break(doc: &Value) -> String {
    let field = |k: &str| doc.get(k).and_then(Value::as_str).unwrap_or("");
    let id = doc
        .get("activationId")
        .and_then(Value::as_str)
        .unwrap_or_else(|| field("name"));
    format!("{}/{}", field("namespace"), id)
}

/// The path an activation is filtered by (OpenWhisk's `whisks-filters` view): `pkg/name` when
/// it ran through a package binding (`binding` annotation `ns/pkg`) or its `path` annotation
/// has three segments (`ns/pkg/name`), else the simple name.
pub fn activation_path_filter(doc: &Value) -> String {
    let name = doc.get("name").and_then(Value::as_str).unwrap_or("");
    let annotation = |key: &str| {
        doc.get("annotations")
            .and_then(Value::as_array)
            .and_then(|a| {
                a.iter()
                    .find(|p| p.get("key").and_then(Value::as_str) == Some(key))
            })
            .and_then(|p| p.get("value"))
            .and_then(Value::as_str)
            .map(|v| v.split('/').collect::<Vec<_>>())
    };
    let package = match (annotation("binding"), annotation("path")) {
        (Some(b), _) if b.len() > 1 => Some(b[1]),
        (_, Some(p)) if p.len() == 3 => Some(p[1]),
        _ => None,
    };
    match package {
        Some(pkg) => format!("{pkg}/{name}"),
        None => name.to_string(),
    }
}

/// The id of namespace `namespace`'s limits document in the subjects database
/// (OpenWhisk's `<namespace>/limits`), whose fields override the system throttles.
pub fn limits_doc_id(namespace: &str) -> String {
    format!("{namespace}/limits")
}

/// A document store with optimistic concurrency, in the shape of OpenWhisk's CouchDB use.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Writes `body` under `id`. `rev: None` creates (fails with `AlreadyExists` when the id is
    /// taken); `rev: Some(r)` updates and fails with `Conflict` unless `r` is current, or
    /// `NotFound` when the document is gone. Returns the new revision.
    async fn put(
        &self,
        collection: Collection,
        id: &str,
        body: Value,
        rev: Option<&str>,
    ) -> Result<String, StoreError>;

    /// Reads a document.
    async fn get(&self, collection: Collection, id: &str) -> Result<Document, StoreError>;

    /// Reads a document without copying it where the backend can share one (a cache hands
    /// out its entry); the default wraps [`get`](Store::get).
    async fn get_shared(
        &self,
        collection: Collection,
        id: &str,
    ) -> Result<std::sync::Arc<Document>, StoreError> {
        self.get(collection, id).await.map(std::sync::Arc::new)
    }

    /// Deletes a document at revision `rev` (`Conflict` if stale, `NotFound` if missing).
    async fn delete(&self, collection: Collection, id: &str, rev: &str) -> Result<(), StoreError>;

    /// Lists documents matching `query`, newest first.
    async fn query(&self, query: &Query) -> Result<Vec<Value>, StoreError>;

    /// Counts documents matching `query` (ignoring `skip` and `limit`).
    async fn count(&self, query: &Query) -> Result<u64, StoreError>;

    /// Finds the identity whose key is `uuid:key` among the subjects.
    async fn identity(&self, uuid: &str, key: &str) -> Result<Option<Identity>, StoreError>;

    /// Finds the identity owning namespace `namespace` (web actions run as their owner).
    async fn namespace_identity(&self, namespace: &str) -> Result<Option<Identity>, StoreError>;

    /// The distinct namespaces that have activation records (what retention sweeps).
    async fn activation_namespaces(&self) -> Result<Vec<String>, StoreError>;
}

/// A shared store is a store (so decorators can wrap an `Arc<dyn Store>`).
#[async_trait]
impl<T: Store + ?Sized> Store for std::sync::Arc<T> {
    async fn put(
        &self,
        collection: Collection,
        id: &str,
        body: Value,
        rev: Option<&str>,
    ) -> Result<String, StoreError> {
        (**self).put(collection, id, body, rev).await
    }

    async fn get(&self, collection: Collection, id: &str) -> Result<Document, StoreError> {
        (**self).get(collection, id).await
    }

    async fn get_shared(
        &self,
        collection: Collection,
        id: &str,
    ) -> Result<std::sync::Arc<Document>, StoreError> {
        (**self).get_shared(collection, id).await
    }

    async fn delete(&self, collection: Collection, id: &str, rev: &str) -> Result<(), StoreError> {
        (**self).delete(collection, id, rev).await
    }

    async fn query(&self, query: &Query) -> Result<Vec<Value>, StoreError> {
        (**self).query(query).await
    }

    async fn count(&self, query: &Query) -> Result<u64, StoreError> {
        (**self).count(query).await
    }

    async fn identity(&self, uuid: &str, key: &str) -> Result<Option<Identity>, StoreError> {
        (**self).identity(uuid, key).await
    }

    async fn namespace_identity(&self, namespace: &str) -> Result<Option<Identity>, StoreError> {
        (**self).namespace_identity(namespace).await
    }

    async fn activation_namespaces(&self) -> Result<Vec<String>, StoreError> {
        (**self).activation_namespaces().await
    }
}

/// Parses entity document `doc` (`id`, of `entity_type`); `Corrupt` when it does not
/// deserialise.
pub fn parse_entity<T: serde::de::DeserializeOwned>(
    doc: &Document,
    id: &str,
    entity_type: &str,
) -> Result<T, StoreError> {
    T::deserialize(&doc.body).map_err(|e| StoreError::Corrupt(format!("{entity_type} {id}: {e}")))
}

/// Typed helpers over any [`Store`].
#[async_trait]
pub trait StoreExt: Store {
    /// Reads entity `id` with its revision; `Ok(None)` when the document is another kind of
    /// entity than `entity_type`, `Corrupt` when it does not deserialise.
    async fn get_entity<T: serde::de::DeserializeOwned>(
        &self,
        id: &str,
        entity_type: &str,
    ) -> Result<Option<(T, String)>, StoreError> {
        let Some(doc) = self.get_entity_document(id, entity_type).await? else {
            return Ok(None);
        };
        let entity = parse_entity(&doc, id, entity_type)?;
        Ok(Some((entity, doc.rev.clone())))
    }

    /// The shared document of entity `id`, unparsed; `Ok(None)` when it is another kind of
    /// entity than `entity_type` (read it when the revision decides whether to parse).
    async fn get_entity_document(
        &self,
        id: &str,
        entity_type: &str,
    ) -> Result<Option<std::sync::Arc<Document>>, StoreError> {
        let doc = self.get_shared(Collection::Whisks, id).await?;
        Ok(
            (doc.body.get("entityType").and_then(Value::as_str) == Some(entity_type))
                .then_some(doc),
        )
    }

    /// Reads an action by document id, with its revision.
    async fn get_action(&self, id: &str) -> Result<(WhiskAction, String), StoreError> {
        self.get_entity(id, crate::entity::action::ENTITY_TYPE)
            .await?
            .ok_or(StoreError::NotFound)
    }

    /// Stores a new activation record.
    async fn put_activation(&self, a: &WhiskActivation) -> Result<String, StoreError> {
        self.put(Collection::Activations, &a.doc_id(), a.to_document(), None)
            .await
    }

    /// Reads an activation of `namespace`.
    async fn get_activation(
        &self,
        namespace: &str,
        id: &ActivationId,
    ) -> Result<WhiskActivation, StoreError> {
        let doc = self
            .get(
                Collection::Activations,
                &crate::entity::activation::doc_id(namespace, id),
            )
            .await?;
        serde_json::from_value(doc.body)
            .map_err(|e| StoreError::Corrupt(format!("activation {id}: {e}")))
    }

    /// Creates or replaces document `id` of `collection` (the last writer wins: a concurrent
    /// create or update is read again and overwritten).
    async fn upsert(
        &self,
        collection: Collection,
        id: &str,
        body: Value,
    ) -> Result<String, StoreError> {
        let mut attempts = 0;
        loop {
            let rev = match self.get(collection, id).await {
                Ok(d) => Some(d.rev),
                Err(StoreError::NotFound) => None,
                Err(e) => return Err(e),
            };
            match self.put(collection, id, body.clone(), rev.as_deref()).await {
                Err(StoreError::AlreadyExists | StoreError::Conflict | StoreError::NotFound)
                    if attempts < 5 =>
                {
                    attempts += 1;
                }
                result => return result,
            }
        }
    }

    /// Creates or replaces the subject document for `doc.subject`.
    async fn put_subject(&self, doc: &crate::entity::SubjectDoc) -> Result<String, StoreError> {
        let body = serde_json::to_value(doc).expect("subject serialises");
        self.upsert(Collection::Subjects, &doc.subject, body).await
    }

    /// Sets the limits of `namespace` (`invocationsPerMinute`, `concurrentInvocations`,
    /// `firesPerMinute`, ...), as OpenWhisk's `<namespace>/limits` document.
    async fn put_namespace_limits(
        &self,
        namespace: &str,
        limits: Value,
    ) -> Result<String, StoreError> {
        self.upsert(Collection::Subjects, &limits_doc_id(namespace), limits)
            .await
    }
}

impl<T: Store + ?Sized> StoreExt for T {}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn query_matching_and_order() {
        let docs = [
            json!({"namespace":"guest","entityType":"action","updated":1,"name":"a"}),
            json!({"namespace":"guest/pkg","entityType":"action","updated":3,"name":"b"}),
            json!({"namespace":"guestx","entityType":"action","updated":2,"name":"c"}),
            json!({"namespace":"guest","entityType":"trigger","updated":4,"name":"d"}),
        ];
        let q = Query {
            namespace: "guest".into(),
            entity_type: Some("action".into()),
            ..Default::default()
        };
        let names: Vec<_> = q
            .apply(docs.iter())
            .iter()
            .map(|d| d["name"].clone())
            .collect();
        assert_eq!(names, vec![json!("b"), json!("a")]);
        assert_eq!(q.count(docs.iter()), 2);
    }

    #[test]
    fn activation_filter_uses_package_path() {
        let d = json!({"name":"a","annotations":[{"key":"path","value":"guest/pkg/a"}]});
        assert_eq!(activation_path_filter(&d), "pkg/a");
        let d = json!({"name":"a","annotations":[{"key":"path","value":"guest/a"}]});
        assert_eq!(activation_path_filter(&d), "a");
        let d = json!({"name":"a","annotations":[{"key":"binding","value":"guest/mine"},{"key":"path","value":"other/pkg/a"}]});
        assert_eq!(activation_path_filter(&d), "mine/a", "a binding wins");
    }
}
