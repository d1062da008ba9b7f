//! Fuzzes the STOMP decoder: arbitrary bytes must never panic, never leave more than a frame's
//! worth buffered as "incomplete", and every frame decoded must survive a re-encode.
//!
//! The first input byte picks the starting version and whether the version changes after each
//! frame (as a session does after CONNECT); the rest is the byte stream.

#![no_main]

use bytes::BytesMut;
use hawser_stomp::{encode, Decoder, Frame, Item, Limits, Version, CONTENT_LENGTH};
use libfuzzer_sys::fuzz_target;

/// Small limits, so that short inputs reach every limit check.
const LIMITS: Limits = Limits {
    max_frame_bytes: 512,
    max_headers: 8,
    max_header_bytes: 64,
    max_body_bytes: 256,
};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, stream)) = data.split_first() else {
        return;
    };
    let mut version = Version::ALL[usize::from(selector % 3)];
    let rotate_versions = selector & 0x80 != 0;

    let mut decoder = Decoder::new(LIMITS);
    decoder.set_version(version);
    let mut buf = BytesMut::from(stream);
    loop {
        match decoder.decode(&mut buf) {
            Ok(Some(Item::HeartBeat)) => {}
            Ok(Some(Item::Frame(frame))) => {
                assert!(frame.headers.len() <= LIMITS.max_headers);
                assert!(frame.body.len() <= LIMITS.max_body_bytes);
                check_round_trip(&frame, version);
                if rotate_versions {
                    version = Version::ALL[(version as usize + 1) % Version::ALL.len()];
                    decoder.set_version(version);
                }
            }
            Ok(None) => {
                assert!(buf.len() <= LIMITS.max_frame_bytes);
                break;
            }
            Err(_) => break,
        }
    }
});

/// Re-encodes a decoded frame for the version it was decoded with and decodes it again.
fn check_round_trip(frame: &Frame, version: Version) {
    // Where nothing is escaped (1.0, and CONNECT, STOMP and CONNECTED frames) `encode`
    // writes CR, LF and NUL in headers as spaces, so that no value can end its line early.
    let unescaped = version == Version::V1_0 || !frame.command.escapes_headers();
    // Where CR is not escaped but written (1.1), a value ending in CR is written as
    // `value\r\n` and reads back as a CRLF: the one frame shape 1.1 cannot represent.
    let cr_escaped = frame.command.escapes_headers() && version == Version::V1_2;
    if !unescaped && !cr_escaped && frame.headers.iter().any(|(_, v)| v.ends_with('\r')) {
        return;
    }

    let mut wire = BytesMut::new();
    encode(frame, version, &mut wire);
    let mut decoder = Decoder::new(Limits::default());
    decoder.set_version(version);
    let decoded = match decoder.decode(&mut wire) {
        Ok(Some(Item::Frame(decoded))) => decoded,
        other => panic!("re-encoded {frame:?} decoded as {other:?}"),
    };
    assert!(wire.is_empty(), "re-encoded frame left {wire:?}");

    let mut expected = if unescaped {
        let mut spaced = Frame::new(frame.command).with_body(frame.body.clone());
        for (name, value) in &frame.headers {
            spaced.push_header(line_safe(name), line_safe(value));
        }
        spaced
    } else {
        frame.clone()
    };
    // encode adds content-length to a non-empty body that has none.
    if !expected.body.is_empty() && expected.header(CONTENT_LENGTH).is_none() {
        let len = expected.body.len().to_string();
        expected.push_header(CONTENT_LENGTH, len);
    }
    assert_eq!(decoded, expected);
}

/// `text` as `encode` writes it where nothing is escaped.
fn line_safe(text: &str) -> String {
    text.replace(['\r', '\n', '\0'], " ")
}
