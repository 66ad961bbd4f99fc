//! The runtime-protocol client: `POST /init` and `POST /run` against a container, with
//! OpenWhisk's deadlines, `__OW_*` values and result classification. Every executor's
//! containers are driven by this one client.

use crate::entity::{ActivationResponse, StatusCode};
use crate::executor::Container;
use serde_json::{json, Map, Value};
use std::time::{Duration, Instant};

/// The per-activation values a runtime receives (`__OW_*` in `/init` env, fields of `/run`).
/// Its `Debug` output leaves the key out.
#[derive(Clone, PartialEq, Eq)]
pub struct ActivationContext {
    /// `uuid:key`, only when the action may see its key (`provide-api-key`).
    pub api_key: Option<String>,
    /// The invoking namespace.
    pub namespace: String,
    /// `/ns/[pkg/]name`.
    pub action_name: String,
    /// The action's version.
    pub action_version: String,
    /// The activation id.
    pub activation_id: String,
    /// The transaction id.
    pub transaction_id: String,
    /// Epoch ms by which the call must end.
    pub deadline_ms: u64,
}

impl std::fmt::Debug for ActivationContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActivationContext")
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("namespace", &self.namespace)
            .field("action_name", &self.action_name)
            .field("action_version", &self.action_version)
            .field("activation_id", &self.activation_id)
            .field("transaction_id", &self.transaction_id)
            .field("deadline_ms", &self.deadline_ms)
            .finish()
    }
}

impl ActivationContext {
    /// The key/value pairs, without the `__OW_` prefix, in protocol names.
    fn fields(&self) -> Vec<(&'static str, String)> {
        let mut f = Vec::with_capacity(7);
        if let Some(k) = &self.api_key {
            f.push(("api_key", k.clone()));
        }
        f.push(("namespace", self.namespace.clone()));
        f.push(("action_name", self.action_name.clone()));
        f.push(("action_version", self.action_version.clone()));
        f.push(("activation_id", self.activation_id.clone()));
        f.push(("transaction_id", self.transaction_id.clone()));
        f.push(("deadline", self.deadline_ms.to_string()));
        f
    }

    /// The `__OW_*` environment entries for `/init`.
    pub fn init_env(&self) -> Map<String, Value> {
        self.fields()
            .into_iter()
            .map(|(k, v)| (format!("__OW_{}", k.to_uppercase()), Value::String(v)))
            .collect()
    }

    /// The `/run` body for argument `value`.
    pub fn run_body(&self, value: Value) -> Value {
        let mut m: Map<String, Value> = self
            .fields()
            .into_iter()
            .map(|(k, v)| (k.to_string(), Value::String(v)))
            .collect();
        m.insert("value".into(), value);
        Value::Object(m)
    }
}

/// Stringifies an init parameter for the environment as OpenWhisk does (null → "", strings
/// as is, anything else compact JSON).
pub fn env_string(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The `/init` body.
pub fn init_body(
    name: &str,
    main: Option<&str>,
    code: Option<&str>,
    binary: bool,
    env: Map<String, Value>,
) -> Value {
    let mut v = json!({
        "name": name,
        "main": main.unwrap_or("main"),
        "binary": binary,
        "env": env,
    });
    if let Some(c) = code {
        v["code"] = json!(c);
    }
    json!({ "value": v })
}

/// OpenWhisk's developer error for an `/init` (`init`) or `/run` that ran past `timeout_ms`.
pub fn time_limit_exceeded(init: bool, timeout_ms: u128) -> ActivationResponse {
    let msg = if init {
        format!("The action exceeded its time limits of {timeout_ms} milliseconds during initialization.")
    } else {
        format!("The action exceeded its time limits of {timeout_ms} milliseconds.")
    };
    ActivationResponse::developer_error(msg)
}

/// The result of one `/init` or `/run` call.
#[derive(Debug, Clone, PartialEq)]
pub struct CallOutcome {
    /// How the call ended, as an activation response (success for a good `/init`).
    pub response: ActivationResponse,
    /// Whether it ran out of time.
    pub timed_out: bool,
    /// Whether the container is unusable afterwards (no answer, connection lost, timeout).
    pub container_failed: bool,
    /// Wall time of the call.
    pub elapsed: Duration,
}

mod connections;

/// Client for the runtime protocol.
#[derive(Debug, Clone)]
pub struct RuntimeClient {
    connections: std::sync::Arc<connections::Connections>,
    truncation_bytes: usize,
}

impl Default for RuntimeClient {
    fn default() -> Self {
        Self::new(1024 * 1024)
    }
}

/// Which runtime-protocol call a [`Reply`] answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// `POST /init`.
    Init,
    /// `POST /run`.
    Run,
}

/// What a runtime answered to one `/init` or `/run`, before [`RuntimeClient::classify`] turns
/// it into an activation response. In-process runtimes answer with one directly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// An answer: the HTTP status and the body.
    Answered {
        /// The status (200 for success).
        status: u16,
        /// The body, a JSON document when the runtime is well behaved.
        body: bytes::Bytes,
    },
    /// No answer within the time limit (or, for `/init`, never reachable within it).
    TimedOut,
    /// The runtime went away without answering (connection lost, process gone).
    Lost,
}

impl RuntimeClient {
    /// A client truncating results above `truncation_bytes`.
    pub fn new(truncation_bytes: usize) -> Self {
        Self {
            connections: Default::default(),
            truncation_bytes,
        }
    }

    /// Drops kept-alive connections to runtimes that closed them (removed containers'); the
    /// container pool calls this now and then.
    pub fn forget_closed(&self) {
        self.connections.sweep();
    }

    /// `POST {endpoint}/init`; connection failures are retried every 50 ms within `timeout`
    /// (a runtime may still be starting). A success has status 0.
    pub async fn init(&self, endpoint: &str, body: &Value, timeout: Duration) -> CallOutcome {
        self.call(endpoint, body, timeout, Phase::Init, None).await
    }

    /// `POST {endpoint}/run` with `body` (see [`ActivationContext::run_body`]).
    pub async fn run(&self, endpoint: &str, body: &Value, timeout: Duration) -> CallOutcome {
        self.call(endpoint, body, timeout, Phase::Run, None).await
    }

    /// One call; an `/init` that cannot connect is retried until `timeout`, or until
    /// `container` (when given) has stopped: then the runtime is lost, not late.
    async fn call(
        &self,
        endpoint: &str,
        body: &Value,
        timeout: Duration,
        phase: Phase,
        container: Option<&dyn Container>,
    ) -> CallOutcome {
        let started = Instant::now();
        let path = match phase {
            Phase::Init => "/init",
            Phase::Run => "/run",
        };
        let authority = endpoint.strip_prefix("http://").unwrap_or(endpoint);
        let authority = authority.trim_end_matches('/');
        let payload = bytes::Bytes::from(serde_json::to_vec(body).expect("json serialises"));
        // A runtime answers; it never redirects, and a /run is never sent twice (only /init
        // connection failures are retried, every 50 ms: the runtime may still be starting).
        let reply = loop {
            let left = timeout.saturating_sub(started.elapsed());
            let sent = self.connections.post(authority, path, payload.clone());
            match tokio::time::timeout(left, sent).await {
                Err(_) => break Reply::TimedOut,
                Ok(Ok((status, body))) => break Reply::Answered { status, body },
                Ok(Err(connections::Failure::Connect)) if matches!(phase, Phase::Init) => {
                    if container.is_some_and(|c| c.exited()) {
                        break Reply::Lost;
                    }
                    // Never reachable within the time limit: OpenWhisk reports that as the
                    // init timeout.
                    if started.elapsed() + Duration::from_millis(50) >= timeout {
                        break Reply::TimedOut;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Ok(Err(_)) => break Reply::Lost,
            }
        };
        self.classify(phase, reply, timeout, started.elapsed())
    }

    /// Turns a runtime's `reply` to a `phase` call that took `elapsed` (within `timeout`)
    /// into the call's outcome, as OpenWhisk's invoker does: a good `/init` is a success with
    /// status 0, a `/run` answer is classified and truncated, and no answer is a developer
    /// error that leaves the container unusable.
    pub fn classify(
        &self,
        phase: Phase,
        reply: Reply,
        timeout: Duration,
        elapsed: Duration,
    ) -> CallOutcome {
        let (response, timed_out, failed) = match (reply, phase) {
            (Reply::Answered { status, body }, Phase::Init) => {
                if status == 200 {
                    (ActivationResponse::success(json!({})), false, false)
                } else {
                    (init_failure(&body), false, true)
                }
            }
            (Reply::Answered { status, body }, Phase::Run) => {
                let r = self.classify_run(status, &body);
                let failed = r.status == StatusCode::DeveloperError;
                (r, false, failed)
            }
            (Reply::TimedOut, phase) => (
                time_limit_exceeded(phase == Phase::Init, timeout.as_millis()),
                true,
                true,
            ),
            (Reply::Lost, Phase::Init) => (
                ActivationResponse::developer_error(
                    "The action did not initialize and exited unexpectedly.",
                ),
                false,
                true,
            ),
            (Reply::Lost, Phase::Run) => (
                ActivationResponse::developer_error(
                    "The action did not produce a valid response and exited unexpectedly.",
                ),
                false,
                true,
            ),
        };
        CallOutcome {
            response,
            timed_out,
            container_failed: failed,
            elapsed,
        }
    }

    /// `/init` with `body` on `container`: in process when it has an in-process runtime,
    /// else over HTTP to its endpoint.
    pub async fn init_container(
        &self,
        container: &dyn Container,
        body: &Value,
        timeout: Duration,
    ) -> CallOutcome {
        self.call_container(container, Phase::Init, body, timeout)
            .await
    }

    /// `/run` with `body` on `container`, in process or over HTTP (see
    /// [`RuntimeClient::init_container`]).
    pub async fn run_container(
        &self,
        container: &dyn Container,
        body: &Value,
        timeout: Duration,
    ) -> CallOutcome {
        self.call_container(container, Phase::Run, body, timeout)
            .await
    }

    async fn call_container(
        &self,
        container: &dyn Container,
        phase: Phase,
        body: &Value,
        timeout: Duration,
    ) -> CallOutcome {
        let Some(runtime) = container.in_process() else {
            return self
                .call(container.endpoint(), body, timeout, phase, Some(container))
                .await;
        };
        let started = tokio::time::Instant::now();
        let reply = match phase {
            Phase::Init => runtime.init(body, timeout).await,
            Phase::Run => runtime.run(body, timeout).await,
        };
        self.classify(phase, reply, timeout, started.elapsed())
    }

    /// OpenWhisk's `processRunResponseContent`.
    fn classify_run(&self, status: u16, body: &[u8]) -> ActivationResponse {
        if body.len() > self.truncation_bytes {
            let cut = String::from_utf8_lossy(&body[..self.truncation_bytes]);
            return ActivationResponse::error(
                StatusCode::ApplicationError,
                format!(
                    "The action produced a response that exceeded the allowed length: {} > {} bytes. The truncated response was: {cut}",
                    body.len(),
                    self.truncation_bytes
                ),
            );
        }
        let invalid = || {
            ActivationResponse::developer_error(format!(
                "The action did not produce a valid JSON or JSON Array response: {}",
                String::from_utf8_lossy(body)
            ))
        };
        match (status, serde_json::from_slice::<Value>(body)) {
            (200, Ok(Value::Object(mut o))) => match o.remove("error") {
                Some(e) => ActivationResponse::error(StatusCode::ApplicationError, e),
                None => ActivationResponse::success(Value::Object(o)),
            },
            (200, Ok(arr @ Value::Array(_))) => ActivationResponse::success(arr),
            (_, Ok(Value::Object(mut o))) if o.contains_key("error") => {
                ActivationResponse::developer_error(o.remove("error").unwrap_or(Value::Null))
            }
            _ => invalid(),
        }
    }
}

fn init_failure(body: &[u8]) -> ActivationResponse {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(mut o)) if o.contains_key("error") => {
            ActivationResponse::developer_error(o.remove("error").unwrap_or(Value::Null))
        }
        _ => ActivationResponse::developer_error(format!(
            "The action failed during initialization: {}",
            String::from_utf8_lossy(body)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by fuzzing (`runtime_reply`): serde_json's default parser read this number one
    /// bit off the nearest double, so the result changed when its record was read back.
    #[test]
    fn a_result_keeps_its_numbers_exactly() {
        let digits = "555555555555555555555555555555555";
        let reply = Reply::Answered {
            status: 200,
            body: bytes::Bytes::from(format!("[{digits}]")),
        };
        let out = RuntimeClient::default().classify(
            Phase::Run,
            reply,
            Duration::from_secs(1),
            Duration::ZERO,
        );
        let result = out.response.result.expect("a result");
        assert_eq!(result[0].as_f64(), Some(digits.parse::<f64>().unwrap()));
        let written = serde_json::to_string(&result).unwrap();
        assert_eq!(serde_json::from_str::<Value>(&written).unwrap(), result);
    }

    #[tokio::test]
    async fn a_runtime_that_redirects_is_not_followed() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let followed = std::sync::Arc::new(AtomicUsize::new(0));
        let seen = followed.clone();
        let app = axum::Router::new()
            .route(
                "/run",
                axum::routing::post(|| async {
                    (
                        axum::http::StatusCode::FOUND,
                        [("location", "/elsewhere")],
                        "",
                    )
                }),
            )
            .route(
                "/elsewhere",
                axum::routing::any(move || {
                    seen.fetch_add(1, Ordering::SeqCst);
                    async { axum::Json(json!({"followed": true})) }
                }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        let out = RuntimeClient::default()
            .run(
                &format!("http://{addr}"),
                &json!({}),
                Duration::from_secs(5),
            )
            .await;
        assert_eq!(out.response.status, StatusCode::DeveloperError, "{out:?}");
        assert_eq!(
            followed.load(Ordering::SeqCst),
            0,
            "the redirect was not followed"
        );
    }

    #[test]
    fn classification() {
        let c = RuntimeClient::new(64);
        assert_eq!(
            c.classify_run(200, br#"{"a":1}"#),
            ActivationResponse::success(json!({"a":1}))
        );
        assert_eq!(
            c.classify_run(200, br#"[1]"#),
            ActivationResponse::success(json!([1]))
        );
        assert_eq!(
            c.classify_run(200, br#"{"error":"x","b":1}"#),
            ActivationResponse::error(StatusCode::ApplicationError, "x")
        );
        assert_eq!(
            c.classify_run(502, br#"{"error":"bad"}"#),
            ActivationResponse::developer_error("bad")
        );
        assert_eq!(c.classify_run(200, b"3").status, StatusCode::DeveloperError);
        assert_eq!(
            c.classify_run(200, b"not json").status,
            StatusCode::DeveloperError
        );
        let big = format!("{{\"a\":\"{}\"}}", "x".repeat(100));
        let r = c.classify_run(200, big.as_bytes());
        assert_eq!(r.status, StatusCode::ApplicationError);
        assert!(r.result.unwrap()["error"].as_str().unwrap().starts_with(
            "The action produced a response that exceeded the allowed length: 108 > 64 bytes."
        ));
    }

    #[test]
    fn context_debug_leaves_the_key_out() {
        let key = crate::entity::identity::GUEST_KEY;
        let ctx = ActivationContext {
            api_key: Some(key.into()),
            namespace: "guest".into(),
            action_name: "/guest/a".into(),
            action_version: "0.0.1".into(),
            activation_id: "id".into(),
            transaction_id: "t".into(),
            deadline_ms: 99,
        };
        let text = format!("{ctx:?}");
        assert!(!text.contains(&key[37..]), "{text}");
        assert!(
            text.contains("<redacted>") && text.contains("/guest/a"),
            "{text}"
        );
    }

    #[test]
    fn context_fields() {
        let ctx = ActivationContext {
            api_key: None,
            namespace: "guest".into(),
            action_name: "/guest/a".into(),
            action_version: "0.0.1".into(),
            activation_id: "id".into(),
            transaction_id: "t".into(),
            deadline_ms: 99,
        };
        let env = ctx.init_env();
        assert_eq!(env["__OW_DEADLINE"], json!("99"));
        assert!(!env.contains_key("__OW_API_KEY"));
        let run = ctx.run_body(json!({"x":1}));
        assert_eq!(run["deadline"], json!("99"));
        assert_eq!(run["action_name"], json!("/guest/a"));
        assert_eq!(run["value"], json!({"x":1}));
        assert_eq!(env_string(&json!(null)), "");
        assert_eq!(env_string(&json!({"a":1})), "{\"a\":1}");
    }
}
