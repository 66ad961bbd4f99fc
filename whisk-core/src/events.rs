//! OpenWhisk's user events: [`EventMessage`]s on topic `events`, published fire-and-forget.
//!
//! When enabled (`InvokerConfig::user_events`, `ControllerConfig::user_events`), the invoker
//! publishes an `Activation` event after each activation is recorded and acknowledged, and
//! the controller a `Metric` event (`TimedRateLimit` or `ConcurrentRateLimit`, value 1) for
//! each request a throttle refuses with 429. Publishing never waits on the bus and never
//! fails the caller: events queue for one background task and are dropped (with a warning)
//! when the queue is full or the bus refuses them.

use crate::bus::{topics, MessageBus};
use crate::entity::{Identity, WhiskActivation};
use crate::message::EventMessage;
use bytes::Bytes;
use std::sync::{Arc, OnceLock};
use tokio::sync::mpsc;

/// Events waiting for the bus at most; beyond this, new events are dropped.
pub const QUEUE_CAPACITY: usize = 4096;

/// Publishes [`EventMessage`]s of one source (`invoker0`, `controller0`, ...) to topic
/// [`topics::EVENTS`], in order, without ever blocking or failing the caller.
pub struct EventPublisher {
    source: String,
    bus: Arc<dyn MessageBus>,
    queue: OnceLock<mpsc::Sender<Bytes>>,
}

impl std::fmt::Debug for EventPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventPublisher")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl EventPublisher {
    /// A publisher on `bus` whose events say they come from `source`.
    pub fn new(bus: Arc<dyn MessageBus>, source: impl Into<String>) -> Self {
        Self {
            source: source.into(),
            bus,
            queue: OnceLock::new(),
        }
    }

    /// The `source` of its events.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The `Activation` event of `a`, run for `user`, ready to [publish](PendingEvent::publish);
    /// `None` when `a` lacks the `path` or `kind` annotation.
    pub fn activation(&self, a: &WhiskActivation, user: &Identity) -> Option<PendingEvent<'_>> {
        let event = EventMessage::activation(&self.source, a, &user.namespace.uuid);
        if event.is_none() {
            tracing::warn!(activation = %a.activation_id, "no user event: path or kind annotation missing");
        }
        Some(PendingEvent {
            publisher: self,
            event: event?,
        })
    }

    /// Publishes the `Metric` event `name` = `value` about `user`.
    pub fn metric(&self, user: &Identity, name: &str, value: i64) {
        self.publish(&EventMessage::metric(&self.source, user, name, value));
    }

    /// Queues `event` for the bus and returns at once. The first call starts the task that
    /// publishes (it needs a Tokio runtime; without one the event is dropped). Failures are
    /// logged, never returned.
    pub fn publish(&self, event: &EventMessage) {
        let Some(queue) = self.queue() else {
            tracing::warn!("user event dropped: no Tokio runtime to publish it");
            return;
        };
        if let Err(e) = queue.try_send(event.to_bytes().into()) {
            tracing::warn!(error = %e, event_type = %event.event_type, "user event dropped");
        }
    }

    /// The queue to the publishing task, starting the task on first use.
    fn queue(&self) -> Option<&mpsc::Sender<Bytes>> {
        if let Some(q) = self.queue.get() {
            return Some(q);
        }
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        Some(self.queue.get_or_init(|| {
            let (tx, mut rx) = mpsc::channel::<Bytes>(QUEUE_CAPACITY);
            let bus = self.bus.clone();
            // Ends when the publisher (the only sender) is dropped and the queue is drained.
            runtime.spawn(async move {
                if let Err(e) = bus.create_topic(topics::EVENTS).await {
                    tracing::warn!(error = %e, "creating the user events topic failed");
                }
                while let Some(bytes) = rx.recv().await {
                    if let Err(e) = bus.publish(topics::EVENTS, bytes).await {
                        tracing::warn!(error = %e, "publishing a user event failed");
                    }
                }
            });
            tx
        }))
    }
}

/// An event made now, to be published later (e.g. once the activation is acknowledged).
#[derive(Debug)]
pub struct PendingEvent<'a> {
    publisher: &'a EventPublisher,
    event: EventMessage,
}

impl PendingEvent<'_> {
    /// The event.
    pub fn event(&self) -> &EventMessage {
        &self.event
    }

    /// Publishes it (see [`EventPublisher::publish`]).
    pub fn publish(self) {
        self.publisher.publish(&self.event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::{BusError, Consumer};
    use crate::entity::identity::{AuthKey, GUEST_KEY};
    use crate::entity::Identity;
    use crate::message::METRIC_TIMED_RATE_LIMIT;
    use async_trait::async_trait;
    use std::sync::Mutex;
    use std::time::Duration;

    /// A bus that records what is published, or refuses everything.
    #[derive(Default)]
    struct Recording {
        published: Mutex<Vec<(String, Bytes)>>,
        refuse: bool,
    }

    #[async_trait]
    impl MessageBus for Recording {
        async fn create_topic(&self, _topic: &str) -> Result<(), BusError> {
            Ok(())
        }
        async fn publish(&self, topic: &str, payload: Bytes) -> Result<(), BusError> {
            if self.refuse {
                return Err(BusError::Unavailable("down".into()));
            }
            self.published
                .lock()
                .unwrap()
                .push((topic.to_string(), payload));
            Ok(())
        }
        async fn subscribe(&self, _: &str, _: &str) -> Result<Box<dyn Consumer>, BusError> {
            Err(BusError::Other("not here".into()))
        }
    }

    fn metric(n: i64) -> EventMessage {
        let user = Identity::new("guest", "guest", &AuthKey::parse(GUEST_KEY).unwrap());
        EventMessage::metric("controller0", &user, METRIC_TIMED_RATE_LIMIT, n)
    }

    #[tokio::test]
    async fn publishes_in_order_on_the_events_topic() {
        let bus = Arc::new(Recording::default());
        let p = EventPublisher::new(bus.clone(), "controller0");
        assert_eq!(p.source(), "controller0");
        for n in 0..10 {
            p.publish(&metric(n));
        }
        for _ in 0..200 {
            if bus.published.lock().unwrap().len() == 10 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let got = bus.published.lock().unwrap().clone();
        assert_eq!(got.len(), 10);
        for (n, (topic, bytes)) in got.iter().enumerate() {
            assert_eq!(topic, "events");
            assert_eq!(
                EventMessage::parse(bytes).unwrap().body,
                metric(n as i64).body
            );
        }
    }

    #[tokio::test]
    async fn a_failing_bus_fails_no_one() {
        let bus = Arc::new(Recording {
            refuse: true,
            ..Recording::default()
        });
        let p = EventPublisher::new(bus.clone(), "invoker0");
        for n in 0..(QUEUE_CAPACITY as i64 * 2) {
            p.publish(&metric(n)); // returns at once, full queue or not
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(bus.published.lock().unwrap().is_empty());
    }

    #[test]
    fn without_a_runtime_events_are_dropped() {
        let bus = Arc::new(Recording::default());
        EventPublisher::new(bus.clone(), "invoker0").publish(&metric(1));
        assert!(bus.published.lock().unwrap().is_empty());
    }
}
