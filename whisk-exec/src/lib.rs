//! # whisk-exec
//!
//! [`ContainerExecutor`](whisk_core::executor::ContainerExecutor) backends for whisk.
//! [`ProcessExecutor`] runs every container as a local runtime process speaking the
//! OpenWhisk runtime protocol on a unix socket in its sandbox (or a loopback port), using the
//! bundled launchers for
//! `nodejs:20` (the machine's `node`) and `python:3.11` (the machine's `python3`).
//! [`isolation`] says what each process container is (and is not) isolated from.
//! With feature `docker`, [`docker::DockerExecutor`] runs OpenWhisk's runtime images as
//! Docker containers instead (the [`docker`] module says how).
//!
//! ```no_run
//! use whisk_core::executor::{ContainerExecutor, ContainerSpec};
//! # #[tokio::main] async fn main() {
//! let exec = whisk_exec::ProcessExecutor::new().unwrap();
//! let spec = ContainerSpec { name: "demo".into(), kind: "nodejs:20".into(), image: None,
//!                            memory_mb: 256, env: vec![] , host_network: false };
//! let container = exec.create(&spec).await.unwrap();
//! println!("runtime listening at {}", container.endpoint());
//! container.destroy().await.unwrap();
//! # }
//! ```
#![warn(missing_docs)]

mod actionloop;
#[cfg(feature = "docker")]
pub mod docker;
pub mod isolation;
mod logbuf;
mod process;
mod runtimes;

pub use actionloop::archive::materialise as materialise_action_code;
#[cfg(feature = "docker")]
pub use docker::{DockerConfig, DockerExecutor};
pub use isolation::Enforcement;
pub use process::ProcessExecutor;
pub use runtimes::{Launcher, PortMode, PYTHON_RUNTIME_HTTP};
