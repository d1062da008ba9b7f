//! Messages held by the engine, and the memory they are charged against.
//!
//! A message is immutable once accepted and shared (`Arc`) between every queue or
//! subscription that holds it, so a topic fan-out costs one copy of the body.
//! Each message carries a [`MemoryCharge`] that returns its bytes to the broker's
//! [`MemoryUsage`] (and its destination's) when the last holder drops it;
//! producer flow control reads that usage (see [`crate::usage`]).

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use hawser_selector::{Properties, Value};

use crate::destination::Destination;
use crate::usage::{DestinationUsage, MemoryCharge, MemoryUsage};

/// The engine's identity for a message: unique within a store, increasing in send order.
pub type MessageId = u64;

/// JMS's default priority, used when a producer sets none.
pub const DEFAULT_PRIORITY: u8 = 4;
/// The highest JMS priority; priorities above it are clamped.
pub const MAX_PRIORITY: u8 = 9;

/// What a producer hands the engine: everything but the identity the broker assigns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewMessage {
    /// Where the message goes.
    pub destination: Destination,
    /// Application headers (properties), in the producer's order. Protocol-level
    /// headers (receipt, transaction, content-length...) are stripped by the codec.
    pub headers: Vec<(String, String)>,
    /// The payload, opaque to the broker.
    pub body: Bytes,
    /// Persistent messages are written to the store before anyone is told they exist.
    pub persistent: bool,
    /// 0 (lowest) to 9 (highest).
    pub priority: u8,
    /// Absolute expiry time in milliseconds since the Unix epoch; `None` never expires.
    pub expires_ms: Option<u64>,
    /// Who sent it and its place in that producer's sequence, for duplicate detection.
    pub producer: Option<ProducerRef>,
}

/// A producer's identity and a message's sequence number within it. Clients
/// number their sends so that a resend after a failover can be recognised.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProducerRef {
    /// Chosen by the client, unique per producer.
    pub id: Arc<str>,
    /// Increases by one per message.
    pub seq: u64,
}

/// The stored content of an accepted message: what a store writes and recovers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageData {
    /// Broker-assigned identity.
    pub id: MessageId,
    /// Where the producer sent it (not where it is now: a dead letter keeps its origin here).
    pub destination: Destination,
    /// Application headers (properties).
    pub headers: Vec<(String, String)>,
    /// The payload.
    pub body: Bytes,
    /// Whether the message is kept in the store.
    pub persistent: bool,
    /// 0..=9.
    pub priority: u8,
    /// Absolute expiry in ms since the epoch, if any.
    pub expires_ms: Option<u64>,
    /// When the broker accepted it, in ms since the epoch.
    pub timestamp_ms: u64,
}

impl MessageData {
    /// Gives a producer's message its identity and arrival time.
    pub fn accept(id: MessageId, new: NewMessage, timestamp_ms: u64) -> MessageData {
        MessageData {
            id,
            destination: new.destination,
            headers: new.headers,
            body: new.body,
            persistent: new.persistent,
            priority: new.priority.min(MAX_PRIORITY),
            expires_ms: new.expires_ms,
            timestamp_ms,
        }
    }

    /// The first application header named `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// True if the message has an expiry time at or before `now_ms`.
    pub fn is_expired(&self, now_ms: u64) -> bool {
        self.expires_ms.is_some_and(|e| e != 0 && e <= now_ms)
    }
}

/// A message held in memory by the broker, charged against [`MemoryUsage`].
#[derive(Debug)]
pub struct Message {
    /// What the message is.
    data: MessageData,
    /// Returns this message's bytes to the broker's memory usage when dropped.
    charge: MemoryCharge,
    /// The part of a protocol's frame that is the same for every subscriber,
    /// encoded by the first delivery of a fanned-out message and tagged with the
    /// variant (e.g. protocol version) it was made for; see [`Message::shared_encoding`].
    shared_encoding: OnceLock<(u8, Bytes)>,
}

impl Message {
    /// Wraps stored content and charges its size to `usage` (no destination's).
    pub fn new(data: MessageData, usage: &Arc<MemoryUsage>) -> Message {
        Message::charged(data, usage, None)
    }

    /// Wraps stored content and charges its size to the broker and to `destination`.
    pub fn charged(
        data: MessageData,
        usage: &Arc<MemoryUsage>,
        destination: Option<&Arc<DestinationUsage>>,
    ) -> Message {
        let bytes = estimate_bytes(&data.headers, &data.body);
        Message {
            data,
            charge: MemoryCharge::new(usage, destination, bytes),
            shared_encoding: OnceLock::new(),
        }
    }

    /// What a protocol encodes once per message and reuses for every subscriber
    /// of a topic, made by `make` on first use. `None` when it was made for
    /// another `variant` (a subscriber speaking another version): the caller
    /// then encodes for itself. It is a few hundred bytes of headers, not
    /// charged to the memory usage.
    pub fn shared_encoding(&self, variant: u8, make: impl FnOnce() -> Bytes) -> Option<&Bytes> {
        let (made_for, bytes) = self.shared_encoding.get_or_init(|| (variant, make()));
        (*made_for == variant).then_some(bytes)
    }

    /// Bytes this message is charged for.
    pub fn size_bytes(&self) -> u64 {
        self.charge.bytes()
    }
}

impl std::ops::Deref for Message {
    type Target = MessageData;
    fn deref(&self) -> &MessageData {
        &self.data
    }
}

/// Anything that holds a message's content: lets stores encode `Arc<Message>`
/// from the engine and plain [`MessageData`] from recovery with one function.
pub trait AsMessageData {
    /// The content.
    fn message_data(&self) -> &MessageData;
}

impl AsMessageData for MessageData {
    fn message_data(&self) -> &MessageData {
        self
    }
}

impl AsMessageData for Message {
    fn message_data(&self) -> &MessageData {
        &self.data
    }
}

impl AsMessageData for Arc<Message> {
    fn message_data(&self) -> &MessageData {
        &self.data
    }
}

/// Rough memory held by a message: body plus header text plus a fixed overhead for the structs.
pub(crate) fn estimate_bytes(headers: &[(String, String)], body: &Bytes) -> u64 {
    const OVERHEAD_BYTES: u64 = 256;
    let header_bytes: usize = headers.iter().map(|(k, v)| k.len() + v.len() + 48).sum();
    OVERHEAD_BYTES + (header_bytes + body.len()) as u64
}

/// Selectors see the JMS header names and every application header.
///
/// Application header values are strings (STOMP has no types); the selector
/// compares them as numbers when the other side is a number.
impl Properties for MessageData {
    fn get(&self, name: &str) -> Option<Value<'_>> {
        match name {
            "JMSPriority" => Some(Value::Int(i64::from(self.priority))),
            "JMSTimestamp" => Some(Value::Int(self.timestamp_ms as i64)),
            "JMSExpiration" => Some(Value::Int(self.expires_ms.unwrap_or(0) as i64)),
            "JMSDeliveryMode" => Some(Value::Str(
                if self.persistent {
                    "PERSISTENT"
                } else {
                    "NON_PERSISTENT"
                }
                .into(),
            )),
            "JMSMessageID" => Some(Value::Str(format!("ID:hawser-{}", self.id).into())),
            "JMSCorrelationID" => self.header("correlation-id").map(|v| Value::Str(v.into())),
            "JMSType" => self.header("type").map(|v| Value::Str(v.into())),
            _ => self.header(name).map(|v| Value::Str(v.into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_message(body: &'static [u8]) -> NewMessage {
        NewMessage {
            destination: Destination::queue("q"),
            headers: vec![("color".into(), "blue".into())],
            body: Bytes::from_static(body),
            persistent: false,
            priority: 12,
            expires_ms: None,
            producer: None,
        }
    }

    #[test]
    fn memory_is_charged_and_released() {
        let usage = MemoryUsage::new(1 << 20);
        let m = Message::new(MessageData::accept(1, new_message(b"hello"), 0), &usage);
        assert!(usage.used() > 5);
        assert_eq!(m.priority, MAX_PRIORITY, "priority is clamped");
        drop(m);
        assert_eq!(usage.used(), 0);
    }

    #[test]
    fn selector_properties() {
        let m = MessageData::accept(7, new_message(b""), 0);
        let sel = hawser_selector::Selector::parse("color = 'blue' AND JMSPriority = 9").unwrap();
        assert!(sel.matches(&m));
        let sel = hawser_selector::Selector::parse("JMSDeliveryMode = 'PERSISTENT'").unwrap();
        assert!(!sel.matches(&m));
    }
}
