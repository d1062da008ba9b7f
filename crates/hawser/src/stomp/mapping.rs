//! Translation between STOMP's vocabulary and the engine's, as ActiveMQ spells it:
//! destination prefixes, message ids, the headers of SEND and MESSAGE frames.

use std::sync::Arc;

use hawser_broker::{
    ConnectionId, Delivery, Destination, DestinationKind, MessageId, NewMessage, ProducerRef,
};
use hawser_stomp::extensions::{PRODUCER_HEADER, PRODUCER_SEQ_HEADER};
use hawser_stomp::{Command, Frame};

use super::SessionError;

/// Prefix of the message ids this broker hands out.
pub const MESSAGE_ID_PREFIX: &str = "ID:hawser-";

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
pub fn parse_destination(text: &str, conn: ConnectionId) -> Result<Destination, SessionError> {
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
        format!("hawser-tmp-{conn}-{name}")
    } else {
        name.to_owned()
    };
    Destination::new(kind, &name).map_err(|e| SessionError::BadHeader {
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
    let prefix = match d.kind {
        DestinationKind::Queue => "/queue/",
        DestinationKind::Topic => "/topic/",
        DestinationKind::TempQueue => "/remote-temp-queue/",
        DestinationKind::TempTopic => "/remote-temp-topic/",
    };
    format!("{prefix}{}", d.name)
}

/// The STOMP message id of an engine message.
pub fn message_id(id: MessageId) -> String {
    format!("{MESSAGE_ID_PREFIX}{id}")
}

/// Reads back a message id this broker issued.
pub fn parse_message_id(text: &str) -> Result<MessageId, SessionError> {
    text.strip_prefix(MESSAGE_ID_PREFIX)
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| SessionError::UnknownMessage(text.to_owned()))
}

/// Builds the engine's message from a SEND frame.
pub fn new_message(frame: Frame, conn: ConnectionId) -> Result<NewMessage, SessionError> {
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
        (Some(id), Some(seq)) if !id.is_empty() => Some(ProducerRef {
            id: Arc::from(id),
            seq: seq.trim().parse().map_err(|_| SessionError::BadHeader {
                header: PRODUCER_SEQ_HEADER,
                reason: format!("{seq:?} is not a sequence number"),
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
    let mut headers = Vec::with_capacity(frame.headers.len());
    for (k, v) in frame.headers {
        if TRANSPORT_HEADERS.contains(&k.as_str()) || headers.iter().any(|(h, _)| *h == k) {
            continue;
        }
        // A reply-to naming the sender's own temporary queue must reach it from
        // other connections, so it carries the broker's global name.
        let v = if k == "reply-to"
            && (v.starts_with("/temp-queue/") || v.starts_with("/temp-topic/"))
        {
            destination_name(&parse_destination(&v, conn)?)
        } else {
            v
        };
        headers.push((k, v));
    }
    Ok(NewMessage {
        destination,
        headers,
        // The decoded body shares the connection's read buffer; a queued message
        // must not pin that whole allocation, so it gets its own copy.
        body: bytes::Bytes::copy_from_slice(&frame.body),
        persistent,
        priority,
        expires_ms,
        producer,
    })
}

/// The MESSAGE frame for a delivery, with ActiveMQ's headers.
pub fn message_frame(d: &Delivery) -> Frame {
    let m = &d.message;
    let id = message_id(m.id);
    let mut headers = Vec::with_capacity(m.headers.len() + 9);
    headers.push(("subscription".to_owned(), d.subscription.to_string()));
    headers.push(("message-id".to_owned(), id.clone()));
    headers.push(("destination".to_owned(), destination_name(&m.destination)));
    headers.push(("ack".to_owned(), id));
    if m.persistent {
        headers.push(("persistent".to_owned(), "true".to_owned()));
    }
    headers.push(("priority".to_owned(), m.priority.to_string()));
    headers.push(("expires".to_owned(), m.expires_ms.unwrap_or(0).to_string()));
    headers.push(("timestamp".to_owned(), m.timestamp_ms.to_string()));
    if d.redelivery_count > 0 {
        headers.push(("redelivered".to_owned(), "true".to_owned()));
    }
    headers.extend(m.headers.iter().cloned());
    Frame {
        command: Command::Message,
        headers,
        body: m.body.clone(),
    }
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
        assert_eq!(destination_name(&tmp), "/remote-temp-queue/hawser-tmp-7-r");
        assert_eq!(
            parse_destination(&destination_name(&tmp), 9).unwrap(),
            tmp,
            "another connection reaches it by its remote name"
        );
        assert!(parse_destination("orders", 1).is_err());
        assert!(parse_destination("/queue/", 1).is_err());
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
        let m = new_message(f, 1).unwrap();
        assert!(m.persistent);
        assert_eq!(m.priority, 9);
        assert_eq!(m.headers, vec![("color".to_owned(), "red".to_owned())]);
        let bad = Frame::new(Command::Send)
            .with_header("destination", "/queue/q")
            .with_header("expires", "soon");
        assert!(new_message(bad, 1).is_err());
    }

    #[test]
    fn message_ids_round_trip() {
        assert_eq!(parse_message_id(&message_id(42)).unwrap(), 42);
        assert!(parse_message_id("ID:other-1").is_err());
    }
}
