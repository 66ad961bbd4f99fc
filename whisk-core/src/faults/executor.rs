//! [`FaultyExecutor`]: a [`ContainerExecutor`] that injects [`Faults`] into another.

use super::{Fault, FaultHandle, Faults, Injector, INJECTED};
use crate::executor::{Container, ContainerExecutor, ContainerSpec, ExecutorError};
use async_trait::async_trait;
use std::sync::Arc;

/// An executor whose container starts are delayed, fail (`StartFailed`, nothing started) or
/// are lost (the container is started and destroyed at once, as one that dies right after
/// its start: whatever calls it next finds it gone). Duplicates pass through.
pub struct FaultyExecutor<E> {
    inner: E,
    injector: Arc<Injector>,
}

impl<E: ContainerExecutor> FaultyExecutor<E> {
    /// Wraps `inner`.
    pub fn new(inner: E, faults: Faults) -> Self {
        Self {
            inner,
            injector: Injector::new(faults),
        }
    }

    /// Switches the faults and reads the counts.
    pub fn handle(&self) -> FaultHandle {
        FaultHandle(self.injector.clone())
    }

    /// The wrapped executor.
    pub fn inner(&self) -> &E {
        &self.inner
    }
}

#[async_trait]
impl<E: ContainerExecutor> ContainerExecutor for FaultyExecutor<E> {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn supports(&self, kind: &str) -> bool {
        self.inner.supports(kind)
    }

    async fn create(&self, spec: &ContainerSpec) -> Result<Arc<dyn Container>, ExecutorError> {
        match self.injector.roll().await {
            Fault::Pass | Fault::Duplicate => self.inner.create(spec).await,
            Fault::Error => Err(ExecutorError::StartFailed(INJECTED.into())),
            Fault::Drop => {
                let container = self.inner.create(spec).await?;
                container.destroy().await?;
                Ok(container)
            }
        }
    }
}
