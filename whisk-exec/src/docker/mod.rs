//! The `docker` executor (feature `docker`): every container is a Docker container of an
//! OpenWhisk runtime image, made as OpenWhisk's invoker makes them.
//!
//! - **Images.** A kind runs the image the runtime manifest names for it; a blackbox action
//!   runs its own image. An image the daemon has is used as it is; a missing one is pulled
//!   (within [`DockerConfig::pull_timeout`]). A blackbox image that cannot be pulled is
//!   [`ExecutorError::ImagePull`] (the action's developer error); a manifest image that
//!   cannot be pulled is [`ExecutorError::StartFailed`].
//! - **Limits.** `--memory` and `--memory-swap` of the action's memory, CPU shares in
//!   proportion to it ([`cpu_shares`]), `--pids-limit 1024`, `--ulimit nofile=1024:1024`,
//!   `--cap-drop NET_RAW NET_ADMIN`, on [`DockerConfig::network`].
//! - **Names and labels.** A container is named by its spec (`wsk0_3_guest_hello`), with
//!   [`DockerConfig::name_prefix`] prepended when the name lacks it, and labelled
//!   [`NAME_PREFIX_LABEL`] and [`KIND_LABEL`]. Invokers call [`DockerExecutor::cleanup`] at
//!   start-up to remove the containers a previous run left behind.
//! - **Endpoint.** `http://<container address on the network>:8080`. `create` returns once
//!   the container runs, without waiting for the runtime to listen: the runtime client
//!   retries connecting until the action's timeout, as OpenWhisk's does.
//! - **Logs.** The daemon's log stream of the container is followed from its start and split
//!   into activations at the sentinels.
//!
//! ```no_run
//! use whisk_core::executor::{ContainerExecutor, ContainerSpec};
//! use whisk_exec::docker::{DockerConfig, DockerExecutor};
//! # #[tokio::main] async fn main() {
//! let exec = DockerExecutor::connect(DockerConfig::default()).await.unwrap();
//! exec.cleanup().await.unwrap(); // leftovers of a previous run
//! let spec = ContainerSpec { name: "wsk0_1_guest_hello".into(), kind: "nodejs:20".into(),
//!                            image: None, memory_mb: 256, env: vec![] , host_network: false };
//! let container = exec.create(&spec).await.unwrap();
//! println!("runtime at {}", container.endpoint());
//! container.destroy().await.unwrap();
//! # }
//! ```

mod config;
mod container;
mod image;
mod logs;
mod settings;

pub use config::{DockerConfig, DEFAULT_SOCKET};
pub use settings::{cpu_shares, DROPPED_CAPABILITIES, KIND_LABEL, NAME_PREFIX_LABEL, RUNTIME_PORT};

use crate::logbuf::LogBuffer;
use async_trait::async_trait;
use bollard::errors::Error as DockerError;
use bollard::query_parameters::{CreateContainerOptions, ListContainersOptions};
use bollard::Docker;
use container::DockerContainer;
use image::Image;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use whisk_core::executor::{Container, ContainerExecutor, ContainerSpec, ExecutorError};

/// Runs containers on a Docker daemon; one daemon client serves all its containers.
pub struct DockerExecutor {
    docker: Docker,
    config: DockerConfig,
}

impl DockerExecutor {
    /// Connects to the daemon of `config` and agrees on the API version with it (daemons
    /// older than the client's API version refuse it otherwise). Removes nothing: see
    /// [`DockerExecutor::cleanup`]. A daemon that does not answer within
    /// [`DockerConfig::connect_timeout`] is an [`ExecutorError::Other`] naming it.
    pub async fn connect(config: DockerConfig) -> Result<Self, ExecutorError> {
        let path = config.socket_path().map_err(ExecutorError::Other)?;
        let unreachable = |e: String| {
            ExecutorError::Other(format!(
                "Docker daemon at unix://{path} is unreachable: {e}"
            ))
        };
        let timeout = config.request_timeout.as_secs().max(1);
        let docker = Docker::connect_with_unix(&path, timeout, bollard::API_DEFAULT_VERSION)
            .map_err(|e| unreachable(describe(&e)))?;
        let docker =
            match tokio::time::timeout(config.connect_timeout, docker.negotiate_version()).await {
                Ok(Ok(docker)) => docker,
                Ok(Err(e)) => return Err(unreachable(describe(&e))),
                Err(_) => {
                    return Err(unreachable(format!(
                        "no answer within {:?}",
                        config.connect_timeout
                    )))
                }
            };
        Ok(Self { docker, config })
    }

    /// The configuration it was connected with.
    pub fn config(&self) -> &DockerConfig {
        &self.config
    }

    /// Removes every container, running or not, whose name starts with
    /// [`DockerConfig::name_prefix`]: what a previous run of this invoker left behind.
    /// Invokers call it at start-up, before creating containers. Returns how many it removed.
    pub async fn cleanup(&self) -> Result<usize, ExecutorError> {
        let options = ListContainersOptions {
            all: true,
            ..ListContainersOptions::default()
        };
        let listed = self
            .docker
            .list_containers(Some(options))
            .await
            .map_err(|e| {
                ExecutorError::Other(format!("cannot list containers: {}", describe(&e)))
            })?;
        let prefix = format!("/{}", self.config.name_prefix);
        let ours: Vec<String> = listed
            .into_iter()
            .filter(|c| c.names.iter().flatten().any(|n| n.starts_with(&prefix)))
            .filter_map(|c| c.id)
            .collect();
        let removals = ours.iter().map(|id| container::remove(&self.docker, id));
        let results = futures::future::join_all(removals).await;
        let mut removed = 0;
        for (id, result) in ours.iter().zip(results) {
            match result {
                Ok(()) => removed += 1,
                Err(e) => {
                    return Err(ExecutorError::Other(format!(
                        "cannot remove leftover container {id}: {}",
                        describe(&e)
                    )))
                }
            }
        }
        if removed > 0 {
            tracing::info!(removed, prefix = %self.config.name_prefix, "removed leftover containers");
        }
        Ok(removed)
    }

    /// Starts container `id` and finds its address; `Err` leaves it to the caller to
    /// remove.
    async fn start(&self, id: &str) -> Result<String, String> {
        self.docker
            .start_container(id, None)
            .await
            .map_err(|e| format!("start: {}", describe(&e)))?;
        let info = self
            .docker
            .inspect_container(id, None)
            .await
            .map_err(|e| format!("inspect: {}", describe(&e)))?;
        let network = &self.config.network;
        let address = info
            .network_settings
            .and_then(|s| s.networks)
            .and_then(|mut n| n.remove(network))
            .and_then(|n| n.ip_address)
            .filter(|ip| !ip.is_empty());
        match address {
            Some(ip) => Ok(ip),
            None => {
                let state = info.state.unwrap_or_default();
                Err(match state.running {
                    Some(true) => format!("no address on network {network}"),
                    _ => format!(
                        "exited at once (status {}{})",
                        state.exit_code.unwrap_or_default(),
                        state
                            .error
                            .filter(|e| !e.is_empty())
                            .map(|e| format!(": {e}"))
                            .unwrap_or_default()
                    ),
                })
            }
        }
    }
}

/// Removes a half-made container when its `create` fails or is abandoned.
struct Unfinished {
    docker: Docker,
    id: Option<String>,
}

impl Unfinished {
    async fn remove(mut self) {
        if let Some(id) = self.id.take() {
            if let Err(e) = container::remove(&self.docker, &id).await {
                tracing::warn!(container = %id, error = %describe(&e), "container not removed");
            }
        }
    }
}

impl Drop for Unfinished {
    fn drop(&mut self) {
        if let Some(id) = self.id.take() {
            let docker = self.docker.clone();
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move {
                    let _ = container::remove(&docker, &id).await;
                });
            }
        }
    }
}

#[async_trait]
impl ContainerExecutor for DockerExecutor {
    fn name(&self) -> &str {
        "docker"
    }

    /// `blackbox` and the kinds of the manifest.
    fn supports(&self, kind: &str) -> bool {
        kind == "blackbox" || self.config.manifest.resolve(kind).is_ok()
    }

    async fn create(&self, spec: &ContainerSpec) -> Result<Arc<dyn Container>, ExecutorError> {
        let image = Image::of(spec, &self.config.manifest)?;
        image.ensure(&self.docker, self.config.pull_timeout).await?;
        let name = settings::container_name(&self.config.name_prefix, &spec.name);
        let options = CreateContainerOptions {
            name: Some(name.clone()),
            ..CreateContainerOptions::default()
        };
        let body = settings::create_body(&self.config, spec, &image.reference);
        let created = self
            .docker
            .create_container(Some(options), body)
            .await
            .map_err(|e| {
                ExecutorError::StartFailed(format!(
                    "cannot create container {name}: {}",
                    describe(&e)
                ))
            })?;
        let unfinished = Unfinished {
            docker: self.docker.clone(),
            id: Some(created.id.clone()),
        };
        let ip = match self.start(&created.id).await {
            Ok(ip) => ip,
            Err(e) => {
                unfinished.remove().await;
                return Err(ExecutorError::StartFailed(format!("container {name}: {e}")));
            }
        };
        let mut unfinished = unfinished;
        unfinished.id = None;
        let logs = Arc::new(LogBuffer::default());
        let follower = logs::follow(self.docker.clone(), created.id.clone(), logs.clone());
        Ok(Arc::new(DockerContainer {
            docker: self.docker.clone(),
            id: created.id,
            name,
            endpoint: format!("http://{ip}:{RUNTIME_PORT}"),
            logs,
            follower,
            removed: AtomicBool::new(false),
        }))
    }
}

/// The HTTP status of a daemon's error answer.
fn status(e: &DockerError) -> Option<u16> {
    match e {
        DockerError::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}

/// The daemon's message of an error answer, else the error.
fn describe(e: &DockerError) -> String {
    match e {
        DockerError::DockerResponseServerError { message, .. } => message.clone(),
        other => other.to_string(),
    }
}
