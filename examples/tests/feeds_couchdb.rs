//! The CouchDB changes source (`/whisk.system/cloudant/changes`) end to end: a standalone
//! platform, the shared CouchDB-API server of the test run (`WHISK_TEST_COUCHDB_URL`, CI:
//! pouchdb-server) and triggers created the way the `wsk` CLI creates them.

mod common;

use common::{couchdb_url, Platform, StandaloneConfig};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::time::Duration;
use whisk_examples::standalone::StoreBackend;

const ECHO: &str = "function main(params) { return params; }";
const CHANGES: &str = "/whisk.system/cloudant/changes";
const WAIT: Duration = Duration::from_secs(60);

/// A database of its own on the shared server.
struct Db {
    url: String,
    name: String,
    http: reqwest::Client,
}

impl Db {
    async fn create(url: &str) -> Self {
        let db = Self {
            url: url.trim_end_matches('/').to_string(),
            name: whisk_core::testkit::unique("whisk_feed_"),
            http: reqwest::Client::builder().no_proxy().build().unwrap(),
        };
        let r = db.send(Method::PUT, "", None).await;
        assert_eq!(r.0, StatusCode::CREATED, "creating {}: {}", db.name, r.1);
        db
    }

    async fn send(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut req = self
            .http
            .request(method, format!("{}/{}{path}", self.url, self.name));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("CouchDB answers");
        let status = resp.status();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// Writes document `id` (a new revision when `rev` is given); returns the new revision.
    async fn put(&self, id: &str, rev: Option<&str>) -> String {
        let mut body = json!({"value": id});
        if let Some(r) = rev {
            body["_rev"] = json!(r);
        }
        let (status, r) = self.send(Method::PUT, &format!("/{id}"), Some(body)).await;
        assert_eq!(status, StatusCode::CREATED, "{r}");
        r["rev"].as_str().unwrap().to_string()
    }

    /// Deletes document `id` at `rev`; returns the deletion's revision.
    async fn delete_doc(&self, id: &str, rev: &str) -> String {
        let (status, r) = self
            .send(Method::DELETE, &format!("/{id}?rev={rev}"), None)
            .await;
        assert_eq!(status, StatusCode::OK, "{r}");
        r["rev"].as_str().unwrap().to_string()
    }

    async fn drop_db(&self) {
        self.send(Method::DELETE, "", None).await;
    }
}

fn config(store: StoreBackend) -> StandaloneConfig {
    StandaloneConfig {
        prewarm: false,
        store,
        ..Default::default()
    }
}

/// Trigger `trigger` fed by the changes of `db`, with a rule to action `echo`.
async fn watch(p: &Platform, trigger: &str, db: &Db) {
    let r = p
        .feed_trigger(trigger, CHANGES, json!({"dbname": db.name, "url": db.url}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "feed CREATE: {}", r.text);
    assert_eq!(r.body, json!({}));
    p.rule(&format!("{trigger}-rule"), trigger, "echo").await;
}

/// The `(id, rev)` of each change the results of `activations` carry, checking the payload's
/// shape; panics on a change fired twice.
fn changes_in(activations: &[Value]) -> BTreeSet<(String, String)> {
    let mut seen = BTreeSet::new();
    for a in activations {
        let r = &a["response"]["result"];
        assert!(r["seq"].is_number() || r["seq"].is_string(), "{r}");
        let changes = r["changes"].as_array().expect("changes");
        assert_eq!(changes.len(), 1, "{r}");
        let key = (
            r["id"].as_str().expect("id").to_string(),
            changes[0]["rev"].as_str().expect("rev").to_string(),
        );
        assert!(
            seen.insert(key.clone()),
            "{key:?} fired twice: {activations:#?}"
        );
    }
    seen
}

fn set(pairs: &[(&str, &str)]) -> BTreeSet<(String, String)> {
    pairs
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

/// Waits until `name` has exactly `n` activations, then a little longer to see that no more
/// come.
async fn exactly(p: &Platform, name: &str, n: usize) -> Vec<Value> {
    let got = p.wait_activations(name, n, WAIT).await;
    assert!(got.len() >= n, "activations of {name}: {got:#?}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let got = p.activations_of(name).await;
    assert_eq!(got.len(), n, "activations of {name}: {got:#?}");
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_change_fires_once_also_across_a_restart() {
    let Some(url) = couchdb_url() else { return };
    let dir = tempfile::tempdir().unwrap();
    let store = StoreBackend::Embedded(dir.path().join("data"));
    let db = Db::create(&url).await;
    let before = db.put("before", None).await;

    let p = Platform::start_config(config(store.clone())).await;
    p.action("echo", "nodejs:20", ECHO, json!({})).await;
    watch(&p, "docs", &db).await;
    let a1 = db.put("a", None).await;
    let b1 = db.put("b", None).await;
    let a2 = db.put("a", Some(&a1)).await;
    let b2 = db.delete_doc("b", &b1).await;

    let got = exactly(&p, "echo", 4).await;
    assert_eq!(
        changes_in(&got),
        set(&[("a", &a1), ("b", &b1), ("a", &a2), ("b", &b2)]),
        "only the changes after CREATE fire: {before}"
    );
    let deletion = got
        .iter()
        .find(|a| a["response"]["result"]["changes"][0]["rev"] == json!(b2))
        .unwrap();
    assert_eq!(deletion["response"]["result"]["deleted"], true);
    let update = &got
        .iter()
        .find(|a| a["response"]["result"]["changes"][0]["rev"] == json!(a2))
        .unwrap()["response"]["result"];
    assert_eq!(update["id"], "a");
    assert!(update.get("deleted").is_none(), "{update}");
    // The trigger's own activations record the same fires.
    assert_eq!(p.activations_of("docs").await.len(), 4);

    // READ: the parameters and the status.
    let r = p.feed_event("docs", CHANGES, "READ", json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["config"]["dbname"], json!(db.name));
    assert_eq!(r.body["config"]["trigger"], "/guest/docs");
    assert_eq!(r.body["status"]["active"], true);

    // A change while the platform is down fires after the restart; none fires again.
    p.platform.shutdown().await;
    let c1 = db.put("c", None).await;
    let p = Platform::start_config(config(store)).await;
    let d1 = db.put("d", None).await;
    let got = exactly(&p, "echo", 6).await;
    assert_eq!(
        changes_in(&got),
        set(&[
            ("a", &a1),
            ("b", &b1),
            ("a", &a2),
            ("b", &b2),
            ("c", &c1),
            ("d", &d1)
        ])
    );

    // DELETE: no more fires; READ finds nothing.
    let r = p.feed_event("docs", CHANGES, "DELETE", json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = p.feed_event("docs", CHANGES, "READ", json!({})).await;
    assert_ne!(r.status, StatusCode::OK, "{}", r.text);
    db.put("e", None).await;
    exactly(&p, "echo", 6).await;
    p.platform.shutdown().await;
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_or_unreachable_database_is_refused_on_create() {
    let Some(url) = couchdb_url() else { return };
    let p = Platform::start_config(config(StoreBackend::Memory)).await;
    let host = url
        .trim_end_matches('/')
        .trim_start_matches("http://")
        .to_string();
    let r = p
        .feed_trigger(
            "nodb",
            CHANGES,
            json!({"dbname": "whisk_no_such_db", "host": host}),
        )
        .await;
    assert_ne!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        r.body["error"],
        format!("Database 'whisk_no_such_db' does not exist on http://{host}.")
    );
    let t = p.get("/api/v1/namespaces/_/triggers/nodb").await;
    assert_eq!(
        t.status,
        StatusCode::NOT_FOUND,
        "the trigger is deleted again"
    );

    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let r = p
        .feed_trigger(
            "down",
            CHANGES,
            json!({"dbname": "x", "url": format!("http://127.0.0.1:{port}")}),
        )
        .await;
    assert_ne!(r.status, StatusCode::OK, "{}", r.text);
    let e = r.body["error"].as_str().unwrap_or_default();
    assert!(
        e.starts_with(&format!(
            "Cannot read the database 'x': CouchDB at http://127.0.0.1:{port} is unreachable"
        )),
        "{e}"
    );

    // Parameters are checked first.
    let r = p
        .feed_trigger("nohost", CHANGES, json!({"dbname": "x"}))
        .await;
    assert_eq!(
        r.body["error"],
        "The parameter 'host' (host[:port]) or 'url' is required."
    );
    p.platform.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_database_stops_its_feed_and_the_others_keep_running() {
    let Some(url) = couchdb_url() else { return };
    let p = Platform::start_config(config(StoreBackend::Memory)).await;
    p.action("echo", "nodejs:20", ECHO, json!({})).await;
    let doomed = Db::create(&url).await;
    let kept = Db::create(&url).await;
    watch(&p, "doomed", &doomed).await;
    watch(&p, "kept", &kept).await;
    doomed.put("x", None).await;
    kept.put("y", None).await;
    exactly(&p, "echo", 2).await;

    doomed.drop_db().await;
    // The failure is recorded as an activation of the trigger.
    let deadline = tokio::time::Instant::now() + WAIT;
    let failure = loop {
        let list = p.activations_of("doomed").await;
        if let Some(a) = list
            .iter()
            .find(|a| a["response"]["result"]["error"].is_string())
        {
            break a.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no failure recorded: {list:#?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let message = format!(
        "The database '{}' no longer exists on {}.",
        doomed.name,
        url.trim_end_matches('/')
    );
    assert_eq!(
        failure["response"]["result"]["error"],
        format!("The feed {CHANGES} stopped: {message}")
    );
    assert_eq!(failure["response"]["success"], false);
    let r = p.feed_event("doomed", CHANGES, "READ", json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["status"]["active"], false);
    assert_eq!(r.body["status"]["reason"], json!(message));

    // The other feed keeps firing.
    let z = kept.put("z", None).await;
    let got = exactly(&p, "echo", 3).await;
    assert!(changes_in(&got).contains(&("z".to_string(), z)));
    p.platform.shutdown().await;
    kept.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filter_with_query_params_selects_the_changes_that_fire() {
    let Some(url) = couchdb_url() else { return };
    let p = Platform::start_config(config(StoreBackend::Memory)).await;
    p.action("echo", "nodejs:20", ECHO, json!({})).await;
    let db = Db::create(&url).await;
    let filters = json!({"filters": {
        "by_value": "function(doc, req) { return doc.value === req.query.wanted; }"
    }});
    let (status, r) = db.send(Method::PUT, "/_design/f", Some(filters)).await;
    assert_eq!(status, StatusCode::CREATED, "{r}");

    // A filter that does not exist is refused (without asking `_changes` for it).
    let r = p
        .feed_trigger(
            "nofilter",
            CHANGES,
            json!({"dbname": db.name, "url": url, "filter": "f/missing"}),
        )
        .await;
    assert_eq!(
        r.body["error"],
        format!(
            "The filter 'f/missing' does not exist in the database '{}' on {}.",
            db.name,
            url.trim_end_matches('/')
        )
    );

    let r = p
        .feed_trigger(
            "picked",
            CHANGES,
            json!({"dbname": db.name, "url": url, "filter": "f/by_value",
                   "query_params": {"wanted": "yes"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "feed CREATE: {}", r.text);
    p.rule("picked-rule", "picked", "echo").await;
    let (status, r) = db
        .send(Method::PUT, "/one", Some(json!({"value": "yes"})))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{r}");
    db.put("two", None).await;
    let got = exactly(&p, "echo", 1).await;
    assert_eq!(got[0]["response"]["result"]["id"], "one");
    p.platform.shutdown().await;
    db.drop_db().await;
}
