//! The handle of one Docker container.

use crate::logbuf::LogBuffer;
use async_trait::async_trait;
use bollard::query_parameters::RemoveContainerOptions;
use bollard::Docker;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use whisk_core::executor::{Container, ExecutorError};
use whisk_core::logs::LogLine;

/// How long [`Container::out_of_memory`] waits for a container whose runtime just failed to
/// be seen stopped by the daemon (the kernel's kill reaches the client before the daemon).
const STOP_SETTLE: Duration = Duration::from_secs(1);

/// One container on the daemon, running a runtime on [`super::RUNTIME_PORT`].
pub(crate) struct DockerContainer {
    pub(crate) docker: Docker,
    /// The daemon's container id.
    pub(crate) id: String,
    /// Its name (for messages).
    pub(crate) name: String,
    pub(crate) endpoint: String,
    pub(crate) logs: Arc<LogBuffer>,
    pub(crate) follower: JoinHandle<()>,
    /// Whether destroy removed it.
    pub(crate) removed: AtomicBool,
}

impl DockerContainer {
    fn error(&self, action: &str, e: &bollard::errors::Error) -> ExecutorError {
        match super::status(e) {
            Some(404) => ExecutorError::Gone(self.name.clone()),
            _ => ExecutorError::Other(format!("{action} {}: {}", self.name, super::describe(e))),
        }
    }
}

/// Removes container `id` with force; a container already gone counts as removed.
pub(crate) async fn remove(docker: &Docker, id: &str) -> Result<(), bollard::errors::Error> {
    let options = RemoveContainerOptions {
        force: true,
        v: true,
        ..RemoveContainerOptions::default()
    };
    match docker.remove_container(id, Some(options)).await {
        Ok(()) => Ok(()),
        // 404: gone; 409: a removal is already in progress.
        Err(e) if matches!(super::status(&e), Some(404 | 409)) => Ok(()),
        Err(e) => Err(e),
    }
}

#[async_trait]
impl Container for DockerContainer {
    fn id(&self) -> &str {
        &self.id
    }

    fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// `docker pause` (the cgroup freezer).
    async fn pause(&self) -> Result<(), ExecutorError> {
        self.docker
            .pause_container(&self.id)
            .await
            .map_err(|e| self.error("pause", &e))
    }

    /// `docker unpause`.
    async fn resume(&self) -> Result<(), ExecutorError> {
        self.docker
            .unpause_container(&self.id)
            .await
            .map_err(|e| self.error("unpause", &e))
    }

    /// `docker rm --force` (also when paused); the log follower ends with the container.
    async fn destroy(&self) -> Result<(), ExecutorError> {
        remove(&self.docker, &self.id)
            .await
            .map_err(|e| self.error("remove", &e))?;
        self.removed.store(true, Ordering::Relaxed);
        Ok(())
    }

    /// `State.OOMKilled` of the container, once the daemon saw it stop (waiting up to a
    /// second for a running one); `false` when it is gone or the daemon cannot say.
    async fn out_of_memory(&self) -> bool {
        let deadline = tokio::time::Instant::now() + STOP_SETTLE;
        loop {
            let state = match self.docker.inspect_container(&self.id, None).await {
                Ok(info) => info.state.unwrap_or_default(),
                Err(_) => return false,
            };
            if state.oom_killed == Some(true) {
                return true;
            }
            if state.running != Some(true) || tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn logs(
        &self,
        until_sentinels: bool,
        wait: Duration,
    ) -> Result<Vec<LogLine>, ExecutorError> {
        Ok(self.logs.take(until_sentinels, wait).await)
    }

    async fn activation_logs(
        &self,
        activation_id: &str,
        wait: Duration,
    ) -> Result<Vec<LogLine>, ExecutorError> {
        Ok(self.logs.take_tagged(activation_id, wait).await)
    }
}

impl Drop for DockerContainer {
    /// A container dropped without destroy is removed in the background.
    fn drop(&mut self) {
        if !self.removed.load(Ordering::Relaxed) {
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                let (docker, id) = (self.docker.clone(), self.id.clone());
                runtime.spawn(async move {
                    let _ = remove(&docker, &id).await;
                });
            }
        }
        self.follower.abort();
    }
}
