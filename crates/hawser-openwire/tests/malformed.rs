//! Malformed input: every kind of bad frame yields its typed error (never a panic, never an
//! allocation sized by a lying length), and frames cut anywhere wait for more bytes.

mod common;
mod strategy;

use bytes::{Bytes, BytesMut};
use common::{all_modes, hex, settings};
use hawser_openwire::*;

const MAX_FRAME: u64 = 1 << 20;

fn loose() -> WireSettings {
    WireSettings {
        max_frame_size: MAX_FRAME,
        ..settings(false, false, true)
    }
}

fn tight() -> WireSettings {
    WireSettings {
        max_frame_size: MAX_FRAME,
        ..settings(true, false, true)
    }
}

fn tight_cached() -> WireSettings {
    WireSettings {
        max_frame_size: MAX_FRAME,
        ..settings(true, true, true)
    }
}

/// A size-prefixed frame of `body` (type byte included), in hex.
fn frame(body: &str) -> Vec<u8> {
    let body = hex(body);
    let mut wire = (body.len() as u32).to_be_bytes().to_vec();
    wire.extend_from_slice(&body);
    wire
}

fn decode(settings: WireSettings, wire: &[u8]) -> Result<Option<Command>, DecodeError> {
    Decoder::new(settings).decode(&mut BytesMut::from(wire))
}

/// `depth` DataResponses nested in one another (loose), the innermost holding nothing.
fn nested_data_responses(depth: usize) -> Vec<u8> {
    let mut body = String::new();
    for _ in 0..depth {
        body.push_str("20 00000000 00 00000000 01 ");
    }
    body.push_str("20 00000000 00 00000000 00");
    frame(&body)
}

/// An ExceptionResponse (loose, stack traces on) whose exception has `depth` causes.
fn exception_chain(depth: usize) -> Vec<u8> {
    let mut body = String::from("1f 00000000 00 00000001 ");
    for _ in 0..=depth {
        body.push_str("01 00 00 0000 ");
    }
    body.push_str("00");
    frame(&body)
}

#[test]
fn malformed_frames_yield_typed_errors() {
    let with_stack_traces = WireSettings {
        stack_trace_enabled: true,
        ..loose()
    };
    let version_1 = WireSettings {
        version: 1,
        ..loose()
    };
    let mut too_many_properties = String::from("01 4163746976654d51 0000000c 01 0000000d 00001001");
    too_many_properties.push_str(&" 0001 6b 00".repeat(3));
    let cases: Vec<(&str, WireSettings, Vec<u8>, DecodeError)> = vec![
        (
            "type 13 does not exist",
            loose(),
            frame("0d"),
            DecodeError::UnknownType(13),
        ),
        (
            "type 255",
            loose(),
            frame("ff 00"),
            DecodeError::UnknownType(255),
        ),
        (
            "a broker-to-broker type",
            loose(),
            frame("5a 00000000 00"),
            DecodeError::UnsupportedType(90),
        ),
        (
            "a value as the top-level object",
            loose(),
            frame("78 01 0001 41"),
            DecodeError::NotACommand(120),
        ),
        (
            "MessagePull in version 1",
            version_1,
            frame("14 00000000 00 00 00 0000000000000000"),
            DecodeError::TypeNotInVersion {
                type_id: 20,
                version: 1,
            },
        ),
        (
            "WireFormatInfo with a wrong magic",
            loose(),
            frame("01 4163746976654d52 0000000c 00"),
            DecodeError::BadMagic,
        ),
        ("an empty frame", loose(), frame(""), DecodeError::Truncated),
        (
            "a frame shorter than its fields",
            loose(),
            frame("0a 000000"),
            DecodeError::Truncated,
        ),
        (
            "a frame longer than its fields",
            loose(),
            frame("0a 00000000 00 ff"),
            DecodeError::TrailingBytes {
                declared: 7,
                consumed: 6,
            },
        ),
        (
            "a negative frame size",
            loose(),
            hex("ffffffff 0a"),
            DecodeError::NegativeFrameSize(-1),
        ),
        (
            "a frame size above the maximum, body not yet sent",
            loose(),
            hex("00200000"),
            DecodeError::FrameTooLarge {
                size: 2 << 20,
                max: MAX_FRAME,
            },
        ),
        (
            "a string length past the frame's end",
            loose(),
            frame("03 00000001 01 01 78 01 7fff 41"),
            DecodeError::Truncated,
        ),
        (
            "a byte array length past the frame's end",
            loose(),
            frame("12 00000000 00 0000000000 00 00 00 01 7fffffff"),
            DecodeError::Truncated,
        ),
        (
            "a negative byte array length",
            loose(),
            frame("12 00000000 00 0000000000 00 00 00 01 ffffffff"),
            DecodeError::NegativeLength {
                field: "byte array",
                length: -1,
            },
        ),
        (
            "an array count past the frame's end",
            loose(),
            frame("03 00000001 01 00 00 00 00 01 7fff 01 7c 01 0001 41"),
            DecodeError::Truncated,
        ),
        (
            "a negative array count",
            loose(),
            frame("03 00000001 01 00 00 00 00 01 ffff"),
            DecodeError::NegativeLength {
                field: "ConnectionInfo.brokerPath",
                length: -1,
            },
        ),
        (
            "a null array element",
            loose(),
            frame("03 00000001 01 00 00 00 00 01 0001 00"),
            DecodeError::NullElement("ConnectionInfo.brokerPath"),
        ),
        (
            "invalid modified UTF-8",
            loose(),
            frame("0e 00000000 00 01 0002 c3 28"),
            DecodeError::InvalidString,
        ),
        (
            "a lone surrogate",
            loose(),
            frame("0e 00000000 00 01 0003 eda080"),
            DecodeError::InvalidString,
        ),
        (
            "a null connection id value",
            loose(),
            frame("03 00000001 01 01 78 00"),
            DecodeError::NullField("ConnectionId.value"),
        ),
        (
            "a BrokerId where a ConnectionId belongs",
            loose(),
            frame("03 00000001 01 01 7c 01 0001 41 00 00 00 00 00 00 00 00 00 00"),
            DecodeError::UnexpectedType {
                field: "ConnectionInfo.connectionId",
                expected: "ConnectionId",
                found: 124,
            },
        ),
        (
            "an unknown nested type",
            loose(),
            frame("03 00000001 01 01 0d"),
            DecodeError::UnknownType(13),
        ),
        (
            "an unknown primitive type in properties",
            loose(),
            frame("01 4163746976654d51 0000000c 01 00000008 00000001 0001 6b 63"),
            DecodeError::UnknownPrimitiveType(0x63),
        ),
        (
            "a properties blob longer than its map",
            loose(),
            frame("01 4163746976654d51 0000000c 01 00000009 00000001 0001 6b 00 00"),
            DecodeError::TrailingBytes {
                declared: 9,
                consumed: 8,
            },
        ),
        (
            "a WireFormatInfo with more than 4096 properties",
            loose(),
            frame(&too_many_properties),
            DecodeError::TooManyEntries {
                count: 4097,
                max: 4096,
            },
        ),
        (
            "objects nested too deep",
            loose(),
            nested_data_responses(MAX_NESTING_DEPTH + 1),
            DecodeError::TooDeep(MAX_NESTING_DEPTH),
        ),
        (
            "exception causes nested too deep",
            with_stack_traces,
            exception_chain(MAX_EXCEPTION_DEPTH),
            DecodeError::TooDeep(MAX_EXCEPTION_DEPTH),
        ),
        (
            "a negative stack frame count",
            with_stack_traces,
            frame("1f 00000000 00 00000001 01 00 00 ffff"),
            DecodeError::NegativeLength {
                field: "stack trace",
                length: -1,
            },
        ),
        (
            "a BooleanStream with a negative length",
            tight(),
            frame("0a 80 ffff 00000000"),
            DecodeError::InvalidBooleanStream,
        ),
        (
            "a BooleanStream with too few bits",
            tight(),
            frame("0a 00 00000000"),
            DecodeError::BooleanStreamExhausted,
        ),
        (
            "a BooleanStream longer than the frame",
            tight(),
            frame("0a 05 00"),
            DecodeError::Truncated,
        ),
        (
            "a tight ASCII string with a negative length",
            tight(),
            frame("0e 01 06 00000000 ffff"),
            DecodeError::NegativeLength {
                field: "string",
                length: -1,
            },
        ),
        (
            "a nested message in pre-marshalled form",
            tight(),
            frame("15 01 18 00000000 1c"),
            DecodeError::MarshalledForm,
        ),
        (
            "a cache index at the cache size",
            tight_cached(),
            frame("04 01 00 00000000 0400"),
            DecodeError::CacheIndexOutOfRange {
                index: 1024,
                size: 1024,
            },
        ),
        (
            "a reference to cache index -1",
            tight_cached(),
            frame("04 01 00 00000000 ffff"),
            DecodeError::CacheIndexOutOfRange {
                index: -1,
                size: 1024,
            },
        ),
        (
            "a new value at cache index -2",
            tight_cached(),
            frame("04 01 02 00000000 fffe"),
            DecodeError::CacheIndexOutOfRange {
                index: -2,
                size: 1024,
            },
        ),
        (
            "a reference to a slot never filled",
            tight_cached(),
            frame("04 01 00 00000000 0005"),
            DecodeError::CacheSlotEmpty(5),
        ),
        (
            "an unprefixed string longer than the maximum frame",
            WireSettings {
                max_frame_size: 100,
                ..settings(false, false, false)
            },
            hex("0e 00000000 00 01 ffff 41"),
            DecodeError::FrameTooLarge {
                size: 9 + 0xffff,
                max: 100,
            },
        ),
    ];
    for (what, settings, wire, expected) in cases {
        assert_eq!(decode(settings, &wire), Err(expected), "{what}");
    }
}

#[test]
fn depth_limit_is_exact() {
    let command = decode(loose(), &nested_data_responses(MAX_NESTING_DEPTH)).unwrap();
    assert!(matches!(command, Some(Command::DataResponse(_))));
    let with_stack_traces = WireSettings {
        stack_trace_enabled: true,
        ..loose()
    };
    // The outer exception and its causes count alike.
    let command = decode(with_stack_traces, &exception_chain(MAX_EXCEPTION_DEPTH - 1)).unwrap();
    assert!(matches!(command, Some(Command::ExceptionResponse(_))));
}

/// Valid frames of every command type, in every mode, each with the settings it was
/// encoded with. Each frame is encoded by a fresh encoder, so it stands alone.
fn sample_frames() -> Vec<(WireSettings, Vec<u8>)> {
    use proptest::strategy::{Strategy, ValueTree};
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let mut frames = Vec::new();
    for settings in all_modes() {
        for _ in 0..12 {
            let command = strategy::command(false)
                .new_tree(&mut runner)
                .unwrap()
                .current();
            let mut wire = BytesMut::new();
            Encoder::new(settings).encode(&command, &mut wire).unwrap();
            frames.push((settings, wire.to_vec()));
        }
    }
    frames
}

#[test]
fn a_frame_cut_anywhere_waits_for_the_rest() {
    for (settings, wire) in sample_frames() {
        for cut in 0..wire.len() {
            let mut buf = BytesMut::from(&wire[..cut]);
            assert_eq!(
                Decoder::new(settings).decode(&mut buf),
                Ok(None),
                "{settings:?} cut at {cut} of {}",
                wire.len()
            );
            assert_eq!(buf.len(), cut, "nothing consumed");
        }
        assert!(decode(settings, &wire).unwrap().is_some());
    }
}

#[test]
fn a_size_prefix_that_lies_short_is_truncated() {
    for (settings, wire) in sample_frames() {
        if settings.size_prefix_disabled {
            continue;
        }
        for size in 1..wire.len() - 4 {
            let mut lying = (size as u32).to_be_bytes().to_vec();
            lying.extend_from_slice(&wire[4..4 + size]);
            assert_eq!(
                decode(settings, &lying),
                Err(DecodeError::Truncated),
                "{settings:?} size {size}"
            );
        }
    }
}

/// Damaged bytes at every position never panic; whatever still decodes re-encodes to itself.
#[test]
fn damaged_frames_never_panic() {
    for (settings, wire) in sample_frames() {
        for at in 0..wire.len() {
            for damage in [0x00, 0xff, 0x7f, 0x80, wire[at] ^ 0x01, wire[at] ^ 0x40] {
                let mut damaged = wire.clone();
                damaged[at] = damage;
                if let Ok(Some(command)) = decode(settings, &damaged) {
                    let mut again = BytesMut::new();
                    Encoder::new(settings).encode(&command, &mut again).unwrap();
                    assert_eq!(decode(settings, &again), Ok(Some(command)));
                }
            }
        }
    }
}

fn control(text: String) -> Command {
    Command::ControlCommand(ControlCommand {
        command: Some(text),
        ..ControlCommand::default()
    })
}

#[test]
fn strings_too_long_for_the_encoding_are_refused() {
    let mut out = BytesMut::new();
    let mut tight = Encoder::new(tight());
    assert_eq!(
        tight.encode(&control("a".repeat(32_767)), &mut out),
        Err(EncodeError::StringTooLong {
            len: 32_767,
            max: 32_766
        })
    );
    // NUL takes two bytes in modified UTF-8.
    assert_eq!(
        tight.encode(&control("\0".repeat(16_384)), &mut out),
        Err(EncodeError::StringTooLong {
            len: 32_768,
            max: 32_766
        })
    );
    assert!(out.is_empty());
    tight
        .encode(&control("a".repeat(32_766)), &mut out)
        .unwrap();

    let mut loose = Encoder::new(loose());
    assert_eq!(
        loose.encode(&control("é".repeat(32_768)), &mut out),
        Err(EncodeError::StringTooLong {
            len: 65_536,
            max: 65_535
        })
    );
    loose
        .encode(&control("a".repeat(65_535)), &mut out)
        .unwrap();
}

#[test]
fn a_failed_encode_leaves_output_and_cache_as_they_were() {
    let consumer = |selector: String| {
        Command::ConsumerInfo(ConsumerInfo {
            consumer_id: Some(ConsumerId {
                connection_id: "ID:c".into(),
                session_id: 1,
                value: 1,
            }),
            destination: Some(Destination::queue("q")),
            selector: Some(selector),
            ..ConsumerInfo::default()
        })
    };
    for settings in [tight_cached(), settings(false, true, true)] {
        let mut encoder = Encoder::new(settings);
        let mut out = BytesMut::from(&b"kept"[..]);
        // The ids are new to the cache, then the selector is too long.
        assert!(encoder
            .encode(&consumer("x".repeat(70_000)), &mut out)
            .is_err());
        assert_eq!(out[..], b"kept"[..]);
        // Had the failed frame's slots been kept, this frame would refer to slots the peer
        // never received.
        let mut out = BytesMut::new();
        encoder.encode(&consumer("a = 1".into()), &mut out).unwrap();
        encoder.encode(&consumer("a = 1".into()), &mut out).unwrap();
        let mut decoder = Decoder::new(settings);
        assert_eq!(decoder.decode(&mut out), Ok(Some(consumer("a = 1".into()))));
        assert_eq!(decoder.decode(&mut out), Ok(Some(consumer("a = 1".into()))));
    }
}

#[test]
fn other_encode_errors() {
    let mut out = BytesMut::new();
    let ack = Command::ProducerAck(ProducerAck::default());
    let v2 = WireSettings {
        version: 2,
        ..loose()
    };
    assert_eq!(
        Encoder::new(v2).encode(&ack, &mut out),
        Err(EncodeError::TypeNotInVersion {
            type_id: 19,
            version: 2
        })
    );

    let big = Command::from(Message {
        content: Some(Bytes::from(vec![0; 200])),
        ..Message::default()
    });
    for mut settings in all_modes() {
        settings.max_frame_size = 100;
        assert!(matches!(
            Encoder::new(settings).encode(&big, &mut out),
            Err(EncodeError::FrameTooLarge { max: 100, .. })
        ));
    }

    let mut deep = DataStructure::ConnectionId(ConnectionId::new("c"));
    for _ in 0..=MAX_NESTING_DEPTH {
        deep = DataStructure::Command(Box::new(Command::DataResponse(DataResponse {
            data: Some(deep),
            ..DataResponse::default()
        })));
    }
    let DataStructure::Command(deep) = deep else {
        unreachable!()
    };
    assert_eq!(
        Encoder::new(loose()).encode(&deep, &mut out),
        Err(EncodeError::TooDeep(MAX_NESTING_DEPTH))
    );
    assert!(out.is_empty());
}

/// The deepest frame allowed (messages nested in messages' data structures, every level the
/// largest data structure there is) decodes and encodes on a thread with 1 MiB of stack, half
/// of what a tokio worker has, even unoptimized.
#[test]
fn the_deepest_frames_fit_a_small_stack() {
    let mut message = Message::default();
    for _ in 0..MAX_NESTING_DEPTH - 1 {
        message = Message {
            data_structure: Some(DataStructure::Command(Box::new(Command::from(message)))),
            ..Message::default()
        };
    }
    let command = Command::MessageDispatch(MessageDispatch {
        message: Some(Box::new(message)),
        ..MessageDispatch::default()
    });
    std::thread::Builder::new()
        .stack_size(1 << 20)
        .spawn(move || {
            for settings in all_modes() {
                let mut wire = BytesMut::new();
                Encoder::new(settings).encode(&command, &mut wire).unwrap();
                let decoded = Decoder::new(settings).decode(&mut wire).unwrap();
                assert_eq!(decoded.as_ref(), Some(&command));
            }
        })
        .unwrap()
        .join()
        .unwrap();
}
