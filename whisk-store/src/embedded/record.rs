//! The stored form of one document: its revision, its index key (so an update or delete
//! removes the old index entry without parsing the old body) and its JSON body.
//!
//! Layout: `[u32 LE index-key length][index key][u32 LE revision length][revision][body]`.

use whisk_core::store::{Collection, StoreError};

/// A decoded document record, borrowing from the stored bytes.
pub(crate) struct Record<'a> {
    /// The document's key in the collection's listing index.
    pub index_key: &'a [u8],
    /// The current revision, `"<n>-<32 hex>"`.
    pub rev: &'a str,
    /// The body as serde_json bytes.
    pub body: &'a [u8],
}

impl<'a> Record<'a> {
    /// Encodes a record.
    pub fn encode(index_key: &[u8], rev: &str, body: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + index_key.len() + rev.len() + body.len());
        out.extend_from_slice(&(index_key.len() as u32).to_le_bytes());
        out.extend_from_slice(index_key);
        out.extend_from_slice(&(rev.len() as u32).to_le_bytes());
        out.extend_from_slice(rev.as_bytes());
        out.extend_from_slice(body);
        out
    }

    /// Decodes the record of document `id`; malformed bytes are `Corrupt` naming it.
    pub fn decode(c: Collection, id: &str, b: &'a [u8]) -> Result<Self, StoreError> {
        let corrupt = || StoreError::Corrupt(format!("{}/{id}: malformed record", c.db_name()));
        let take = |b: &'a [u8]| -> Option<(&'a [u8], &'a [u8])> {
            let len = u32::from_le_bytes(b.get(..4)?.try_into().ok()?) as usize;
            let field = b.get(4..4 + len)?;
            Some((field, &b[4 + len..]))
        };
        let (index_key, rest) = take(b).ok_or_else(corrupt)?;
        let (rev, body) = take(rest).ok_or_else(corrupt)?;
        let rev = std::str::from_utf8(rev).map_err(|_| corrupt())?;
        Ok(Self {
            index_key,
            rev,
            body,
        })
    }

    /// The revision number (the `<n>` of `<n>-<hex>`).
    pub fn rev_n(&self, c: Collection, id: &str) -> Result<u64, StoreError> {
        self.rev
            .split('-')
            .next()
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| {
                StoreError::Corrupt(format!("{}/{id}: bad revision {:?}", c.db_name(), self.rev))
            })
    }

    /// The body parsed as JSON; a body that fails to decode is `Corrupt` naming the document.
    pub fn json(&self, c: Collection, id: &str) -> Result<serde_json::Value, StoreError> {
        serde_json::from_slice(self.body)
            .map_err(|e| StoreError::Corrupt(format!("{}/{id}: {e}", c.db_name())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_round_trips_and_rejects_garbage() {
        let b = Record::encode(b"k\0x", "3-abc", br#"{"a":1}"#);
        let r = Record::decode(Collection::Whisks, "id", &b).unwrap();
        assert_eq!(
            (r.index_key, r.rev, r.body),
            (&b"k\0x"[..], "3-abc", &br#"{"a":1}"#[..])
        );
        assert_eq!(r.rev_n(Collection::Whisks, "id").unwrap(), 3);
        assert!(matches!(
            Record::decode(Collection::Whisks, "ns/x", &[9, 9]),
            Err(StoreError::Corrupt(m)) if m.contains("ns/x")
        ));
        let bad = Record::encode(b"", "1-a", b"{not json");
        let r = Record::decode(Collection::Whisks, "ns/y", &bad).unwrap();
        assert!(
            matches!(r.json(Collection::Whisks, "ns/y"), Err(StoreError::Corrupt(m)) if m.contains("ns/y"))
        );
    }
}
