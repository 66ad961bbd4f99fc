//! Identities: subjects, namespaces and their `uuid:key` credentials.

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

/// The authenticated caller, as carried in activation messages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Identity {
    /// The subject (user) name.
    pub subject: String,
    /// The namespace the key belongs to.
    pub namespace: Namespace,
    /// `{"api_key": "uuid:key"}`.
    pub authkey: Value,
    /// Granted rights.
    pub rights: Vec<String>,
    /// Per-namespace limit overrides (empty means system defaults).
    #[serde(default)]
    pub limits: Value,
}

impl Identity {
    /// The identity of `namespace` owned by `subject` with `key`, with all rights.
    pub fn new(subject: &str, namespace: &str, key: &AuthKey) -> Self {
        Self {
            subject: subject.to_string(),
            namespace: Namespace {
                name: namespace.to_string(),
                uuid: key.uuid.clone(),
            },
            authkey: json!({ "api_key": key.compact() }),
            rights: ["READ", "PUT", "DELETE", "ACTIVATE"]
                .map(String::from)
                .to_vec(),
            limits: json!({}),
        }
    }

    /// The `uuid:key` credential.
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

/// One namespace entry of a [`SubjectDoc`].
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubjectNamespace {
    /// Namespace name.
    pub name: String,
    /// Key UUID.
    pub uuid: String,
    /// Key secret.
    pub key: String,
}

impl std::fmt::Debug for SubjectNamespace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SubjectNamespace")
            .field("name", &self.name)
            .field("uuid", &self.uuid)
            .field("key", &REDACTED)
            .finish()
    }
}

impl SubjectDoc {
    /// A subject with one namespace of the same name.
    pub fn single(subject: &str, key: &AuthKey) -> Self {
        Self {
            subject: subject.to_string(),
            namespaces: vec![SubjectNamespace {
                name: subject.to_string(),
                uuid: key.uuid.clone(),
                key: key.key.clone(),
            }],
            blocked: false,
        }
    }

    /// The identity this subject grants for `uuid:key`, if any.
    pub fn identity_for(&self, uuid: &str, key: &str) -> Option<Identity> {
        self.find(|n| n.uuid == uuid && n.key == key)
    }

    /// The identity of namespace `namespace`, if this subject owns it.
    pub fn namespace_identity(&self, namespace: &str) -> Option<Identity> {
        self.find(|n| n.name == namespace)
    }

    fn find(&self, pred: impl Fn(&SubjectNamespace) -> bool) -> Option<Identity> {
        if self.blocked {
            return None;
        }
        self.namespaces.iter().find(|n| pred(n)).map(|n| {
            Identity::new(
                &self.subject,
                &n.name,
                &AuthKey {
                    uuid: n.uuid.clone(),
                    key: n.key.clone(),
                },
            )
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
