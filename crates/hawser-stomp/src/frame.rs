//! The decoded form of a STOMP frame, and what the decoder yields.

use bytes::Bytes;

use crate::{Command, Headers};

/// Name of the header that gives the body length in bytes.
pub const CONTENT_LENGTH: &str = "content-length";

/// One STOMP frame with its headers already unescaped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// What the frame asks for or reports.
    pub command: Command,
    /// Headers in wire order. A name may repeat; the first occurrence is the one that counts
    /// (see [`Frame::header`]), later ones are kept so that frames round-trip unchanged.
    pub headers: Headers,
    /// The body, binary and possibly containing NULs; empty when the frame has none.
    pub body: Bytes,
}

impl Frame {
    /// A frame with no headers and an empty body.
    pub fn new(command: Command) -> Frame {
        Frame {
            command,
            headers: Headers::new(),
            body: Bytes::new(),
        }
    }

    /// The value of the first header called `name`: the spec says only the first of repeated
    /// headers is used.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name)
    }

    /// Builder form of [`Frame::push_header`].
    pub fn with_header(mut self, name: impl AsRef<str>, value: impl AsRef<str>) -> Frame {
        self.push_header(name, value);
        self
    }

    /// Appends a header. It does not replace an earlier one of the same name, which would
    /// still be the one [`Frame::header`] returns.
    pub fn push_header(&mut self, name: impl AsRef<str>, value: impl AsRef<str>) {
        self.headers.push(name.as_ref(), value.as_ref());
    }

    /// Replaces the body.
    pub fn with_body(mut self, body: impl Into<Bytes>) -> Frame {
        self.body = body.into();
        self
    }
}

/// What one [`crate::Decoder::decode`] call yields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Item {
    /// A complete frame.
    Frame(Frame),
    /// One EOL (LF or CRLF) outside a frame. Each EOL is its own item; the optional EOLs that
    /// may trail a frame's NUL show up this way too, which is harmless: any inbound byte proves
    /// the peer is alive.
    HeartBeat,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_appends_and_first_header_wins() {
        let mut frame = Frame::new(Command::Send)
            .with_header("destination", "/queue/a")
            .with_header("destination", "/queue/b")
            .with_body("hi");
        frame.push_header("receipt", "r1");
        assert_eq!(frame.header("destination"), Some("/queue/a"));
        assert_eq!(frame.header("receipt"), Some("r1"));
        assert_eq!(frame.header("missing"), None);
        assert_eq!(frame.headers.len(), 3);
        assert_eq!(frame.body, Bytes::from_static(b"hi"));
    }

    #[test]
    fn new_frame_is_empty() {
        let frame = Frame::new(Command::Disconnect);
        assert!(frame.headers.is_empty());
        assert!(frame.body.is_empty());
    }
}
