//! [`ByteRange`]: the byte ranges of RFC 9110 that `get` accepts, and how they resolve against an
//! object's size.

use std::fmt;
use std::ops::Range;

use crate::error::{Error, Result};

/// One byte range of an object, as in an HTTP `Range: bytes=...` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteRange {
    /// `a-b`: bytes `a` through `b`, both inclusive (`b` past the end means "to the end").
    Inclusive {
        /// First byte.
        first: u64,
        /// Last byte, inclusive.
        last: u64,
    },
    /// `a-`: from byte `a` to the end.
    From {
        /// First byte.
        first: u64,
    },
    /// `-n`: the last `n` bytes (the whole object when it is shorter).
    Suffix {
        /// Number of bytes from the end.
        len: u64,
    },
}

impl ByteRange {
    /// Parses one range spec without the unit: `a-b`, `a-` or `-n`.
    pub fn parse(spec: &str) -> Result<Self> {
        let bad = || Error::InvalidRange {
            value: spec.chars().take(80).collect(),
        };
        let (first, last) = spec.trim().split_once('-').ok_or_else(bad)?;
        let number = |s: &str| -> Result<u64> {
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            s.parse().map_err(|_| bad())
        };
        match (first.is_empty(), last.is_empty()) {
            (true, true) => Err(bad()),
            (true, false) => Ok(ByteRange::Suffix { len: number(last)? }),
            (false, true) => Ok(ByteRange::From { first: number(first)? }),
            (false, false) => {
                let (first, last) = (number(first)?, number(last)?);
                if last < first {
                    return Err(bad());
                }
                Ok(ByteRange::Inclusive { first, last })
            }
        }
    }

    /// Parses an HTTP `Range` header value with exactly one range: `bytes=a-b`.
    pub fn parse_header(value: &str) -> Result<Self> {
        let spec = value
            .trim()
            .strip_prefix("bytes=")
            .filter(|s| !s.contains(','))
            .ok_or_else(|| Error::InvalidRange {
                value: value.chars().take(80).collect(),
            })?;
        ByteRange::parse(spec)
    }

    /// The half-open byte range this selects in an object of `size` bytes.
    ///
    /// Fails with [`Error::RangeNotSatisfiable`] when the range selects nothing: a first byte at or
    /// past the end, a zero-length suffix, or any range of an empty object.
    pub fn resolve(self, size: u64) -> Result<Range<u64>> {
        let unsatisfiable = Error::RangeNotSatisfiable { size };
        match self {
            ByteRange::Inclusive { first, last } if first < size => Ok(first..last.min(size - 1) + 1),
            ByteRange::From { first } if first < size => Ok(first..size),
            ByteRange::Suffix { len } if len > 0 && size > 0 => Ok(size.saturating_sub(len)..size),
            _ => Err(unsatisfiable),
        }
    }
}

impl fmt::Display for ByteRange {
    /// The spec form without the unit (`a-b`, `a-`, `-n`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ByteRange::Inclusive { first, last } => write!(f, "{first}-{last}"),
            ByteRange::From { first } => write!(f, "{first}-"),
            ByteRange::Suffix { len } => write!(f, "-{len}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_parses_and_resolves() {
        let r = |s| ByteRange::parse(s).unwrap().resolve(10);
        assert_eq!(r("0-0").unwrap(), 0..1);
        assert_eq!(r("2-5").unwrap(), 2..6);
        assert_eq!(r("2-100").unwrap(), 2..10);
        assert_eq!(r("9-").unwrap(), 9..10);
        assert_eq!(r("-3").unwrap(), 7..10);
        assert_eq!(r("-30").unwrap(), 0..10);
        assert_eq!(
            ByteRange::parse_header("bytes=1-2").unwrap(),
            ByteRange::Inclusive { first: 1, last: 2 }
        );
    }

    #[test]
    fn unsatisfiable_ranges_report_the_size() {
        for spec in ["10-", "10-20", "-0"] {
            let err = ByteRange::parse(spec).unwrap().resolve(10).unwrap_err();
            assert!(matches!(err, Error::RangeNotSatisfiable { size: 10 }), "{spec}: {err}");
        }
        assert!(ByteRange::parse("-5").unwrap().resolve(0).is_err());
        assert!(ByteRange::parse("0-").unwrap().resolve(0).is_err());
    }

    #[test]
    fn malformed_ranges_are_invalid() {
        for spec in [
            "",
            "-",
            "5",
            "a-b",
            "5-3",
            "1-2-3",
            "+1-2",
            " -",
            "99999999999999999999-",
        ] {
            assert!(
                matches!(ByteRange::parse(spec), Err(Error::InvalidRange { .. })),
                "{spec:?}"
            );
        }
        for header in ["1-2", "bytes=1-2,4-5", "items=1-2"] {
            assert!(ByteRange::parse_header(header).is_err(), "{header:?}");
        }
    }

    #[test]
    fn display_round_trips() {
        for spec in ["1-2", "3-", "-4"] {
            assert_eq!(ByteRange::parse(spec).unwrap().to_string(), spec);
        }
    }
}
