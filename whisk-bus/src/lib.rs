//! # whisk-bus
//!
//! [`MessageBus`](whisk_core::bus::MessageBus) backends for whisk. [`MemoryBus`] carries
//! messages between the engines of one process (the standalone platform); `kafka::KafkaBus`
//! (cargo feature `kafka`) carries them over a Kafka-protocol broker between processes.
//!
//! ```
//! use std::{sync::Arc, time::Duration};
//! use whisk_core::bus::MessageBus;
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let bus: Arc<dyn MessageBus> = Arc::new(whisk_bus::MemoryBus::new());
//! let mut consumer = bus.subscribe("invoker0", "invoker0").await.unwrap();
//! bus.publish("invoker0", "hello".into()).await.unwrap();
//! let got = consumer.poll(10, Duration::from_secs(1)).await.unwrap();
//! assert_eq!(got, vec![bytes::Bytes::from("hello")]);
//! consumer.commit().await.unwrap();
//! # }
//! ```
#![warn(missing_docs)]

#[cfg(feature = "kafka")]
pub mod kafka;
mod memory;

#[cfg(feature = "kafka")]
pub use kafka::{KafkaBus, KafkaConfig};
pub use memory::MemoryBus;
