//! The CouchDB changes event source, shaped like OpenWhisk's `/whisk.system/cloudant/changes`
//! feed: every change in a database's `_changes` feed fires the trigger once.
//!
//! ```text
//! wsk trigger create mytrigger --feed /whisk.system/cloudant/changes \
//!     -p dbname orders -p host 127.0.0.1:5984 -p username admin -p password secret
//! ```
//!
//! - **Parameters**: `dbname` (required); the server as `host` (`host[:port]`) with `protocol`
//!   (only `http`, the default: whisk speaks plain HTTP to CouchDB, put a TLS-terminating proxy
//!   in front of a remote server) or as a full `url` (`http://host:port`, credentials in it
//!   are taken out of the URL); `username` and `password`; `filter` (`designdoc/filtername`)
//!   and `query_params` (an object of extra `_changes` query parameters for the filter).
//! - **Payload**: one fire per change, `{"id": "...", "seq": ..., "changes": [{"rev": "..."}]}`
//!   plus `"deleted": true` for a deletion (OpenWhisk's payload; no document bodies).
//! - **Start**: only changes made after the trigger's `CREATE` (or `UPDATE`) fire: `validate`
//!   records the database's current sequence.
//! - **Restarts**: after each accepted fire the change's `seq` is saved as the registration's
//!   cursor; after a restart the feed resumes after it, so no change fires twice (a crash in
//!   the instant between an accepted fire and the save of its `seq` fires that change again).
//! - **Errors**: a database that does not exist, a wrong password or an unreachable server
//!   refuse the `CREATE`; a database that disappears later stops the feed with an error
//!   recorded as an activation of the trigger (the other feeds keep running); an unreachable
//!   server or a 5xx answer while running is retried with backoff.
//!
//! The feed long-polls `_changes` with a server-side timeout and a slightly longer client-side
//! one. pouchdb-server (the CouchDB-API server of the tests) ignores the longpoll `timeout`
//! and keeps a request open until a change arrives, even after its database is deleted; the
//! client-side timeout ends such a request, and the next poll sees the 404.

use super::client::{encode, Client, Reply};
use super::CouchConfig;
use async_trait::async_trait;
use reqwest::{Method, StatusCode, Url};
use serde_json::{json, Map, Value};
use std::time::Duration;
use whisk_core::feeds::{EventSource, FeedHandle, FeedParameter, SourceError};
use whisk_core::store::StoreError;

/// The package of the feed (`/whisk.system/cloudant`).
pub const PACKAGE: &str = "cloudant";
/// The feed action's name (`/whisk.system/cloudant/changes`).
pub const FEED: &str = "changes";

const PARAMETERS: [FeedParameter; 8] = [
    FeedParameter {
        name: "dbname",
        description: "The database whose changes fire the trigger",
        required: true,
    },
    FeedParameter {
        name: "host",
        description: "The CouchDB server as host[:port] (or give url)",
        required: false,
    },
    FeedParameter {
        name: "protocol",
        description: "http (the default and the only one: plain HTTP, no TLS)",
        required: false,
    },
    FeedParameter {
        name: "url",
        description: "The CouchDB server as a URL, http://host:port (instead of host)",
        required: false,
    },
    FeedParameter {
        name: "username",
        description: "The user name for the database",
        required: false,
    },
    FeedParameter {
        name: "password",
        description: "The password for the database",
        required: false,
    },
    FeedParameter {
        name: "filter",
        description: "A filter function, designdoc/filtername, selecting the changes that fire",
        required: false,
    },
    FeedParameter {
        name: "query_params",
        description: "Query parameters (a JSON object) for the filter function",
        required: false,
    },
];

/// The `cloudant/changes` event source (see the [module documentation](self)).
#[derive(Debug, Clone)]
pub struct CouchChanges {
    poll: Duration,
    max_backoff: Duration,
}

impl Default for CouchChanges {
    /// Long polls of 10 s, retries backing off up to 30 s.
    fn default() -> Self {
        Self {
            poll: Duration::from_secs(10),
            max_backoff: Duration::from_secs(30),
        }
    }
}

impl CouchChanges {
    /// The source with its default settings.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets how long one long poll of `_changes` waits for a change (the server-side
    /// `timeout`; the request itself gives up 5 s later). A deleted database is noticed within
    /// about this time on servers that keep a long poll open after the deletion.
    pub fn with_poll_timeout(mut self, poll: Duration) -> Self {
        self.poll = poll.max(Duration::from_millis(100));
        self
    }

    /// Sets the longest wait between retries while the server is unreachable or failing.
    pub fn with_max_backoff(mut self, max: Duration) -> Self {
        self.max_backoff = max.max(Duration::from_millis(100));
        self
    }
}

/// A validated configuration: where the database is and how to read its changes.
#[derive(Debug, Clone, PartialEq)]
struct Target {
    /// The server URL without credentials.
    url: String,
    dbname: String,
    username: Option<String>,
    password: Option<String>,
    filter: Option<String>,
    query_params: Map<String, Value>,
}

impl Target {
    /// Parses the feed parameters (no network).
    fn from_params(params: &Map<String, Value>) -> Result<Self, String> {
        let text = |k: &str| -> Result<Option<String>, String> {
            match params.get(k) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.trim().to_string())),
                Some(Value::Number(n)) if k == "password" || k == "username" => {
                    Ok(Some(n.to_string()))
                }
                Some(v) => Err(format!("The parameter '{k}' must be a string, not {v}.")),
            }
        };
        let dbname = text("dbname")?.ok_or("The parameter 'dbname' is required.")?;
        let raw = match (text("url")?, text("host")?) {
            (Some(url), _) => url,
            (None, Some(host)) => {
                let protocol = text("protocol")?.unwrap_or_else(|| "http".into());
                if !protocol.eq_ignore_ascii_case("http") {
                    return Err(unsupported(&protocol));
                }
                if host.contains("://") {
                    host
                } else {
                    format!("http://{host}")
                }
            }
            (None, None) => {
                return Err("The parameter 'host' (host[:port]) or 'url' is required.".into())
            }
        };
        let mut url = Url::parse(&raw)
            .ok()
            .filter(|u| u.host_str().is_some())
            .ok_or_else(|| {
                "The CouchDB host or url is not valid: expected http://host[:port] or host[:port]."
                    .to_string()
            })?;
        if url.scheme() != "http" {
            return Err(unsupported(url.scheme()));
        }
        let decode = |s: &str| percent_decode(s).unwrap_or_else(|| s.to_string());
        let url_user = (!url.username().is_empty()).then(|| decode(url.username()));
        let url_pass = url.password().map(decode);
        let _ = url.set_username("");
        let _ = url.set_password(None);
        url.set_query(None);
        url.set_fragment(None);
        let filter = text("filter")?;
        if let Some(f) = &filter {
            let ok = f
                .split_once('/')
                .is_some_and(|(d, n)| !d.is_empty() && !n.is_empty() && !n.contains('/'));
            if !ok {
                return Err(format!(
                    "The filter '{f}' is not valid: expected designdoc/filtername."
                ));
            }
        }
        let query_params = match params.get("query_params") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(m)) => m.clone(),
            Some(Value::String(s)) if s.trim().is_empty() => Map::new(),
            Some(Value::String(s)) => match serde_json::from_str(s) {
                Ok(Value::Object(m)) => m,
                _ => return Err("query_params must be a JSON object.".into()),
            },
            Some(_) => return Err("query_params must be a JSON object.".into()),
        };
        if !query_params.is_empty() && filter.is_none() {
            return Err("query_params needs a filter.".into());
        }
        Ok(Self {
            url: url.as_str().trim_end_matches('/').to_string(),
            dbname,
            username: text("username")?.or(url_user),
            password: text("password")?.or(url_pass),
            filter,
            query_params,
        })
    }

    fn from_config(config: &Value) -> Result<Self, String> {
        let params = config
            .as_object()
            .ok_or("the feed's configuration is not an object")?;
        Self::from_params(params)
    }

    /// The stored configuration (with the start sequence).
    fn to_config(&self, since: &Value) -> Value {
        let mut c = json!({"url": self.url, "dbname": self.dbname, "since": since});
        let m = c.as_object_mut().expect("an object");
        if let Some(u) = &self.username {
            m.insert("username".into(), json!(u));
        }
        if let Some(p) = &self.password {
            m.insert("password".into(), json!(p));
        }
        if let Some(f) = &self.filter {
            m.insert("filter".into(), json!(f));
            m.insert(
                "query_params".into(),
                Value::Object(self.query_params.clone()),
            );
        }
        c
    }

    fn client(&self, timeout: Duration, attempts: u32) -> Result<Client, String> {
        Client::new(&CouchConfig {
            url: self.url.clone(),
            username: self.username.clone(),
            password: self.password.clone(),
            attempts,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
            request_timeout: timeout,
            ..CouchConfig::default()
        })
        .map_err(|e| e.to_string())
    }

    /// `/db/_changes?...` query pairs after `since` (filter and its parameters included).
    fn changes_query(&self, since: &Value, extra: &[(&str, String)]) -> Vec<(String, String)> {
        let mut q: Vec<(String, String)> = self
            .query_params
            .iter()
            .map(|(k, v)| (k.clone(), query_value(v)))
            .collect();
        if let Some(f) = &self.filter {
            q.push(("filter".into(), f.clone()));
        }
        q.push(("since".into(), query_value(since)));
        q.extend(extra.iter().map(|(k, v)| (k.to_string(), v.clone())));
        q
    }
}

fn unsupported(protocol: &str) -> String {
    format!(
        "The protocol '{protocol}' is not supported: whisk reads CouchDB over plain http only (put a TLS-terminating proxy in front of the server)."
    )
}

/// Decodes the `%XX` escapes of a URL's user name or password.
fn percent_decode(s: &str) -> Option<String> {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let hex = [bytes.next()?, bytes.next()?];
            out.push(u8::from_str_radix(std::str::from_utf8(&hex).ok()?, 16).ok()?);
        } else {
            out.push(b);
        }
    }
    String::from_utf8(out).ok()
}

/// A sequence or query value as query text (strings as they are, others as JSON).
fn query_value(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        v => v.to_string(),
    }
}

/// The payload of one `_changes` result, as OpenWhisk's changes feed fires it.
fn payload_of(change: &Value) -> Option<Map<String, Value>> {
    let mut p = Map::new();
    p.insert("id".into(), change.get("id")?.clone());
    p.insert("seq".into(), change.get("seq")?.clone());
    p.insert(
        "changes".into(),
        change.get("changes").cloned().unwrap_or_else(|| json!([])),
    );
    if change.get("deleted").and_then(Value::as_bool) == Some(true) {
        p.insert("deleted".into(), Value::Bool(true));
    }
    Some(p)
}

/// Why reading the database failed.
enum Problem {
    /// Worth retrying: unreachable, 5xx, a timeout.
    Transient(String),
    /// The database is gone.
    Missing,
    /// Anything else (401, 403, a bad filter...): retrying will not help.
    Fatal(String),
}

/// What a failed answer means. A 404 to the database itself means it is gone; a 404 to
/// `_changes` only when its reason says so (CouchDB: `Database does not exist.`,
/// pouchdb-server: `no_db_file`), otherwise the filter is missing.
fn classify(target: &Target, client: &Client, of_database: bool, reply: &Reply) -> Problem {
    let host = client.display_url();
    let db = &target.dbname;
    let reason = reply.json()["reason"].as_str().unwrap_or("").to_string();
    match reply.status {
        StatusCode::NOT_FOUND
            if of_database || reason == "no_db_file" || reason == "Database does not exist." =>
        {
            Problem::Missing
        }
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Problem::Fatal(format!(
            "Not authorized to read the database '{db}' on {host} ({}: {}); check the username and password.",
            reply.status.as_u16(),
            reply.reason()
        )),
        s if s.is_server_error() => Problem::Transient(format!(
            "CouchDB at {host} answered {}: {}",
            s.as_u16(),
            reply.reason()
        )),
        s => Problem::Fatal(format!(
            "Reading the changes of the database '{db}' on {host} failed ({}: {}).",
            s.as_u16(),
            reply.reason()
        )),
    }
}

fn transport(e: StoreError) -> Problem {
    match e {
        StoreError::Unavailable(m) => Problem::Transient(m),
        e => Problem::Transient(e.to_string()),
    }
}

/// GETs the database; `Ok(info)` when it exists.
async fn database(target: &Target, client: &Client) -> Result<Value, Problem> {
    let reply = client
        .send(Method::GET, &encode(&target.dbname), &[], None)
        .await
        .map_err(transport)?;
    if reply.status.is_success() {
        Ok(reply.json())
    } else {
        Err(classify(target, client, true, &reply))
    }
}

/// Checks that filter `ddoc/name` exists (pouchdb-server 4.2 crashes on a `_changes` request
/// naming a missing filter, so the design document is read instead).
async fn check_filter(target: &Target, client: &Client, filter: &str) -> Result<(), String> {
    let (ddoc, name) = filter.split_once('/').expect("validated");
    let path = format!("{}/_design/{}", encode(&target.dbname), encode(ddoc));
    let reply = client
        .send(Method::GET, &path, &[], None)
        .await
        .map_err(|e| e.to_string())?;
    let found = reply.status.is_success() && reply.json()["filters"].get(name).is_some();
    if found {
        Ok(())
    } else {
        Err(format!(
            "The filter '{filter}' does not exist in the database '{}' on {}.",
            target.dbname,
            client.display_url()
        ))
    }
}

async fn get_changes(
    target: &Target,
    client: &Client,
    query: &[(String, String)],
) -> Result<Value, Problem> {
    let q: Vec<(&str, String)> = query.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    let path = format!("{}/_changes", encode(&target.dbname));
    let reply = client
        .send(Method::GET, &path, &q, None)
        .await
        .map_err(transport)?;
    if reply.status.is_success() {
        let body = reply.json();
        if body.get("results").is_some_and(Value::is_array) {
            Ok(body)
        } else {
            Err(Problem::Transient(format!(
                "CouchDB at {} sent an unreadable _changes answer",
                client.display_url()
            )))
        }
    } else {
        Err(classify(target, client, false, &reply))
    }
}

#[async_trait]
impl EventSource for CouchChanges {
    fn package(&self) -> &str {
        PACKAGE
    }

    fn name(&self) -> &str {
        FEED
    }

    fn description(&self) -> &str {
        "Fire a trigger for each change in a CouchDB database"
    }

    fn parameters(&self) -> &[FeedParameter] {
        &PARAMETERS
    }

    async fn validate(&self, params: &Map<String, Value>) -> Result<Value, String> {
        let target = Target::from_params(params)?;
        let client = target.client(Duration::from_secs(10), 2)?;
        let host = client.display_url().to_string();
        let db = &target.dbname;
        let info = match database(&target, &client).await {
            Ok(info) => info,
            Err(Problem::Missing) => {
                return Err(format!("Database '{db}' does not exist on {host}."))
            }
            Err(Problem::Transient(m)) => {
                return Err(format!("Cannot read the database '{db}': {m}"))
            }
            Err(Problem::Fatal(m)) => return Err(m),
        };
        if let Some(f) = &target.filter {
            check_filter(&target, &client, f).await?;
        }
        // Only the changes after this moment fire.
        let since = match get_changes(&target, &client, &[("since".into(), "now".into())]).await {
            Ok(body) => body.get("last_seq").cloned(),
            Err(_) => None,
        }
        .or_else(|| info.get("update_seq").cloned())
        .ok_or_else(|| format!("CouchDB at {host} gave no sequence for the database '{db}'."))?;
        Ok(target.to_config(&since))
    }

    async fn run(&self, feed: FeedHandle) -> Result<(), SourceError> {
        let target = Target::from_config(feed.config()).map_err(SourceError::Failed)?;
        let client = target
            .client(self.poll + Duration::from_secs(5), 1)
            .map_err(SourceError::Failed)?;
        let mut since = feed
            .cursor()
            .or_else(|| feed.config().get("since"))
            .cloned()
            .unwrap_or_else(|| json!(0));
        let gone = || {
            SourceError::Failed(format!(
                "The database '{}' no longer exists on {}.",
                target.dbname,
                client.display_url()
            ))
        };
        let poll = [
            ("feed", "longpoll".to_string()),
            ("timeout", self.poll.as_millis().to_string()),
            ("limit", "100".to_string()),
        ];
        let mut backoff = Duration::from_millis(200);
        loop {
            let started = tokio::time::Instant::now();
            let body = match get_changes(&target, &client, &target.changes_query(&since, &poll))
                .await
            {
                Ok(body) => body,
                Err(Problem::Missing) => return Err(gone()),
                Err(Problem::Fatal(m)) => return Err(SourceError::Failed(m)),
                Err(Problem::Transient(m)) => {
                    // A long poll the server kept open past its timeout ends here too: check
                    // the database, and poll again at once when that was the reason; back off
                    // otherwise.
                    let m = match database(&target, &client).await {
                        Ok(_) if started.elapsed() >= self.poll => {
                            tracing::debug!(trigger = %feed.trigger(), error = %m, "changes poll ended; polling again");
                            continue;
                        }
                        Ok(_) => m,
                        Err(Problem::Missing) => return Err(gone()),
                        Err(Problem::Fatal(m)) => return Err(SourceError::Failed(m)),
                        Err(Problem::Transient(m)) => m,
                    };
                    tracing::warn!(trigger = %feed.trigger(), error = %m, "CouchDB changes feed: server unavailable, retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(self.max_backoff);
                    continue;
                }
            };
            backoff = Duration::from_millis(200);
            for change in body["results"].as_array().into_iter().flatten() {
                let Some(payload) = payload_of(change) else {
                    continue;
                };
                let seq = payload["seq"].clone();
                feed.fire(payload).await?;
                feed.save_cursor(seq.clone()).await?;
                since = seq;
            }
            if let Some(last) = body.get("last_seq").filter(|v| !v.is_null()) {
                since = last.clone();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(params: Value) -> Result<Target, String> {
        Target::from_params(params.as_object().unwrap())
    }

    #[test]
    fn the_server_is_a_host_with_protocol_or_a_url() {
        let t = target(json!({"dbname": "db", "host": "127.0.0.1:5984"})).unwrap();
        assert_eq!(t.url, "http://127.0.0.1:5984");
        let t = target(json!({"dbname": "db", "host": "couch", "protocol": "HTTP"})).unwrap();
        assert_eq!(t.url, "http://couch");
        let t = target(json!({"dbname": "db", "url": "http://u:p%40ss@127.0.0.1:5984/"})).unwrap();
        assert_eq!(t.url, "http://127.0.0.1:5984", "no credentials in the URL");
        assert_eq!(t.username.as_deref(), Some("u"));
        assert_eq!(t.password.as_deref(), Some("p@ss"));
        let t = target(
            json!({"dbname": "db", "url": "http://u:x@h", "username": "a", "password": "b"}),
        )
        .unwrap();
        assert_eq!(
            (t.username.as_deref(), t.password.as_deref()),
            (Some("a"), Some("b"))
        );
    }

    #[test]
    fn bad_parameters_are_refused_with_a_clear_message() {
        let e = |p: Value| target(p).expect_err("refused");
        assert_eq!(
            e(json!({"host": "h"})),
            "The parameter 'dbname' is required."
        );
        assert_eq!(
            e(json!({"dbname": "db"})),
            "The parameter 'host' (host[:port]) or 'url' is required."
        );
        assert!(e(json!({"dbname": "db", "host": "h", "protocol": "https"}))
            .starts_with("The protocol 'https' is not supported"));
        assert!(e(json!({"dbname": "db", "url": "https://h"}))
            .starts_with("The protocol 'https' is not supported"));
        assert_eq!(
            e(json!({"dbname": "db", "host": "h", "filter": "nofilter"})),
            "The filter 'nofilter' is not valid: expected designdoc/filtername."
        );
        assert_eq!(
            e(json!({"dbname": "db", "host": "h", "filter": "d/f", "query_params": [1]})),
            "query_params must be a JSON object."
        );
        assert_eq!(
            e(json!({"dbname": "db", "host": "h", "query_params": {"k": 1}})),
            "query_params needs a filter."
        );
        assert_eq!(
            e(json!({"dbname": 3, "host": "h"})),
            "The parameter 'dbname' must be a string, not 3."
        );
    }

    #[test]
    fn the_config_round_trips_and_builds_the_changes_query() {
        let t = target(
            json!({"dbname": "db", "host": "h:1", "password": "pw", "username": "u",
            "filter": "d/f", "query_params": "{\"k\": 2}"}),
        )
        .unwrap();
        let config = t.to_config(&json!("12-abc"));
        assert_eq!(config["since"], "12-abc");
        assert_eq!(Target::from_config(&config).unwrap(), t);
        let q = t.changes_query(&json!(7), &[("feed", "longpoll".into())]);
        assert_eq!(
            q,
            [
                ("k", "2"),
                ("filter", "d/f"),
                ("since", "7"),
                ("feed", "longpoll")
            ]
            .map(|(k, v)| (k.to_string(), v.to_string()))
        );
    }

    #[test]
    fn payloads_are_openwhisk_s() {
        let p = payload_of(&json!({"id": "a", "seq": 3, "changes": [{"rev": "1-x"}], "doc": {}}))
            .unwrap();
        assert_eq!(
            Value::Object(p),
            json!({"id": "a", "seq": 3, "changes": [{"rev": "1-x"}]})
        );
        let p = payload_of(
            &json!({"id": "a", "seq": "4-y", "changes": [{"rev": "2-z"}], "deleted": true}),
        )
        .unwrap();
        assert_eq!(p["deleted"], true);
        assert!(payload_of(&json!({"last_seq": 3})).is_none());
    }
}
