//! The worked examples of the OpenWire research note (docs: /work/research/openwire-wire.md,
//! section 9): bytes written by activemq-client 5.17.2 itself. Each is decoded to the value
//! it stands for, and that value encoded back to the same bytes, frame by frame, so that the
//! cache state a sequence builds up is checked too.

mod common;

use bytes::{Bytes, BytesMut};
use common::{hex, settings};
use hawser_openwire::*;

/// Decodes `frames` in order from one buffer and encodes the expected commands in order with
/// one encoder, comparing both ways.
fn check(settings: WireSettings, frames: &[(&str, Command)]) {
    let mut wire = BytesMut::new();
    for (dump, _) in frames {
        wire.extend_from_slice(&hex(dump));
    }
    let mut decoder = Decoder::new(settings);
    let mut encoder = Encoder::new(settings);
    for (i, (dump, expected)) in frames.iter().enumerate() {
        let decoded = decoder
            .decode(&mut wire)
            .unwrap_or_else(|e| panic!("frame {i}: {e}"));
        assert_eq!(decoded.as_ref(), Some(expected), "frame {i} decoded");
        let mut out = BytesMut::new();
        encoder.encode(expected, &mut out).unwrap();
        assert_eq!(out[..], hex(dump)[..], "frame {i} encoded");
    }
    assert!(wire.is_empty(), "bytes left over");
}

fn tight(cache: bool) -> WireSettings {
    settings(true, cache, true)
}

fn loose(cache: bool) -> WireSettings {
    settings(false, cache, true)
}

/// What a connection uses for its first frame.
fn initial() -> WireSettings {
    WireSettings::initial(1 << 30)
}

const CLIENT_WIRE_FORMAT: &str = "
00 00 01 64 01 41 63 74 69 76 65 4d 51 00 00 00 0c 01 00 00 01 52 00 00 00 0e 00 11 53 74 61 63
6b 54 72 61 63 65 45 6e 61 62 6c 65 64 01 01 00 0f 50 6c 61 74 66 6f 72 6d 44 65 74 61 69 6c 73
09 00 04 4a 61 76 61 00 0c 43 61 63 68 65 45 6e 61 62 6c 65 64 01 01 00 04 48 6f 73 74 09 00 09
6c 6f 63 61 6c 68 6f 73 74 00 11 54 63 70 4e 6f 44 65 6c 61 79 45 6e 61 62 6c 65 64 01 01 00 12
53 69 7a 65 50 72 65 66 69 78 44 69 73 61 62 6c 65 64 01 00 00 09 43 61 63 68 65 53 69 7a 65 05
00 00 04 00 00 0c 50 72 6f 76 69 64 65 72 4e 61 6d 65 09 00 08 41 63 74 69 76 65 4d 51 00 14 54
69 67 68 74 45 6e 63 6f 64 69 6e 67 45 6e 61 62 6c 65 64 01 01 00 0c 4d 61 78 46 72 61 6d 65 53
69 7a 65 06 7f ff ff ff ff ff ff ff 00 15 4d 61 78 49 6e 61 63 74 69 76 69 74 79 44 75 72 61 74
69 6f 6e 06 00 00 00 00 00 00 75 30 00 20 4d 61 78 49 6e 61 63 74 69 76 69 74 79 44 75 72 61 74
69 6f 6e 49 6e 69 74 61 6c 44 65 6c 61 79 06 00 00 00 00 00 00 27 10 00 13 4d 61 78 46 72 61 6d
65 53 69 7a 65 45 6e 61 62 6c 65 64 01 01 00 0f 50 72 6f 76 69 64 65 72 56 65 72 73 69 6f 6e 09
00 06 35 2e 31 37 2e 32";

const WIRE_FORMAT_WITHOUT_HOST: &str = "
00 00 01 52 01 41 63 74 69 76 65 4d 51 00 00 00 0c 01 00 00 01 40 00 00 00 0d 00 11 53 74 61 63
6b 54 72 61 63 65 45 6e 61 62 6c 65 64 01 01 00 0f 50 6c 61 74 66 6f 72 6d 44 65 74 61 69 6c 73
09 00 04 4a 61 76 61 00 0c 43 61 63 68 65 45 6e 61 62 6c 65 64 01 01 00 11 54 63 70 4e 6f 44 65
6c 61 79 45 6e 61 62 6c 65 64 01 01 00 12 53 69 7a 65 50 72 65 66 69 78 44 69 73 61 62 6c 65 64
01 00 00 09 43 61 63 68 65 53 69 7a 65 05 00 00 04 00 00 0c 50 72 6f 76 69 64 65 72 4e 61 6d 65
09 00 08 41 63 74 69 76 65 4d 51 00 14 54 69 67 68 74 45 6e 63 6f 64 69 6e 67 45 6e 61 62 6c 65
64 01 01 00 0c 4d 61 78 46 72 61 6d 65 53 69 7a 65 06 7f ff ff ff ff ff ff ff 00 15 4d 61 78 49
6e 61 63 74 69 76 69 74 79 44 75 72 61 74 69 6f 6e 06 00 00 00 00 00 00 75 30 00 20 4d 61 78 49
6e 61 63 74 69 76 69 74 79 44 75 72 61 74 69 6f 6e 49 6e 69 74 61 6c 44 65 6c 61 79 06 00 00 00
00 00 00 27 10 00 13 4d 61 78 46 72 61 6d 65 53 69 7a 65 45 6e 61 62 6c 65 64 01 01 00 0f 50 72
6f 76 69 64 65 72 56 65 72 73 69 6f 6e 09 00 06 35 2e 31 37 2e 32";

/// The 5.17.2 client's options, as its factory builds them.
fn client_options(host: Option<&str>) -> WireFormatOptions {
    WireFormatOptions {
        host: host.map(str::to_owned),
        provider_name: Some("ActiveMQ".into()),
        provider_version: Some("5.17.2".into()),
        platform_details: Some("Java".into()),
        ..WireFormatOptions::default()
    }
}

#[test]
fn s9_1_client_wire_format_info() {
    let info = client_options(Some("localhost")).to_info();
    check(
        initial(),
        &[(CLIENT_WIRE_FORMAT, Command::WireFormatInfo(info.clone()))],
    );
    assert_eq!(info.options(), Ok(client_options(Some("localhost"))));
}

#[test]
fn s9_2_wire_format_info_without_host() {
    let info = client_options(None).to_info();
    check(
        initial(),
        &[(WIRE_FORMAT_WITHOUT_HOST, Command::WireFormatInfo(info))],
    );
}

fn keep_alive(command_id: i32, response_required: bool) -> Command {
    Command::KeepAliveInfo(KeepAliveInfo {
        command_id,
        response_required,
    })
}

#[test]
fn s9_3_keep_alive() {
    check(
        tight(false),
        &[
            ("00 00 00 07 0a 01 00 00 00 00 00", keep_alive(0, false)),
            ("00 00 00 07 0a 01 01 00 00 00 01", keep_alive(1, true)),
        ],
    );
    check(
        loose(false),
        &[("00 00 00 06 0a 00 00 00 00 00", keep_alive(0, false))],
    );
}

#[test]
fn s9_3_null_command_is_skipped() {
    for settings in [tight(false), loose(true)] {
        let mut wire = BytesMut::from(&hex("00 00 00 01 00 00 00 00 01 00")[..]);
        assert_eq!(Decoder::new(settings).decode(&mut wire), Ok(None));
        assert!(wire.is_empty());
    }
}

#[test]
fn s9_4_response() {
    let response = Command::Response(Response {
        correlation_id: 2,
        ..Response::default()
    });
    check(
        tight(false),
        &[("00 00 00 0b 1e 01 00 00 00 00 00 00 00 00 02", response)],
    );
}

fn connection_info() -> Command {
    Command::ConnectionInfo(ConnectionInfo {
        command_id: 1,
        response_required: true,
        connection_id: Some(ConnectionId::new("ID:h-1")),
        client_id: Some("c1".into()),
        client_master: true,
        ..ConnectionInfo::default()
    })
}

fn session_info() -> Command {
    Command::SessionInfo(SessionInfo {
        command_id: 2,
        response_required: true,
        session_id: Some(SessionId {
            connection_id: "ID:h-1".into(),
            value: 1,
        }),
    })
}

#[test]
fn s9_5_connection_info_tight() {
    check(
        tight(false),
        &[(
            "00 00 00 15 03 02 3f 08 00 00 00 01 78 00 06 49 44 3a 68 2d 31 00 02 63 31",
            connection_info(),
        )],
    );
    check(
        tight(true),
        &[
            (
                "00 00 00 17 03 02 7f 10 00 00 00 01 00 00 78 00 06 49 44 3a 68 2d 31 00 02 63 31",
                connection_info(),
            ),
            (
                "00 00 00 0e 03 02 0d 02 00 00 00 01 00 00 00 02 63 31",
                connection_info(),
            ),
            (
                "00 00 00 14 04 01 5f 00 00 00 02 00 01 79 00 06 49 44 3a 68 2d 31 00 01",
                session_info(),
            ),
        ],
    );
}

#[test]
fn s9_5_connection_info_loose() {
    check(
        loose(false),
        &[(
            "00 00 00 1f 03 00 00 00 01 01 01 78 01 00 06 49 44 3a 68 2d 31 01 00 02 63 31
             00 00 00 00 00 01 00 00 00",
            connection_info(),
        )],
    );
    // The cached forms, spelled out from the note's description: "new, index 0" then the
    // object; "not new, index 0".
    check(
        loose(true),
        &[
            (
                "00 00 00 22 03 00 00 00 01 01 01 00 00 01 78 01 00 06 49 44 3a 68 2d 31
                 01 00 02 63 31 00 00 00 00 00 01 00 00 00",
                connection_info(),
            ),
            (
                "00 00 00 17 03 00 00 00 01 01 00 00 00 01 00 02 63 31 00 00 00 00 00 01 00 00 00",
                connection_info(),
            ),
        ],
    );
}

/// The text message of sections 9.6 and 9.7.
fn text_message(persistent: bool, priority: i8, timestamp: i64, properties: bool) -> Message {
    let producer = ProducerId {
        connection_id: "ID:h-1".into(),
        value: 1,
        session_id: 1,
    };
    Message {
        kind: MessageKind::Text,
        producer_id: Some(producer.clone()),
        destination: Some(Destination::queue("q")),
        message_id: Some(MessageId {
            producer_id: Some(producer),
            producer_sequence_id: 1,
            ..MessageId::default()
        }),
        persistent,
        priority,
        timestamp,
        content: Some(Bytes::from_static(b"\0\0\0\x02hi")),
        properties: properties.then(|| {
            [("k".to_owned(), PrimitiveValue::from("v"))]
                .into_iter()
                .collect()
        }),
        ..Message::default()
    }
}

fn dispatch(message: Message) -> Command {
    Command::MessageDispatch(MessageDispatch {
        consumer_id: Some(ConsumerId {
            connection_id: "ID:h-1".into(),
            session_id: 1,
            value: 1,
        }),
        destination: Some(Destination::queue("q")),
        message: Some(Box::new(message)),
        ..MessageDispatch::default()
    })
}

#[test]
fn s9_6_message_dispatch_without_cache() {
    let command = dispatch(text_message(true, 4, 0x01_0203_0405, true));
    check(
        tight(false),
        &[(
            "00 00 00 74 15 09 ae cf f5 74 15 c4 06 00 00 00 00 00 00 7a 00 06 49 44 3a 68 2d 31 00 01 00 01
             64 00 01 71 1c 00 00 00 00 7b 00 06 49 44 3a 68 2d 31 00 01 00 01 64 00 01 71 6e 7b 00 06 49 44
             3a 68 2d 31 00 01 00 01 00 01 00 00 00 00 04 00 00 00 01 02 03 04 05 00 00 00 06 00 00 00 02 68
             69 00 00 00 0b 00 00 00 01 00 01 6b 09 00 01 76 00 00 00 00 00 00 00 00",
            command.clone(),
        )],
    );
    check(
        loose(false),
        &[(
            "00 00 00 de 15 00 00 00 00 00 01 7a 01 00 06 49 44 3a 68 2d 31 00 00 00 00 00 00 00 01 00 00 00
             00 00 00 00 01 01 64 01 00 01 71 01 1c 00 00 00 00 00 01 7b 01 00 06 49 44 3a 68 2d 31 00 00 00
             00 00 00 00 01 00 00 00 00 00 00 00 01 01 64 01 00 01 71 00 00 01 6e 00 01 7b 01 00 06 49 44 3a
             68 2d 31 00 00 00 00 00 00 00 01 00 00 00 00 00 00 00 01 00 00 00 00 00 00 00 01 00 00 00 00 00
             00 00 00 00 00 00 00 00 00 00 01 00 00 00 00 00 00 00 00 04 00 00 00 00 01 02 03 04 05 00 01 00
             00 00 06 00 00 00 02 68 69 01 00 00 00 0b 00 00 00 01 00 01 6b 09 00 01 76 00 00 00 00 00 00 00
             00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00
             00 00",
            command,
        )],
    );
}

fn broker_info() -> Command {
    Command::BrokerInfo(BrokerInfo {
        broker_id: Some(BrokerId::new("ID:b-1")),
        broker_url: Some("tcp://h:61616".into()),
        broker_name: Some("hawser".into()),
        ..BrokerInfo::default()
    })
}

/// Section 9.8's tight dump lacks one byte: its size prefix (43) and its BooleanStream
/// header (3 bytes, for 19 bits) say the third BooleanStream byte (`00`) comes before the
/// command id's four zero bytes, but the note shows six zeros there, not seven.
const BROKER_INFO_TIGHT_CACHED: &str =
    "00 00 00 2b 02 03 7e 03 00 00 00 00 00 00 00 7c 00 06 49 44 3a 62 2d 31
     00 0d 74 63 70 3a 2f 2f 68 3a 36 31 36 31 36 00 06 68 61 77 73 65 72";

#[test]
fn s9_7_message_dispatch_with_cache() {
    let command = dispatch(text_message(false, 0, 0, false));
    check(
        tight(true),
        &[
            (BROKER_INFO_TIGHT_CACHED, broker_info()),
            (
                "00 00 00 5d 15 08 5e 3f af 12 01 20 00 00 00 00 00 00 00 01 7a 00 06 49 44 3a 68 2d 31 00 01 00
                 01 00 02 64 00 01 71 1c 00 00 00 00 00 03 7b 00 06 49 44 3a 68 2d 31 00 01 00 01 00 02 00 04 00
                 04 6e 00 03 00 01 00 04 00 00 00 00 00 00 00 00 06 00 00 00 02 68 69 00 04 00 00 00 00 00 00 00
                 00",
                command.clone(),
            ),
            (
                "00 00 00 3d 15 06 08 44 00 08 00 00 00 00 00 00 00 01 00 02 1c 00 00 00 00 00 03 00 02 00 04 00
                 04 6e 00 03 00 01 00 04 00 00 00 00 00 00 00 00 06 00 00 00 02 68 69 00 04 00 00 00 00 00 00 00
                 00",
                command,
            ),
        ],
    );
}

#[test]
fn s9_8_broker_info() {
    check(tight(true), &[(BROKER_INFO_TIGHT_CACHED, broker_info())]);
    check(
        loose(false),
        &[(
            "00 00 00 3a 02 00 00 00 00 00 01 7c 01 00 06 49 44 3a 62 2d 31 01 00 0d 74 63 70 3a 2f 2f 68 3a
             36 31 36 31 36 00 01 00 06 68 61 77 73 65 72 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00",
            broker_info(),
        )],
    );
}

#[test]
fn s9_9_exception_response() {
    let boom = ExceptionInfo::new("java.io.IOException", "boom");
    let response = |exception: ExceptionInfo| {
        Command::ExceptionResponse(ExceptionResponse {
            correlation_id: 3,
            exception: Some(exception),
            ..ExceptionResponse::default()
        })
    };
    check(
        tight(false),
        &[(
            "00 00 00 26 1f 01 3e 00 00 00 00 00 00 00 03 00 13 6a 61 76 61 2e 69 6f 2e 49 4f 45 78 63 65
             70 74 69 6f 6e 00 04 62 6f 6f 6d",
            response(boom.clone()),
        )],
    );
    let with_frame = ExceptionInfo {
        stack_trace: vec![StackFrame {
            class_name: Some("C".into()),
            method_name: Some("m".into()),
            file_name: Some("F.java".into()),
            line_number: 7,
        }],
        ..boom
    };
    check(
        WireSettings {
            stack_trace_enabled: true,
            ..tight(false)
        },
        &[(
            "00 00 00 3b 1f 02 fe 0f 00 00 00 00 00 00 00 03 00 13 6a 61 76 61 2e 69 6f 2e 49 4f 45 78 63 65
             70 74 69 6f 6e 00 04 62 6f 6f 6d 00 01 00 01 43 00 01 6d 00 06 46 2e 6a 61 76 61 00 00 00 07",
            response(with_frame),
        )],
    );
}
