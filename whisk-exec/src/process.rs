//! The `process` executor: each container is a runtime launcher process on a loopback port.

use crate::logbuf::LogBuffer;
pub use crate::runtimes::Launcher;
use async_trait::async_trait;
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use whisk_core::executor::{Container, ContainerExecutor, ContainerSpec, ExecutorError};
use whisk_core::logs::{LogLine, Stream};

/// How long a launcher may take to announce its port.
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// Runs containers as local processes. Memory limits are recorded, not enforced (a process
/// has no cgroup here); use the Docker executor for isolation.
pub struct ProcessExecutor {
    dir: PathBuf,
    launchers: HashMap<String, Launcher>,
}

impl ProcessExecutor {
    /// An executor with the bundled `nodejs:20` (`node`) and `python:3.11` (`python3`)
    /// launchers, written to a fresh directory under the system temp dir.
    pub fn new() -> std::io::Result<Self> {
        let dir =
            std::env::temp_dir().join(format!("whisk-runtimes-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir)?;
        let launchers = crate::runtimes::bundled(&dir)?;
        Ok(Self { dir, launchers })
    }

    /// Adds or replaces the launcher of `kind`.
    pub fn with_launcher(mut self, kind: &str, launcher: Launcher) -> Self {
        self.launchers.insert(kind.to_string(), launcher);
        self
    }

    /// The kinds this executor runs.
    pub fn kinds(&self) -> Vec<String> {
        let mut k: Vec<String> = self.launchers.keys().cloned().collect();
        k.sort();
        k
    }
}

impl Drop for ProcessExecutor {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[async_trait]
impl ContainerExecutor for ProcessExecutor {
    fn name(&self) -> &str {
        "process"
    }

    fn supports(&self, kind: &str) -> bool {
        self.launchers.contains_key(kind)
    }

    async fn create(&self, spec: &ContainerSpec) -> Result<Arc<dyn Container>, ExecutorError> {
        let launcher = self
            .launchers
            .get(&spec.kind)
            .ok_or_else(|| ExecutorError::Unsupported(spec.kind.clone()))?;
        let mut child = Command::new(&launcher.program)
            .args(&launcher.args)
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .env("WHISK_RUNTIME_PORT", "0")
            .current_dir(&self.dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| ExecutorError::StartFailed(format!("{}: {e}", launcher.program)))?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        let logs = Arc::new(LogBuffer::default());
        let err_logs = logs.clone();
        tokio::spawn(async move { err_logs.capture(stderr, Stream::Stderr).await });

        // The first stdout line announces the port; everything after it is action output.
        let mut stdout = BufReader::new(stdout);
        let mut first = String::new();
        let announced = tokio::time::timeout(START_TIMEOUT, stdout.read_line(&mut first)).await;
        let port = first
            .trim()
            .strip_prefix("whisk-runtime-port:")
            .and_then(|p| p.trim().parse::<u16>().ok());
        let Some(port) = port else {
            let _ = child.kill().await;
            // Only stderr is captured so far; its end of file means all of it was read.
            let stderr: Vec<String> = logs
                .take_closed(1, Duration::from_secs(2))
                .await
                .into_iter()
                .map(|l| l.message)
                .collect();
            return Err(ExecutorError::StartFailed(format!(
                "{} did not announce its port ({}): {}",
                spec.kind,
                if announced.is_err() {
                    "timed out"
                } else {
                    "exited"
                },
                stderr.join("\n")
            )));
        };
        let out_logs = logs.clone();
        tokio::spawn(async move { out_logs.capture(stdout, Stream::Stdout).await });
        Ok(Arc::new(ProcessContainer {
            id: format!("{}-{}", spec.name, child.id().unwrap_or(0)),
            endpoint: format!("http://127.0.0.1:{port}"),
            process: Mutex::new(Some((child, stdin))),
            logs,
        }))
    }
}

/// One runtime process.
struct ProcessContainer {
    id: String,
    endpoint: String,
    process: Mutex<Option<(Child, Option<ChildStdin>)>>,
    logs: Arc<LogBuffer>,
}

#[async_trait]
impl Container for ProcessContainer {
    fn id(&self) -> &str {
        &self.id
    }

    fn endpoint(&self) -> &str {
        &self.endpoint
    }

    async fn destroy(&self) -> Result<(), ExecutorError> {
        let taken = self.process.lock().unwrap().take();
        if let Some((mut child, stdin)) = taken {
            drop(stdin);
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
        Ok(())
    }

    async fn logs(
        &self,
        until_sentinels: bool,
        wait: Duration,
    ) -> Result<Vec<LogLine>, ExecutorError> {
        Ok(self.logs.take(until_sentinels, wait).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use whisk_core::testkit::executor::Fixture;

    mod nodejs {
        use super::*;
        whisk_core::executor_conformance_tests!(ProcessExecutor::new().unwrap(), Fixture::nodejs());
    }

    mod python {
        use super::*;
        whisk_core::executor_conformance_tests!(ProcessExecutor::new().unwrap(), Fixture::python());
    }

    #[tokio::test]
    async fn a_launcher_that_never_announces_fails_cleanly() {
        let exec = ProcessExecutor::new().unwrap().with_launcher(
            "broken:1",
            Launcher {
                program: "sh".into(),
                args: vec!["-c".into(), "echo oops >&2; exit 3".into()],
            },
        );
        let spec = ContainerSpec {
            name: "b".into(),
            kind: "broken:1".into(),
            image: None,
            memory_mb: 128,
            env: vec![],
        };
        let err = exec.create(&spec).await.err().expect("start fails");
        assert!(err.to_string().contains("oops"), "{err}");
        let spec = ContainerSpec {
            kind: "missing:1".into(),
            ..spec
        };
        assert!(matches!(
            exec.create(&spec).await.err(),
            Some(ExecutorError::Unsupported(_))
        ));
    }
}
