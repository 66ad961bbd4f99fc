//! [`DockerConfig`]: where the daemon is and how containers are made.

use std::time::Duration;
use whisk_core::entity::RuntimeManifest;

/// The daemon's socket when neither the config nor `DOCKER_HOST` names one.
pub const DEFAULT_SOCKET: &str = "unix:///var/run/docker.sock";

/// How a [`DockerExecutor`](super::DockerExecutor) reaches its daemon and sets up containers.
///
/// The defaults are OpenWhisk's invoker defaults: containers on the `bridge` network, 1024 MB
/// of user memory for the CPU-share computation, `--pids-limit 1024`, `--ulimit
/// nofile=1024:1024`, images pulled within 5 minutes.
#[derive(Debug, Clone)]
pub struct DockerConfig {
    /// The daemon's unix socket: a path (`/var/run/docker.sock`) or a `unix://` URL. `None`:
    /// `DOCKER_HOST` from the environment, else `unix:///var/run/docker.sock`. Only unix
    /// sockets are supported (the client is built without TCP and TLS).
    pub host: Option<String>,
    /// The Docker network containers join; the runtime endpoint is the container's address
    /// on it, so the invoker must reach that network (default `bridge`).
    pub network: String,
    /// The prefix of the names of the containers this invoker owns (`wsk0_`): a container
    /// whose name lacks it gets it prepended, and [`DockerExecutor::cleanup`] removes every
    /// container whose name starts with it.
    ///
    /// [`DockerExecutor::cleanup`]: super::DockerExecutor::cleanup
    pub name_prefix: String,
    /// Kinds and the images that run them.
    pub manifest: RuntimeManifest,
    /// How long pulling a missing image may take.
    pub pull_timeout: Duration,
    /// The invoker's user memory (OpenWhisk `container-pool.user-memory`), in MB: a container
    /// gets CPU shares in proportion to its part of it.
    pub user_memory_mb: u64,
    /// The most processes (and threads) a container may run (`--pids-limit`).
    pub pids_limit: i64,
    /// Its open-file limit, soft and hard (`--ulimit nofile=N:N`).
    pub nofile: i64,
    /// Environment added to every container (after the container spec's own).
    pub extra_env: Vec<(String, String)>,
    /// How long connecting (the version handshake) may take before the daemon counts as
    /// unreachable.
    pub connect_timeout: Duration,
    /// How long any other daemon request may wait for its answer (create, start, inspect,
    /// pause, remove, ...).
    pub request_timeout: Duration,
}

impl Default for DockerConfig {
    fn default() -> Self {
        Self {
            host: None,
            network: "bridge".into(),
            name_prefix: "wsk0_".into(),
            manifest: RuntimeManifest::default(),
            pull_timeout: Duration::from_secs(5 * 60),
            user_memory_mb: 1024,
            pids_limit: 1024,
            nofile: 1024,
            extra_env: Vec::new(),
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(120),
        }
    }
}

impl DockerConfig {
    /// The daemon's socket path: [`DockerConfig::host`], else `DOCKER_HOST`, else the local
    /// default; `unix://` stripped. An error names a host that is not a unix socket.
    pub(crate) fn socket_path(&self) -> Result<String, String> {
        let host = match &self.host {
            Some(h) => h.clone(),
            None => std::env::var("DOCKER_HOST")
                .ok()
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| DEFAULT_SOCKET.to_string()),
        };
        if let Some(path) = host.strip_prefix("unix://") {
            Ok(path.to_string())
        } else if host.contains("://") {
            Err(format!(
                "Docker host {host} is not a unix socket (only unix:// hosts are supported)"
            ))
        } else {
            Ok(host)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_unix_sockets() {
        let with = |h: &str| DockerConfig {
            host: Some(h.into()),
            ..DockerConfig::default()
        };
        assert_eq!(
            with("unix:///run/d.sock").socket_path().unwrap(),
            "/run/d.sock"
        );
        assert_eq!(with("/run/d.sock").socket_path().unwrap(), "/run/d.sock");
        assert!(with("tcp://127.0.0.1:2375").socket_path().is_err());
    }
}
