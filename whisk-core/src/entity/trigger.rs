//! Triggers and rules; a rule's status lives in its trigger's `rules` map, as in OpenWhisk.

use super::name::FullyQualifiedEntityName;
use super::parameters::Parameters;
use super::semver::SemVer;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// The `entityType` of trigger documents.
pub const TRIGGER_TYPE: &str = "trigger";
/// The `entityType` of rule documents.
pub const RULE_TYPE: &str = "rule";

/// Whether a rule fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleStatus {
    /// Fires its action.
    Active,
    /// Does not fire.
    Inactive,
}

impl RuleStatus {
    /// `active` or `inactive`.
    pub fn as_str(self) -> &'static str {
        match self {
            RuleStatus::Active => "active",
            RuleStatus::Inactive => "inactive",
        }
    }
}

/// A rule as linked from its trigger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReducedRule {
    /// The action the rule invokes.
    pub action: FullyQualifiedEntityName,
    /// Its status.
    pub status: RuleStatus,
}

/// A stored trigger.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WhiskTrigger {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Parameters passed to the rules' actions.
    #[serde(default)]
    pub parameters: Parameters,
    /// Always `{}`.
    #[serde(default = "empty_object")]
    pub limits: Value,
    /// Version.
    #[serde(default)]
    pub version: SemVer,
    /// Publish flag.
    #[serde(default)]
    pub publish: bool,
    /// Annotations.
    #[serde(default)]
    pub annotations: Parameters,
    /// Last write, epoch ms.
    #[serde(default)]
    pub updated: u64,
    /// Linked rules by `ns/rule`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules: Option<BTreeMap<String, ReducedRule>>,
}

fn empty_object() -> Value {
    json!({})
}

/// The body of `PUT /triggers/{name}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WhiskTriggerPut {
    /// Parameters.
    pub parameters: Option<Parameters>,
    /// Accepted, stored as `{}`.
    pub limits: Option<Value>,
    /// Explicit version.
    pub version: Option<SemVer>,
    /// Publish flag.
    pub publish: Option<bool>,
    /// Annotations (replace the old ones).
    pub annotations: Option<Parameters>,
}

/// A stored rule (its status is not stored here).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WhiskRule {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// The trigger.
    pub trigger: FullyQualifiedEntityName,
    /// The action.
    pub action: FullyQualifiedEntityName,
    /// Version.
    #[serde(default)]
    pub version: SemVer,
    /// Publish flag.
    #[serde(default)]
    pub publish: bool,
    /// Annotations.
    #[serde(default)]
    pub annotations: Parameters,
    /// Last write, epoch ms.
    #[serde(default)]
    pub updated: u64,
}

/// The body of `PUT /rules/{name}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WhiskRulePut {
    /// `"/ns/name"` or `{path, name}`.
    pub trigger: Option<Value>,
    /// `"/ns/[pkg/]name"` or `{path, name}`.
    pub action: Option<Value>,
    /// Explicit version.
    pub version: Option<SemVer>,
    /// Publish flag.
    pub publish: Option<bool>,
    /// Annotations (replace the old ones).
    pub annotations: Option<Parameters>,
    /// Ignored, as OpenWhisk does.
    pub status: Option<Value>,
}

macro_rules! entity_json {
    ($t:ty, $kind:expr) => {
        impl $t {
            /// The document id `ns/name`.
            pub fn doc_id(&self) -> String {
                format!("{}/{}", self.namespace, self.name)
            }

            /// The entity JSON.
            pub fn to_json(&self) -> Value {
                serde_json::to_value(self).expect("entity serialises")
            }

            /// The stored document body.
            pub fn to_document(&self) -> Value {
                let mut v = self.to_json();
                v["entityType"] = json!($kind);
                v
            }
        }
    };
}

entity_json!(WhiskTrigger, TRIGGER_TYPE);
entity_json!(WhiskRule, RULE_TYPE);

impl WhiskTrigger {
    /// The active rules.
    pub fn active_rules(&self) -> impl Iterator<Item = (&String, &ReducedRule)> {
        self.rules
            .iter()
            .flatten()
            .filter(|(_, r)| r.status == RuleStatus::Active)
    }

    /// The list-item summary.
    pub fn summary(&self) -> Value {
        let mut v = self.to_json();
        if let Some(m) = v.as_object_mut() {
            m.remove("parameters");
            m.remove("rules");
            m.remove("limits");
        }
        v
    }
}

impl WhiskRule {
    /// The JSON with a `status`, as GET/PUT/DELETE/POST answer.
    pub fn with_status(&self, status: RuleStatus) -> Value {
        let mut v = self.to_json();
        v["status"] = json!(status.as_str());
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trigger_rules_map_json() {
        let mut rules = BTreeMap::new();
        rules.insert(
            "g/r".to_string(),
            ReducedRule {
                action: FullyQualifiedEntityName::new("g", "a"),
                status: RuleStatus::Active,
            },
        );
        let t = WhiskTrigger {
            namespace: "g".into(),
            name: "t".into(),
            parameters: Parameters::new(),
            limits: json!({}),
            version: SemVer::INITIAL,
            publish: false,
            annotations: Parameters::new(),
            updated: 1,
            rules: Some(rules),
        };
        assert_eq!(
            t.to_json()["rules"],
            json!({"g/r": {"action": {"path": "g", "name": "a"}, "status": "active"}})
        );
        assert_eq!(t.active_rules().count(), 1);
        assert_eq!(t.to_document()["entityType"], "trigger");
        assert!(t.summary().get("rules").is_none());
    }
}
