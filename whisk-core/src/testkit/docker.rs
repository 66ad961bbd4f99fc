//! A Docker network of a test's own, through the `docker` CLI against the daemon `.ci/run`
//! starts (`WHISK_TEST_DOCKER`). That daemon runs without a default bridge, so containers are
//! reachable only on networks like this one, which the test creates and removes.

use std::process::Command;

/// Runs the docker CLI against `host`; returns its stdout (panics on failure).
pub fn docker(host: &str, args: &[&str]) -> String {
    let out = Command::new("docker")
        .env("DOCKER_HOST", host)
        .args(args)
        .output()
        .expect("docker CLI runs");
    assert!(
        out.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A bridge network with its own 10.x.y.0/24 subnet; its containers and itself are removed
/// on drop.
pub struct TestNetwork {
    host: String,
    /// Its name.
    pub name: String,
}

impl TestNetwork {
    /// Creates a network on the daemon at `host` (tries subnets until one is free).
    pub fn create(host: &str) -> TestNetwork {
        let name = super::unique("whisk-test-");
        let seed = u32::from_str_radix(&name[name.len() - 6..], 16).unwrap_or(0);
        for attempt in 0..64u32 {
            let n = seed.wrapping_add(attempt.wrapping_mul(7919)) % 12_800;
            let subnet = format!("10.{}.{}.0/24", 200 + n / 256, n % 256);
            let created = Command::new("docker")
                .env("DOCKER_HOST", host)
                .args([
                    "network", "create", "--driver", "bridge", "--subnet", &subnet, &name,
                ])
                .output()
                .expect("docker CLI runs")
                .status
                .success();
            if created {
                return TestNetwork {
                    host: host.to_string(),
                    name,
                };
            }
        }
        panic!("no free subnet for a test network");
    }

    /// The names of the containers (running or not) whose name starts with `prefix`.
    pub fn containers(&self, prefix: &str) -> Vec<String> {
        let filter = format!("name=^{prefix}");
        docker(
            &self.host,
            &["ps", "-a", "--filter", &filter, "--format", "{{.Names}}"],
        )
        .lines()
        .map(String::from)
        .collect()
    }
}

impl Drop for TestNetwork {
    fn drop(&mut self) {
        let filter = format!("network={}", self.name);
        if let Ok(out) = Command::new("docker")
            .env("DOCKER_HOST", &self.host)
            .args(["ps", "-aq", "--filter", &filter])
            .output()
        {
            for id in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = Command::new("docker")
                    .env("DOCKER_HOST", &self.host)
                    .args(["rm", "-f", id])
                    .output();
            }
        }
        let _ = Command::new("docker")
            .env("DOCKER_HOST", &self.host)
            .args(["network", "rm", &self.name])
            .output();
    }
}
