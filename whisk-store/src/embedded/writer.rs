//! The group-commit writer: one thread owns every write transaction. It takes all queued
//! requests, applies them in one transaction (each validated on its own, so a conflicting
//! request fails alone and leaves nothing behind), commits once, durably, and then answers
//! every request.

use super::record::Record;
use super::{docs_table, index_table, COLLECTIONS};
use redb::{Database, ReadableTable, Table};
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::Arc;
use tokio::sync::oneshot;
use whisk_core::store::{Collection, StoreError};

/// The most requests one transaction takes.
const MAX_BATCH: usize = 4096;

/// A write, prepared by the caller (body serialised, index entry computed).
pub(crate) enum Op {
    /// Create (`rev: None`) or update document `id`.
    Put {
        /// The collection.
        c: Collection,
        /// The document id.
        id: String,
        /// The revision the caller updates, `None` to create.
        rev: Option<String>,
        /// The body as serde_json bytes.
        body: Vec<u8>,
        /// The new listing-index key.
        index_key: Vec<u8>,
        /// The new listing-index value.
        index_value: Vec<u8>,
    },
    /// Delete document `id` at revision `rev`.
    Delete {
        /// The collection.
        c: Collection,
        /// The document id.
        id: String,
        /// The current revision, as the caller believes.
        rev: String,
    },
}

/// One queued write and where to send its answer (the new revision; empty for a delete).
pub(crate) struct Request {
    /// The write.
    pub op: Op,
    /// Answered once the batch holding the write has committed (or failed).
    pub reply: oneshot::Sender<Result<String, StoreError>>,
}

/// Runs the writer until every sender of `rx` is gone.
pub(crate) fn run(db: Arc<Database>, rx: Receiver<Request>) {
    let mut batch = Vec::new();
    while let Ok(first) = rx.recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(r) => batch.push(r),
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
            }
        }
        let answers = match apply(&db, &batch) {
            Ok(answers) => answers,
            Err(e) => {
                tracing::error!(error = %e, requests = batch.len(), "embedded store write failed");
                let err = StoreError::Unavailable(format!("embedded store write failed: {e}"));
                vec![Err(err); batch.len()]
            }
        };
        for (req, answer) in batch.drain(..).zip(answers) {
            let _ = req.reply.send(answer);
        }
    }
}

/// The docs and index tables of the three collections, open in one write transaction.
struct Tables<'t> {
    docs: Vec<Table<'t, &'static str, &'static [u8]>>,
    index: Vec<Table<'t, &'static [u8], &'static [u8]>>,
}

fn slot(c: Collection) -> usize {
    COLLECTIONS
        .iter()
        .position(|x| *x == c)
        .expect("every collection has tables")
}

/// Applies `batch` in one transaction and commits it. `Err` is a storage failure: the
/// transaction is dropped (aborted) and every request of the batch fails.
fn apply(db: &Database, batch: &[Request]) -> Result<Vec<Result<String, StoreError>>, redb::Error> {
    let txn = db.begin_write()?;
    let answers = {
        let mut t = Tables {
            docs: Vec::with_capacity(COLLECTIONS.len()),
            index: Vec::with_capacity(COLLECTIONS.len()),
        };
        for c in COLLECTIONS {
            t.docs.push(txn.open_table(docs_table(c))?);
            t.index.push(txn.open_table(index_table(c))?);
        }
        let mut answers = Vec::with_capacity(batch.len());
        for req in batch {
            answers.push(apply_one(&mut t, &req.op)?);
        }
        answers
    };
    txn.commit()?;
    Ok(answers)
}

/// Validates and applies one write. The outer `Err` is a storage failure; the inner one is the
/// request's own answer, returned before anything is written.
fn apply_one(t: &mut Tables<'_>, op: &Op) -> Result<Result<String, StoreError>, redb::Error> {
    match op {
        Op::Put {
            c,
            id,
            rev,
            body,
            index_key,
            index_value,
        } => {
            let s = slot(*c);
            // (old index key, revision number of the new revision)
            let (old_key, next) = {
                let current = t.docs[s].get(id.as_str())?;
                let current = match &current {
                    Some(g) => match Record::decode(*c, id, g.value()) {
                        Ok(r) => Some(r),
                        Err(e) => return Ok(Err(e)),
                    },
                    None => None,
                };
                match (current, rev) {
                    (Some(_), None) => return Ok(Err(StoreError::AlreadyExists)),
                    (None, Some(_)) => return Ok(Err(StoreError::NotFound)),
                    (Some(cur), Some(r)) if cur.rev != r.as_str() => {
                        return Ok(Err(StoreError::Conflict))
                    }
                    (Some(cur), Some(_)) => match cur.rev_n(*c, id) {
                        Ok(n) => (Some(cur.index_key.to_vec()), n + 1),
                        Err(e) => return Ok(Err(e)),
                    },
                    (None, None) => (None, 1),
                }
            };
            let new_rev = format!("{next}-{}", uuid::Uuid::new_v4().simple());
            if let Some(old) = old_key {
                t.index[s].remove(old.as_slice())?;
            }
            let record = Record::encode(index_key, &new_rev, body);
            t.docs[s].insert(id.as_str(), record.as_slice())?;
            t.index[s].insert(index_key.as_slice(), index_value.as_slice())?;
            Ok(Ok(new_rev))
        }
        Op::Delete { c, id, rev } => {
            let s = slot(*c);
            let old_key = {
                let current = t.docs[s].get(id.as_str())?;
                let Some(g) = current else {
                    return Ok(Err(StoreError::NotFound));
                };
                match Record::decode(*c, id, g.value()) {
                    Err(e) => return Ok(Err(e)),
                    Ok(cur) if cur.rev != rev.as_str() => return Ok(Err(StoreError::Conflict)),
                    Ok(cur) => cur.index_key.to_vec(),
                }
            };
            t.index[s].remove(old_key.as_slice())?;
            t.docs[s].remove(id.as_str())?;
            Ok(Ok(String::new()))
        }
    }
}
