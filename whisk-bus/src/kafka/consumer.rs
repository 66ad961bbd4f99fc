//! One consumer-group member: a librdkafka consumer driven by its own thread.
//!
//! librdkafka serves rebalances only while the application polls, so a member that is not
//! being polled would stall every join of its group. The driver thread therefore polls all
//! the time: it runs the rebalance callback, and it moves fetched messages into a buffer that
//! [`Consumer::poll`] drains (pausing the fetch when the buffer is full). Offsets of what
//! `poll` handed out are committed by [`Consumer::commit`]; on a revoke, buffered and
//! uncommitted positions of the revoked partitions are forgotten, since the partition's next
//! owner starts again from the last commit.

use super::{bus_error, KafkaConfig, TracingContext};
use async_trait::async_trait;
use bytes::Bytes;
use rdkafka::consumer::RebalanceProtocol;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer as _, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, Message, Offset, TopicPartitionList};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::Notify;
use whisk_core::bus::{BusError, Consumer};

/// How long one blocking poll of the driver thread lasts; bounds how late it notices `stop`.
const DRIVER_POLL: Duration = Duration::from_millis(100);

/// Consumers that were dropped and whose threads may still be leaving their group, so a new
/// member of the same group can wait for them (a leaving member that still holds partitions
/// would otherwise take part in the new member's join).
pub(super) type Closing = Arc<Mutex<Vec<(String, Arc<Shared>)>>>;

/// Waits (at most `timeout`) until dropped consumers of `group` have left it.
pub(super) async fn wait_closed(closing: &Closing, group: &str, timeout: Duration) {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let waiting = {
            let mut list = closing.lock().unwrap();
            list.retain(|(_, s)| !s.exited.load(Ordering::Acquire));
            list.iter().any(|(g, _)| g == group)
        };
        if !waiting || tokio::time::Instant::now() >= deadline {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A fetched message: partition, offset, payload.
type Item = (i32, i64, Bytes);

/// How often librdkafka reports statistics, the source of [`Consumer::lag`].
const STATS_INTERVAL: Duration = Duration::from_secs(2);

#[derive(Default)]
struct State {
    /// Fetched, not yet handed out by `poll`.
    buffer: VecDeque<Item>,
    /// Partitions currently assigned to this member.
    owned: HashSet<i32>,
    /// Per partition, the offset to commit (one past the last message handed out).
    pending: HashMap<i32, i64>,
    /// Bumped on every revoke, so a failed commit does not restore stale positions.
    generation: u64,
    /// Set by an assignment: partitions that had no committed offset and start at this
    /// offset; the driver commits them, then marks the member joined.
    fresh: Option<Vec<(i32, i64)>>,
    /// The group has assigned partitions to this member at least once.
    joined: bool,
    /// The consumer lag of the owned partitions in librdkafka's last statistics.
    lag: Option<u64>,
}

pub(super) struct Shared {
    state: Mutex<State>,
    /// Signalled when messages arrive in the buffer.
    data: Notify,
    /// Signalled when the member has joined.
    joined: Notify,
    /// Asks the driver thread to leave the group and exit.
    stop: AtomicBool,
    /// The driver thread has exited (the member left its group).
    exited: AtomicBool,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Runs the rebalance callback: picks start offsets explicitly and keeps `State` in step.
struct GroupContext {
    shared: Arc<Shared>,
    topic: String,
    timeout: Duration,
}

impl ClientContext for GroupContext {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, msg: &str) {
        TracingContext.log(level, fac, msg)
    }

    fn error(&self, error: KafkaError, reason: &str) {
        TracingContext.error(error, reason)
    }

    /// Keeps the summed `consumer_lag` (high watermark minus committed offset) of the
    /// partitions this member owns.
    fn stats(&self, statistics: rdkafka::Statistics) {
        let Some(topic) = statistics.topics.get(&self.topic) else {
            return;
        };
        let mut st = self.shared.state();
        let lag = topic
            .partitions
            .iter()
            .filter(|(p, _)| st.owned.contains(p))
            .map(|(_, part)| u64::try_from(part.consumer_lag).unwrap_or(0))
            .sum();
        st.lag = Some(lag);
    }
}

impl ConsumerContext for GroupContext {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        let cooperative = matches!(
            consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        );
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                let (start, fresh) = self.start_offsets(consumer, tpl);
                let result = if cooperative {
                    consumer.incremental_assign(&start)
                } else {
                    consumer.assign(&start)
                };
                if let Err(e) = result {
                    tracing::warn!(topic = %self.topic, "kafka assign failed: {e}");
                }
                let mut st = self.shared.state();
                st.owned
                    .extend(tpl.elements().iter().map(|e| e.partition()));
                st.fresh.get_or_insert_with(Vec::new).extend(fresh);
                tracing::debug!(topic = %self.topic, owned = ?st.owned, "kafka partitions assigned");
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                {
                    let mut st = self.shared.state();
                    let revoked: HashSet<i32> =
                        tpl.elements().iter().map(|e| e.partition()).collect();
                    st.owned.retain(|p| !revoked.contains(p));
                    st.buffer.retain(|(p, _, _)| !revoked.contains(p));
                    st.pending.retain(|p, _| !revoked.contains(p));
                    st.generation += 1;
                    tracing::debug!(topic = %self.topic, ?revoked, lost = consumer.assignment_lost(), "kafka partitions revoked");
                }
                let result = if cooperative {
                    consumer.incremental_unassign(tpl)
                } else {
                    consumer.unassign()
                };
                if let Err(e) = result {
                    tracing::warn!(topic = %self.topic, "kafka unassign failed: {e}");
                }
            }
            other => tracing::warn!(topic = %self.topic, "kafka rebalance error: {other:?}"),
        }
    }
}

impl GroupContext {
    /// The assignment with explicit start offsets: the committed offset, else the high
    /// watermark now (returned in the second list, to be committed). If the broker cannot
    /// say, the offset stays unset and librdkafka falls back to `auto.offset.reset=latest`.
    fn start_offsets(
        &self,
        consumer: &BaseConsumer<Self>,
        tpl: &TopicPartitionList,
    ) -> (TopicPartitionList, Vec<(i32, i64)>) {
        let mut start = tpl.clone();
        let mut fresh = Vec::new();
        let committed = match consumer.committed_offsets(tpl.clone(), self.timeout) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(topic = %self.topic, "kafka committed offsets unknown: {e}");
                return (start, fresh);
            }
        };
        for e in committed.elements() {
            let (topic, partition) = (e.topic(), e.partition());
            let offset = match e.offset() {
                Offset::Offset(o) if o >= 0 => o,
                _ => match consumer.fetch_watermarks(topic, partition, self.timeout) {
                    Ok((_, high)) => {
                        fresh.push((partition, high));
                        high
                    }
                    Err(err) => {
                        tracing::warn!(topic, partition, "kafka high watermark unknown: {err}");
                        continue;
                    }
                },
            };
            let _ = start.set_partition_offset(topic, partition, Offset::Offset(offset));
        }
        (start, fresh)
    }
}

/// The driver thread: polls until asked to stop, then leaves the group.
fn drive(consumer: Arc<BaseConsumer<GroupContext>>, shared: Arc<Shared>, max_buffered: usize) {
    let topic = consumer.context().topic.clone();
    let mut paused = false;
    let mut last_error = String::new();
    while !shared.stop.load(Ordering::Acquire) {
        match consumer.poll(DRIVER_POLL) {
            Some(Ok(m)) => {
                let item = (
                    m.partition(),
                    m.offset(),
                    Bytes::copy_from_slice(m.payload().unwrap_or_default()),
                );
                drop(m);
                let mut st = shared.state();
                if st.owned.contains(&item.0) {
                    st.buffer.push_back(item);
                }
                drop(st);
                shared.data.notify_one();
                last_error.clear();
            }
            Some(Err(e)) => {
                let text = e.to_string();
                if text != last_error {
                    tracing::warn!(%topic, "kafka consumer: {text}");
                    last_error = text;
                }
            }
            None => {}
        }

        let fresh = shared.state().fresh.take();
        if let Some(fresh) = fresh {
            // Pin the group's start so a later rebalance does not skip what arrives now.
            if !fresh.is_empty() {
                let mut tpl = TopicPartitionList::new();
                for (p, o) in &fresh {
                    let _ = tpl.add_partition_offset(&topic, *p, Offset::Offset(*o));
                }
                if let Err(e) = consumer.commit(&tpl, CommitMode::Sync) {
                    tracing::warn!(%topic, "kafka commit of start offsets failed: {e}");
                }
            }
            paused = false;
            shared.state().joined = true;
            shared.joined.notify_one();
        }

        let buffered = shared.state().buffer.len();
        if !paused && buffered >= max_buffered {
            if let Ok(a) = consumer.assignment() {
                paused = consumer.pause(&a).is_ok();
            }
        } else if paused && buffered <= max_buffered / 2 {
            if let Ok(a) = consumer.assignment() {
                paused = consumer.resume(&a).is_err();
            }
        }
    }
    consumer.unsubscribe();
    // Dropping the last handle closes the consumer: it leaves the group (no commit: what was
    // not committed goes to the next member).
    drop(consumer);
    shared.exited.store(true, Ordering::Release);
}

/// A member of a consumer group on one topic.
pub(super) struct KafkaConsumer {
    consumer: Option<Arc<BaseConsumer<GroupContext>>>,
    shared: Arc<Shared>,
    topic: String,
    group: String,
    timeout: Duration,
    closing: Closing,
}

impl KafkaConsumer {
    /// Subscribes a new member of `group` to `topic` and waits for its assignment.
    pub(super) async fn join(
        config: &KafkaConfig,
        topic: &str,
        group: &str,
        closing: Closing,
    ) -> Result<KafkaConsumer, BusError> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            data: Notify::new(),
            joined: Notify::new(),
            stop: AtomicBool::new(false),
            exited: AtomicBool::new(false),
        });
        let context = GroupContext {
            shared: shared.clone(),
            topic: topic.to_string(),
            timeout: config.request_timeout,
        };
        let mut settings = config.consumer_config(group, topic);
        settings.set(
            "statistics.interval.ms",
            STATS_INTERVAL.as_millis().to_string(),
        );
        if let Some(id) = &config.group_instance_id {
            settings.set("group.instance.id", id);
        }
        let consumer: BaseConsumer<GroupContext> = settings
            .create_with_context(context)
            .map_err(|e| BusError::Other(format!("kafka consumer config: {e}")))?;
        consumer.subscribe(&[topic]).map_err(|e| bus_error(&e))?;
        let consumer = Arc::new(consumer);
        let mut this = KafkaConsumer {
            consumer: Some(consumer.clone()),
            shared: shared.clone(),
            topic: topic.to_string(),
            group: group.to_string(),
            timeout: config.request_timeout,
            closing,
        };
        let max_buffered = config.max_buffered.max(1);
        std::thread::Builder::new()
            .name(format!("kafka-{group}"))
            .spawn(move || drive(consumer, shared, max_buffered))
            .map_err(|e| BusError::Other(format!("consumer thread: {e}")))?;

        let deadline = tokio::time::Instant::now() + config.join_timeout;
        let shared = this.shared.clone();
        loop {
            let joined = shared.joined.notified();
            if shared.state().joined {
                return Ok(this);
            }
            if tokio::time::timeout_at(deadline, joined).await.is_err() {
                this.close();
                return Err(BusError::Unavailable(format!(
                    "kafka group {group} got no assignment for topic {topic} within {:?}",
                    config.join_timeout
                )));
            }
        }
    }

    fn close(&mut self) {
        if self.consumer.take().is_some() {
            self.shared.stop.store(true, Ordering::Release);
            self.closing
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push((self.group.clone(), self.shared.clone()));
        }
    }
}

impl Drop for KafkaConsumer {
    fn drop(&mut self) {
        self.close();
    }
}

#[async_trait]
impl Consumer for KafkaConsumer {
    async fn poll(&mut self, max: usize, timeout: Duration) -> Result<Vec<Bytes>, BusError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let arrived = self.shared.data.notified();
            {
                let mut st = self.shared.state();
                if !st.buffer.is_empty() || max == 0 {
                    let n = max.min(st.buffer.len());
                    let mut out = Vec::with_capacity(n);
                    for (p, o, payload) in st.buffer.drain(..n).collect::<Vec<_>>() {
                        st.pending.insert(p, o + 1);
                        out.push(payload);
                    }
                    return Ok(out);
                }
            }
            if self.shared.exited.load(Ordering::Acquire) {
                return Err(BusError::Closed);
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                return Ok(Vec::new());
            }
        }
    }

    async fn commit(&mut self) -> Result<(), BusError> {
        let Some(consumer) = self.consumer.clone() else {
            return Err(BusError::Closed);
        };
        let (offsets, generation) = {
            let mut st = self.shared.state();
            (std::mem::take(&mut st.pending), st.generation)
        };
        if offsets.is_empty() {
            return Ok(());
        }
        let mut tpl = TopicPartitionList::new();
        for (p, o) in &offsets {
            let _ = tpl.add_partition_offset(&self.topic, *p, Offset::Offset(*o));
        }
        let result = tokio::time::timeout(
            self.timeout,
            tokio::task::spawn_blocking(move || consumer.commit(&tpl, CommitMode::Sync)),
        )
        .await;
        let err = match result {
            Ok(Ok(Ok(()))) => return Ok(()),
            Ok(Ok(Err(e))) => bus_error(&e),
            Ok(Err(join)) => BusError::Other(format!("commit task: {join}")),
            Err(_) => BusError::Unavailable(format!("kafka commit took over {:?}", self.timeout)),
        };
        // Keep the positions for the next commit unless the partitions moved meanwhile.
        let mut st = self.shared.state();
        if st.generation == generation {
            for (p, o) in offsets {
                let e = st.pending.entry(p).or_insert(o);
                *e = (*e).max(o);
            }
        }
        Err(err)
    }

    /// From librdkafka's statistics (every [`STATS_INTERVAL`]): messages not yet committed
    /// by the group on the partitions this member owns.
    fn lag(&self) -> Option<u64> {
        self.shared.state().lag
    }
}
