//! Acknowledged writes of the embedded store survive `kill -9`.
//!
//! The test re-executes its own binary as a child (marked by [`CHILD_ENV`]) that writes
//! documents from several concurrent tasks and prints each acknowledged write to stdout. The
//! parent reads some acknowledgements, SIGKILLs the child mid-stream, reopens the store and
//! checks that every acknowledged document is there, intact, and listed.
#![cfg(all(unix, feature = "embedded"))]

use serde_json::{json, Value};
use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use whisk_core::store::{Collection, Query, Store};
use whisk_store::EmbeddedStore;

/// Set (to the store directory) in the child process.
const CHILD_ENV: &str = "WHISK_EMBEDDED_CRASH_CHILD";
const TEST_NAME: &str = "acknowledged_writes_survive_kill_9";
const NS: &str = "crash";
/// Acknowledgements the parent waits for before killing the child.
const ACKS_BEFORE_KILL: usize = 2000;

/// The activation body number `i` of writer `w`.
fn activation(w: u64, i: u64) -> (String, Value) {
    let aid = format!("{w:04x}{i:028x}");
    let body = json!({
        "namespace": NS, "name": format!("act{w}"), "activationId": aid,
        "start": 1_700_000_000_000u64 + i, "end": 1_700_000_000_100u64 + i,
        "entityType": "activation", "response": {"statusCode": 0, "result": {"w": w, "i": i}},
        "logs": vec![format!("line {i}"); 3], "padding": "p".repeat((i % 64) as usize),
    });
    (format!("{NS}/{aid}"), body)
}

fn counter_id(w: u64) -> String {
    format!("{NS}/counter{w}")
}

/// The child: writes until killed, printing `ACK <kind> <w> <i> <rev>` per acknowledged write.
fn child(dir: &str) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = Arc::new(EmbeddedStore::open(dir).unwrap());
        let started = Instant::now();
        let tasks = (0..8u64).map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                // Each writer also updates its own counter document, so updates are covered.
                let mut rev = store
                    .put(Collection::Whisks, &counter_id(w), json!({"n": 0}), None)
                    .await
                    .unwrap();
                let mut i = 0u64;
                // A safety stop in case the parent never kills us.
                while started.elapsed() < Duration::from_secs(60) {
                    let (id, body) = activation(w, i);
                    store
                        .put(Collection::Activations, &id, body, None)
                        .await
                        .unwrap();
                    ack(&format!("ACK act {w} {i} -"));
                    i += 1;
                    rev = store
                        .put(
                            Collection::Whisks,
                            &counter_id(w),
                            json!({"n": i}),
                            Some(&rev),
                        )
                        .await
                        .unwrap();
                    ack(&format!("ACK counter {w} {i} {rev}"));
                }
            })
        });
        futures_join(tasks.collect()).await;
    });
}

async fn futures_join(tasks: Vec<tokio::task::JoinHandle<()>>) {
    for t in tasks {
        t.await.unwrap();
    }
}

fn ack(line: &str) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").unwrap();
    out.flush().unwrap();
}

#[test]
fn acknowledged_writes_survive_kill_9() {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        child(&dir);
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut proc = Command::new(std::env::current_exe().unwrap())
        .args([TEST_NAME, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(proc.stdout.take().unwrap()).lines();
    let mut acks = Vec::new();
    while acks.len() < ACKS_BEFORE_KILL {
        let line = lines
            .next()
            .expect("child exited before acknowledging enough writes")
            .unwrap();
        if line.starts_with("ACK ") {
            acks.push(line);
        }
    }
    proc.kill().unwrap(); // SIGKILL
    let status = proc.wait().unwrap();
    assert!(!status.success(), "the child was killed, not finished");
    // Whatever the child printed before it died was acknowledged too.
    acks.extend(
        lines
            .map_while(Result::ok)
            .filter(|l| l.starts_with("ACK ")),
    );
    eprintln!("{} writes acknowledged before the kill landed", acks.len());

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = EmbeddedStore::open(dir.path()).expect("reopen after kill -9");
        let mut acked_ids = HashSet::new();
        let mut latest_counter = std::collections::HashMap::new();
        for line in &acks {
            let parts: Vec<&str> = line.split(' ').collect();
            let (kind, w, i): (&str, u64, u64) = (
                parts[1],
                parts[2].parse().unwrap(),
                parts[3].parse().unwrap(),
            );
            match kind {
                "act" => {
                    let (id, body) = activation(w, i);
                    let doc = store
                        .get(Collection::Activations, &id)
                        .await
                        .unwrap_or_else(|e| panic!("acknowledged {id} lost: {e}"));
                    assert_eq!(doc.body, body, "{id} intact");
                    acked_ids.insert(doc.body["activationId"].as_str().unwrap().to_string());
                }
                "counter" => {
                    let e = latest_counter.entry(w).or_insert((0, ""));
                    if i > e.0 {
                        *e = (i, parts[4]);
                    }
                }
                _ => unreachable!("{line}"),
            }
        }
        assert!(!acked_ids.is_empty());
        for (w, (i, rev)) in latest_counter {
            let doc = store.get(Collection::Whisks, &counter_id(w)).await.unwrap();
            let n = doc.body["n"].as_u64().unwrap();
            // The acknowledged update is there, or a later one whose answer never got out.
            assert!(n >= i, "counter{w}: acknowledged {i}, found {n}");
            if n == i {
                assert_eq!(doc.rev, rev);
            }
        }
        // The listing index survived with the documents.
        let q = Query {
            collection: Some(Collection::Activations),
            namespace: NS.into(),
            ..Default::default()
        };
        let listed: HashSet<String> = store
            .query(&q)
            .await
            .unwrap()
            .iter()
            .map(|d| d["activationId"].as_str().unwrap().to_string())
            .collect();
        assert!(
            acked_ids.is_subset(&listed),
            "every acknowledged activation is listed"
        );
        assert_eq!(store.count(&q).await.unwrap(), listed.len() as u64);
        assert_eq!(
            store.activation_namespaces().await.unwrap(),
            [NS.to_string()]
        );
    });
}
