//! Key secrets: the one constant-time comparison of secrets, and the salted hash a store
//! keeps in place of a secret.
//!
//! A key's secret is 64 random characters, not a password a person chose: 244 random bits
//! when [`AuthKey::generate`] made it (two random UUIDs in hex), about 380 when OpenWhisk's
//! generator did (64 alphanumerics). Nobody can find such a secret from its hash by trying
//! candidates, so a slow password hash (bcrypt, argon2) would only slow every uncached
//! authentication down without making a stolen store any weaker: one SHA-256 over a per-key
//! random salt and the secret is enough. The salt makes equal secrets hash differently, so a
//! store's hashes cannot be compared with each other or with a table computed in advance. (A
//! key an administrator chooses, `create_user(.., Some(key))`, must be as random.)
//!
//! [`AuthKey::generate`]: super::identity::AuthKey::generate

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use sha2::{Digest, Sha256};
use std::fmt;
use subtle::ConstantTimeEq;

/// Whether secrets `a` and `b` are equal, compared in time that depends on their lengths
/// only (never on where they first differ).
pub fn secrets_equal(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// The scheme tag that opens a stored hash.
const SCHEME: &str = "sha256";

/// Bytes of salt per hash.
const SALT_BYTES: usize = 16;

/// A salted SHA-256 of a key secret, stored as `sha256:<salt>:<digest>` (both base64url
/// without padding). Its `Debug` output shows only the scheme.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyHash {
    salt: [u8; SALT_BYTES],
    digest: [u8; 32],
}

impl fmt::Debug for KeyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyHash(sha256)")
    }
}

impl KeyHash {
    /// The hash of `secret` under a fresh random salt.
    pub fn new(secret: &str) -> Self {
        Self::with_salt(secret, *uuid::Uuid::new_v4().as_bytes())
    }

    /// The hash of `secret` under `salt`.
    pub fn with_salt(secret: &str, salt: [u8; SALT_BYTES]) -> Self {
        let mut h = Sha256::new();
        h.update(salt);
        h.update(secret.as_bytes());
        Self {
            salt,
            digest: h.finalize().into(),
        }
    }

    /// Parses the stored form; `None` when it is not one.
    pub fn parse(s: &str) -> Option<Self> {
        let mut parts = s.split(':');
        if parts.next()? != SCHEME {
            return None;
        }
        let salt = B64.decode(parts.next()?).ok()?.try_into().ok()?;
        let digest = B64.decode(parts.next()?).ok()?.try_into().ok()?;
        parts.next().is_none().then_some(Self { salt, digest })
    }

    /// Whether `secret` is the secret this hashes, compared in constant time.
    pub fn verify(&self, secret: &str) -> bool {
        let candidate = Self::with_salt(secret, self.salt);
        secrets_equal(&candidate.digest, &self.digest)
    }
}

impl fmt::Display for KeyHash {
    /// The stored form.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{SCHEME}:{}:{}",
            B64.encode(self.salt),
            B64.encode(self.digest)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare_equal_unequal_and_by_length() {
        let a = "123zO3xZCLrMN6v2BKK1dXYFpXlPkccOFqm12CdAsMgRU4VrNZ9lyGVCGuMDGIwP";
        assert!(secrets_equal(a.as_bytes(), a.to_string().as_bytes()));
        assert!(secrets_equal(b"", b""));
        let last = a.replace("GIwP", "GIwQ");
        assert!(!secrets_equal(a.as_bytes(), last.as_bytes()));
        let first = a.replacen('1', "2", 1);
        assert!(!secrets_equal(a.as_bytes(), first.as_bytes()));
        assert!(!secrets_equal(a.as_bytes(), &a.as_bytes()[..63]));
        assert!(!secrets_equal(&a.as_bytes()[..63], a.as_bytes()));
        assert!(!secrets_equal(a.as_bytes(), b""));
        let longer = format!("{a}x");
        assert!(!secrets_equal(a.as_bytes(), longer.as_bytes()));
    }

    #[test]
    fn hashes_verify_only_their_secret_and_round_trip() {
        let secret = "s".repeat(64);
        let h = KeyHash::new(&secret);
        assert!(h.verify(&secret));
        assert!(!h.verify(&"t".repeat(64)));
        assert!(!h.verify(&secret[..63]));
        assert!(!h.verify(""));
        let stored = h.to_string();
        assert!(stored.starts_with("sha256:"), "{stored}");
        assert!(!stored.contains(&secret));
        let back = KeyHash::parse(&stored).unwrap();
        assert_eq!(back, h);
        assert!(back.verify(&secret));
        assert_eq!(format!("{h:?}"), "KeyHash(sha256)");
    }

    #[test]
    fn salts_differ_so_equal_secrets_hash_differently() {
        let secret = "k".repeat(64);
        let (a, b) = (KeyHash::new(&secret), KeyHash::new(&secret));
        assert_ne!(a.to_string(), b.to_string());
        assert!(a.verify(&secret) && b.verify(&secret));
        // A known vector: SHA-256 over salt || secret.
        let zero = KeyHash::with_salt("abc", [0; SALT_BYTES]);
        let mut input = vec![0u8; SALT_BYTES];
        input.extend_from_slice(b"abc");
        assert_eq!(zero.digest, sha256(&input));
        assert_eq!(
            sha256(b"abc")[..4],
            [0xba, 0x78, 0x16, 0xbf],
            "SHA-256(\"abc\") starts ba7816bf"
        );
    }

    #[test]
    fn malformed_stored_hashes_do_not_parse() {
        let good = KeyHash::new("x").to_string();
        for bad in [
            String::new(),
            "sha256".into(),
            good.replacen("sha256", "md5", 1),
            format!("{good}:extra"),
            "sha256:AAAA:AAAA".into(),
            "plain-secret".into(),
        ] {
            assert!(KeyHash::parse(&bad).is_none(), "{bad}");
        }
    }
}
