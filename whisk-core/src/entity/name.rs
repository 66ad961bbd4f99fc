//! Entity names, namespace paths and fully qualified names, validated as OpenWhisk validates them.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// Longest allowed entity name or path segment.
pub const MAX_NAME_LENGTH: usize = 256;

/// The placeholder for "the caller's own namespace" in REST paths.
pub const DEFAULT_NAMESPACE: &str = "_";

/// Why a name or a path was rejected; the `Display` text is OpenWhisk's error message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// The name has a character outside OpenWhisk's name pattern.
    #[error("The name of the entity contains illegal characters.")]
    IllegalCharacters,
    /// The name is longer than [`MAX_NAME_LENGTH`].
    #[error("Name segement longer than allowed: {0} > 256.")]
    TooLong(usize),
    /// A namespace segment has an illegal character.
    #[error("The namespace contains illegal characters.")]
    IllegalNamespace,
    /// A namespace is longer than [`MAX_NAME_LENGTH`].
    #[error("Namespace longer than allowed: {0} > 256.")]
    NamespaceTooLong(usize),
}

fn is_word(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Checks OpenWhisk's `EntityName` pattern `\A([\w]|[\w][\w@ .&-]{0,254}[\w@.&-])\z`.
fn valid_name(s: &str) -> bool {
    let chars: Vec<char> = s.chars().collect();
    match chars.as_slice() {
        [] => false,
        [only] => is_word(*only),
        [first, middle @ .., last] => {
            is_word(*first)
                && middle.iter().all(|&c| is_word(c) || "@ .&-".contains(c))
                && (is_word(*last) || "@.&-".contains(*last))
        }
    }
}

/// A validated entity name (an action, trigger, rule or package name, or a namespace segment).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EntityName(String);

impl EntityName {
    /// Validates `s` as an entity name.
    pub fn new(s: &str) -> Result<Self, NameError> {
        let len = s.chars().count();
        if len > MAX_NAME_LENGTH {
            return Err(NameError::TooLong(len));
        }
        if !valid_name(s) {
            return Err(NameError::IllegalCharacters);
        }
        Ok(Self(s.to_string()))
    }

    /// The name as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EntityName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for EntityName {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for EntityName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        EntityName::new(&s).map_err(serde::de::Error::custom)
    }
}

/// Validates one namespace segment from a REST path (`_` is allowed and means the caller's).
pub fn validate_namespace(ns: &str) -> Result<(), NameError> {
    let len = ns.chars().count();
    if len > MAX_NAME_LENGTH {
        return Err(NameError::NamespaceTooLong(len));
    }
    if !valid_name(ns) {
        return Err(NameError::IllegalNamespace);
    }
    Ok(())
}

/// A fully qualified entity name: a path (`ns` or `ns/pkg`) and a simple name.
///
/// Serialises as OpenWhisk's `{"path": "ns", "name": "n"}` object (with `version` when known).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FullyQualifiedEntityName {
    /// `ns` or `ns/pkg`.
    pub path: String,
    /// The entity's simple name.
    pub name: String,
    /// The entity version, carried in activation messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The binding (`ns/binding`) an action was reached through, in activation messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binding: Option<String>,
}

impl FullyQualifiedEntityName {
    /// A name without a version.
    pub fn new(path: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            name: name.into(),
            version: None,
            binding: None,
        }
    }

    /// The document id form `ns/[pkg/]name`.
    pub fn doc_id(&self) -> String {
        format!("{}/{}", self.path, self.name)
    }

    /// The absolute form `/ns/[pkg/]name` used in `__OW_ACTION_NAME` and sequence components.
    pub fn absolute(&self) -> String {
        format!("/{}/{}", self.path, self.name)
    }

    /// Parses `/ns/name`, `/ns/pkg/name`, `ns/name` or `ns/pkg/name` (leading slash optional;
    /// `_` stands for `default_ns`); the segments must be valid entity names.
    pub fn parse(s: &str, default_ns: &str) -> Result<Self, NameError> {
        let parts: Vec<&str> = s.split('/').filter(|p| !p.is_empty()).collect();
        if !(2..=3).contains(&parts.len()) {
            return Err(NameError::IllegalCharacters);
        }
        for p in &parts {
            EntityName::new(p)?;
        }
        let ns = if parts[0] == DEFAULT_NAMESPACE {
            default_ns
        } else {
            parts[0]
        };
        let path = match parts.len() {
            3 => format!("{ns}/{}", parts[1]),
            _ => ns.to_string(),
        };
        Ok(Self::new(path, parts[parts.len() - 1]))
    }

    /// The root namespace (first path segment).
    pub fn root_namespace(&self) -> &str {
        self.path.split('/').next().unwrap_or(&self.path)
    }
}

impl fmt::Display for FullyQualifiedEntityName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.path, self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_openwhisk_names() {
        for ok in [
            "a",
            "hello",
            "hello world",
            "a.b",
            "x@y",
            "a&b-c",
            "_",
            "A_1",
        ] {
            assert!(EntityName::new(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn rejects_illegal_names() {
        for bad in ["", " a", "a ", "-a", "a/b", "a$", "é", ".a"] {
            assert_eq!(
                EntityName::new(bad),
                Err(NameError::IllegalCharacters),
                "{bad:?}"
            );
        }
        let long = "a".repeat(257);
        assert_eq!(EntityName::new(&long), Err(NameError::TooLong(257)));
        assert!(EntityName::new(&"a".repeat(256)).is_ok());
        assert_eq!(
            NameError::TooLong(257).to_string(),
            "Name segement longer than allowed: 257 > 256."
        );
    }

    #[test]
    fn fqn_parsing() {
        let f = FullyQualifiedEntityName::parse("/_/pkg/a", "guest").unwrap();
        assert_eq!(f.doc_id(), "guest/pkg/a");
        assert_eq!(
            FullyQualifiedEntityName::parse("ns/a", "g")
                .unwrap()
                .doc_id(),
            "ns/a"
        );
        assert!(FullyQualifiedEntityName::parse("/a", "g").is_err());
        assert!(FullyQualifiedEntityName::parse("/a/b/c/d", "g").is_err());
        assert!(FullyQualifiedEntityName::parse("/a/b$", "g").is_err());
    }

    #[test]
    fn fqn_forms() {
        let f = FullyQualifiedEntityName::new("guest/pkg", "hello");
        assert_eq!(f.doc_id(), "guest/pkg/hello");
        assert_eq!(f.absolute(), "/guest/pkg/hello");
        assert_eq!(f.root_namespace(), "guest");
        assert_eq!(
            serde_json::to_value(&f).unwrap(),
            serde_json::json!({"path": "guest/pkg", "name": "hello"})
        );
    }
}
