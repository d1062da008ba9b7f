//! Frames written by ActiveMQ's own marshaller (activemq-client 5.17.2 and its legacy
//! marshallers for versions 2 to 8), committed under `tests/fixtures/java` by
//! `tests/java/WriteFixtures.java`: every version from 1 to 12, every mode at version 12.
//!
//! Each stream decodes to the frame types the manifest lists; every command re-encodes to
//! exactly the bytes Java wrote (cache indexes included); and at version 12 the decoded values
//! are the ones the Java program set.

mod common;

use std::path::PathBuf;

use bytes::{Bytes, BytesMut};
use hawser_openwire::*;

const CONNECTION: &str = "ID:fixture-61616-1700000000000-1:1";

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/java")
}

/// Settings from a fixture's name, `v12-tight-cache-prefix-stack.bin`.
fn settings_of(name: &str) -> WireSettings {
    let parts: Vec<&str> = name.trim_end_matches(".bin").split('-').collect();
    WireSettings {
        version: parts[0][1..].parse().unwrap(),
        tight_encoding: parts[1] == "tight",
        cache_enabled: parts[2] == "cache",
        // What Java's `setCacheEnabled` allocates.
        cache_size: DEFAULT_CACHE_SIZE,
        size_prefix_disabled: parts[3] == "noprefix",
        stack_trace_enabled: parts[4] == "stack",
        max_frame_size: DEFAULT_MAX_FRAME_SIZE,
    }
}

/// Each fixture: its name, settings, frame types (the manifest's, null frames left out) and
/// bytes.
fn streams() -> Vec<(String, WireSettings, Vec<u8>, Vec<u8>)> {
    let manifest = std::fs::read_to_string(fixtures().join("manifest.txt")).unwrap();
    manifest
        .lines()
        .map(|line| {
            let (name, types) = line.split_once(' ').unwrap();
            let types = types
                .split(',')
                .map(|t| t.parse::<u8>().unwrap())
                .filter(|&t| t != 0)
                .collect();
            let bytes = std::fs::read(fixtures().join(name)).unwrap();
            (name.to_owned(), settings_of(name), types, bytes)
        })
        .collect()
}

/// The commands of a stream, each with the bytes it was decoded from.
fn decode_stream(settings: WireSettings, bytes: &[u8]) -> Vec<(Command, Bytes)> {
    let mut decoder = Decoder::new(settings);
    let mut buf = BytesMut::from(bytes);
    let mut frames = Vec::new();
    loop {
        let before = buf.clone();
        match decoder.decode(&mut buf) {
            Ok(Some(command)) => {
                let used = before.len() - buf.len();
                frames.push((command, before.freeze().slice(..used)));
            }
            Ok(None) => break,
            Err(e) => panic!("frame {}: {e}", frames.len()),
        }
    }
    assert!(buf.is_empty(), "{} bytes left", buf.len());
    frames
}

#[test]
fn every_java_stream_decodes_and_reencodes_to_the_same_bytes() {
    let streams = streams();
    assert_eq!(streams.len(), 16 + 2 * 11);
    for (name, settings, types, bytes) in streams {
        let frames = decode_stream(settings, &bytes);
        let decoded: Vec<u8> = frames.iter().map(|(c, _)| c.type_id()).collect();
        assert_eq!(decoded, types, "{name}");
        let mut encoder = Encoder::new(settings);
        for (i, (command, original)) in frames.iter().enumerate() {
            let mut out = BytesMut::new();
            encoder.encode(command, &mut out).unwrap();
            // The stream's null frame (the last) was skipped with the frame before it.
            let original = if i + 1 == frames.len() && original.len() > out.len() {
                original.slice(..out.len())
            } else {
                original.clone()
            };
            assert_eq!(out[..], original[..], "{name}, frame {i} ({command:?})");
        }
    }
}

fn connection_id() -> ConnectionId {
    ConnectionId::new(CONNECTION)
}

fn producer_id() -> ProducerId {
    ProducerId {
        connection_id: CONNECTION.into(),
        value: 2,
        session_id: 1,
    }
}

fn consumer_id() -> ConsumerId {
    ConsumerId {
        connection_id: CONNECTION.into(),
        session_id: 1,
        value: 3,
    }
}

fn message_id(sequence: i64) -> MessageId {
    MessageId {
        producer_id: Some(producer_id()),
        producer_sequence_id: sequence,
        ..MessageId::default()
    }
}

fn xid(n: u8) -> TransactionId {
    TransactionId::Xa(XaTransactionId {
        format_id: 0x1234,
        global_transaction_id: Bytes::from(vec![1, 2, 3, n]),
        branch_qualifier: Bytes::from(vec![9, n]),
    })
}

fn local_transaction() -> TransactionId {
    TransactionId::Local(LocalTransactionId {
        value: 9,
        connection_id: Some(connection_id()),
    })
}

/// Java's exception of the fixtures, as it reads with or without stack traces.
fn failure(stack_trace: bool) -> ExceptionInfo {
    let frame = |class: &str, method: &str, file: Option<&str>, line| StackFrame {
        class_name: Some(class.into()),
        method_name: Some(method.into()),
        file_name: file.map(Into::into),
        line_number: line,
    };
    let mut error = ExceptionInfo::new("java.io.IOException", "boom");
    if stack_trace {
        error.stack_trace = vec![
            frame(
                "com.example.Listener",
                "onMessage",
                Some("Listener.java"),
                42,
            ),
            frame(
                "org.apache.activemq.ActiveMQMessageConsumer",
                "dispatch",
                Some("ActiveMQMessageConsumer.java"),
                1400,
            ),
        ];
        let mut cause = ExceptionInfo::new("java.lang.IllegalStateException", "inner é");
        cause.stack_trace = vec![frame("com.example.Store", "write", None, -2)];
        error.cause = Some(Box::new(cause));
    }
    error
}

/// Properties sorted by key: Java's HashMap order is whatever it is.
fn sorted(map: &PrimitiveMap) -> Vec<(String, PrimitiveValue)> {
    let mut entries: Vec<_> = map.iter().map(|(k, v)| (k.to_owned(), v.clone())).collect();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    entries
}

/// The text message's body as Java stores it: an i32 length and modified UTF-8.
fn text_body(text: &str) -> Bytes {
    let mut utf = Vec::new();
    for c in text.chars() {
        match c {
            '\0' => utf.extend_from_slice(&[0xc0, 0x80]),
            c if u32::from(c) > 0xffff => {
                let mut units = [0; 2];
                for &u in c.encode_utf16(&mut units).iter() {
                    utf.extend_from_slice(&[
                        0xe0 | (u >> 12) as u8,
                        0x80 | ((u >> 6) & 0x3f) as u8,
                        0x80 | (u & 0x3f) as u8,
                    ]);
                }
            }
            c => utf.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
        }
    }
    let mut body = (utf.len() as u32).to_be_bytes().to_vec();
    body.extend_from_slice(&utf);
    Bytes::from(body)
}

fn text_message(big_string: bool) -> Message {
    use PrimitiveValue as V;
    let mut properties = vec![
        ("bool", V::Boolean(true)),
        ("byte", V::Byte(-3)),
        ("short", V::Short(-300)),
        ("int", V::Int(70_000)),
        ("long", V::Long(-5_000_000_000)),
        ("float", V::Float(1.5)),
        ("double", V::Double(-2.25)),
        ("string", V::from("vé")),
        ("char", V::Char(u16::from(b'c'))),
        ("bytes", V::Bytes(Bytes::from_static(&[0, 1, 255]))),
        (
            "map",
            V::Map(PrimitiveMap::from_iter([("n".to_owned(), V::Int(1))])),
        ),
        ("list", V::List(vec![V::from("a"), V::Long(2)])),
        ("null", V::Null),
    ];
    let big = "x".repeat(8191);
    if big_string {
        properties.push(("big", V::String(big)));
    }
    Message {
        kind: MessageKind::Text,
        producer_id: Some(producer_id()),
        destination: Some(Destination::queue("orders")),
        message_id: Some(message_id(1)),
        group_id: Some("group-a".into()),
        group_sequence: 3,
        correlation_id: Some("corr-1".into()),
        persistent: true,
        expiration: 1_700_000_060_123,
        priority: 7,
        reply_to: Some(Destination {
            kind: DestinationKind::TempQueue,
            physical_name: format!("{CONNECTION}:1"),
        }),
        timestamp: 1_700_000_000_123,
        jms_type: Some("order".into()),
        content: Some(text_body("héllo \0 😀")),
        properties: Some(PrimitiveMap::from_iter(
            properties.into_iter().map(|(k, v)| (k.to_owned(), v)),
        )),
        ..Message::default()
    }
}

/// Compares a decoded message with the expected one, properties in any order.
fn assert_message(decoded: &Message, expected: &Message, what: &str) {
    let strip = |m: &Message| Message {
        properties: None,
        ..m.clone()
    };
    assert_eq!(strip(decoded), strip(expected), "{what}");
    assert_eq!(
        decoded.properties.as_ref().map(sorted),
        expected.properties.as_ref().map(sorted),
        "{what} properties"
    );
}

#[test]
fn version_12_values_are_the_ones_java_set() {
    for (name, settings, _, bytes) in streams() {
        if settings.version != 12 {
            continue;
        }
        let st = settings.stack_trace_enabled;
        let commands: Vec<Command> = decode_stream(settings, &bytes)
            .into_iter()
            .map(|(c, _)| c)
            .collect();
        let at = |i: usize| &commands[i];

        let Command::WireFormatInfo(info) = at(0) else {
            panic!("{name}: {:?}", at(0))
        };
        let options = info.options().unwrap();
        assert_eq!(
            options,
            WireFormatOptions {
                provider_name: Some("ActiveMQ".into()),
                provider_version: Some("5.17.2".into()),
                platform_details: Some("Java".into()),
                ..WireFormatOptions::default()
            },
            "{name}"
        );

        let expected_broker = BrokerInfo {
            broker_id: Some(BrokerId::new("ID:broker-1")),
            broker_url: Some("tcp://broker:61616".into()),
            peer_broker_infos: Some(vec![BrokerInfo {
                broker_id: Some(BrokerId::new("ID:peer-1")),
                broker_url: Some("tcp://peer:61616".into()),
                ..BrokerInfo::default()
            }]),
            broker_name: Some("hawser".into()),
            fault_tolerant_configuration: true,
            connection_id: 77,
            network_properties: Some("a=b".into()),
            ..BrokerInfo::default()
        };
        assert_eq!(at(1), &Command::BrokerInfo(expected_broker), "{name}");

        let expected = [
            Command::ConnectionInfo(ConnectionInfo {
                command_id: 1,
                response_required: true,
                connection_id: Some(connection_id()),
                client_id: Some("client-1".into()),
                password: Some("secret".into()),
                user_name: Some("user".into()),
                broker_path: Some(vec![BrokerId::new("ID:broker-1")]),
                client_master: true,
                fault_tolerant: true,
                client_ip: Some("tcp://10.0.0.1:5000".into()),
                ..ConnectionInfo::default()
            }),
            Command::SessionInfo(SessionInfo {
                command_id: 2,
                response_required: true,
                session_id: Some(SessionId {
                    connection_id: CONNECTION.into(),
                    value: 1,
                }),
            }),
            Command::ProducerInfo(ProducerInfo {
                command_id: 3,
                response_required: true,
                producer_id: Some(producer_id()),
                destination: Some(Destination::queue("orders")),
                dispatch_async: true,
                window_size: 65536,
                ..ProducerInfo::default()
            }),
            Command::ConsumerInfo(consumer_info()),
            Command::DestinationInfo(DestinationInfo {
                command_id: 5,
                response_required: true,
                connection_id: Some(connection_id()),
                destination: Some(Destination {
                    kind: DestinationKind::TempQueue,
                    physical_name: format!("{CONNECTION}:1"),
                }),
                operation: DestinationOperation::Add,
                ..DestinationInfo::default()
            }),
            Command::TransactionInfo(TransactionInfo {
                command_id: 6,
                connection_id: Some(connection_id()),
                transaction_id: Some(local_transaction()),
                kind: TransactionType::Begin,
                ..TransactionInfo::default()
            }),
        ];
        for (i, expected) in expected.iter().enumerate() {
            assert_eq!(at(2 + i), expected, "{name}, command {}", 2 + i);
        }

        let Command::Message(text) = at(8) else {
            panic!("{name}: {:?}", at(8))
        };
        assert_message(text, &text_message(true), &name);

        let Command::Message(bytes_message) = at(9) else {
            panic!()
        };
        assert_eq!(bytes_message.kind, MessageKind::Bytes);
        assert_eq!(bytes_message.transaction_id, Some(local_transaction()));
        assert_eq!(
            bytes_message.content.as_deref(),
            Some(&[1, 2, 3, 0xff, 0xff, 0xff, 0xff][..])
        );

        let kinds: Vec<MessageKind> = commands[10..14]
            .iter()
            .map(|c| match c {
                Command::Message(m) => m.kind.clone(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            kinds,
            [
                MessageKind::Map,
                MessageKind::Stream,
                MessageKind::Object,
                MessageKind::Plain
            ]
        );
        let Command::Message(map_message) = at(10) else {
            panic!()
        };
        let body = PrimitiveMap::decode(map_message.content.as_deref().unwrap()).unwrap();
        assert_eq!(body.get("k"), Some(&PrimitiveValue::from("v")));
        assert_eq!(body.get("n"), Some(&PrimitiveValue::Int(5)));

        let Command::Message(advisory) = at(13) else {
            panic!()
        };
        assert_eq!(
            advisory.data_structure,
            Some(DataStructure::Command(Box::new(Command::ConsumerInfo(
                consumer_info()
            ))))
        );
        assert_eq!(advisory.target_consumer_id, Some(consumer_id()));
        assert_eq!(
            advisory.original_destination,
            Some(Destination::queue("orders"))
        );
        assert_eq!(advisory.cluster, Some(vec![BrokerId::new("ID:peer-1")]));
        assert_eq!(
            (
                advisory.arrival,
                advisory.broker_in_time,
                advisory.broker_out_time
            ),
            (5, 6, 7)
        );
        assert!(advisory.droppable && advisory.jmsx_group_first_for_consumer);
        assert_eq!(advisory.redelivery_counter, 2);

        let Command::Message(blob) = at(14) else {
            panic!()
        };
        assert_eq!(
            blob.kind,
            MessageKind::Blob(BlobInfo {
                remote_blob_url: Some("http://blobs/1".into()),
                mime_type: Some("application/pdf".into()),
                deleted_by_broker: false,
            })
        );

        let Command::MessageDispatch(dispatch) = at(15) else {
            panic!()
        };
        assert_eq!(dispatch.consumer_id, Some(consumer_id()));
        assert_eq!(dispatch.redelivery_counter, 1);
        assert_message(
            dispatch.message.as_ref().unwrap(),
            &text_message(false),
            &name,
        );
        assert_eq!(
            at(16),
            &Command::MessageDispatch(MessageDispatch {
                consumer_id: Some(consumer_id()),
                ..MessageDispatch::default()
            })
        );

        let expected = [
            Command::MessageAck(MessageAck {
                command_id: 8,
                destination: Some(Destination::queue("orders")),
                transaction_id: Some(local_transaction()),
                consumer_id: Some(consumer_id()),
                ack_type: AckType::Standard,
                first_message_id: Some(message_id(1)),
                last_message_id: Some(message_id(4)),
                message_count: 4,
                ..MessageAck::default()
            }),
            Command::MessageAck(MessageAck {
                destination: Some(Destination::queue("orders")),
                consumer_id: Some(consumer_id()),
                ack_type: AckType::Poison,
                last_message_id: Some(message_id(5)),
                message_count: 1,
                poison_cause: Some(failure(st)),
                ..MessageAck::default()
            }),
            Command::MessagePull(MessagePull {
                consumer_id: Some(consumer_id()),
                destination: Some(Destination::queue("orders")),
                timeout: -1,
                correlation_id: Some("pull-1".into()),
                message_id: Some(message_id(9)),
                ..MessagePull::default()
            }),
            Command::ProducerAck(ProducerAck {
                producer_id: Some(producer_id()),
                size: 4096,
                ..ProducerAck::default()
            }),
            Command::TransactionInfo(TransactionInfo {
                command_id: 9,
                response_required: true,
                connection_id: Some(connection_id()),
                transaction_id: Some(xid(1)),
                kind: TransactionType::Prepare,
            }),
            Command::TransactionInfo(TransactionInfo {
                command_id: 10,
                response_required: true,
                connection_id: Some(connection_id()),
                transaction_id: None,
                kind: TransactionType::Recover,
            }),
            Command::RemoveInfo(RemoveInfo {
                command_id: 11,
                object_id: Some(DataStructure::ConsumerId(consumer_id())),
                last_delivered_sequence_id: -2,
                ..RemoveInfo::default()
            }),
            Command::RemoveInfo(RemoveInfo {
                object_id: Some(DataStructure::ConnectionId(connection_id())),
                // Java's default: "unknown".
                last_delivered_sequence_id: -2,
                ..RemoveInfo::default()
            }),
            Command::RemoveSubscriptionInfo(RemoveSubscriptionInfo {
                connection_id: Some(connection_id()),
                subscription_name: Some("durable-sub".into()),
                client_id: Some("client-1".into()),
                ..RemoveSubscriptionInfo::default()
            }),
            Command::Response(Response {
                correlation_id: 1,
                ..Response::default()
            }),
            Command::ExceptionResponse(ExceptionResponse {
                correlation_id: 4,
                exception: Some(failure(st)),
                ..ExceptionResponse::default()
            }),
            Command::DataResponse(DataResponse {
                correlation_id: 5,
                data: Some(DataStructure::TransactionId(xid(2))),
                ..DataResponse::default()
            }),
            Command::DataArrayResponse(DataArrayResponse {
                correlation_id: 10,
                data: Some(vec![
                    DataStructure::TransactionId(xid(1)),
                    DataStructure::TransactionId(xid(2)),
                ]),
                ..DataArrayResponse::default()
            }),
            Command::IntegerResponse(IntegerResponse {
                correlation_id: 9,
                result: 3,
                ..IntegerResponse::default()
            }),
            Command::KeepAliveInfo(KeepAliveInfo {
                command_id: 0,
                response_required: true,
            }),
            Command::FlushCommand(FlushCommand::default()),
            Command::ControlCommand(ControlCommand {
                command: Some("shutdown".into()),
                ..ControlCommand::default()
            }),
            Command::ConnectionControl(ConnectionControl {
                fault_tolerant: true,
                connected_brokers: Some("tcp://a:61616,tcp://b:61616".into()),
                reconnect_to: Some("tcp://b:61616".into()),
                rebalance_connection: true,
                token: Some(Bytes::from_static(&[7, 7])),
                ..ConnectionControl::default()
            }),
            Command::ConsumerControl(ConsumerControl {
                destination: Some(Destination::queue("orders")),
                consumer_id: Some(consumer_id()),
                prefetch: 10,
                start: true,
                ..ConsumerControl::default()
            }),
            Command::ConnectionError(ConnectionError {
                exception: Some(failure(st)),
                connection_id: Some(connection_id()),
                ..ConnectionError::default()
            }),
            Command::ShutdownInfo(ShutdownInfo::default()),
        ];
        for (i, expected) in expected.iter().enumerate() {
            assert_eq!(at(17 + i), expected, "{name}, command {}", 17 + i);
        }
        assert_eq!(commands.len(), 17 + expected.len());
    }
}

fn consumer_info() -> ConsumerInfo {
    ConsumerInfo {
        command_id: 4,
        response_required: true,
        consumer_id: Some(consumer_id()),
        destination: Some(Destination::topic("prices.>")),
        prefetch_size: 1000,
        maximum_pending_message_limit: -1,
        selector: Some("price > 10 AND region = 'EU'".into()),
        client_id: Some("client-1".into()),
        subscription_name: Some("durable-sub".into()),
        no_local: true,
        exclusive: true,
        priority: -5,
        network_consumer_path: Some(vec![consumer_id()]),
        ..ConsumerInfo::default()
    }
}
