//! The group-commit writer: one thread owns every write transaction. It takes all queued
//! requests, applies them in one transaction (each validated on its own, so a conflicting
//! request fails alone and leaves nothing behind), commits once, durably, and then answers
//! every request.
//!
//! When the last commit held more than one request, or requests arrived while it was being
//! made, other writers are active, and the writer gathers requests as they keep arriving (no
//! gap over [`GATHER_GAP`]) for up to [`COMMIT_WINDOW`] before committing again: one fsync then
//! covers the writes of many independent callers arriving a little apart (activation records
//! under steady load), not one or two each. A lone writer, whose next request comes only after
//! its answer, never waits.

use super::record::Record;
use super::{docs_table, index_table, COLLECTIONS};
use redb::{Database, ReadableTable, Table};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use whisk_core::store::{Collection, StoreError};

/// The most requests one transaction takes.
const MAX_BATCH: usize = 4096;

/// How long the writer gathers requests before a commit while other writers are active (see
/// the module's documentation). A commit costs about a third of a millisecond of CPU here, most
/// of it the fsync; at 2,000 writes/s arriving one by one, this window makes one commit of
/// about five writes out of five commits of one.
pub(crate) const COMMIT_WINDOW: Duration = Duration::from_millis(2);

/// While gathering, the writer commits once no request has arrived for this long.
pub(crate) const GATHER_GAP: Duration = Duration::from_micros(500);

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

/// What the writer counts.
#[derive(Debug, Default)]
pub(crate) struct Counts {
    /// Write transactions run (committed or failed).
    pub commits: AtomicU64,
    /// Of those, the ones whose requests were gathered (the writer waited for company).
    pub gathered: AtomicU64,
}

/// Runs the writer until every sender of `rx` is gone, counting in `counts`.
pub(crate) fn run(db: Arc<Database>, rx: Receiver<Request>, counts: Arc<Counts>) {
    let mut batch = Vec::new();
    // Whether other writers are active (see the module's documentation).
    let mut busy = false;
    loop {
        if batch.is_empty() {
            match rx.recv() {
                Ok(first) => batch.push(first),
                Err(_) => return,
            }
        }
        if busy {
            counts.gathered.fetch_add(1, Ordering::Relaxed);
            gather(&rx, &mut batch, Instant::now() + COMMIT_WINDOW);
        } else {
            drain(&rx, &mut batch);
        }
        let answers = match apply(&db, &batch) {
            Ok(answers) => answers,
            Err(e) => {
                tracing::error!(error = %e, requests = batch.len(), "embedded store write failed");
                let err = StoreError::Unavailable(format!("embedded store write failed: {e}"));
                vec![Err(err); batch.len()]
            }
        };
        counts.commits.fetch_add(1, Ordering::Relaxed);
        // Requests queued now arrived while the batch was committed, so they come from other
        // writers: every writer of the batch is still waiting for its answer. (Looked at before
        // answering: a lone writer's next request, sent as soon as it has its answer, must not
        // count.) They start the next batch.
        let mut next = Vec::new();
        drain(&rx, &mut next);
        busy = batch.len() > 1 || !next.is_empty();
        for (req, answer) in batch.drain(..).zip(answers) {
            let _ = req.reply.send(answer);
        }
        batch = next;
    }
}

/// Moves the requests already queued in `rx` into `batch`, up to [`MAX_BATCH`].
fn drain(rx: &Receiver<Request>, batch: &mut Vec<Request>) {
    while batch.len() < MAX_BATCH {
        match rx.try_recv() {
            Ok(r) => batch.push(r),
            Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
        }
    }
}

/// Moves requests from `rx` into `batch` as they arrive, until `deadline`, a gap of
/// [`GATHER_GAP`] without one, [`MAX_BATCH`] requests, or every sender is gone.
fn gather(rx: &Receiver<Request>, batch: &mut Vec<Request>, deadline: Instant) {
    while batch.len() < MAX_BATCH {
        let wait = deadline
            .saturating_duration_since(Instant::now())
            .min(GATHER_GAP);
        match rx.recv_timeout(wait) {
            Ok(r) => batch.push(r),
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    /// A request that is only a delete of `id` (never applied here).
    fn request(id: usize) -> Request {
        Request {
            op: Op::Delete {
                c: Collection::Whisks,
                id: format!("g/{id}"),
                rev: "1-x".into(),
            },
            reply: oneshot::channel().0,
        }
    }

    #[test]
    fn gathering_takes_what_arrives_and_ends_at_a_gap_not_the_deadline() {
        let (tx, rx) = mpsc::channel();
        for i in 0..5 {
            tx.send(request(i)).unwrap();
        }
        let mut batch = Vec::new();
        let started = Instant::now();
        // The sender stays alive: only the gap can end this before the (far) deadline.
        gather(&rx, &mut batch, started + Duration::from_secs(120));
        assert_eq!(batch.len(), 5);
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "gathering waited for the deadline instead of ending at the gap"
        );
        drop(tx);
    }

    #[test]
    fn gathering_stops_at_the_batch_limit_or_the_last_sender() {
        let (tx, rx) = mpsc::channel();
        for i in 0..MAX_BATCH + 3 {
            tx.send(request(i)).unwrap();
        }
        let mut batch = Vec::new();
        gather(&rx, &mut batch, Instant::now() + Duration::from_secs(120));
        assert_eq!(batch.len(), MAX_BATCH, "a batch holds at most MAX_BATCH");
        batch.clear();
        drop(tx);
        gather(&rx, &mut batch, Instant::now() + Duration::from_secs(120));
        assert_eq!(
            batch.len(),
            3,
            "what was queued before the last sender left"
        );
    }
}
