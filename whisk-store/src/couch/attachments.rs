//! Action code as OpenWhisk stores it: `exec.code` replaced by an attachment record
//! `{"attachmentName", "attachmentType", "length", "digest"}`.
//!
//! Code shorter than the inline limit is inlined in the record's name as a `mem:` URI (URL-safe
//! base64 of the bytes, no CouchDB attachment); longer code becomes a CouchDB attachment named
//! `<uuid>` and referenced as `couch:<uuid>`. Binary code (`exec.binary`, base64 text) is stored
//! as its decoded bytes and base64-encoded again on read. Names without a scheme (OpenWhisk's
//! older layout, e.g. `jarfile`) name a CouchDB attachment directly.

use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine;
use serde_json::{json, Map, Value};
use whisk_core::store::StoreError;

/// `attachmentType` of text code.
pub(crate) const TEXT_TYPE: &str = "text/plain; charset=UTF-8";
/// `attachmentType` of binary code.
pub(crate) const BINARY_TYPE: &str = "application/octet-stream";

/// URL-safe base64 that accepts the `mem:` payload with or without padding.
const URL_SAFE_LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Code that must go into a real CouchDB attachment.
pub(crate) struct Detached {
    /// Attachment name in `_attachments`.
    pub name: String,
    /// Its content type.
    pub content_type: &'static str,
    /// The bytes.
    pub bytes: Vec<u8>,
}

impl Detached {
    /// The `_attachments` entry carrying the bytes inline in the document PUT.
    pub fn stub(&self) -> Value {
        json!({ "content_type": self.content_type, "data": STANDARD.encode(&self.bytes) })
    }
}

/// Replaces a string `exec.code` of `doc` with an attachment record; returns the bytes to
/// attach when they are too large to inline (`< max_inline` bytes are inlined).
pub(crate) fn detach_code(doc: &mut Map<String, Value>, max_inline: usize) -> Option<Detached> {
    let exec = doc.get_mut("exec")?.as_object_mut()?;
    let code = exec.get("code")?.as_str()?;
    let binary = exec.get("binary").and_then(Value::as_bool) == Some(true);
    // Binary code is kept as bytes only when re-encoding gives back exactly the text given.
    let decoded = binary
        .then(|| STANDARD.decode(code).ok())
        .flatten()
        .filter(|bytes| STANDARD.encode(bytes) == code);
    let (bytes, content_type) = match decoded {
        Some(bytes) => (bytes, BINARY_TYPE),
        None => (code.as_bytes().to_vec(), TEXT_TYPE),
    };
    let (record, detached) = if bytes.len() < max_inline {
        let record = json!({
            "attachmentName": format!("mem:{}", URL_SAFE.encode(&bytes)),
            "attachmentType": content_type,
            "length": bytes.len(),
            "digest": sha256_digest(&bytes),
        });
        (record, None)
    } else {
        let name = uuid::Uuid::new_v4().to_string();
        let record = json!({
            "attachmentName": format!("couch:{name}"),
            "attachmentType": content_type,
            "length": bytes.len(),
            "digest": sha256_digest(&bytes),
        });
        let detached = Detached {
            name,
            content_type,
            bytes,
        };
        (record, Some(detached))
    };
    exec.insert("code".into(), record);
    detached
}

/// Where the code of a stored action lives.
#[derive(Debug, PartialEq)]
pub(crate) enum CodeSource {
    /// Inlined in the record (`mem:`).
    Inline(Vec<u8>),
    /// In the CouchDB attachment of this name.
    Couch(String),
}

/// The code reference of a stored document, if its `exec.code` is an attachment record.
pub(crate) fn code_source(
    id: &str,
    doc: &Map<String, Value>,
) -> Result<Option<CodeSource>, StoreError> {
    let Some(name) = doc
        .get("exec")
        .and_then(|e| e.get("code"))
        .and_then(|c| c.get("attachmentName"))
        .and_then(Value::as_str)
    else {
        return Ok(None);
    };
    let corrupt = |what: String| StoreError::Corrupt(format!("{id}: {what}"));
    match split_scheme(name) {
        Some(("mem", payload)) => URL_SAFE_LENIENT
            .decode(payload)
            .map(|b| Some(CodeSource::Inline(b)))
            .map_err(|e| corrupt(format!("inline code is not valid base64: {e}"))),
        Some(("couch", att)) => Ok(Some(CodeSource::Couch(att.to_string()))),
        Some((scheme, _)) => Err(corrupt(format!(
            "code attachment in an unsupported store ({scheme}:)"
        ))),
        None => Ok(Some(CodeSource::Couch(name.to_string()))),
    }
}

/// `scheme` and rest of a URI with a scheme (RFC 3986 scheme syntax).
fn split_scheme(uri: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = uri.split_once(':')?;
    let mut chars = scheme.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    ok.then_some((scheme, rest))
}

/// The bytes of CouchDB attachment `name` when the document carries them inline
/// (`attachments=true`); `None` when only a stub (or nothing) is there.
pub(crate) fn inline_attachment(
    id: &str,
    doc: &Map<String, Value>,
    name: &str,
) -> Option<Result<Vec<u8>, StoreError>> {
    let data = doc.get("_attachments")?.get(name)?.get("data")?.as_str()?;
    Some(STANDARD.decode(data).map_err(|e| {
        StoreError::Corrupt(format!("{id}: attachment {name} is not valid base64: {e}"))
    }))
}

/// Whether the document lists attachment `name` (stub or data).
pub(crate) fn has_attachment(doc: &Map<String, Value>, name: &str) -> bool {
    doc.get("_attachments").and_then(|a| a.get(name)).is_some()
}

/// Puts the code `bytes` back into `exec.code` as the string the action was written with.
pub(crate) fn restore_code(
    id: &str,
    doc: &mut Map<String, Value>,
    bytes: Vec<u8>,
) -> Result<(), StoreError> {
    let Some(exec) = doc.get_mut("exec").and_then(Value::as_object_mut) else {
        return Ok(());
    };
    let text_type = exec
        .get("code")
        .and_then(|c| c.get("attachmentType"))
        .and_then(Value::as_str)
        .is_some_and(|t| t.starts_with("text/"));
    let binary = exec.get("binary").and_then(Value::as_bool) == Some(true) && !text_type;
    let code = if binary {
        STANDARD.encode(&bytes)
    } else {
        String::from_utf8(bytes)
            .map_err(|_| StoreError::Corrupt(format!("{id}: action code is not UTF-8 text")))?
    };
    exec.insert("code".into(), Value::String(code));
    Ok(())
}

/// OpenWhisk's digest form: `sha256-<hex>`.
pub(crate) fn sha256_digest(bytes: &[u8]) -> String {
    let hex: String = sha256(bytes).iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256-{hex}")
}

/// SHA-256 (FIPS 180-4), small enough to keep out a dependency.
fn sha256(data: &[u8]) -> [u8; 32] {
    const K: [u32; 64] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
        0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
        0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
        0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
        0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
        0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
        0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
        0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
        0xc67178f2,
    ];
    let mut h: [u32; 8] = [
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
        0x5be0cd19,
    ];
    let mut msg = data.to_vec();
    let bit_len = (data.len() as u64).wrapping_mul(8);
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&bit_len.to_be_bytes());
    for block in msg.chunks_exact(64) {
        let mut w = [0u32; 64];
        for (i, word) in block.chunks_exact(4).enumerate() {
            w[i] = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
        }
        for i in 16..64 {
            let s0 = w[i - 15].rotate_right(7) ^ w[i - 15].rotate_right(18) ^ (w[i - 15] >> 3);
            let s1 = w[i - 2].rotate_right(17) ^ w[i - 2].rotate_right(19) ^ (w[i - 2] >> 10);
            w[i] = w[i - 16]
                .wrapping_add(s0)
                .wrapping_add(w[i - 7])
                .wrapping_add(s1);
        }
        let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut hh] = h;
        for i in 0..64 {
            let s1 = e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25);
            let ch = (e & f) ^ (!e & g);
            let t1 = hh
                .wrapping_add(s1)
                .wrapping_add(ch)
                .wrapping_add(K[i])
                .wrapping_add(w[i]);
            let s0 = a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22);
            let maj = (a & b) ^ (a & c) ^ (b & c);
            let t2 = s0.wrapping_add(maj);
            hh = g;
            g = f;
            f = e;
            e = d.wrapping_add(t1);
            d = c;
            c = b;
            b = a;
            a = t1.wrapping_add(t2);
        }
        for (acc, v) in h.iter_mut().zip([a, b, c, d, e, f, g, hh]) {
            *acc = acc.wrapping_add(v);
        }
    }
    let mut out = [0u8; 32];
    for (chunk, v) in out.chunks_exact_mut(4).zip(h) {
        chunk.copy_from_slice(&v.to_be_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_known_vectors() {
        assert_eq!(
            sha256_digest(b"abc"),
            "sha256-ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            sha256_digest(b""),
            "sha256-e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let long = vec![b'a'; 1000];
        assert_eq!(
            sha256_digest(&long),
            "sha256-41edece42d63e8d9bf515a9ba6932e1c20cbc9f5a5d134645adb5db1b9737ea3"
        );
    }

    #[test]
    fn small_code_is_inlined_as_mem_uri() {
        let mut doc = json!({"exec": {"kind": "nodejs:20", "code": "abc", "binary": false}});
        let obj = doc.as_object_mut().unwrap();
        assert!(detach_code(obj, 16384).is_none());
        assert_eq!(
            obj["exec"]["code"],
            json!({"attachmentName": "mem:YWJj", "attachmentType": TEXT_TYPE, "length": 3,
                   "digest": sha256_digest(b"abc")})
        );
        let src = code_source("x", obj).unwrap().unwrap();
        assert_eq!(src, CodeSource::Inline(b"abc".to_vec()));
        restore_code("x", obj, b"abc".to_vec()).unwrap();
        assert_eq!(obj["exec"]["code"], json!("abc"));
    }

    #[test]
    fn binary_code_is_stored_as_bytes() {
        let code = STANDARD.encode([0u8, 1, 2, 255]);
        let mut doc = json!({"exec": {"kind": "nodejs:20", "code": code, "binary": true}});
        let obj = doc.as_object_mut().unwrap();
        let att = detach_code(obj, 2).unwrap();
        assert_eq!(att.bytes, vec![0, 1, 2, 255]);
        assert_eq!(obj["exec"]["code"]["attachmentType"], BINARY_TYPE);
        assert_eq!(
            code_source("x", obj).unwrap(),
            Some(CodeSource::Couch(att.name.clone()))
        );
        restore_code("x", obj, att.bytes).unwrap();
        assert_eq!(obj["exec"]["code"], json!(code));
        // Not canonical base64: kept as text, so it reads back exactly.
        let mut doc = json!({"exec": {"code": "not base64!", "binary": true}});
        let obj = doc.as_object_mut().unwrap();
        detach_code(obj, 100);
        assert_eq!(obj["exec"]["code"]["attachmentType"], TEXT_TYPE);
        restore_code("x", obj, b"not base64!".to_vec()).unwrap();
        assert_eq!(obj["exec"]["code"], json!("not base64!"));
    }

    #[test]
    fn schemes() {
        assert_eq!(split_scheme("couch:1-2"), Some(("couch", "1-2")));
        assert_eq!(split_scheme("jarfile"), None);
        let doc = json!({"exec": {"code": {"attachmentName": "s3:abc"}}});
        assert!(matches!(
            code_source("x", doc.as_object().unwrap()),
            Err(StoreError::Corrupt(_))
        ));
    }
}
