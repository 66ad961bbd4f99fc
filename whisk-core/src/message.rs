//! The messages that cross the bus, in OpenWhisk's JSON shapes.

use crate::entity::{ActivationId, FullyQualifiedEntityName, Identity, WhiskActivation};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::time::{SystemTime, UNIX_EPOCH};

thread_local! {
    /// This thread's virtual epoch, see [`use_virtual_clock`].
    static VIRTUAL_EPOCH: std::cell::Cell<Option<(u64, tokio::time::Instant)>> =
        const { std::cell::Cell::new(None) };
}

/// Milliseconds since the epoch, now: the system clock, or on a thread that called
/// [`use_virtual_clock`], the virtual time of its Tokio runtime.
pub fn now_ms() -> u64 {
    if let Some((base, at)) = VIRTUAL_EPOCH.with(std::cell::Cell::get) {
        return base + tokio::time::Instant::now().duration_since(at).as_millis() as u64;
    }
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Makes [`now_ms`] on the calling thread read Tokio's clock, starting at `base_ms` now, so a
/// current-thread runtime with paused time (the simulator, `whisk_core::sim`) stamps
/// activations, wait and init times in virtual time. Other threads keep the system clock.
pub fn use_virtual_clock(base_ms: u64) {
    VIRTUAL_EPOCH.with(|v| v.set(Some((base_ms, tokio::time::Instant::now()))));
}

/// Undoes [`use_virtual_clock`] on the calling thread.
pub fn use_system_clock() {
    VIRTUAL_EPOCH.with(|v| v.set(None));
}

/// A transaction id: `["<id>", <start ms>]` on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransactionId(pub String, pub u64);

impl TransactionId {
    /// A new random 32-character id starting now.
    pub fn generate() -> Self {
        Self(uuid::Uuid::new_v4().simple().to_string(), now_ms())
    }

    /// Adopts a client's `X-Request-ID` unless it starts with `sid_` (OpenWhisk's rule).
    pub fn from_header(header: Option<&str>) -> Self {
        match header {
            Some(h) if !h.is_empty() && !h.starts_with("sid_") && h.len() <= 256 => {
                Self(h.to_string(), now_ms())
            }
            _ => Self::generate(),
        }
    }

    /// The id string.
    pub fn id(&self) -> &str {
        &self.0
    }

    /// Start, epoch ms.
    pub fn start_ms(&self) -> u64 {
        self.1
    }
}

/// `{"asString":"0","instanceType":"controller"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ControllerInstanceId {
    /// The controller id as a string.
    pub as_string: String,
    /// Always `controller`.
    pub instance_type: String,
}

impl ControllerInstanceId {
    /// Controller `n`.
    pub fn new(n: u32) -> Self {
        Self {
            as_string: n.to_string(),
            instance_type: "controller".into(),
        }
    }
}

/// `{instance, userMemory: "N B", instanceType: "invoker", tags, dedicatedNamespaces}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InvokerInstanceId {
    /// Invoker number.
    pub instance: u32,
    /// User memory as OpenWhisk's ByteSize string, e.g. `"2147483648 B"`.
    pub user_memory: String,
    /// Memory in use, as a ByteSize string (FPC invokers only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub busy_memory: Option<String>,
    /// Always `invoker`.
    pub instance_type: String,
    /// Scheduling tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Namespaces only this invoker serves.
    #[serde(default)]
    pub dedicated_namespaces: Vec<String>,
    /// A name unique to this invoker process (OpenWhisk: the host's unique name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unique_name: Option<String>,
    /// A name to show operators.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub displayed_name: Option<String>,
}

impl InvokerInstanceId {
    /// Invoker `n` with `memory_mb` of user memory.
    pub fn new(n: u32, memory_mb: u64) -> Self {
        Self {
            instance: n,
            user_memory: format!("{} B", memory_mb * 1024 * 1024),
            busy_memory: None,
            instance_type: "invoker".into(),
            tags: vec![],
            dedicated_namespaces: vec![],
            unique_name: None,
            displayed_name: None,
        }
    }

    /// The user memory in MB, parsed from OpenWhisk's ByteSize string (`"2147483648 B"`,
    /// `"2048 MB"`, `"2 GB"`, ...); `None` when unreadable.
    pub fn user_memory_mb(&self) -> Option<u64> {
        parse_byte_size(&self.user_memory).map(|b| b / (1024 * 1024))
    }

    /// OpenWhisk's `toString`: `invoker{N}`, then `/uniqueName` and `/displayedName` when set.
    /// The key of `GET /invokers`.
    pub fn display(&self) -> String {
        let mut s = format!("invoker{}", self.instance);
        for part in [&self.unique_name, &self.displayed_name]
            .into_iter()
            .flatten()
        {
            s.push('/');
            s.push_str(part);
        }
        s
    }
}

/// Bytes of an OpenWhisk ByteSize string: a number and a unit `B`, `K`/`KB`, `M`/`MB` or
/// `G`/`GB` (case-insensitive, optional space).
pub fn parse_byte_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().ok()?;
    let factor: u64 = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "K" | "KB" => 1024,
        "M" | "MB" => 1024 * 1024,
        "G" | "GB" => 1024 * 1024 * 1024,
        _ => return None,
    };
    n.checked_mul(factor)
}

/// An invoker's heartbeat on topic `health`: `{"name":<InvokerInstanceId>,"isEnabled":true}`.
/// Invokers send one every second; `isEnabled: false` says the invoker was disabled (it is
/// shutting down) and takes it out of scheduling at once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PingMessage {
    /// The invoker.
    pub name: InvokerInstanceId,
    /// Whether it accepts work; absent means enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_enabled: Option<bool>,
    /// whisk's extension: the invoker's warm containers, for schedulers that place work by
    /// them ([`Scheduler::invoker_report`](crate::scheduler::Scheduler::invoker_report)).
    /// OpenWhisk's controllers ignore the field; absent from OpenWhisk's invokers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<PoolReport>,
}

/// What an invoker's container pool holds, as its pings report it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolReport {
    /// Each warm container (initialised for an action), busy or idle.
    pub containers: Vec<ContainerReport>,
}

/// One warm container in a [`PoolReport`]. Times are relative, so the reader's clock need not
/// agree with the invoker's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerReport {
    /// The action it is initialised for, `ns/[pkg/]name`.
    pub action: String,
    /// Its memory, MB.
    pub memory_mb: u64,
    /// Whether it runs an activation now.
    pub busy: bool,
    /// Idle: ms since its last run ended (0 when busy).
    pub idle_ms: u64,
    /// Idle: ms until the keep-alive policy removes it (0 when busy).
    pub expires_in_ms: u64,
}

impl PingMessage {
    /// A ping of `name` with `isEnabled` set.
    pub fn new(name: InvokerInstanceId, enabled: bool) -> Self {
        Self {
            name,
            is_enabled: Some(enabled),
            pool: None,
        }
    }

    /// Whether the invoker is enabled (`isEnabled` absent counts as enabled, as in OpenWhisk).
    pub fn invoker_enabled(&self) -> bool {
        self.is_enabled.unwrap_or(true)
    }

    /// The JSON wire form.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("ping serialises")
    }

    /// Parses the wire form.
    pub fn parse(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

/// The request to run an action, sent to `invoker{N}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActivationMessage {
    /// Transaction.
    pub transid: TransactionId,
    /// The action with its version.
    pub action: FullyQualifiedEntityName,
    /// Document revision of the action.
    pub revision: Option<String>,
    /// The invoking identity.
    pub user: Identity,
    /// The new activation's id.
    pub activation_id: ActivationId,
    /// Where to send the acknowledgement.
    pub root_controller_index: ControllerInstanceId,
    /// Whether a client waits for the result.
    pub blocking: bool,
    /// The action argument (merged parameters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<Value>,
    /// Names of parameters passed to `/init`.
    #[serde(default)]
    pub init_args: Vec<String>,
    /// Encrypted parameters (none in whisk).
    #[serde(default)]
    pub locked_args: Value,
    /// Parent activation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<ActivationId>,
}

/// The `response` of an acknowledgement: the whole activation or only its id.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum AckResponse {
    /// Just the id (non-blocking acks are shrunk to this).
    Id(ActivationId),
    /// The full record.
    Activation(Box<WhiskActivation>),
}

/// A string is the id, an object the activation: read in one pass (serde's untagged enums
/// buffer the whole activation first and then try each variant).
impl<'de> Deserialize<'de> for AckResponse {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::{self, IntoDeserializer};
        struct Either;
        impl<'de> de::Visitor<'de> for Either {
            type Value = AckResponse;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an activation id or an activation")
            }
            fn visit_str<E: de::Error>(self, id: &str) -> Result<AckResponse, E> {
                ActivationId::deserialize(id.into_deserializer()).map(AckResponse::Id)
            }
            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<AckResponse, A::Error> {
                WhiskActivation::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(|a| AckResponse::Activation(Box::new(a)))
            }
        }
        deserializer.deserialize_any(Either)
    }
}

/// An acknowledgement as it is written: serialised straight from the message's fields (no
/// intermediate JSON tree), fields in OpenWhisk's order, absent ones left out.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AckWire<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    response: Option<&'a AckResponse>,
    #[serde(skip_serializing_if = "Option::is_none")]
    activation_id: Option<&'a ActivationId>,
    transid: &'a TransactionId,
    #[serde(skip_serializing_if = "Option::is_none")]
    is_system_error: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    instance: Option<&'a InvokerInstanceId>,
}

impl Serialize for Acknowledgement {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.wire().serialize(serializer)
    }
}

/// Acknowledgements on `completed{controller}`, told apart by their fields as OpenWhisk does.
#[derive(Debug, Clone, PartialEq)]
pub enum Acknowledgement {
    /// Result and completion in one (`CombinedCompletionAndResultMessage`).
    Combined {
        /// Transaction.
        transid: TransactionId,
        /// The activation or its id.
        response: AckResponse,
        /// Whether the invoker failed with a system error.
        is_system_error: bool,
        /// The invoker.
        instance: InvokerInstanceId,
    },
    /// Completion only; frees the slot (`CompletionMessage`).
    Completion {
        /// Transaction.
        transid: TransactionId,
        /// The activation id.
        activation_id: ActivationId,
        /// Whether the invoker failed with a system error.
        is_system_error: bool,
        /// The invoker.
        instance: InvokerInstanceId,
    },
    /// Result only (`ResultMessage`).
    Result {
        /// Transaction.
        transid: TransactionId,
        /// The activation or its id.
        response: AckResponse,
    },
}

impl Acknowledgement {
    /// The transaction it belongs to.
    pub fn transid(&self) -> &TransactionId {
        match self {
            Self::Combined { transid, .. }
            | Self::Completion { transid, .. }
            | Self::Result { transid, .. } => transid,
        }
    }

    /// The activation id it is about.
    pub fn activation_id(&self) -> &ActivationId {
        match self {
            Self::Combined { response, .. } | Self::Result { response, .. } => match response {
                AckResponse::Id(id) => id,
                AckResponse::Activation(a) => &a.activation_id,
            },
            Self::Completion { activation_id, .. } => activation_id,
        }
    }

    /// The JSON wire form.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).expect("acknowledgements serialise")
    }

    /// The fields of the wire form (absent ones are `None`).
    fn wire(&self) -> AckWire<'_> {
        let mut w = AckWire {
            transid: self.transid(),
            response: None,
            activation_id: None,
            is_system_error: None,
            instance: None,
        };
        match self {
            Self::Combined {
                response,
                is_system_error,
                instance,
                ..
            } => {
                w.response = Some(response);
                w.is_system_error = Some(*is_system_error);
                w.instance = Some(instance);
            }
            Self::Completion {
                activation_id,
                is_system_error,
                instance,
                ..
            } => {
                w.activation_id = Some(activation_id);
                w.is_system_error = Some(*is_system_error);
                w.instance = Some(instance);
            }
            Self::Result { response, .. } => w.response = Some(response),
        }
        w
    }

    /// Parses the wire form, choosing the type by which fields are present.
    pub fn parse(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Raw {
            transid: TransactionId,
            response: Option<AckResponse>,
            activation_id: Option<ActivationId>,
            is_system_error: Option<bool>,
            instance: Option<InvokerInstanceId>,
        }
        let r: Raw = serde_json::from_slice(bytes)?;
        use serde::de::Error;
        Ok(match (r.response, r.activation_id, r.instance) {
            (Some(response), _, Some(instance)) => Self::Combined {
                transid: r.transid,
                response,
                is_system_error: r.is_system_error.unwrap_or(false),
                instance,
            },
            (None, Some(activation_id), Some(instance)) => Self::Completion {
                transid: r.transid,
                activation_id,
                is_system_error: r.is_system_error.unwrap_or(false),
                instance,
            },
            (Some(response), _, None) => Self::Result {
                transid: r.transid,
                response,
            },
            _ => return Err(serde_json::Error::custom("not an acknowledgement")),
        })
    }
}

/// `eventType` of events whose body is an [`ActivationEvent`].
pub const EVENT_TYPE_ACTIVATION: &str = "Activation";
/// `eventType` of events whose body is a [`MetricEvent`].
pub const EVENT_TYPE_METRIC: &str = "Metric";
/// The metric of a request refused by the concurrent-invocations throttle.
pub const METRIC_CONCURRENT_RATE_LIMIT: &str = "ConcurrentRateLimit";
/// The metric of a request refused by a per-minute throttle (invocations or trigger fires).
pub const METRIC_TIMED_RATE_LIMIT: &str = "TimedRateLimit";
/// The metric of an accepted invocation: the namespace's activations in flight, this one
/// included.
pub const METRIC_CONCURRENT_INVOCATIONS: &str = "ConcurrentInvocations";

/// A user event on topic `events` (OpenWhisk's `EventMessage`, sent when user events are
/// enabled): an [`ActivationEvent`] from the invoker after each activation, or a
/// [`MetricEvent`] from the controller, e.g. for a throttled request.
///
/// ```json
/// {"source":"invoker0","body":{...},"subject":"guest","namespace":"guest",
///  "userId":"23bc46b1-71f6-4ed5-8c54-816aa4f8c502","eventType":"Activation",
///  "timestamp":1700000000000}
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventMessage {
    /// Who sent it: `invoker{N}` or `controller{N}`.
    pub source: String,
    /// The activation or metric.
    pub body: EventBody,
    /// The subject (user) it concerns.
    pub subject: String,
    /// The namespace it concerns.
    pub namespace: String,
    /// The UUID of that namespace.
    pub user_id: String,
    /// `Activation` or `Metric`, after the body.
    pub event_type: String,
    /// When it was made, epoch ms.
    pub timestamp: u64,
}

/// The body of an [`EventMessage`]; told apart, as OpenWhisk does, by `metricName`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum EventBody {
    /// A metric (has `metricName`).
    Metric(MetricEvent),
    /// An activation (anything else).
    Activation(ActivationEvent),
}

impl EventBody {
    /// The `eventType` of an event with this body.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Metric(_) => EVENT_TYPE_METRIC,
            Self::Activation(_) => EVENT_TYPE_ACTIVATION,
        }
    }
}

/// OpenWhisk's `Activation` event body: one finished activation. Times are milliseconds;
/// the optional fields are left out when absent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActivationEvent {
    /// The action's fully qualified name without version, e.g. `guest/pkg/hello` (the
    /// activation's `path` annotation).
    pub name: String,
    /// The activation id.
    pub activation_id: ActivationId,
    /// 0 success, 1 application error, 2 developer error, 3 whisk internal error.
    pub status_code: u8,
    /// Run time, ms.
    #[serde(deserialize_with = "millis")]
    pub duration: u64,
    /// Time from the request to the start of the run, ms (`waitTime` annotation).
    #[serde(deserialize_with = "millis")]
    pub wait_time: u64,
    /// Container initialisation time, ms; 0 for a warm start (`initTime` annotation).
    #[serde(deserialize_with = "millis")]
    pub init_time: u64,
    /// The action kind, e.g. `nodejs:20`.
    pub kind: String,
    /// Whether the action is a conductor (`conductor` annotation).
    pub conductor: bool,
    /// The action's memory limit, MB.
    pub memory: u64,
    /// `sequence` when run as a sequence component (`causedBy` annotation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caused_by: Option<String>,
    /// Size of the result, bytes: OpenWhisk's size of the runtime's response; whisk's the
    /// compact JSON of the result, as the API's `response.size`. Absent without a result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// The status code the action set in its result (`error.statusCode` or `statusCode`),
    /// 400 when that is not an integer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_defined_status_code: Option<i32>,
}

/// OpenWhisk's `Metric` event body, e.g. `{"metricName":"TimedRateLimit","metricValue":1}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricEvent {
    /// The metric, e.g. [`METRIC_TIMED_RATE_LIMIT`] or [`METRIC_CONCURRENT_RATE_LIMIT`].
    pub metric_name: String,
    /// Its value.
    pub metric_value: i64,
}

/// Reads OpenWhisk's durations: a number of ms, where zero, negative or unreadable is 0.
fn millis<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let n = serde_json::Number::deserialize(d)?;
    Ok(n.as_u64()
        .or_else(|| n.as_f64().map(|f| if f > 0.0 { f as u64 } else { 0 }))
        .unwrap_or(0))
}

/// The status code an action set in its result, as OpenWhisk reads it: `error.statusCode`,
/// else `statusCode`, of an object result; an integer (or a string of one), else 400.
pub fn user_defined_status_code(result: Option<&Value>) -> Option<i32> {
    let obj = result?.as_object()?;
    let code = obj
        .get("error")
        .and_then(|e| e.get("statusCode"))
        .or_else(|| obj.get("statusCode"))?;
    let n = match code {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f.trunc() as i64)),
        Value::String(s) => s.parse::<i64>().ok(),
        _ => None,
    };
    // OpenWhisk takes `intValue` of the integer: the low 32 bits.
    Some(n.map_or(400, |n| n as i32))
}

impl ActivationEvent {
    /// The event body of `a`, from its annotations as OpenWhisk's `Activation.from`;
    /// `None` without the `path` and `kind` annotations it cannot do without.
    pub fn from_activation(a: &WhiskActivation) -> Option<Self> {
        let ann = |k: &str| a.annotations.get(k);
        let ms = |k: &str| ann(k).and_then(Value::as_u64).unwrap_or(0);
        Some(Self {
            name: ann("path")?.as_str()?.to_string(),
            activation_id: a.activation_id.clone(),
            status_code: a.response.status as u8,
            duration: a.duration.unwrap_or(0),
            wait_time: ms("waitTime"),
            init_time: ms("initTime"),
            kind: ann("kind")?.as_str()?.to_string(),
            conductor: ann("conductor").and_then(Value::as_bool).unwrap_or(false),
            memory: ann("limits")
                .and_then(|l| l.get("memory"))
                .and_then(Value::as_u64)
                .unwrap_or(0),
            caused_by: ann("causedBy").and_then(Value::as_str).map(String::from),
            size: a
                .response
                .result
                .as_ref()
                .and_then(|r| serde_json::to_vec(r).ok())
                .map(|v| v.len() as u64),
            user_defined_status_code: user_defined_status_code(a.response.result.as_ref()),
        })
    }
}

impl EventMessage {
    /// The `Activation` event of `a`, sent by `source`, for the namespace with UUID `user_id`
    /// (subject and namespace are the activation's); `None` when `a` lacks the `path` or
    /// `kind` annotation.
    pub fn activation(source: &str, a: &WhiskActivation, user_id: &str) -> Option<Self> {
        let body = ActivationEvent::from_activation(a)?;
        Some(Self {
            source: source.to_string(),
            body: EventBody::Activation(body),
            subject: a.subject.clone(),
            namespace: a.namespace.clone(),
            user_id: user_id.to_string(),
            event_type: EVENT_TYPE_ACTIVATION.to_string(),
            timestamp: now_ms(),
        })
    }

    /// The `Metric` event `name` = `value` about `user`, sent by `source`.
    pub fn metric(source: &str, user: &Identity, name: &str, value: i64) -> Self {
        Self {
            source: source.to_string(),
            body: EventBody::Metric(MetricEvent {
                metric_name: name.to_string(),
                metric_value: value,
            }),
            subject: user.subject.clone(),
            namespace: user.namespace.name.clone(),
            user_id: user.namespace.uuid.clone(),
            event_type: EVENT_TYPE_METRIC.to_string(),
            timestamp: now_ms(),
        }
    }

    /// The JSON wire form.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("event serialises")
    }

    /// Parses the wire form.
    pub fn parse(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entity::identity::{AuthKey, GUEST_KEY};
    use serde_json::json;

    #[test]
    fn activation_message_json() {
        let m = ActivationMessage {
            transid: TransactionId("abc".into(), 5),
            action: FullyQualifiedEntityName {
                path: "guest".into(),
                name: "hello".into(),
                version: Some("0.0.1".into()),
                binding: None,
            },
            revision: Some("1-x".into()),
            user: Identity::new("guest", "guest", &AuthKey::parse(GUEST_KEY).unwrap()),
            activation_id: ActivationId::parse("0123456789abcdef0123456789abcdef").unwrap(),
            root_controller_index: ControllerInstanceId::new(0),
            blocking: true,
            content: Some(json!({"a":1})),
            init_args: vec![],
            locked_args: json!({}),
            cause: None,
        };
        let v = serde_json::to_value(&m).unwrap();
        assert_eq!(v["transid"], json!(["abc", 5]));
        assert_eq!(
            v["rootControllerIndex"],
            json!({"asString":"0","instanceType":"controller"})
        );
        assert_eq!(v["user"]["authkey"], json!({"api_key": GUEST_KEY}));
        assert_eq!(
            v["action"],
            json!({"path":"guest","name":"hello","version":"0.0.1"})
        );
        assert_eq!(serde_json::from_value::<ActivationMessage>(v).unwrap(), m);
    }

    #[test]
    fn acknowledgements_parse_by_fields() {
        let id = ActivationId::generate();
        let inst = InvokerInstanceId::new(0, 1024);
        assert_eq!(inst.user_memory, "1073741824 B");
        let acks = [
            Acknowledgement::Combined {
                transid: TransactionId("t".into(), 1),
                response: AckResponse::Id(id.clone()),
                is_system_error: false,
                instance: inst.clone(),
            },
            Acknowledgement::Completion {
                transid: TransactionId("t".into(), 1),
                activation_id: id.clone(),
                is_system_error: true,
                instance: inst,
            },
            Acknowledgement::Result {
                transid: TransactionId("t".into(), 1),
                response: AckResponse::Id(id.clone()),
            },
        ];
        let keys = |v: &Value| {
            let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
            k.sort();
            k
        };
        let expected_keys = [
            vec!["instance", "isSystemError", "response", "transid"],
            vec!["activationId", "instance", "isSystemError", "transid"],
            vec!["response", "transid"],
        ];
        for (ack, expected) in acks.into_iter().zip(expected_keys) {
            let bytes = serde_json::to_vec(&ack).unwrap();
            assert_eq!(keys(&serde_json::from_slice(&bytes).unwrap()), expected);
            assert_eq!(
                serde_json::to_vec(&ack.to_json()).unwrap().len(),
                bytes.len()
            );
            let back = Acknowledgement::parse(&bytes).unwrap();
            assert_eq!(back, ack);
            assert_eq!(back.activation_id(), &id);
        }
        // A whole activation as the response, read in one pass.
        let record: WhiskActivation = serde_json::from_value(json!({
            "namespace": "guest", "name": "hello", "subject": "guest",
            "activationId": id.to_string(), "start": 1, "end": 2, "duration": 1,
            "response": {"status": "success", "statusCode": 0, "success": true,
                "result": {"x": 1}},
            "logs": [], "version": "0.0.1", "publish": false, "annotations": []
        }))
        .unwrap();
        let result = Acknowledgement::Result {
            transid: TransactionId("t".into(), 1),
            response: AckResponse::Activation(Box::new(record)),
        };
        let back = Acknowledgement::parse(&serde_json::to_vec(&result).unwrap()).unwrap();
        assert_eq!(back, result);
        assert!(Acknowledgement::parse(br#"{"transid":["t",1]}"#).is_err());
        assert!(Acknowledgement::parse(br#"{"transid":["t",1],"response":7}"#).is_err());
    }

    #[test]
    fn ping_json_matches_openwhisk() {
        // As OpenWhisk's InvokerReactive sends it (spray-json field order).
        let raw = r#"{"name":{"instance":3,"userMemory":"2147483648 B","instanceType":"invoker","tags":[],"dedicatedNamespaces":[]},"isEnabled":true}"#;
        let p = PingMessage::parse(raw.as_bytes()).unwrap();
        assert_eq!(p, PingMessage::new(InvokerInstanceId::new(3, 2048), true));
        assert_eq!(String::from_utf8(p.to_bytes()).unwrap(), raw);
        assert_eq!(p.name.user_memory_mb(), Some(2048));
        assert!(p.invoker_enabled());
        // isEnabled is optional and means enabled; OpenWhisk's optional fields are read too.
        let p = PingMessage::parse(
            br#"{"name":{"instance":0,"userMemory":"512 MB","busyMemory":"0 B","instanceType":"invoker","tags":["a"],"dedicatedNamespaces":[],"uniqueName":"host-1","displayedName":"one"}}"#,
        )
        .unwrap();
        assert_eq!(p.is_enabled, None);
        assert!(p.invoker_enabled());
        assert_eq!(p.name.user_memory_mb(), Some(512));
        assert_eq!(p.name.display(), "invoker0/host-1/one");
        let v = serde_json::to_value(&p).unwrap();
        assert_eq!(v["name"]["uniqueName"], "host-1");
        assert!(v.get("isEnabled").is_none());
        // whisk's pool report rides along and round-trips; OpenWhisk's pings lack it.
        let mut with_pool = PingMessage::new(InvokerInstanceId::new(2, 1024), true);
        with_pool.pool = Some(PoolReport {
            containers: vec![ContainerReport {
                action: "guest/pkg/hello".into(),
                memory_mb: 256,
                busy: false,
                idle_ms: 1500,
                expires_in_ms: 598_500,
            }],
        });
        let v = serde_json::to_value(&with_pool).unwrap();
        assert_eq!(
            v["pool"]["containers"][0],
            serde_json::json!({"action": "guest/pkg/hello", "memoryMb": 256, "busy": false,
                "idleMs": 1500, "expiresInMs": 598_500})
        );
        assert_eq!(
            PingMessage::parse(&with_pool.to_bytes()).unwrap(),
            with_pool
        );
        let off = PingMessage::new(InvokerInstanceId::new(1, 256), false);
        assert_eq!(serde_json::to_value(&off).unwrap()["isEnabled"], false);
        assert!(!PingMessage::parse(&off.to_bytes())
            .unwrap()
            .invoker_enabled());
    }

    #[test]
    fn byte_sizes() {
        assert_eq!(parse_byte_size("1024 B"), Some(1024));
        assert_eq!(parse_byte_size("2 GB"), Some(2 << 30));
        assert_eq!(parse_byte_size("256M"), Some(256 << 20));
        assert_eq!(parse_byte_size("7 parsecs"), None);
    }

    #[test]
    fn request_id_adoption() {
        assert_eq!(TransactionId::from_header(Some("mine")).id(), "mine");
        assert_ne!(TransactionId::from_header(Some("sid_x")).id(), "sid_x");
        assert_eq!(TransactionId::from_header(None).id().len(), 32);
    }

    /// An activation record as the invoker writes it, in the shape of OpenWhisk's
    /// `EventMessageTests`.
    fn event_activation() -> WhiskActivation {
        use crate::entity::{ActivationResponse, Parameters, SemVer};
        WhiskActivation {
            namespace: "ns".into(),
            name: "a".into(),
            subject: "alice".into(),
            activation_id: ActivationId::parse("0123456789abcdef0123456789abcdef").unwrap(),
            start: 1_000,
            end: 1_123,
            cause: None,
            response: ActivationResponse::success(json!({"res": 1})),
            logs: vec![],
            version: SemVer::INITIAL,
            publish: false,
            annotations: Parameters::new()
                .with(
                    "limits",
                    json!({"timeout": 1000, "memory": 128, "logs": 1, "concurrency": 1}),
                )
                .with("waitTime", json!(5))
                .with("initTime", json!(10))
                .with("kind", json!("testkind"))
                .with("path", json!("ns2/a"))
                .with("causedBy", json!("sequence")),
            duration: Some(123),
        }
    }

    #[test]
    fn activation_event_json_matches_openwhisk() {
        let a = event_activation();
        let mut e = EventMessage::activation("invoker0", &a, "uuid-1").unwrap();
        assert!(e.timestamp > 0);
        e.timestamp = 1_700_000_000_000;
        // spray-json's field order; absent options are left out.
        let raw = r#"{"source":"invoker0","body":{"name":"ns2/a","activationId":"0123456789abcdef0123456789abcdef","statusCode":0,"duration":123,"waitTime":5,"initTime":10,"kind":"testkind","conductor":false,"memory":128,"causedBy":"sequence","size":9},"subject":"alice","namespace":"ns","userId":"uuid-1","eventType":"Activation","timestamp":1700000000000}"#;
        assert_eq!(String::from_utf8(e.to_bytes()).unwrap(), raw);
        assert_eq!(EventMessage::parse(raw.as_bytes()).unwrap(), e);
        assert_eq!(e.body.type_name(), e.event_type);

        // Defaults for optional annotations; path and kind are required.
        let mut bare = a.clone();
        bare.duration = None;
        bare.annotations = crate::entity::Parameters::new()
            .with("kind", json!("testkind"))
            .with("path", json!("ns2/a"));
        let EventBody::Activation(b) = EventMessage::activation("invoker0", &bare, "u")
            .unwrap()
            .body
        else {
            panic!("not an activation body")
        };
        assert_eq!(
            (b.duration, b.wait_time, b.init_time, b.memory, b.conductor),
            (0, 0, 0, 0, false)
        );
        assert_eq!(b.caused_by, None);
        for missing in ["kind", "path"] {
            let mut x = a.clone();
            x.annotations.remove(missing);
            assert!(EventMessage::activation("invoker0", &x, "u").is_none());
        }
    }

    #[test]
    fn activation_event_parses_openwhisk_json() {
        // All optional fields present, durations as OpenWhisk may write them.
        let raw = r#"{"source":"invoker3","body":{"name":"guest/pkg/act","activationId":"0123456789abcdef0123456789abcdef","statusCode":1,"duration":7,"waitTime":-1,"initTime":0,"kind":"nodejs:20","conductor":true,"memory":256,"size":42,"userDefinedStatusCode":404},"subject":"guest","namespace":"guest","userId":"23bc46b1-71f6-4ed5-8c54-816aa4f8c502","eventType":"Activation","timestamp":1}"#;
        let e = EventMessage::parse(raw.as_bytes()).unwrap();
        let EventBody::Activation(b) = &e.body else {
            panic!("not an activation body")
        };
        assert_eq!(b.status_code, 1);
        assert_eq!(b.wait_time, 0, "negative durations read as zero");
        assert_eq!(b.size, Some(42));
        assert_eq!(b.user_defined_status_code, Some(404));
        assert!(b.conductor);
        assert_eq!(e.user_id, "23bc46b1-71f6-4ed5-8c54-816aa4f8c502");
    }

    #[test]
    fn metric_event_json_matches_openwhisk() {
        let user = Identity::new("guest", "guest", &AuthKey::parse(GUEST_KEY).unwrap());
        let mut e = EventMessage::metric("controller0", &user, METRIC_TIMED_RATE_LIMIT, 1);
        e.timestamp = 5;
        let raw = format!(
            r#"{{"source":"controller0","body":{{"metricName":"TimedRateLimit","metricValue":1}},"subject":"guest","namespace":"guest","userId":"{}","eventType":"Metric","timestamp":5}}"#,
            user.namespace.uuid
        );
        assert_eq!(String::from_utf8(e.to_bytes()).unwrap(), raw);
        assert_eq!(EventMessage::parse(raw.as_bytes()).unwrap(), e);
        // A body with `metricName` is a metric, whatever else it has.
        let m = r#"{"source":"controller1","body":{"metricName":"ConcurrentRateLimit","metricValue":1,"name":"x"},"subject":"s","namespace":"n","userId":"u","eventType":"Metric","timestamp":5}"#;
        assert_eq!(
            EventMessage::parse(m.as_bytes()).unwrap().body,
            EventBody::Metric(MetricEvent {
                metric_name: METRIC_CONCURRENT_RATE_LIMIT.into(),
                metric_value: 1
            })
        );
    }

    #[test]
    fn user_defined_status_codes() {
        let code = |v: Value| user_defined_status_code(Some(&v));
        assert_eq!(code(json!({"statusCode": 404, "body": "x"})), Some(404));
        assert_eq!(code(json!({"error": {"statusCode": "404"}})), Some(404));
        assert_eq!(code(json!({"statusCode": "i404"})), Some(400));
        assert_eq!(code(json!({"error": {"statusCode": null}})), Some(400));
        assert_eq!(
            code(json!({"error": "plain", "statusCode": 201})),
            Some(201)
        );
        assert_eq!(code(json!({"res": 1})), None);
        assert_eq!(code(json!([1])), None);
        assert_eq!(user_defined_status_code(None), None);
    }
}
