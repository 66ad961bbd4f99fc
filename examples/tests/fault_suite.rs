//! The fault suite: `kill -9` of each process of a whisk cluster under steady load.
//!
//! For each fault a fresh cluster of real processes: a Kafka-protocol broker (noida-db with
//! its data on disk), a CouchDB-API server (pouchdb-server on disk), one `whisk-controller`
//! and one or two `whisk-invoker`s. Four clients invoke action `mark` (blocking and
//! non-blocking, alternately) all along; the action appends its activation id to a FIFO the
//! test reads, so every run is counted. Then one process is killed with SIGKILL: an invoker
//! (restarted a few seconds later, as a supervisor would), the controller, the broker or the
//! CouchDB-API server (each restarted at once on its port and data). The processes that
//! survived are never restarted.
//!
//! An activation is accepted when the API answered with its id. After recovery every accepted
//! activation must have exactly one record (its result, or a `whisk internal error` for what
//! was lost with a dead process, as OpenWhisk records it), none may have run twice, and the
//! platform must serve again. The suite prints a table: fault, accepted, recorded, whisk
//! errors, duplicated, lost, and the time from the kill until a blocking invoke succeeded
//! again and until every record was written. Run it with `-- --nocapture` to see the table.

mod common;

use common::cluster::{Api, Cluster, OwnCouch, Proc};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use whisk_core::testkit::broker::{free_port, OwnBroker};

/// The action under load: marks its run, then works for a while (so runs are in flight when
/// a process dies). It needs no network: the mark goes to a FIFO on the read-only file
/// system the sandbox leaves it (opening a FIFO for writing needs no writable mount).
const MARK: &str = r#"
const fs = require('fs');
function main(p) {
  fs.appendFileSync(p.marks, process.env.__OW_ACTIVATION_ID + '\n');
  return new Promise(r => setTimeout(() => r({ok: true}), 150));
}"#;

/// Concurrent load clients.
const CLIENTS: usize = 4;

/// The runs of `mark`: how many times each activation id was marked.
struct Marks {
    path: PathBuf,
    counts: Arc<Mutex<HashMap<String, u32>>>,
}

impl Marks {
    /// A FIFO in `dir` and a thread counting the ids written to it. The test holds it open
    /// for reading and writing, so writers never wait for a reader and it never ends.
    fn new(dir: &Path) -> Self {
        let path = dir.join("marks");
        let made = std::process::Command::new("mkfifo")
            .arg(&path)
            .status()
            .unwrap();
        assert!(made.success(), "mkfifo {}", path.display());
        let fifo = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        let counts = Arc::new(Mutex::new(HashMap::new()));
        let sink = counts.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(fifo).lines() {
                let Ok(id) = line else { return };
                *sink.lock().unwrap().entry(id).or_insert(0) += 1;
            }
        });
        Self { path, counts }
    }

    /// How many times activation `id` ran.
    fn runs(&self, id: &str) -> u32 {
        self.counts.lock().unwrap().get(id).copied().unwrap_or(0)
    }

    /// All runs so far.
    fn total(&self) -> u32 {
        self.counts.lock().unwrap().values().sum()
    }
}

/// What the load clients saw.
#[derive(Default)]
struct Load {
    /// Activation ids the API answered with.
    accepted: Mutex<Vec<String>>,
    /// Start and end of each blocking invoke that returned a successful result.
    served: Mutex<Vec<(Instant, Instant)>>,
    stop: AtomicBool,
}

impl Load {
    /// When the first blocking invoke started after `since` succeeded, if one has.
    fn served_after(&self, since: Instant) -> Option<Instant> {
        let served = self.served.lock().unwrap();
        served
            .iter()
            .filter(|(start, _)| *start >= since)
            .map(|(_, end)| *end)
            .min()
    }
}

/// Client `n`: invokes `mark` back to back, blocking and non-blocking in turn, until told
/// to stop. Failures (refused connections, 503s while a process is away) pause it briefly.
async fn client(api: Arc<Api>, load: Arc<Load>, n: usize) {
    let mut i = n;
    while !load.stop.load(Ordering::SeqCst) {
        i += 1;
        let blocking = i.is_multiple_of(2);
        let path = if blocking {
            "/api/v1/namespaces/_/actions/mark?blocking=true"
        } else {
            "/api/v1/namespaces/_/actions/mark"
        };
        let start = Instant::now();
        let answer = api.try_call(Method::POST, path, Some(json!({}))).await;
        let mut ok = false;
        if let Ok((status, body)) = answer {
            if let Some(id) = body["activationId"].as_str() {
                load.accepted.lock().unwrap().push(id.to_string());
                ok = true;
            }
            if blocking && status == StatusCode::OK && body["response"]["status"] == "success" {
                load.served.lock().unwrap().push((start, Instant::now()));
            }
        }
        let pause = if ok { 20 } else { 100 };
        tokio::time::sleep(Duration::from_millis(pause)).await;
    }
}

/// The processes killed, one per run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    Invoker,
    Controller,
    Broker,
    CouchDb,
}

impl Fault {
    fn name(self) -> &'static str {
        match self {
            Fault::Invoker => "invoker (1 of 2)",
            Fault::Controller => "controller",
            Fault::Broker => "broker (noida-db)",
            Fault::CouchDb => "CouchDB-API server",
        }
    }
}

/// One line of the table.
struct Row {
    fault: Fault,
    accepted: usize,
    recorded: usize,
    whisk_errors: usize,
    other: Vec<String>,
    duplicated: usize,
    unmarked_successes: usize,
    lost: usize,
    serves_again: Duration,
    settled: Duration,
}

/// The services one run needs.
struct Services {
    noida: String,
    pouchdb: String,
}

/// A fresh cluster, load, `fault`, recovery and the count.
async fn run(services: &Services, marks: &Marks, fault: Fault) -> Row {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = OwnBroker::start_durable(&services.noida, dir.path().join("broker"));
    let mut couch = OwnCouch::start(services.pouchdb.clone());
    let mut cluster = Cluster::new(broker.address(), couch.url(), "faults");
    cluster.forced_completion_after = 6;
    let port = free_port();
    let (mut controller, url) = cluster.controller_on(port);
    let api = Arc::new(Api {
        http: reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(90))
            .build()
            .unwrap(),
        url,
    });
    let invokers = if fault == Fault::Invoker { 2 } else { 1 };
    let mut running: Vec<Proc> = (0..invokers)
        .map(|i| cluster.invoker(i, &api.url))
        .collect();
    let up: serde_json::Map<String, Value> = (0..invokers)
        .map(|i| (format!("invoker{i}"), json!("up")))
        .collect();
    api.await_invokers(Value::Object(up)).await;
    let (status, body) = api
        .call(
            Method::PUT,
            "/api/v1/namespaces/_/actions/mark",
            Some(json!({
                "exec": {"kind": "nodejs:20", "code": MARK},
                "parameters": [{"key": "marks", "value": marks.path}],
                "limits": {"timeout": 3000, "memory": 128},
            })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = api
        .call(
            Method::POST,
            "/api/v1/namespaces/_/actions/mark?blocking=true",
            Some(json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let load = Arc::new(Load::default());
    let clients: Vec<_> = (0..CLIENTS)
        .map(|n| tokio::spawn(client(api.clone(), load.clone(), n)))
        .collect();
    tokio::time::sleep(Duration::from_secs(3)).await;

    let killed = Instant::now();
    match fault {
        Fault::Invoker => drop(running.pop()),
        Fault::Controller => {
            drop(controller);
            controller = cluster.controller_on(port).0;
        }
        Fault::Broker => broker.restart(), // SIGKILL, then a start on the same data
        Fault::CouchDb => {
            couch.stop();
            couch.resume();
        }
    }
    // The platform serves again by itself (a hang guard only, no timing assertion).
    let served = loop {
        if let Some(at) = load.served_after(killed) {
            break at;
        }
        assert!(
            killed.elapsed() < Duration::from_secs(120),
            "{}: no blocking invoke succeeded within 120 s of the kill",
            fault.name()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    if fault == Fault::Invoker {
        // Its supervisor restarts the killed invoker: it takes back what it had not taken.
        tokio::time::sleep(Duration::from_secs(4).saturating_sub(killed.elapsed())).await;
        running.push(cluster.invoker(1, &api.url));
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    load.stop.store(true, Ordering::SeqCst);
    for c in clients {
        c.await.unwrap();
    }

    // Every accepted activation gets its record (hang guard: 120 s after the load).
    let accepted = load.accepted.lock().unwrap().clone();
    let mut records: HashMap<String, Value> = HashMap::new();
    let guard = Instant::now() + Duration::from_secs(120);
    let settled = loop {
        for id in &accepted {
            if !records.contains_key(id) {
                if let Some(r) = api.try_record(id).await {
                    records.insert(id.clone(), r);
                }
            }
        }
        if records.len() == accepted.len() || Instant::now() > guard {
            break killed.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    // Quiet: no run still arriving (the marks stop changing).
    let mut seen = marks.total();
    loop {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let now = marks.total();
        if now == seen {
            break;
        }
        seen = now;
    }

    let mut row = Row {
        fault,
        accepted: accepted.len(),
        recorded: records.len(),
        whisk_errors: 0,
        other: Vec::new(),
        duplicated: 0,
        unmarked_successes: 0,
        lost: accepted.len() - records.len(),
        serves_again: served - killed,
        settled,
    };
    for id in &accepted {
        let runs = marks.runs(id);
        if runs > 1 {
            row.duplicated += 1;
        }
        let Some(record) = records.get(id) else {
            continue;
        };
        match record["response"]["status"].as_str() {
            Some("success") if runs == 0 => row.unmarked_successes += 1,
            Some("success") => {}
            Some("whisk internal error") => row.whisk_errors += 1,
            _ => row.other.push(format!("{id}: {}", record["response"])),
        }
    }
    // The survivors are still the same processes.
    assert!(
        controller.0.try_wait().unwrap().is_none(),
        "controller exited"
    );
    for p in &mut running {
        assert!(p.0.try_wait().unwrap().is_none(), "an invoker exited");
    }
    row
}

/// The table, one line per fault.
fn table(rows: &[Row]) -> String {
    let mut out = format!(
        "{:<20} {:>8} {:>8} {:>12} {:>10} {:>5} {:>13} {:>13}\n",
        "fault",
        "accepted",
        "recorded",
        "whisk errors",
        "duplicated",
        "lost",
        "serves again",
        "all recorded"
    );
    for r in rows {
        out += &format!(
            "{:<20} {:>8} {:>8} {:>12} {:>10} {:>5} {:>11.1} s {:>11.1} s\n",
            r.fault.name(),
            r.accepted,
            r.recorded,
            r.whisk_errors,
            r.duplicated,
            r.lost,
            r.serves_again.as_secs_f64(),
            r.settled.as_secs_f64()
        );
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_accepted_activation_is_recorded_once_through_kill_9_of_each_process() {
    let Some(noida) = whisk_core::testkit::service_from_env("WHISK_TEST_NOIDA", "noida-db binary")
    else {
        return;
    };
    let Some(pouchdb) =
        whisk_core::testkit::service_from_env("WHISK_TEST_POUCHDB", "pouchdb-server")
    else {
        return;
    };
    let services = Services { noida, pouchdb };
    let dir = tempfile::tempdir().unwrap();
    let marks = Marks::new(dir.path());
    let mut rows = Vec::new();
    for fault in [
        Fault::Invoker,
        Fault::Controller,
        Fault::Broker,
        Fault::CouchDb,
    ] {
        rows.push(run(&services, &marks, fault).await);
    }
    println!("{}", table(&rows));
    for r in &rows {
        let name = r.fault.name();
        assert!(r.accepted > 0, "{name}: nothing was accepted");
        assert_eq!(r.lost, 0, "{name}: accepted activations without a record");
        assert_eq!(r.duplicated, 0, "{name}: activations that ran twice");
        assert_eq!(
            r.unmarked_successes, 0,
            "{name}: successes recorded for activations that never ran"
        );
        assert!(
            r.other.is_empty(),
            "{name}: unexpected records {:?}",
            r.other
        );
    }
}
