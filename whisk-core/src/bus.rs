//! The `MessageBus` trait: topics of bytes with consumer groups and commits.
//!
//! Semantics every backend keeps (and the `testkit` suite checks): per-topic ordering;
//! each message reaches one consumer of each group; a group that subscribes starts at the
//! end of the topic (Kafka's `auto.offset.reset=latest`); messages polled but not committed
//! are delivered again to the group's next consumer (at-least-once). Engines tolerate
//! duplicates by activation id.

use async_trait::async_trait;
use bytes::Bytes;
use std::time::Duration;

/// What a bus operation failed with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BusError {
    /// The broker cannot be reached.
    #[error("bus unavailable: {0}")]
    Unavailable(String),
    /// The message is larger than the topic allows.
    #[error("message too large: {0} bytes")]
    TooLarge(usize),
    /// The bus was shut down.
    #[error("bus closed")]
    Closed,
    /// Anything else.
    #[error("bus error: {0}")]
    Other(String),
}

/// A topic-based message bus.
#[async_trait]
pub trait MessageBus: Send + Sync + 'static {
    /// Creates `topic` if it does not exist.
    async fn create_topic(&self, topic: &str) -> Result<(), BusError>;

    /// Appends `payload` to `topic`.
    async fn publish(&self, topic: &str, payload: Bytes) -> Result<(), BusError>;

    /// Joins consumer group `group` on `topic`.
    async fn subscribe(&self, topic: &str, group: &str) -> Result<Box<dyn Consumer>, BusError>;
}

/// One member of a consumer group.
#[async_trait]
pub trait Consumer: Send {
    /// Waits up to `timeout` for messages and returns at most `max` of them (possibly none).
    async fn poll(&mut self, max: usize, timeout: Duration) -> Result<Vec<Bytes>, BusError>;

    /// Commits every message returned by `poll` so far.
    async fn commit(&mut self) -> Result<(), BusError>;

    /// The bus lag: how many messages of the topic the member's group has not committed yet
    /// (on the partitions this member owns), as far as the member knows without asking the
    /// broker (it may be a few seconds old); `None` when the backend cannot tell.
    fn lag(&self) -> Option<u64> {
        None
    }
}

/// Topic names as OpenWhisk spells them.
pub mod topics {
    /// Activations for invoker `n`.
    pub fn invoker(n: u32) -> String {
        format!("invoker{n}")
    }

    /// Acknowledgements for controller `n`.
    pub fn completed(n: u32) -> String {
        format!("completed{n}")
    }

    /// Invoker health pings.
    pub const HEALTH: &str = "health";
    /// Cache invalidation between controllers.
    pub const CACHE_INVALIDATION: &str = "cacheInvalidation";
    /// User events.
    pub const EVENTS: &str = "events";
}
