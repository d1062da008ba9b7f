//! Frame encoding: the outbound half of the codec.

use bytes::{BufMut, BytesMut};

use crate::escape::{escape_into, Escaping};
use crate::{Frame, Version, CONTENT_LENGTH};

/// Digits in `usize::MAX` on 64-bit targets: the longest `content-length` value.
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
    let escaping = Escaping::for_frame(version, frame.command);
    let add_content_length = !frame.body.is_empty() && frame.header(CONTENT_LENGTH).is_none();

    // One reservation for the common case where nothing needs escaping; escapes grow it.
    let headers_len: usize = frame
        .headers
        .iter()
        .map(|(n, v)| n.len() + v.len() + 2)
        .sum();
    let content_length_len = if add_content_length {
        CONTENT_LENGTH.len() + 1 + MAX_DECIMAL_DIGITS + 1
    } else {
        0
    };
    dst.reserve(
        frame.command.as_str().len()
            + 1
            + headers_len
            + content_length_len
            + 1
            + frame.body.len()
            + 1,
    );

    dst.extend_from_slice(frame.command.as_str().as_bytes());
    dst.put_u8(b'\n');
    for (name, value) in &frame.headers {
        escape_into(name, escaping, dst);
        dst.put_u8(b':');
        escape_into(value, escaping, dst);
        dst.put_u8(b'\n');
    }
    if add_content_length {
        dst.extend_from_slice(CONTENT_LENGTH.as_bytes());
        dst.put_u8(b':');
        put_decimal(frame.body.len(), dst);
        dst.put_u8(b'\n');
    }
    dst.put_u8(b'\n');
    dst.extend_from_slice(&frame.body);
    dst.put_u8(0);
}

/// Writes `n` in decimal, without the allocation `to_string` would cost on every frame.
fn put_decimal(mut n: usize, dst: &mut BytesMut) {
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
    use crate::Command;

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
        for n in [0, 7, 10, 12345, usize::MAX] {
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
