//! Frame encoding: the outbound half of the codec.

use bytes::{BufMut, BytesMut};

use crate::escape::{escape_into, Escaping};
use crate::{Command, Frame, Version, CONTENT_LENGTH};

/// Digits in `u64::MAX`: the longest number written.
const MAX_DECIMAL_DIGITS: usize = 20;

/// Encodes one frame for a peer speaking `version` and appends it to `dst`.
///
/// Header names and values are escaped as `version` requires, except in `CONNECT`, `STOMP` and
/// `CONNECTED` frames, which are never escaped. Where nothing can be escaped, LF, CR and NUL
/// are written as spaces, so a header value can never inject header lines; a name containing
/// a colon still cannot be represented there, and callers only build names they control.
///
/// A `content-length` header is added when the body is non-empty and the frame has none, so
/// bodies may contain NULs. Callers never set one themselves.
pub fn encode(frame: &Frame, version: Version, dst: &mut BytesMut) {
    let size_hint = frame.headers.text_len() + 2 * frame.headers.len() + frame.body.len();
    let mut w = FrameWriter::begin(frame.command, version, size_hint, dst);
    for (name, value) in &frame.headers {
        w.header(name, value);
    }
    w.finish(&frame.body);
}

/// Writes one frame piece by piece, for senders that would otherwise build a [`Frame`]
/// only to encode it (the broker's MESSAGE frames): no header is allocated on the way.
/// The same rules as [`encode`] apply.
pub struct FrameWriter<'a> {
    /// Where the frame goes.
    dst: &'a mut BytesMut,
    /// The escaping this frame's headers get.
    escaping: Escaping,
    /// Set once the caller wrote a `content-length` header itself.
    has_content_length: bool,
}

impl<'a> FrameWriter<'a> {
    /// Starts a frame with its command line. `size_hint` (headers and body, in bytes)
    /// lets the buffer grow once.
    pub fn begin(
        command: Command,
        version: Version,
        size_hint: usize,
        dst: &'a mut BytesMut,
    ) -> FrameWriter<'a> {
        // The command line, a content-length header, the blank line and the NUL.
        let framing = Command::MAX_LEN + CONTENT_LENGTH.len() + MAX_DECIMAL_DIGITS + 5;
        dst.reserve(size_hint + framing);
        dst.extend_from_slice(command.as_str().as_bytes());
        dst.put_u8(b'\n');
        FrameWriter {
            dst,
            escaping: Escaping::for_frame(version, command),
            has_content_length: false,
        }
    }

    /// Starts a block of headers without a command line, to be cached and
    /// appended to frames of `command` with [`FrameWriter::finish_with_block`].
    pub fn headers_block(
        command: Command,
        version: Version,
        dst: &'a mut BytesMut,
    ) -> FrameWriter<'a> {
        FrameWriter {
            dst,
            escaping: Escaping::for_frame(version, command),
            has_content_length: false,
        }
    }

    /// Appends a header.
    pub fn header(&mut self, name: &str, value: &str) {
        self.header_parts(name, &[value]);
    }

    /// Appends a header whose value is `parts` joined, e.g. a prefix and a name.
    pub fn header_parts(&mut self, name: &str, parts: &[&str]) {
        self.name(name);
        for part in parts {
            escape_into(part, self.escaping, self.dst);
        }
        self.dst.put_u8(b'\n');
    }

    /// Appends a header whose value is `prefix` and then `n` in decimal.
    pub fn header_number(&mut self, name: &str, prefix: &str, n: u64) {
        self.name(name);
        escape_into(prefix, self.escaping, self.dst);
        put_decimal(n, self.dst);
        self.dst.put_u8(b'\n');
    }

    /// Whether this frame's headers are escaped (1.1 and 1.2 frames other than the
    /// CONNECT family), for callers that keep constants in both forms.
    pub fn escapes(&self) -> bool {
        self.escaping != Escaping::None
    }

    /// Appends a header whose name and value prefix the caller has already written in
    /// this frame's escaping (see [`FrameWriter::escapes`]), then `n` in decimal: the
    /// broker's own headers, written on every MESSAGE, need no scan for escapes.
    pub fn escaped_header_number(&mut self, name: &'static str, prefix: &'static str, n: u64) {
        debug_assert!(name != CONTENT_LENGTH);
        self.dst.extend_from_slice(name.as_bytes());
        self.dst.put_u8(b':');
        self.dst.extend_from_slice(prefix.as_bytes());
        put_decimal(n, self.dst);
        self.dst.put_u8(b'\n');
    }

    fn name(&mut self, name: &str) {
        // Length first: most names are not 14 bytes long.
        if name.len() == CONTENT_LENGTH.len() && name == CONTENT_LENGTH {
            self.has_content_length = true;
        }
        escape_into(name, self.escaping, self.dst);
        self.dst.put_u8(b':');
    }

    /// Ends the headers of a frame whose body is `body_len` bytes: adds
    /// `content-length` for a non-empty body, and the blank line.
    pub fn end_headers(mut self, body_len: usize) {
        self.write_end_of_headers(body_len);
    }

    fn write_end_of_headers(&mut self, body_len: usize) {
        if body_len > 0 && !self.has_content_length {
            self.dst.extend_from_slice(CONTENT_LENGTH.as_bytes());
            self.dst.put_u8(b':');
            put_decimal(body_len as u64, self.dst);
            self.dst.put_u8(b'\n');
        }
        self.dst.put_u8(b'\n');
    }

    /// Ends the headers and appends the body and the NUL.
    pub fn finish(mut self, body: &[u8]) {
        self.write_end_of_headers(body.len());
        self.dst.extend_from_slice(body);
        self.dst.put_u8(0);
    }

    /// Appends a block made with [`FrameWriter::headers_block`] and ended with
    /// [`FrameWriter::end_headers`] for this body, then the body and the NUL.
    pub fn finish_with_block(self, block: &[u8], body: &[u8]) {
        self.dst.extend_from_slice(block);
        self.dst.extend_from_slice(body);
        self.dst.put_u8(0);
    }
}

/// Writes `n` in decimal, without the allocation `to_string` would cost on every frame.
fn put_decimal(mut n: u64, dst: &mut BytesMut) {
    let mut digits = [0u8; MAX_DECIMAL_DIGITS];
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    dst.extend_from_slice(&digits[start..]);
}

/// Appends one heart-beat: a single LF.
pub fn encode_heartbeat(dst: &mut BytesMut) {
    dst.put_u8(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(frame: &Frame, version: Version) -> Vec<u8> {
        let mut dst = BytesMut::new();
        encode(frame, version, &mut dst);
        dst.to_vec()
    }

    #[test]
    fn encodes_frame_without_body() {
        let frame = Frame::new(Command::Subscribe)
            .with_header("id", "0")
            .with_header("destination", "/queue/a");
        assert_eq!(
            encoded(&frame, Version::V1_2),
            b"SUBSCRIBE\nid:0\ndestination:/queue/a\n\n\0"
        );
    }

    #[test]
    fn adds_content_length_for_non_empty_body() {
        let frame = Frame::new(Command::Send)
            .with_header("destination", "/queue/a")
            .with_body(&b"a\0b"[..]);
        assert_eq!(
            encoded(&frame, Version::V1_0),
            b"SEND\ndestination:/queue/a\ncontent-length:3\n\na\0b\0"
        );
    }

    #[test]
    fn keeps_an_existing_content_length() {
        let frame = Frame::new(Command::Send)
            .with_header("content-length", "2")
            .with_body("hi");
        assert_eq!(
            encoded(&frame, Version::V1_2),
            b"SEND\ncontent-length:2\n\nhi\0"
        );
    }

    #[test]
    fn escapes_per_version() {
        let frame = Frame::new(Command::Message).with_header("a:b", "x\r\ny\\");
        assert_eq!(
            encoded(&frame, Version::V1_0),
            b"MESSAGE\na:b:x  y\\\n\n\0",
            "1.0 cannot escape: line breaks become spaces"
        );
        assert_eq!(
            encoded(&frame, Version::V1_1),
            b"MESSAGE\na\\cb:x\r\\ny\\\\\n\n\0"
        );
        assert_eq!(
            encoded(&frame, Version::V1_2),
            b"MESSAGE\na\\cb:x\\r\\ny\\\\\n\n\0"
        );
    }

    #[test]
    fn connect_frames_are_never_escaped() {
        for command in [Command::Connect, Command::Stomp, Command::Connected] {
            let frame = Frame::new(command).with_header("passcode", "a:b\\c");
            let mut expected = command.as_str().as_bytes().to_vec();
            expected.extend_from_slice(b"\npasscode:a:b\\c\n\n\0");
            assert_eq!(encoded(&frame, Version::V1_2), expected);
        }
    }

    #[test]
    fn decimal_digits() {
        for n in [0, 7, 10, 12345, u64::MAX] {
            let mut dst = BytesMut::new();
            put_decimal(n, &mut dst);
            assert_eq!(&dst[..], n.to_string().as_bytes());
        }
    }

    #[test]
    fn heartbeat_is_one_lf() {
        let mut dst = BytesMut::new();
        encode_heartbeat(&mut dst);
        assert_eq!(&dst[..], b"\n");
    }

    #[test]
    fn appends_to_existing_bytes() {
        let mut dst = BytesMut::from(&b"xy"[..]);
        encode(&Frame::new(Command::Disconnect), Version::V1_2, &mut dst);
        assert_eq!(&dst[..], b"xyDISCONNECT\n\n\0");
    }
}
