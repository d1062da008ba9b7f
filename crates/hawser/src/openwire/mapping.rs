//! Translation between OpenWire's vocabulary and the engine's: destinations,
//! ids, messages and their properties, as ActiveMQ's Java client expects them.

use std::sync::Arc;

use bytes::Bytes;
use hawser_broker::advisory::read_advisory;
use hawser_broker::{
    BodyKind, Delivery, Destination, DestinationKind, MessageFields, NewMessage, ProducerRef,
    PropertyValue,
};
use hawser_openwire as ow;

use super::SessionError;

/// The producer id the broker's own messages carry (those that came from a
/// protocol without message ids): the Java client drops a second message with
/// an id it has seen, so every message needs one of its own.
const BROKER_PRODUCER: &str = "ID:hawser-broker";

/// The engine's destination for an OpenWire one.
pub fn destination(d: &ow::Destination) -> Result<Destination, SessionError> {
    let kind = match d.kind {
        ow::DestinationKind::Queue => DestinationKind::Queue,
        ow::DestinationKind::Topic => DestinationKind::Topic,
        ow::DestinationKind::TempQueue => DestinationKind::TempQueue,
        ow::DestinationKind::TempTopic => DestinationKind::TempTopic,
    };
    Destination::new(kind, &d.physical_name).map_err(|e| SessionError::Invalid {
        what: "destination",
        reason: e.to_string(),
    })
}

/// The OpenWire destination for an engine one.
pub fn wire_destination(d: &Destination) -> ow::Destination {
    ow::Destination {
        kind: match d.kind {
            DestinationKind::Queue => ow::DestinationKind::Queue,
            DestinationKind::Topic => ow::DestinationKind::Topic,
            DestinationKind::TempQueue => ow::DestinationKind::TempQueue,
            DestinationKind::TempTopic => ow::DestinationKind::TempTopic,
        },
        physical_name: d.name.to_string(),
    }
}

/// A consumer's id as the engine's subscription id: its text form, which
/// [`consumer_id`] reads back.
pub fn subscription_id(c: &ow::ConsumerId) -> Arc<str> {
    Arc::from(format!("{}:{}:{}", c.connection_id, c.session_id, c.value))
}

/// Reads back a [`subscription_id`].
pub fn consumer_id(subscription: &str) -> Option<ow::ConsumerId> {
    let mut parts = subscription.rsplitn(3, ':');
    let value = parts.next()?.parse().ok()?;
    let session_id = parts.next()?.parse().ok()?;
    let connection_id = parts.next()?.to_owned();
    Some(ow::ConsumerId {
        connection_id,
        session_id,
        value,
    })
}

/// A producer's id in text, as it scopes duplicate detection.
pub fn producer_text(p: &ow::ProducerId) -> String {
    format!("{}:{}:{}", p.connection_id, p.session_id, p.value)
}

/// A message id in the text form JMS shows (`JMSMessageID`).
fn message_id_text(id: &ow::MessageId) -> Option<String> {
    if let Some(text) = &id.text_view {
        return Some(text.clone());
    }
    let p = id.producer_id.as_ref()?;
    Some(format!("{}:{}", producer_text(p), id.producer_sequence_id))
}

/// Reads back a [`message_id_text`] (`<connection>:<session>:<producer>:<seq>`).
fn parse_message_id(text: &str) -> Option<(ow::ProducerId, i64)> {
    let mut parts = text.rsplitn(4, ':');
    let seq = parts.next()?.parse().ok()?;
    let value = parts.next()?.parse().ok()?;
    let session_id = parts.next()?.parse().ok()?;
    let connection_id = parts.next()?.to_owned();
    Some((
        ow::ProducerId {
            connection_id,
            value,
            session_id,
        },
        seq,
    ))
}

/// The engine's message for a producer's OpenWire message.
pub fn new_message(m: &ow::Message) -> Result<NewMessage, SessionError> {
    if m.compressed {
        return Err(SessionError::Unsupported("a compressed message body"));
    }
    let target = destination(m.destination.as_ref().ok_or(SessionError::Invalid {
        what: "message",
        reason: "no destination".into(),
    })?)?;
    let (body_kind, body) = match &m.kind {
        ow::MessageKind::Plain => (BodyKind::Empty, Bytes::new()),
        ow::MessageKind::Text => {
            // Kept as UTF-8, the engine's text, so a STOMP consumer reads it as sent.
            let text = match &m.content {
                Some(c) => ow::decode_text_body(c)?,
                None => None,
            };
            match text {
                Some(text) => (BodyKind::Text, Bytes::from(text)),
                None => (BodyKind::NullText, Bytes::new()),
            }
        }
        ow::MessageKind::Bytes => (BodyKind::Bytes, m.content.clone().unwrap_or_default()),
        ow::MessageKind::Map => (BodyKind::Map, m.content.clone().unwrap_or_default()),
        ow::MessageKind::Stream => (BodyKind::Stream, m.content.clone().unwrap_or_default()),
        ow::MessageKind::Object => (BodyKind::Object, m.content.clone().unwrap_or_default()),
        ow::MessageKind::Blob(_) => return Err(SessionError::Unsupported("a blob message")),
    };
    let mut fields = MessageFields {
        message_id: m
            .message_id
            .as_ref()
            .and_then(message_id_text)
            .map(Arc::from),
        correlation_id: m.correlation_id.as_deref().map(Arc::from),
        reply_to: m.reply_to.as_ref().map(destination).transpose()?,
        message_type: m.jms_type.as_deref().map(Arc::from),
        original_destination: None,
        group_id: m.group_id.as_deref().map(Arc::from),
        group_seq: m.group_sequence,
        properties: Vec::new(),
    };
    if let Some(props) = &m.properties {
        for (name, value) in props.iter() {
            let value = match value {
                ow::PrimitiveValue::Null => continue,
                ow::PrimitiveValue::Boolean(b) => PropertyValue::Bool(*b),
                ow::PrimitiveValue::Byte(v) => PropertyValue::Byte(*v),
                ow::PrimitiveValue::Short(v) => PropertyValue::Short(*v),
                ow::PrimitiveValue::Char(v) => PropertyValue::Int(i32::from(*v)),
                ow::PrimitiveValue::Int(v) => PropertyValue::Int(*v),
                ow::PrimitiveValue::Long(v) => PropertyValue::Long(*v),
                ow::PrimitiveValue::Float(v) => PropertyValue::Float(*v),
                ow::PrimitiveValue::Double(v) => PropertyValue::Double(*v),
                ow::PrimitiveValue::String(s) => PropertyValue::String(Arc::from(s.as_str())),
                ow::PrimitiveValue::Bytes(b) => PropertyValue::Bytes(b.clone()),
                ow::PrimitiveValue::Map(_) | ow::PrimitiveValue::List(_) => {
                    return Err(SessionError::Invalid {
                        what: "property",
                        reason: format!("{name:?} is a map or list, which JMS does not allow"),
                    })
                }
            };
            fields.properties.push((Arc::from(name), value));
        }
    }
    let producer = m.message_id.as_ref().and_then(|id| {
        let p = id.producer_id.as_ref()?;
        let seq = u64::try_from(id.producer_sequence_id)
            .ok()
            .filter(|s| *s > 0)?;
        Some(ProducerRef {
            id: Arc::from(producer_text(p)),
            seq,
        })
    });
    Ok(NewMessage {
        destination: target,
        fields,
        body_kind,
        body,
        persistent: m.persistent,
        priority: m.priority.clamp(0, 9) as u8,
        expires_ms: u64::try_from(m.expiration).ok().filter(|e| *e > 0),
        timestamp_ms: u64::try_from(m.timestamp).ok().filter(|t| *t > 0),
        producer,
    })
}

/// The content of a bytes, map, stream or object message: none for an empty
/// body. The Java client sends none for an empty map, an empty stream or
/// body, and an ObjectMessage without an object, and reads an empty content
/// as a map or an object that is cut short (an EOFException).
fn opaque_content(body: &Bytes) -> Option<Bytes> {
    (!body.is_empty()).then(|| body.clone())
}

/// The MessageDispatch of a delivery. The message id's broker sequence is the
/// engine's id, which the client's acks carry back.
pub fn dispatch(d: &Delivery) -> ow::MessageDispatch {
    let m = &d.message;
    let f = &m.fields;
    let (producer_id, producer_sequence_id) = f
        .message_id
        .as_deref()
        .and_then(parse_message_id)
        .unwrap_or_else(|| {
            (
                ow::ProducerId {
                    connection_id: BROKER_PRODUCER.to_owned(),
                    value: 0,
                    session_id: 0,
                },
                m.id as i64,
            )
        });
    let (kind, content) = match m.body_kind {
        BodyKind::Empty => (ow::MessageKind::Plain, None),
        BodyKind::Text => (
            ow::MessageKind::Text,
            Some(ow::encode_text_body(Some(&String::from_utf8_lossy(
                &m.body,
            )))),
        ),
        // As the Java client sends a TextMessage without text.
        BodyKind::NullText => (ow::MessageKind::Text, None),
        BodyKind::Bytes => (ow::MessageKind::Bytes, opaque_content(&m.body)),
        BodyKind::Map => (ow::MessageKind::Map, opaque_content(&m.body)),
        BodyKind::Stream => (ow::MessageKind::Stream, opaque_content(&m.body)),
        BodyKind::Object => (ow::MessageKind::Object, opaque_content(&m.body)),
    };
    let properties = (!f.properties.is_empty()).then(|| {
        let mut map = ow::PrimitiveMap::new();
        for (k, v) in &f.properties {
            let value = match v {
                PropertyValue::Bool(b) => ow::PrimitiveValue::Boolean(*b),
                PropertyValue::Byte(v) => ow::PrimitiveValue::Byte(*v),
                PropertyValue::Short(v) => ow::PrimitiveValue::Short(*v),
                PropertyValue::Int(v) => ow::PrimitiveValue::Int(*v),
                PropertyValue::Long(v) => ow::PrimitiveValue::Long(*v),
                PropertyValue::Float(v) => ow::PrimitiveValue::Float(*v),
                PropertyValue::Double(v) => ow::PrimitiveValue::Double(*v),
                PropertyValue::String(s) => ow::PrimitiveValue::String(s.to_string()),
                PropertyValue::Bytes(b) => ow::PrimitiveValue::Bytes(b.clone()),
            };
            map.insert(k.to_string(), value);
        }
        map
    });
    let consumer = consumer_id(&d.subscription);
    let destination = wire_destination(&m.destination);
    // An advisory carries what it announces as the DestinationInfo (or,
    // for a connection or producer, the ConnectionInfo, ProducerInfo or
    // RemoveInfo, with its properties: producerCount...) Java reads.
    let announced = read_connection_advisory(&m.destination, f)
        .or_else(|| read_producer_advisory(&m.destination, f));
    let keeps_properties = announced.is_some();
    let data_structure = announced.or_else(|| {
        read_advisory(f).map(|(temp, added)| {
            ow::DataStructure::Command(Box::new(ow::Command::DestinationInfo(
                ow::DestinationInfo {
                    destination: Some(wire_destination(&temp)),
                    operation: if added {
                        ow::DestinationOperation::Add
                    } else {
                        ow::DestinationOperation::Remove
                    },
                    ..ow::DestinationInfo::default()
                },
            )))
        })
    });
    let (kind, content, properties) = if keeps_properties {
        (ow::MessageKind::Plain, None, properties)
    } else if data_structure.is_some() {
        (ow::MessageKind::Plain, None, None)
    } else {
        (kind, content, properties)
    };
    let message = ow::Message {
        kind,
        producer_id: Some(producer_id.clone()),
        destination: Some(destination.clone()),
        original_destination: f.original_destination.as_ref().map(wire_destination),
        message_id: Some(ow::MessageId {
            text_view: None,
            producer_id: Some(producer_id),
            producer_sequence_id,
            broker_sequence_id: m.id as i64,
        }),
        group_id: f.group_id.as_deref().map(str::to_owned),
        group_sequence: f.group_seq,
        correlation_id: f.correlation_id.as_deref().map(str::to_owned),
        persistent: m.persistent,
        expiration: m.expires_ms.unwrap_or(0) as i64,
        priority: m.priority as i8,
        reply_to: f.reply_to.as_ref().map(wire_destination),
        timestamp: m.timestamp_ms as i64,
        jms_type: f.message_type.as_deref().map(str::to_owned),
        content,
        properties,
        data_structure,
        redelivery_counter: d.redelivery_count as i32,
        ..ow::Message::default()
    };
    ow::MessageDispatch {
        command_id: 0,
        response_required: false,
        consumer_id: consumer,
        destination: Some(destination),
        message: Some(Box::new(message)),
        redelivery_counter: d.redelivery_count as i32,
    }
}

/// A producer advisory's data structure: the ProducerInfo of a producer
/// announced, the RemoveInfo of one closed.
fn read_producer_advisory(
    d: &Destination,
    f: &hawser_broker::MessageFields,
) -> Option<ow::DataStructure> {
    use hawser_broker::producer_registry::{ADVISORY_PRODUCER, PRODUCER_ADVISORY_PREFIX};
    use hawser_broker::property::property;
    // Only the broker publishes there (a client's message that looks like
    // one elsewhere stays a message).
    if f.message_type.as_deref() != Some(hawser_broker::advisory::ADVISORY_TYPE)
        || !d.is_topic()
        || !d.name.starts_with(PRODUCER_ADVISORY_PREFIX)
    {
        return None;
    }
    let Some(PropertyValue::String(text)) = property(&f.properties, ADVISORY_PRODUCER) else {
        return None;
    };
    let mut parts = text.rsplitn(3, ':');
    let value = parts.next()?.parse().ok()?;
    let session_id = parts.next()?.parse().ok()?;
    let id = ow::ProducerId {
        connection_id: parts.next()?.to_owned(),
        session_id,
        value,
    };
    let destination = match property(&f.properties, hawser_broker::advisory::ADVISORY_DESTINATION) {
        Some(PropertyValue::String(d)) => Destination::parse(d),
        _ => None,
    };
    let added = matches!(
        property(&f.properties, hawser_broker::advisory::ADVISORY_ADDED),
        Some(PropertyValue::Bool(true))
    );
    let command = if added {
        ow::Command::ProducerInfo(ow::ProducerInfo {
            producer_id: Some(id),
            destination: destination.as_ref().map(wire_destination),
            ..ow::ProducerInfo::default()
        })
    } else {
        ow::Command::RemoveInfo(ow::RemoveInfo {
            object_id: Some(ow::DataStructure::ProducerId(id)),
            ..ow::RemoveInfo::default()
        })
    };
    Some(ow::DataStructure::Command(Box::new(command)))
}

/// A connection advisory's data structure: the ConnectionInfo of a
/// connection that opened (no password, as ActiveMQ's), the RemoveInfo of
/// one that closed.
fn read_connection_advisory(
    d: &Destination,
    f: &hawser_broker::MessageFields,
) -> Option<ow::DataStructure> {
    use hawser_broker::advisory_events::{
        ADVISORY_CLIENT_ID, ADVISORY_CONNECTION, ADVISORY_USER, CONNECTION_ADVISORY,
    };
    use hawser_broker::property::property;
    if f.message_type.as_deref() != Some(hawser_broker::advisory::ADVISORY_TYPE)
        || !d.is_topic()
        || &*d.name != CONNECTION_ADVISORY
    {
        return None;
    }
    let text = |name: &str| match property(&f.properties, name) {
        Some(PropertyValue::String(s)) => Some(s.to_string()),
        _ => None,
    };
    let id = ow::ConnectionId {
        value: format!("ID:hawser-connection-{}", text(ADVISORY_CONNECTION)?),
    };
    let added = matches!(
        property(&f.properties, hawser_broker::advisory::ADVISORY_ADDED),
        Some(PropertyValue::Bool(true))
    );
    let command = if added {
        ow::Command::ConnectionInfo(ow::ConnectionInfo {
            connection_id: Some(id),
            client_id: text(ADVISORY_CLIENT_ID),
            user_name: text(ADVISORY_USER),
            ..ow::ConnectionInfo::default()
        })
    } else {
        ow::Command::RemoveInfo(ow::RemoveInfo {
            object_id: Some(ow::DataStructure::ConnectionId(id)),
            ..ow::RemoveInfo::default()
        })
    };
    Some(ow::DataStructure::Command(Box::new(command)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hawser_broker::{MemoryUsage, Message, MessageData};

    /// A producer's message as the engine keeps it and a consumer gets it back.
    fn round_trip(m: &ow::Message) -> ow::Message {
        let usage = MemoryUsage::new(u64::MAX);
        let data = MessageData::accept(1, new_message(m).expect("maps"), 0);
        let delivery = Delivery {
            record: 0,
            consumer: 1,
            subscription: Arc::from("ID:c-1:1:1:1"),
            message: Arc::new(Message::new(data, &usage)),
            redelivery_count: 0,
            seq: 0,
            auto_ack: false,
        };
        *dispatch(&delivery).message.expect("a message")
    }

    fn sent(kind: ow::MessageKind, content: Option<Bytes>) -> ow::Message {
        ow::Message {
            kind,
            destination: Some(ow::Destination {
                kind: ow::DestinationKind::Queue,
                physical_name: "q".into(),
            }),
            content,
            ..ow::Message::default()
        }
    }

    #[test]
    fn bodies_sent_without_content_come_back_without() {
        // The Java client sends no content for a TextMessage whose text is
        // null, an empty map, stream or bytes message, and an ObjectMessage
        // without an object; it reads an empty content as a truncated map or
        // object (an EOFException) and as "" rather than null text.
        for kind in [
            ow::MessageKind::Text,
            ow::MessageKind::Bytes,
            ow::MessageKind::Map,
            ow::MessageKind::Stream,
            ow::MessageKind::Object,
        ] {
            let back = round_trip(&sent(kind.clone(), None));
            assert_eq!((back.kind, back.content), (kind, None));
        }
        let empty_text = Some(ow::encode_text_body(Some("")));
        let back = round_trip(&sent(ow::MessageKind::Text, empty_text.clone()));
        assert_eq!(back.content, empty_text, "empty text is not null");
    }

    #[test]
    fn opaque_bodies_come_back_byte_for_byte() {
        let body = Bytes::from_static(b"\0\0\0\x01\0\x01k\x05\0\0\0\x07");
        for kind in [
            ow::MessageKind::Bytes,
            ow::MessageKind::Map,
            ow::MessageKind::Stream,
            ow::MessageKind::Object,
        ] {
            let back = round_trip(&sent(kind.clone(), Some(body.clone())));
            assert_eq!((back.kind, back.content), (kind, Some(body.clone())));
        }
    }

    #[test]
    fn consumer_ids_read_back() {
        let c = ow::ConsumerId {
            connection_id: "ID:host-1234-1700000000000-1:1".into(),
            session_id: 3,
            value: 7,
        };
        assert_eq!(consumer_id(&subscription_id(&c)), Some(c));
    }

    #[test]
    fn message_ids_read_back() {
        let p = ow::ProducerId {
            connection_id: "ID:host-1234-1700000000000-1:1".into(),
            value: 2,
            session_id: 1,
        };
        let id = ow::MessageId {
            text_view: None,
            producer_id: Some(p.clone()),
            producer_sequence_id: 42,
            broker_sequence_id: 0,
        };
        let text = message_id_text(&id).unwrap();
        assert_eq!(text, "ID:host-1234-1700000000000-1:1:1:2:42");
        assert_eq!(parse_message_id(&text), Some((p, 42)));
    }
}
