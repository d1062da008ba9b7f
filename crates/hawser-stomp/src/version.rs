//! STOMP protocol versions and their negotiation.

use std::fmt;

/// A STOMP protocol version. Ordered, so the highest common version is the maximum.
#[derive(Clone, Copy, PartialEq, Eq, Debug, PartialOrd, Ord, Hash)]
pub enum Version {
    /// No header escaping at all.
    V1_0,
    /// Escapes `\\`, `\n` (LF) and `\c` (colon) in headers.
    V1_1,
    /// Also escapes `\r` (CR).
    V1_2,
}

impl Version {
    /// Every version this codec speaks, lowest first.
    pub const ALL: [Version; 3] = [Version::V1_0, Version::V1_1, Version::V1_2];

    /// The version as written in `accept-version` and `version` headers, e.g. `"1.2"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Version::V1_0 => "1.0",
            Version::V1_1 => "1.1",
            Version::V1_2 => "1.2",
        }
    }

    /// Parses `"1.0"`, `"1.1"` or `"1.2"` exactly.
    pub fn parse(s: &str) -> Option<Version> {
        match s {
            "1.0" => Some(Version::V1_0),
            "1.1" => Some(Version::V1_1),
            "1.2" => Some(Version::V1_2),
            _ => None,
        }
    }

    /// Picks the highest version both sides support from an `accept-version` header value like
    /// `"1.0,1.1,1.2"`; `None` if no overlap. Versions this codec does not know (say `"2.0"`)
    /// are skipped, and blanks around commas are tolerated because clients write `"1.1, 1.2"`.
    /// An absent header means 1.0; the caller handles that, since only it knows the header is
    /// absent rather than empty.
    pub fn negotiate(accept_version: &str) -> Option<Version> {
        accept_version
            .split(',')
            .filter_map(|v| Version::parse(v.trim()))
            .max()
    }

    /// Whether header names and values are escaped in this version (outside `CONNECT` frames).
    pub(crate) fn escapes(&self) -> bool {
        *self >= Version::V1_1
    }

    /// Whether CR is escaped as `\r`; new in 1.2.
    pub(crate) fn escapes_cr(&self) -> bool {
        *self >= Version::V1_2
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn as_str_and_parse_agree() {
        for v in Version::ALL {
            assert_eq!(Version::parse(v.as_str()), Some(v));
        }
        assert_eq!(Version::V1_2.as_str(), "1.2");
        assert_eq!(Version::parse("1.3"), None);
        assert_eq!(Version::parse(" 1.2"), None);
        assert_eq!(Version::parse(""), None);
    }

    #[test]
    fn versions_are_ordered() {
        assert!(Version::V1_0 < Version::V1_1);
        assert!(Version::V1_1 < Version::V1_2);
    }

    #[test]
    fn negotiate_picks_highest_common() {
        assert_eq!(Version::negotiate("1.0,1.1,1.2"), Some(Version::V1_2));
        assert_eq!(Version::negotiate("1.2,1.0"), Some(Version::V1_2));
        assert_eq!(Version::negotiate("1.0,1.1"), Some(Version::V1_1));
        assert_eq!(Version::negotiate("1.0"), Some(Version::V1_0));
        assert_eq!(Version::negotiate("1.1, 1.2"), Some(Version::V1_2));
        assert_eq!(Version::negotiate("1.1,2.0"), Some(Version::V1_1));
    }

    #[test]
    fn negotiate_without_overlap_is_none() {
        assert_eq!(Version::negotiate("2.0"), None);
        assert_eq!(Version::negotiate("2.0,3.1"), None);
        assert_eq!(Version::negotiate(""), None);
        assert_eq!(Version::negotiate(","), None);
    }
}
