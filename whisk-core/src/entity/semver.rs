//! Semantic versions of entities (`"0.0.1"`), bumped on every update as OpenWhisk does.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// An entity version `major.minor.patch`; `0.0.0` is invalid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SemVer {
    /// Major component.
    pub major: u32,
    /// Minor component.
    pub minor: u32,
    /// Patch component.
    pub patch: u32,
}

impl SemVer {
    /// The version of a newly created entity.
    pub const INITIAL: SemVer = SemVer {
        major: 0,
        minor: 0,
        patch: 1,
    };

    /// The next patch version (`0.0.1` → `0.0.2`). A component at its largest value carries
    /// into the one before it (`0.0.4294967295` → `0.1.0`); the largest version stays as it is.
    pub fn up_patch(self) -> SemVer {
        if let Some(patch) = self.patch.checked_add(1) {
            return SemVer { patch, ..self };
        }
        if let Some(minor) = self.minor.checked_add(1) {
            return SemVer {
                minor,
                patch: 0,
                ..self
            };
        }
        match self.major.checked_add(1) {
            Some(major) => SemVer {
                major,
                minor: 0,
                patch: 0,
            },
            None => self,
        }
    }
}

impl Default for SemVer {
    fn default() -> Self {
        Self::INITIAL
    }
}

impl fmt::Display for SemVer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// A string that is not a valid entity version.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad semantic version")]
pub struct SemVerError;

fn component(s: &str) -> Result<u32, SemVerError> {
    let valid = s == "0" || (!s.is_empty() && !s.starts_with('0'));
    if !valid || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SemVerError);
    }
    s.parse().map_err(|_| SemVerError)
}

impl FromStr for SemVer {
    type Err = SemVerError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.split('.').collect();
        let [a, b, c] = parts.as_slice() else {
            return Err(SemVerError);
        };
        let v = SemVer {
            major: component(a)?,
            minor: component(b)?,
            patch: component(c)?,
        };
        if v == (SemVer {
            major: 0,
            minor: 0,
            patch: 0,
        }) {
            return Err(SemVerError);
        }
        Ok(v)
    }
}

impl Serialize for SemVer {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for SemVer {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_bump() {
        let v: SemVer = "0.0.1".parse().unwrap();
        assert_eq!(v, SemVer::INITIAL);
        assert_eq!(v.up_patch().to_string(), "0.0.2");
        assert_eq!("1.20.3".parse::<SemVer>().unwrap().to_string(), "1.20.3");
        for bad in ["0.0.0", "01.0.1", "1.0", "a.b.c", "1.0.0.0", ""] {
            assert!(bad.parse::<SemVer>().is_err(), "{bad}");
        }
    }

    #[test]
    fn bumping_the_largest_components_carries_instead_of_overflowing() {
        let bump = |v: &str| v.parse::<SemVer>().unwrap().up_patch().to_string();
        assert_eq!(bump("0.0.4294967295"), "0.1.0");
        assert_eq!(bump("2.4294967295.4294967295"), "3.0.0");
        assert_eq!(
            bump("4294967295.4294967295.4294967295"),
            "4294967295.4294967295.4294967295"
        );
    }
}
