//! The `ContainerExecutor` trait and the `Container` handle it yields.
//!
//! An executor starts containers that speak the OpenWhisk runtime protocol; the protocol
//! client itself ([`crate::runtime`]) is shared by every executor.

use crate::logs::LogLine;
use async_trait::async_trait;
use std::sync::Arc;
use std::time::Duration;

/// What an executor operation failed with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ExecutorError {
    /// The kind or image cannot run on this executor.
    #[error("unsupported runtime: {0}")]
    Unsupported(String),
    /// The container could not be started.
    #[error("container start failed: {0}")]
    StartFailed(String),
    /// A user-named image (blackbox action) is neither present nor pullable; the activation
    /// gets OpenWhisk's developer error `Failed to pull container image '<image>'.`.
    #[error("image not available: {0}")]
    ImagePull(String),
    /// The container is gone.
    #[error("container is gone: {0}")]
    Gone(String),
    /// Anything else.
    #[error("executor error: {0}")]
    Other(String),
}

/// What to start.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerSpec {
    /// A name unique among this executor's containers (OpenWhisk style `wsk0_3_guest_hello`).
    pub name: String,
    /// The runtime kind (`nodejs:20`) or `blackbox`.
    pub kind: String,
    /// The image, for executors that run images.
    pub image: Option<String>,
    /// Memory limit in MB.
    pub memory_mb: u64,
    /// Environment of the container (e.g. `__OW_API_HOST`).
    pub env: Vec<(String, String)>,
    /// Keep the host's network for this container even where the executor gives containers a
    /// network of their own: the platform's own actions (the `whisk.system` namespace, such as
    /// the feed actions) call the platform's API at `__OW_API_HOST`.
    pub host_network: bool,
}

/// A running container.
#[async_trait]
pub trait Container: Send + Sync {
    /// The executor's id for it.
    fn id(&self) -> &str;

    /// Base URL of its runtime protocol endpoint, e.g. `http://127.0.0.1:43121`, or
    /// `unix:<path>` for a runtime listening on a unix socket.
    fn endpoint(&self) -> &str;

    /// Suspends it while idle (no-op for executors that cannot).
    async fn pause(&self) -> Result<(), ExecutorError> {
        Ok(())
    }

    /// Resumes it after [`Container::pause`].
    async fn resume(&self) -> Result<(), ExecutorError> {
        Ok(())
    }

    /// Stops and removes it. Idempotent.
    async fn destroy(&self) -> Result<(), ExecutorError>;

    /// Whether the container is known to have stopped: its process exited or it was
    /// destroyed. A runtime that is still being connected to is not waited for once it has
    /// stopped. The default, for backends that cannot tell cheaply, is `false`.
    fn exited(&self) -> bool {
        false
    }

    /// A runtime answering `/init` and `/run` in process, for containers that have no HTTP
    /// endpoint (the simulator's virtual containers, native executables driven over pipes by
    /// the process executor). `None` (the default): the pool speaks
    /// the runtime protocol to [`endpoint`](Container::endpoint) over HTTP.
    fn in_process(&self) -> Option<&dyn InProcessRuntime> {
        None
    }

    /// Whether it was killed for exceeding its memory limit (asked after a failed call, to
    /// report OpenWhisk's `The action exhausted its memory and was aborted.`). Executors that
    /// cannot tell answer `false`.
    async fn out_of_memory(&self) -> bool {
        false
    }

    /// The log lines written since the last call. With `until_sentinels`, waits (up to
    /// `wait`) until the runtime has written the end-of-activation sentinel on both stdout and
    /// stderr; sentinel lines are not returned. Returns early if the container died.
    async fn logs(
        &self,
        until_sentinels: bool,
        wait: Duration,
    ) -> Result<Vec<LogLine>, ExecutorError>;

    /// The log lines of one activation when several run at once in this container (the
    /// runtime tags their output per activation); waits up to `wait` for its sentinels.
    /// Executors whose runtimes cannot tag output return the next activation's lines.
    async fn activation_logs(
        &self,
        _activation_id: &str,
        wait: Duration,
    ) -> Result<Vec<LogLine>, ExecutorError> {
        self.logs(true, wait).await
    }
}

/// A runtime called in process instead of over HTTP: the same `/init` and `/run` bodies,
/// answered with the [`Reply`](crate::runtime::Reply) an HTTP runtime would give, which the
/// pool's [`RuntimeClient`](crate::runtime::RuntimeClient) classifies the same way.
#[async_trait]
pub trait InProcessRuntime: Send + Sync {
    /// `/init` with `body`, within `timeout`.
    async fn init(
        &self,
        body: &serde_json::Value,
        timeout: std::time::Duration,
    ) -> crate::runtime::Reply;

    /// `/run` with `body`, within `timeout`.
    async fn run(
        &self,
        body: &serde_json::Value,
        timeout: std::time::Duration,
    ) -> crate::runtime::Reply;
}

/// Starts containers.
#[async_trait]
pub trait ContainerExecutor: Send + Sync + 'static {
    /// A short name for logs and docs (`process`, `docker`).
    fn name(&self) -> &str;

    /// Whether this executor can run `kind`.
    fn supports(&self, kind: &str) -> bool;

    /// Starts a container; it is ready for `/init` when this returns.
    async fn create(&self, spec: &ContainerSpec) -> Result<Arc<dyn Container>, ExecutorError>;
}
