//! Translation between STOMP's vocabulary and the engine's, as ActiveMQ spells it:
//! destination prefixes, message ids, the headers of SEND and MESSAGE frames.

use std::sync::Arc;

use bytes::BytesMut;
use hawser_broker::producer::{MAX_PRODUCER_ID_BYTES, MAX_PRODUCER_SEQ};
use hawser_broker::{
    BodyKind, ConnectionId, Delivery, Destination, DestinationKind, MessageData, MessageFields,
    MessageId, NewMessage, ProducerRef, PropertyValue,
};
use hawser_stomp::extensions::{FORWARD_HEADER, PRODUCER_HEADER, PRODUCER_SEQ_HEADER};
use hawser_stomp::{Command, Frame, FrameWriter, Version};

use super::SessionError;

/// Prefix of the message ids this broker hands out.
pub const MESSAGE_ID_PREFIX: &str = "ID:hawser-";
/// [`MESSAGE_ID_PREFIX`] as STOMP 1.1 and 1.2 escape it (`:` is `\c`).
const MESSAGE_ID_PREFIX_ESCAPED: &str = "ID\\chawser-";

/// Roughly what the broker's own MESSAGE headers take, without the destination.
const MESSAGE_HEADER_BYTES: usize = 192;

/// Headers that steer the broker and are not kept with the message.
const TRANSPORT_HEADERS: &[&str] = &[
    "destination",
    "transaction",
    "receipt",
    "content-length",
    "persistent",
    "priority",
    "expires",
    "message-id",
    "subscription",
    "ack",
    "redelivered",
    "timestamp",
];

/// Parses a STOMP destination. Temporary destinations named by a client
/// (`/temp-queue/reply`) belong to its connection; other connections reach
/// them by the name the broker shows (`/remote-temp-queue/...`).
///
/// A comma-separated list (`/queue/a,/topic/b`; a part without a prefix has
/// the first part's kind) is ActiveMQ's composite destination: the engine's
/// composite name (`queue://a,topic://b`) of the first part's kind.
pub fn parse_destination(text: &str, conn: ConnectionId) -> Result<Destination, SessionError> {
    if text.contains(',') {
        return parse_composite(text, conn);
    }
    let (kind, name, owned) = if let Some(n) = text.strip_prefix("/queue/") {
        (DestinationKind::Queue, n, false)
    } else if let Some(n) = text.strip_prefix("/topic/") {
        (DestinationKind::Topic, n, false)
    } else if let Some(n) = text.strip_prefix("/temp-queue/") {
        (DestinationKind::TempQueue, n, true)
    } else if let Some(n) = text.strip_prefix("/temp-topic/") {
        (DestinationKind::TempTopic, n, true)
    } else if let Some(n) = text.strip_prefix("/remote-temp-queue/") {
        (DestinationKind::TempQueue, n, false)
    } else if let Some(n) = text.strip_prefix("/remote-temp-topic/") {
        (DestinationKind::TempTopic, n, false)
    } else {
        return Err(SessionError::BadHeader {
            header: "destination",
            reason: format!(
                "{text:?} does not start with /queue/, /topic/, /temp-queue/ or /temp-topic/"
            ),
        });
    };
    let name = if owned {
        format!("hawser-tmp-{}-{conn}-{name}", process_token())
    } else {
        name.to_owned()
    };
    Destination::new(kind, &name).map_err(|e| SessionError::BadHeader {
        header: "destination",
        reason: e.to_string(),
    })
}

/// A token of this broker process, in the names of its connections'
/// temporary destinations. Connection ids start again at 1 in every process
/// and on every broker, and a temporary queue's name travels: in reply-to
/// headers that outlive a restart, and to the other brokers of a network,
/// which mirror it under the same name. Without the token a reply could
/// reach another broker's, or a later process's, temporary queue.
fn process_token() -> &'static str {
    static TOKEN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    TOKEN.get_or_init(crate::token::random_hex)
}

fn parse_composite(text: &str, conn: ConnectionId) -> Result<Destination, SessionError> {
    let mut kind = None;
    let mut names = Vec::new();
    for part in text.split(',').map(str::trim) {
        let d = if part.starts_with('/') {
            parse_destination(part, conn)?
        } else {
            let k = kind.ok_or_else(|| SessionError::BadHeader {
                header: "destination",
                reason: format!("{text:?}: the first part needs a /queue/ or /topic/ prefix"),
            })?;
            Destination::new(k, part).map_err(|e| SessionError::BadHeader {
                header: "destination",
                reason: e.to_string(),
            })?
        };
        if d.kind.is_temporary() {
            return Err(SessionError::BadHeader {
                header: "destination",
                reason: "a composite destination cannot include temporary ones".into(),
            });
        }
        kind.get_or_insert(d.kind);
        names.push(d.to_string());
    }
    let kind = kind.expect("split yields at least one part");
    Destination::new(kind, &names.join(",")).map_err(|e| SessionError::BadHeader {
        header: "destination",
        reason: e.to_string(),
    })
}

/// True for a temporary destination named by its owner (`/temp-queue/x`), as
/// opposed to one reached by its broker-wide name (`/remote-temp-queue/...`).
pub fn is_owned_temporary(text: &str) -> bool {
    text.starts_with("/temp-queue/") || text.starts_with("/temp-topic/")
}

/// How a destination is written in frames sent to clients.
pub fn destination_name(d: &Destination) -> String {
    format!("{}{}", destination_prefix(d.kind), d.name)
}

/// The prefix of a destination's name in frames sent to clients.
fn destination_prefix(kind: DestinationKind) -> &'static str {
    match kind {
        DestinationKind::Queue => "/queue/",
        DestinationKind::Topic => "/topic/",
        DestinationKind::TempQueue => "/remote-temp-queue/",
        DestinationKind::TempTopic => "/remote-temp-topic/",
    }
}

/// Reads back a message id this broker issued.
pub fn parse_message_id(text: &str) -> Result<MessageId, SessionError> {
    text.strip_prefix(MESSAGE_ID_PREFIX)
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| SessionError::UnknownMessage(text.to_owned()))
}

/// Builds the engine's message from a SEND frame.
///
/// `last_producer` is the producer id of the connection's previous SEND: a
/// message from the same producer shares it rather than copying it.
pub fn new_message(
    frame: Frame,
    conn: ConnectionId,
    last_producer: &mut Option<Arc<str>>,
) -> Result<NewMessage, SessionError> {
    let dest = frame
        .header("destination")
        .ok_or(SessionError::MissingHeader("destination"))?;
    let destination = parse_destination(dest, conn)?;
    let persistent = frame.header("persistent") == Some("true");
    let priority = match frame.header("priority") {
        None => hawser_broker::message::DEFAULT_PRIORITY,
        Some(p) => p
            .trim()
            .parse::<i64>()
            .map(|p| p.clamp(0, 9) as u8)
            .map_err(|_| SessionError::BadHeader {
                header: "priority",
                reason: format!("{p:?} is not a number"),
            })?,
    };
    let expires_ms = match frame.header("expires") {
        None => None,
        Some(e) => match e.trim().parse::<u64>() {
            Ok(0) => None,
            Ok(v) => Some(v),
            Err(_) => {
                return Err(SessionError::BadHeader {
                    header: "expires",
                    reason: format!("{e:?} is not a time in milliseconds"),
                })
            }
        },
    };
    let producer = match (
        frame.header(PRODUCER_HEADER),
        frame.header(PRODUCER_SEQ_HEADER),
    ) {
        (Some(id), Some(_)) if id.len() > MAX_PRODUCER_ID_BYTES => {
            return Err(SessionError::BadHeader {
                header: PRODUCER_HEADER,
                reason: format!("longer than {MAX_PRODUCER_ID_BYTES} bytes"),
            })
        }
        (Some(id), Some(seq)) if !id.is_empty() => Some(ProducerRef {
            id: match last_producer {
                Some(last) if &**last == id => Arc::clone(last),
                _ => Arc::clone(last_producer.insert(Arc::from(id))),
            },
            seq: seq
                .trim()
                .parse()
                .ok()
                .filter(|s| (1..=MAX_PRODUCER_SEQ).contains(s))
                .ok_or_else(|| SessionError::BadHeader {
                    header: PRODUCER_SEQ_HEADER,
                    reason: format!("{seq:?} is not a sequence number in 1..={MAX_PRODUCER_SEQ}"),
                })?,
        }),
        (None, None) => None,
        _ => {
            return Err(SessionError::BadHeader {
                header: PRODUCER_HEADER,
                reason: format!("{PRODUCER_HEADER} and {PRODUCER_SEQ_HEADER} go together"),
            })
        }
    };
    if let Some(format) = frame.header(FORWARD_HEADER) {
        return forwarded_message(format, &frame.body, destination, producer);
    }
    let mut fields = MessageFields::default();
    // STOMP keeps the first of repeated headers.
    let mut taken: Vec<&str> = Vec::with_capacity(frame.headers.len());
    for (k, v) in &frame.headers {
        if TRANSPORT_HEADERS.contains(&k) || taken.contains(&k) {
            continue;
        }
        taken.push(k);
        match k {
            "correlation-id" => fields.correlation_id = Some(Arc::from(v)),
            "type" => fields.message_type = Some(Arc::from(v)),
            "JMSXGroupID" => fields.group_id = Some(Arc::from(v)),
            "JMSXGroupSeq" if v.trim().parse::<i32>().is_ok() => {
                fields.group_seq = v.trim().parse().expect("checked");
            }
            // A reply-to naming the sender's own temporary queue must reach it
            // from other connections: it is kept as the destination itself. One
            // that names no destination stays a text property, as it was sent.
            "reply-to" if parse_destination(v, conn).is_ok() => {
                fields.reply_to = parse_destination(v, conn).ok();
            }
            _ => fields
                .properties
                .push((Arc::from(k), PropertyValue::String(Arc::from(v)))),
        }
    }
    // ActiveMQ's rule: a frame that says its length carries bytes, one that
    // does not carries text.
    let body_kind = if frame.header("content-length").is_some() {
        BodyKind::Bytes
    } else {
        BodyKind::Text
    };
    Ok(NewMessage {
        destination,
        fields,
        body_kind,
        // The decoded body shares the connection's read buffer; a queued message
        // must not pin that whole allocation, so it gets its own copy.
        body: bytes::Bytes::copy_from_slice(&frame.body),
        persistent,
        priority,
        expires_ms,
        // ActiveMQ takes a producer's `timestamp` as JMSTimestamp.
        timestamp_ms: frame
            .header("timestamp")
            .and_then(|t| t.trim().parse().ok()),
        producer,
    })
}

/// A network link's SEND ([`FORWARD_HEADER`]): the message is the body, one
/// `Enqueue` in the store's record format (decoded as untrusted input, as
/// the journal's records are). It goes where the frame's `destination` says,
/// whatever the record says, so authorization sees the real destination.
fn forwarded_message(
    format: &str,
    body: &[u8],
    destination: Destination,
    producer: Option<ProducerRef>,
) -> Result<NewMessage, SessionError> {
    let bad = |reason: String| SessionError::BadHeader {
        header: FORWARD_HEADER,
        reason,
    };
    if format != "1" {
        return Err(bad(format!("format {format:?} is not 1")));
    }
    let ops = hawser_broker::store_codec::decode_record(&bytes::Bytes::copy_from_slice(body))
        .map_err(|e| bad(format!("the body is not a message: {e}")))?;
    let [hawser_broker::StoreOp::Enqueue { message, .. }] =
        <[_; 1]>::try_from(ops).map_err(|_| bad("the body is not one message".into()))?
    else {
        return Err(bad("the body is not one message".into()));
    };
    Ok(NewMessage {
        destination,
        producer,
        ..message.into_new()
    })
}

/// Encodes the MESSAGE frame for a delivery, with ActiveMQ's headers, straight
/// into the connection's write buffer: this runs once per delivery, so no frame
/// or header string is built on the way. The headers every subscriber of a
/// topic gets alike are encoded once per message and copied for the others.
pub fn write_message(d: &Delivery, version: Version, dst: &mut BytesMut) {
    let m = &d.message;
    let mut w = FrameWriter::begin(
        Command::Message,
        version,
        MESSAGE_HEADER_BYTES + m.destination.name.len() + app_header_bytes(m) + m.body.len(),
        dst,
    );
    write_delivery_headers(&mut w, d);
    if m.destination.is_topic() {
        let block = m.shared_encoding(version as u8, || {
            let mut block = BytesMut::with_capacity(MESSAGE_HEADER_BYTES + app_header_bytes(m));
            let mut bw = FrameWriter::headers_block(Command::Message, version, &mut block);
            write_common_headers(&mut bw, m);
            bw.end_headers(m.body.len());
            block.freeze()
        });
        if let Some(block) = block {
            w.finish_with_block(block, &m.body);
            return;
        }
    }
    write_common_headers(&mut w, m);
    w.finish(&m.body);
}

/// The headers that depend on the subscriber: its subscription, whether
/// the message is redelivered, and the id to acknowledge.
fn write_delivery_headers(w: &mut FrameWriter<'_>, d: &Delivery) {
    w.header("subscription", &d.subscription);
    if d.redelivery_count > 0 {
        w.header("redelivered", "true");
    }
    // STOMP 1.2 asks for `ack` only where the client acknowledges; an auto-acknowledging
    // subscriber would only decode it and throw it away.
    if !d.auto_ack {
        w.escaped_header_number("ack", message_id_prefix(w), d.message.id);
    }
}

/// Encodes the MESSAGE frame of a duplex link's subscription: the message
/// whole in `record` (`FORWARD_HEADER`), with only the headers the link
/// acknowledges and routes by.
pub fn write_forward(d: &Delivery, record: &[u8], version: Version, dst: &mut BytesMut) {
    let m = &d.message;
    let mut w = FrameWriter::begin(
        Command::Message,
        version,
        MESSAGE_HEADER_BYTES + m.destination.name.len() + record.len(),
        dst,
    );
    write_delivery_headers(&mut w, d);
    w.escaped_header_number("message-id", message_id_prefix(&w), m.id);
    w.header_parts(
        "destination",
        &[destination_prefix(m.destination.kind), &m.destination.name],
    );
    w.header(FORWARD_HEADER, "1");
    w.finish(record);
}

/// The MESSAGE headers that do not depend on the subscriber.
fn write_common_headers(w: &mut FrameWriter<'_>, m: &MessageData) {
    // The broker's own names and the id prefix are constants: written as they go
    // on the wire, not scanned for escapes on every message.
    w.escaped_header_number("message-id", message_id_prefix(w), m.id);
    w.header_parts(
        "destination",
        &[destination_prefix(m.destination.kind), &m.destination.name],
    );
    if m.persistent {
        w.header("persistent", "true");
    }
    w.escaped_header_number("priority", "", u64::from(m.priority));
    w.escaped_header_number("expires", "", m.expires_ms.unwrap_or(0));
    w.escaped_header_number("timestamp", "", m.timestamp_ms);
    let f = &m.fields;
    if let Some(c) = &f.correlation_id {
        w.header("correlation-id", c);
    }
    if let Some(d) = &f.reply_to {
        w.header_parts("reply-to", &[destination_prefix(d.kind), &d.name]);
    }
    if let Some(t) = &f.message_type {
        w.header("type", t);
    }
    // ActiveMQ leaves these out; a STOMP consumer here gets back what a STOMP
    // producer sent, which before typed fields was a plain header.
    if let Some(g) = &f.group_id {
        w.header("JMSXGroupID", g);
        if f.group_seq != 0 {
            w.header("JMSXGroupSeq", &f.group_seq.to_string());
        }
    }
    if let Some(d) = &f.original_destination {
        w.header("original-destination", &d.to_string());
        if let Some(id) = &f.message_id {
            w.header("original-message-id", id);
        }
    }
    for (k, v) in &f.properties {
        match v {
            PropertyValue::String(text) => w.header(k, text),
            // STOMP has no types: the value as Java would print it.
            other => w.header(k, &other.to_string()),
        }
    }
}

/// The message id's constant prefix as it goes on the wire in this frame.
fn message_id_prefix(w: &FrameWriter<'_>) -> &'static str {
    if w.escapes() {
        MESSAGE_ID_PREFIX_ESCAPED
    } else {
        MESSAGE_ID_PREFIX
    }
}

fn app_header_bytes(m: &MessageData) -> usize {
    m.fields.extra_bytes()
}

/// A subscription id for STOMP 1.0 clients, which may omit it: the destination, as ActiveMQ does.
pub fn default_subscription_id(destination: &str) -> Arc<str> {
    Arc::from(destination)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations() {
        assert_eq!(
            parse_destination("/queue/a.b", 1).unwrap(),
            Destination::queue("a.b")
        );
        assert_eq!(
            parse_destination("/topic/t", 1).unwrap(),
            Destination::topic("t")
        );
        let tmp = parse_destination("/temp-queue/r", 7).unwrap();
        assert_eq!(
            destination_name(&tmp),
            format!("/remote-temp-queue/hawser-tmp-{}-7-r", process_token())
        );
        assert_eq!(
            parse_destination(&destination_name(&tmp), 9).unwrap(),
            tmp,
            "another connection reaches it by its remote name"
        );
        assert!(parse_destination("orders", 1).is_err());
        assert!(parse_destination("/queue/", 1).is_err());
        let composite = parse_destination("/queue/a, /topic/b,c", 1).unwrap();
        assert_eq!(composite.kind, DestinationKind::Queue);
        assert_eq!(&*composite.name, "queue://a,topic://b,queue://c");
        assert!(parse_destination("a,/queue/b", 1).is_err());
        assert!(parse_destination("/queue/a,/temp-queue/b", 1).is_err());
    }

    #[test]
    fn send_headers() {
        let f = Frame::new(Command::Send)
            .with_header("destination", "/queue/q")
            .with_header("persistent", "true")
            .with_header("priority", "12")
            .with_header("receipt", "r1")
            .with_header("color", "red")
            .with_header("color", "blue");
        let m = new_message(f, 1, &mut None).unwrap();
        assert!(m.persistent);
        assert_eq!(m.priority, 9);
        assert_eq!(
            m.fields.properties,
            vec![(Arc::from("color"), PropertyValue::String(Arc::from("red")))]
        );
        assert_eq!(m.body_kind, BodyKind::Text, "no content-length: text");
        let bad = Frame::new(Command::Send)
            .with_header("destination", "/queue/q")
            .with_header("expires", "soon");
        assert!(new_message(bad, 1, &mut None).is_err());
    }

    #[test]
    fn jms_headers_become_fields_and_come_back_as_headers() {
        let f = Frame::new(Command::Send)
            .with_header("destination", "/queue/q")
            .with_header("correlation-id", "c-9")
            .with_header("reply-to", "/temp-queue/r")
            .with_header("type", "order")
            .with_header("JMSXGroupID", "g1")
            .with_header("JMSXGroupSeq", "3")
            .with_header("content-length", "2")
            .with_body(&b"hi"[..]);
        let m = new_message(f, 5, &mut None).unwrap();
        assert_eq!(m.body_kind, BodyKind::Bytes, "content-length: bytes");
        assert_eq!(m.fields.correlation_id.as_deref(), Some("c-9"));
        assert_eq!(
            m.fields.reply_to,
            Some(parse_destination("/temp-queue/r", 5).unwrap())
        );
        assert_eq!(m.fields.message_type.as_deref(), Some("order"));
        assert_eq!(m.fields.group_id.as_deref(), Some("g1"));
        assert_eq!(m.fields.group_seq, 3);
        assert!(m.fields.properties.is_empty());

        let mut data = hawser_broker::MessageData::accept(7, m, 1);
        data.fields
            .properties
            .push((Arc::from("n"), PropertyValue::Int(7)));
        let d = Delivery {
            record: 0,
            consumer: 1,
            subscription: Arc::from("s"),
            message: Arc::new(hawser_broker::Message::new(
                data,
                &hawser_broker::MemoryUsage::new(u64::MAX),
            )),
            redelivery_count: 0,
            seq: 0,
            auto_ack: true,
        };
        let out = decoded(&d, Version::V1_2);
        assert_eq!(out.header("correlation-id"), Some("c-9"));
        assert_eq!(
            out.header("reply-to"),
            Some(&*format!(
                "/remote-temp-queue/hawser-tmp-{}-5-r",
                process_token()
            ))
        );
        assert_eq!(out.header("type"), Some("order"));
        assert_eq!(out.header("JMSXGroupID"), Some("g1"));
        assert_eq!(out.header("JMSXGroupSeq"), Some("3"));
        assert_eq!(out.header("n"), Some("7"), "typed properties as text");
    }

    #[test]
    fn a_reply_to_that_names_no_destination_stays_a_property() {
        let f = Frame::new(Command::Send)
            .with_header("destination", "/queue/q")
            .with_header("reply-to", "somewhere");
        let m = new_message(f, 1, &mut None).unwrap();
        assert_eq!(m.fields.reply_to, None);
        assert_eq!(
            m.fields.properties,
            vec![(
                Arc::from("reply-to"),
                PropertyValue::String(Arc::from("somewhere"))
            )]
        );
    }

    #[test]
    fn message_ids_round_trip() {
        assert_eq!(
            parse_message_id(&format!("{MESSAGE_ID_PREFIX}42")).unwrap(),
            42
        );
        assert!(parse_message_id("ID:other-1").is_err());
    }

    fn delivery(
        destination: Destination,
        headers: Vec<(String, String)>,
        redelivery_count: u32,
    ) -> Delivery {
        use hawser_broker::{MemoryUsage, Message, MessageData};
        let data = MessageData {
            id: 7,
            destination,
            fields: MessageFields {
                properties: headers
                    .into_iter()
                    .map(|(k, v)| (Arc::from(k), PropertyValue::String(Arc::from(v))))
                    .collect(),
                ..MessageFields::default()
            },
            body_kind: BodyKind::Bytes,
            body: bytes::Bytes::from_static(b"a\0b"),
            persistent: true,
            priority: 9,
            expires_ms: None,
            timestamp_ms: 1_700_000_000_000,
        };
        Delivery {
            record: 0,
            consumer: 1,
            subscription: Arc::from("sub:1"),
            message: Arc::new(Message::new(data, &MemoryUsage::new(u64::MAX))),
            redelivery_count,
            seq: 0,
            auto_ack: false,
        }
    }

    fn decoded(d: &Delivery, version: Version) -> Frame {
        let mut wire = BytesMut::new();
        write_message(d, version, &mut wire);
        let mut decoder = hawser_stomp::Decoder::default();
        decoder.set_version(version);
        match decoder.decode(&mut wire).unwrap() {
            Some(hawser_stomp::Item::Frame(f)) => {
                assert!(wire.is_empty(), "one whole frame");
                f
            }
            other => panic!("expected a frame, got {other:?}"),
        }
    }

    #[test]
    fn message_frames_carry_activemq_headers_then_the_application_ones() {
        for destination in [Destination::topic("news"), Destination::queue("news")] {
            let topic = destination.is_topic();
            let d = delivery(destination, vec![("color".into(), "red:blue".into())], 2);
            let f = decoded(&d, Version::V1_2);
            let dest = if topic { "/topic/news" } else { "/queue/news" };
            assert_eq!(f.command, Command::Message);
            assert_eq!(
                f.headers.iter().collect::<Vec<_>>(),
                [
                    ("subscription", "sub:1"),
                    ("redelivered", "true"),
                    ("ack", "ID:hawser-7"),
                    ("message-id", "ID:hawser-7"),
                    ("destination", dest),
                    ("persistent", "true"),
                    ("priority", "9"),
                    ("expires", "0"),
                    ("timestamp", "1700000000000"),
                    ("color", "red:blue"),
                    ("content-length", "3"),
                ]
            );
            assert_eq!(&f.body[..], b"a\0b");
        }
    }

    #[test]
    fn auto_acknowledged_deliveries_carry_no_ack_header() {
        for destination in [Destination::topic("t"), Destination::queue("q")] {
            let mut d = delivery(destination, Vec::new(), 0);
            d.auto_ack = true;
            let f = decoded(&d, Version::V1_2);
            assert_eq!(f.header("ack"), None);
            assert_eq!(f.header("message-id"), Some("ID:hawser-7"));
        }
    }

    #[test]
    fn message_ids_read_back_the_same_in_every_version() {
        for version in [Version::V1_0, Version::V1_1, Version::V1_2] {
            for destination in [Destination::topic("t"), Destination::queue("q")] {
                let f = decoded(&delivery(destination, Vec::new(), 0), version);
                assert_eq!(f.header("message-id"), Some("ID:hawser-7"), "{version:?}");
                assert_eq!(f.header("ack"), Some("ID:hawser-7"), "{version:?}");
                assert_eq!(f.header("timestamp"), Some("1700000000000"));
            }
        }
    }

    #[test]
    fn topic_subscribers_share_one_encoding_per_version() {
        let d = delivery(
            Destination::topic("news"),
            vec![("k".into(), "a:b".into())],
            0,
        );
        let other = Delivery {
            record: 0,
            subscription: Arc::from("other"),
            redelivery_count: 1,
            ..d.clone()
        };
        let first = decoded(&d, Version::V1_2);
        let second = decoded(&other, Version::V1_2);
        assert_eq!(second.header("subscription"), Some("other"));
        assert_eq!(second.header("redelivered"), Some("true"));
        let common = |f: &Frame| {
            f.headers
                .iter()
                .filter(|(k, _)| !matches!(*k, "subscription" | "redelivered"))
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect::<Vec<_>>()
        };
        assert_eq!(common(&first), common(&second));
        assert_eq!(first.body, second.body);
        // A 1.1 subscriber of the same message gets its own encoding, escaped for 1.1.
        let v11 = decoded(&other, Version::V1_1);
        assert_eq!(v11.header("k"), Some("a:b"));
        assert_eq!(common(&v11), common(&first));
    }

    #[test]
    fn message_frames_for_1_0_have_no_escapes_and_first_deliveries_no_redelivered() {
        let d = delivery(
            Destination::queue("q"),
            vec![("line".into(), "a\nb".into())],
            0,
        );
        let f = decoded(&d, Version::V1_0);
        assert_eq!(
            f.header("line"),
            Some("a b"),
            "a line break cannot be sent in 1.0"
        );
        assert_eq!(f.header("redelivered"), None);
        assert_eq!(f.header("subscription"), Some("sub:1"));
    }
}
