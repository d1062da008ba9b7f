//! Why a byte stream is not valid STOMP.

/// A protocol violation or exceeded [`crate::Limits`] bound found while decoding. Every one is
/// fatal: the decoder cannot tell where the next frame starts, so the session sends `ERROR`
/// (the message is written for the peer's developer) and closes the connection.
#[non_exhaustive]
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// The command line is not one of the STOMP commands (they are case-sensitive).
    #[error("unknown command {0:?}")]
    UnknownCommand(String),
    /// The byte right after the `content-length` bytes of body is not the terminating NUL.
    #[error("frame body is not followed by NUL where content-length says it ends")]
    MissingNul,
    /// A header line has no colon, or nothing before it.
    #[error("invalid header line {0:?}: expected name:value")]
    InvalidHeaderLine(String),
    /// A backslash in a 1.1+ header is not followed by one of the defined escapes.
    #[error("invalid escape sequence {0:?} in header")]
    InvalidEscape(String),
    /// A header name or value is not UTF-8.
    #[error("header is not valid UTF-8")]
    InvalidUtf8,
    /// The `content-length` header is not a non-negative decimal integer that fits in memory.
    #[error("invalid content-length {0:?}")]
    InvalidContentLength(String),
    /// The frame is, or is already known to become, longer than the limit.
    #[error("frame exceeds {limit} bytes")]
    FrameTooLarge { limit: usize },
    /// The frame has, or is already known to have, more header lines than the limit.
    #[error("frame has more than {limit} headers")]
    TooManyHeaders { limit: usize },
    /// A header line is, or is already known to become, longer than the limit.
    #[error("header line exceeds {limit} bytes")]
    HeaderTooLong { limit: usize },
    /// The body is, or by its content-length will be, longer than the limit.
    #[error("frame body exceeds {limit} bytes")]
    BodyTooLarge { limit: usize },
}

/// How much of an offending line an error quotes: enough to recognise it, and bounded so that
/// an error built from a 10 KiB header line does not echo all of it back.
const MAX_SNIPPET_BYTES: usize = 64;

/// The start of `bytes` as text, for error messages.
pub(crate) fn snippet(bytes: &[u8]) -> String {
    let shown = &bytes[..bytes.len().min(MAX_SNIPPET_BYTES)];
    let mut text = String::from_utf8_lossy(shown).into_owned();
    if shown.len() < bytes.len() {
        text.push_str("...");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snippet_is_bounded() {
        assert_eq!(snippet(b"abc"), "abc");
        let long = vec![b'x'; 1000];
        let s = snippet(&long);
        assert_eq!(s.len(), MAX_SNIPPET_BYTES + 3);
        assert!(s.ends_with("..."));
    }

    #[test]
    fn messages_name_the_limit() {
        let e = DecodeError::FrameTooLarge { limit: 42 };
        assert_eq!(e.to_string(), "frame exceeds 42 bytes");
        let e = DecodeError::UnknownCommand("FOO".into());
        assert_eq!(e.to_string(), "unknown command \"FOO\"");
    }
}
