//! Proptest strategies for every command and the values inside them.
//!
//! Values reach every wire form: longs of each tight size (negative ones included), strings
//! that are empty, ASCII, or hold NUL, Latin-1, BMP and supplementary characters, nulls in
//! every optional field, and ids drawn from small pools so that the same id recurs across
//! commands and the marshal cache gets hits.

#![allow(dead_code)]

use bytes::Bytes;
use hawser_openwire::*;
use proptest::collection::vec;
use proptest::option::of;
use proptest::prelude::*;

/// A `long` in each of tight encoding's four forms.
pub fn long() -> BoxedStrategy<i64> {
    prop_oneof![
        Just(0),
        1..=0xffffi64,
        0x1_0000..=0xffff_ffffi64,
        any::<i64>(),
        Just(-1),
    ]
    .boxed()
}

/// Strings in every encoding form: ASCII, or with NUL, Latin-1, BMP or supplementary chars.
pub fn text() -> BoxedStrategy<String> {
    prop_oneof![
        3 => "[a-zA-Z0-9:._/ -]{0,12}",
        1 => vec(
            prop_oneof![
                Just('\0'),
                Just('é'),
                Just('€'),
                Just('😀'),
                any::<char>(),
                proptest::char::range('a', 'z'),
            ],
            0..8
        )
        .prop_map(String::from_iter),
    ]
    .boxed()
}

pub fn opt_text() -> BoxedStrategy<Option<String>> {
    of(text()).boxed()
}

pub fn bytes() -> BoxedStrategy<Bytes> {
    vec(any::<u8>(), 0..16).prop_map(Bytes::from).boxed()
}

/// Connection id texts from a small pool, so that ids repeat.
fn connection_text() -> BoxedStrategy<String> {
    prop_oneof![
        Just("ID:h-1".to_owned()),
        Just("ID:host-61616-1700000000000-1:1".to_owned()),
        text(),
    ]
    .boxed()
}

pub fn connection_id() -> BoxedStrategy<ConnectionId> {
    connection_text().prop_map(ConnectionId::new).boxed()
}

pub fn session_id() -> BoxedStrategy<SessionId> {
    (connection_text(), 0..3i64)
        .prop_map(|(connection_id, value)| SessionId {
            connection_id,
            value,
        })
        .boxed()
}

pub fn producer_id() -> BoxedStrategy<ProducerId> {
    (connection_text(), prop_oneof![0..3i64, long()], 0..3i64)
        .prop_map(|(connection_id, value, session_id)| ProducerId {
            connection_id,
            value,
            session_id,
        })
        .boxed()
}

pub fn consumer_id() -> BoxedStrategy<ConsumerId> {
    (connection_text(), 0..3i64, prop_oneof![0..3i64, long()])
        .prop_map(|(connection_id, session_id, value)| ConsumerId {
            connection_id,
            session_id,
            value,
        })
        .boxed()
}

pub fn broker_id() -> BoxedStrategy<BrokerId> {
    prop_oneof![Just("ID:b-1".to_owned()), text()]
        .prop_map(BrokerId::new)
        .boxed()
}

pub fn destination() -> BoxedStrategy<Destination> {
    (
        prop_oneof![
            Just(DestinationKind::Queue),
            Just(DestinationKind::Topic),
            Just(DestinationKind::TempQueue),
            Just(DestinationKind::TempTopic),
        ],
        prop_oneof![Just("q".to_owned()), Just("a.b.>".to_owned()), text()],
    )
        .prop_map(|(kind, physical_name)| Destination {
            kind,
            physical_name,
        })
        .boxed()
}

pub fn transaction_id() -> BoxedStrategy<TransactionId> {
    prop_oneof![
        (long(), of(connection_id())).prop_map(|(value, connection_id)| {
            TransactionId::Local(LocalTransactionId {
                value,
                connection_id,
            })
        }),
        (any::<i32>(), bytes(), bytes()).prop_map(|(format_id, global, branch)| {
            TransactionId::Xa(XaTransactionId {
                format_id,
                global_transaction_id: global,
                branch_qualifier: branch,
            })
        }),
    ]
    .boxed()
}

pub fn message_id() -> BoxedStrategy<MessageId> {
    (opt_text(), of(producer_id()), long(), long())
        .prop_map(
            |(text_view, producer_id, producer_sequence_id, broker_sequence_id)| MessageId {
                text_view,
                producer_id,
                producer_sequence_id,
                broker_sequence_id,
            },
        )
        .boxed()
}

pub fn broker_path() -> BoxedStrategy<Option<Vec<BrokerId>>> {
    of(vec(broker_id(), 0..3)).boxed()
}

/// An exception; with `stack_trace` false, without frames and cause (they are not sent then).
pub fn exception(stack_trace: bool) -> BoxedStrategy<ExceptionInfo> {
    let frame = (opt_text(), opt_text(), opt_text(), any::<i32>()).prop_map(
        |(class_name, method_name, file_name, line_number)| StackFrame {
            class_name,
            method_name,
            file_name,
            line_number,
        },
    );
    let leaf = (opt_text(), opt_text(), vec(frame, 0..3)).prop_map(
        move |(class_name, message, stack_trace_frames)| ExceptionInfo {
            class_name,
            message,
            stack_trace: if stack_trace {
                stack_trace_frames
            } else {
                Vec::new()
            },
            cause: None,
        },
    );
    leaf.prop_recursive(3, 4, 1, move |inner| {
        (inner.clone(), of(inner)).prop_map(move |(mut outer, cause)| {
            if stack_trace {
                outer.cause = cause.map(Box::new);
            }
            outer
        })
    })
    .boxed()
}

pub fn primitive_value() -> BoxedStrategy<PrimitiveValue> {
    use PrimitiveValue as V;
    let leaf = prop_oneof![
        Just(V::Null),
        any::<bool>().prop_map(V::Boolean),
        any::<i8>().prop_map(V::Byte),
        any::<u16>().prop_map(V::Char),
        any::<i16>().prop_map(V::Short),
        any::<i32>().prop_map(V::Int),
        any::<i64>().prop_map(V::Long),
        any::<f32>().prop_map(V::Float),
        any::<f64>().prop_map(V::Double),
        text().prop_map(V::String),
        bytes().prop_map(V::Bytes),
    ];
    leaf.prop_recursive(3, 12, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(V::List),
            vec((text(), inner), 0..4).prop_map(|entries| V::Map(PrimitiveMap::from_iter(entries))),
        ]
    })
    .boxed()
}

pub fn primitive_map() -> BoxedStrategy<PrimitiveMap> {
    vec((text(), primitive_value()), 0..5)
        .prop_map(PrimitiveMap::from_iter)
        .boxed()
}

/// A nested value of any type, without exceptions inside (see `commands`).
pub fn data_structure() -> BoxedStrategy<DataStructure> {
    prop_oneof![
        connection_id().prop_map(DataStructure::ConnectionId),
        session_id().prop_map(DataStructure::SessionId),
        producer_id().prop_map(DataStructure::ProducerId),
        consumer_id().prop_map(DataStructure::ConsumerId),
        broker_id().prop_map(DataStructure::BrokerId),
        message_id().prop_map(DataStructure::MessageId),
        transaction_id().prop_map(DataStructure::TransactionId),
        destination().prop_map(DataStructure::Destination),
        consumer_info().prop_map(|c| DataStructure::Command(Box::new(Command::ConsumerInfo(c)))),
        destination_info()
            .prop_map(|d| DataStructure::Command(Box::new(Command::DestinationInfo(d)))),
        remove_info().prop_map(|r| DataStructure::Command(Box::new(Command::RemoveInfo(r)))),
    ]
    .boxed()
}

/// Command id and response-required flag.
fn header() -> BoxedStrategy<(i32, bool)> {
    (prop_oneof![0..10i32, any::<i32>()], any::<bool>()).boxed()
}

pub fn wire_format_info() -> BoxedStrategy<WireFormatInfo> {
    (any::<i32>(), of(primitive_map()))
        .prop_map(|(version, properties)| WireFormatInfo {
            version,
            properties,
        })
        .boxed()
}

fn broker_info_leaf() -> BoxedStrategy<BrokerInfo> {
    (
        header(),
        of(broker_id()),
        opt_text(),
        opt_text(),
        any::<[bool; 5]>(),
        long(),
        opt_text(),
        opt_text(),
    )
        .prop_map(
            |((command_id, response_required), broker_id, url, name, flags, cid, upload, net)| {
                BrokerInfo {
                    command_id,
                    response_required,
                    broker_id,
                    broker_url: url,
                    peer_broker_infos: None,
                    broker_name: name,
                    slave_broker: flags[0],
                    master_broker: flags[1],
                    fault_tolerant_configuration: flags[2],
                    duplex_connection: flags[3],
                    network_connection: flags[4],
                    connection_id: cid,
                    broker_upload_url: upload,
                    network_properties: net,
                }
            },
        )
        .boxed()
}

pub fn broker_info() -> BoxedStrategy<BrokerInfo> {
    (broker_info_leaf(), of(vec(broker_info_leaf(), 0..3)))
        .prop_map(|(mut info, peers)| {
            info.peer_broker_infos = peers;
            info
        })
        .boxed()
}

pub fn connection_info() -> BoxedStrategy<ConnectionInfo> {
    (
        header(),
        of(connection_id()),
        opt_text(),
        opt_text(),
        opt_text(),
        broker_path(),
        any::<[bool; 5]>(),
        opt_text(),
    )
        .prop_map(
            |((command_id, response_required), connection_id, client, pw, user, path, f, ip)| {
                ConnectionInfo {
                    command_id,
                    response_required,
                    connection_id,
                    client_id: client,
                    password: pw,
                    user_name: user,
                    broker_path: path,
                    broker_master_connector: f[0],
                    manageable: f[1],
                    client_master: f[2],
                    fault_tolerant: f[3],
                    failover_reconnect: f[4],
                    client_ip: ip,
                }
            },
        )
        .boxed()
}

pub fn session_info() -> BoxedStrategy<SessionInfo> {
    (header(), of(session_id()))
        .prop_map(
            |((command_id, response_required), session_id)| SessionInfo {
                command_id,
                response_required,
                session_id,
            },
        )
        .boxed()
}

pub fn consumer_info() -> BoxedStrategy<ConsumerInfo> {
    (
        (
            header(),
            of(consumer_id()),
            of(destination()),
            any::<(i32, i32)>(),
            opt_text(),
            opt_text(),
            opt_text(),
        ),
        (
            any::<[bool; 8]>(),
            any::<i8>(),
            broker_path(),
            of(vec(consumer_id(), 0..3)),
        ),
    )
        .prop_map(
            |(
                ((command_id, response_required), id, dest, (prefetch, pending), sel, cid, sub),
                (f, priority, path, network_path),
            )| ConsumerInfo {
                command_id,
                response_required,
                consumer_id: id,
                browser: f[0],
                destination: dest,
                prefetch_size: prefetch,
                maximum_pending_message_limit: pending,
                dispatch_async: f[1],
                selector: sel,
                client_id: cid,
                subscription_name: sub,
                no_local: f[2],
                exclusive: f[3],
                retroactive: f[4],
                priority,
                broker_path: path,
                additional_predicate: None,
                network_subscription: f[5],
                optimized_acknowledge: f[6],
                no_range_acks: f[7],
                network_consumer_path: network_path,
            },
        )
        .boxed()
}

pub fn producer_info() -> BoxedStrategy<ProducerInfo> {
    (
        header(),
        of(producer_id()),
        of(destination()),
        broker_path(),
        any::<bool>(),
        any::<i32>(),
    )
        .prop_map(
            |((command_id, response_required), id, dest, path, dispatch_async, window)| {
                ProducerInfo {
                    command_id,
                    response_required,
                    producer_id: id,
                    destination: dest,
                    broker_path: path,
                    dispatch_async,
                    window_size: window,
                }
            },
        )
        .boxed()
}

pub fn transaction_info() -> BoxedStrategy<TransactionInfo> {
    let kind = prop_oneof![
        Just(TransactionType::Begin),
        Just(TransactionType::Prepare),
        Just(TransactionType::CommitOnePhase),
        Just(TransactionType::CommitTwoPhase),
        Just(TransactionType::Rollback),
        Just(TransactionType::Recover),
        Just(TransactionType::Forget),
        Just(TransactionType::End),
        prop_oneof![i8::MIN..0, 8..=i8::MAX].prop_map(TransactionType::Other),
    ];
    (header(), of(connection_id()), of(transaction_id()), kind)
        .prop_map(
            |((command_id, response_required), cid, tid, kind)| TransactionInfo {
                command_id,
                response_required,
                connection_id: cid,
                transaction_id: tid,
                kind,
            },
        )
        .boxed()
}

pub fn destination_info() -> BoxedStrategy<DestinationInfo> {
    (
        header(),
        of(connection_id()),
        of(destination()),
        prop_oneof![
            Just(DestinationOperation::Add),
            Just(DestinationOperation::Remove),
            prop_oneof![i8::MIN..0, 2..=i8::MAX].prop_map(DestinationOperation::Other),
        ],
        long(),
        broker_path(),
    )
        .prop_map(
            |((command_id, response_required), cid, dest, operation, timeout, path)| {
                DestinationInfo {
                    command_id,
                    response_required,
                    connection_id: cid,
                    destination: dest,
                    operation,
                    timeout,
                    broker_path: path,
                }
            },
        )
        .boxed()
}

pub fn remove_subscription_info() -> BoxedStrategy<RemoveSubscriptionInfo> {
    (header(), of(connection_id()), opt_text(), opt_text())
        .prop_map(
            |((command_id, response_required), cid, name, client)| RemoveSubscriptionInfo {
                command_id,
                response_required,
                connection_id: cid,
                subscription_name: name,
                client_id: client,
            },
        )
        .boxed()
}

pub fn remove_info() -> BoxedStrategy<RemoveInfo> {
    let object = prop_oneof![
        connection_id().prop_map(DataStructure::ConnectionId),
        session_id().prop_map(DataStructure::SessionId),
        producer_id().prop_map(DataStructure::ProducerId),
        consumer_id().prop_map(DataStructure::ConsumerId),
        // Not an id: sent whole, with the "not cached" index.
        message_id().prop_map(DataStructure::MessageId),
    ];
    (header(), of(object), long())
        .prop_map(
            |((command_id, response_required), object, last)| RemoveInfo {
                command_id,
                response_required,
                object_id: object,
                last_delivered_sequence_id: last,
            },
        )
        .boxed()
}

fn bare() -> BoxedStrategy<Command> {
    header()
        .prop_flat_map(|(command_id, response_required)| {
            prop_oneof![
                Just(Command::KeepAliveInfo(KeepAliveInfo {
                    command_id,
                    response_required
                })),
                Just(Command::ShutdownInfo(ShutdownInfo {
                    command_id,
                    response_required
                })),
                Just(Command::FlushCommand(FlushCommand {
                    command_id,
                    response_required
                })),
            ]
        })
        .boxed()
}

pub fn control_command() -> BoxedStrategy<ControlCommand> {
    (header(), opt_text())
        .prop_map(
            |((command_id, response_required), command)| ControlCommand {
                command_id,
                response_required,
                command,
            },
        )
        .boxed()
}

pub fn connection_control() -> BoxedStrategy<ConnectionControl> {
    (
        header(),
        any::<[bool; 6]>(),
        opt_text(),
        opt_text(),
        of(bytes()),
    )
        .prop_map(
            |((command_id, response_required), f, brokers, reconnect, token)| ConnectionControl {
                command_id,
                response_required,
                close: f[0],
                exit: f[1],
                fault_tolerant: f[2],
                resume: f[3],
                suspend: f[4],
                connected_brokers: brokers,
                reconnect_to: reconnect,
                rebalance_connection: f[5],
                token,
            },
        )
        .boxed()
}

pub fn consumer_control() -> BoxedStrategy<ConsumerControl> {
    (
        header(),
        of(destination()),
        of(consumer_id()),
        any::<i32>(),
        any::<[bool; 4]>(),
    )
        .prop_map(
            |((command_id, response_required), dest, id, prefetch, f)| ConsumerControl {
                command_id,
                response_required,
                destination: dest,
                close: f[0],
                consumer_id: id,
                prefetch,
                flush: f[1],
                start: f[2],
                stop: f[3],
            },
        )
        .boxed()
}

pub fn connection_error(stack_trace: bool) -> BoxedStrategy<ConnectionError> {
    (header(), of(exception(stack_trace)), of(connection_id()))
        .prop_map(
            |((command_id, response_required), exception, cid)| ConnectionError {
                command_id,
                response_required,
                exception,
                connection_id: cid,
            },
        )
        .boxed()
}

pub fn producer_ack() -> BoxedStrategy<ProducerAck> {
    (header(), of(producer_id()), any::<i32>())
        .prop_map(|((command_id, response_required), id, size)| ProducerAck {
            command_id,
            response_required,
            producer_id: id,
            size,
        })
        .boxed()
}

pub fn message_pull() -> BoxedStrategy<MessagePull> {
    (
        header(),
        of(consumer_id()),
        of(destination()),
        long(),
        opt_text(),
        of(message_id()),
    )
        .prop_map(
            |((command_id, response_required), id, dest, timeout, corr, mid)| MessagePull {
                command_id,
                response_required,
                consumer_id: id,
                destination: dest,
                timeout,
                correlation_id: corr,
                message_id: mid,
            },
        )
        .boxed()
}

pub fn message_kind() -> BoxedStrategy<MessageKind> {
    prop_oneof![
        Just(MessageKind::Plain),
        Just(MessageKind::Bytes),
        Just(MessageKind::Map),
        Just(MessageKind::Object),
        Just(MessageKind::Stream),
        Just(MessageKind::Text),
        (opt_text(), opt_text(), any::<bool>()).prop_map(|(url, mime, deleted)| {
            MessageKind::Blob(BlobInfo {
                remote_blob_url: url,
                mime_type: mime,
                deleted_by_broker: deleted,
            })
        }),
    ]
    .boxed()
}

pub fn message() -> BoxedStrategy<Message> {
    let ids = (
        message_kind(),
        header(),
        of(producer_id()),
        of(destination()),
        of(transaction_id()),
        of(destination()),
        of(message_id()),
        of(transaction_id()),
    );
    let jms = (
        opt_text(),
        any::<i32>(),
        opt_text(),
        long(),
        any::<i8>(),
        of(destination()),
        long(),
        opt_text(),
        of(bytes()),
        of(primitive_map()),
    );
    let broker = (
        of(prop_oneof![
            consumer_info()
                .prop_map(|c| DataStructure::Command(Box::new(Command::ConsumerInfo(c)))),
            destination().prop_map(DataStructure::Destination),
        ]),
        of(consumer_id()),
        any::<i32>(),
        broker_path(),
        (long(), long(), long()),
        opt_text(),
        broker_path(),
        any::<[bool; 6]>(),
    );
    (ids, jms, broker)
        .prop_map(
            |(
                (
                    kind,
                    (command_id, response_required),
                    producer,
                    dest,
                    tx,
                    orig_dest,
                    mid,
                    orig_tx,
                ),
                (
                    group,
                    group_seq,
                    corr,
                    expiration,
                    priority,
                    reply_to,
                    timestamp,
                    jms_type,
                    content,
                    props,
                ),
                (data, target, redeliveries, path, (arrival, in_time, out_time), user, cluster, f),
            )| Message {
                kind,
                command_id,
                response_required,
                producer_id: producer,
                destination: dest,
                transaction_id: tx,
                original_destination: orig_dest,
                message_id: mid,
                original_transaction_id: orig_tx,
                group_id: group,
                group_sequence: group_seq,
                correlation_id: corr,
                persistent: f[0],
                expiration,
                priority,
                reply_to,
                timestamp,
                jms_type,
                content,
                properties: props,
                data_structure: data,
                target_consumer_id: target,
                compressed: f[1],
                redelivery_counter: redeliveries,
                broker_path: path,
                arrival,
                user_id: user,
                received_by_df_bridge: f[2],
                droppable: f[3],
                cluster,
                broker_in_time: in_time,
                broker_out_time: out_time,
                jmsx_group_first_for_consumer: f[4],
            },
        )
        .boxed()
}

pub fn message_dispatch() -> BoxedStrategy<MessageDispatch> {
    (
        header(),
        of(consumer_id()),
        of(destination()),
        of(message()),
        any::<i32>(),
    )
        .prop_map(
            |((command_id, response_required), id, dest, message, redeliveries)| MessageDispatch {
                command_id,
                response_required,
                consumer_id: id,
                destination: dest,
                message: message.map(Box::new),
                redelivery_counter: redeliveries,
            },
        )
        .boxed()
}

pub fn ack_type() -> BoxedStrategy<AckType> {
    prop_oneof![
        Just(AckType::Delivered),
        Just(AckType::Poison),
        Just(AckType::Standard),
        Just(AckType::Redelivered),
        Just(AckType::Individual),
        Just(AckType::Unmatched),
        Just(AckType::Expired),
        prop_oneof![i8::MIN..0, 7..=i8::MAX].prop_map(AckType::Other),
    ]
    .boxed()
}

pub fn message_ack(stack_trace: bool) -> BoxedStrategy<MessageAck> {
    (
        header(),
        of(destination()),
        of(transaction_id()),
        of(consumer_id()),
        ack_type(),
        of(message_id()),
        of(message_id()),
        any::<i32>(),
        of(exception(stack_trace)),
    )
        .prop_map(
            |(
                (command_id, response_required),
                dest,
                tx,
                id,
                ack_type,
                first,
                last,
                count,
                cause,
            )| {
                MessageAck {
                    command_id,
                    response_required,
                    destination: dest,
                    transaction_id: tx,
                    consumer_id: id,
                    ack_type,
                    first_message_id: first,
                    last_message_id: last,
                    message_count: count,
                    poison_cause: cause,
                }
            },
        )
        .boxed()
}

/// Every command type; exceptions carry frames and causes only when `stack_trace` is on.
pub fn command(stack_trace: bool) -> BoxedStrategy<Command> {
    prop_oneof![
        wire_format_info().prop_map(Command::WireFormatInfo),
        broker_info().prop_map(Command::BrokerInfo),
        connection_info().prop_map(Command::ConnectionInfo),
        session_info().prop_map(Command::SessionInfo),
        consumer_info().prop_map(Command::ConsumerInfo),
        producer_info().prop_map(Command::ProducerInfo),
        transaction_info().prop_map(Command::TransactionInfo),
        destination_info().prop_map(Command::DestinationInfo),
        remove_subscription_info().prop_map(Command::RemoveSubscriptionInfo),
        bare(),
        remove_info().prop_map(Command::RemoveInfo),
        control_command().prop_map(Command::ControlCommand),
        connection_error(stack_trace).prop_map(Command::ConnectionError),
        consumer_control().prop_map(Command::ConsumerControl),
        connection_control().prop_map(Command::ConnectionControl),
        producer_ack().prop_map(Command::ProducerAck),
        message_pull().prop_map(Command::MessagePull),
        message_dispatch().prop_map(Command::MessageDispatch),
        message_ack(stack_trace).prop_map(Command::MessageAck),
        message().prop_map(|m| Command::Message(Box::new(m))),
        (header(), any::<i32>()).prop_map(|((command_id, response_required), c)| {
            Command::Response(Response {
                command_id,
                response_required,
                correlation_id: c,
            })
        }),
        (header(), any::<i32>(), of(exception(stack_trace))).prop_map(
            |((command_id, response_required), c, exception)| {
                Command::ExceptionResponse(ExceptionResponse {
                    command_id,
                    response_required,
                    correlation_id: c,
                    exception,
                })
            }
        ),
        (header(), any::<i32>(), of(data_structure())).prop_map(
            |((command_id, response_required), c, data)| {
                Command::DataResponse(DataResponse {
                    command_id,
                    response_required,
                    correlation_id: c,
                    data,
                })
            }
        ),
        (header(), any::<i32>(), of(vec(data_structure(), 0..3))).prop_map(
            |((command_id, response_required), c, data)| {
                Command::DataArrayResponse(DataArrayResponse {
                    command_id,
                    response_required,
                    correlation_id: c,
                    data,
                })
            }
        ),
        (header(), any::<i32>(), any::<i32>()).prop_map(
            |((command_id, response_required), c, result)| {
                Command::IntegerResponse(IntegerResponse {
                    command_id,
                    response_required,
                    correlation_id: c,
                    result,
                })
            }
        ),
    ]
    .boxed()
}
