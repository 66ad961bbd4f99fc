//! Actions: the stored entity and the `PUT` body that creates or updates one.

use super::exec::{Exec, ExecError, ExecPut, RuntimeManifest};
use super::limits::{ActionLimits, ActionLimitsPut, LimitError, SystemLimits};
use super::parameters::Parameters;
use super::semver::SemVer;
use super::FullyQualifiedEntityName;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// The `entityType` of action documents.
pub const ENTITY_TYPE: &str = "action";

/// A stored action, serialised as OpenWhisk serves it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WhiskAction {
    /// `ns` or `ns/pkg`.
    pub namespace: String,
    /// Simple name.
    pub name: String,
    /// What it runs.
    pub exec: Exec,
    /// Default parameters.
    #[serde(default)]
    pub parameters: Parameters,
    /// Limits.
    pub limits: ActionLimits,
    /// Version, bumped on update.
    #[serde(default)]
    pub version: SemVer,
    /// Shared with other namespaces.
    #[serde(default)]
    pub publish: bool,
    /// Annotations.
    #[serde(default)]
    pub annotations: Parameters,
    /// Last write, epoch ms.
    #[serde(default)]
    pub updated: u64,
}

/// The body of `PUT /actions/{name}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WhiskActionPut {
    /// New exec (required on create).
    pub exec: Option<ExecPut>,
    /// New parameters (replace the old ones).
    pub parameters: Option<Parameters>,
    /// New limits (merged field by field).
    pub limits: Option<ActionLimitsPut>,
    /// Explicit version.
    pub version: Option<SemVer>,
    /// Publish flag.
    pub publish: Option<bool>,
    /// Annotations, merged over the old ones.
    pub annotations: Option<Parameters>,
    /// Annotation keys to remove on update.
    pub del_annotations: Option<Vec<String>>,
}

/// Why a `PUT` was rejected (all 400 in OpenWhisk).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ActionPutError {
    /// Create without exec.
    #[error("exec undefined")]
    ExecUndefined,
    /// Bad exec.
    #[error(transparent)]
    Exec(#[from] ExecError),
    /// Limits out of range.
    #[error(transparent)]
    Limits(#[from] LimitError),
}

impl WhiskAction {
    /// The fully qualified name.
    pub fn fqn(&self) -> FullyQualifiedEntityName {
        FullyQualifiedEntityName::new(self.namespace.clone(), self.name.clone())
    }

    /// The document id `ns/[pkg/]name`.
    pub fn doc_id(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// Creates a new action from a `PUT` body.
    pub fn create(
        namespace: &str,
        name: &str,
        put: WhiskActionPut,
        manifest: &RuntimeManifest,
        system: &SystemLimits,
        now_ms: u64,
    ) -> Result<Self, ActionPutError> {
        let exec = put
            .exec
            .ok_or(ActionPutError::ExecUndefined)?
            .resolve(manifest)?;
        let limits = put
            .limits
            .unwrap_or_default()
            .apply(ActionLimits::defaults(system), system)?;
        let mut annotations = put.annotations.unwrap_or_default();
        if annotations.get("provide-api-key").is_none() {
            annotations.set("provide-api-key", json!(false));
        }
        annotations.set("exec", json!(exec.kind()));
        Ok(Self {
            namespace: namespace.to_string(),
            name: name.to_string(),
            exec,
            parameters: put.parameters.unwrap_or_default(),
            limits,
            version: put.version.unwrap_or_default(),
            publish: put.publish.unwrap_or(false),
            annotations,
            updated: now_ms,
        })
    }

    /// This action updated by a `PUT` body: absent fields keep their values, annotations merge.
    pub fn update(
        &self,
        put: WhiskActionPut,
        manifest: &RuntimeManifest,
        system: &SystemLimits,
        now_ms: u64,
    ) -> Result<Self, ActionPutError> {
        let exec = match put.exec {
            Some(e) => e.resolve(manifest)?,
            None => self.exec.clone(),
        };
        let limits = put.limits.unwrap_or_default().apply(self.limits, system)?;
        let mut annotations = self.annotations.merge(&put.annotations.unwrap_or_default());
        for key in put.del_annotations.unwrap_or_default() {
            annotations.remove(&key);
        }
        annotations.set("exec", json!(exec.kind()));
        Ok(Self {
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            exec,
            parameters: put.parameters.unwrap_or_else(|| self.parameters.clone()),
            limits,
            version: put.version.unwrap_or_else(|| self.version.up_patch()),
            publish: put.publish.unwrap_or(self.publish),
            annotations,
            updated: now_ms,
        })
    }

    /// The JSON served by `GET`; without code when `with_code` is false.
    pub fn to_json(&self, with_code: bool) -> Value {
        json!({
            "namespace": self.namespace,
            "name": self.name,
            "exec": self.exec.to_json(with_code),
            "parameters": self.parameters,
            "limits": self.limits,
            "version": self.version,
            "publish": self.publish,
            "annotations": self.annotations,
            "updated": self.updated,
        })
    }

    /// The list-item summary (OpenWhisk's `actions` view value).
    pub fn summary(&self) -> Value {
        json!({
            "namespace": self.namespace,
            "name": self.name,
            "version": self.version,
            "publish": self.publish,
            "annotations": self.annotations,
            "limits": self.limits,
            "exec": {"binary": self.exec.binary()},
            "updated": self.updated,
        })
    }

    /// The stored document body (entity JSON plus `entityType`).
    pub fn to_document(&self) -> Value {
        let mut v = self.to_json(true);
        v["entityType"] = json!(ENTITY_TYPE);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(v: Value) -> WhiskActionPut {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn create_sets_system_annotations_and_defaults() {
        let m = RuntimeManifest::default();
        let s = SystemLimits::default();
        let a = WhiskAction::create(
            "guest",
            "hello",
            put(json!({"exec":{"kind":"nodejs:default","code":"function main(){return {}}"}})),
            &m,
            &s,
            7,
        )
        .unwrap();
        assert_eq!(
            a.to_json(true),
            json!({
                "namespace":"guest","name":"hello",
                "exec":{"kind":"nodejs:20","code":"function main(){return {}}","binary":false},
                "parameters":[],"limits":{"timeout":60000,"memory":256,"logs":10,"concurrency":1},
                "version":"0.0.1","publish":false,
                "annotations":[{"key":"provide-api-key","value":false},{"key":"exec","value":"nodejs:20"}],
                "updated":7
            })
        );
        let back: WhiskAction = serde_json::from_value(a.to_document()).unwrap();
        assert_eq!(back, a);
    }

    #[test]
    fn update_bumps_version_and_merges_annotations() {
        let m = RuntimeManifest::default();
        let s = SystemLimits::default();
        let a = WhiskAction::create(
            "guest",
            "x",
            put(json!({"exec":{"kind":"python:3.11","code":"def main(a): return a"}, "annotations":[{"key":"a","value":1}]})),
            &m,
            &s,
            1,
        )
        .unwrap();
        let b = a
            .update(
                put(json!({"annotations":[{"key":"b","value":2}], "delAnnotations":["a"], "limits":{"memory":128}})),
                &m,
                &s,
                2,
            )
            .unwrap();
        assert_eq!(b.version.to_string(), "0.0.2");
        assert_eq!(b.limits.memory, 128);
        assert_eq!(b.limits.timeout, 60000);
        assert!(b.annotations.get("a").is_none());
        assert_eq!(b.annotations.get("b"), Some(&json!(2)));
        assert_eq!(b.exec, a.exec);
    }

    #[test]
    fn create_requires_exec() {
        let m = RuntimeManifest::default();
        let s = SystemLimits::default();
        let e = WhiskAction::create("g", "x", put(json!({})), &m, &s, 1).unwrap_err();
        assert_eq!(e.to_string(), "exec undefined");
    }
}
