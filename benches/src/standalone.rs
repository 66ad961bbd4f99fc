//! The real `whisk-standalone` binary as a child process of a benchmark, and a REST client
//! of it as `guest` (the load and soak harnesses).

use crate::unthrottled;
use serde_json::Value;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use whisk_core::entity::identity::GUEST_KEY;

/// The `whisk-standalone` binary as a child process, stopped with SIGTERM when dropped.
pub struct Platform {
    /// The process.
    pub child: Child,
    /// Its API's URL.
    pub base: String,
}

impl Platform {
    /// Builds (incrementally) and starts `whisk-standalone` (no feeds, no prewarming, no
    /// throttles) with memory for `user_memory_mb` and the store `store_args` choose (e.g.
    /// `["--store", "memory"]`); its log goes to `log_name` beside the binary.
    pub fn start(user_memory_mb: u64, store_args: &[&str], log_name: &str) -> Self {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        // With this package selected too, the shared dependencies get the features the
        // benchmark's own build gave them (whisk-core's testkit) and are not compiled again.
        let status = Command::new(cargo)
            .args(["build", "--release", "-q"])
            .args(["-p", "whisk-examples", "-p", "whisk-benches"])
            .args(["--bin", "whisk-standalone"])
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building whisk-standalone");
        let exe = std::env::current_exe().expect("own path");
        let bin = exe
            .ancestors()
            .nth(2)
            .expect("target/release")
            .join("whisk-standalone");
        let limits = unthrottled();
        let log_path = bin.with_file_name(log_name);
        let log = std::fs::File::create(&log_path).expect("platform log file");
        println!("platform log: {}", log_path.display());
        let mut child = Command::new(bin)
            .args(["--port", "0", "--no-feeds", "--no-prewarm"])
            .args(store_args)
            .args(["--user-memory", &user_memory_mb.to_string()])
            .args([
                "--invokes-per-minute",
                &limits.invocations_per_minute.to_string(),
            ])
            .args([
                "--concurrent-invocations",
                &limits.concurrent_invocations.to_string(),
            ])
            .args(["--fires-per-minute", &limits.fires_per_minute.to_string()])
            .env(
                "RUST_LOG",
                std::env::var("WHISK_LOAD_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("whisk-standalone starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stdout));
        let base = loop {
            let line = lines
                .next()
                .expect("whisk-standalone printed its address")
                .expect("readable stdout");
            if let Some(at) = line.find("http://") {
                let url = line[at..].split_whitespace().next().unwrap_or_default();
                break url.trim_end_matches('/').to_string();
            }
        };
        // Keep draining its stdout so it never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Self { child, base }
    }

    /// Resident memory of the platform process (not its runtime processes), in KB.
    pub fn rss_kb(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("process status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .expect("VmRSS")
    }
}

impl Drop for Platform {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

/// A REST client of the platform as `guest`.
#[derive(Clone)]
pub struct Api {
    /// The HTTP client.
    pub http: reqwest::Client,
    /// The platform's URL.
    pub base: Arc<String>,
}

impl Api {
    /// A client of the platform at `base`.
    pub fn new(base: &str) -> Self {
        Self {
            http: client(),
            base: Arc::new(base.to_string()),
        }
    }

    /// A request with JSON `body`: its status and JSON body (`Null` when not JSON).
    pub async fn send(&self, method: reqwest::Method, path: &str, body: Value) -> (u16, Value) {
        self.try_send(method, path, Some(body))
            .await
            .expect("platform reachable")
    }

    /// A request, with JSON `body` if given: its status and JSON body (`Null` when not JSON),
    /// or `None` when the platform could not be reached.
    pub async fn try_send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Option<(u16, Value)> {
        let (user, pass) = GUEST_KEY.split_once(':').expect("key has a colon");
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .basic_auth(user, Some(pass));
        if let Some(body) = &body {
            req = req.json(body);
        }
        let r = req.send().await.ok()?;
        let status = r.status().as_u16();
        Some((status, r.json().await.unwrap_or(Value::Null)))
    }

    /// Creates (or overwrites) `collection/name` with `body`.
    pub async fn put(&self, collection: &str, name: &str, body: Value) {
        let path = format!("/api/v1/namespaces/_/{collection}/{name}?overwrite=true");
        let (status, out) = self.send(reqwest::Method::PUT, &path, body).await;
        assert_eq!(status, 200, "creating {collection}/{name}: {out}");
    }

    /// Creates action `name` with `exec` and 128 MB.
    pub async fn action(&self, name: &str, exec: Value) {
        self.put(
            "actions",
            name,
            serde_json::json!({"exec": exec, "limits": {"memory": 128}}),
        )
        .await;
    }

    /// A blocking invoke of `name` that must succeed.
    pub async fn invoke(&self, name: &str) {
        if let Err(e) = self.try_invoke(name).await {
            panic!("invoking {name}: {e}");
        }
    }

    /// A blocking invoke of `name`: the error when the platform could not be reached or did
    /// not answer 200.
    pub async fn try_invoke(&self, name: &str) -> Result<(), String> {
        let (user, pass) = GUEST_KEY.split_once(':').expect("key has a colon");
        let r = self
            .http
            .post(format!(
                "{}/api/v1/namespaces/_/actions/{name}?blocking=true&result=true",
                self.base
            ))
            .basic_auth(user, Some(pass))
            .json(&serde_json::json!({}))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = r.status();
        let body = r.bytes().await.map_err(|e| e.to_string())?;
        if status == 200 {
            Ok(())
        } else {
            Err(format!("{status}: {}", String::from_utf8_lossy(&body)))
        }
    }
}

/// The benchmarks' HTTP client: no proxy, `TCP_NODELAY`, a large keep-alive pool.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(256)
        .build()
        .expect("client builds")
}

/// The `exec` of a native (blackbox actionloop) action running `executable`, e.g. the
/// harnesses' no-op (`src/bin/noop_action.rs`).
pub fn native_exec(executable: &[u8]) -> Value {
    use base64::Engine;
    let code = base64::engine::general_purpose::STANDARD.encode(executable);
    serde_json::json!({"kind": "blackbox", "image": "openwhisk/dockerskeleton",
        "code": code, "binary": true})
}
