//! The HTTP side of the CouchDB store: one keep-alive `reqwest::Client`, credentials, retries
//! with exponential backoff, id encoding and the mapping of CouchDB answers to `StoreError`s.

use super::CouchConfig;
use reqwest::{Method, StatusCode, Url};
use serde_json::Value;
use std::time::Duration;
use whisk_core::store::StoreError;

/// A CouchDB answer that is not a transport failure: status and body bytes.
pub(crate) struct Reply {
    pub status: StatusCode,
    pub bytes: bytes::Bytes,
}

impl Reply {
    /// The body as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.bytes).unwrap_or(Value::Null)
    }

    /// CouchDB's `error: reason` text of a failed request.
    pub fn reason(&self) -> String {
        let body = self.json();
        let field = |k: &str| {
            body.get(k)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        match (field("error"), field("reason")) {
            (e, r) if e.is_empty() && r.is_empty() => String::from_utf8_lossy(&self.bytes)
                .chars()
                .take(200)
                .collect(),
            (e, r) => format!("{e}: {r}"),
        }
    }
}

/// The connection to one CouchDB server.
pub(crate) struct Client {
    http: reqwest::Client,
    /// The server URL without credentials and without a trailing slash.
    base: String,
    username: Option<String>,
    password: Option<String>,
    attempts: u32,
    initial_backoff: Duration,
    max_backoff: Duration,
}

impl Client {
    /// Builds the client; credentials in the URL's userinfo are taken out of the URL (explicit
    /// `username`/`password` in the config win).
    pub fn new(config: &CouchConfig) -> Result<Self, StoreError> {
        let mut url = Url::parse(config.url.trim())
            .map_err(|e| StoreError::Other(format!("invalid CouchDB URL: {e}")))?;
        let decode = |s: &str| percent_decode(s).unwrap_or_else(|| s.to_string());
        let url_user = (!url.username().is_empty()).then(|| decode(url.username()));
        let url_pass = url.password().map(decode);
        // Both setters only fail for URLs that cannot have credentials (checked by parse).
        let _ = url.set_username("");
        let _ = url.set_password(None);
        let base = url.as_str().trim_end_matches('/').to_string();
        let http = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .connect_timeout(config.request_timeout)
            .pool_idle_timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| StoreError::Other(format!("cannot build HTTP client: {e}")))?;
        Ok(Self {
            http,
            base,
            username: config.username.clone().or(url_user),
            password: config.password.clone().or(url_pass),
            attempts: config.attempts.max(1),
            initial_backoff: config.initial_backoff,
            max_backoff: config.max_backoff,
        })
    }

    /// The server URL as it may be shown (never with credentials).
    pub fn display_url(&self) -> &str {
        &self.base
    }

    /// Sends a request to `path` (already encoded, without leading slash), retrying connection
    /// errors and 5xx answers with exponential backoff. Other answers are returned as they are.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Reply, StoreError> {
        let url = format!("{}/{}", self.base, path);
        let body = body.map(|b| serde_json::to_vec(b).expect("JSON serialises"));
        let mut backoff = self.initial_backoff;
        let mut attempt = 1;
        loop {
            let mut req = self
                .http
                .request(method.clone(), &url)
                .header(reqwest::header::ACCEPT, "application/json");
            if !query.is_empty() {
                req = req.query(query);
            }
            if let Some(user) = &self.username {
                req = req.basic_auth(user, self.password.as_deref());
            }
            if let Some(b) = &body {
                req = req
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(b.clone());
            }
            let message = match req.send().await {
                Ok(resp) => {
                    let status = resp.status();
                    match resp.bytes().await {
                        Ok(bytes) if status.is_server_error() => {
                            let reply = Reply { status, bytes };
                            format!(
                                "CouchDB at {} answered {} to {method} /{}: {}",
                                self.base,
                                status.as_u16(),
                                strip_query(path),
                                reply.reason()
                            )
                        }
                        Ok(bytes) => return Ok(Reply { status, bytes }),
                        Err(e) => self.unreachable(&e),
                    }
                }
                Err(e) => self.unreachable(&e),
            };
            if attempt >= self.attempts {
                return Err(StoreError::Unavailable(message));
            }
            tracing::debug!(attempt, %message, "CouchDB request failed; retrying");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(self.max_backoff);
            attempt += 1;
        }
    }

    /// Sends a JSON request and fails with `Other` on any status but `ok` ones.
    pub async fn send_ok(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
        ok: &[StatusCode],
    ) -> Result<Value, StoreError> {
        let reply = self.send(method.clone(), path, query, body).await?;
        if reply.status.is_success() || ok.contains(&reply.status) {
            Ok(reply.json())
        } else {
            Err(unexpected(&method, path, &reply))
        }
    }

    fn unreachable(&self, e: &reqwest::Error) -> String {
        let mut text = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            let s_text = s.to_string();
            if !text.contains(&s_text) {
                text = format!("{text}: {s_text}");
            }
            source = s.source();
        }
        // The URL carries no credentials (they are sent as a header), but keep messages short.
        format!("CouchDB at {} is unreachable: {text}", self.base)
    }
}

/// An answer the store did not expect, as `StoreError::Other`.
pub(crate) fn unexpected(method: &Method, path: &str, reply: &Reply) -> StoreError {
    let what = match reply.status {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
            " (check the CouchDB username and password)"
        }
        _ => "",
    };
    StoreError::Other(format!(
        "CouchDB answered {} to {method} /{}{what}: {}",
        reply.status.as_u16(),
        strip_query(path),
        reply.reason()
    ))
}

fn strip_query(path: &str) -> &str {
    path.split('?').next().unwrap_or(path)
}

/// Percent-encodes one path segment: everything but RFC 3986 unreserved characters, so a `/`
/// inside a document id becomes `%2F`.
pub(crate) fn encode(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The URL path of document `id` in database `db`.
pub(crate) fn doc_path(db: &str, id: &str) -> String {
    match id.strip_prefix("_design/") {
        Some(name) => format!("{}/_design/{}", encode(db), encode(name)),
        None => format!("{}/{}", encode(db), encode(id)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_encoded_as_one_segment() {
        assert_eq!(
            encode("ns/my pkg/a b@c.d-e"),
            "ns%2Fmy%20pkg%2Fa%20b%40c.d-e"
        );
        assert_eq!(
            doc_path("db", "_design/whisks.v2.1.0"),
            "db/_design/whisks.v2.1.0"
        );
        assert_eq!(percent_decode("p%40ss").as_deref(), Some("p@ss"));
    }

    #[test]
    fn credentials_leave_the_url() {
        let c = Client::new(&CouchConfig {
            url: "http://admin:s%40cret@127.0.0.1:5984/".into(),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(c.display_url(), "http://127.0.0.1:5984");
        assert_eq!(c.username.as_deref(), Some("admin"));
        assert_eq!(c.password.as_deref(), Some("s@cret"));
    }
}
