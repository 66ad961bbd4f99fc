//! What an action runs (`exec`) and the runtime manifest that says which kinds exist.

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// The manifest bundled with whisk (OpenWhisk's `runtimes.json` shape).
pub const BUNDLED_MANIFEST: &str = include_str!("../../runtimes.json");

/// An image reference in the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageName {
    /// Registry prefix, e.g. `openwhisk`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// Image name, e.g. `action-nodejs-v20`.
    pub name: String,
    /// Tag, e.g. `nightly`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
}

impl std::fmt::Display for ImageName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(p) = &self.prefix {
            write!(f, "{p}/")?;
        }
        f.write_str(&self.name)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        Ok(())
    }
}

/// One runtime kind of the manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuntimeKind {
    /// The kind, e.g. `nodejs:20`.
    pub kind: String,
    /// Whether this is its family's `:default`.
    #[serde(default)]
    pub default: bool,
    /// The image that runs it.
    pub image: ImageName,
    /// Deprecated kinds may be read and deleted but not created, updated or invoked.
    #[serde(default)]
    pub deprecated: bool,
    /// Whether code is stored as an attachment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attached: Option<Value>,
    /// Whether `main` must be given (java, dotnet).
    #[serde(default, rename = "requireMain")]
    pub require_main: bool,
    /// Prewarm configuration, kept as given.
    #[serde(default, rename = "stemCells", skip_serializing_if = "Option::is_none")]
    pub stem_cells: Option<Value>,
    /// For the process executor: a command starting an external runtime proxy for this kind
    /// (`{port}` in an argument becomes the port it must listen on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub launcher: Option<Vec<String>>,
}

/// Prewarmed containers to keep for one kind and memory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StemCell {
    /// The kind.
    pub kind: String,
    /// Memory of each, in MB.
    pub memory_mb: u64,
    /// How many to keep.
    pub count: usize,
}

/// Parses OpenWhisk's byte-size strings such as `"256 MB"`, `"1 GB"`, `"512m"` into MB.
pub fn parse_megabytes(s: &str) -> Option<u64> {
    let t = s.trim().to_ascii_lowercase();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (n, unit) = t.split_at(split);
    let n: u64 = n.parse().ok()?;
    match unit.trim() {
        "" | "m" | "mb" => Some(n),
        "g" | "gb" => Some(n * 1024),
        "k" | "kb" => Some(n / 1024),
        _ => None,
    }
}

/// The runtime manifest: kinds by family, plus blackbox images.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuntimeManifest {
    /// Kinds grouped by family (`nodejs`, `python`, ...).
    pub runtimes: BTreeMap<String, Vec<RuntimeKind>>,
    /// Images of blackbox runtimes.
    #[serde(default)]
    pub blackboxes: Vec<ImageName>,
}

impl Default for RuntimeManifest {
    fn default() -> Self {
        Self::from_json(BUNDLED_MANIFEST).expect("bundled runtimes.json is valid")
    }
}

impl RuntimeManifest {
    /// Parses a manifest in `runtimes.json` shape.
    pub fn from_json(s: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(s)
    }

    /// Reads a manifest file in `runtimes.json` shape.
    pub fn from_file(path: &std::path::Path) -> std::io::Result<Self> {
        let text = std::fs::read_to_string(path)?;
        Self::from_json(&text).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
    }

    /// The stem cells of every kind (`stemCells: [{initialCount|count, memory}]`).
    pub fn stem_cells(&self) -> Vec<StemCell> {
        self.kinds()
            .flat_map(|k| {
                let cells = k
                    .stem_cells
                    .as_ref()
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                cells.into_iter().filter_map(move |c| {
                    let count = c
                        .get("initialCount")
                        .or_else(|| c.get("count"))
                        .and_then(Value::as_u64)?;
                    let memory_mb = c
                        .get("memory")
                        .and_then(Value::as_str)
                        .and_then(parse_megabytes)?;
                    Some(StemCell {
                        kind: k.kind.clone(),
                        memory_mb,
                        count: count as usize,
                    })
                })
            })
            .collect()
    }

    /// All kinds, in manifest order.
    pub fn kinds(&self) -> impl Iterator<Item = &RuntimeKind> {
        self.runtimes.values().flatten()
    }

    /// Resolves `kind` (lowercased and trimmed; `family:default` allowed) to its manifest entry.
    pub fn resolve(&self, kind: &str) -> Result<&RuntimeKind, ExecError> {
        let k = kind.trim().to_lowercase();
        let found = match k.strip_suffix(":default") {
            Some(family) => self
                .runtimes
                .get(family)
                .and_then(|ks| ks.iter().find(|r| r.default)),
            None => self.kinds().find(|r| r.kind == k),
        };
        found.ok_or_else(|| ExecError::UnsupportedKind {
            kind: kind.to_string(),
            valid: self.kinds().map(|r| r.kind.clone()).collect(),
        })
    }

    /// The `runtimes` object of `GET /`.
    pub fn info_json(&self) -> Value {
        let families: Map<String, Value> = self
            .runtimes
            .iter()
            .map(|(family, kinds)| {
                let list = kinds
                    .iter()
                    .map(|r| {
                        json!({
                            "kind": r.kind,
                            "image": r.image.to_string(),
                            "deprecated": r.deprecated,
                            "default": r.default,
                            "attached": r.attached.is_some(),
                            "requireMain": r.require_main,
                        })
                    })
                    .collect();
                (family.clone(), Value::Array(list))
            })
            .collect();
        Value::Object(families)
    }
}

/// Why an `exec` was rejected; `Display` is OpenWhisk's message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExecError {
    /// The kind is not in the manifest.
    #[error("The specified runtime '{kind}' is not supported by this platform. Valid values are: {}.", valid.iter().map(|k| format!("'{k}'")).collect::<Vec<_>>().join(", "))]
    UnsupportedKind {
        /// The requested kind.
        kind: String,
        /// Kinds the manifest has.
        valid: Vec<String>,
    },
    /// The kind is deprecated.
    #[error("The '{0}' runtime is no longer supported. You may read and delete but not update or invoke this action.")]
    Deprecated(String),
    /// A code kind without code, or a malformed exec.
    #[error("{0}")]
    Malformed(String),
}

/// The runnable part of an action.
#[derive(Debug, Clone, PartialEq)]
pub enum Exec {
    /// Source or a base64 zip for a manifest kind.
    Code {
        /// The resolved kind, e.g. `nodejs:20`.
        kind: String,
        /// Source text, or base64 when `binary`.
        code: String,
        /// Whether `code` is base64.
        binary: bool,
        /// The entry function when not `main`.
        main: Option<String>,
    },
    /// A sequence of actions, by absolute name (`/ns/[pkg/]name`), run by the controller.
    Sequence {
        /// The components in order.
        components: Vec<String>,
    },
    /// A custom image speaking the runtime protocol.
    Blackbox {
        /// The image to run.
        image: String,
        /// Optional code handed to the image's `/init`.
        code: Option<String>,
        /// Whether `code` is base64.
        binary: bool,
        /// The entry point when given.
        main: Option<String>,
    },
}

/// The `exec` object of a `PUT` body or a stored document, before validation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ExecPut {
    /// The kind (`nodejs:20`, `python:default`, `blackbox`, ...).
    pub kind: String,
    /// Code text or base64.
    #[serde(default)]
    pub code: Option<String>,
    /// Image for blackbox.
    #[serde(default)]
    pub image: Option<String>,
    /// Entry point.
    #[serde(default)]
    pub main: Option<String>,
    /// Legacy field for java code.
    #[serde(default)]
    pub jar: Option<String>,
    /// Components of a sequence.
    #[serde(default)]
    pub components: Option<Vec<String>>,
}

/// Whether runtimes of `kind` can run several activations at once in one container
/// (`limits.concurrency > 1`): as in OpenWhisk, only Node.js.
pub fn supports_concurrency(kind: &str) -> bool {
    kind.starts_with("nodejs:")
}

/// OpenWhisk's `isBinaryCode`: non-empty, length a multiple of 4 and base64 characters only.
pub fn is_binary_code(code: &str) -> bool {
    let t = code.trim();
    if t.is_empty() || !t.len().is_multiple_of(4) {
        return false;
    }
    let body = t.trim_end_matches('=');
    t.len() - body.len() <= 2
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
}

impl ExecPut {
    /// Validates against `manifest`, resolving `:default` kinds.
    pub fn resolve(self, manifest: &RuntimeManifest) -> Result<Exec, ExecError> {
        let main = self.main.filter(|m| !m.is_empty());
        if self.kind.trim().eq_ignore_ascii_case("sequence") {
            return Ok(Exec::Sequence {
                components: self.components.unwrap_or_default(),
            });
        }
        if self.kind.trim().eq_ignore_ascii_case("blackbox") {
            let image = self.image.filter(|i| !i.is_empty()).ok_or_else(|| {
                ExecError::Malformed(
                    "'image' must be a string defined in 'exec' for 'blackbox' actions".into(),
                )
            })?;
            let binary = self.code.as_deref().map(is_binary_code).unwrap_or(false);
            return Ok(Exec::Blackbox {
                image,
                code: self.code,
                binary,
                main,
            });
        }
        let rt = manifest.resolve(&self.kind)?;
        if rt.deprecated {
            return Err(ExecError::Deprecated(rt.kind.clone()));
        }
        let code = self.code.or(self.jar).ok_or_else(|| {
            ExecError::Malformed(format!(
                "'code' must be a string defined in 'exec' for '{}' actions",
                rt.kind
            ))
        })?;
        if rt.require_main && main.is_none() {
            return Err(ExecError::Malformed(format!(
                "'main' must be a string defined in 'exec' for '{}' actions",
                rt.kind
            )));
        }
        Ok(Exec::Code {
            kind: rt.kind.clone(),
            binary: is_binary_code(&code),
            code,
            main,
        })
    }
}

impl Exec {
    /// The kind (`blackbox` for images).
    pub fn kind(&self) -> &str {
        match self {
            Exec::Code { kind, .. } => kind,
            Exec::Sequence { .. } => "sequence",
            Exec::Blackbox { .. } => "blackbox",
        }
    }

    /// The code, if any.
    pub fn code(&self) -> Option<&str> {
        match self {
            Exec::Code { code, .. } => Some(code),
            Exec::Blackbox { code, .. } => code.as_deref(),
            Exec::Sequence { .. } => None,
        }
    }

    /// Whether the code is base64.
    pub fn binary(&self) -> bool {
        match self {
            Exec::Code { binary, .. } | Exec::Blackbox { binary, .. } => *binary,
            Exec::Sequence { .. } => false,
        }
    }

    /// The entry point, if set.
    pub fn main(&self) -> Option<&str> {
        match self {
            Exec::Code { main, .. } | Exec::Blackbox { main, .. } => main.as_deref(),
            Exec::Sequence { .. } => None,
        }
    }

    /// The image of a blackbox action.
    pub fn image(&self) -> Option<&str> {
        match self {
            Exec::Blackbox { image, .. } => Some(image),
            _ => None,
        }
    }

    /// The JSON form; without the code when `with_code` is false.
    pub fn to_json(&self, with_code: bool) -> Value {
        if let Exec::Sequence { components } = self {
            return json!({"kind": "sequence", "components": components});
        }
        let mut m = Map::new();
        m.insert("kind".into(), json!(self.kind()));
        if let Some(image) = self.image() {
            m.insert("image".into(), json!(image));
        }
        if with_code {
            if let Some(code) = self.code() {
                m.insert("code".into(), json!(code));
            }
        }
        m.insert("binary".into(), json!(self.binary()));
        if let Some(main) = self.main() {
            m.insert("main".into(), json!(main));
        }
        Value::Object(m)
    }

    /// The components of a sequence.
    pub fn components(&self) -> Option<&[String]> {
        match self {
            Exec::Sequence { components } => Some(components),
            _ => None,
        }
    }

    /// The size counted against `exec-size-limit`.
    pub fn size(&self) -> usize {
        self.code().map(str::len).unwrap_or(0) + self.image().map(str::len).unwrap_or(0)
    }
}

impl Serialize for Exec {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_json(true).serialize(s)
    }
}

impl<'de> Deserialize<'de> for Exec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Stored {
            kind: String,
            code: Option<String>,
            image: Option<String>,
            #[serde(default)]
            binary: bool,
            main: Option<String>,
            components: Option<Vec<String>>,
        }
        let s = Stored::deserialize(d)?;
        Ok(if s.kind == "sequence" {
            Exec::Sequence {
                components: s.components.unwrap_or_default(),
            }
        } else if s.kind == "blackbox" {
            Exec::Blackbox {
                image: s.image.unwrap_or_default(),
                code: s.code,
                binary: s.binary,
                main: s.main,
            }
        } else {
            Exec::Code {
                kind: s.kind,
                code: s.code.unwrap_or_default(),
                binary: s.binary,
                main: s.main,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_kinds_resolve() {
        let m = RuntimeManifest::default();
        assert_eq!(m.resolve("nodejs:default").unwrap().kind, "nodejs:20");
        assert_eq!(m.resolve(" Python:3.11 ").unwrap().kind, "python:3.11");
        let java = m.resolve("java:default").unwrap();
        assert_eq!((java.kind.as_str(), java.require_main), ("java:17", true));
        let err = m.resolve("cobol:1").unwrap_err().to_string();
        assert_eq!(err, "The specified runtime 'cobol:1' is not supported by this platform. Valid values are: 'java:17', 'nodejs:20', 'python:3.11'.");
    }

    #[test]
    fn stem_cells_and_sizes() {
        assert_eq!(parse_megabytes("256 MB"), Some(256));
        assert_eq!(parse_megabytes("1 GB"), Some(1024));
        assert_eq!(parse_megabytes("512m"), Some(512));
        assert_eq!(parse_megabytes("lots"), None);
        let m = RuntimeManifest::from_json(
            r#"{"runtimes":{"nodejs":[{"kind":"nodejs:20","default":true,"image":{"name":"n"},
            "stemCells":[{"initialCount":2,"memory":"256 MB"},{"count":1,"memory":"128 MB"}]}]}}"#,
        )
        .unwrap();
        assert_eq!(
            m.stem_cells(),
            vec![
                StemCell {
                    kind: "nodejs:20".into(),
                    memory_mb: 256,
                    count: 2
                },
                StemCell {
                    kind: "nodejs:20".into(),
                    memory_mb: 128,
                    count: 1
                }
            ]
        );
        assert!(
            !RuntimeManifest::default().stem_cells().is_empty(),
            "the bundled manifest prewarms"
        );
    }

    #[test]
    fn binary_detection() {
        assert!(is_binary_code("UEsDBA=="));
        assert!(!is_binary_code("function main() { return {} }"));
        assert!(!is_binary_code(""));
        assert!(!is_binary_code("abc"));
    }

    #[test]
    fn exec_json_forms() {
        let m = RuntimeManifest::default();
        let put: ExecPut =
            serde_json::from_value(json!({"kind":"nodejs:default","code":"function main(){}"}))
                .unwrap();
        let exec = put.resolve(&m).unwrap();
        assert_eq!(
            serde_json::to_value(&exec).unwrap(),
            json!({"kind":"nodejs:20","code":"function main(){}","binary":false})
        );
        assert_eq!(
            exec.to_json(false),
            json!({"kind":"nodejs:20","binary":false})
        );
        let back: Exec = serde_json::from_value(serde_json::to_value(&exec).unwrap()).unwrap();
        assert_eq!(back, exec);
        let missing: ExecPut = serde_json::from_value(json!({"kind":"python:3.11"})).unwrap();
        assert!(matches!(missing.resolve(&m), Err(ExecError::Malformed(_))));
        let no_main: ExecPut =
            serde_json::from_value(json!({"kind":"java:default","code":"UEsDBA=="})).unwrap();
        assert_eq!(
            no_main.resolve(&m).unwrap_err().to_string(),
            "'main' must be a string defined in 'exec' for 'java:17' actions"
        );
    }
}
