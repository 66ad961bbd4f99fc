//! An in-process [`MessageBus`]: one append-only log per topic with per-group offsets.
//!
//! Each group keeps a committed offset and a read position shared by its members. A group
//! that joins starts at the end of the log; when its last member leaves, its position falls
//! back to the committed offset so uncommitted messages are delivered again. The log is
//! trimmed below the smallest committed offset of all groups, so memory stays bounded by
//! what some group has not committed yet.

use async_trait::async_trait;
use bytes::Bytes;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use whisk_core::bus::{BusError, Consumer, MessageBus};

#[derive(Default)]
struct Group {
    committed: u64,
    position: u64,
    members: usize,
}

#[derive(Default)]
struct Log {
    /// Offset of `messages[0]`.
    base: u64,
    messages: VecDeque<Bytes>,
    groups: HashMap<String, Group>,
}

impl Log {
    fn end(&self) -> u64 {
        self.base + self.messages.len() as u64
    }

    fn trim(&mut self) {
        let Some(min) = self.groups.values().map(|g| g.committed).min() else {
            return;
        };
        while self.base < min && !self.messages.is_empty() {
            self.messages.pop_front();
            self.base += 1;
        }
    }
}

#[derive(Default)]
struct Topic {
    log: Mutex<Log>,
    published: Notify,
}

/// A [`MessageBus`] inside one process.
#[derive(Default)]
pub struct MemoryBus {
    topics: Mutex<HashMap<String, Arc<Topic>>>,
}

impl MemoryBus {
    /// An empty bus.
    pub fn new() -> Self {
        Self::default()
    }

    fn topic(&self, name: &str) -> Arc<Topic> {
        self.topics
            .lock()
            .unwrap()
            .entry(name.to_string())
            .or_default()
            .clone()
    }
}

#[async_trait]
impl MessageBus for MemoryBus {
    async fn create_topic(&self, topic: &str) -> Result<(), BusError> {
        self.topic(topic);
        Ok(())
    }

    async fn publish(&self, topic: &str, payload: Bytes) -> Result<(), BusError> {
        let t = self.topic(topic);
        {
            let mut log = t.log.lock().unwrap();
            // A group joining later starts at the end, so a topic without groups keeps nothing.
            if log.groups.is_empty() {
                log.base += 1;
                return Ok(());
            }
            log.messages.push_back(payload);
        }
        t.published.notify_waiters();
        Ok(())
    }

    async fn subscribe(&self, topic: &str, group: &str) -> Result<Box<dyn Consumer>, BusError> {
        let t = self.topic(topic);
        {
            let mut log = t.log.lock().unwrap();
            let end = log.end();
            let g = log
                .groups
                .entry(group.to_string())
                .or_insert_with(|| Group {
                    committed: end,
                    position: end,
                    members: 0,
                });
            g.members += 1;
        }
        Ok(Box::new(MemoryConsumer {
            topic: t,
            group: group.to_string(),
            delivered: 0,
        }))
    }
}

struct MemoryConsumer {
    topic: Arc<Topic>,
    group: String,
    /// The offset after the last message this member received.
    delivered: u64,
}

#[async_trait]
impl Consumer for MemoryConsumer {
    async fn poll(&mut self, max: usize, timeout: Duration) -> Result<Vec<Bytes>, BusError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.topic.published.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut log = self.topic.log.lock().unwrap();
                let base = log.base;
                let end = log.end();
                let g = log
                    .groups
                    .get_mut(&self.group)
                    .expect("member's group exists");
                let from = g.position.max(base);
                if from < end && max > 0 {
                    let to = end.min(from + max as u64);
                    g.position = to;
                    self.delivered = to;
                    let out = log
                        .messages
                        .range((from - base) as usize..(to - base) as usize)
                        .cloned()
                        .collect();
                    return Ok(out);
                }
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Ok(Vec::new());
            }
        }
    }

    async fn commit(&mut self) -> Result<(), BusError> {
        let mut log = self.topic.log.lock().unwrap();
        if let Some(g) = log.groups.get_mut(&self.group) {
            g.committed = g.committed.max(self.delivered);
        }
        log.trim();
        Ok(())
    }

    fn lag(&self) -> Option<u64> {
        let log = self.topic.log.lock().unwrap();
        let committed = log
            .groups
            .get(&self.group)
            .map_or(log.base, |g| g.committed);
        Some(log.end().saturating_sub(committed.max(log.base)))
    }
}

impl Drop for MemoryConsumer {
    fn drop(&mut self) {
        let mut log = self.topic.log.lock().unwrap();
        if let Some(g) = log.groups.get_mut(&self.group) {
            g.members -= 1;
            if g.members == 0 {
                g.position = g.committed;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    whisk_core::bus_conformance_tests!(MemoryBus::new());

    #[tokio::test]
    async fn committed_messages_are_trimmed() {
        let bus = MemoryBus::new();
        let mut c = bus.subscribe("t", "g").await.unwrap();
        for i in 0..100 {
            bus.publish("t", Bytes::from(format!("{i}"))).await.unwrap();
        }
        assert_eq!(
            c.poll(100, Duration::from_secs(1)).await.unwrap().len(),
            100
        );
        c.commit().await.unwrap();
        assert_eq!(bus.topic("t").log.lock().unwrap().messages.len(), 0);
        bus.publish("nobody-listens", Bytes::from("x"))
            .await
            .unwrap();
        assert_eq!(
            bus.topic("nobody-listens")
                .log
                .lock()
                .unwrap()
                .messages
                .len(),
            0
        );
    }
}
