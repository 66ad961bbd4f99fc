//! The settings of a new container: OpenWhisk's `DockerContainer.create` and the invoker's
//! `docker run` arguments, as an Engine API create body.

use super::DockerConfig;
use bollard::models::{ContainerCreateBody, HostConfig, ResourcesUlimits};
use std::collections::HashMap;
use whisk_core::executor::ContainerSpec;

/// The port OpenWhisk runtimes listen on inside their container.
pub const RUNTIME_PORT: u16 = 8080;

/// The label holding the [`DockerConfig::name_prefix`] of the executor that created a
/// container (`docker ps --filter label=whisk.name-prefix=wsk0_` lists an invoker's
/// containers).
pub const NAME_PREFIX_LABEL: &str = "whisk.name-prefix";

/// The label holding a container's runtime kind (`nodejs:20`, `blackbox`).
pub const KIND_LABEL: &str = "whisk.kind";

/// Capabilities OpenWhisk drops from action containers (`--cap-drop NET_RAW NET_ADMIN`).
pub const DROPPED_CAPABILITIES: [&str; 2] = ["NET_RAW", "NET_ADMIN"];

/// The CPU shares of a container of `memory_mb` on an invoker with `user_memory_mb` of user
/// memory: OpenWhisk's `max(1024 / (userMemory / memory), 2)` in whole megabytes (a
/// container larger than the user memory gets the full 1024).
pub fn cpu_shares(user_memory_mb: u64, memory_mb: u64) -> i64 {
    let parts = (user_memory_mb / memory_mb.max(1)).max(1);
    (1024 / parts as i64).max(2)
}

/// The Docker name of the container of `spec`: its name with characters Docker refuses
/// replaced by `_`, prefixed with `prefix` unless it already starts with it.
pub(crate) fn container_name(prefix: &str, name: &str) -> String {
    let clean: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if clean.starts_with(prefix) {
        clean
    } else {
        format!("{prefix}{clean}")
    }
}

/// The create body of the container of `spec` running `image`.
pub(crate) fn create_body(
    config: &DockerConfig,
    spec: &ContainerSpec,
    image: &str,
) -> ContainerCreateBody {
    let memory = (spec.memory_mb * 1024 * 1024) as i64;
    let env = spec
        .env
        .iter()
        .chain(&config.extra_env)
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let labels = HashMap::from([
        (NAME_PREFIX_LABEL.to_string(), config.name_prefix.clone()),
        (KIND_LABEL.to_string(), spec.kind.clone()),
    ]);
    ContainerCreateBody {
        image: Some(image.to_string()),
        env: Some(env),
        labels: Some(labels),
        host_config: Some(HostConfig {
            memory: Some(memory),
            memory_swap: Some(memory),
            cpu_shares: Some(cpu_shares(config.user_memory_mb, spec.memory_mb)),
            pids_limit: Some(config.pids_limit),
            ulimits: Some(vec![ResourcesUlimits {
                name: Some("nofile".into()),
                soft: Some(config.nofile),
                hard: Some(config.nofile),
            }]),
            cap_drop: Some(DROPPED_CAPABILITIES.map(String::from).to_vec()),
            network_mode: Some(config.network.clone()),
            ..HostConfig::default()
        }),
        ..ContainerCreateBody::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_shares_follow_openwhisk() {
        assert_eq!(cpu_shares(1024, 256), 256);
        assert_eq!(cpu_shares(1024, 128), 128);
        assert_eq!(cpu_shares(1024, 1024), 1024);
        assert_eq!(cpu_shares(2048, 4), 2); // 1024 / 512
        assert_eq!(cpu_shares(4096, 1), 2); // 1024 / 4096 = 0, at least 2
        assert_eq!(cpu_shares(1024, 300), 341); // integer division: 1024 / (1024 / 300 = 3)
        assert_eq!(cpu_shares(1024, 2048), 1024); // larger than the user memory
    }

    #[test]
    fn names_get_the_prefix_once() {
        assert_eq!(
            container_name("wsk0_", "wsk0_3_guest_hello"),
            "wsk0_3_guest_hello"
        );
        assert_eq!(container_name("t1_", "conformance_x"), "t1_conformance_x");
        assert_eq!(container_name("wsk0_", "wsk0_1_a/b c"), "wsk0_1_a_b_c");
    }
}
