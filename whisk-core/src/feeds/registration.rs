//! The stored form of one trigger's feed: a document in the `whisks` collection.

use super::SYSTEM_NAMESPACE;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The `entityType` of registration documents. Entity listings filter by type, so
/// registrations never show up among actions, triggers, rules or packages.
pub const REGISTRATION_TYPE: &str = "feed";

/// Whether a registration runs, and why not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistrationStatus {
    /// Whether the source is running for it.
    pub active: bool,
    /// Why it is inactive (paused, finished, the source's error).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When `active` last changed (ms since the epoch).
    #[serde(rename = "dateChanged")]
    pub date_changed: u64,
}

/// One trigger connected to one event source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Registration {
    /// Always [`REGISTRATION_TYPE`].
    #[serde(rename = "entityType")]
    pub entity_type: String,
    /// Always [`SYSTEM_NAMESPACE`]: registrations are listed as one collection.
    pub namespace: String,
    /// The namespace of the trigger.
    pub owner: String,
    /// The trigger's name.
    pub trigger: String,
    /// The feed, `package/feed` (the source's key).
    pub feed: String,
    /// The parameters as the feed action received them (lifecycle keys removed), kept so an
    /// `UPDATE` can change some of them.
    pub params: Map<String, Value>,
    /// What the source's `validate` made of `params`.
    pub config: Value,
    /// The source's saved position.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<Value>,
    /// Running or not.
    pub status: RegistrationStatus,
    /// When it was created (ms since the epoch).
    pub created: u64,
    /// When it was last written (ms since the epoch; the listing sort key).
    pub updated: u64,
}

impl Registration {
    /// A new, active registration.
    pub fn new(
        owner: &str,
        trigger: &str,
        feed: &str,
        params: Map<String, Value>,
        config: Value,
        now: u64,
    ) -> Self {
        Self {
            entity_type: REGISTRATION_TYPE.into(),
            namespace: SYSTEM_NAMESPACE.into(),
            owner: owner.into(),
            trigger: trigger.into(),
            feed: feed.into(),
            params,
            config,
            cursor: None,
            status: RegistrationStatus {
                active: true,
                reason: None,
                date_changed: now,
            },
            created: now,
            updated: now,
        }
    }

    /// The document id of the registration of trigger `owner/trigger`. `$` cannot appear in
    /// a namespace, so no entity id collides with it.
    pub fn doc_id_of(owner: &str, trigger: &str) -> String {
        format!("${REGISTRATION_TYPE}/{owner}/{trigger}")
    }

    /// This registration's document id.
    pub fn doc_id(&self) -> String {
        Self::doc_id_of(&self.owner, &self.trigger)
    }

    /// The trigger as `/namespace/name`.
    pub fn trigger_name(&self) -> String {
        format!("/{}/{}", self.owner, self.trigger)
    }

    /// The stored document.
    pub fn to_document(&self) -> Value {
        serde_json::to_value(self).expect("a registration serialises")
    }

    /// The answer to `READ`, shaped as OpenWhisk's alarm provider answers it:
    /// `{config: {...params, name, namespace, trigger}, status: {active, dateChanged,
    /// dateChangedISO, reason?}}`. Secrets among the parameters are left out (see
    /// [`is_secret`]) and a password in a URL is masked.
    pub fn to_read_json(&self) -> Value {
        let mut config: Map<String, Value> = self
            .params
            .iter()
            .filter(|(k, _)| !is_secret(k))
            .map(|(k, v)| match v {
                Value::String(s) => (k.clone(), Value::String(mask_url_password(s))),
                v => (k.clone(), v.clone()),
            })
            .collect();
        config.insert("name".into(), Value::String(self.trigger.clone()));
        config.insert("namespace".into(), Value::String(self.owner.clone()));
        config.insert("trigger".into(), Value::String(self.trigger_name()));
        config.insert(
            "feed".into(),
            Value::String(format!("/{SYSTEM_NAMESPACE}/{}", self.feed)),
        );
        let mut status = serde_json::to_value(&self.status).expect("a status serialises");
        status["dateChangedISO"] = Value::String(iso8601(self.status.date_changed));
        serde_json::json!({ "config": config, "status": status })
    }
}

/// `ms` since the epoch as an RFC 3339 UTC time with milliseconds.
pub(crate) fn iso8601(ms: u64) -> String {
    chrono::DateTime::from_timestamp_millis(ms as i64)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

/// Whether parameter `name` holds a secret (a password, API key, token or secret by name):
/// `READ` never shows those.
pub fn is_secret(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    ["password", "apikey", "api_key", "secret", "token"]
        .iter()
        .any(|s| n.contains(s))
}

/// `s` with the password of a `scheme://user:password@host` URL replaced by `***`.
fn mask_url_password(s: &str) -> String {
    let Some((scheme, rest)) = s.split_once("://") else {
        return s.to_string();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rsplit_once('@') {
        Some((userinfo, _)) if userinfo.contains(':') => {
            let user = userinfo.split(':').next().unwrap_or_default();
            let at = rest[..authority_end].rfind('@').unwrap_or(0);
            format!("{scheme}://{user}:***{}", &rest[at..])
        }
        _ => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn read_leaves_out_secrets_and_masks_url_passwords() {
        let params = json!({
            "dbname": "db",
            "password": "hunter2",
            "iamApiKey": "k",
            "url": "http://admin:hunter2@127.0.0.1:5984/x",
            "host": "127.0.0.1:5984"
        });
        let reg = Registration::new(
            "guest",
            "t",
            "cloudant/changes",
            params.as_object().unwrap().clone(),
            json!({}),
            0,
        );
        let read = reg.to_read_json();
        let text = read.to_string();
        assert!(!text.contains("hunter2"), "{text}");
        assert_eq!(read["config"]["url"], "http://admin:***@127.0.0.1:5984/x");
        assert_eq!(read["config"]["dbname"], "db");
        assert!(read["config"].get("iamApiKey").is_none());
        assert_eq!(mask_url_password("http://h:1/a@b"), "http://h:1/a@b");
    }
}
