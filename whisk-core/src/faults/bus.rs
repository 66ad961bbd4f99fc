//! [`FaultyBus`]: a [`MessageBus`] that injects [`Faults`] into another.

use super::{Fault, FaultHandle, Faults, Injector, INJECTED};
use crate::bus::{BusError, Consumer, MessageBus};
use async_trait::async_trait;
use bytes::Bytes;
use std::sync::Arc;
use std::time::Duration;

/// A bus that delays, fails, loses and repeats what goes through `B`.
/// - `publish`: an error fails it unpublished; a drop acknowledges it unpublished (the
///   message is lost); a duplicate publishes it twice (delivered twice).
/// - `poll` and `commit` of its consumers: latency and errors (a failed commit leaves the
///   messages to be delivered again); their drops and duplicates are errors and passes.
/// - `create_topic` and `subscribe`: latency and errors.
///
/// All of a bus's calls, its consumers' included, share one set of dice and counts.
pub struct FaultyBus<B> {
    inner: B,
    injector: Arc<Injector>,
}

impl<B: MessageBus> FaultyBus<B> {
    /// Wraps `inner`.
    pub fn new(inner: B, faults: Faults) -> Self {
        Self {
            inner,
            injector: Injector::new(faults),
        }
    }

    /// Switches the faults and reads the counts.
    pub fn handle(&self) -> FaultHandle {
        FaultHandle(self.injector.clone())
    }

    /// The wrapped bus.
    pub fn inner(&self) -> &B {
        &self.inner
    }
}

/// The faults of a call with nothing to lose or repeat: latency, and errors.
async fn call(injector: &Injector) -> Result<(), BusError> {
    injector
        .gate(|| BusError::Unavailable(INJECTED.into()))
        .await
}

#[async_trait]
impl<B: MessageBus> MessageBus for FaultyBus<B> {
    async fn create_topic(&self, topic: &str) -> Result<(), BusError> {
        call(&self.injector).await?;
        self.inner.create_topic(topic).await
    }

    async fn publish(&self, topic: &str, payload: Bytes) -> Result<(), BusError> {
        match self.injector.roll().await {
            Fault::Pass => self.inner.publish(topic, payload).await,
            Fault::Error => Err(BusError::Unavailable(INJECTED.into())),
            Fault::Drop => Ok(()),
            Fault::Duplicate => {
                self.inner.publish(topic, payload.clone()).await?;
                self.inner.publish(topic, payload).await
            }
        }
    }

    async fn subscribe(&self, topic: &str, group: &str) -> Result<Box<dyn Consumer>, BusError> {
        call(&self.injector).await?;
        let inner = self.inner.subscribe(topic, group).await?;
        Ok(Box::new(FaultyConsumer {
            inner,
            injector: self.injector.clone(),
        }))
    }
}

/// A consumer of a [`FaultyBus`].
struct FaultyConsumer {
    inner: Box<dyn Consumer>,
    injector: Arc<Injector>,
}

#[async_trait]
impl Consumer for FaultyConsumer {
    async fn poll(&mut self, max: usize, timeout: Duration) -> Result<Vec<Bytes>, BusError> {
        call(&self.injector).await?;
        self.inner.poll(max, timeout).await
    }

    async fn commit(&mut self) -> Result<(), BusError> {
        call(&self.injector).await?;
        self.inner.commit().await
    }

    fn lag(&self) -> Option<u64> {
        self.inner.lag()
    }
}
