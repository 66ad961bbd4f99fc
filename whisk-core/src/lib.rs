//! # whisk-core
//!
//! The heart of whisk, a Rust SDK for building serverless platforms in the shape of Apache
//! OpenWhisk: the OpenWhisk model ([`entity`]), the four pluggable traits ([`store::Store`],
//! [`bus::MessageBus`], [`executor::ContainerExecutor`], [`scheduler::Scheduler`]), the
//! messages that cross the bus ([`message`]), the runtime-protocol client ([`runtime`]) and
//! the engines written only against the traits: [`controller`], [`loadbalancer`] and
//! [`invoker`]. The OpenWhisk REST API lives in [`api`] (feature `api`, on by default), the
//! fault-injecting wrappers of the traits in [`faults`], and the backend conformance suites
//! in `testkit` (feature `testkit`).
//!
//! ```no_run
//! use std::sync::Arc;
//! use whisk_core::{controller::{Controller, ControllerConfig}, loadbalancer::LoadBalancer,
//!                  scheduler::LeastLoaded, store::Store, bus::MessageBus};
//! # async fn demo(store: Arc<dyn Store>, bus: Arc<dyn MessageBus>) {
//! let lb = LoadBalancer::new(bus, Arc::new(LeastLoaded), 0);
//! lb.start().await.unwrap();
//! let controller = Controller::new(store, lb, ControllerConfig::default());
//! # let _ = controller;
//! # }
//! ```
#![warn(missing_docs)]

pub mod admin;
pub mod bus;
pub mod controller;
pub mod entity;
pub mod events;
pub mod executor;
pub mod faults;
pub mod feeds;
pub mod invoker;
pub mod loadbalancer;
pub mod logs;
pub mod message;
pub mod metrics;
pub mod runtime;
pub mod scheduler;
pub mod sim;
pub mod store;

#[cfg(feature = "api")]
pub mod api;

#[cfg(feature = "testkit")]
pub mod testkit;
