//! The listing index: one table per collection whose keys sort a namespace's documents by
//! [`Query::sort_key`], so a listing is a reverse range scan of one key prefix.
//!
//! Key: `root \0 sort_key (u64 big-endian) tie_break \0 id`, where `root` is the first path
//! segment of the document's namespace (whisks, subjects: entities of `ns/pkg` list under
//! `ns`) or the whole namespace (activations), and `tie_break` is what [`Query::apply`] orders
//! equal sort keys by (`namespace/activationId-or-name`). Value: [`IndexEntry`] — the fields
//! [`Query::matches`] looks at apart from the activation `name` filter, so most listings and
//! every count are decided from the index without loading documents.

use serde_json::{Map, Value};
use std::ops::Bound;
use whisk_core::store::{tie_break, Collection, Query};

/// The separator between the parts of an index key.
const SEP: u8 = 0;

/// The root namespace a document (or a query) of `collection` is indexed under.
pub(crate) fn root(collection: Collection, namespace: &str) -> &str {
    match collection {
        Collection::Activations => namespace,
        _ => namespace.split('/').next().unwrap_or(""),
    }
}

/// A query over `collection` alone (for its sort field).
fn collection_query(collection: Collection) -> Query {
    Query {
        collection: Some(collection),
        ..Default::default()
    }
}

/// The index key and value of document `id` with body `doc`.
pub(crate) fn entry_for(collection: Collection, id: &str, doc: &Value) -> (Vec<u8>, Vec<u8>) {
    let namespace = doc.get("namespace").and_then(Value::as_str).unwrap_or("");
    let sort_key = collection_query(collection).sort_key(doc);
    let tie = tie_break(doc);
    let root = root(collection, namespace);
    let mut key = Vec::with_capacity(root.len() + tie.len() + id.len() + 10);
    key.extend_from_slice(root.as_bytes());
    key.push(SEP);
    key.extend_from_slice(&sort_key.to_be_bytes());
    key.extend_from_slice(tie.as_bytes());
    key.push(SEP);
    key.extend_from_slice(id.as_bytes());
    let entry = IndexEntry {
        namespace: doc.get("namespace").and_then(Value::as_str).map(Into::into),
        entity_type: doc
            .get("entityType")
            .and_then(Value::as_str)
            .map(Into::into),
        id: id.to_string(),
    };
    (key, entry.encode())
}

/// The sort key stored in index key `key` scanned under a prefix of `prefix_len` bytes.
pub(crate) fn sort_key_of(key: &[u8], prefix_len: usize) -> Option<u64> {
    key.get(prefix_len..prefix_len + 8)
        .map(|b| u64::from_be_bytes(b.try_into().expect("8 bytes")))
}

/// The root namespace of an index key (its bytes up to the first separator).
pub(crate) fn root_of(key: &[u8]) -> &[u8] {
    let end = key.iter().position(|b| *b == SEP).unwrap_or(key.len());
    &key[..end]
}

/// The first key after every key under root `root`.
pub(crate) fn after_root(root: &[u8]) -> Vec<u8> {
    let mut k = root.to_vec();
    k.push(SEP + 1);
    k
}

/// The key range a query scans, and the length of its `root \0` prefix.
pub(crate) fn query_range(q: &Query) -> (Bound<Vec<u8>>, Bound<Vec<u8>>, usize) {
    let root = root(q.collection(), &q.namespace);
    let mut prefix = root.as_bytes().to_vec();
    prefix.push(SEP);
    let prefix_len = prefix.len();
    let lower = {
        let mut k = prefix.clone();
        k.extend_from_slice(&q.since.unwrap_or(0).to_be_bytes());
        Bound::Included(k)
    };
    let upper = match q.upto.and_then(|u| u.checked_add(1)) {
        Some(next) => {
            let mut k = prefix;
            k.extend_from_slice(&next.to_be_bytes());
            Bound::Excluded(k)
        }
        None => Bound::Excluded(after_root(root.as_bytes())),
    };
    (lower, upper, prefix_len)
}

/// The index value: what [`Query::matches`] needs (apart from `name`) and the document id.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct IndexEntry {
    /// The document's `namespace` when it is a string.
    pub namespace: Option<String>,
    /// The document's `entityType` when it is a string.
    pub entity_type: Option<String>,
    /// The document id.
    pub id: String,
}

impl IndexEntry {
    /// `[ns flag][u32 len][ns][type flag][u32 len][type][id]`.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.id.len() + 32);
        for field in [&self.namespace, &self.entity_type] {
            match field {
                Some(s) => {
                    out.push(1);
                    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
                    out.extend_from_slice(s.as_bytes());
                }
                None => out.push(0),
            }
        }
        out.extend_from_slice(self.id.as_bytes());
        out
    }

    /// The inverse of [`IndexEntry::encode`]; `None` when the bytes are not one.
    pub fn decode(mut b: &[u8]) -> Option<Self> {
        let mut field = || -> Option<Option<String>> {
            let (flag, rest) = b.split_first()?;
            b = rest;
            if *flag == 0 {
                return Some(None);
            }
            let len = u32::from_le_bytes(b.get(..4)?.try_into().ok()?) as usize;
            let s = std::str::from_utf8(b.get(4..4 + len)?).ok()?.to_string();
            b = &b[4 + len..];
            Some(Some(s))
        };
        let namespace = field()?;
        let entity_type = field()?;
        let id = std::str::from_utf8(b).ok()?.to_string();
        Some(Self {
            namespace,
            entity_type,
            id,
        })
    }

    /// Whether a document with this entry and `sort_key` passes `q`'s filters other than
    /// `name` (decided by [`Query::matches`] itself over a stub of those fields).
    pub fn matches(&self, q: &Query, sort_key: u64) -> bool {
        let mut stub = Map::new();
        if let Some(ns) = &self.namespace {
            stub.insert("namespace".into(), Value::from(ns.as_str()));
        }
        if let Some(t) = &self.entity_type {
            stub.insert("entityType".into(), Value::from(t.as_str()));
        }
        stub.insert(q.sort_field().into(), Value::from(sort_key));
        let unnamed = Query {
            name: None,
            ..q.clone()
        };
        unnamed.matches(&Value::Object(stub))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn entry_round_trips() {
        for e in [
            IndexEntry {
                namespace: Some("guest/pkg".into()),
                entity_type: Some("action".into()),
                id: "guest/pkg/a".into(),
            },
            IndexEntry {
                namespace: None,
                entity_type: None,
                id: String::new(),
            },
        ] {
            assert_eq!(IndexEntry::decode(&e.encode()), Some(e));
        }
    }

    #[test]
    fn keys_sort_by_root_then_sort_key_then_tie_break() {
        let key = |id: &str, doc: Value| entry_for(Collection::Whisks, id, &doc).0;
        let a = key("g/a", json!({"namespace":"g","name":"a","updated":5}));
        let b = key("g/b", json!({"namespace":"g","name":"b","updated":5}));
        let c = key("g/p/c", json!({"namespace":"g/p","name":"c","updated":9}));
        let x = key("gx/a", json!({"namespace":"gx","name":"a","updated":1}));
        assert!(a < b && b < c && c < x);
        assert_eq!(root_of(&c), b"g");
        let q = Query {
            namespace: "g".into(),
            since: Some(6),
            ..Default::default()
        };
        let (lo, hi, plen) = query_range(&q);
        let inside = |k: &Vec<u8>| RangeBounds::<Vec<u8>>::contains(&(lo.clone(), hi.clone()), k);
        use std::ops::RangeBounds;
        assert!(!inside(&a) && inside(&c) && !inside(&x));
        assert_eq!(sort_key_of(&c, plen), Some(9));
    }
}
