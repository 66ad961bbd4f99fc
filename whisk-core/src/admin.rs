//! Administration of subjects, namespaces, keys and namespace limits: OpenWhisk's
//! `wskadmin user` and `wskadmin limits` as library calls over any [`Store`].
//!
//! Subjects are the documents of the `subjects` collection (`{subject, namespaces:[{name,
//! uuid, key}], blocked?}`); a namespace's limits are its `<namespace>/limits` document there.
//! A blocked subject keeps its document but every backend's identity lookup skips it, so its
//! keys no longer authenticate.
//!
//! Keys are secrets: nothing here logs them, no error message contains them, and the `Debug`
//! output of this module's types shows a key's UUID but not its secret. A store that keeps
//! only a salted hash of each secret (the embedded store) cannot give a key back: it is
//! shown once, by [`create_user`], and reads answer its UUID alone ([`UserKey::key`] is
//! `None`, [`get_key`] fails with [`AdminError::KeyHashed`]).
//!
//! ```no_run
//! # async fn demo(store: &dyn whisk_core::store::Store) -> Result<(), whisk_core::admin::AdminError> {
//! use whisk_core::admin;
//! let key = admin::create_user(store, "alice", None, None).await?;
//! println!("{}", key.compact()); // uuid:key, for `wsk property set --auth`
//! admin::block(store, "alice").await?; // the key no longer authenticates
//! # Ok(()) }
//! ```

use crate::entity::identity::{AuthKey, SubjectDoc, SubjectNamespace};
use crate::entity::name::validate_namespace;
use crate::store::{limits_doc_id, Collection, Query, Store, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::fmt;

/// Length of a key's secret (OpenWhisk's `Secret`).
pub const SECRET_LENGTH: usize = 64;

/// Shortest subject name (OpenWhisk's `Subject`).
pub const MIN_SUBJECT_LENGTH: usize = 5;

/// How often a write that lost a race with another writer is retried.
const ATTEMPTS: usize = 6;

/// What an administration call failed with. Messages never contain a key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AdminError {
    /// The subject name is not acceptable.
    #[error("invalid subject '{subject}': {reason}")]
    InvalidSubject {
        /// The name given.
        subject: String,
        /// Why it was refused.
        reason: String,
    },
    /// The namespace name is not acceptable.
    #[error("invalid namespace '{namespace}': {reason}")]
    InvalidNamespace {
        /// The name given.
        namespace: String,
        /// Why it was refused.
        reason: String,
    },
    /// A `uuid:key` given is malformed (the message says how, without the key).
    #[error("invalid authorization key: {0}")]
    InvalidKey(String),
    /// Other invalid input.
    #[error("{0}")]
    Invalid(String),
    /// No subject with that name.
    #[error("subject '{0}' not found")]
    SubjectNotFound(String),
    /// The subject is blocked; it cannot be given more namespaces until it is unblocked.
    #[error("subject '{0}' is blocked (unblock it first)")]
    SubjectBlocked(String),
    /// The subject already has a key for that namespace.
    #[error("namespace '{namespace}' already exists for subject '{subject}'")]
    NamespaceExists {
        /// The subject.
        subject: String,
        /// The namespace.
        namespace: String,
    },
    /// The subject has no key for that namespace.
    #[error("namespace '{namespace}' does not exist for subject '{subject}'")]
    NamespaceMissing {
        /// The subject.
        subject: String,
        /// The namespace.
        namespace: String,
    },
    /// Another subject already uses the `uuid:key` given.
    #[error("the authorization key given is already in use")]
    KeyInUse,
    /// The store keeps only a hash of the key's secret, so the key cannot be shown (it is
    /// shown once, when created).
    #[error(
        "the key of namespace '{namespace}' of subject '{subject}' is stored hashed and cannot \
         be shown; it is shown only when created"
    )]
    KeyHashed {
        /// The subject.
        subject: String,
        /// The namespace.
        namespace: String,
    },
    /// No subject has the `uuid:key` given.
    #[error("no subject has the authorization key given")]
    UnknownKey,
    /// No (unblocked) subject has a key for the namespace.
    #[error("no identities found for namespace '{0}'")]
    NoIdentities(String),
    /// The namespace has no limits document (system defaults apply).
    #[error("limits not found for namespace '{0}'")]
    LimitsNotFound(String),
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] StoreError),
}

/// Formats a key of UUID `uuid` for `Debug` with its secret redacted.
fn redacted(uuid: &str) -> String {
    format!("{uuid}:<redacted>")
}

/// One namespace of a subject and its key.
#[derive(Clone, PartialEq, Eq)]
pub struct UserKey {
    /// The namespace name.
    pub namespace: String,
    /// The key's UUID.
    pub uuid: String,
    /// The `uuid:key` credential of the namespace (a secret), when the store keeps the secret
    /// in clear; `None` when it keeps only its hash.
    pub key: Option<AuthKey>,
}

impl fmt::Debug for UserKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserKey")
            .field("namespace", &self.namespace)
            .field("key", &redacted(&self.uuid))
            .finish()
    }
}

impl UserKey {
    /// The `uuid:key` to print: the credential, or `<uuid>:<hashed>` when only its hash is
    /// kept.
    pub fn shown(&self) -> String {
        shown(&self.uuid, self.key.as_ref())
    }
}

/// `key` as `uuid:key`, or `<uuid>:<hashed>` when the store keeps only its hash.
fn shown(uuid: &str, key: Option<&AuthKey>) -> String {
    match key {
        Some(k) => k.compact(),
        None => format!("{uuid}:<hashed>"),
    }
}

/// A subject with its namespaces and keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The subject name.
    pub subject: String,
    /// Its namespaces, in stored order.
    pub namespaces: Vec<UserKey>,
    /// Whether the subject is blocked (its keys do not authenticate).
    pub blocked: bool,
}

impl User {
    /// The key entry of namespace `namespace`, if the subject has one.
    pub fn key_for(&self, namespace: &str) -> Option<&UserKey> {
        self.namespaces.iter().find(|n| n.namespace == namespace)
    }
}

impl From<SubjectDoc> for User {
    fn from(doc: SubjectDoc) -> Self {
        Self {
            subject: doc.subject,
            namespaces: doc
                .namespaces
                .into_iter()
                .map(|n| UserKey {
                    key: n.clear_key(),
                    namespace: n.name,
                    uuid: n.uuid,
                })
                .collect(),
            blocked: doc.blocked,
        }
    }
}

/// Whose a key is: [`whois`]'s answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Whois {
    /// The subject owning the key.
    pub subject: String,
    /// The namespace the key belongs to.
    pub namespace: String,
    /// Whether the subject is blocked.
    pub blocked: bool,
}

/// A subject with access to a namespace: [`list_namespace`]'s rows.
#[derive(Clone, PartialEq, Eq)]
pub struct NamespaceMember {
    /// The subject.
    pub subject: String,
    /// Its key's UUID.
    pub uuid: String,
    /// Its key for the namespace (a secret), when the store keeps the secret in clear;
    /// `None` when it keeps only its hash.
    pub key: Option<AuthKey>,
}

impl fmt::Debug for NamespaceMember {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NamespaceMember")
            .field("subject", &self.subject)
            .field("key", &redacted(&self.uuid))
            .finish()
    }
}

impl NamespaceMember {
    /// The `uuid:key` to print: the credential, or `<uuid>:<hashed>` when only its hash is
    /// kept.
    pub fn shown(&self) -> String {
        shown(&self.uuid, self.key.as_ref())
    }
}

/// What [`delete_user`] removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deleted {
    /// The whole subject document.
    Subject,
    /// One namespace (and its key) of the subject.
    Namespace,
}

/// What [`set_limits`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitsWritten {
    /// The namespace had no limits document; one was created.
    Created,
    /// The namespace's limits document was replaced.
    Updated,
}

/// A namespace's limits document (`<namespace>/limits`), whose fields override the system
/// throttles for that namespace. Fields not set fall back to the system defaults.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NamespaceLimits {
    /// Action invocations per minute (`0` also blocks the namespace's invocations).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invocations_per_minute: Option<u64>,
    /// Activations in flight at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrent_invocations: Option<u64>,
    /// Trigger fires per minute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fires_per_minute: Option<u64>,
    /// Any other fields of the document (written by other tools), kept as they are.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

impl NamespaceLimits {
    /// Whether no field is set.
    pub fn is_empty(&self) -> bool {
        self.invocations_per_minute.is_none()
            && self.concurrent_invocations.is_none()
            && self.fires_per_minute.is_none()
            && self.other.is_empty()
    }
}

/// Checks a subject name: at least [`MIN_SUBJECT_LENGTH`] characters, no `/` (the subjects
/// collection also holds `<namespace>/limits` documents), no whitespace or control characters.
pub fn validate_subject(subject: &str) -> Result<(), AdminError> {
    let bad = |reason: &str| {
        Err(AdminError::InvalidSubject {
            subject: subject.to_string(),
            reason: reason.to_string(),
        })
    };
    if subject.chars().count() < MIN_SUBJECT_LENGTH {
        return bad("a subject name must be at least 5 characters");
    }
    if subject.contains('/') {
        return bad("a subject name may not contain '/'");
    }
    if subject.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return bad("a subject name may not contain whitespace or control characters");
    }
    Ok(())
}

/// Checks a namespace name as the REST API does (and refuses `_`, which means "my own").
pub fn validate_namespace_name(namespace: &str) -> Result<(), AdminError> {
    let bad = |reason: String| {
        Err(AdminError::InvalidNamespace {
            namespace: namespace.to_string(),
            reason,
        })
    };
    if namespace == crate::entity::name::DEFAULT_NAMESPACE {
        return bad("'_' stands for the caller's own namespace".into());
    }
    match validate_namespace(namespace) {
        Ok(()) => Ok(()),
        Err(e) => bad(e.to_string()),
    }
}

/// Checks a `uuid:key` credential: a UUID and a secret of exactly [`SECRET_LENGTH`]
/// characters, with no whitespace. The error never repeats the key.
pub fn validate_key(key: &AuthKey) -> Result<(), AdminError> {
    if uuid::Uuid::parse_str(&key.uuid).is_err() {
        return Err(AdminError::InvalidKey(
            "the part before ':' is not a valid UUID".into(),
        ));
    }
    let len = key.key.chars().count();
    if len != SECRET_LENGTH {
        return Err(AdminError::InvalidKey(format!(
            "the secret after ':' must be {SECRET_LENGTH} characters, not {len}"
        )));
    }
    if key
        .key
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == ':')
    {
        return Err(AdminError::InvalidKey(
            "the secret may not contain whitespace, control characters or ':'".into(),
        ));
    }
    Ok(())
}

/// Parses a `uuid:key` credential and checks it with [`validate_key`].
pub fn parse_key(s: &str) -> Result<AuthKey, AdminError> {
    let key = AuthKey::parse(s)
        .ok_or_else(|| AdminError::InvalidKey("expected the form uuid:key".into()))?;
    validate_key(&key)?;
    Ok(key)
}

/// Parses a stored subject document; the error names the subject but repeats no content.
fn parse_subject(subject: &str, body: &Value) -> Result<SubjectDoc, AdminError> {
    SubjectDoc::deserialize(body).map_err(|_| {
        AdminError::Store(StoreError::Corrupt(format!(
            "subjects/{subject} is not a subject document"
        )))
    })
}

/// Reads subject `subject` with its raw body and revision.
async fn load(store: &dyn Store, subject: &str) -> Result<(SubjectDoc, Value, String), AdminError> {
    match store.get(Collection::Subjects, subject).await {
        Ok(doc) => Ok((parse_subject(subject, &doc.body)?, doc.body, doc.rev)),
        Err(StoreError::NotFound) => Err(AdminError::SubjectNotFound(subject.to_string())),
        Err(e) => Err(e.into()),
    }
}

/// The body of `doc`: `raw` (so fields other tools wrote survive) with `namespaces` and
/// `blocked` from `doc`.
fn body_of(doc: &SubjectDoc, raw: Value) -> Value {
    let mut body = match raw {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    body.insert("subject".into(), Value::String(doc.subject.clone()));
    body.insert(
        "namespaces".into(),
        serde_json::to_value(&doc.namespaces).expect("namespaces serialise"),
    );
    if doc.blocked {
        body.insert("blocked".into(), Value::Bool(true));
    } else {
        body.remove("blocked");
    }
    Value::Object(body)
}

/// Applies `change` to subject `subject` and writes it back, retrying when another writer
/// got there first.
async fn update_subject<T>(
    store: &dyn Store,
    subject: &str,
    change: impl Fn(&mut SubjectDoc) -> Result<T, AdminError>,
) -> Result<T, AdminError> {
    let mut attempt = 0;
    loop {
        let (mut doc, raw, rev) = load(store, subject).await?;
        let out = change(&mut doc)?;
        match store
            .put(
                Collection::Subjects,
                subject,
                body_of(&doc, raw),
                Some(&rev),
            )
            .await
        {
            Ok(_) => return Ok(out),
            Err(StoreError::Conflict | StoreError::NotFound) if attempt + 1 < ATTEMPTS => {
                attempt += 1
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Every subject document, or `None` when the backend cannot list the subjects collection
/// (CouchDB, which is reached through OpenWhisk's views only).
async fn all_subjects(store: &dyn Store) -> Result<Option<Vec<SubjectDoc>>, AdminError> {
    // Subject documents have no `namespace` field, so the listing of namespace "" is them
    // (and the limits documents, which do not parse as subjects).
    let query = Query {
        collection: Some(Collection::Subjects),
        ..Query::default()
    };
    match store.query(&query).await {
        Ok(docs) => Ok(Some(
            docs.iter()
                .filter_map(|d| SubjectDoc::deserialize(d).ok())
                .collect(),
        )),
        Err(StoreError::Other(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Creates subject `subject` with a key for `namespace` (default: the subject's name), or,
/// when the subject exists, adds the namespace to it (`wskadmin user create`). The key is
/// `auth` when given (checked with [`validate_key`], and refused when another subject uses
/// it), else a fresh one (a UUID and a 64-character secret). Returns the key.
///
/// Fails with [`AdminError::NamespaceExists`] when the subject already has that namespace
/// and [`AdminError::SubjectBlocked`] when the subject is blocked.
pub async fn create_user(
    store: &dyn Store,
    subject: &str,
    namespace: Option<&str>,
    auth: Option<AuthKey>,
) -> Result<AuthKey, AdminError> {
    validate_subject(subject)?;
    let namespace = namespace.unwrap_or(subject);
    validate_namespace_name(namespace)?;
    let key = match auth {
        Some(key) => {
            validate_key(&key)?;
            if store.identity(&key.uuid, &key.key).await?.is_some() {
                return Err(AdminError::KeyInUse);
            }
            key
        }
        None => AuthKey::generate(),
    };
    let entry = SubjectNamespace::new(namespace, &key);
    for _ in 0..ATTEMPTS {
        match store.get(Collection::Subjects, subject).await {
            Err(StoreError::NotFound) => {
                let doc = SubjectDoc {
                    subject: subject.to_string(),
                    namespaces: vec![entry.clone()],
                    blocked: false,
                };
                let body = serde_json::to_value(&doc).expect("subject serialises");
                match store.put(Collection::Subjects, subject, body, None).await {
                    Ok(_) => {
                        tracing::info!(subject, namespace, "subject created");
                        return Ok(key);
                    }
                    // Created meanwhile: add the namespace to it instead.
                    Err(StoreError::AlreadyExists) => continue,
                    Err(e) => return Err(e.into()),
                }
            }
            Err(e) => return Err(e.into()),
            Ok(_) => {
                update_subject(store, subject, |doc| {
                    if doc.blocked {
                        return Err(AdminError::SubjectBlocked(subject.to_string()));
                    }
                    if doc.namespaces.iter().any(|n| n.name == namespace) {
                        return Err(AdminError::NamespaceExists {
                            subject: subject.to_string(),
                            namespace: namespace.to_string(),
                        });
                    }
                    doc.namespaces.push(entry.clone());
                    Ok(())
                })
                .await?;
                tracing::info!(subject, namespace, "namespace added to subject");
                return Ok(key);
            }
        }
    }
    Err(StoreError::Conflict.into())
}

/// Reads subject `subject` with all its namespaces and keys (`wskadmin user get --all`).
pub async fn get_user(store: &dyn Store, subject: &str) -> Result<User, AdminError> {
    Ok(load(store, subject).await?.0.into())
}

/// The key of `subject` for `namespace` (default: the subject's name) (`wskadmin user get`).
/// Fails with [`AdminError::KeyHashed`] when the store keeps only the key's hash.
pub async fn get_key(
    store: &dyn Store,
    subject: &str,
    namespace: Option<&str>,
) -> Result<AuthKey, AdminError> {
    let namespace = namespace.unwrap_or(subject);
    let user = get_user(store, subject).await?;
    let entry = user
        .key_for(namespace)
        .ok_or_else(|| AdminError::NamespaceMissing {
            subject: subject.to_string(),
            namespace: namespace.to_string(),
        })?;
    entry.key.clone().ok_or_else(|| AdminError::KeyHashed {
        subject: subject.to_string(),
        namespace: namespace.to_string(),
    })
}

/// The subject and namespace a `uuid:key` belongs to (`wskadmin user whois`). Blocked
/// subjects are found too (marked `blocked`) on backends that can list subjects (memory,
/// embedded); CouchDB's identities view does not show them, as in OpenWhisk.
pub async fn whois(store: &dyn Store, key: &AuthKey) -> Result<Whois, AdminError> {
    if let Some(identity) = store.identity(&key.uuid, &key.key).await? {
        return Ok(Whois {
            subject: identity.subject,
            namespace: identity.namespace.name,
            blocked: false,
        });
    }
    let subjects = all_subjects(store).await?.unwrap_or_default();
    subjects
        .into_iter()
        .find_map(|s| {
            s.namespaces
                .iter()
                .find(|n| n.accepts(&key.uuid, &key.key))
                .map(|n| Whois {
                    subject: s.subject.clone(),
                    namespace: n.name.clone(),
                    blocked: s.blocked,
                })
        })
        .ok_or(AdminError::UnknownKey)
}

/// The subjects with a key for `namespace`, with those keys, ordered by subject
/// (`wskadmin user list`). Blocked subjects are left out, as OpenWhisk's identities view
/// leaves them out. A store that cannot list its subjects (its `query` of the subjects
/// collection answers `StoreError::Other`) is asked through its identity lookup by
/// namespace, which finds one subject.
///
/// Fails with [`AdminError::NoIdentities`] when there is none.
pub async fn list_namespace(
    store: &dyn Store,
    namespace: &str,
) -> Result<Vec<NamespaceMember>, AdminError> {
    let mut members: Vec<NamespaceMember> = match all_subjects(store).await? {
        Some(subjects) => subjects
            .into_iter()
            .filter(|s| !s.blocked)
            .flat_map(|s| {
                s.namespaces
                    .into_iter()
                    .filter(|n| n.name == namespace)
                    .map(|n| NamespaceMember {
                        subject: s.subject.clone(),
                        key: n.clear_key(),
                        uuid: n.uuid,
                    })
                    .collect::<Vec<_>>()
            })
            .collect(),
        None => store
            .namespace_identity(namespace)
            .await?
            .into_iter()
            .map(|i| NamespaceMember {
                key: AuthKey::parse(i.api_key()),
                uuid: i.namespace.uuid,
                subject: i.subject,
            })
            .collect(),
    };
    if members.is_empty() {
        return Err(AdminError::NoIdentities(namespace.to_string()));
    }
    members.sort_by(|a, b| a.subject.cmp(&b.subject));
    Ok(members)
}

/// Deletes subject `subject`, or with `namespace` only that namespace (and its key) of it
/// (`wskadmin user delete`). Namespace limits documents are left alone.
pub async fn delete_user(
    store: &dyn Store,
    subject: &str,
    namespace: Option<&str>,
) -> Result<Deleted, AdminError> {
    if let Some(namespace) = namespace {
        update_subject(store, subject, |doc| {
            let before = doc.namespaces.len();
            doc.namespaces.retain(|n| n.name != namespace);
            if doc.namespaces.len() == before {
                return Err(AdminError::NamespaceMissing {
                    subject: subject.to_string(),
                    namespace: namespace.to_string(),
                });
            }
            Ok(())
        })
        .await?;
        tracing::info!(subject, namespace, "namespace removed from subject");
        return Ok(Deleted::Namespace);
    }
    let mut attempt = 0;
    loop {
        let (_, _, rev) = load(store, subject).await?;
        match store.delete(Collection::Subjects, subject, &rev).await {
            Ok(()) => {
                tracing::info!(subject, "subject deleted");
                return Ok(Deleted::Subject);
            }
            Err(StoreError::Conflict | StoreError::NotFound) if attempt + 1 < ATTEMPTS => {
                attempt += 1
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Sets or clears `blocked` on subject `subject`.
async fn set_blocked(store: &dyn Store, subject: &str, blocked: bool) -> Result<(), AdminError> {
    update_subject(store, subject, |doc| {
        doc.blocked = blocked;
        Ok(())
    })
    .await?;
    tracing::info!(subject, blocked, "subject block state changed");
    Ok(())
}

/// Blocks subject `subject`: its keys stop authenticating (the API answers 401 as for an
/// unknown key) until [`unblock`]. A platform already running may serve a cached identity
/// until its cache entry expires (5 minutes by default).
pub async fn block(store: &dyn Store, subject: &str) -> Result<(), AdminError> {
    set_blocked(store, subject, true).await
}

/// Unblocks subject `subject`.
pub async fn unblock(store: &dyn Store, subject: &str) -> Result<(), AdminError> {
    set_blocked(store, subject, false).await
}

/// Replaces the limits document of `namespace` with `limits` (`wskadmin limits set`: fields
/// not given are removed and fall back to the system defaults).
pub async fn set_limits(
    store: &dyn Store,
    namespace: &str,
    limits: &NamespaceLimits,
) -> Result<LimitsWritten, AdminError> {
    validate_namespace_name(namespace)?;
    if limits.is_empty() {
        return Err(AdminError::Invalid("no limit given".into()));
    }
    let id = limits_doc_id(namespace);
    let body = serde_json::to_value(limits).expect("limits serialise");
    let mut attempt = 0;
    loop {
        let rev = match store.get(Collection::Subjects, &id).await {
            Ok(d) => Some(d.rev),
            Err(StoreError::NotFound) => None,
            Err(e) => return Err(e.into()),
        };
        match store
            .put(Collection::Subjects, &id, body.clone(), rev.as_deref())
            .await
        {
            Ok(_) => {
                tracing::info!(namespace, "namespace limits set");
                return Ok(if rev.is_some() {
                    LimitsWritten::Updated
                } else {
                    LimitsWritten::Created
                });
            }
            Err(StoreError::AlreadyExists | StoreError::Conflict | StoreError::NotFound)
                if attempt + 1 < ATTEMPTS =>
            {
                attempt += 1
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// The limits document of `namespace`; `None` when it has none (system defaults apply).
pub async fn get_limits(
    store: &dyn Store,
    namespace: &str,
) -> Result<Option<NamespaceLimits>, AdminError> {
    let id = limits_doc_id(namespace);
    match store.get(Collection::Subjects, &id).await {
        Ok(doc) => NamespaceLimits::deserialize(&doc.body)
            .map(Some)
            .map_err(|e| AdminError::Store(StoreError::Corrupt(format!("subjects/{id}: {e}")))),
        Err(StoreError::NotFound) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Deletes the limits document of `namespace` (system defaults apply again).
pub async fn delete_limits(store: &dyn Store, namespace: &str) -> Result<(), AdminError> {
    let id = limits_doc_id(namespace);
    let mut attempt = 0;
    loop {
        let rev = match store.get(Collection::Subjects, &id).await {
            Ok(d) => d.rev,
            Err(StoreError::NotFound) => {
                return Err(AdminError::LimitsNotFound(namespace.to_string()))
            }
            Err(e) => return Err(e.into()),
        };
        match store.delete(Collection::Subjects, &id, &rev).await {
            Ok(()) => {
                tracing::info!(namespace, "namespace limits deleted");
                return Ok(());
            }
            Err(StoreError::Conflict) if attempt + 1 < ATTEMPTS => attempt += 1,
            Err(StoreError::NotFound) => {
                return Err(AdminError::LimitsNotFound(namespace.to_string()))
            }
            Err(e) => return Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subject_namespace_and_key_checks() {
        assert!(validate_subject("alice").is_ok());
        assert!(validate_subject("al").is_err());
        assert!(validate_subject("guest/limits").is_err());
        assert!(validate_subject("al ice").is_err());
        assert!(validate_namespace_name("guest").is_ok());
        assert!(validate_namespace_name("_").is_err());
        assert!(validate_namespace_name("a/b").is_err());
        let key = AuthKey::generate();
        assert!(validate_key(&key).is_ok());
        assert!(parse_key(&key.compact()).is_ok());
        let short = AuthKey {
            uuid: key.uuid.clone(),
            key: "x".repeat(63),
        };
        let e = validate_key(&short).unwrap_err().to_string();
        assert!(e.contains("64"), "{e}");
        assert!(!e.contains(&short.key));
        let bad_uuid = AuthKey {
            uuid: "nope".into(),
            key: key.key.clone(),
        };
        assert!(validate_key(&bad_uuid).is_err());
        assert!(parse_key("nocolon").is_err());
    }

    #[test]
    fn debug_redacts_keys() {
        let key = AuthKey::generate();
        let user = User {
            subject: "alice".into(),
            namespaces: vec![UserKey {
                namespace: "alice".into(),
                uuid: key.uuid.clone(),
                key: Some(key.clone()),
            }],
            blocked: false,
        };
        let member = NamespaceMember {
            subject: "alice".into(),
            uuid: key.uuid.clone(),
            key: Some(key.clone()),
        };
        for text in [format!("{user:?}"), format!("{member:?}")] {
            assert!(!text.contains(&key.key), "{text}");
            assert!(text.contains(&key.uuid), "{text}");
        }
    }

    #[test]
    fn subject_body_keeps_other_fields() {
        let key = AuthKey::generate();
        let mut doc = SubjectDoc::single("alice", &key);
        doc.blocked = true;
        let raw = serde_json::json!({"subject": "alice", "namespaces": [], "note": "kept"});
        let body = body_of(&doc, raw);
        assert_eq!(body["note"], "kept");
        assert_eq!(body["blocked"], true);
        assert_eq!(body["namespaces"][0]["key"], key.key.as_str());
        doc.blocked = false;
        assert!(body_of(&doc, body).get("blocked").is_none());
    }

    #[test]
    fn limits_document_shape() {
        let limits = NamespaceLimits {
            invocations_per_minute: Some(10),
            fires_per_minute: Some(0),
            ..Default::default()
        };
        let v = serde_json::to_value(&limits).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"invocationsPerMinute": 10, "firesPerMinute": 0})
        );
        let back: NamespaceLimits = serde_json::from_value(
            serde_json::json!({"concurrentInvocations": 3, "maxActionMemory": 512}),
        )
        .unwrap();
        assert_eq!(back.concurrent_invocations, Some(3));
        assert_eq!(back.other["maxActionMemory"], 512);
        assert!(NamespaceLimits::default().is_empty());
    }
}
