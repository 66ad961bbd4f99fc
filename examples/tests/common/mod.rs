//! A standalone platform on a free port and a small client for the tests.
#![allow(dead_code)]

pub mod cluster;
pub mod tls;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use whisk_core::entity::identity::GUEST_KEY;
pub use whisk_examples::standalone::{Standalone, StandaloneConfig};

/// A running platform plus an authenticated client.
pub struct Platform {
    pub platform: Standalone,
    pub base: String,
    pub http: reqwest::Client,
}

/// A response: status, headers and JSON body (`Value::Null` when not JSON).
pub struct Resp {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Platform {
    pub async fn start() -> Self {
        Self::start_with(1024, std::time::Duration::from_secs(600)).await
    }

    /// A platform with `user_memory_mb` for containers and the given idle timeout.
    pub async fn start_with(user_memory_mb: u64, idle_timeout: std::time::Duration) -> Self {
        Self::start_config(StandaloneConfig {
            user_memory_mb,
            idle_timeout,
            // Most tests want exact cold/warm behaviour; `pool.rs` tests prewarming itself.
            prewarm: false,
            ..Default::default()
        })
        .await
    }

    /// A platform with `config`, listening on a free loopback port.
    pub async fn start_config(config: StandaloneConfig) -> Self {
        let platform = Standalone::start(StandaloneConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            ..config
        })
        .await
        .expect("platform starts");
        let base = platform.url();
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        Self {
            platform,
            base,
            http,
        }
    }

    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&str>,
        auth: Option<&str>,
    ) -> Resp {
        let mut req = self.http.request(method, format!("{}{}", self.base, path));
        if let Some(a) = auth {
            let (u, p) = a.split_once(':').unwrap_or((a, ""));
            req = req.basic_auth(u, Some(p));
        }
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let r = req.send().await.expect("request sent");
        let status = r.status();
        let headers = r.headers().clone();
        let text = r.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Resp {
            status,
            headers,
            body,
            text,
        }
    }

    /// Adds subject and namespace `name` with a fresh key; returns `uuid:key`.
    pub async fn add_user(&self, name: &str) -> String {
        use whisk_core::entity::identity::{AuthKey, SubjectDoc};
        use whisk_core::store::StoreExt;
        let key = AuthKey::generate();
        self.platform
            .store()
            .put_subject(&SubjectDoc::single(name, &key))
            .await
            .unwrap();
        key.compact()
    }

    /// A request as `auth` with a JSON body.
    pub async fn call_as(
        &self,
        auth: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Resp {
        let b = body.map(|b| b.to_string());
        self.send(method, path, b.as_deref(), Some(auth)).await
    }

    /// An authenticated request as `guest` with a JSON body.
    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Resp {
        let b = body.map(|b| b.to_string());
        self.send(method, path, b.as_deref(), Some(GUEST_KEY)).await
    }

    /// An authenticated request as `guest` with a raw (possibly malformed) body.
    pub async fn raw(&self, method: Method, path: &str, body: &str) -> Resp {
        self.send(method, path, Some(body), Some(GUEST_KEY)).await
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.call(Method::GET, path, None).await
    }

    /// Creates (or overwrites) action `name` with `exec` and extra fields.
    pub async fn action(&self, name: &str, kind: &str, code: &str, extra: Value) -> Resp {
        let mut body = json!({"exec": {"kind": kind, "code": code}});
        if let Value::Object(m) = extra {
            body.as_object_mut().unwrap().extend(m);
        }
        let r = self
            .call(
                Method::PUT,
                &format!("/api/v1/namespaces/_/actions/{name}?overwrite=true"),
                Some(body),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "creating {name}: {}", r.text);
        r
    }

    /// The stored record of the activation a blocking invoke answered with (`activation`),
    /// with its logs: as in OpenWhisk, the blocking response goes out before the logs are
    /// collected (its `logs` are empty), and the record is stored just after (polled for up
    /// to 10 s).
    pub async fn record(&self, activation: &Value) -> Value {
        let id = activation["activationId"].as_str().expect("an activation");
        let path = format!("/api/v1/namespaces/_/activations/{id}");
        for _ in 0..200 {
            let r = self.get(&path).await;
            if r.status == StatusCode::OK {
                return r.body;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("activation {id} was not recorded");
    }

    /// The log lines of the stored record of `activation` (see [`Platform::record`]).
    pub async fn record_logs(&self, activation: &Value) -> Vec<String> {
        strings(&self.record(activation).await["logs"])
    }

    /// Blocking invoke of `name` with `args` and extra query.
    pub async fn invoke(&self, name: &str, args: Value, query: &str) -> Resp {
        self.call(
            Method::POST,
            &format!("/api/v1/namespaces/_/actions/{name}?blocking=true{query}"),
            Some(args),
        )
        .await
    }
}

/// The feed mechanism as the `wsk` CLI drives it.
impl Platform {
    /// Invokes feed action `feed` (`/whisk.system/pkg/name`) blocking as `auth` with
    /// `lifecycleEvent: event`, `triggerName: /_/trigger`, `authKey` and `params`.
    pub async fn feed_event_as(
        &self,
        auth: &str,
        trigger: &str,
        feed: &str,
        event: &str,
        params: Value,
    ) -> Resp {
        let mut args = json!({
            "lifecycleEvent": event,
            "triggerName": format!("/_/{trigger}"),
            "authKey": auth,
        });
        if let Value::Object(m) = params {
            args.as_object_mut().unwrap().extend(m);
        }
        let (ns, rest) = feed.trim_start_matches('/').split_once('/').unwrap();
        self.call_as(
            auth,
            Method::POST,
            &format!("/api/v1/namespaces/{ns}/actions/{rest}?blocking=true&result=true"),
            Some(args),
        )
        .await
    }

    /// [`feed_event_as`](Self::feed_event_as) as `guest`.
    pub async fn feed_event(&self, trigger: &str, feed: &str, event: &str, params: Value) -> Resp {
        self.feed_event_as(GUEST_KEY, trigger, feed, event, params)
            .await
    }

    /// `wsk trigger create <trigger> --feed <feed> -p ...`: creates the trigger with the
    /// `feed` annotation, then invokes the feed with `CREATE`; when the feed fails the
    /// trigger is deleted again (as the CLI does). Returns the feed's answer.
    pub async fn feed_trigger_as(
        &self,
        auth: &str,
        trigger: &str,
        feed: &str,
        params: Value,
    ) -> Resp {
        let put = self
            .call_as(
                auth,
                Method::PUT,
                &format!("/api/v1/namespaces/_/triggers/{trigger}"),
                Some(json!({"annotations": [{"key": "feed", "value": feed}]})),
            )
            .await;
        assert_eq!(
            put.status,
            StatusCode::OK,
            "creating trigger {trigger}: {}",
            put.text
        );
        let r = self
            .feed_event_as(auth, trigger, feed, "CREATE", params)
            .await;
        if r.status != StatusCode::OK {
            self.call_as(
                auth,
                Method::DELETE,
                &format!("/api/v1/namespaces/_/triggers/{trigger}"),
                None,
            )
            .await;
        }
        r
    }

    /// [`feed_trigger_as`](Self::feed_trigger_as) as `guest`.
    pub async fn feed_trigger(&self, trigger: &str, feed: &str, params: Value) -> Resp {
        self.feed_trigger_as(GUEST_KEY, trigger, feed, params).await
    }

    /// Creates rule `rule` from `trigger` to action `action` (guest).
    pub async fn rule(&self, rule: &str, trigger: &str, action: &str) {
        let r = self
            .call(
                Method::PUT,
                &format!("/api/v1/namespaces/_/rules/{rule}?overwrite=true"),
                Some(json!({"trigger": format!("/_/{trigger}"), "action": format!("/_/{action}")})),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "creating rule {rule}: {}", r.text);
    }

    /// The activation records (with results) of `name` in the guest namespace, newest first.
    pub async fn activations_of(&self, name: &str) -> Vec<Value> {
        let r = self
            .get(&format!(
                "/api/v1/namespaces/_/activations?name={name}&docs=true&limit=200"
            ))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        r.body.as_array().cloned().unwrap_or_default()
    }

    /// Polls until `name` has at least `n` activation records (at most `within`); returns them.
    pub async fn wait_activations(
        &self,
        name: &str,
        n: usize,
        within: std::time::Duration,
    ) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let list = self.activations_of(name).await;
            if list.len() >= n || tokio::time::Instant::now() > deadline {
                return list;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
}

/// The strings of JSON array `v` (empty when it is not one).
pub fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|l| l.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Asserts an OpenWhisk error body with `message` and a transaction-id `code`.
pub fn assert_error(r: &Resp, status: StatusCode, message: &str) {
    assert_eq!(r.status, status, "body: {}", r.text);
    assert_eq!(r.body["error"].as_str(), Some(message), "body: {}", r.text);
    let code = r.body["code"].as_str().expect("code is a string");
    assert_eq!(r.headers["x-request-id"].to_str().unwrap(), code);
}

/// Asserts an error whose message starts with `prefix`.
pub fn assert_error_prefix(r: &Resp, status: StatusCode, prefix: &str) {
    assert_eq!(r.status, status, "body: {}", r.text);
    let msg = r.body["error"].as_str().unwrap_or_default();
    assert!(
        msg.starts_with(prefix),
        "error {msg:?} should start with {prefix:?}"
    );
    assert!(r.body["code"].is_string());
}

/// The shared CouchDB-API server of the test run (`WHISK_TEST_COUCHDB_URL`).
pub fn couchdb_url() -> Option<String> {
    whisk_core::testkit::service_from_env("WHISK_TEST_COUCHDB_URL", "CouchDB-API server")
}

/// A CouchDB config for a fresh set of databases on the shared server.
pub fn couch_config(url: &str) -> whisk_store::CouchConfig {
    whisk_store::CouchConfig {
        url: url.to_string(),
        db_prefix: format!("{}_", whisk_core::testkit::unique("whisk_test_")),
        ..Default::default()
    }
}

/// Starts binary `path` with `args`; returns the process and the first line it prints. Its
/// later output is drained.
pub fn spawn_binary<I, S>(path: &str, args: I) -> (std::process::Child, String)
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let mut command = std::process::Command::new(path);
    command.args(args);
    spawn_command(&mut command)
}

/// Starts `command`; returns the process and the first line it prints. Its later output is
/// drained.
pub fn spawn_command(command: &mut std::process::Command) -> (std::process::Child, String) {
    use std::io::{BufRead, BufReader};
    let mut child = command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .unwrap();
    let mut first = String::new();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    out.read_line(&mut first).unwrap();
    // Keep reading so the process's later output has somewhere to go.
    std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
    (child, first)
}

/// The first `http://` or `https://` URL in `line`.
pub fn url_in(line: &str) -> String {
    line.split_whitespace()
        .find(|w| w.starts_with("http://") || w.starts_with("https://"))
        .unwrap_or_else(|| panic!("no URL in {line:?}"))
        .to_string()
}

/// Starts the `whisk-standalone` binary with `args` (add `--port 0`); returns the process and
/// the URL it prints on its first line.
pub fn spawn_standalone<I, S>(args: I) -> (std::process::Child, String)
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let (child, first) = spawn_binary(env!("CARGO_BIN_EXE_whisk-standalone"), args);
    (child, url_in(&first))
}

/// The standalone binary on a free port with the memory store, no feeds and no stem cells
/// (the quickest to start), plus `extra` flags; returns it (killed when dropped) and its URL.
pub fn spawn_quiet_standalone<S: AsRef<std::ffi::OsStr>>(extra: &[S]) -> (KillOnDrop, String) {
    let base = [
        "--port",
        "0",
        "--store",
        "memory",
        "--no-feeds",
        "--no-prewarm",
    ];
    let args = base
        .iter()
        .map(std::ffi::OsStr::new)
        .chain(extra.iter().map(AsRef::as_ref));
    let (child, url) = spawn_standalone(args);
    (KillOnDrop(child), url)
}

/// A child process killed when dropped, so a failed assertion leaves no platform running
/// (one holding the test's output pipe open keeps the test run from ending).
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
