//! Activations: ids, responses with OpenWhisk's four status codes, and the activation record.

use super::parameters::Parameters;
use super::semver::SemVer;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{json, Map, Value};
use std::fmt;

/// The `entityType` of activation documents.
pub const ENTITY_TYPE: &str = "activation";

/// A 32-character lowercase hex activation id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ActivationId(String);

/// An unparseable activation id; `Display` is OpenWhisk's message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActivationIdError {
    /// Wrong length.
    #[error("Activation id length is {0} but must be 32.")]
    Length(usize),
    /// Non-hex characters.
    #[error("The activation id is not valid.")]
    Invalid,
}

impl ActivationId {
    /// A fresh random id.
    pub fn generate() -> Self {
        Self(uuid::Uuid::new_v4().simple().to_string())
    }

    /// Parses an id, as OpenWhisk does.
    pub fn parse(s: &str) -> Result<Self, ActivationIdError> {
        let len = s.chars().count();
        if len != 32 {
            return Err(ActivationIdError::Length(len));
        }
        if !s
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(ActivationIdError::Invalid);
        }
        Ok(Self(s.to_string()))
    }

    /// The id string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ActivationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for ActivationId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for ActivationId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        ActivationId::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// OpenWhisk's activation status codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum StatusCode {
    /// 0: success.
    Success = 0,
    /// 1: the action returned an error.
    ApplicationError = 1,
    /// 2: the action misbehaved (bad result, crash, timeout, init failure).
    DeveloperError = 2,
    /// 3: the platform failed.
    WhiskError = 3,
}

impl StatusCode {
    /// From the numeric code.
    pub fn from_code(c: u8) -> Option<Self> {
        Some(match c {
            0 => Self::Success,
            1 => Self::ApplicationError,
            2 => Self::DeveloperError,
            3 => Self::WhiskError,
            _ => return None,
        })
    }

    /// The API's `status` text.
    pub fn message(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::ApplicationError => "application error",
            Self::DeveloperError => "action developer error",
            Self::WhiskError => "whisk internal error",
        }
    }
}

/// The outcome of an activation: status code and result.
#[derive(Debug, Clone, PartialEq)]
pub struct ActivationResponse {
    /// The status.
    pub status: StatusCode,
    /// The result; errors are always `{"error": ...}`.
    pub result: Option<Value>,
}

impl ActivationResponse {
    /// A success with `result`.
    pub fn success(result: Value) -> Self {
        Self {
            status: StatusCode::Success,
            result: Some(result),
        }
    }

    /// An error response wrapping `error` as `{"error": error}`.
    pub fn error(status: StatusCode, error: impl Into<Value>) -> Self {
        Self {
            status,
            result: Some(json!({ "error": error.into() })),
        }
    }

    /// An application error whose result already is `{"error": ...}`.
    pub fn application_error_result(result: Value) -> Self {
        Self {
            status: StatusCode::ApplicationError,
            result: Some(result),
        }
    }

    /// A developer error with message `msg`.
    pub fn developer_error(msg: impl Into<Value>) -> Self {
        Self::error(StatusCode::DeveloperError, msg)
    }

    /// A whisk internal error with message `msg`.
    pub fn whisk_error(msg: impl Into<Value>) -> Self {
        Self::error(StatusCode::WhiskError, msg)
    }

    /// Whether the status is success.
    pub fn is_success(&self) -> bool {
        self.status == StatusCode::Success
    }

    /// The extended (API) JSON: `{result, success, status, size?}`.
    pub fn to_extended_json(&self) -> Value {
        let mut m = Map::new();
        if let Some(r) = &self.result {
            m.insert("result".into(), r.clone());
            m.insert(
                "size".into(),
                json!(serde_json::to_vec(r).map(|v| v.len()).unwrap_or(0)),
            );
        }
        m.insert("status".into(), json!(self.status.message()));
        m.insert("success".into(), json!(self.is_success()));
        Value::Object(m)
    }
}

impl Serialize for ActivationResponse {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = Map::new();
        m.insert("statusCode".into(), json!(self.status as u8));
        if let Some(r) = &self.result {
            m.insert("result".into(), r.clone());
        }
        Value::Object(m).serialize(s)
    }
}

impl<'de> Deserialize<'de> for ActivationResponse {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Raw {
            status_code: u8,
            result: Option<Value>,
        }
        let r = Raw::deserialize(d)?;
        Ok(Self {
            status: StatusCode::from_code(r.status_code)
                .ok_or_else(|| serde::de::Error::custom("statusCode must be 0-3"))?,
            result: r.result,
        })
    }
}

/// An activation record as stored (OpenWhisk's internal form).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WhiskActivation {
    /// The invoking namespace.
    pub namespace: String,
    /// The action's simple name.
    pub name: String,
    /// The invoking subject.
    pub subject: String,
    /// The id.
    pub activation_id: ActivationId,
    /// Start, epoch ms.
    pub start: u64,
    /// End, epoch ms (0 when not ended, as for trigger activations).
    pub end: u64,
    /// The parent activation (sequence, trigger).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<ActivationId>,
    /// The outcome.
    pub response: ActivationResponse,
    /// Log lines.
    #[serde(default)]
    pub logs: Vec<String>,
    /// Version of the action that ran.
    pub version: SemVer,
    /// Always false.
    #[serde(default)]
    pub publish: bool,
    /// `path`, `kind`, `limits`, `waitTime`, `initTime`, `timeout`, ...
    #[serde(default)]
    pub annotations: Parameters,
    /// Duration in ms when it differs from `end - start`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<u64>,
}

impl WhiskActivation {
    /// The document id `namespace/activationId`.
    pub fn doc_id(&self) -> String {
        doc_id(&self.namespace, &self.activation_id)
    }

    /// The duration as served: the stored one or `end - start`.
    pub fn effective_duration(&self) -> Option<u64> {
        (self.end != 0).then(|| self.duration.unwrap_or(self.end.saturating_sub(self.start)))
    }

    /// The stored document body (with `entityType`).
    pub fn to_document(&self) -> Value {
        let mut v = serde_json::to_value(self).expect("activation serialises");
        v["entityType"] = json!(ENTITY_TYPE);
        v
    }

    /// The fields shared by the extended JSON and the list summary; the summary carries the
    /// numeric `statusCode` of finished activations instead of the response.
    fn served_fields(&self, summary: bool) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("activationId".into(), json!(self.activation_id));
        m.insert("annotations".into(), json!(self.annotations));
        if let Some(c) = &self.cause {
            m.insert("cause".into(), json!(c));
        }
        if let Some(d) = self.effective_duration() {
            m.insert("duration".into(), json!(d));
            m.insert("end".into(), json!(self.end));
            if summary {
                m.insert("statusCode".into(), json!(self.response.status as u8));
            }
        }
        m.insert("name".into(), json!(self.name));
        m.insert("namespace".into(), json!(self.namespace));
        m.insert("publish".into(), json!(self.publish));
        m.insert("start".into(), json!(self.start));
        m.insert("version".into(), json!(self.version));
        m
    }

    /// The API (extended) JSON: response with `status`/`success`, `duration` added, `end` dropped when 0.
    pub fn to_extended_json(&self) -> Value {
        let mut m = self.served_fields(false);
        m.insert("logs".into(), json!(self.logs));
        m.insert("response".into(), self.response.to_extended_json());
        m.insert("subject".into(), json!(self.subject));
        Value::Object(m)
    }

    /// The list-item summary (OpenWhisk's `activations` view value, numeric `statusCode`).
    pub fn summary(&self) -> Value {
        Value::Object(self.served_fields(true))
    }
}

/// The document id of activation `id` in `namespace`.
pub fn doc_id(namespace: &str, id: &ActivationId) -> String {
    format!("{namespace}/{id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        let id = ActivationId::generate();
        assert_eq!(id.as_str().len(), 32);
        assert!(ActivationId::parse(id.as_str()).is_ok());
        assert_eq!(
            ActivationId::parse("abc").unwrap_err().to_string(),
            "Activation id length is 3 but must be 32."
        );
        assert_eq!(
            ActivationId::parse(&"G".repeat(32))
                .unwrap_err()
                .to_string(),
            "The activation id is not valid."
        );
        assert!(ActivationId::parse(&"A".repeat(32)).is_err());
    }

    fn sample(end: u64) -> WhiskActivation {
        WhiskActivation {
            namespace: "guest".into(),
            name: "hello".into(),
            subject: "guest".into(),
            activation_id: ActivationId::parse("0123456789abcdef0123456789abcdef").unwrap(),
            start: 1000,
            end,
            cause: None,
            response: ActivationResponse::developer_error("boom"),
            logs: vec!["l".into()],
            version: SemVer::INITIAL,
            publish: false,
            annotations: Parameters::new().with("kind", json!("nodejs:20")),
            duration: None,
        }
    }

    #[test]
    fn stored_and_extended_forms() {
        let a = sample(1250);
        let stored = serde_json::to_value(&a).unwrap();
        assert_eq!(
            stored["response"],
            json!({"statusCode":2,"result":{"error":"boom"}})
        );
        assert_eq!(
            serde_json::from_value::<WhiskActivation>(stored).unwrap(),
            a
        );
        let ext = a.to_extended_json();
        assert_eq!(ext["duration"], json!(250));
        assert_eq!(
            ext["response"],
            json!({"result":{"error":"boom"},"size":16,"status":"action developer error","success":false})
        );
        assert_eq!(a.summary()["statusCode"], json!(2));
    }

    #[test]
    fn unfinished_activation_has_no_end() {
        let a = sample(0);
        let ext = a.to_extended_json();
        assert!(ext.get("end").is_none() && ext.get("duration").is_none());
        assert!(a.summary().get("statusCode").is_none());
    }
}
