//! Packages and package bindings.

use super::parameters::Parameters;
use super::semver::SemVer;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{json, Value};

/// The `entityType` of package documents.
pub const ENTITY_TYPE: &str = "package";

/// The package a binding points at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Binding {
    /// The bound package's namespace.
    pub namespace: String,
    /// The bound package's name.
    pub name: String,
}

impl Binding {
    /// The bound package's document id `ns/pkg`.
    pub fn doc_id(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// `binding` is `{}` for a package and `{namespace, name}` for a binding.
mod binding_json {
    use super::*;

    pub fn serialize<S: Serializer>(b: &Option<Binding>, s: S) -> Result<S::Ok, S::Error> {
        match b {
            Some(b) => b.serialize(s),
            None => json!({}).serialize(s),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Binding>, D::Error> {
        let v = Value::deserialize(d)?;
        match &v {
            Value::Object(m) if m.is_empty() => Ok(None),
            Value::Null | Value::Bool(false) => Ok(None),
            _ => serde_json::from_value(v)
                .map(Some)
                .map_err(serde::de::Error::custom),
        }
    }
}

/// A stored package or binding, serialised as OpenWhisk serves it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WhiskPackage {
    /// The namespace.
    pub namespace: String,
    /// The name.
    pub name: String,
    /// The bound package, for a binding.
    #[serde(with = "binding_json", default)]
    pub binding: Option<Binding>,
    /// Parameters shared by its actions.
    #[serde(default)]
    pub parameters: Parameters,
    /// Version.
    #[serde(default)]
    pub version: SemVer,
    /// Visible to other namespaces.
    #[serde(default)]
    pub publish: bool,
    /// Annotations.
    #[serde(default)]
    pub annotations: Parameters,
    /// Last write, epoch ms.
    #[serde(default)]
    pub updated: u64,
}

/// The body of `PUT /packages/{name}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WhiskPackagePut {
    /// Makes this a binding of `{namespace, name}`.
    #[serde(default, with = "binding_json")]
    pub binding: Option<Binding>,
    /// Parameters.
    pub parameters: Option<Parameters>,
    /// Explicit version.
    pub version: Option<SemVer>,
    /// Publish flag.
    pub publish: Option<bool>,
    /// Annotations (replace the old ones).
    pub annotations: Option<Parameters>,
    /// Accepted and ignored, as OpenWhisk does.
    #[serde(default)]
    pub namespace: Option<Value>,
    /// Accepted and ignored, as OpenWhisk does.
    #[serde(default)]
    pub name: Option<Value>,
}

impl WhiskPackage {
    /// The document id `ns/name`.
    pub fn doc_id(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// The entity JSON.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).expect("package serialises")
    }

    /// The stored document body.
    pub fn to_document(&self) -> Value {
        let mut v = self.to_json();
        v["entityType"] = json!(ENTITY_TYPE);
        v
    }

    /// The list-item summary.
    pub fn summary(&self) -> Value {
        let mut v = self.to_json();
        if let Some(m) = v.as_object_mut() {
            m.remove("parameters");
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binding_field_forms() {
        let p: WhiskPackage =
            serde_json::from_value(json!({"namespace":"g","name":"p","binding":{}})).unwrap();
        assert_eq!(p.binding, None);
        assert_eq!(p.to_json()["binding"], json!({}));
        let b: WhiskPackage = serde_json::from_value(
            json!({"namespace":"g","name":"b","binding":{"namespace":"o","name":"p"}}),
        )
        .unwrap();
        assert_eq!(b.binding.as_ref().unwrap().doc_id(), "o/p");
        assert_eq!(b.to_document()["entityType"], "package");
    }
}
