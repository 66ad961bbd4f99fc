//! An embedded, durable [`Store`] over [redb](https://docs.rs/redb): one file on local disk,
//! for single-machine platforms that must keep their entities and activations across restarts.
//!
//! ```
//! use whisk_core::store::{Collection, Store};
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! # let dir = tempfile::tempdir().unwrap();
//! let store = whisk_store::EmbeddedStore::open(dir.path()).unwrap();
//! let rev = store.put(Collection::Whisks, "guest/hello", serde_json::json!({}), None).await.unwrap();
//! assert_eq!(store.get(Collection::Whisks, "guest/hello").await.unwrap().rev, rev);
//! # }
//! ```
//!
//! # How it works
//!
//! - **Layout.** Each collection has a documents table (`id → revision, index key, JSON
//!   body`) and a listing-index table (see [`index`](self) below) kept in the same
//!   transactions, so they never disagree.
//! - **Writes** go to one writer thread that applies every queued request in a single write
//!   transaction and commits it durably (fsync) before answering any of them: *group commit*.
//!   Under many concurrent writers one fsync covers hundreds of writes, and while writers
//!   are active it gathers writes arriving a little apart for up to 2 ms (see
//!   [`writer`](self)); a lone writer never waits. Each request is
//!   validated on its own against the state the earlier requests of its batch left, so a stale
//!   revision fails that request alone. A write that returned `Ok` survives a crash of the
//!   process (and, with a disk that honours fsync, of the machine).
//! - **Reads** use read transactions (MVCC): they see the last commit and never block the
//!   writer. Listings and counts range-scan the namespace's slice of the index, newest first,
//!   stopping once `skip + limit` matches are found; they run on tokio's blocking pool.
//! - **Keys** of subjects are kept as salted SHA-256 hashes (`keyHash` in place of `key`),
//!   never in clear: every subject written is hashed on its way in, a store written in clear
//!   by an earlier version is rewritten when it opens, and identity lookups hash the presented
//!   key and compare in constant time. A key can therefore not be read back from this store;
//!   see [`whisk_core::entity::secret`] for why one salted SHA-256 is enough.

mod index;
mod keys;
mod record;
mod writer;

use async_trait::async_trait;
use record::Record;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use tokio::sync::oneshot;
use whisk_core::entity::{Identity, SubjectDoc};
use whisk_core::store::{limits_doc_id, Collection, Document, Query, Store, StoreError};
use writer::{Op, Request};

/// The name of the database file inside the store's directory.
pub const FILE_NAME: &str = "whisk.redb";

/// The page cache redb may use.
const CACHE_BYTES: usize = 256 * 1024 * 1024;

/// The collections, in the order the writer holds their tables.
const COLLECTIONS: [Collection; 3] = [
    Collection::Whisks,
    Collection::Activations,
    Collection::Subjects,
];

/// The documents table of `c`: id → [`Record`].
fn docs_table(c: Collection) -> TableDefinition<'static, &'static str, &'static [u8]> {
    TableDefinition::new(match c {
        Collection::Whisks => "whisks",
        Collection::Activations => "activations",
        Collection::Subjects => "subjects",
    })
}

/// The listing-index table of `c`: index key → index entry.
fn index_table(c: Collection) -> TableDefinition<'static, &'static [u8], &'static [u8]> {
    TableDefinition::new(match c {
        Collection::Whisks => "whisks.index",
        Collection::Activations => "activations.index",
        Collection::Subjects => "subjects.index",
    })
}

/// A redb failure as a store error.
fn db_err(e: impl Into<redb::Error>) -> StoreError {
    match e.into() {
        redb::Error::Corrupted(m) => StoreError::Corrupt(format!("database file: {m}")),
        e => StoreError::Unavailable(format!("embedded store: {e}")),
    }
}

/// A durable [`Store`] in one redb file, written through a group-commit writer thread.
///
/// One process at a time may open a store; dropping it waits for queued writes and releases
/// the file.
pub struct EmbeddedStore {
    db: Arc<Database>,
    tx: Option<mpsc::Sender<Request>>,
    writer: Option<JoinHandle<()>>,
    /// What the writer counts.
    counts: Arc<writer::Counts>,
    file: PathBuf,
    /// A temporary directory the store lives in (tests), removed after the store closes.
    #[cfg(test)]
    _temp: Option<tempfile::TempDir>,
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedStore")
            .field("file", &self.file)
            .finish()
    }
}

impl EmbeddedStore {
    /// Opens the store kept in directory `dir` (file [`FILE_NAME`] inside it), creating the
    /// directory and the database when missing. A database left by a crash is recovered to
    /// its last commit.
    ///
    /// Fails with [`StoreError::Unavailable`] when another process (or another
    /// `EmbeddedStore` of this process) has the store open, or the file cannot be created.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, StoreError> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(|e| {
            StoreError::Unavailable(format!(
                "cannot create store directory {}: {e}",
                dir.display()
            ))
        })?;
        let file = dir.join(FILE_NAME);
        let db = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create(&file)
            .map_err(|e| match e {
                redb::DatabaseError::DatabaseAlreadyOpen => StoreError::Unavailable(format!(
                    "store {} is already open in another process (or another EmbeddedStore of \
                     this one); only one may use it at a time",
                    file.display()
                )),
                e => StoreError::Unavailable(format!("cannot open store {}: {e}", file.display())),
            })?;
        // Create the tables once, so readers always find them; hash the keys of subjects an
        // earlier version wrote in clear.
        let txn = db.begin_write().map_err(db_err)?;
        let mut migrated = 0;
        for c in COLLECTIONS {
            let mut docs = txn.open_table(docs_table(c)).map_err(db_err)?;
            txn.open_table(index_table(c)).map_err(db_err)?;
            if c == Collection::Subjects {
                migrated = keys::migrate(&mut docs)?;
            }
        }
        txn.commit().map_err(db_err)?;
        let mut db = db;
        if migrated > 0 {
            // The pages that held the clear keys are free now but keep their bytes until
            // reused; compacting moves live pages down and cuts the file after them.
            db.compact().map_err(db_err)?;
            tracing::info!(
                subjects = migrated,
                "hashed the clear keys of stored subjects"
            );
        }

        let db = Arc::new(db);
        let (tx, rx) = mpsc::channel();
        let counts = Arc::new(writer::Counts::default());
        let writer = {
            let (db, counts) = (db.clone(), counts.clone());
            std::thread::Builder::new()
                .name("whisk-store-writer".into())
                .spawn(move || writer::run(db, rx, counts))
                .map_err(|e| StoreError::Other(format!("cannot start the writer thread: {e}")))?
        };
        Ok(Self {
            db,
            tx: Some(tx),
            writer: Some(writer),
            counts,
            file,
            #[cfg(test)]
            _temp: None,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.file
    }

    /// How many write transactions the store has run since it opened: with group commit,
    /// usually fewer than the writes (`writes / commits` is the mean batch).
    pub fn commits(&self) -> u64 {
        self.counts.commits.load(Ordering::Relaxed)
    }

    /// Of [`commits`](Self::commits), those for which the writer gathered writes (waited up
    /// to 2 ms for more) because other writers were active.
    pub fn gathered_commits(&self) -> u64 {
        self.counts.gathered.load(Ordering::Relaxed)
    }

    /// Queues a write for the writer thread and waits for its commit.
    async fn submit(&self, op: Op) -> Result<String, StoreError> {
        let stopped = || StoreError::Unavailable("embedded store writer has stopped".into());
        let (reply, answer) = oneshot::channel();
        self.tx
            .as_ref()
            .ok_or_else(stopped)?
            .send(Request { op, reply })
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    /// Runs `f` over a read transaction on the blocking pool.
    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&redb::ReadTransaction) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || f(&db.begin_read().map_err(db_err)?))
            .await
            .map_err(|e| StoreError::Other(format!("embedded store read task failed: {e}")))?
    }
}

impl Drop for EmbeddedStore {
    fn drop(&mut self) {
        // The writer finishes what is queued, then exits and releases its database handle.
        drop(self.tx.take());
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
    }
}

/// The documents of `q` newest first, after `skip`, at most `limit` (0 = all); with
/// `count_only`, just how many match (ignoring `skip`/`limit`).
fn scan(
    txn: &redb::ReadTransaction,
    q: &Query,
    count_only: bool,
) -> Result<(Vec<Value>, u64), StoreError> {
    let c = q.collection();
    let idx = txn.open_table(index_table(c)).map_err(db_err)?;
    let docs = txn.open_table(docs_table(c)).map_err(db_err)?;
    let (lo, hi, prefix_len) = index::query_range(q);
    let range = idx
        .range::<&[u8]>((
            lo.as_ref().map(Vec::as_slice),
            hi.as_ref().map(Vec::as_slice),
        ))
        .map_err(db_err)?;
    let load = |id: &str| -> Result<Value, StoreError> {
        let g = docs.get(id).map_err(db_err)?.ok_or_else(|| {
            StoreError::Corrupt(format!("{}/{id}: indexed but missing", c.db_name()))
        })?;
        Record::decode(c, id, g.value())?.json(c, id)
    };
    let mut hits = Vec::new();
    let mut matched = 0u64;
    for item in range.rev() {
        let (k, v) = item.map_err(db_err)?;
        let bad_entry = || StoreError::Corrupt(format!("{} index: malformed entry", c.db_name()));
        let sort_key = index::sort_key_of(k.value(), prefix_len).ok_or_else(bad_entry)?;
        let entry = index::IndexEntry::decode(v.value()).ok_or_else(bad_entry)?;
        if !entry.matches(q, sort_key) {
            continue;
        }
        // Only the activation `name` filter needs the document itself.
        let mut body = None;
        if q.name.is_some() {
            let doc = load(&entry.id)?;
            if !q.matches(&doc) {
                continue;
            }
            body = Some(doc);
        }
        matched += 1;
        if count_only || matched <= q.skip as u64 {
            continue;
        }
        hits.push(match body {
            Some(b) => b,
            None => load(&entry.id)?,
        });
        if q.limit != 0 && hits.len() >= q.limit {
            break;
        }
    }
    Ok((hits, matched))
}

/// The first subject `pick` finds, with its namespace's limits document when there is one.
/// `needle`, when given, is a string every matching subject's JSON contains verbatim, so
/// other subjects are skipped without parsing.
fn find_subject(
    txn: &redb::ReadTransaction,
    needle: Option<&str>,
    pick: impl Fn(SubjectDoc) -> Option<Identity>,
) -> Result<Option<Identity>, StoreError> {
    let c = Collection::Subjects;
    let docs = txn.open_table(docs_table(c)).map_err(db_err)?;
    let mut found = None;
    for item in docs.iter().map_err(db_err)? {
        let (k, v) = item.map_err(db_err)?;
        let Ok(rec) = Record::decode(c, k.value(), v.value()) else {
            continue;
        };
        if let Some(n) = needle {
            if !rec.body.windows(n.len()).any(|w| w == n.as_bytes()) {
                continue;
            }
        }
        if let Some(id) = serde_json::from_slice::<SubjectDoc>(rec.body)
            .ok()
            .and_then(&pick)
        {
            found = Some(id);
            break;
        }
    }
    let Some(mut identity) = found else {
        return Ok(None);
    };
    let limits_id = limits_doc_id(&identity.namespace.name);
    if let Some(g) = docs.get(limits_id.as_str()).map_err(db_err)? {
        identity.limits = Record::decode(c, &limits_id, g.value())?.json(c, &limits_id)?;
    }
    Ok(Some(identity))
}

/// `s` as a verbatim needle when JSON cannot have escaped it (plain name characters only).
fn plain_needle(s: &str) -> Option<String> {
    (!s.is_empty()
        && s.chars()
            .all(|ch| ch.is_ascii_alphanumeric() || "-_.@:/ ".contains(ch)))
    .then(|| format!("\"{s}\""))
}

#[async_trait]
impl Store for EmbeddedStore {
    async fn put(
        &self,
        c: Collection,
        id: &str,
        body: Value,
        rev: Option<&str>,
    ) -> Result<String, StoreError> {
        let mut body = body;
        if c == Collection::Subjects {
            keys::hash_keys(&mut body);
        }
        let (index_key, index_value) = index::entry_for(c, id, &body);
        let body = serde_json::to_vec(&body)
            .map_err(|e| StoreError::Other(format!("cannot serialise {id}: {e}")))?;
        self.submit(Op::Put {
            c,
            id: id.to_string(),
            rev: rev.map(str::to_string),
            body,
            index_key,
            index_value,
        })
        .await
    }

    async fn get(&self, c: Collection, id: &str) -> Result<Document, StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let docs = txn.open_table(docs_table(c)).map_err(db_err)?;
        let g = docs.get(id).map_err(db_err)?.ok_or(StoreError::NotFound)?;
        let rec = Record::decode(c, id, g.value())?;
        Ok(Document {
            id: id.to_string(),
            rev: rec.rev.to_string(),
            body: rec.json(c, id)?,
        })
    }

    async fn delete(&self, c: Collection, id: &str, rev: &str) -> Result<(), StoreError> {
        self.submit(Op::Delete {
            c,
            id: id.to_string(),
            rev: rev.to_string(),
        })
        .await
        .map(drop)
    }

    async fn query(&self, q: &Query) -> Result<Vec<Value>, StoreError> {
        let q = q.clone();
        self.read(move |txn| scan(txn, &q, false).map(|(hits, _)| hits))
            .await
    }

    async fn count(&self, q: &Query) -> Result<u64, StoreError> {
        let q = q.clone();
        self.read(move |txn| scan(txn, &q, true).map(|(_, n)| n))
            .await
    }

    async fn identity(&self, uuid: &str, key: &str) -> Result<Option<Identity>, StoreError> {
        let (uuid, key) = (uuid.to_string(), key.to_string());
        self.read(move |txn| {
            find_subject(txn, plain_needle(&uuid).as_deref(), |s| {
                s.identity_for(&uuid, &key)
            })
        })
        .await
    }

    async fn namespace_identity(&self, namespace: &str) -> Result<Option<Identity>, StoreError> {
        let namespace = namespace.to_string();
        self.read(move |txn| {
            find_subject(txn, plain_needle(&namespace).as_deref(), |s| {
                s.namespace_identity(&namespace)
            })
        })
        .await
    }

    async fn activation_namespaces(&self) -> Result<Vec<String>, StoreError> {
        self.read(|txn| {
            let c = Collection::Activations;
            let idx = txn.open_table(index_table(c)).map_err(db_err)?;
            let bad_entry =
                || StoreError::Corrupt(format!("{} index: malformed entry", c.db_name()));
            let mut names = Vec::new();
            let mut from: Vec<u8> = Vec::new();
            // One short range per namespace: read its first entry, then skip past its root.
            loop {
                let mut range = idx.range::<&[u8]>(from.as_slice()..).map_err(db_err)?;
                let Some(item) = range.next() else { break };
                let (k, v) = item.map_err(db_err)?;
                let root = index::root_of(k.value()).to_vec();
                let mut ns = index::IndexEntry::decode(v.value())
                    .ok_or_else(bad_entry)?
                    .namespace;
                // Documents without a `namespace` share root "" with those whose namespace is
                // ""; only the latter count.
                while ns.is_none() {
                    let Some(item) = range.next() else { break };
                    let (k, v) = item.map_err(db_err)?;
                    if index::root_of(k.value()) != root.as_slice() {
                        break;
                    }
                    ns = index::IndexEntry::decode(v.value())
                        .ok_or_else(bad_entry)?
                        .namespace;
                }
                names.extend(ns);
                from = index::after_root(&root);
            }
            Ok(names)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::HashSet;
    use whisk_core::store::StoreExt;

    impl EmbeddedStore {
        /// A store in a fresh temporary directory, removed when the store is dropped.
        fn temporary() -> Self {
            let dir = tempfile::tempdir().unwrap();
            let mut store = Self::open(dir.path()).unwrap();
            store._temp = Some(dir);
            store
        }
    }

    whisk_core::store_conformance_tests!(EmbeddedStore::temporary());

    /// Whether any byte sequence of the store's file is `needle`.
    fn file_contains(dir: &Path, needle: &str) -> bool {
        let bytes = std::fs::read(dir.join(FILE_NAME)).unwrap();
        bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn keys_are_hashed_at_rest_and_authenticate_after_a_restart() {
        use whisk_core::entity::identity::AuthKey;
        let dir = tempfile::tempdir().unwrap();
        let key = AuthKey::generate();
        {
            let s = EmbeddedStore::open(dir.path()).unwrap();
            s.put_subject(&SubjectDoc::single("alice", &key))
                .await
                .unwrap();
            let stored = s.get(Collection::Subjects, "alice").await.unwrap().body;
            assert!(stored["namespaces"][0].get("key").is_none(), "{stored}");
            let hash = stored["namespaces"][0]["keyHash"].as_str().unwrap();
            assert!(hash.starts_with("sha256:"), "{hash}");
            assert!(s.identity(&key.uuid, &key.key).await.unwrap().is_some());
        }
        // The file holds the subject (its UUID) but not the secret.
        assert!(file_contains(dir.path(), &key.uuid));
        assert!(!file_contains(dir.path(), &key.key));
        let s = EmbeddedStore::open(dir.path()).unwrap();
        let id = s.identity(&key.uuid, &key.key).await.unwrap().unwrap();
        assert_eq!(id.api_key(), key.compact());
        let wrong = AuthKey::generate().key;
        assert!(s.identity(&key.uuid, &wrong).await.unwrap().is_none());
        let owner = s.namespace_identity("alice").await.unwrap().unwrap();
        assert_eq!(
            (owner.api_key(), owner.namespace.uuid.as_str()),
            ("", key.uuid.as_str())
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn clear_keys_of_an_earlier_version_are_hashed_on_open() {
        use whisk_core::entity::identity::AuthKey;
        let dir = tempfile::tempdir().unwrap();
        let key = AuthKey::generate();
        let rev = "1-0123456789abcdef0123456789abcdef";
        let others: Vec<AuthKey> = (0..300).map(|_| AuthKey::generate()).collect();
        // What an earlier version wrote: the subject with its key in clear, and a limits
        // document, straight into the tables.
        {
            let db = Database::create(dir.path().join(FILE_NAME)).unwrap();
            let txn = db.begin_write().unwrap();
            {
                let c = Collection::Subjects;
                let mut docs = txn.open_table(docs_table(c)).unwrap();
                let mut idx = txn.open_table(index_table(c)).unwrap();
                let subject = serde_json::to_value(SubjectDoc::single("alice", &key)).unwrap();
                let limits = json!({"invocationsPerMinute": 7});
                // Enough others that the subjects fill many pages.
                let others = others.iter().enumerate().map(|(i, k)| {
                    let doc = SubjectDoc::single(&format!("user{i:03}"), k);
                    (format!("user{i:03}"), serde_json::to_value(doc).unwrap())
                });
                let docs_in_clear = [
                    ("alice".to_string(), subject),
                    ("alice/limits".into(), limits),
                ];
                for (id, body) in docs_in_clear.into_iter().chain(others) {
                    let id = id.as_str();
                    let (k, v) = index::entry_for(c, id, &body);
                    let body = serde_json::to_vec(&body).unwrap();
                    docs.insert(id, Record::encode(&k, rev, &body).as_slice())
                        .unwrap();
                    idx.insert(k.as_slice(), v.as_slice()).unwrap();
                }
            }
            txn.commit().unwrap();
        }
        assert!(file_contains(dir.path(), &key.key), "written in clear");
        {
            let s = EmbeddedStore::open(dir.path()).unwrap();
            let id = s.identity(&key.uuid, &key.key).await.unwrap().unwrap();
            assert_eq!(id.limits["invocationsPerMinute"], 7);
            let doc = s.get(Collection::Subjects, "alice").await.unwrap();
            assert_eq!(doc.rev, rev, "the same credentials, the same revision");
            assert!(doc.body["namespaces"][0]["keyHash"].is_string());
            let limits = s.get(Collection::Subjects, "alice/limits").await.unwrap();
            assert_eq!(limits.body, json!({"invocationsPerMinute": 7}));
        }
        for k in std::iter::once(&key).chain(&others) {
            assert!(
                !file_contains(dir.path(), &k.key),
                "no copy left in the file"
            );
        }
        let s = EmbeddedStore::open(dir.path()).unwrap();
        assert!(s.identity(&key.uuid, &key.key).await.unwrap().is_some());
        assert!(s
            .identity(&key.uuid, &"x".repeat(64))
            .await
            .unwrap()
            .is_none());
    }

    fn activation(ns: &str, i: u64) -> Value {
        json!({
            "namespace": ns, "name": format!("a{}", i % 3), "activationId": format!("{i:032x}"),
            "start": 1000 + i / 2, "end": 2000 + i, "entityType": "activation",
            "annotations": [{"key": "path", "value": format!("{ns}/a{}", i % 3)}],
            "response": {"statusCode": 0, "result": {"i": i}},
        })
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn everything_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let queries = [
            Query {
                collection: Some(Collection::Activations),
                namespace: "ns1".into(),
                ..Default::default()
            },
            Query {
                collection: Some(Collection::Activations),
                namespace: "ns1".into(),
                name: Some("a1".into()),
                since: Some(1003),
                skip: 1,
                limit: 3,
                ..Default::default()
            },
            Query {
                collection: Some(Collection::Whisks),
                namespace: "guest".into(),
                entity_type: Some("action".into()),
                ..Default::default()
            },
        ];
        let mut expected = Vec::new();
        let (rev, deleted_id);
        {
            let s = EmbeddedStore::open(dir.path()).unwrap();
            let mem = crate::MemoryStore::new();
            for i in 0..40u64 {
                let ns = if i % 4 == 0 { "ns2" } else { "ns1" };
                let id = format!("{ns}/{i:032x}");
                s.put(Collection::Activations, &id, activation(ns, i), None)
                    .await
                    .unwrap();
                mem.put(Collection::Activations, &id, activation(ns, i), None)
                    .await
                    .unwrap();
            }
            for (id, ns, updated) in [("guest/a", "guest", 5), ("guest/p/b", "guest/p", 7)] {
                let body = json!({"namespace": ns, "name": id, "entityType": "action", "updated": updated});
                s.put(Collection::Whisks, id, body.clone(), None)
                    .await
                    .unwrap();
                mem.put(Collection::Whisks, id, body, None).await.unwrap();
            }
            // An update moves the index entry; a delete removes it.
            let r1 = s.get(Collection::Whisks, "guest/a").await.unwrap().rev;
            let body = json!({"namespace": "guest", "name": "guest/a", "entityType": "action", "updated": 9});
            rev = s
                .put(Collection::Whisks, "guest/a", body.clone(), Some(&r1))
                .await
                .unwrap();
            mem.upsert(Collection::Whisks, "guest/a", body)
                .await
                .unwrap();
            deleted_id = format!("ns1/{:032x}", 1);
            let d = s.get(Collection::Activations, &deleted_id).await.unwrap();
            s.delete(Collection::Activations, &deleted_id, &d.rev)
                .await
                .unwrap();
            let d = mem.get(Collection::Activations, &deleted_id).await.unwrap();
            mem.delete(Collection::Activations, &deleted_id, &d.rev)
                .await
                .unwrap();
            for q in &queries {
                let got = (s.query(q).await.unwrap(), s.count(q).await.unwrap());
                let want = (mem.query(q).await.unwrap(), mem.count(q).await.unwrap());
                assert_eq!(got, want, "{q:?}");
                expected.push(want);
            }
            assert_eq!(
                EmbeddedStore::open(dir.path()).unwrap_err(),
                StoreError::Unavailable(format!(
                    "store {} is already open in another process (or another EmbeddedStore of \
                     this one); only one may use it at a time",
                    s.path().display()
                ))
            );
        }
        let s = EmbeddedStore::open(dir.path()).unwrap();
        for (q, want) in queries.iter().zip(&expected) {
            let got = (s.query(q).await.unwrap(), s.count(q).await.unwrap());
            assert_eq!(&got, want, "{q:?} after reopen");
        }
        assert_eq!(s.get(Collection::Whisks, "guest/a").await.unwrap().rev, rev);
        assert_eq!(
            s.get(Collection::Activations, &deleted_id)
                .await
                .unwrap_err(),
            StoreError::NotFound
        );
        assert_eq!(
            s.activation_namespaces().await.unwrap(),
            ["ns1".to_string(), "ns2".to_string()]
        );
    }

    /// The commits and gathered commits the store ran for the writes `f` made.
    async fn commits_for(
        s: &EmbeddedStore,
        f: impl std::future::Future<Output = ()>,
    ) -> (u64, u64) {
        let before = (s.commits(), s.gathered_commits());
        f.await;
        (s.commits() - before.0, s.gathered_commits() - before.1)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_lone_writer_commits_each_write_at_once() {
        let s = EmbeddedStore::temporary();
        // Each write is answered after its own commit: nothing else is queued, so the writer
        // never waits for company, even though the writer's next request follows its answer
        // at once, and never merges a write with the next one.
        let (commits, gathered) = commits_for(&s, async {
            for i in 0..200 {
                s.put(Collection::Activations, &format!("g/a{i}"), json!({}), None)
                    .await
                    .unwrap();
            }
        })
        .await;
        assert_eq!((commits, gathered), (200, 0));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writers_share_commits() {
        let s = Arc::new(EmbeddedStore::temporary());
        let (writers, each) = (32, 20);
        let (commits, _) = commits_for(&s, async {
            let tasks: Vec<_> = (0..writers)
                .map(|w| {
                    let s = s.clone();
                    tokio::spawn(async move {
                        for i in 0..each {
                            let id = format!("g/w{w}-{i}");
                            s.put(Collection::Activations, &id, json!({}), None)
                                .await
                                .unwrap();
                        }
                    })
                })
                .collect();
            for t in tasks {
                t.await.unwrap();
            }
        })
        .await;
        let writes = writers * each;
        assert!(
            commits * 4 <= writes,
            "{writes} writes took {commits} commits: fewer than 4 writes per commit"
        );
        for (w, i) in (0..writers).flat_map(|w| (0..each).map(move |i| (w, i))) {
            let id = format!("g/w{w}-{i}");
            assert!(
                s.get(Collection::Activations, &id).await.is_ok(),
                "{id} is there"
            );
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn conflicts_in_a_batch_fail_alone() {
        let s = Arc::new(EmbeddedStore::temporary());
        let n = 20;
        let mut revs = Vec::new();
        for i in 0..n {
            revs.push(
                s.put(
                    Collection::Whisks,
                    &format!("g/d{i}"),
                    json!({"v": 0}),
                    None,
                )
                .await
                .unwrap(),
            );
        }
        // Per document: 4 updates racing on the same revision (exactly one wins), a create of
        // the existing id, an update of a missing id, a fresh create and a stale delete; all
        // queued at once so they share batches.
        let mut tasks = Vec::new();
        for (i, rev) in revs.iter().enumerate() {
            for w in 0..4 {
                let (s, r) = (s.clone(), rev.clone());
                tasks.push(tokio::spawn(async move {
                    let id = format!("g/d{i}");
                    (
                        "update",
                        i,
                        s.put(Collection::Whisks, &id, json!({"v": w + 1}), Some(&r))
                            .await,
                    )
                }));
            }
            let s2 = s.clone();
            tasks.push(tokio::spawn(async move {
                let id = format!("g/d{i}");
                (
                    "exists",
                    i,
                    s2.put(Collection::Whisks, &id, json!({}), None).await,
                )
            }));
            let s2 = s.clone();
            tasks.push(tokio::spawn(async move {
                let id = format!("g/missing{i}");
                (
                    "missing",
                    i,
                    s2.put(Collection::Whisks, &id, json!({}), Some("1-x"))
                        .await,
                )
            }));
            let s2 = s.clone();
            tasks.push(tokio::spawn(async move {
                let id = format!("g/new{i}");
                (
                    "new",
                    i,
                    s2.put(Collection::Whisks, &id, json!({"n": i}), None).await,
                )
            }));
            let s2 = s.clone();
            tasks.push(tokio::spawn(async move {
                let id = format!("g/d{i}");
                let r = s2.delete(Collection::Whisks, &id, "1-stale").await;
                ("stale-delete", i, r.map(|_| String::new()))
            }));
        }
        let mut winners = vec![Vec::new(); n];
        for t in tasks {
            let (kind, i, r) = t.await.unwrap();
            match kind {
                "update" => match r {
                    Ok(rev) => winners[i].push(rev),
                    Err(e) => assert_eq!(e, StoreError::Conflict),
                },
                "exists" => assert_eq!(r.unwrap_err(), StoreError::AlreadyExists),
                "missing" => assert_eq!(r.unwrap_err(), StoreError::NotFound),
                "new" => assert!(r.unwrap().starts_with("1-")),
                "stale-delete" => assert_eq!(r.unwrap_err(), StoreError::Conflict),
                _ => unreachable!(),
            }
        }
        let mut all_revs = HashSet::new();
        for (i, w) in winners.iter().enumerate() {
            assert_eq!(w.len(), 1, "exactly one update of d{i} wins: {w:?}");
            assert!(w[0].starts_with("2-"), "{w:?}");
            let doc = s.get(Collection::Whisks, &format!("g/d{i}")).await.unwrap();
            assert_eq!(doc.rev, w[0]);
            assert!(all_revs.insert(doc.rev));
            assert_eq!(
                s.get(Collection::Whisks, &format!("g/new{i}"))
                    .await
                    .unwrap()
                    .body,
                json!({"n": i})
            );
            assert_eq!(
                s.get(Collection::Whisks, &format!("g/missing{i}"))
                    .await
                    .unwrap_err(),
                StoreError::NotFound,
                "a failed request leaves nothing behind"
            );
        }
    }

    #[tokio::test]
    async fn undecodable_body_is_corrupt_naming_the_id() {
        let s = EmbeddedStore::temporary();
        let txn = s.db.begin_write().unwrap();
        {
            let mut t = txn.open_table(docs_table(Collection::Whisks)).unwrap();
            let rec = Record::encode(b"", "1-abc", b"{oops");
            t.insert("g/broken", rec.as_slice()).unwrap();
        }
        txn.commit().unwrap();
        match s.get(Collection::Whisks, "g/broken").await {
            Err(StoreError::Corrupt(m)) => assert!(m.contains("g/broken"), "{m}"),
            other => panic!("{other:?}"),
        }
    }
}
