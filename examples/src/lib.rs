//! Compositions of whisk backends into runnable platforms, used by the example binaries and
//! by tests and benchmarks that need a whole platform in process.
//!
//! Run the standalone platform with `cargo run --release --bin whisk-standalone`.
#![warn(missing_docs)]

pub mod admin_cli;
pub mod cli;
pub mod cluster;
pub mod feeds;
pub mod server;
pub mod sim;
pub mod sim_report;
pub mod standalone;
