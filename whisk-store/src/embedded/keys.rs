//! Subjects' keys at rest: the embedded store keeps a salted SHA-256 of each key secret
//! (`keyHash`, see [`whisk_core::entity::secret`]), never the secret itself. Every subject
//! written is hashed on its way in, and [`migrate`] hashes the subjects an earlier version
//! wrote in clear when the store opens.

use super::record::Record;
use redb::{ReadableTable, Table};
use serde::Deserialize;
use serde_json::Value;
use whisk_core::entity::identity::SubjectNamespace;
use whisk_core::store::{Collection, StoreError};

/// Replaces every clear key secret of subject document `body` with a salted hash, keeping
/// the entries' other fields; returns whether anything changed. Documents that are not
/// subjects (the `<namespace>/limits` documents) are left alone.
pub(crate) fn hash_keys(body: &mut Value) -> bool {
    let Some(namespaces) = body.get_mut("namespaces").and_then(Value::as_array_mut) else {
        return false;
    };
    let mut changed = false;
    for n in namespaces {
        let Ok(mut entry) = SubjectNamespace::deserialize(&*n) else {
            continue;
        };
        if !entry.hash_key() {
            continue;
        }
        if let (Value::Object(m), Some(hash)) = (n, entry.key_hash) {
            m.remove("key");
            m.insert("keyHash".into(), Value::String(hash));
            changed = true;
        }
    }
    changed
}

/// Hashes the clear keys of every subject in `docs` (the subjects' documents table), keeping
/// each document's revision and index key: the credentials are the same, only their stored
/// form changes. Returns how many documents were rewritten.
pub(crate) fn migrate(docs: &mut Table<&'static str, &'static [u8]>) -> Result<usize, StoreError> {
    let c = Collection::Subjects;
    let db_err = super::db_err;
    let mut rewrites = Vec::new();
    for item in docs.iter().map_err(db_err)? {
        let (k, v) = item.map_err(db_err)?;
        let id = k.value();
        let rec = Record::decode(c, id, v.value())?;
        let Ok(mut body) = serde_json::from_slice::<Value>(rec.body) else {
            continue;
        };
        if hash_keys(&mut body) {
            let bytes = serde_json::to_vec(&body)
                .map_err(|e| StoreError::Other(format!("cannot serialise {id}: {e}")))?;
            rewrites.push((
                id.to_string(),
                Record::encode(rec.index_key, rec.rev, &bytes),
            ));
        }
    }
    for (id, record) in &rewrites {
        docs.insert(id.as_str(), record.as_slice())
            .map_err(db_err)?;
    }
    Ok(rewrites.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use whisk_core::entity::identity::{AuthKey, SubjectDoc};

    #[test]
    fn hashes_clear_keys_and_keeps_everything_else() {
        let key = AuthKey::generate();
        let mut body = json!({
            "subject": "alice",
            "note": "kept",
            "namespaces": [
                {"name": "alice", "uuid": key.uuid, "key": key.key, "extra": 1},
                {"name": "other", "uuid": "u2", "keyHash": "sha256:x:y"},
            ],
        });
        assert!(hash_keys(&mut body));
        let text = body.to_string();
        assert!(!text.contains(&key.key), "{text}");
        assert_eq!(body["note"], "kept");
        assert_eq!(body["namespaces"][0]["extra"], 1);
        assert_eq!(body["namespaces"][1]["keyHash"], "sha256:x:y");
        let doc: SubjectDoc = serde_json::from_value(body.clone()).unwrap();
        assert!(doc.identity_for(&key.uuid, &key.key).is_some());
        assert!(doc.identity_for(&key.uuid, &"x".repeat(64)).is_none());
        // Hashed already: nothing to do.
        assert!(!hash_keys(&mut body));
        // Not a subject (a limits document).
        assert!(!hash_keys(&mut json!({"invocationsPerMinute": 3})));
    }
}
