//! A [`MessageBus`] over Kafka (any broker speaking the Kafka protocol), built on librdkafka
//! through the `rdkafka` crate. Enabled by the `kafka` cargo feature.
//!
//! Topics follow OpenWhisk: the bus name of a topic (`invoker0`, `completed0`, `health`, ...)
//! is prefixed with [`KafkaConfig::topic_prefix`] (OpenWhisk's `whisk.kafka.topics.prefix`).
//! Producers use `acks=1` like OpenWhisk; consumers never auto-commit: [`Consumer::commit`]
//! commits what was polled, after processing, as OpenWhisk's consumers do.
//!
//! How the suite's semantics map onto Kafka:
//! - A group that subscribes waits for its partition assignment before `subscribe` returns.
//!   A partition without a committed offset starts at its high watermark read at assignment
//!   time, and that start is committed at once, so the group keeps "starting at the end"
//!   even across later rebalances.
//! - Polled but uncommitted messages are delivered again to whichever member owns the
//!   partition next (Kafka's at-least-once). A dropped consumer leaves its group, except a
//!   static member's ([`KafkaConfig::group_instance_id`]), whose partitions wait for it to
//!   come back until the session timeout.
//! - Broker outages surface as [`BusError::Unavailable`] (publish fails after
//!   [`KafkaConfig::publish_timeout`]) or as empty polls; librdkafka reconnects on its own, so
//!   the same bus and consumers work again when the broker returns.
//!
//! Group joins cost at least the broker's join delay: Apache Kafka holds the first join of a
//! group for `group.initial.rebalance.delay.ms` (3 s by default); tansu holds every join for
//! half the session timeout, which is why [`KafkaConfig::session_timeout`] defaults to 6 s
//! (the smallest Apache Kafka accepts by default) rather than librdkafka's 45 s.
//!
//! ```no_run
//! use whisk_bus::kafka::{KafkaBus, KafkaConfig};
//! use whisk_core::bus::MessageBus;
//! # #[tokio::main] async fn main() -> Result<(), whisk_core::bus::BusError> {
//! let bus = KafkaBus::connect(KafkaConfig::new("127.0.0.1:9092")).await?;
//! bus.create_topic("invoker0").await?;
//! let mut consumer = bus.subscribe("invoker0", "invoker0").await?;
//! bus.publish("invoker0", "hello".into()).await?;
//! let got = consumer.poll(10, std::time::Duration::from_secs(1)).await?;
//! consumer.commit().await?;
//! # Ok(()) }
//! ```

mod consumer;
pub mod feed;

pub use feed::KafkaFeed;

use async_trait::async_trait;
use bytes::Bytes;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::util::Timeout;
use rdkafka::{ClientConfig, ClientContext};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use whisk_core::bus::{BusError, Consumer, MessageBus};

/// How a [`KafkaBus`] reaches and uses the broker.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct KafkaConfig {
    /// Bootstrap brokers, `host:port[,host:port...]` (librdkafka's `bootstrap.servers`).
    pub brokers: String,
    /// Prepended to every topic name (OpenWhisk's `whisk.kafka.topics.prefix`); default empty.
    pub topic_prefix: String,
    /// Partitions of topics that [`MessageBus::create_topic`] creates; default 1 (as
    /// OpenWhisk: one consumer per invoker topic, strict order).
    pub partitions: i32,
    /// Replication factor of created topics; default 1.
    pub replication: i32,
    /// Consumer-group session timeout (`session.timeout.ms`); default 6 s. A member not heard
    /// from for this long is dropped from its group. tansu holds every JoinGroup for half of
    /// it, so a join takes about 3 s with the default (23 s with librdkafka's 45 s); Apache
    /// Kafka rejects values below its `group.min.session.timeout.ms` (6 s by default). A
    /// Kafka group keeps the value its first member brought while the broker remembers it.
    pub session_timeout: Duration,
    /// Consumer-group heartbeat interval (`heartbeat.interval.ms`); default 1 s. Keep it well
    /// below `session_timeout`.
    pub heartbeat_interval: Duration,
    /// How long [`MessageBus::subscribe`] waits for the group to assign partitions before it
    /// fails with [`BusError::Unavailable`]; default 60 s.
    pub join_timeout: Duration,
    /// Timeout of the connect check, topic creation, offset lookups and commits; default 10 s.
    pub request_timeout: Duration,
    /// How long [`MessageBus::publish`] keeps retrying before it fails with
    /// [`BusError::Unavailable`] (`message.timeout.ms`); default 10 s.
    pub publish_timeout: Duration,
    /// Longest time the broker holds a fetch that has no data yet (`fetch.wait.max.ms`) on
    /// the activation path (every topic but [`relaxed_topics`](Self::relaxed_topics));
    /// default 3 ms. Apache Kafka answers a waiting fetch as soon as data arrives: there,
    /// 100–500 ms costs no latency and spares idle fetches. tansu (0.6, memory storage)
    /// instead re-reads its storage a few times within the wait, so a delivery waits about
    /// this long; and each of its reads lists every record batch of the partition and gives
    /// up when the wait is over, so a partition stops delivering once it holds about
    /// 1,600 batches per millisecond of wait (measured: ~1,650 at 1 ms, ~4,800 at 3 ms).
    /// On tansu, pick the wait by how long the topics must live, not only by latency.
    pub fetch_wait_max: Duration,
    /// Topics (without prefix) whose latency does not matter, fetched with
    /// [`relaxed_fetch_wait`](Self::relaxed_fetch_wait) to spare the broker idle fetches;
    /// default `health`, `cacheInvalidation`, `events`.
    pub relaxed_topics: Vec<String>,
    /// `fetch.wait.max.ms` of the relaxed topics; default 100 ms.
    pub relaxed_fetch_wait: Duration,
    /// Messages a consumer buffers ahead of `poll` before it pauses fetching; default 10 000.
    pub max_buffered: usize,
    /// Kafka static membership (`group.instance.id`, KIP-345) for the consumers of
    /// [`MessageBus::subscribe`]; default none. A process that restarts with the same id takes
    /// its partitions back at once, where a new member would wait for the broker to drop the
    /// old one (the session timeout on Apache Kafka; some brokers never do). In exchange a
    /// dropped consumer does not leave its group: its partitions go to another member only
    /// after the session timeout. Give each process its own id (the controller and the
    /// invoker use `controller{N}` and `invoker{N}`), and set it only on a bus whose
    /// consumers are alone in their groups within the process: two members of one group
    /// with one id fence each other. The id is per group, so one id serves every group.
    pub group_instance_id: Option<String>,
    /// Extra librdkafka properties for every client, applied last (so they win), e.g.
    /// `("security.protocol", "ssl")`.
    pub properties: Vec<(String, String)>,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        Self {
            brokers: "127.0.0.1:9092".to_string(),
            topic_prefix: String::new(),
            partitions: 1,
            replication: 1,
            session_timeout: Duration::from_secs(6),
            heartbeat_interval: Duration::from_secs(1),
            join_timeout: Duration::from_secs(60),
            request_timeout: Duration::from_secs(10),
            publish_timeout: Duration::from_secs(10),
            fetch_wait_max: Duration::from_millis(3),
            relaxed_topics: ["health", "cacheInvalidation", "events"]
                .map(String::from)
                .to_vec(),
            relaxed_fetch_wait: Duration::from_millis(100),
            max_buffered: 10_000,
            group_instance_id: None,
            properties: Vec::new(),
        }
    }
}

impl KafkaConfig {
    /// The defaults with bootstrap brokers `brokers`.
    pub fn new(brokers: impl Into<String>) -> Self {
        Self {
            brokers: brokers.into(),
            ..Self::default()
        }
    }

    /// Sets the topic prefix.
    pub fn with_topic_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.topic_prefix = prefix.into();
        self
    }

    /// Makes the subscribed consumers static members with id `id` (see
    /// [`group_instance_id`](Self::group_instance_id)).
    pub fn with_group_instance_id(mut self, id: impl Into<String>) -> Self {
        self.group_instance_id = Some(id.into());
        self
    }

    /// Adds an extra librdkafka property for every client.
    pub fn set(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.properties.push((key.into(), value.into()));
        self
    }

    /// The Kafka topic that carries bus topic `topic`.
    pub fn kafka_topic(&self, topic: &str) -> String {
        format!("{}{topic}", self.topic_prefix)
    }

    /// The Kafka consumer group that carries bus group `group` on bus topic `topic`.
    ///
    /// Bus groups belong to one topic, Kafka groups do not: members of one Kafka group on
    /// different topics would rebalance each other. So the Kafka group is scoped by topic:
    /// `{prefix}{topic}.{group}`, except that a group named after its topic is just the
    /// prefixed topic, which gives OpenWhisk's group ids for its per-instance topics
    /// (`invoker0` reads `invoker0`, `completed0` reads `completed0`).
    pub fn kafka_group(&self, topic: &str, group: &str) -> String {
        if topic == group {
            self.kafka_topic(topic)
        } else {
            format!("{}{topic}.{group}", self.topic_prefix)
        }
    }

    /// Settings every client shares.
    fn client_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set_log_level(if tracing::enabled!(tracing::Level::DEBUG) {
            RDKafkaLogLevel::Debug
        } else {
            RDKafkaLogLevel::Warning
        });
        c.set("bootstrap.servers", &self.brokers)
            .set("socket.nagle.disable", "true")
            .set("socket.keepalive.enable", "true")
            .set("socket.timeout.ms", ms(self.request_timeout))
            .set("reconnect.backoff.ms", "50")
            .set("reconnect.backoff.max.ms", "1000")
            .set("topic.metadata.refresh.interval.ms", "10000")
            // Not sent by tansu; a broker without telemetry support needs none of it.
            .set("enable.metrics.push", "false");
        c
    }

    fn finish(&self, mut c: ClientConfig) -> ClientConfig {
        for (k, v) in &self.properties {
            c.set(k, v);
        }
        c
    }

    fn producer_config(&self) -> ClientConfig {
        let mut c = self.client_config();
        c.set("acks", "1")
            .set("linger.ms", "0")
            .set("message.timeout.ms", ms(self.publish_timeout))
            .set("enable.idempotence", "false")
            .set("retry.backoff.ms", "50")
            .set("retry.backoff.max.ms", "500");
        self.finish(c)
    }

    fn admin_config(&self) -> ClientConfig {
        self.finish(self.client_config())
    }

    /// The fetch wait of a consumer of `kafka_topic` (a prefixed name).
    fn fetch_wait(&self, kafka_topic: &str) -> Duration {
        let relaxed = kafka_topic
            .strip_prefix(self.topic_prefix.as_str())
            .is_some_and(|t| self.relaxed_topics.iter().any(|r| r == t));
        if relaxed {
            self.relaxed_fetch_wait
        } else {
            self.fetch_wait_max
        }
    }

    fn consumer_config(&self, group: &str, kafka_topic: &str) -> ClientConfig {
        let mut c = self.client_config();
        c.set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "latest")
            .set("session.timeout.ms", ms(self.session_timeout))
            .set("heartbeat.interval.ms", ms(self.heartbeat_interval))
            .set("fetch.wait.max.ms", ms(self.fetch_wait(kafka_topic)))
            .set("fetch.min.bytes", "1")
            .set("fetch.error.backoff.ms", "50")
            .set("enable.partition.eof", "false");
        self.finish(c)
    }
}

fn ms(d: Duration) -> String {
    d.as_millis().max(1).to_string()
}

/// Routes librdkafka's logs and errors to `tracing`.
#[derive(Clone, Default)]
struct TracingContext;

impl ClientContext for TracingContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, msg: &str) {
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => tracing::error!(target: "librdkafka", "{fac}: {msg}"),
            RDKafkaLogLevel::Warning => tracing::warn!(target: "librdkafka", "{fac}: {msg}"),
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                tracing::info!(target: "librdkafka", "{fac}: {msg}")
            }
            RDKafkaLogLevel::Debug => tracing::debug!(target: "librdkafka", "{fac}: {msg}"),
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        // Broker-down and reconnect notices: the caller sees them as errors or empty polls.
        tracing::warn!(target: "librdkafka", "{error}: {reason}");
    }
}

/// Whether a librdkafka error code means "the broker cannot be reached (right now)".
fn is_unavailable(code: RDKafkaErrorCode) -> bool {
    use RDKafkaErrorCode as C;
    matches!(
        code,
        C::BrokerTransportFailure
            | C::Resolve
            | C::MessageTimedOut
            | C::AllBrokersDown
            | C::OperationTimedOut
            | C::QueueFull
            | C::TimedOutQueue
            | C::RequestTimedOut
            | C::BrokerNotAvailable
            | C::LeaderNotAvailable
            | C::NotLeaderForPartition
            | C::NetworkException
            | C::CoordinatorNotAvailable
            | C::NotCoordinator
            | C::CoordinatorLoadInProgress
    )
}

/// Maps a librdkafka error onto the bus's error kinds.
fn bus_error(e: &KafkaError) -> BusError {
    let code = match e {
        KafkaError::AdminOp(code) => Some(*code),
        other => other.rdkafka_error_code(),
    };
    match code {
        Some(code) if is_unavailable(code) => BusError::Unavailable(e.to_string()),
        _ => BusError::Other(e.to_string()),
    }
}

/// A [`MessageBus`] over a Kafka-protocol broker. Cheap to share behind an `Arc`; one
/// producer and one admin client serve every call, each consumer has its own librdkafka
/// consumer (and thread).
pub struct KafkaBus {
    config: KafkaConfig,
    producer: FutureProducer<TracingContext>,
    admin: AdminClient<TracingContext>,
    /// Consumers dropped but still leaving their group (see [`consumer::Closing`]).
    closing: consumer::Closing,
}

impl std::fmt::Debug for KafkaBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaBus")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl KafkaBus {
    /// Creates the clients and checks that the broker answers (a metadata request within
    /// [`KafkaConfig::request_timeout`]); [`BusError::Unavailable`] if it does not.
    pub async fn connect(config: KafkaConfig) -> Result<KafkaBus, BusError> {
        let producer: FutureProducer<TracingContext> = config
            .producer_config()
            .create_with_context(TracingContext)
            .map_err(|e| BusError::Other(format!("kafka producer config: {e}")))?;
        let admin: AdminClient<TracingContext> = config
            .admin_config()
            .create_with_context(TracingContext)
            .map_err(|e| BusError::Other(format!("kafka admin config: {e}")))?;
        let bus = KafkaBus {
            config,
            producer,
            admin,
            closing: Arc::new(Mutex::new(Vec::new())),
        };
        bus.check().await?;
        Ok(bus)
    }

    /// The configuration this bus was built with.
    pub fn config(&self) -> &KafkaConfig {
        &self.config
    }

    /// Asks the broker for its metadata; [`BusError::Unavailable`] if it does not answer
    /// within [`KafkaConfig::request_timeout`].
    pub async fn check(&self) -> Result<(), BusError> {
        let producer = self.producer.clone();
        let timeout = self.config.request_timeout;
        let brokers = self.config.brokers.clone();
        tokio::task::spawn_blocking(move || producer.client().fetch_metadata(None, timeout))
            .await
            .map_err(|e| BusError::Other(e.to_string()))?
            .map(|_| ())
            .map_err(|e| {
                BusError::Unavailable(format!("kafka broker {brokers} not reachable: {e}"))
            })
    }

    fn admin_options(&self) -> AdminOptions {
        AdminOptions::new()
            .request_timeout(Some(self.config.request_timeout))
            .operation_timeout(Some(self.config.request_timeout))
    }
}

#[async_trait]
impl MessageBus for KafkaBus {
    async fn create_topic(&self, topic: &str) -> Result<(), BusError> {
        let name = self.config.kafka_topic(topic);
        let new = NewTopic::new(
            &name,
            self.config.partitions,
            TopicReplication::Fixed(self.config.replication),
        );
        let results = self
            .admin
            .create_topics([&new], &self.admin_options())
            .await
            .map_err(|e| bus_error(&e))?;
        for r in results {
            match r {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((t, code)) if is_unavailable(code) => {
                    return Err(BusError::Unavailable(format!("create topic {t}: {code}")))
                }
                Err((t, code)) => return Err(BusError::Other(format!("create topic {t}: {code}"))),
            }
        }
        Ok(())
    }

    async fn publish(&self, topic: &str, payload: Bytes) -> Result<(), BusError> {
        // A topic a restarted broker lost comes back through the producer's metadata request
        // (librdkafka asks the broker to auto-create it, as Kafka brokers do by default).
        let name = self.config.kafka_topic(topic);
        let record: FutureRecord<'_, (), [u8]> = FutureRecord::to(&name).payload(&payload[..]);
        let sent = self
            .producer
            .send(record, Timeout::After(self.config.publish_timeout))
            .await;
        let Err((e, _)) = sent else { return Ok(()) };
        Err(match e.rdkafka_error_code() {
            Some(RDKafkaErrorCode::MessageSizeTooLarge)
            | Some(RDKafkaErrorCode::MessageBatchTooLarge) => BusError::TooLarge(payload.len()),
            _ => bus_error(&e),
        })
    }

    async fn subscribe(&self, topic: &str, group: &str) -> Result<Box<dyn Consumer>, BusError> {
        let group = self.config.kafka_group(topic, group);
        consumer::wait_closed(&self.closing, &group, self.config.request_timeout).await;
        let consumer = consumer::KafkaConsumer::join(
            &self.config,
            &self.config.kafka_topic(topic),
            &group,
            self.closing.clone(),
        )
        .await?;
        Ok(Box::new(consumer))
    }
}
