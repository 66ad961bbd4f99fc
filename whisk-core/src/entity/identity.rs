//! Identities: subjects, namespaces and their `uuid:key` credentials.

use super::secret::{secrets_equal, KeyHash};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// OpenWhisk standalone's `guest` key (namespace `guest`).
pub const GUEST_KEY: &str =
    "23bc46b1-71f6-4ed5-8c54-816aa4f8c502:123zO3xZCLrMN6v2BKK1dXYFpXlPkccOFqm12CdAsMgRU4VrNZ9lyGVCGuMDGIwP";
/// OpenWhisk standalone's `whisk.system` key.
pub const SYSTEM_KEY: &str =
    "789c46b1-71f6-4ed5-8c54-816aa4f8c502:abczO3xZCLrMN6v2BKK1dXYFpXlPkccOFqm12CdAsMgRU4VrNZ9lyGVCGuMDGIwP";

/// A `uuid:key` credential.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct AuthKey {
    /// The namespace UUID (Basic auth user name).
    pub uuid: String,
    /// The 64-character secret (Basic auth password).
    pub key: String,
}

/// The secret in place of a key in `Debug` output, so keys never reach logs.
const REDACTED: &str = "<redacted>";

impl std::fmt::Debug for AuthKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthKey")
            .field("uuid", &self.uuid)
            .field("key", &REDACTED)
            .finish()
    }
}

impl AuthKey {
    /// Parses `uuid:key`.
    pub fn parse(s: &str) -> Option<Self> {
        let (uuid, key) = s.split_once(':')?;
        Some(Self {
            uuid: uuid.to_string(),
            key: key.to_string(),
        })
    }

    /// A fresh random key (UUID and 64-character secret).
    pub fn generate() -> Self {
        let secret = format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        Self {
            uuid: uuid::Uuid::new_v4().to_string(),
            key: secret,
        }
    }

    /// The `uuid:key` form.
    pub fn compact(&self) -> String {
        format!("{}:{}", self.uuid, self.key)
    }
}

/// A namespace of an identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Namespace {
    /// The namespace name.
    pub name: String,
    /// Its UUID.
    pub uuid: String,
}

/// The authenticated caller, as carried in activation messages. Its `Debug` output leaves the
/// key's secret out.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct Identity {
    /// The subject (user) name.
    pub subject: String,
    /// The namespace the key belongs to.
    pub namespace: Namespace,
    /// `{"api_key": "uuid:key"}`; `{}` when the key is not known (an identity found by
    /// namespace in a store that keeps only hashes of keys).
    pub authkey: Value,
    /// Granted rights.
    pub rights: Vec<String>,
    /// Per-namespace limit overrides (empty means system defaults).
    #[serde(default)]
    pub limits: Value,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("subject", &self.subject)
            .field("namespace", &self.namespace)
            .field("authkey", &REDACTED)
            .field("rights", &self.rights)
            .field("limits", &self.limits)
            .finish()
    }
}

/// All rights, as OpenWhisk grants a namespace's own key.
const ALL_RIGHTS: [&str; 4] = ["READ", "PUT", "DELETE", "ACTIVATE"];

impl Identity {
    /// The identity of `namespace` owned by `subject` with `key`, with all rights.
    pub fn new(subject: &str, namespace: &str, key: &AuthKey) -> Self {
        let mut id = Self::without_key(subject, namespace, &key.uuid);
        id.authkey = json!({ "api_key": key.compact() });
        id
    }

    /// The identity of `namespace` (key UUID `uuid`) owned by `subject`, with all rights,
    /// when the key's secret is not known: its [`api_key`](Self::api_key) is empty.
    pub fn without_key(subject: &str, namespace: &str, uuid: &str) -> Self {
        Self {
            subject: subject.to_string(),
            namespace: Namespace {
                name: namespace.to_string(),
                uuid: uuid.to_string(),
            },
            authkey: json!({}),
            rights: ALL_RIGHTS.map(String::from).to_vec(),
            limits: json!({}),
        }
    }

    /// The `uuid:key` credential; empty when the key is not known.
    pub fn api_key(&self) -> &str {
        self.authkey
            .get("api_key")
            .and_then(Value::as_str)
            .unwrap_or("")
    }
}

/// A document of the `subjects` database: `{subject, namespaces:[{name, uuid, key}], blocked?}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubjectDoc {
    /// The subject name (also the document id).
    pub subject: String,
    /// Its namespaces with their keys.
    pub namespaces: Vec<SubjectNamespace>,
    /// Blocked subjects cannot authenticate.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub blocked: bool,
}

/// One namespace entry of a [`SubjectDoc`]: the key's secret in clear (`key`, OpenWhisk's
/// layout, which the memory and CouchDB stores keep), or only its salted hash (`keyHash`,
/// what the embedded store keeps; see [`secret`](super::secret)).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubjectNamespace {
    /// Namespace name.
    pub name: String,
    /// Key UUID.
    pub uuid: String,
    /// Key secret; empty when only its hash is kept.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub key: String,
    /// The salted hash of the key secret (`sha256:<salt>:<digest>`), when the secret itself
    /// is not kept.
    #[serde(rename = "keyHash", default, skip_serializing_if = "Option::is_none")]
    pub key_hash: Option<String>,
}

impl std::fmt::Debug for SubjectNamespace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SubjectNamespace")
            .field("name", &self.name)
            .field("uuid", &self.uuid)
            .field("key", &REDACTED)
            .field("hashed", &self.key_hash.is_some())
            .finish()
    }
}

impl SubjectNamespace {
    /// The entry of namespace `name` with `key` in clear.
    pub fn new(name: &str, key: &AuthKey) -> Self {
        Self {
            name: name.to_string(),
            uuid: key.uuid.clone(),
            key: key.key.clone(),
            key_hash: None,
        }
    }

    /// Whether `uuid:key` is this entry's credential. This is where every store but
    /// CouchDB (whose identities view matches keys itself) compares a presented key: against
    /// the hash when one is kept, else against the clear secret, in constant time either way.
    pub fn accepts(&self, uuid: &str, key: &str) -> bool {
        if self.uuid != uuid {
            return false;
        }
        match &self.key_hash {
            Some(stored) => KeyHash::parse(stored).is_some_and(|h| h.verify(key)),
            None => !self.key.is_empty() && secrets_equal(self.key.as_bytes(), key.as_bytes()),
        }
    }

    /// Replaces this entry's secret with a salted hash under a fresh salt (nothing to do when
    /// only a hash is kept already). Returns whether it changed.
    pub fn hash_key(&mut self) -> bool {
        if self.key.is_empty() {
            return false;
        }
        self.key_hash = Some(KeyHash::new(&self.key).to_string());
        self.key.clear();
        true
    }

    /// The key, when its secret is kept in clear.
    pub fn clear_key(&self) -> Option<AuthKey> {
        (!self.key.is_empty()).then(|| AuthKey {
            uuid: self.uuid.clone(),
            key: self.key.clone(),
        })
    }
}

impl SubjectDoc {
    /// A subject with one namespace of the same name.
    pub fn single(subject: &str, key: &AuthKey) -> Self {
        Self {
            subject: subject.to_string(),
            namespaces: vec![SubjectNamespace::new(subject, key)],
            blocked: false,
        }
    }

    /// The identity this subject grants for `uuid:key`, if any (see
    /// [`SubjectNamespace::accepts`]).
    pub fn identity_for(&self, uuid: &str, key: &str) -> Option<Identity> {
        if self.blocked {
            return None;
        }
        let n = self.namespaces.iter().find(|n| n.accepts(uuid, key))?;
        Some(Identity::new(
            &self.subject,
            &n.name,
            &AuthKey {
                uuid: uuid.to_string(),
                key: key.to_string(),
            },
        ))
    }

    /// The identity of namespace `namespace`, if this subject owns it; without its key when
    /// only the key's hash is kept.
    pub fn namespace_identity(&self, namespace: &str) -> Option<Identity> {
        if self.blocked {
            return None;
        }
        let n = self.namespaces.iter().find(|n| n.name == namespace)?;
        Some(match n.clear_key() {
            Some(key) => Identity::new(&self.subject, &n.name, &key),
            None => Identity::without_key(&self.subject, &n.name, &n.uuid),
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn debug_output_never_shows_a_secret() {
        let key = super::AuthKey::parse(super::GUEST_KEY).unwrap();
        let doc = super::SubjectDoc::single("guest", &key);
        for text in [format!("{key:?}"), format!("{doc:?}")] {
            assert!(!text.contains(&key.key), "{text}");
            assert!(text.contains(&key.uuid), "{text}");
        }
    }

    use super::*;

    #[test]
    fn identity_debug_leaves_the_key_out() {
        let key = AuthKey::parse(GUEST_KEY).unwrap();
        let text = format!("{:?}", Identity::new("guest", "guest", &key));
        assert!(!text.contains(&key.key), "{text}");
        assert!(text.contains("guest"), "{text}");
    }

    #[test]
    fn hashed_entries_authenticate_without_keeping_the_secret() {
        let key = AuthKey::generate();
        let mut doc = SubjectDoc::single("alice", &key);
        assert!(doc.namespaces[0].hash_key());
        assert!(!doc.namespaces[0].hash_key(), "hashed once");
        let stored = serde_json::to_string(&doc).unwrap();
        assert!(!stored.contains(&key.key), "{stored}");
        assert!(stored.contains("\"keyHash\":\"sha256:"), "{stored}");
        assert!(!stored.contains("\"key\":"), "{stored}");
        let doc: SubjectDoc = serde_json::from_str(&stored).unwrap();
        let id = doc.identity_for(&key.uuid, &key.key).unwrap();
        assert_eq!(id.api_key(), key.compact(), "the presented key");
        assert!(doc.identity_for(&key.uuid, &key.key[..63]).is_none());
        assert!(doc.identity_for(&key.uuid, "").is_none());
        assert!(doc.identity_for("other", &key.key).is_none());
        // By namespace: the owner without a key.
        let owner = doc.namespace_identity("alice").unwrap();
        assert_eq!(
            (owner.api_key(), owner.namespace.uuid.as_str()),
            ("", key.uuid.as_str())
        );
        assert!(doc.namespaces[0].clear_key().is_none());
        // A malformed hash admits no one; an empty clear key neither.
        let mut broken = doc.clone();
        broken.namespaces[0].key_hash = Some("sha256:nope".into());
        assert!(broken.identity_for(&key.uuid, &key.key).is_none());
        broken.namespaces[0].key_hash = None;
        assert!(broken.identity_for(&key.uuid, "").is_none());
    }

    #[test]
    fn guest_identity() {
        let key = AuthKey::parse(GUEST_KEY).unwrap();
        let doc = SubjectDoc::single("guest", &key);
        let id = doc.identity_for(&key.uuid, &key.key).unwrap();
        assert_eq!(id.namespace.name, "guest");
        assert_eq!(id.api_key(), GUEST_KEY);
        assert!(doc.identity_for(&key.uuid, "wrong").is_none());
        let generated = AuthKey::generate();
        assert_eq!(generated.key.len(), 64);
    }
}
