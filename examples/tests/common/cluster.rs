//! A whisk cluster of separate processes for the tests: the `whisk-controller` and
//! `whisk-invoker` binaries over a Kafka-protocol broker and a CouchDB-API server, a REST
//! client for it, and a pouchdb-server of a test's own that can be killed and restarted.

use super::{spawn_binary, url_in};
use reqwest::StatusCode;
use serde_json::Value;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use whisk_core::entity::identity::GUEST_KEY;

/// One cluster's names on a broker and a CouchDB-API server.
pub struct Cluster {
    /// The brokers (`host:port`).
    pub kafka: String,
    /// The CouchDB-API server's URL.
    pub couch: String,
    /// This cluster's topic prefix.
    pub topic_prefix: String,
    /// This cluster's database prefix.
    pub db_prefix: String,
    /// The controllers' `--forced-completion-after` (seconds past an action's time limit).
    pub forced_completion_after: u64,
}

impl Cluster {
    /// A cluster on `kafka` and `couch` with topic and database names of its own.
    pub fn new(kafka: String, couch: String, name: &str) -> Self {
        let name = whisk_core::testkit::unique(name);
        Self {
            kafka,
            couch,
            topic_prefix: format!("{name}-"),
            db_prefix: format!("{name}_"),
            forced_completion_after: 15,
        }
    }

    fn common_args(&self) -> Vec<String> {
        [
            "--kafka-brokers",
            &self.kafka,
            "--kafka-prefix",
            &self.topic_prefix,
            "--couchdb-url",
            &self.couch,
            "--couchdb-prefix",
            &self.db_prefix,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }

    /// Starts controller 0 on a free port; returns it and its URL.
    pub fn controller(&self) -> (Proc, String) {
        self.controller_on(0)
    }

    /// Starts controller 0 on `port` (0: a free one); returns it and its URL.
    pub fn controller_on(&self, port: u16) -> (Proc, String) {
        let mut args = self.common_args();
        args.extend(
            [
                "--port",
                &port.to_string(),
                "--forced-completion-after",
                &self.forced_completion_after.to_string(),
                "--ping-timeout",
                "3",
                "--invokes-per-minute",
                "100000",
                "--concurrent-invocations",
                "1000",
            ]
            .map(String::from),
        );
        let (child, first) = spawn_binary(env!("CARGO_BIN_EXE_whisk-controller"), args);
        (Proc(child), url_in(&first))
    }

    /// Starts invoker `id`, its actions calling back `api`.
    pub fn invoker(&self, id: u32, api: &str) -> Proc {
        let mut args = self.common_args();
        args.extend(
            [
                "--id",
                &id.to_string(),
                "--no-prewarm",
                "--user-memory",
                "2048",
                "--api-host",
                api,
            ]
            .map(String::from),
        );
        Proc(spawn_binary(env!("CARGO_BIN_EXE_whisk-invoker"), args).0)
    }
}

/// A REST client of a controller as `guest`.
pub struct Api {
    /// The HTTP client.
    pub http: reqwest::Client,
    /// The controller's URL.
    pub url: String,
}

impl Api {
    /// A request with a JSON body; panics when the controller cannot be reached.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        self.try_call(method, path, body).await.unwrap()
    }

    /// A request with a JSON body: its status and JSON body (`Null` when not JSON), or the
    /// transport error.
    pub async fn try_call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<(StatusCode, Value), reqwest::Error> {
        let (user, pass) = GUEST_KEY.split_once(':').unwrap();
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.url))
            .basic_auth(user, Some(pass));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await?;
        let status = r.status();
        Ok((status, r.json().await.unwrap_or(Value::Null)))
    }

    /// `/invokers`: each invoker's health.
    pub async fn invokers(&self) -> Value {
        let r = self
            .http
            .get(format!("{}/invokers", self.url))
            .send()
            .await
            .unwrap();
        r.json().await.unwrap()
    }

    /// Waits (hang guard only) until `/invokers` equals `want`.
    pub async fn await_invokers(&self, want: Value) {
        for _ in 0..1200 {
            if self.invokers().await == want {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("invokers never became {want}: {}", self.invokers().await);
    }

    /// The record of activation `id`, if it has one (`None` also while the store is away).
    pub async fn try_record(&self, id: &str) -> Option<Value> {
        let path = format!("/api/v1/namespaces/_/activations/{id}");
        match self.try_call(reqwest::Method::GET, &path, None).await {
            Ok((StatusCode::OK, body)) => Some(body),
            _ => None,
        }
    }

    /// Waits until activation `id` has a record; returns it.
    pub async fn record(&self, id: &str) -> Value {
        for _ in 0..1200 {
            if let Some(record) = self.try_record(id).await {
                return record;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("activation {id} never got a record");
    }
}

/// A process of the cluster, killed (SIGKILL) when dropped, so a failing test leaves none.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A pouchdb-server of a test's own (`WHISK_TEST_POUCHDB`), on disk, so it can be stopped
/// (SIGKILL) and started again on its data.
pub struct OwnCouch {
    bin: String,
    dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
}

impl OwnCouch {
    /// Starts `bin` (pouchdb-server's script) with a fresh data directory on a free port.
    pub fn start(bin: String) -> Self {
        let mut me = Self {
            bin,
            dir: tempfile::tempdir().unwrap(),
            port: whisk_core::testkit::broker::free_port(),
            child: None,
        };
        me.resume();
        me
    }

    /// Its URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Starts it again on its data and port; returns once it listens.
    pub fn resume(&mut self) {
        let child = Command::new("node")
            .arg(&self.bin)
            .args([
                "--host",
                "127.0.0.1",
                "--no-color",
                "--dir",
                "data",
                "--port",
            ])
            .arg(self.port.to_string())
            .current_dir(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        for _ in 0..300 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("pouchdb-server did not start");
    }

    /// Kills it (SIGKILL); its data stays for [`resume`](Self::resume).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }
}

impl Drop for OwnCouch {
    fn drop(&mut self) {
        self.stop();
    }
}
