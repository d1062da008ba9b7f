//! Header escaping: STOMP 1.1 escapes backslash, LF and colon; 1.2 also CR; 1.0 nothing.
//!
//! Both directions take the rule as an [`Escaping`] computed once per frame from the version
//! and the command, since `CONNECT`-type frames are never escaped.

use bytes::BytesMut;

use crate::error::snippet;
use crate::{Command, DecodeError, Version};
use memchr::{memchr, memchr3};

/// Which escapes apply to one frame's headers.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Escaping {
    /// 1.0, and `CONNECT`/`STOMP`/`CONNECTED` in every version: bytes are taken as they are.
    None,
    /// 1.1: `\\`, `\n`, `\c`.
    V1_1,
    /// 1.2: `\\`, `\n`, `\c`, `\r`.
    V1_2,
}

impl Escaping {
    pub(crate) fn for_frame(version: Version, command: Command) -> Escaping {
        if !command.escapes_headers() || !version.escapes() {
            Escaping::None
        } else if version.escapes_cr() {
            Escaping::V1_2
        } else {
            Escaping::V1_1
        }
    }

    /// The escape sequence for `byte`, if it needs one under this rule.
    fn escape(self, byte: u8) -> Option<&'static [u8]> {
        match (self, byte) {
            (Escaping::None, _) => None,
            (_, b'\\') => Some(b"\\\\"),
            (_, b'\n') => Some(b"\\n"),
            (_, b':') => Some(b"\\c"),
            (Escaping::V1_2, b'\r') => Some(b"\\r"),
            _ => None,
        }
    }

    /// The byte an escape `\x` stands for, where `x` is the byte after the backslash.
    fn unescape(self, x: u8) -> Option<u8> {
        match (self, x) {
            (Escaping::None, _) => None,
            (_, b'\\') => Some(b'\\'),
            (_, b'n') => Some(b'\n'),
            (_, b'c') => Some(b':'),
            (Escaping::V1_2, b'r') => Some(b'\r'),
            _ => None,
        }
    }
}

/// Which bytes each rule escapes (or, with no escaping, replaces): one bit per rule.
const NEEDS_NONE: u8 = 1;
const NEEDS_1_1: u8 = 2;
const NEEDS_1_2: u8 = 4;
const SPECIAL: [u8; 256] = {
    let mut t = [0u8; 256];
    t[b'\\' as usize] = NEEDS_1_1 | NEEDS_1_2;
    t[b'\n' as usize] = NEEDS_NONE | NEEDS_1_1 | NEEDS_1_2;
    t[b':' as usize] = NEEDS_1_1 | NEEDS_1_2;
    t[b'\r' as usize] = NEEDS_NONE | NEEDS_1_2;
    t[0] = NEEDS_NONE;
    t
};
/// Below this length a table lookup per byte beats starting a vector search.
const SHORT: usize = 32;

impl Escaping {
    /// True if `bytes` holds a byte this rule escapes (or, with no escaping,
    /// replaces). Most headers hold none and are copied whole.
    fn has_special(self, bytes: &[u8]) -> bool {
        if bytes.len() < SHORT {
            let mask = match self {
                Escaping::None => NEEDS_NONE,
                Escaping::V1_1 => NEEDS_1_1,
                Escaping::V1_2 => NEEDS_1_2,
            };
            return bytes.iter().any(|&b| SPECIAL[usize::from(b)] & mask != 0);
        }
        match self {
            Escaping::None => memchr3(b'\n', b'\r', 0, bytes).is_some(),
            Escaping::V1_1 => memchr3(b'\\', b'\n', b':', bytes).is_some(),
            Escaping::V1_2 => {
                memchr3(b'\\', b'\n', b':', bytes).is_some() || memchr(b'\r', bytes).is_some()
            }
        }
    }
}

/// Writes `s` to `dst` with the escapes `escaping` calls for.
///
/// Where nothing can be escaped (1.0, `CONNECT`-type frames), a line break or NUL in a
/// value would end the header line and let the value inject headers of its own into the
/// frame the peer reads; such bytes are written as spaces instead.
pub(crate) fn escape_into(s: &str, escaping: Escaping, dst: &mut BytesMut) {
    let bytes = s.as_bytes();
    if !escaping.has_special(bytes) {
        dst.extend_from_slice(bytes);
        return;
    }
    if escaping == Escaping::None {
        dst.extend(bytes.iter().map(|&b| match b {
            b'\n' | b'\r' | 0 => b' ',
            other => other,
        }));
        return;
    }
    let mut copied = 0;
    // All escaped bytes are ASCII, so byte-wise scanning never splits a UTF-8 sequence.
    for (i, &b) in bytes.iter().enumerate() {
        if let Some(seq) = escaping.escape(b) {
            dst.extend_from_slice(&bytes[copied..i]);
            dst.extend_from_slice(seq);
            copied = i + 1;
        }
    }
    dst.extend_from_slice(&bytes[copied..]);
}

/// Resolves the escapes in one header name or value, already checked to be UTF-8, and
/// appends the result to `out`.
pub(crate) fn unescape_into(
    text: &str,
    escaping: Escaping,
    out: &mut String,
) -> Result<(), DecodeError> {
    let first = match escaping {
        Escaping::None => None,
        _ => memchr(b'\\', text.as_bytes()),
    };
    let Some(mut at) = first else {
        out.push_str(text);
        return Ok(());
    };
    let mut rest = text;
    loop {
        out.push_str(&rest[..at]);
        let seq = &rest.as_bytes()[at..];
        let Some(&x) = seq.get(1) else {
            return Err(DecodeError::InvalidEscape(snippet(seq)));
        };
        let Some(b) = escaping.unescape(x) else {
            return Err(DecodeError::InvalidEscape(snippet(&seq[..2])));
        };
        out.push(char::from(b));
        // `x` is ASCII, so `at + 2` is a character boundary.
        rest = &rest[at + 2..];
        match memchr(b'\\', rest.as_bytes()) {
            Some(next) => at = next,
            None => break,
        }
    }
    out.push_str(rest);
    Ok(())
}

/// [`unescape_into`] a new string.
#[cfg(test)]
pub(crate) fn unescape(text: &str, escaping: Escaping) -> Result<String, DecodeError> {
    let mut out = String::with_capacity(text.len());
    unescape_into(text, escaping, &mut out).map(|()| out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn escaped(s: &str, escaping: Escaping) -> String {
        let mut dst = BytesMut::new();
        escape_into(s, escaping, &mut dst);
        String::from_utf8(dst.to_vec()).unwrap()
    }

    const SPECIAL: &str = "a\\b\nc:d\re\tf";

    #[test]
    fn escape_per_version() {
        assert_eq!(
            escaped(SPECIAL, Escaping::None),
            "a\\b c:d e\tf",
            "no line breaks"
        );
        assert_eq!(escaped(SPECIAL, Escaping::V1_1), "a\\\\b\\nc\\cd\re\tf");
        assert_eq!(escaped(SPECIAL, Escaping::V1_2), "a\\\\b\\nc\\cd\\re\tf");
        assert_eq!(escaped("plain ü", Escaping::V1_2), "plain ü");
    }

    #[test]
    fn unescape_round_trips() {
        for escaping in [Escaping::V1_1, Escaping::V1_2] {
            let wire = escaped(SPECIAL, escaping);
            assert_eq!(unescape(&wire, escaping).unwrap(), SPECIAL);
        }
    }

    #[test]
    fn unescape_none_keeps_backslashes() {
        assert_eq!(unescape("a\\nb\\t", Escaping::None).unwrap(), "a\\nb\\t");
    }

    #[test]
    fn undefined_escapes_are_errors() {
        let err = |text: &str, e| unescape(text, e).unwrap_err();
        assert_eq!(
            err("a\\tb", Escaping::V1_2),
            DecodeError::InvalidEscape("\\t".into())
        );
        assert_eq!(
            err("ab\\", Escaping::V1_1),
            DecodeError::InvalidEscape("\\".into())
        );
        // \r is only defined from 1.2 on.
        assert_eq!(
            err("a\\rb", Escaping::V1_1),
            DecodeError::InvalidEscape("\\r".into())
        );
        assert_eq!(unescape("a\\rb", Escaping::V1_2).unwrap(), "a\rb");
    }

    #[test]
    fn unescapes_around_multibyte_characters() {
        assert_eq!(unescape("ü\\nü\\cü", Escaping::V1_1).unwrap(), "ü\nü:ü");
        assert_eq!(
            unescape("ü\\ü", Escaping::V1_1),
            Err(DecodeError::InvalidEscape("\\\u{fffd}".into()))
        );
    }

    #[test]
    fn escaping_for_frame() {
        assert_eq!(
            Escaping::for_frame(Version::V1_2, Command::Connect),
            Escaping::None
        );
        assert_eq!(
            Escaping::for_frame(Version::V1_2, Command::Connected),
            Escaping::None
        );
        assert_eq!(
            Escaping::for_frame(Version::V1_0, Command::Send),
            Escaping::None
        );
        assert_eq!(
            Escaping::for_frame(Version::V1_1, Command::Send),
            Escaping::V1_1
        );
        assert_eq!(
            Escaping::for_frame(Version::V1_2, Command::Message),
            Escaping::V1_2
        );
    }
}
