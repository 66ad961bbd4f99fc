//! A trace-driven simulator of a whisk platform (issue 9).
//!
//! The simulator replays an invocation [`trace::Trace`] against a model of the platform
//! (invokers, container pools, schedulers) in simulated time, so scheduling and keep-alive
//! policies can be compared on realistic workloads in seconds instead of hours.
//!
//! - [`trace`]: the trace types, whisk's own trace CSV format (parse and write), and a reader
//!   for the public Azure Functions 2019 trace.
//! - [`generate`]: a seeded synthetic trace generator with the statistics published for the
//!   Azure Functions 2019 trace.
//!
//! ```
//! use whisk_core::sim::{generate::Synthetic, trace::Trace};
//! let trace = Synthetic { functions: 20, minutes: 10, ..Synthetic::default() }.generate();
//! let mut csv = Vec::new();
//! trace.write_csv(&mut csv).unwrap();
//! let back = Trace::parse_csv(&csv[..]).unwrap();
//! assert_eq!(back.invocations.len(), trace.invocations.len());
//! ```

pub mod executor;
pub mod generate;
pub mod simulate;
pub mod trace;
