//! Unit tests for the decoder, one group per parsing rule and per error.

use bytes::{Bytes, BytesMut};

use super::*;
use crate::encode;

fn small_limits() -> Limits {
    Limits {
        max_frame_bytes: 200,
        max_headers: 4,
        max_header_bytes: 32,
        max_body_bytes: 100,
    }
}

fn decoder(version: Version) -> Decoder {
    let mut decoder = Decoder::default();
    decoder.set_version(version);
    decoder
}

/// Decodes every item in `input`, failing on an error or leftover bytes.
fn decode_all(decoder: &mut Decoder, input: &[u8]) -> Vec<Item> {
    let mut buf = BytesMut::from(input);
    let mut items = Vec::new();
    while let Some(item) = decoder.decode(&mut buf).unwrap() {
        items.push(item);
    }
    assert!(buf.is_empty(), "leftover bytes: {buf:?}");
    items
}

/// Decodes the single frame that `input` holds.
fn frame(version: Version, input: &[u8]) -> Frame {
    match decode_all(&mut decoder(version), input).as_slice() {
        [Item::Frame(frame)] => frame.clone(),
        other => panic!("expected one frame, got {other:?}"),
    }
}

/// The first error decoding `input` as a whole.
fn error_with(limits: Limits, version: Version, input: &[u8]) -> DecodeError {
    let mut decoder = Decoder::new(limits);
    decoder.set_version(version);
    let mut buf = BytesMut::from(input);
    loop {
        match decoder.decode(&mut buf) {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("no error, {} bytes left", buf.len()),
            Err(e) => return e,
        }
    }
}

fn error(version: Version, input: &[u8]) -> DecodeError {
    error_with(Limits::default(), version, input)
}

/// Feeds `input` one byte at a time; returns the first error and how many bytes it took.
fn error_fed_bytewise(limits: Limits, input: &[u8]) -> (DecodeError, usize) {
    let mut decoder = Decoder::new(limits);
    let mut buf = BytesMut::new();
    for (i, &b) in input.iter().enumerate() {
        buf.extend_from_slice(&[b]);
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(_)) => continue,
                Ok(None) => break,
                Err(e) => return (e, i + 1),
            }
        }
    }
    panic!("no error after {} bytes", input.len());
}

// --- Framing ---------------------------------------------------------------------------------

#[test]
fn decodes_a_frame_and_leaves_the_rest() {
    let mut decoder = Decoder::default();
    let mut buf = BytesMut::from(&b"SEND\ndestination:/queue/a\n\nhello\0SEND"[..]);
    let item = decoder.decode(&mut buf).unwrap().unwrap();
    assert_eq!(
        item,
        Item::Frame(
            Frame::new(Command::Send)
                .with_header("destination", "/queue/a")
                .with_body("hello")
        )
    );
    assert_eq!(&buf[..], b"SEND");
    assert_eq!(decoder.decode(&mut buf).unwrap(), None);
    assert_eq!(&buf[..], b"SEND");
}

#[test]
fn frame_without_headers_or_body() {
    assert_eq!(
        frame(Version::V1_2, b"DISCONNECT\n\n\0"),
        Frame::new(Command::Disconnect)
    );
}

#[test]
fn every_command_decodes() {
    for command in Command::ALL {
        let mut wire = command.as_str().as_bytes().to_vec();
        wire.extend_from_slice(b"\n\n\0");
        assert_eq!(frame(Version::V1_2, &wire).command, command);
    }
}

#[test]
fn incomplete_prefixes_leave_the_buffer_untouched() {
    let wire = b"SEND\r\ncontent-length:3\r\na:b\r\n\r\nx\0y\0";
    let mut decoder = Decoder::default();
    for end in 0..wire.len() {
        let mut buf = BytesMut::from(&wire[..end]);
        assert_eq!(decoder.decode(&mut buf).unwrap(), None, "prefix {end}");
        assert_eq!(&buf[..], &wire[..end]);
    }
}

#[test]
fn bytewise_feeding_decodes_the_same() {
    let wire = b"\nSEND\na:b\n\nbody\0\r\nMESSAGE\ncontent-length:2\n\n\0\0\0\n";
    let whole = decode_all(&mut Decoder::default(), wire);
    let mut decoder = Decoder::default();
    let mut buf = BytesMut::new();
    let mut items = Vec::new();
    for &b in wire {
        buf.extend_from_slice(&[b]);
        while let Some(item) = decoder.decode(&mut buf).unwrap() {
            items.push(item);
        }
    }
    assert_eq!(items, whole);
    assert_eq!(whole.len(), 5);
}

#[test]
fn heart_beats_are_one_item_per_eol() {
    let items = decode_all(&mut Decoder::default(), b"\n\r\n\nACK\nid:1\n\n\0\n\r\n");
    assert_eq!(
        items,
        [
            Item::HeartBeat,
            Item::HeartBeat,
            Item::HeartBeat,
            Item::Frame(Frame::new(Command::Ack).with_header("id", "1")),
            Item::HeartBeat,
            Item::HeartBeat,
        ]
    );
}

#[test]
fn lone_cr_waits_for_lf() {
    let mut decoder = Decoder::default();
    let mut buf = BytesMut::from(&b"\r"[..]);
    assert_eq!(decoder.decode(&mut buf).unwrap(), None);
    buf.extend_from_slice(b"\n");
    assert_eq!(decoder.decode(&mut buf).unwrap(), Some(Item::HeartBeat));
    assert!(buf.is_empty());
}

#[test]
fn crlf_lines_in_every_version() {
    for version in Version::ALL {
        assert_eq!(
            frame(version, b"SEND\r\ndestination:/q\r\nx:y\r\n\r\nbody\0"),
            Frame::new(Command::Send)
                .with_header("destination", "/q")
                .with_header("x", "y")
                .with_body("body")
        );
    }
}

#[test]
fn only_one_cr_is_part_of_the_eol() {
    let f = frame(Version::V1_0, b"SEND\na:b\r\r\n\n\0");
    assert_eq!(f.header("a"), Some("b\r"));
}

#[test]
fn body_without_content_length_ends_at_first_nul() {
    let mut decoder = Decoder::default();
    let mut buf = BytesMut::from(&b"SEND\n\nab\0cd\0"[..]);
    let Some(Item::Frame(f)) = decoder.decode(&mut buf).unwrap() else {
        panic!()
    };
    assert_eq!(f.body, Bytes::from_static(b"ab"));
    assert_eq!(&buf[..], b"cd\0");
}

#[test]
fn binary_body_with_nuls_and_content_length() {
    let body = b"\0\x01\xff\0\n\r\0";
    let mut wire = b"SEND\ncontent-length:7\n\n".to_vec();
    wire.extend_from_slice(body);
    wire.push(0);
    let f = frame(Version::V1_2, &wire);
    assert_eq!(f.body, Bytes::from_static(body));
    assert_eq!(f.header("content-length"), Some("7"));
}

#[test]
fn empty_body_with_content_length_zero() {
    assert!(frame(Version::V1_1, b"SEND\ncontent-length:0\n\n\0")
        .body
        .is_empty());
}

#[test]
fn first_content_length_wins() {
    let f = frame(
        Version::V1_2,
        b"SEND\ncontent-length:3\ncontent-length:xyz\n\na\0b\0",
    );
    assert_eq!(f.body, Bytes::from_static(b"a\0b"));
    assert_eq!(f.headers.len(), 2);
}

#[test]
fn content_length_tolerates_blanks_and_leading_zeros() {
    assert_eq!(
        frame(Version::V1_0, b"SEND\ncontent-length: 2 \n\nab\0").body,
        "ab"
    );
    assert_eq!(
        frame(Version::V1_0, b"SEND\ncontent-length:002\n\nab\0").body,
        "ab"
    );
}

#[test]
fn repeated_header_first_wins_and_all_are_kept() {
    let f = frame(Version::V1_2, b"MESSAGE\nfoo:1\nfoo:2\n\n\0");
    assert_eq!(f.header("foo"), Some("1"));
    assert_eq!(
        f.headers.iter().collect::<Vec<_>>(),
        [("foo", "1"), ("foo", "2")]
    );
}

#[test]
fn header_splits_at_first_colon() {
    let f = frame(Version::V1_0, b"SEND\nurl:tcp://host:61613\nempty:\n\n\0");
    assert_eq!(f.header("url"), Some("tcp://host:61613"));
    assert_eq!(f.header("empty"), Some(""));
}

#[test]
fn v1_0_takes_headers_raw() {
    let f = frame(Version::V1_0, b"SEND\n a\\n : b\\c\\t \n\n\0");
    assert_eq!(
        f.headers.iter().collect::<Vec<_>>(),
        [(" a\\n ", " b\\c\\t ")]
    );
}

#[test]
fn v1_1_unescapes() {
    let f = frame(Version::V1_1, b"SEND\na\\cb:c\\\\d\\ne\n\n\0");
    assert_eq!(f.header("a:b"), Some("c\\d\ne"));
}

#[test]
fn v1_2_unescapes_cr_too() {
    let f = frame(Version::V1_2, b"SEND\nk:a\\rb\\c\n\n\0");
    assert_eq!(f.header("k"), Some("a\rb:"));
}

#[test]
fn connect_frames_are_never_unescaped() {
    for command in ["CONNECT", "STOMP", "CONNECTED"] {
        let wire = format!("{command}\nlogin:a\\c\\t\npasscode:x:y\n\n\0");
        let f = frame(Version::V1_2, wire.as_bytes());
        assert_eq!(f.header("login"), Some("a\\c\\t"));
        assert_eq!(f.header("passcode"), Some("x:y"));
    }
}

#[test]
fn version_starts_at_1_0_and_changes() {
    let mut decoder = Decoder::default();
    assert_eq!(decoder.version(), Version::V1_0);
    assert_eq!(decoder.limits(), &Limits::default());
    let input = b"SEND\na:\\n\n\n\0";
    let items = decode_all(&mut decoder, input);
    assert_eq!(
        items,
        [Item::Frame(
            Frame::new(Command::Send).with_header("a", "\\n")
        )]
    );
    decoder.set_version(Version::V1_1);
    assert_eq!(decoder.version(), Version::V1_1);
    let items = decode_all(&mut decoder, input);
    assert_eq!(
        items,
        [Item::Frame(
            Frame::new(Command::Send).with_header("a", "\n")
        )]
    );
}

#[test]
fn set_version_rereads_a_partial_frame() {
    let mut decoder = Decoder::default();
    let mut buf = BytesMut::from(&b"SEND\na:\\n\n"[..]);
    assert_eq!(decoder.decode(&mut buf).unwrap(), None);
    decoder.set_version(Version::V1_2);
    buf.extend_from_slice(b"\n\0");
    assert_eq!(
        decoder.decode(&mut buf).unwrap(),
        Some(Item::Frame(
            Frame::new(Command::Send).with_header("a", "\n")
        ))
    );
}

#[test]
fn a_shrunken_buffer_starts_over() {
    let mut decoder = Decoder::default();
    let mut buf = BytesMut::from(&b"SEND\na:b\nc:d"[..]);
    assert_eq!(decoder.decode(&mut buf).unwrap(), None);
    let mut other = BytesMut::from(&b"ACK\n\n\0"[..]);
    assert_eq!(
        decoder.decode(&mut other).unwrap(),
        Some(Item::Frame(Frame::new(Command::Ack)))
    );
}

#[test]
fn decoder_recovers_after_an_error_on_a_fresh_buffer() {
    let mut decoder = Decoder::default();
    let mut buf = BytesMut::from(&b"SEND\nbad\n\n\0"[..]);
    assert!(decoder.decode(&mut buf).is_err());
    let mut buf = BytesMut::from(&b"ACK\n\n\0"[..]);
    assert_eq!(
        decoder.decode(&mut buf).unwrap(),
        Some(Item::Frame(Frame::new(Command::Ack)))
    );
}

#[test]
fn round_trips_through_encode_per_version() {
    let original = Frame::new(Command::Message)
        .with_header("a:b\\c", "line1\nline2\r:x")
        .with_header("destination", "/queue/ü")
        .with_body(&b"\0bin\0"[..]);
    for version in [Version::V1_1, Version::V1_2] {
        let mut buf = BytesMut::new();
        encode(&original, version, &mut buf);
        let decoded = frame(version, &buf);
        // 1.1 has no CR escape, but a raw CR survives as long as it is not right before the
        // LF, where it would read as part of a CRLF.
        assert_eq!(decoded, original.clone().with_header("content-length", "5"));
    }
    let plain = Frame::new(Command::Send)
        .with_header("destination", "/queue/a:b")
        .with_header("x", " spaced \\ ")
        .with_body("text");
    let mut buf = BytesMut::new();
    encode(&plain, Version::V1_0, &mut buf);
    assert_eq!(
        frame(Version::V1_0, &buf),
        plain.with_header("content-length", "4")
    );
}

#[test]
fn connect_round_trips_raw_after_negotiation() {
    let original = Frame::new(Command::Connect)
        .with_header("login", "a\\c")
        .with_header("accept-version", "1.0,1.1,1.2");
    let mut buf = BytesMut::new();
    encode(&original, Version::V1_2, &mut buf);
    assert_eq!(frame(Version::V1_2, &buf), original);
}

// --- Errors ----------------------------------------------------------------------------------

#[test]
fn unknown_command() {
    assert_eq!(
        error(Version::V1_2, b"send\n\n\0"),
        DecodeError::UnknownCommand("send".into())
    );
    assert_eq!(
        error(Version::V1_0, b"FOO\r\n\n\0"),
        DecodeError::UnknownCommand("FOO".into())
    );
    assert_eq!(
        error(Version::V1_0, b"\rSEND\n\n\0"),
        DecodeError::UnknownCommand("\rSEND".into())
    );
}

#[test]
fn overlong_command_line_fails_before_its_eol() {
    let mut decoder = Decoder::default();
    let mut buf = BytesMut::from(&b"GET / HTTP/1"[..]);
    assert_eq!(decoder.decode(&mut buf).unwrap(), None);
    buf.extend_from_slice(b".1");
    assert_eq!(
        decoder.decode(&mut buf).unwrap_err(),
        DecodeError::UnknownCommand("GET / HTTP/1.".into())
    );
}

#[test]
fn longest_command_with_crlf_is_accepted() {
    assert_eq!(
        frame(Version::V1_2, b"UNSUBSCRIBE\r\nid:1\n\n\0").command,
        Command::Unsubscribe
    );
}

#[test]
fn missing_nul_after_content_length_body() {
    assert_eq!(
        error(Version::V1_2, b"SEND\ncontent-length:2\n\nabc\0"),
        DecodeError::MissingNul
    );
    assert_eq!(
        error(Version::V1_2, b"SEND\ncontent-length:2\n\nab\n"),
        DecodeError::MissingNul
    );
}

#[test]
fn header_line_without_colon() {
    assert_eq!(
        error(Version::V1_2, b"SEND\nnocolon\n\n\0"),
        DecodeError::InvalidHeaderLine("nocolon".into())
    );
}

#[test]
fn header_line_with_empty_name() {
    assert_eq!(
        error(Version::V1_0, b"SEND\n:value\n\n\0"),
        DecodeError::InvalidHeaderLine(":value".into())
    );
}

#[test]
fn missing_blank_line_is_caught_as_a_bad_header() {
    // `DISCONNECT\n\0` without the blank line: the NUL starts a header line.
    assert_eq!(
        error(Version::V1_2, b"DISCONNECT\n\0\nSEND\n\n\0"),
        DecodeError::InvalidHeaderLine("\0".into())
    );
}

#[test]
fn nul_inside_a_header_is_refused() {
    assert_eq!(
        error(Version::V1_2, b"SEND\nx:a\0b\n\n\0"),
        DecodeError::InvalidHeaderLine("x:a\0b".into())
    );
}

#[test]
fn invalid_escapes() {
    assert_eq!(
        error(Version::V1_2, b"SEND\na:b\\tc\n\n\0"),
        DecodeError::InvalidEscape("\\t".into())
    );
    assert_eq!(
        error(Version::V1_1, b"SEND\na:b\\\n\n\0"),
        DecodeError::InvalidEscape("\\".into())
    );
    assert_eq!(
        error(Version::V1_1, b"SEND\na\\r:b\n\n\0"),
        DecodeError::InvalidEscape("\\r".into())
    );
}

#[test]
fn invalid_utf8_in_name_or_value() {
    for version in Version::ALL {
        assert_eq!(
            error(version, b"SEND\na\xff:b\n\n\0"),
            DecodeError::InvalidUtf8
        );
        assert_eq!(
            error(version, b"SEND\na:\xc3\x28\n\n\0"),
            DecodeError::InvalidUtf8
        );
        assert_eq!(
            error(version, b"CONNECT\na:\xc3\n\n\0"),
            DecodeError::InvalidUtf8
        );
    }
}

#[test]
fn body_is_not_checked_for_utf8() {
    assert_eq!(
        frame(Version::V1_2, b"SEND\n\n\xff\xfe\0").body,
        Bytes::from_static(b"\xff\xfe")
    );
}

#[test]
fn invalid_content_length() {
    for bad in [
        "-5",
        "abc",
        "+5",
        "",
        "1 2",
        "0x10",
        "99999999999999999999999",
    ] {
        let wire = format!("SEND\ncontent-length:{bad}\n\nx\0");
        assert_eq!(
            error(Version::V1_2, wire.as_bytes()),
            DecodeError::InvalidContentLength(bad.into()),
            "{bad:?}"
        );
    }
}

#[test]
fn content_length_is_checked_in_connect_frames_too() {
    assert_eq!(
        error(Version::V1_0, b"CONNECT\ncontent-length:x\n\n\0"),
        DecodeError::InvalidContentLength("x".into())
    );
}

// --- Limits ----------------------------------------------------------------------------------

#[test]
fn limit_defaults() {
    let limits = Limits::default();
    assert_eq!(limits.max_frame_bytes, 10 * 1024 * 1024);
    assert_eq!(limits.max_headers, 1000);
    assert_eq!(limits.max_header_bytes, 10 * 1024);
    assert_eq!(limits.max_body_bytes, 10 * 1024 * 1024);
    assert_eq!(limits.max_frame_bytes, crate::DEFAULT_MAX_FRAME_BYTES);
    assert_eq!(limits.max_headers, crate::DEFAULT_MAX_HEADERS);
    assert_eq!(limits.max_header_bytes, crate::DEFAULT_MAX_HEADER_BYTES);
    assert_eq!(limits.max_body_bytes, crate::DEFAULT_MAX_BODY_BYTES);
}

#[test]
fn frames_at_the_limits_are_accepted() {
    let limits = small_limits();
    let name_value = format!("h:{}", "v".repeat(30)); // 32 bytes: exactly the line limit
    let mut wire = b"SEND\n".to_vec();
    for _ in 0..4 {
        wire.extend_from_slice(name_value.as_bytes());
        wire.push(b'\n');
    }
    wire.push(b'\n');
    let body_len = 200 - wire.len() - 1; // fill the frame exactly
    assert!(body_len <= 100);
    wire.extend(std::iter::repeat(b'b').take(body_len));
    wire.push(0);
    assert_eq!(wire.len(), 200);
    let mut decoder = Decoder::new(limits);
    let mut buf = BytesMut::from(&wire[..]);
    assert!(matches!(decoder.decode(&mut buf), Ok(Some(Item::Frame(_)))));
}

#[test]
fn frame_too_large_while_headers_are_incomplete() {
    let limits = Limits {
        max_header_bytes: 1000,
        ..small_limits()
    };
    let mut wire = b"SEND\n".to_vec();
    for i in 0..3 {
        wire.extend_from_slice(format!("h{i}:{}\n", "v".repeat(28)).as_bytes());
    }
    wire.extend_from_slice(&[b'x'; 100]);
    let (err, fed) = error_fed_bytewise(limits, &wire);
    assert_eq!(err, DecodeError::FrameTooLarge { limit: 200 });
    // The unfinished line's LF and the frame's NUL are still to come.
    assert_eq!(fed, 199);
}

#[test]
fn frame_too_large_by_content_length_before_the_body_arrives() {
    let limits = Limits {
        max_body_bytes: 1000,
        ..small_limits()
    };
    let mut decoder = Decoder::new(limits);
    let mut buf = BytesMut::from(&b"SEND\ncontent-length:190\n\n"[..]);
    assert_eq!(
        decoder.decode(&mut buf).unwrap_err(),
        DecodeError::FrameTooLarge { limit: 200 }
    );
}

#[test]
fn frame_too_large_while_body_without_content_length_is_incomplete() {
    let limits = Limits {
        max_body_bytes: 1000,
        ..small_limits()
    };
    let mut wire = b"SEND\n\n".to_vec();
    wire.extend_from_slice(&[b'x'; 300]);
    let (err, fed) = error_fed_bytewise(limits, &wire);
    assert_eq!(err, DecodeError::FrameTooLarge { limit: 200 });
    assert_eq!(fed, 200);
}

#[test]
fn frame_too_large_when_complete() {
    let limits = Limits {
        max_body_bytes: 1000,
        ..small_limits()
    };
    let mut wire = b"SEND\n\n".to_vec();
    wire.extend_from_slice(&[b'x'; 194]);
    wire.push(0);
    assert_eq!(wire.len(), 201);
    assert_eq!(
        error_with(limits, Version::V1_0, &wire),
        DecodeError::FrameTooLarge { limit: 200 }
    );
}

#[test]
fn too_many_headers() {
    let wire = b"SEND\na:1\nb:2\nc:3\nd:4\ne:5\n\n\0";
    assert_eq!(
        error_with(small_limits(), Version::V1_2, wire),
        DecodeError::TooManyHeaders { limit: 4 }
    );
}

#[test]
fn too_many_headers_as_soon_as_the_extra_line_starts() {
    let mut decoder = Decoder::new(small_limits());
    let mut buf = BytesMut::from(&b"SEND\na:1\nb:2\nc:3\nd:4\n\r"[..]);
    // A lone CR could still be the blank line.
    assert_eq!(decoder.decode(&mut buf).unwrap(), None);
    buf.extend_from_slice(b"e");
    assert_eq!(
        decoder.decode(&mut buf).unwrap_err(),
        DecodeError::TooManyHeaders { limit: 4 }
    );
}

#[test]
fn header_too_long() {
    let wire = format!("SEND\nh:{}\n\n\0", "v".repeat(31));
    assert_eq!(
        error_with(small_limits(), Version::V1_2, wire.as_bytes()),
        DecodeError::HeaderTooLong { limit: 32 }
    );
}

#[test]
fn header_too_long_before_its_eol() {
    let mut decoder = Decoder::new(small_limits());
    let mut buf = BytesMut::from(format!("SEND\nh:{}\r", "v".repeat(30)).as_bytes());
    // 32 bytes and a CR that may belong to the EOL: still within the limit.
    assert_eq!(decoder.decode(&mut buf).unwrap(), None);
    buf.extend_from_slice(b"x");
    assert_eq!(
        decoder.decode(&mut buf).unwrap_err(),
        DecodeError::HeaderTooLong { limit: 32 }
    );
}

#[test]
fn body_too_large_by_content_length_before_the_headers_end() {
    let mut decoder = Decoder::new(small_limits());
    let mut buf = BytesMut::from(&b"SEND\ncontent-length:101\n"[..]);
    assert_eq!(
        decoder.decode(&mut buf).unwrap_err(),
        DecodeError::BodyTooLarge { limit: 100 }
    );
}

#[test]
fn body_too_large_without_content_length() {
    let limits = Limits {
        max_frame_bytes: 1000,
        ..small_limits()
    };
    let mut wire = b"SEND\n\n".to_vec();
    wire.extend_from_slice(&[b'x'; 101]);
    wire.push(0);
    assert_eq!(
        error_with(limits, Version::V1_2, &wire),
        DecodeError::BodyTooLarge { limit: 100 }
    );
    let (err, fed) = error_fed_bytewise(limits, &wire);
    assert_eq!(err, DecodeError::BodyTooLarge { limit: 100 });
    assert_eq!(fed, 6 + 101);
}

#[test]
fn content_length_body_is_not_scanned_for_nul() {
    // With content-length the decoder jumps to the end: a NUL inside the body, arriving
    // first, must not end the frame, whatever the chunking.
    let mut decoder = Decoder::default();
    let mut buf = BytesMut::from(&b"SEND\ncontent-length:4\n\n\0\0"[..]);
    assert_eq!(decoder.decode(&mut buf).unwrap(), None);
    buf.extend_from_slice(b"\0\0\0");
    let Some(Item::Frame(f)) = decoder.decode(&mut buf).unwrap() else {
        panic!()
    };
    assert_eq!(f.body, Bytes::from_static(b"\0\0\0\0"));
}

/// What `scan_line` must agree with, byte by byte: the LF, and before it the first
/// colon and any backslash; `Err` for a NUL before the LF.
fn scan_line_by_bytes(line: &[u8]) -> Result<Option<(usize, Option<usize>, bool)>, ()> {
    let end = line.iter().position(|&b| b == b'\n');
    let part = &line[..end.unwrap_or(line.len())];
    if part.contains(&0) {
        return Err(());
    }
    Ok(end.map(|lf| {
        (
            lf,
            part.iter().position(|&b| b == b':'),
            part.contains(&b'\\'),
        )
    }))
}

mod scan_line_property {
    use proptest::prelude::*;

    fn header_byte() -> impl Strategy<Value = u8> {
        prop_oneof![
            4 => (0u8..26).prop_map(|b| b'a' + b),
            1 => proptest::sample::select(vec![b':', b'\\', b'\n', b'\r', 0u8, 0x80, 0xC3, b' ']),
        ]
    }

    proptest! {
        /// Fed in two parts at any split, as a line arriving over two reads is.
        #[test]
        fn scan_line_finds_what_a_byte_by_byte_scan_finds(
            line in proptest::collection::vec(header_byte(), 0..40),
            split in 0usize..41,
        ) {
            let split = split.min(line.len());
            let mut scan = super::LineScan::default();
            let got = super::scan_line(&line[..split], 0, &mut scan).and_then(|found| match found {
                Some(lf) => Ok(Some(lf)),
                None => super::scan_line(&line, split, &mut scan),
            });
            let got = got.map(|found| found.map(|lf| (lf, scan.colon, scan.escaped)));
            prop_assert_eq!(got, super::scan_line_by_bytes(&line));
        }
    }
}
