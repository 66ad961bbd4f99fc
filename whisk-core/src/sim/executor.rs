//! Virtual containers: a [`ContainerExecutor`] whose containers take a set time to create,
//! initialise and run, on Tokio's clock, so the real container pool runs them in virtual time.

use crate::executor::{
    Container, ContainerExecutor, ContainerSpec, ExecutorError, InProcessRuntime,
};
use crate::logs::LogLine;
use crate::runtime::Reply;
use async_trait::async_trait;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The code of a simulated action: how long its `/init` takes.
pub fn action_code(init_ms: u64) -> String {
    json!({ "init_ms": init_ms }).to_string()
}

/// The argument of a simulated activation: how long its `/run` takes.
pub fn run_args(duration_ms: u64) -> Value {
    json!({ "duration_ms": duration_ms })
}

/// Creates virtual containers of any kind, each after `create` (the container start of a real
/// executor, before `/init`).
#[derive(Debug, Default)]
pub struct SimExecutor {
    /// Time to create a container.
    pub create: Duration,
    created: AtomicU64,
}

impl SimExecutor {
    /// An executor whose containers take `create` to start.
    pub fn new(create: Duration) -> Self {
        Self {
            create,
            created: AtomicU64::new(0),
        }
    }

    /// Containers created so far.
    pub fn created(&self) -> u64 {
        self.created.load(Ordering::Relaxed)
    }
}

#[async_trait]
impl ContainerExecutor for SimExecutor {
    fn name(&self) -> &str {
        "sim"
    }

    fn supports(&self, _kind: &str) -> bool {
        true
    }

    async fn create(&self, spec: &ContainerSpec) -> Result<Arc<dyn Container>, ExecutorError> {
        tokio::time::sleep(self.create).await;
        self.created.fetch_add(1, Ordering::Relaxed);
        Ok(Arc::new(SimContainer {
            endpoint: format!("sim://{}", spec.name),
            id: spec.name.clone(),
        }))
    }
}

/// A virtual container: `/init` sleeps the code's `init_ms`, `/run` the argument's
/// `duration_ms`, both cut at the time limit as a real runtime would be.
struct SimContainer {
    id: String,
    endpoint: String,
}

/// Sleeps `ms` (at most `timeout`); what a runtime would answer.
async fn spend(ms: u64, timeout: Duration) -> Reply {
    let wanted = Duration::from_millis(ms);
    if wanted > timeout {
        tokio::time::sleep(timeout).await;
        return Reply::TimedOut;
    }
    tokio::time::sleep(wanted).await;
    Reply::Answered {
        status: 200,
        body: bytes::Bytes::from_static(b"{}"),
    }
}

fn millis(v: &Value, key: &str) -> u64 {
    v.get(key).and_then(Value::as_u64).unwrap_or(0)
}

#[async_trait]
impl InProcessRuntime for SimContainer {
    async fn init(&self, body: &Value, timeout: Duration) -> Reply {
        let code: Value = body["value"]["code"]
            .as_str()
            .and_then(|c| serde_json::from_str(c).ok())
            .unwrap_or_default();
        spend(millis(&code, "init_ms"), timeout).await
    }

    async fn run(&self, body: &Value, timeout: Duration) -> Reply {
        spend(millis(&body["value"], "duration_ms"), timeout).await
    }
}

#[async_trait]
impl Container for SimContainer {
    fn id(&self) -> &str {
        &self.id
    }

    fn endpoint(&self) -> &str {
        &self.endpoint
    }

    async fn destroy(&self) -> Result<(), ExecutorError> {
        Ok(())
    }

    fn in_process(&self) -> Option<&dyn InProcessRuntime> {
        Some(self)
    }

    async fn logs(&self, _until: bool, _wait: Duration) -> Result<Vec<LogLine>, ExecutorError> {
        Ok(Vec::new())
    }
}
