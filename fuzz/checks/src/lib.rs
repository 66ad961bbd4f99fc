//! # whisk-fuzz-checks
//!
//! The invariants whisk's fuzz targets check, one function per target. Each takes the
//! fuzzer's bytes, runs them through whisk's real parsers and panics when an invariant breaks
//! (a panic is what libFuzzer reports as a crash). The cargo-fuzz targets in `fuzz/` call
//! these functions, and so does this crate's `corpus` test, which replays every file of
//! `fuzz/corpus/<target>/` on stable Rust.
#![warn(missing_docs)]

mod activation;
mod archive;
mod entity;
mod message;
mod names;
mod runtime;

pub use activation::activation_id;
pub use archive::zip_extract;
pub use entity::entity_json;
pub use message::message_json;
pub use names::entity_names;
pub use runtime::runtime_reply;

use serde::de::DeserializeOwned;
use serde::Serialize;
use std::fmt::Debug;

/// One fuzz target: its name (the cargo-fuzz target and the `corpus/` folder) and its check.
pub type Target = (&'static str, fn(&[u8]));

/// Every target, by name.
pub const TARGETS: [Target; 6] = [
    ("entity_json", entity_json),
    ("message_json", message_json),
    ("entity_names", entity_names),
    ("zip_extract", zip_extract),
    ("runtime_reply", runtime_reply),
    ("activation_id", activation_id),
];

/// Parses `data` as a `T`; a value that parses must serialise and parse back to itself.
fn round_trip<T: DeserializeOwned + Serialize + PartialEq + Debug>(data: &[u8]) -> Option<T> {
    let value: T = serde_json::from_slice(data).ok()?;
    assert_eq!(reparsed(&value), value, "{}", std::any::type_name::<T>());
    Some(value)
}

/// `value` serialised and parsed back (panics when either fails).
fn reparsed<T: DeserializeOwned + Serialize>(value: &T) -> T {
    let json = serde_json::to_vec(value).expect("a parsed value serialises");
    serde_json::from_slice(&json).unwrap_or_else(|e| {
        panic!(
            "{} written as {} does not parse back: {e}",
            std::any::type_name::<T>(),
            String::from_utf8_lossy(&json)
        )
    })
}

/// `doc` (a stored document) read back as a `T`, which must equal `entity`.
fn document_reads_back<T: DeserializeOwned + PartialEq + Debug>(
    doc: serde_json::Value,
    entity: &T,
) {
    let back: T = serde_json::from_value(doc.clone()).unwrap_or_else(|e| {
        panic!(
            "the {} document {doc} does not read back: {e}",
            std::any::type_name::<T>()
        )
    });
    assert_eq!(&back, entity, "document {doc}");
}
