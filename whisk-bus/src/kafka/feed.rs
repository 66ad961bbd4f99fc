//! The Kafka topic event source, shaped like OpenWhisk's `/whisk.system/messaging/kafkaFeed`:
//! every message produced on a topic fires the trigger, in batches.
//!
//! Register it with a [`FeedProvider`](whisk_core::feeds::FeedProvider):
//! `provider.with_source(Arc::new(KafkaFeed::new()))`.
//!
//! # Parameters
//!
//! - `brokers` (required): the bootstrap brokers, an array of `host:port` or a comma-separated
//!   string.
//! - `topic` (required): the topic; it must exist when the trigger is created.
//! - `isJSONData`: parse each value as JSON (a value that is not JSON stays a string).
//! - `isBinaryValue`, `isBinaryKey`: pass values / keys base64-encoded (for binary data).
//! - `maxBatchSize`: most messages per fire (1 to 10 000, default 100).
//! - `batchWaitMs`: how long a batch gathers after its first message (0 to 60 000 ms,
//!   default 100).
//!
//! # Payload
//!
//! As OpenWhisk's messaging provider: `{"messages": [{"partition", "key", "offset", "topic",
//! "value"}, ...]}`, in offset order within a partition. A batch also stops growing at about
//! 900 KB of messages, so a fire stays under the default 1 MB payload limit.
//!
//! # Offsets and restarts
//!
//! Each registration reads as its own consumer group, `whisk-feed/<namespace>/<trigger>/<created>`
//! (the creation time makes a trigger deleted and created again a new group), with manually
//! assigned partitions: no group join, so no join delay and no rebalances. On `CREATE` the
//! source checks that the topic exists and records the high watermark of every partition in the
//! registration; a partition without committed offsets starts there, so every message produced
//! after `CREATE` returned is delivered and none produced before it. Offsets are committed to
//! the group (synchronously, `enable.auto.commit=false`) only after the fire was accepted, so a
//! restart of the platform resumes after the last accepted batch: no message fires twice, unless
//! the platform stops between a fire and its commit (then that one batch fires again:
//! at-least-once). Partitions added to the topic later are read from their beginning.
//!
//! # Failures
//!
//! A missing topic refuses `CREATE` (`Topic 'x' does not exist on brokers ...`), as do brokers
//! that do not answer within a few seconds (`Kafka brokers ... unreachable: ...`). Once running,
//! the source keeps retrying while the brokers are unreachable (librdkafka reconnects; nothing
//! is lost, reading resumes from the committed offsets). When the brokers answer that the topic
//! no longer exists (twice, a second apart), the source fails: the provider records an error
//! activation of the trigger and marks the registration inactive.
//!
//! Known problem: with tansu 0.6 as the broker, deleting a topic while a feed consumes it
//! crashes the process: tansu answers the next fetch with a leader-change tag, and
//! librdkafka 2.12.1 (Fetch v12, topics by name) looks the topic up with a null name.
//! Apache Kafka does not send that tag for a deleted topic. A topic deleted while the
//! platform is down is detected safely when the feed resumes.

use super::{KafkaConfig, TracingContext};
use async_trait::async_trait;
use base64::Engine as _;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::metadata::Metadata;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{Message, Offset, TopicPartitionList};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use whisk_core::feeds::{EventSource, FeedHandle, FeedParameter, SourceError};

/// The package of the feed (`/whisk.system/messaging`).
pub const PACKAGE: &str = "messaging";
/// The feed action's name (`/whisk.system/messaging/kafkaFeed`).
pub const FEED: &str = "kafkaFeed";
/// Messages per fire unless `maxBatchSize` says otherwise.
pub const DEFAULT_MAX_BATCH_SIZE: usize = 100;
/// How long a batch gathers unless `batchWaitMs` says otherwise.
pub const DEFAULT_BATCH_WAIT: Duration = Duration::from_millis(100);

const MAX_BATCH_SIZE: u64 = 10_000;
const MAX_BATCH_WAIT_MS: u64 = 60_000;
/// Serialized messages per fire at most (OpenWhisk's provider keeps fires under 900 KB too).
const MAX_BATCH_BYTES: usize = 900_000;
/// How soon a topic reported missing is checked again before the source gives up.
const MISSING_RECHECK: Duration = Duration::from_secs(1);

const PARAMETERS: [FeedParameter; 7] = [
    FeedParameter {
        name: "brokers",
        description: "The Kafka brokers: an array of host:port, or a comma-separated string",
        required: true,
    },
    FeedParameter {
        name: "topic",
        description: "The topic to listen to (it must exist)",
        required: true,
    },
    FeedParameter {
        name: "isJSONData",
        description: "Parse each message value as JSON (values that are not JSON stay strings)",
        required: false,
    },
    FeedParameter {
        name: "isBinaryValue",
        description: "Pass message values base64-encoded",
        required: false,
    },
    FeedParameter {
        name: "isBinaryKey",
        description: "Pass message keys base64-encoded",
        required: false,
    },
    FeedParameter {
        name: "maxBatchSize",
        description: "Most messages per fire (1 to 10000, default 100)",
        required: false,
    },
    FeedParameter {
        name: "batchWaitMs",
        description: "How long a batch gathers after its first message, in ms (default 100)",
        required: false,
    },
];

// The feed's consumers need no rebalance handling: they assign partitions themselves.
impl ConsumerContext for TracingContext {}

/// The `messaging/kafkaFeed` event source (see the [module docs](self)).
#[derive(Debug, Clone)]
pub struct KafkaFeed {
    base: KafkaConfig,
    metadata_timeout: Duration,
    check_interval: Duration,
}

impl Default for KafkaFeed {
    fn default() -> Self {
        Self::new()
    }
}

impl KafkaFeed {
    /// The source with librdkafka settings from [`KafkaConfig::default`].
    pub fn new() -> Self {
        Self::with_config(KafkaConfig::default())
    }

    /// The source with the client settings of `config` (its timeouts, its
    /// [`relaxed_fetch_wait`](KafkaConfig::relaxed_fetch_wait) as the fetch wait, and its extra
    /// [`properties`](KafkaConfig::properties), e.g. TLS). Its brokers and topic prefix are not
    /// used: each trigger names its brokers and topic.
    pub fn with_config(config: KafkaConfig) -> Self {
        Self {
            base: config,
            metadata_timeout: Duration::from_secs(5),
            check_interval: Duration::from_secs(10),
        }
    }

    /// How long `CREATE` waits for the brokers to describe the topic; default 5 s.
    pub fn with_metadata_timeout(mut self, timeout: Duration) -> Self {
        self.metadata_timeout = timeout;
        self
    }

    /// How often a running source asks whether its topic still exists (and has new
    /// partitions); default 10 s.
    pub fn with_check_interval(mut self, interval: Duration) -> Self {
        self.check_interval = interval;
        self
    }

    /// The client settings of one registration.
    fn kafka_config(&self, settings: &Settings) -> KafkaConfig {
        let mut c = self.base.clone();
        c.brokers = settings.brokers.clone();
        c.topic_prefix.clear();
        // A feed's latency matters less than the broker's load: fetch with the relaxed wait.
        c.relaxed_topics = vec![settings.topic.clone()];
        c
    }

    /// A client that only reads metadata and watermarks (never creates topics).
    fn probe_client(&self, settings: &Settings) -> Result<BaseConsumer<TracingContext>, String> {
        let config = self.kafka_config(settings);
        let mut c = config.client_config();
        c.set("allow.auto.create.topics", "false");
        config
            .finish(c)
            .create_with_context(TracingContext)
            .map_err(|e| format!("Kafka client configuration failed: {e}"))
    }

    /// The high watermark of every partition of the topic, checking that it exists.
    async fn start_offsets(&self, settings: &Settings) -> Result<BTreeMap<i32, i64>, String> {
        let client = self.probe_client(settings)?;
        let (topic, brokers) = (settings.topic.clone(), settings.brokers.clone());
        let timeout = self.metadata_timeout;
        let probe = tokio::task::spawn_blocking(move || {
            let deadline = std::time::Instant::now() + timeout;
            let left = || deadline.saturating_duration_since(std::time::Instant::now());
            let partitions = loop {
                let metadata = client
                    .fetch_metadata(Some(&topic), left().max(Duration::from_millis(100)))
                    .map_err(|e| format!("Kafka brokers {brokers} unreachable: {e}"));
                match topic_state(metadata, &topic) {
                    TopicState::Partitions(p) => break p,
                    TopicState::Missing => {
                        return Err(format!(
                            "Topic '{topic}' does not exist on brokers {brokers}."
                        ))
                    }
                    TopicState::Unavailable(e) if left().is_zero() => return Err(e),
                    TopicState::Unavailable(_) => std::thread::sleep(Duration::from_millis(100)),
                }
            };
            let mut offsets = BTreeMap::new();
            for p in partitions {
                let (_, high) = client
                    .fetch_watermarks(&topic, p, left().max(Duration::from_millis(100)))
                    .map_err(|e| {
                        format!("Kafka brokers {brokers} unreachable: the offsets of topic '{topic}' partition {p}: {e}")
                    })?;
                offsets.insert(p, high);
            }
            Ok(offsets)
        });
        probe
            .await
            .map_err(|e| format!("checking the topic failed: {e}"))?
    }
}

/// What the brokers say about a topic.
enum TopicState {
    Partitions(Vec<i32>),
    Missing,
    Unavailable(String),
}

fn topic_state(metadata: Result<Metadata, String>, topic: &str) -> TopicState {
    let metadata = match metadata {
        Ok(m) => m,
        Err(e) => return TopicState::Unavailable(e),
    };
    let Some(t) = metadata.topics().iter().find(|t| t.name() == topic) else {
        return TopicState::Missing;
    };
    match t.error() {
        None if !t.partitions().is_empty() => {
            TopicState::Partitions(t.partitions().iter().map(|p| p.id()).collect())
        }
        Some(RDKafkaRespErr::RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)
        | Some(RDKafkaRespErr::RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC) => TopicState::Missing,
        None => TopicState::Unavailable(format!("topic '{topic}' has no partitions yet")),
        Some(e) => TopicState::Unavailable(format!("topic '{topic}': {e:?}")),
    }
}

/// A validated configuration: what `validate` stores and `run` reads back.
#[derive(Debug, Clone, PartialEq)]
struct Settings {
    brokers: String,
    topic: String,
    json_data: bool,
    binary_value: bool,
    binary_key: bool,
    max_batch: usize,
    batch_wait: Duration,
    /// Partition → first offset to read when the group has no committed offset.
    start: BTreeMap<i32, i64>,
}

impl Settings {
    /// Checks a `CREATE`'s (or stored configuration's) parameters.
    fn parse(params: &Map<String, Value>) -> Result<Self, String> {
        let brokers = parse_brokers(params.get("brokers"))?;
        let topic = match params.get("topic") {
            None | Some(Value::Null) => {
                return Err("The parameter 'topic' is required: the Kafka topic to listen to.".into())
            }
            Some(Value::String(t)) if valid_topic(t) => t.clone(),
            Some(Value::String(t)) => {
                return Err(format!(
                    "The topic name '{t}' is not valid: Kafka topic names are 1 to 249 of the characters a-z, A-Z, 0-9, '.', '_' and '-'."
                ))
            }
            Some(other) => return Err(format!("The parameter 'topic' must be a string, not {other}.")),
        };
        let json_data = parse_bool(params, "isJSONData")?;
        let binary_value = parse_bool(params, "isBinaryValue")?;
        let binary_key = parse_bool(params, "isBinaryKey")?;
        if json_data && binary_value {
            return Err("isJSONData and isBinaryValue cannot both be enabled.".into());
        }
        let max_batch = parse_int(params, "maxBatchSize", 1, MAX_BATCH_SIZE)?
            .map_or(DEFAULT_MAX_BATCH_SIZE, |n| n as usize);
        let batch_wait = parse_int(params, "batchWaitMs", 0, MAX_BATCH_WAIT_MS)?
            .map_or(DEFAULT_BATCH_WAIT, Duration::from_millis);
        Ok(Self {
            brokers,
            topic,
            json_data,
            binary_value,
            binary_key,
            max_batch,
            batch_wait,
            start: BTreeMap::new(),
        })
    }

    /// The stored configuration.
    fn to_config(&self) -> Value {
        let start: Map<String, Value> = self
            .start
            .iter()
            .map(|(p, o)| (p.to_string(), json!(o)))
            .collect();
        json!({
            "brokers": self.brokers,
            "topic": self.topic,
            "isJSONData": self.json_data,
            "isBinaryValue": self.binary_value,
            "isBinaryKey": self.binary_key,
            "maxBatchSize": self.max_batch,
            "batchWaitMs": self.batch_wait.as_millis() as u64,
            "startOffsets": start,
        })
    }

    /// Reads a stored configuration back.
    fn from_config(config: &Value) -> Result<Self, String> {
        let map = config
            .as_object()
            .ok_or("the configuration is not an object")?;
        let mut settings = Self::parse(map)?;
        if let Some(start) = map.get("startOffsets").and_then(Value::as_object) {
            for (p, o) in start {
                let p = p.parse().map_err(|_| format!("bad partition '{p}'"))?;
                let o = o.as_i64().ok_or_else(|| format!("bad offset {o}"))?;
                settings.start.insert(p, o);
            }
        }
        Ok(settings)
    }

    /// One message as the fire payload lists it.
    fn message(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
    ) -> Value {
        let b64 = |b: &[u8]| Value::String(base64::engine::general_purpose::STANDARD.encode(b));
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        let key = match key {
            None => Value::Null,
            Some(k) if self.binary_key => b64(k),
            Some(k) => Value::String(text(k)),
        };
        let value = match value {
            None => Value::Null,
            Some(v) if self.binary_value => b64(v),
            Some(v) if self.json_data => {
                serde_json::from_slice(v).unwrap_or_else(|_| Value::String(text(v)))
            }
            Some(v) => Value::String(text(v)),
        };
        json!({
            "partition": partition,
            "key": key,
            "offset": offset,
            "topic": topic,
            "value": value,
        })
    }
}

fn parse_brokers(v: Option<&Value>) -> Result<String, String> {
    let required = || {
        "The parameter 'brokers' is required: the Kafka brokers as an array of host:port (or a comma-separated string).".to_string()
    };
    let list: Vec<String> = match v {
        None | Some(Value::Null) => return Err(required()),
        Some(Value::String(s)) => s.split(',').map(|b| b.trim().to_string()).collect(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|b| {
                b.as_str()
                    .map(|s| s.trim().to_string())
                    .ok_or_else(|| format!("The parameter 'brokers' must list host:port strings, not {b}."))
            })
            .collect::<Result<_, _>>()?,
        Some(other) => {
            return Err(format!(
                "The parameter 'brokers' must be an array of host:port or a comma-separated string, not {other}."
            ))
        }
    };
    let list: Vec<String> = list.into_iter().filter(|b| !b.is_empty()).collect();
    if list.is_empty() {
        return Err(required());
    }
    for b in &list {
        let ok = b.rsplit_once(':').is_some_and(|(host, port)| {
            !host.is_empty()
                && !host.contains(char::is_whitespace)
                && port.parse::<u16>().is_ok_and(|p| p > 0)
        });
        if !ok {
            return Err(format!(
                "The broker '{b}' is not valid: expected host:port."
            ));
        }
    }
    Ok(list.join(","))
}

/// Kafka's rule for topic names.
fn valid_topic(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 249
        && t != "."
        && t != ".."
        && t.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// A boolean parameter: `true`/`false`, or those words as strings; absent is false.
fn parse_bool(params: &Map<String, Value>, name: &str) -> Result<bool, String> {
    match params.get(name) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(true),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("false") || s.is_empty() => Ok(false),
        Some(other) => Err(format!(
            "The parameter '{name}' must be true or false, not {other}."
        )),
    }
}

/// An integer parameter within `min..=max` (a number or a string of digits); absent is `None`.
fn parse_int(
    params: &Map<String, Value>,
    name: &str,
    min: u64,
    max: u64,
) -> Result<Option<u64>, String> {
    let n = match params.get(name) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.trim().parse().ok(),
        Some(_) => None,
    };
    match n {
        Some(n) if (min..=max).contains(&n) => Ok(Some(n)),
        _ => Err(format!(
            "The parameter '{name}' must be an integer from {min} to {max}."
        )),
    }
}

/// The consumer group of the registration of `trigger` (`/ns/name`) created at `created`.
fn group_id(trigger: &str, created: u64) -> String {
    format!("whisk-feed/{}/{created}", trigger.trim_start_matches('/'))
}

type FeedConsumer = StreamConsumer<TracingContext>;

/// One fetched message, ready to fire.
struct Fetched {
    partition: i32,
    offset: i64,
    json: Value,
    size: usize,
}

/// The state of one running registration.
struct Runner<'a> {
    feed: &'a KafkaFeed,
    settings: Settings,
    consumer: Arc<FeedConsumer>,
    request_timeout: Duration,
    /// Assigned partitions.
    partitions: Vec<i32>,
    /// Per partition, the offset to commit (one past the last fired message).
    pending: BTreeMap<i32, i64>,
    /// How many checks in a row found the topic missing.
    missing: u32,
    /// The last error logged (so a repeated one is logged once).
    last_error: String,
}

impl Runner<'_> {
    /// What the brokers say about the topic now.
    async fn describe(&self) -> TopicState {
        let consumer = self.consumer.clone();
        let (topic, brokers) = (self.settings.topic.clone(), self.settings.brokers.clone());
        let timeout = self.feed.metadata_timeout;
        tokio::task::spawn_blocking(move || {
            let metadata = consumer
                .client()
                .fetch_metadata(Some(&topic), timeout)
                .map_err(|e| format!("Kafka brokers {brokers} unreachable: {e}"));
            topic_state(metadata, &topic)
        })
        .await
        .unwrap_or_else(|e| TopicState::Unavailable(e.to_string()))
    }

    /// Checks the topic: `Ok(Some(partitions))` when it is there, `Ok(None)` when the
    /// brokers cannot say, `Err` when it is confirmed gone.
    async fn check(&mut self) -> Result<Option<Vec<i32>>, SourceError> {
        match self.describe().await {
            TopicState::Partitions(p) => {
                self.missing = 0;
                if !self.last_error.is_empty() {
                    tracing::info!(topic = %self.settings.topic, "kafka feed: the brokers answer again");
                    self.last_error.clear();
                }
                Ok(Some(p))
            }
            TopicState::Missing => {
                self.missing += 1;
                if self.missing >= 2 {
                    return Err(SourceError::Failed(format!(
                        "Topic '{}' no longer exists on brokers {}.",
                        self.settings.topic, self.settings.brokers
                    )));
                }
                Ok(None)
            }
            TopicState::Unavailable(e) => {
                self.missing = 0;
                self.log_error(&e);
                Ok(None)
            }
        }
    }

    fn log_error(&mut self, e: &str) {
        if e != self.last_error {
            tracing::warn!(topic = %self.settings.topic, brokers = %self.settings.brokers, "kafka feed: {e}");
            self.last_error = e.to_string();
        }
    }

    /// Where each partition starts: the group's committed offset, else the high watermark
    /// recorded at `CREATE`, else (a partition added since) its beginning.
    async fn assign(&mut self, partitions: &[i32]) -> Result<(), String> {
        let mut tpl = TopicPartitionList::new();
        for p in partitions {
            tpl.add_partition(&self.settings.topic, *p);
        }
        let consumer = self.consumer.clone();
        let timeout = self.request_timeout;
        let committed =
            tokio::task::spawn_blocking(move || consumer.committed_offsets(tpl, timeout))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| format!("reading the committed offsets failed: {e}"))?;
        let mut start = TopicPartitionList::new();
        for e in committed.elements() {
            let offset = match e.offset() {
                Offset::Offset(o) if o >= 0 => Offset::Offset(o),
                _ => match self.settings.start.get(&e.partition()) {
                    Some(o) => Offset::Offset(*o),
                    None => Offset::Beginning,
                },
            };
            start
                .add_partition_offset(e.topic(), e.partition(), offset)
                .map_err(|e| e.to_string())?;
        }
        let first = self.partitions.is_empty();
        let assigned = if first {
            self.consumer.assign(&start)
        } else {
            self.consumer.incremental_assign(&start)
        };
        assigned.map_err(|e| format!("assigning the partitions failed: {e}"))?;
        tracing::debug!(topic = %self.settings.topic, start = ?start, "kafka feed reading");
        self.partitions.extend(partitions);
        Ok(())
    }

    /// Assigns the topic's partitions, waiting while the brokers are unreachable.
    async fn start(&mut self) -> Result<(), SourceError> {
        let mut wait = Duration::from_millis(200);
        loop {
            match self.check().await? {
                Some(partitions) => match self.assign(&partitions).await {
                    Ok(()) => return Ok(()),
                    Err(e) => self.log_error(&e),
                },
                None if self.missing > 0 => {
                    tokio::time::sleep(MISSING_RECHECK).await;
                    continue;
                }
                None => {}
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(10));
        }
    }

    /// Adds partitions that appeared since the last check.
    async fn add_partitions(&mut self, partitions: Vec<i32>) {
        let new: Vec<i32> = partitions
            .into_iter()
            .filter(|p| !self.partitions.contains(p))
            .collect();
        if new.is_empty() {
            return;
        }
        tracing::info!(topic = %self.settings.topic, partitions = ?new, "kafka feed: new partitions");
        if let Err(e) = self.assign(&new).await {
            self.log_error(&e);
        }
    }

    /// Commits the fired positions; on failure they stay pending for the next commit.
    async fn commit(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let mut tpl = TopicPartitionList::new();
        for (p, o) in &self.pending {
            let _ = tpl.add_partition_offset(&self.settings.topic, *p, Offset::Offset(*o));
        }
        for attempt in 0..3 {
            let consumer = self.consumer.clone();
            let tpl = tpl.clone();
            let result = tokio::time::timeout(
                self.request_timeout,
                tokio::task::spawn_blocking(move || consumer.commit(&tpl, CommitMode::Sync)),
            )
            .await;
            let error = match result {
                Ok(Ok(Ok(()))) => {
                    self.pending.clear();
                    return;
                }
                Ok(Ok(Err(e))) => e.to_string(),
                Ok(Err(e)) => e.to_string(),
                Err(_) => format!("no answer within {:?}", self.request_timeout),
            };
            tracing::warn!(topic = %self.settings.topic, attempt, "kafka feed: committing offsets failed: {error}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Turns a received message into a [`Fetched`].
    fn fetched(&self, m: &impl Message) -> Fetched {
        let json =
            self.settings
                .message(m.topic(), m.partition(), m.offset(), m.key(), m.payload());
        let size = json.to_string().len();
        Fetched {
            partition: m.partition(),
            offset: m.offset(),
            json,
            size,
        }
    }

    /// Handles a consumer error; `true` when the topic should be checked now.
    fn consume_error(&mut self, e: KafkaError) -> bool {
        let unknown = matches!(
            e.rdkafka_error_code(),
            Some(rdkafka::error::RDKafkaErrorCode::UnknownTopicOrPartition)
                | Some(rdkafka::error::RDKafkaErrorCode::UnknownTopic)
                | Some(rdkafka::error::RDKafkaErrorCode::UnknownPartition)
        );
        self.log_error(&format!("consuming failed: {e}"));
        unknown
    }

    async fn run(&mut self, handle: &FeedHandle) -> Result<(), SourceError> {
        self.start().await?;
        let consumer = self.consumer.clone();
        let mut next_check = Instant::now() + self.feed.check_interval;
        let mut carry: Option<Fetched> = None;
        loop {
            if Instant::now() >= next_check {
                let checked = self.check().await?;
                next_check = Instant::now()
                    + if self.missing > 0 {
                        MISSING_RECHECK
                    } else {
                        self.feed.check_interval
                    };
                if let Some(partitions) = checked {
                    self.add_partitions(partitions).await;
                }
                self.commit().await; // positions a failed commit left behind
            }

            // The first message of a batch.
            let first = match carry.take() {
                Some(f) => f,
                None => match tokio::time::timeout_at(next_check, consumer.recv()).await {
                    Err(_) => continue,
                    Ok(Ok(m)) => self.fetched(&m),
                    Ok(Err(e)) => {
                        if self.consume_error(e) {
                            next_check = Instant::now();
                        } else {
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                        continue;
                    }
                },
            };
            self.last_error.clear();

            // The rest of the batch.
            let mut size = first.size;
            let mut batch = vec![first];
            let deadline = Instant::now() + self.settings.batch_wait;
            while batch.len() < self.settings.max_batch {
                let next = match tokio::time::timeout_at(deadline, consumer.recv()).await {
                    Err(_) => break,
                    Ok(Ok(m)) => self.fetched(&m),
                    Ok(Err(e)) => {
                        if self.consume_error(e) {
                            next_check = Instant::now();
                        }
                        break;
                    }
                };
                if size + next.size > MAX_BATCH_BYTES {
                    carry = Some(next);
                    break;
                }
                size += next.size;
                batch.push(next);
            }

            for f in &batch {
                let o = self.pending.entry(f.partition).or_insert(f.offset + 1);
                *o = (*o).max(f.offset + 1);
            }
            let messages: Vec<Value> = batch.into_iter().map(|f| f.json).collect();
            let mut payload = Map::new();
            payload.insert("messages".into(), Value::Array(messages));
            handle.fire(payload).await?;
            self.commit().await;
        }
    }
}

#[async_trait]
impl EventSource for KafkaFeed {
    fn package(&self) -> &str {
        PACKAGE
    }

    fn name(&self) -> &str {
        FEED
    }

    fn description(&self) -> &str {
        "Fire a trigger with the messages produced on a Kafka topic"
    }

    fn parameters(&self) -> &[FeedParameter] {
        &PARAMETERS
    }

    async fn validate(&self, params: &Map<String, Value>) -> Result<Value, String> {
        let mut settings = Settings::parse(params)?;
        settings.start = self.start_offsets(&settings).await?;
        Ok(settings.to_config())
    }

    async fn run(&self, feed: FeedHandle) -> Result<(), SourceError> {
        let settings = Settings::from_config(feed.config()).map_err(|e| {
            SourceError::Failed(format!("the stored configuration is not valid: {e}"))
        })?;
        let config = self.kafka_config(&settings);
        let group = group_id(&feed.trigger(), feed.created());
        let consumer: FeedConsumer = config
            .consumer_config(&group, &settings.topic)
            .set("allow.auto.create.topics", "false")
            .create_with_context(TracingContext)
            .map_err(|e| SourceError::Failed(format!("Kafka client configuration failed: {e}")))?;
        let consumer = Arc::new(consumer);
        let mut runner = Runner {
            feed: self,
            settings,
            consumer: consumer.clone(),
            request_timeout: config.request_timeout,
            partitions: Vec::new(),
            pending: BTreeMap::new(),
            missing: 0,
            last_error: String::new(),
        };
        let outcome = runner.run(&feed).await;
        drop(runner);
        // Closing a consumer may block a moment: not on the runtime's threads.
        tokio::task::spawn_blocking(move || drop(consumer));
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn brokers_as_array_or_string() {
        let a = Settings::parse(&params(
            json!({"brokers": ["a:9092", " b:9093 "], "topic": "t"}),
        ))
        .unwrap();
        assert_eq!(a.brokers, "a:9092,b:9093");
        let s =
            Settings::parse(&params(json!({"brokers": "a:9092, b:9093,", "topic": "t"}))).unwrap();
        assert_eq!(s.brokers, "a:9092,b:9093");
        assert_eq!(s.max_batch, DEFAULT_MAX_BATCH_SIZE);
        assert_eq!(s.batch_wait, DEFAULT_BATCH_WAIT);
        assert!(!s.json_data && !s.binary_key && !s.binary_value);
    }

    #[test]
    fn bad_parameters_are_refused() {
        let err = |v: Value| Settings::parse(&params(v)).unwrap_err();
        assert!(err(json!({"topic": "t"})).starts_with("The parameter 'brokers' is required"));
        assert!(err(json!({"brokers": [], "topic": "t"}))
            .starts_with("The parameter 'brokers' is required"));
        assert!(err(json!({"brokers": "a:9092"})).starts_with("The parameter 'topic' is required"));
        assert_eq!(
            err(json!({"brokers": "a", "topic": "t"})),
            "The broker 'a' is not valid: expected host:port."
        );
        assert!(err(json!({"brokers": "a:x", "topic": "t"})).contains("'a:x' is not valid"));
        assert!(err(json!({"brokers": [1], "topic": "t"})).contains("host:port strings"));
        assert!(err(json!({"brokers": "a:1", "topic": "no/slash"}))
            .starts_with("The topic name 'no/slash' is not valid"));
        assert!(err(json!({"brokers": "a:1", "topic": 5})).contains("must be a string"));
        assert_eq!(
            err(
                json!({"brokers": "a:1", "topic": "t", "isJSONData": true, "isBinaryValue": "true"})
            ),
            "isJSONData and isBinaryValue cannot both be enabled."
        );
        assert!(
            err(json!({"brokers": "a:1", "topic": "t", "isBinaryKey": 3}))
                .contains("'isBinaryKey' must be true or false")
        );
        for bad in [json!(0), json!(10_001), json!(-1), json!(1.5), json!("x")] {
            assert_eq!(
                err(json!({"brokers": "a:1", "topic": "t", "maxBatchSize": bad})),
                "The parameter 'maxBatchSize' must be an integer from 1 to 10000."
            );
        }
        assert!(
            err(json!({"brokers": "a:1", "topic": "t", "batchWaitMs": 60_001}))
                .contains("'batchWaitMs' must be an integer from 0 to 60000")
        );
    }

    #[test]
    fn configuration_round_trips() {
        let mut s = Settings::parse(&params(json!({
            "brokers": ["h:1"], "topic": "t.x-1", "isJSONData": "true", "isBinaryKey": true,
            "maxBatchSize": "7", "batchWaitMs": 0
        })))
        .unwrap();
        s.start = BTreeMap::from([(0, 5), (2, 0)]);
        let config = s.to_config();
        assert_eq!(config["startOffsets"], json!({"0": 5, "2": 0}));
        assert_eq!(Settings::from_config(&config).unwrap(), s);
        assert!(s.json_data && s.binary_key && !s.binary_value);
        assert_eq!((s.max_batch, s.batch_wait), (7, Duration::ZERO));
    }

    #[test]
    fn messages_as_openwhisk_shapes_them() {
        let plain = Settings::parse(&params(json!({"brokers": "h:1", "topic": "t"}))).unwrap();
        assert_eq!(
            plain.message("t", 1, 42, Some(b"k"), Some(b"{\"a\":1}")),
            json!({"partition": 1, "key": "k", "offset": 42, "topic": "t", "value": "{\"a\":1}"})
        );
        assert_eq!(
            plain.message("t", 0, 0, None, None),
            json!({"partition": 0, "key": null, "offset": 0, "topic": "t", "value": null})
        );
        let json_data = Settings::parse(&params(
            json!({"brokers": "h:1", "topic": "t", "isJSONData": true}),
        ))
        .unwrap();
        assert_eq!(
            json_data.message("t", 0, 1, None, Some(b"{\"a\":1}"))["value"],
            json!({"a": 1})
        );
        assert_eq!(
            json_data.message("t", 0, 1, None, Some(b"not json"))["value"],
            json!("not json")
        );
        let binary = Settings::parse(&params(
            json!({"brokers": "h:1", "topic": "t", "isBinaryValue": true, "isBinaryKey": true}),
        ))
        .unwrap();
        let m = binary.message("t", 0, 1, Some(&[0xff, 0]), Some(b"hi"));
        assert_eq!(m["key"], json!("/wA="));
        assert_eq!(m["value"], json!("aGk="));
    }

    #[test]
    fn group_ids_are_per_registration() {
        assert_eq!(group_id("/guest/t1", 17), "whisk-feed/guest/t1/17");
        assert_ne!(group_id("/guest/t1", 17), group_id("/guest/t1", 18));
        assert_ne!(group_id("/guest/t1", 17), group_id("/other/t1", 17));
    }

    #[test]
    fn describes_itself() {
        let f = KafkaFeed::new();
        assert_eq!((f.package(), f.name()), ("messaging", "kafkaFeed"));
        let required: Vec<_> = f
            .parameters()
            .iter()
            .filter(|p| p.required)
            .map(|p| p.name)
            .collect();
        assert_eq!(required, ["brokers", "topic"]);
    }
}
