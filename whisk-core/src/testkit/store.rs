//! The Store conformance suite.

use super::unique;
use crate::entity::identity::{AuthKey, SubjectDoc};
use crate::store::{Collection, Query, Store, StoreError, StoreExt};
use serde_json::{json, Value};
use std::sync::Arc;

fn entity(ns: &str, name: &str, kind: &str, updated: u64) -> Value {
    json!({"namespace": ns, "name": name, "entityType": kind, "updated": updated})
}

/// Create, then read back the same body and revision.
pub async fn create_then_get(s: Arc<impl Store>) {
    let ns = unique("ns");
    let id = format!("{ns}/a");
    let body = entity(&ns, "a", "action", 1);
    let rev = s
        .put(Collection::Whisks, &id, body.clone(), None)
        .await
        .unwrap();
    let doc = s.get(Collection::Whisks, &id).await.unwrap();
    assert_eq!(
        (doc.id.as_str(), doc.rev.as_str(), &doc.body),
        (id.as_str(), rev.as_str(), &body)
    );
    assert_eq!(
        s.get(Collection::Whisks, &format!("{ns}/zz"))
            .await
            .unwrap_err(),
        StoreError::NotFound
    );
    assert_eq!(
        s.get(Collection::Activations, &id).await.unwrap_err(),
        StoreError::NotFound,
        "collections are separate"
    );
}

/// A second create of the same id fails with `AlreadyExists`.
pub async fn create_twice_conflicts(s: Arc<impl Store>) {
    let id = format!("{}/a", unique("ns"));
    s.put(Collection::Whisks, &id, json!({"v":1}), None)
        .await
        .unwrap();
    let err = s
        .put(Collection::Whisks, &id, json!({"v":2}), None)
        .await
        .unwrap_err();
    assert_eq!(err, StoreError::AlreadyExists);
    assert_eq!(
        s.get(Collection::Whisks, &id).await.unwrap().body,
        json!({"v":1})
    );
}

/// Updates need the current revision; each update yields a new one.
pub async fn update_needs_current_revision(s: Arc<impl Store>) {
    let id = format!("{}/a", unique("ns"));
    let r1 = s
        .put(Collection::Whisks, &id, json!({"v":1}), None)
        .await
        .unwrap();
    let r2 = s
        .put(Collection::Whisks, &id, json!({"v":2}), Some(&r1))
        .await
        .unwrap();
    assert_ne!(r1, r2);
    let err = s
        .put(Collection::Whisks, &id, json!({"v":3}), Some(&r1))
        .await
        .unwrap_err();
    assert_eq!(err, StoreError::Conflict);
    assert_eq!(
        s.get(Collection::Whisks, &id).await.unwrap().body,
        json!({"v":2})
    );
}

/// Updating a missing document is `NotFound`.
pub async fn update_of_missing_is_not_found(s: Arc<impl Store>) {
    let id = format!("{}/a", unique("ns"));
    let err = s
        .put(Collection::Whisks, &id, json!({}), Some("1-abc"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::NotFound | StoreError::Conflict),
        "{err:?}"
    );
}

/// Deletes need the current revision; a deleted document is gone.
pub async fn delete_needs_current_revision(s: Arc<impl Store>) {
    let id = format!("{}/a", unique("ns"));
    let r1 = s
        .put(Collection::Whisks, &id, json!({"v":1}), None)
        .await
        .unwrap();
    let r2 = s
        .put(Collection::Whisks, &id, json!({"v":2}), Some(&r1))
        .await
        .unwrap();
    assert_eq!(
        s.delete(Collection::Whisks, &id, &r1).await.unwrap_err(),
        StoreError::Conflict
    );
    s.delete(Collection::Whisks, &id, &r2).await.unwrap();
    assert_eq!(
        s.get(Collection::Whisks, &id).await.unwrap_err(),
        StoreError::NotFound
    );
    assert_eq!(
        s.delete(Collection::Whisks, &id, &r2).await.unwrap_err(),
        StoreError::NotFound
    );
    s.put(Collection::Whisks, &id, json!({"v":3}), None)
        .await
        .expect("re-create after delete");
}

/// Listing is newest first by `updated`, honours skip/limit, and counts ignore them.
pub async fn list_newest_first_with_skip_limit_count(s: Arc<impl Store>) {
    let ns = unique("ns");
    for i in 0..5u64 {
        let name = format!("a{i}");
        s.put(
            Collection::Whisks,
            &format!("{ns}/{name}"),
            entity(&ns, &name, "action", 100 + i),
            None,
        )
        .await
        .unwrap();
    }
    let mut q = Query {
        collection: Some(Collection::Whisks),
        namespace: ns.clone(),
        entity_type: Some("action".into()),
        ..Default::default()
    };
    let names = |docs: Vec<Value>| {
        docs.iter()
            .map(|d| d["name"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names(s.query(&q).await.unwrap()),
        ["a4", "a3", "a2", "a1", "a0"]
    );
    q.skip = 1;
    q.limit = 2;
    assert_eq!(names(s.query(&q).await.unwrap()), ["a3", "a2"]);
    assert_eq!(s.count(&q).await.unwrap(), 5);
}

/// Listing a namespace includes its packages' entities, not other namespaces', and filters by type.
pub async fn list_by_namespace_and_type(s: Arc<impl Store>) {
    let ns = unique("ns");
    let other = format!("{ns}x");
    let docs = [
        (format!("{ns}/a"), entity(&ns, "a", "action", 1)),
        (
            format!("{ns}/pkg/b"),
            entity(&format!("{ns}/pkg"), "b", "action", 2),
        ),
        (format!("{ns}/t"), entity(&ns, "t", "trigger", 3)),
        (format!("{other}/c"), entity(&other, "c", "action", 4)),
    ];
    for (id, body) in docs {
        s.put(Collection::Whisks, &id, body, None).await.unwrap();
    }
    let q = Query {
        collection: Some(Collection::Whisks),
        namespace: ns.clone(),
        entity_type: Some("action".into()),
        ..Default::default()
    };
    let got: Vec<Value> = s
        .query(&q)
        .await
        .unwrap()
        .iter()
        .map(|d| d["name"].clone())
        .collect();
    assert_eq!(got, [json!("b"), json!("a")]);
    assert_eq!(s.count(&q).await.unwrap(), 2);
}

/// Activations list by `start` with `since`/`upto` bounds and the `name` filter.
pub async fn activations_filter_by_time_and_name(s: Arc<impl Store>) {
    let ns = unique("ns");
    for (i, (name, path)) in [
        ("a", "a"),
        ("b", "b"),
        ("a", "pkg/a"),
        ("a", "a"),
        ("a", "pkg/a"),
    ]
    .iter()
    .enumerate()
    {
        let mut annotations = vec![json!({"key": "path", "value": format!("{ns}/{path}")})];
        if i == 4 {
            // Through a binding `ns/mine` of package `pkg`: filtered as `mine/a`.
            annotations.push(json!({"key": "binding", "value": format!("{ns}/mine")}));
        }
        let body = json!({
            "namespace": ns, "name": name, "start": 1000 + i as u64 * 10, "entityType": "activation",
            "activationId": format!("{i:032}"), "annotations": annotations,
        });
        s.put(
            Collection::Activations,
            &format!("{ns}/{i:032}"),
            body,
            None,
        )
        .await
        .unwrap();
    }
    let base = Query {
        collection: Some(Collection::Activations),
        namespace: ns.clone(),
        ..Default::default()
    };
    let starts = |docs: Vec<Value>| {
        docs.iter()
            .map(|d| d["start"].as_u64().unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        starts(s.query(&base).await.unwrap()),
        [1040, 1030, 1020, 1010, 1000]
    );
    let q = Query {
        since: Some(1010),
        upto: Some(1020),
        ..base.clone()
    };
    assert_eq!(starts(s.query(&q).await.unwrap()), [1020, 1010]);
    let q = Query {
        name: Some("a".into()),
        ..base.clone()
    };
    assert_eq!(starts(s.query(&q).await.unwrap()), [1030, 1000]);
    let q = Query {
        name: Some("pkg/a".into()),
        ..base.clone()
    };
    assert_eq!(s.count(&q).await.unwrap(), 1);
    let q = Query {
        name: Some("mine/a".into()),
        ..base.clone()
    };
    assert_eq!(starts(s.query(&q).await.unwrap()), [1040]);
    let q = Query {
        namespace: format!("{ns}/pkg"),
        ..base
    };
    assert_eq!(
        s.count(&q).await.unwrap(),
        0,
        "activation namespaces match exactly"
    );
}

/// Identities are found by `uuid:key` and not by a wrong key.
pub async fn identity_lookup_by_key(s: Arc<impl Store>) {
    let subject = unique("user");
    let key = AuthKey::generate();
    s.put_subject(&SubjectDoc::single(&subject, &key))
        .await
        .unwrap();
    let id = s
        .identity(&key.uuid, &key.key)
        .await
        .unwrap()
        .expect("identity found");
    assert_eq!(id.namespace.name, subject);
    assert_eq!(id.api_key(), key.compact());
    assert!(s.identity(&key.uuid, "wrong").await.unwrap().is_none());
    assert!(s.identity("nobody", &key.key).await.unwrap().is_none());
    let owner = s
        .namespace_identity(&subject)
        .await
        .unwrap()
        .expect("namespace owner found");
    assert_eq!(owner.namespace.uuid, key.uuid);
    // A store that keeps only hashes of keys cannot give the owner's key back.
    assert!(
        owner.api_key() == key.compact() || owner.api_key().is_empty(),
        "the owner's key, or none"
    );
    assert!(s
        .identity(&key.uuid, &key.key[..63])
        .await
        .unwrap()
        .is_none());
    assert!(s.identity(&key.uuid, "").await.unwrap().is_none());
    assert!(s
        .namespace_identity(&unique("nobody"))
        .await
        .unwrap()
        .is_none());
    // A namespace limits document shows in the identity.
    s.put_namespace_limits(&subject, json!({"invocationsPerMinute": 7}))
        .await
        .unwrap();
    let limited = s.identity(&key.uuid, &key.key).await.unwrap().unwrap();
    assert_eq!(limited.limits["invocationsPerMinute"], 7);
    // Replacing the subject's key revokes the old one.
    let new_key = AuthKey::generate();
    s.put_subject(&SubjectDoc::single(&subject, &new_key))
        .await
        .unwrap();
    assert!(s.identity(&key.uuid, &key.key).await.unwrap().is_none());
    assert!(s
        .identity(&new_key.uuid, &new_key.key)
        .await
        .unwrap()
        .is_some());
}

/// The namespaces with activations are listed once each.
pub async fn activation_namespaces_are_distinct(s: Arc<impl Store>) {
    let (a, b) = (unique("ns"), unique("ns"));
    for (i, ns) in [&a, &a, &b].iter().enumerate() {
        let body = json!({"namespace": ns, "name": "x", "start": 1 + i as u64, "entityType": "activation"});
        s.put(
            Collection::Activations,
            &format!("{ns}/{i:032}"),
            body,
            None,
        )
        .await
        .unwrap();
    }
    let names = s.activation_namespaces().await.unwrap();
    for ns in [&a, &b] {
        assert_eq!(
            names.iter().filter(|n| n == &ns).count(),
            1,
            "{ns} in {names:?}"
        );
    }
}

/// An action document in OpenWhisk's shape.
fn action_doc(ns: &str, name: &str, code: &str, binary: bool, updated: u64) -> Value {
    json!({
        "namespace": ns, "name": name, "entityType": "action", "updated": updated,
        "version": "0.0.1", "publish": false, "annotations": [], "parameters": [],
        "limits": {"timeout": 60000, "memory": 256, "logs": 10, "concurrency": 1},
        "exec": {"kind": "nodejs:20", "code": code, "binary": binary},
    })
}

/// Action code of any size (small, above a 16 KB inline limit, binary) reads back exactly,
/// through `get` and through listings, also after an update.
pub async fn action_code_of_any_size_round_trips(s: Arc<impl Store>) {
    let ns = unique("ns");
    let big: String = (0..40_000)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let zip = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        (0..30_000u32)
            .map(|i| (i * 7 % 251) as u8)
            .collect::<Vec<_>>(),
    );
    let cases = [
        ("small", "function main() { return {}; }".to_string(), false),
        (
            "big",
            format!("// {big}\nfunction main() {{ return {{}}; }}"),
            false,
        ),
        ("zip", zip, true),
    ];
    for (i, (name, code, binary)) in cases.iter().enumerate() {
        let id = format!("{ns}/{name}");
        let body = action_doc(&ns, name, code, *binary, 10 + i as u64);
        let rev = s
            .put(Collection::Whisks, &id, body.clone(), None)
            .await
            .unwrap();
        assert_eq!(
            s.get(Collection::Whisks, &id).await.unwrap().body,
            body,
            "{name}"
        );
        let updated = action_doc(&ns, name, &format!("{code}\n"), *binary, 20 + i as u64);
        let updated = if *binary { body.clone() } else { updated };
        s.put(Collection::Whisks, &id, updated.clone(), Some(&rev))
            .await
            .unwrap();
        assert_eq!(
            s.get(Collection::Whisks, &id).await.unwrap().body,
            updated,
            "{name} updated"
        );
    }
    let listed = s
        .query(&Query {
            collection: Some(Collection::Whisks),
            namespace: ns.clone(),
            entity_type: Some("action".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(listed.len(), 3);
    for doc in listed {
        let name = doc["name"].as_str().unwrap();
        let stored = s
            .get(Collection::Whisks, &format!("{ns}/{name}"))
            .await
            .unwrap();
        assert_eq!(
            doc, stored.body,
            "listing returns the whole document of {name}"
        );
    }
}

/// Ids with the characters entity names allow (space, `@`, `.`, `-`) and package paths work
/// for every operation.
pub async fn ids_with_name_characters(s: Arc<impl Store>) {
    let ns = unique("ns");
    let id = format!("{ns}/my pkg/a b@c.d-e");
    let r1 = s
        .put(
            Collection::Whisks,
            &id,
            entity(&format!("{ns}/my pkg"), "a b@c.d-e", "action", 1),
            None,
        )
        .await
        .unwrap();
    assert_eq!(s.get(Collection::Whisks, &id).await.unwrap().rev, r1);
    let q = Query {
        collection: Some(Collection::Whisks),
        namespace: format!("{ns}/my pkg"),
        entity_type: Some("action".into()),
        ..Default::default()
    };
    assert_eq!(s.count(&q).await.unwrap(), 1);
    s.delete(Collection::Whisks, &id, &r1).await.unwrap();
    assert_eq!(
        s.get(Collection::Whisks, &id).await.unwrap_err(),
        StoreError::NotFound
    );
}

/// Feed registrations (entity type `feed` in `whisk.system`) list by their type only, and
/// never show up among the namespace's actions.
pub async fn feed_registrations_list_by_type(s: Arc<impl Store>) {
    use crate::feeds::{Registration, REGISTRATION_TYPE, SYSTEM_NAMESPACE};
    let owner = unique("owner");
    for (i, trigger) in ["t1", "t2"].iter().enumerate() {
        let reg = Registration::new(
            &owner,
            trigger,
            "alarms/alarm",
            serde_json::Map::new(),
            json!({"cron": "* * * * *"}),
            10 + i as u64,
        );
        s.put(Collection::Whisks, &reg.doc_id(), reg.to_document(), None)
            .await
            .unwrap();
    }
    let action = unique("a");
    s.put(
        Collection::Whisks,
        &format!("{SYSTEM_NAMESPACE}/{action}"),
        entity(SYSTEM_NAMESPACE, &action, "action", 20),
        None,
    )
    .await
    .unwrap();
    let query = |t: &str| Query {
        collection: Some(Collection::Whisks),
        namespace: SYSTEM_NAMESPACE.into(),
        entity_type: Some(t.into()),
        ..Default::default()
    };
    let regs: Vec<Registration> = s
        .query(&query(REGISTRATION_TYPE))
        .await
        .unwrap()
        .into_iter()
        .map(|d| serde_json::from_value(d).expect("a registration"))
        .filter(|r: &Registration| r.owner == owner)
        .collect();
    let triggers: Vec<&str> = regs.iter().map(|r| r.trigger.as_str()).collect();
    assert_eq!(triggers, ["t2", "t1"], "newest first");
    assert_eq!(regs[0].config["cron"], "* * * * *");
    let actions = s.query(&query("action")).await.unwrap();
    assert!(actions.iter().any(|d| d["name"] == json!(action)));
    assert!(
        actions.iter().all(|d| d["entityType"] == "action"),
        "registrations listed as actions: {actions:?}"
    );
}
