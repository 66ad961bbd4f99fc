//! # whisk-store
//!
//! [`Store`](whisk_core::store::Store) backends for whisk. [`MemoryStore`] keeps every
//! document in process memory (the standalone default in this release); durable backends
//! follow behind cargo features.
//!
//! ```
//! use std::sync::Arc;
//! use whisk_core::store::{Collection, Store};
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let store: Arc<dyn Store> = Arc::new(whisk_store::MemoryStore::new());
//! let rev = store.put(Collection::Whisks, "guest/hello", serde_json::json!({}), None).await.unwrap();
//! assert_eq!(store.get(Collection::Whisks, "guest/hello").await.unwrap().rev, rev);
//! # }
//! ```
#![warn(missing_docs)]

#[cfg(feature = "couchdb")]
pub mod couch;
#[cfg(feature = "embedded")]
pub mod embedded;
mod memory;

#[cfg(feature = "couchdb")]
pub use couch::{CouchConfig, CouchStore};
#[cfg(feature = "embedded")]
pub use embedded::EmbeddedStore;
pub use memory::MemoryStore;
