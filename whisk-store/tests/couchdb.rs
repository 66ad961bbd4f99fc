//! CouchDB store tests against a real CouchDB API server (CI: pouchdb-server).
//!
//! The server URL comes from `WHISK_TEST_COUCHDB_URL`. Without it the tests are skipped, except
//! under CI (`CI` set), where they fail. Every test uses its own database prefix.
#![cfg(feature = "couchdb")]

use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use base64::Engine;
use serde_json::{json, Value};
use std::time::Duration;
use whisk_core::entity::identity::{AuthKey, SubjectDoc};
use whisk_core::store::{Collection, Query, Store, StoreError};
use whisk_store::{CouchConfig, CouchStore};

/// The test server URL, or `None` (after saying so) when tests should be skipped.
fn server_url() -> Option<String> {
    match std::env::var("WHISK_TEST_COUCHDB_URL") {
        Ok(url) if !url.trim().is_empty() => Some(url.trim().trim_end_matches('/').to_string()),
        _ if std::env::var_os("CI").is_some() => {
            panic!("WHISK_TEST_COUCHDB_URL is not set: CI must start a CouchDB API server (pouchdb-server) and export its URL")
        }
        _ => {
            eprintln!("SKIPPED: set WHISK_TEST_COUCHDB_URL (e.g. http://127.0.0.1:5984) to run the CouchDB store tests");
            None
        }
    }
}

/// A config with a fresh database prefix.
fn config(url: String) -> CouchConfig {
    CouchConfig {
        url,
        db_prefix: format!(
            "whisk_test_{}_",
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        ),
        ..Default::default()
    }
}

/// A store on fresh databases, or `None` when the tests are skipped.
async fn store() -> Option<CouchStore> {
    Some(store_with_config().await?.0)
}

async fn store_with_config() -> Option<(CouchStore, CouchConfig)> {
    let cfg = config(server_url()?);
    let store = CouchStore::connect(cfg.clone())
        .await
        .expect("connect to the test CouchDB");
    Some((store, cfg))
}

whisk_core::store_conformance_tests!(match store().await {
    Some(s) => s,
    None => return,
});

/// Plain HTTP access to the test server, to see and write raw documents.
struct Raw {
    http: reqwest::Client,
    base: String,
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

impl Raw {
    fn new(cfg: &CouchConfig) -> Self {
        Self {
            http: reqwest::Client::new(),
            base: cfg.url.clone(),
        }
    }

    fn url(&self, db: &str, id: &str) -> String {
        match id.strip_prefix("_design/") {
            Some(d) => format!("{}/{db}/_design/{}", self.base, enc(d)),
            None => format!("{}/{db}/{}", self.base, enc(id)),
        }
    }

    async fn get(&self, db: &str, id: &str) -> (u16, Value) {
        let r = self.http.get(self.url(db, id)).send().await.unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    async fn put(&self, db: &str, id: &str, body: &Value) -> String {
        let r = self
            .http
            .put(self.url(db, id))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        let status = r.status();
        let v: Value = r.json().await.unwrap();
        assert!(status.is_success(), "PUT {id}: {status} {v}");
        v["rev"].as_str().unwrap().to_string()
    }

    async fn put_attachment(
        &self,
        db: &str,
        id: &str,
        rev: &str,
        name: &str,
        ctype: &str,
        bytes: Vec<u8>,
    ) {
        let r = self
            .http
            .put(format!("{}/{}?rev={rev}", self.url(db, id), enc(name)))
            .header("content-type", ctype)
            .body(bytes)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "attachment PUT: {}", r.status());
    }
}

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}{}",
        &uuid::Uuid::new_v4().simple().to_string()[..10]
    )
}

fn action(ns: &str, name: &str, code: &str, binary: bool, updated: u64) -> Value {
    json!({
        "namespace": ns, "name": name, "entityType": "action", "updated": updated,
        "version": "0.0.1", "publish": false, "annotations": [], "parameters": [],
        "limits": {"timeout": 60000, "memory": 256, "logs": 10, "concurrency": 1},
        "exec": {"kind": "nodejs:20", "code": code, "binary": binary},
    })
}

fn actions_of(ns: &str) -> Query {
    Query {
        collection: Some(Collection::Whisks),
        namespace: ns.to_string(),
        entity_type: Some("action".into()),
        ..Default::default()
    }
}

#[tokio::test]
async fn layout_matches_openwhisk() {
    let Some((s, cfg)) = store_with_config().await else {
        return;
    };
    let raw = Raw::new(&cfg);
    let whisks = s.db(Collection::Whisks);
    assert_eq!(whisks, format!("{}whisks", cfg.db_prefix));
    // Design documents.
    let (st, ddoc) = raw.get(&whisks, "_design/whisks.v2.1.0").await;
    assert_eq!(st, 200);
    for view in [
        "actions",
        "triggers",
        "rules",
        "packages",
        "packages-public",
    ] {
        assert_eq!(ddoc["views"][view]["reduce"], "_count", "{view}");
    }
    let acts = s.db(Collection::Activations);
    for d in ["_design/whisks.v2.1.0", "_design/whisks-filters.v2.1.1"] {
        let (st, ddoc) = raw.get(&acts, d).await;
        assert_eq!(st, 200, "{d}");
        assert!(ddoc["views"]["activations"]["map"].is_string(), "{d}");
    }
    let (st, ddoc) = raw
        .get(&s.db(Collection::Subjects), "_design/subjects.v2.0.0")
        .await;
    assert_eq!(st, 200);
    assert!(ddoc["views"]["identities"]["map"].is_string());

    // Small code: inlined `mem:` record; big code: a real attachment.
    let ns = unique("ns");
    let small = "function main() { return {}; }";
    s.put(
        Collection::Whisks,
        &format!("{ns}/small"),
        action(&ns, "small", small, false, 1),
        None,
    )
    .await
    .unwrap();
    let (st, doc) = raw.get(&whisks, &format!("{ns}/small")).await;
    assert_eq!(st, 200);
    assert_eq!(doc["_id"], format!("{ns}/small"));
    assert!(doc["_rev"].as_str().unwrap().starts_with("1-"));
    assert!(doc.get("_attachments").is_none());
    assert_eq!(
        doc["exec"]["code"],
        json!({
            "attachmentName": format!("mem:{}", URL_SAFE.encode(small)),
            "attachmentType": "text/plain; charset=UTF-8",
            "length": small.len(),
            "digest": doc["exec"]["code"]["digest"],
        })
    );
    assert!(doc["exec"]["code"]["digest"]
        .as_str()
        .unwrap()
        .starts_with("sha256-"));

    let big = "x".repeat(20_000);
    s.put(
        Collection::Whisks,
        &format!("{ns}/big"),
        action(&ns, "big", &big, false, 2),
        None,
    )
    .await
    .unwrap();
    let (_, doc) = raw.get(&whisks, &format!("{ns}/big")).await;
    let name = doc["exec"]["code"]["attachmentName"].as_str().unwrap();
    let uuid = name.strip_prefix("couch:").expect("couch: attachment");
    assert_eq!(doc["_attachments"][uuid]["length"], 20_000);
    assert!(doc["_attachments"][uuid]["content_type"]
        .as_str()
        .unwrap()
        .starts_with("text/plain"));

    // Binary code is stored as its bytes.
    let zip = STANDARD.encode((0..20_000u32).map(|i| (i % 251) as u8).collect::<Vec<_>>());
    s.put(
        Collection::Whisks,
        &format!("{ns}/zip"),
        action(&ns, "zip", &zip, true, 3),
        None,
    )
    .await
    .unwrap();
    let (_, doc) = raw.get(&whisks, &format!("{ns}/zip")).await;
    assert_eq!(
        doc["exec"]["code"]["attachmentType"],
        "application/octet-stream"
    );
    assert_eq!(doc["exec"]["code"]["length"], 20_000);

    // Updating small code drops the old attachment.
    let rev = s
        .get(Collection::Whisks, &format!("{ns}/big"))
        .await
        .unwrap()
        .rev;
    s.put(
        Collection::Whisks,
        &format!("{ns}/big"),
        action(&ns, "big", small, false, 4),
        Some(&rev),
    )
    .await
    .unwrap();
    let (_, doc) = raw.get(&whisks, &format!("{ns}/big")).await;
    assert!(doc.get("_attachments").is_none(), "{doc}");

    // Sequences (no code) are stored as given.
    let seq = json!({"namespace": ns, "name": "seq", "entityType": "action", "updated": 5,
        "exec": {"kind": "sequence", "components": [format!("/{ns}/small")]}});
    s.put(Collection::Whisks, &format!("{ns}/seq"), seq.clone(), None)
        .await
        .unwrap();
    let (_, doc) = raw.get(&whisks, &format!("{ns}/seq")).await;
    assert_eq!(doc["exec"], seq["exec"]);
}

#[tokio::test]
async fn reads_documents_openwhisk_wrote() {
    let Some((s, cfg)) = store_with_config().await else {
        return;
    };
    let raw = Raw::new(&cfg);
    let whisks = s.db(Collection::Whisks);
    let ns = unique("ns");
    let with_code = |name: &str, code: Value, binary: bool, updated: u64| {
        let mut doc = action(&ns, name, "", binary, updated);
        doc["exec"]["code"] = code;
        doc["_id"] = json!(format!("{ns}/{name}"));
        doc
    };
    // Inlined code, exactly as OpenWhisk writes it.
    let code = "function main(a) { return {hello: a.name}; }";
    let doc = with_code(
        "inline",
        json!({"attachmentName": format!("mem:{}", URL_SAFE.encode(code)),
               "attachmentType": "text/plain; charset=UTF-8", "length": code.len(),
               "digest": "sha256-ignored"}),
        false,
        1,
    );
    raw.put(&whisks, &format!("{ns}/inline"), &doc).await;
    // A real attachment: the document first, then the attachment (OpenWhisk's two steps).
    let big = format!("// {}\nfunction main() {{}}", "y".repeat(30_000));
    let att = uuid::Uuid::new_v4().to_string();
    let doc = with_code(
        "attached",
        json!({"attachmentName": format!("couch:{att}"), "attachmentType": "text/plain; charset=UTF-8"}),
        false,
        2,
    );
    let rev = raw.put(&whisks, &format!("{ns}/attached"), &doc).await;
    raw.put_attachment(
        &whisks,
        &format!("{ns}/attached"),
        &rev,
        &att,
        "text/plain; charset=UTF-8",
        big.clone().into_bytes(),
    )
    .await;
    // Binary code in an attachment (a zip action).
    let bytes: Vec<u8> = (0..40_000u32).map(|i| (i * 13 % 256) as u8).collect();
    let att2 = uuid::Uuid::new_v4().to_string();
    let doc = with_code(
        "zip",
        json!({"attachmentName": format!("couch:{att2}"), "attachmentType": "application/octet-stream"}),
        true,
        3,
    );
    let rev = raw.put(&whisks, &format!("{ns}/zip"), &doc).await;
    raw.put_attachment(
        &whisks,
        &format!("{ns}/zip"),
        &rev,
        &att2,
        "application/octet-stream",
        bytes.clone(),
    )
    .await;
    // Older layout: an attachment name without a scheme.
    let doc = with_code(
        "jar",
        json!({"attachmentName": "jarfile", "attachmentType": "application/octet-stream"}),
        true,
        4,
    );
    let rev = raw.put(&whisks, &format!("{ns}/jar"), &doc).await;
    raw.put_attachment(
        &whisks,
        &format!("{ns}/jar"),
        &rev,
        "jarfile",
        "application/octet-stream",
        vec![1, 2, 3],
    )
    .await;

    let get = |name: &str| {
        let id = format!("{ns}/{name}");
        let s = &s;
        async move { s.get(Collection::Whisks, &id).await }
    };
    let inline = get("inline").await.unwrap();
    assert_eq!(inline.body["exec"]["code"], code);
    assert!(inline.body.get("_id").is_none() && inline.body.get("_rev").is_none());
    assert_eq!(get("attached").await.unwrap().body["exec"]["code"], big);
    let zip = get("zip").await.unwrap().body;
    assert_eq!(zip["exec"]["code"], STANDARD.encode(&bytes));
    assert!(zip.get("_attachments").is_none());
    assert_eq!(
        get("jar").await.unwrap().body["exec"]["code"],
        STANDARD.encode([1u8, 2, 3])
    );

    let listed = s.query(&actions_of(&ns)).await.unwrap();
    let names: Vec<_> = listed.iter().map(|d| d["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["jar", "zip", "attached", "inline"]);
    assert_eq!(listed[2]["exec"]["code"], big);
    assert_eq!(listed[1]["exec"]["code"], STANDARD.encode(&bytes));

    // Subjects and limits as OpenWhisk's wskadmin writes them.
    let subjects = s.db(Collection::Subjects);
    let user = unique("user");
    let key = AuthKey::generate();
    raw.put(
        &subjects,
        &user,
        &json!({"_id": user, "subject": user,
        "namespaces": [{"name": format!("{user}_ns"), "uuid": key.uuid, "key": key.key}]}),
    )
    .await;
    raw.put(
        &subjects,
        &format!("{user}_ns/limits"),
        &json!({"invocationsPerMinute": 3}),
    )
    .await;
    let id = s
        .identity(&key.uuid, &key.key)
        .await
        .unwrap()
        .expect("identity");
    assert_eq!(id.subject, user);
    assert_eq!(id.namespace.name, format!("{user}_ns"));
    assert_eq!(id.limits, json!({"invocationsPerMinute": 3}));
    let owner = s
        .namespace_identity(&format!("{user}_ns"))
        .await
        .unwrap()
        .expect("owner");
    assert_eq!(owner.api_key(), key.compact());
    // Blocked subjects do not authenticate.
    let blocked = unique("user");
    let bkey = AuthKey::generate();
    let mut doc = serde_json::to_value(SubjectDoc::single(&blocked, &bkey)).unwrap();
    doc["blocked"] = json!(true);
    raw.put(&subjects, &blocked, &doc).await;
    assert!(s.identity(&bkey.uuid, &bkey.key).await.unwrap().is_none());
}

#[tokio::test]
async fn unreachable_server_is_unavailable() {
    // No server needed: nothing listens on port 1.
    let err = CouchStore::connect(CouchConfig {
        url: "http://admin:hunter2@127.0.0.1:1".into(),
        attempts: 2,
        initial_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(2),
        request_timeout: Duration::from_secs(5),
        ..Default::default()
    })
    .await
    .unwrap_err();
    let StoreError::Unavailable(msg) = &err else {
        panic!("expected Unavailable, got {err:?}")
    };
    assert!(
        msg.contains("CouchDB at http://127.0.0.1:1 is unreachable"),
        "{msg}"
    );
    assert!(!msg.contains("hunter2"), "password leaked: {msg}");
}

#[tokio::test]
async fn concurrent_updates_conflict() {
    let Some(s) = store().await else { return };
    let s = std::sync::Arc::new(s);
    let id = format!("{}/a", unique("ns"));
    let r1 = s
        .put(Collection::Whisks, &id, json!({"v": 0}), None)
        .await
        .unwrap();
    let writers: Vec<_> = (0..4)
        .map(|i| {
            let (s, id, r1) = (s.clone(), id.clone(), r1.clone());
            tokio::spawn(async move {
                s.put(Collection::Whisks, &id, json!({"v": i}), Some(&r1))
                    .await
            })
        })
        .collect();
    let mut won = 0;
    for w in writers {
        match w.await.unwrap() {
            Ok(_) => won += 1,
            Err(e) => assert_eq!(e, StoreError::Conflict),
        }
    }
    assert_eq!(won, 1, "exactly one writer wins");
    assert_eq!(
        s.delete(Collection::Whisks, &id, &r1).await.unwrap_err(),
        StoreError::Conflict
    );
    assert_eq!(
        s.put(Collection::Whisks, &id, json!({}), Some("garbage"))
            .await
            .unwrap_err(),
        StoreError::Conflict
    );
}

#[tokio::test]
async fn corrupt_attachment_fails_only_its_document() {
    let Some((s, cfg)) = store_with_config().await else {
        return;
    };
    let raw = Raw::new(&cfg);
    let whisks = s.db(Collection::Whisks);
    let ns = unique("ns");
    s.put(
        Collection::Whisks,
        &format!("{ns}/good"),
        action(&ns, "good", "ok", false, 1),
        None,
    )
    .await
    .unwrap();
    let mut missing = action(&ns, "missing", "", false, 2);
    missing["exec"]["code"] =
        json!({"attachmentName": "couch:nope", "attachmentType": "text/plain"});
    raw.put(&whisks, &format!("{ns}/missing"), &missing).await;
    let mut garbled = action(&ns, "garbled", "", false, 3);
    garbled["exec"]["code"] = json!({"attachmentName": "mem:***", "attachmentType": "text/plain"});
    raw.put(&whisks, &format!("{ns}/garbled"), &garbled).await;

    for name in ["missing", "garbled"] {
        let id = format!("{ns}/{name}");
        match s.get(Collection::Whisks, &id).await {
            Err(StoreError::Corrupt(msg)) => assert!(msg.starts_with(&id), "{msg}"),
            other => panic!("{name}: expected Corrupt, got {other:?}"),
        }
    }
    let listed = s.query(&actions_of(&ns)).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["exec"]["code"], "ok");
    // Foreign documents without attachments read as they are.
    raw.put(
        &whisks,
        &format!("{ns}/foreign"),
        &json!({"whatever": [1, 2]}),
    )
    .await;
    assert_eq!(
        s.get(Collection::Whisks, &format!("{ns}/foreign"))
            .await
            .unwrap()
            .body,
        json!({"whatever": [1, 2]})
    );
}

#[tokio::test]
async fn whisks_query_needs_entity_type() {
    let Some(s) = store().await else { return };
    let q = Query {
        entity_type: None,
        ..actions_of("guest")
    };
    assert!(matches!(s.query(&q).await, Err(StoreError::Other(_))));
    assert!(matches!(s.count(&q).await, Err(StoreError::Other(_))));
}

#[tokio::test]
async fn other_entity_views_and_reconnect() {
    let Some((s, cfg)) = store_with_config().await else {
        return;
    };
    let ns = unique("ns");
    let docs = [
        (
            "t",
            json!({"namespace": ns, "name": "t", "entityType": "trigger", "updated": 1, "parameters": []}),
        ),
        (
            "r",
            json!({"namespace": ns, "name": "r", "entityType": "rule", "updated": 2, "trigger": "/x/t"}),
        ),
        (
            "p",
            json!({"namespace": ns, "name": "p", "entityType": "package", "updated": 3, "binding": {}}),
        ),
        (
            "p/a",
            json!({"namespace": format!("{ns}/p"), "name": "a", "entityType": "action", "updated": 4,
                       "exec": {"kind": "nodejs:20", "code": "x"}}),
        ),
    ];
    for (name, body) in &docs {
        s.put(
            Collection::Whisks,
            &format!("{ns}/{name}"),
            body.clone(),
            None,
        )
        .await
        .unwrap();
    }
    for (t, n) in [
        ("trigger", "t"),
        ("rule", "r"),
        ("package", "p"),
        ("action", "a"),
    ] {
        let q = Query {
            entity_type: Some(t.into()),
            ..actions_of(&ns)
        };
        let got = s.query(&q).await.unwrap();
        assert_eq!(got.len(), 1, "{t}");
        assert_eq!(got[0]["name"], n);
    }
    // Connecting again keeps the design documents as they are.
    let raw = Raw::new(&cfg);
    let whisks = s.db(Collection::Whisks);
    let (_, before) = raw.get(&whisks, "_design/whisks.v2.1.0").await;
    // An outdated design document is replaced.
    let acts = s.db(Collection::Activations);
    let (_, mut old) = raw.get(&acts, "_design/whisks-filters.v2.1.1").await;
    old["views"] = json!({"activations": {"map": "function (doc) {}"}});
    raw.put(&acts, "_design/whisks-filters.v2.1.1", &old).await;
    let again = CouchStore::connect(cfg.clone()).await.unwrap();
    let (_, after) = raw.get(&whisks, "_design/whisks.v2.1.0").await;
    assert_eq!(before["_rev"], after["_rev"]);
    let (_, fixed) = raw.get(&acts, "_design/whisks-filters.v2.1.1").await;
    assert_ne!(fixed["views"], old["views"]);
    assert_eq!(again.count(&actions_of(&ns)).await.unwrap(), 1);
}
