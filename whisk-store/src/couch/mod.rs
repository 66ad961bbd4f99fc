//! A [`Store`] over CouchDB's HTTP API, in Apache OpenWhisk's layout, so whisk and OpenWhisk
//! can read each other's databases.
//!
//! - Databases `{db_prefix}whisks`, `{db_prefix}activations`, `{db_prefix}subjects`, created on
//!   [`CouchStore::connect`] together with the design documents `whisks.v2.1.0`,
//!   `whisks-filters.v2.1.1` and `subjects.v2.0.0`.
//! - Document ids as OpenWhisk writes them (`ns/[pkg/]name`, `ns/activationId`, subject names,
//!   `<ns>/limits`); bodies stored as given plus `_id`/`_rev`.
//! - Action code stored as OpenWhisk attachments (inlined `mem:` records below
//!   [`CouchConfig::max_inline_size`], real CouchDB attachments above).
//! - Listings through the views (newest first), counts with their `_count` reduce.
//!
//! ```no_run
//! use whisk_store::{CouchConfig, CouchStore};
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let store = CouchStore::connect(CouchConfig {
//!     url: "http://admin:secret@127.0.0.1:5984".into(),
//!     ..Default::default()
//! })
//! .await
//! .expect("CouchDB reachable");
//! # drop(store); }
//! ```

mod attachments;
pub mod changes;
mod client;
mod design;

pub use changes::CouchChanges;

use async_trait::async_trait;
use attachments::CodeSource;
use client::{doc_path, encode, unexpected, Client};
use reqwest::{Method, StatusCode};
use serde_json::{json, Map, Value};
use std::time::Duration;
use whisk_core::entity::identity::{AuthKey, Identity};
use whisk_core::store::{Collection, Document, Query, Store, StoreError};

/// How to reach CouchDB and how to lay out the databases.
#[derive(Debug, Clone)]
pub struct CouchConfig {
    /// Server URL, e.g. `http://127.0.0.1:5984`. Credentials may be given as userinfo
    /// (`http://user:pass@host:5984`); they are moved into an `Authorization` header and never
    /// shown in messages.
    pub url: String,
    /// Admin user name (overrides the URL's userinfo).
    pub username: Option<String>,
    /// Admin password (overrides the URL's userinfo).
    pub password: Option<String>,
    /// Prefix of the database names (`{prefix}whisks`, ...); OpenWhisk's local default is
    /// `whisk_local_`.
    pub db_prefix: String,
    /// Action code shorter than this many bytes is inlined into the document as a `mem:` URI;
    /// longer code becomes a CouchDB attachment (OpenWhisk's `whisk.db.max-inline-size`, 16 KiB).
    /// `0` puts all code into attachments.
    pub max_inline_size: usize,
    /// Attempts per request (at least 1) on connection errors and 5xx answers.
    pub attempts: u32,
    /// Wait before the first retry; doubled after each, up to `max_backoff`.
    pub initial_backoff: Duration,
    /// Longest wait between retries.
    pub max_backoff: Duration,
    /// Timeout of one HTTP request (and of connecting).
    pub request_timeout: Duration,
}

impl Default for CouchConfig {
    /// `http://127.0.0.1:5984`, no credentials, prefix `whisk_local_`, 16 KiB inline limit,
    /// 4 attempts with 50 ms → 400 ms backoff, 30 s request timeout.
    fn default() -> Self {
        Self {
            url: "http://127.0.0.1:5984".into(),
            username: None,
            password: None,
            db_prefix: "whisk_local_".into(),
            max_inline_size: 16 * 1024,
            attempts: 4,
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_millis(400),
            request_timeout: Duration::from_secs(30),
        }
    }
}

/// A [`Store`] backed by CouchDB (or a CouchDB-compatible server) in OpenWhisk's layout.
pub struct CouchStore {
    client: Client,
    prefix: String,
    max_inline_size: usize,
}

impl std::fmt::Debug for CouchStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CouchStore")
            .field("url", &self.client.display_url())
            .field("db_prefix", &self.prefix)
            .finish()
    }
}

const ALL: [Collection; 3] = [
    Collection::Whisks,
    Collection::Activations,
    Collection::Subjects,
];

impl CouchStore {
    /// Connects to CouchDB, creating the three databases and installing (or updating) the
    /// design documents when needed. An unreachable server gives
    /// [`StoreError::Unavailable`] naming the URL.
    pub async fn connect(config: CouchConfig) -> Result<Self, StoreError> {
        let store = Self {
            client: Client::new(&config)?,
            prefix: config.db_prefix.clone(),
            max_inline_size: config.max_inline_size,
        };
        for c in ALL {
            let db = store.db(c);
            store
                .client
                .send_ok(
                    Method::PUT,
                    &encode(&db),
                    &[],
                    None,
                    &[StatusCode::PRECONDITION_FAILED],
                )
                .await?;
            for (id, body) in design::design_docs(c.db_name()) {
                design::install(&store.client, &db, &id, &body).await?;
            }
        }
        Ok(store)
    }

    /// The server URL (without credentials).
    pub fn url(&self) -> &str {
        self.client.display_url()
    }

    /// The full database name of `collection`, e.g. `whisk_local_whisks`.
    pub fn db(&self, collection: Collection) -> String {
        format!("{}{}", self.prefix, collection.db_name())
    }

    fn path(&self, c: Collection, id: &str) -> String {
        doc_path(&self.db(c), id)
    }

    fn view_path(&self, c: Collection, ddoc: &str, view: &str) -> String {
        format!(
            "{}/_design/{}/_view/{}",
            encode(&self.db(c)),
            encode(ddoc),
            encode(view)
        )
    }

    /// After a 409 (or 400 for a malformed revision) on a write with a revision: `NotFound`
    /// when the document is gone, else `Conflict`.
    async fn conflict_or_missing(&self, c: Collection, id: &str) -> StoreError {
        match self
            .client
            .send(Method::GET, &self.path(c, id), &[], None)
            .await
        {
            Ok(r) if r.status == StatusCode::NOT_FOUND => StoreError::NotFound,
            Ok(_) => StoreError::Conflict,
            Err(e) => e,
        }
    }

    /// Turns a stored document into the body the store hands out: code attachments resolved
    /// (fetching a CouchDB attachment unless the document carries its data), `_id`, `_rev`
    /// and `_attachments` removed.
    async fn finish(
        &self,
        c: Collection,
        id: &str,
        mut doc: Map<String, Value>,
    ) -> Result<Value, StoreError> {
        if c == Collection::Whisks {
            let bytes = match attachments::code_source(id, &doc)? {
                None => None,
                Some(CodeSource::Inline(bytes)) => Some(bytes),
                Some(CodeSource::Couch(name)) => {
                    Some(match attachments::inline_attachment(id, &doc, &name) {
                        Some(bytes) => bytes?,
                        None => self.fetch_attachment(c, id, &doc, &name).await?,
                    })
                }
            };
            if let Some(bytes) = bytes {
                attachments::restore_code(id, &mut doc, bytes)?;
            }
        }
        for k in ["_id", "_rev", "_attachments"] {
            doc.remove(k);
        }
        Ok(Value::Object(doc))
    }

    async fn fetch_attachment(
        &self,
        c: Collection,
        id: &str,
        doc: &Map<String, Value>,
        name: &str,
    ) -> Result<Vec<u8>, StoreError> {
        if !attachments::has_attachment(doc, name) {
            return Err(StoreError::Corrupt(format!(
                "{id}: code attachment {name} is missing"
            )));
        }
        let path = format!("{}/{}", self.path(c, id), encode(name));
        let mut query = Vec::new();
        if let Some(rev) = doc.get("_rev").and_then(Value::as_str) {
            query.push(("rev", rev.to_string()));
        }
        let reply = self.client.send(Method::GET, &path, &query, None).await?;
        match reply.status {
            s if s.is_success() => Ok(reply.bytes.to_vec()),
            StatusCode::NOT_FOUND => Err(StoreError::Corrupt(format!(
                "{id}: code attachment {name} is missing"
            ))),
            _ => Err(unexpected(&Method::GET, &path, &reply)),
        }
    }

    /// The view, key prefix and sort-key bounds a query lists through.
    fn view_of(&self, q: &Query) -> Result<(String, Value), StoreError> {
        match q.collection() {
            Collection::Whisks => {
                let Some(t) = q.entity_type.as_deref() else {
                    return Err(StoreError::Other(
                        "CouchDB lists entities through per-type views: a whisks query needs an entity_type (action, trigger, rule or package)".into(),
                    ));
                };
                let (ddoc, view) = design::entity_view(t).ok_or_else(|| {
                    StoreError::Other(format!("no CouchDB view lists entities of type {t}"))
                })?;
                Ok((
                    self.view_path(Collection::Whisks, ddoc, view),
                    json!(q.namespace),
                ))
            }
            Collection::Activations => Ok(match &q.name {
                Some(name) => (
                    self.view_path(Collection::Activations, design::FILTERS_DDOC, "activations"),
                    json!(format!("{}/{}", q.namespace, name)),
                ),
                None => (
                    self.view_path(Collection::Activations, design::WHISKS_DDOC, "activations"),
                    json!(q.namespace),
                ),
            }),
            Collection::Subjects => Err(StoreError::Other(
                "the subjects database is listed through _all_docs, not a view".into(),
            )),
        }
    }

    /// View parameters for the range of `q`, newest first.
    fn range(q: &Query, prefix: Value) -> Vec<(&'static str, String)> {
        let upto = q.upto.map_or(json!({}), |u| json!(u));
        let since = json!(q.since.unwrap_or(0));
        vec![
            ("descending", "true".into()),
            ("startkey", json!([prefix.clone(), upto]).to_string()),
            ("endkey", json!([prefix, since]).to_string()),
        ]
    }

    async fn view(&self, path: &str, params: &[(&str, String)]) -> Result<Vec<Value>, StoreError> {
        let body = self
            .client
            .send_ok(Method::GET, path, params, None, &[])
            .await?;
        match body.get("rows") {
            Some(Value::Array(rows)) => Ok(rows.clone()),
            _ => Err(StoreError::Other(format!(
                "CouchDB view {path} answered without rows"
            ))),
        }
    }

    /// Every document of the subjects database but the design documents (`_all_docs`: the
    /// database has no view of all subjects; administration lists them rarely).
    async fn all_subjects(&self) -> Result<Vec<Value>, StoreError> {
        let path = format!("{}/_all_docs", encode(&self.db(Collection::Subjects)));
        let rows = self.view(&path, &[("include_docs", "true".into())]).await?;
        Ok(rows
            .into_iter()
            .filter(|r| !r["id"].as_str().unwrap_or("").starts_with("_design/"))
            .filter_map(|mut r| match r.get_mut("doc").map(Value::take) {
                Some(Value::Object(mut doc)) => {
                    doc.remove("_rev");
                    Some(Value::Object(doc))
                }
                _ => None,
            })
            .collect())
    }

    /// Looks up an identity through the identities view by `key`.
    async fn find_identity(&self, key: Value) -> Result<Option<Identity>, StoreError> {
        let path = self.view_path(Collection::Subjects, design::SUBJECTS_DDOC, "identities");
        let rows = self
            .view(
                &path,
                &[("key", key.to_string()), ("include_docs", "true".into())],
            )
            .await?;
        let Some(row) = rows.into_iter().next() else {
            return Ok(None);
        };
        let field = |k: &str| row["value"][k].as_str().unwrap_or("").to_string();
        let subject = row["id"].as_str().unwrap_or("").to_string();
        let key = AuthKey {
            uuid: field("uuid"),
            key: field("key"),
        };
        let mut identity = Identity::new(&subject, &field("namespace"), &key);
        if let Some(Value::Object(mut limits)) = row.get("doc").cloned() {
            limits.remove("_id");
            limits.remove("_rev");
            identity.limits = Value::Object(limits);
        }
        Ok(Some(identity))
    }
}

#[async_trait]
impl Store for CouchStore {
    async fn put(
        &self,
        c: Collection,
        id: &str,
        body: Value,
        rev: Option<&str>,
    ) -> Result<String, StoreError> {
        let Value::Object(mut doc) = body else {
            return Err(StoreError::Other(format!(
                "{id}: CouchDB documents must be JSON objects"
            )));
        };
        for k in ["_id", "_rev", "_attachments"] {
            doc.remove(k);
        }
        if c == Collection::Whisks {
            if let Some(att) = attachments::detach_code(&mut doc, self.max_inline_size) {
                doc.insert(
                    "_attachments".into(),
                    json!({ att.name.clone(): att.stub() }),
                );
            }
        }
        doc.insert("_id".into(), json!(id));
        if let Some(r) = rev {
            doc.insert("_rev".into(), json!(r));
        }
        let path = self.path(c, id);
        let reply = self
            .client
            .send(Method::PUT, &path, &[], Some(&Value::Object(doc)))
            .await?;
        match (reply.status, rev) {
            (s, _) if s.is_success() => reply
                .json()
                .get("rev")
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| StoreError::Other(format!("CouchDB gave no revision for {id}"))),
            (StatusCode::CONFLICT, None) => Err(StoreError::AlreadyExists),
            (StatusCode::CONFLICT | StatusCode::BAD_REQUEST, Some(_)) => {
                Err(self.conflict_or_missing(c, id).await)
            }
            (StatusCode::NOT_FOUND, _) => Err(StoreError::NotFound),
            _ => Err(unexpected(&Method::PUT, &path, &reply)),
        }
    }

    async fn get(&self, c: Collection, id: &str) -> Result<Document, StoreError> {
        let path = self.path(c, id);
        let query = [("attachments", "true".to_string())];
        let reply = self.client.send(Method::GET, &path, &query, None).await?;
        match reply.status {
            s if s.is_success() => {}
            StatusCode::NOT_FOUND => return Err(StoreError::NotFound),
            _ => return Err(unexpected(&Method::GET, &path, &reply)),
        }
        let Value::Object(doc) = reply.json() else {
            return Err(StoreError::Corrupt(format!("{id}: not a JSON object")));
        };
        let rev = doc
            .get("_rev")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let body = self.finish(c, id, doc).await?;
        Ok(Document {
            id: id.to_string(),
            rev,
            body,
        })
    }

    async fn delete(&self, c: Collection, id: &str, rev: &str) -> Result<(), StoreError> {
        let path = self.path(c, id);
        let reply = self
            .client
            .send(Method::DELETE, &path, &[("rev", rev.to_string())], None)
            .await?;
        match reply.status {
            s if s.is_success() => Ok(()),
            StatusCode::NOT_FOUND => Err(StoreError::NotFound),
            StatusCode::CONFLICT | StatusCode::BAD_REQUEST => {
                Err(self.conflict_or_missing(c, id).await)
            }
            _ => Err(unexpected(&Method::DELETE, &path, &reply)),
        }
    }

    async fn query(&self, q: &Query) -> Result<Vec<Value>, StoreError> {
        if q.collection() == Collection::Subjects {
            let docs = self.all_subjects().await?;
            return Ok(q.apply(docs.iter()));
        }
        let (path, prefix) = self.view_of(q)?;
        let mut params = Self::range(q, prefix);
        params.push(("reduce", "false".into()));
        params.push(("include_docs", "true".into()));
        if q.skip > 0 {
            params.push(("skip", q.skip.to_string()));
        }
        if q.limit > 0 {
            params.push(("limit", q.limit.to_string()));
        }
        let c = q.collection();
        let mut out = Vec::new();
        for row in self.view(&path, &params).await? {
            let id = row["id"].as_str().unwrap_or("").to_string();
            let Some(Value::Object(doc)) = row.get("doc").cloned() else {
                continue; // deleted meanwhile
            };
            match self.finish(c, &id, doc).await {
                Ok(body) => out.push(body),
                Err(e @ StoreError::Corrupt(_)) => {
                    tracing::warn!(db = %self.db(c), %id, error = %e, "skipping unreadable document in listing");
                }
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    async fn count(&self, q: &Query) -> Result<u64, StoreError> {
        if q.collection() == Collection::Subjects {
            let docs = self.all_subjects().await?;
            return Ok(q.count(docs.iter()));
        }
        let (path, prefix) = self.view_of(q)?;
        let mut params = Self::range(q, prefix);
        params.push(("reduce", "true".into()));
        let rows = self.view(&path, &params).await?;
        Ok(rows.first().and_then(|r| r["value"].as_u64()).unwrap_or(0))
    }

    async fn identity(&self, uuid: &str, key: &str) -> Result<Option<Identity>, StoreError> {
        self.find_identity(json!([uuid, key])).await
    }

    async fn namespace_identity(&self, namespace: &str) -> Result<Option<Identity>, StoreError> {
        self.find_identity(json!([namespace])).await
    }

    async fn activation_namespaces(&self) -> Result<Vec<String>, StoreError> {
        let path = self.view_path(Collection::Activations, design::WHISKS_DDOC, "activations");
        let rows = self
            .view(
                &path,
                &[("reduce", "true".into()), ("group_level", "1".into())],
            )
            .await?;
        let mut names: Vec<String> = rows
            .iter()
            .filter_map(|r| r["key"][0].as_str().map(str::to_string))
            .collect();
        names.sort();
        names.dedup();
        Ok(names)
    }
}
