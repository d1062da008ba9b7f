//! Messages held by the engine, and the memory they are charged against.
//!
//! A message is immutable once accepted and shared (`Arc`) between every queue or
//! subscription that holds it, so a topic fan-out costs one copy of the body.
//! Each message carries a [`MemoryCharge`] that returns its bytes to the broker's
//! [`MemoryUsage`] (and its destination's) when the last holder drops it;
//! producer flow control reads that usage (see [`crate::usage`]).

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use hawser_selector::{Properties as SelectorProperties, Value};

use crate::destination::Destination;
use crate::property::{property, Properties, PropertyValue};
use crate::usage::{DestinationUsage, MemoryCharge, MemoryUsage};

/// The engine's identity for a message: unique within a store, increasing in send order.
pub type MessageId = u64;

/// JMS's default priority, used when a producer sets none.
pub const DEFAULT_PRIORITY: u8 = 4;
/// The highest JMS priority; priorities above it are clamped.
pub const MAX_PRIORITY: u8 = 9;

/// What a message's body holds, as JMS distinguishes it. The engine never
/// looks inside a body: the kind tells a consumer's protocol how to present it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum BodyKind {
    /// No body (a plain JMS `Message`).
    Empty,
    /// UTF-8 text (`TextMessage`).
    Text,
    /// A `TextMessage` whose text is null, not empty (JMS tells them apart): no body.
    NullText,
    /// Opaque bytes (`BytesMessage`).
    #[default]
    Bytes,
    /// Named typed values (`MapMessage`), in the encoding of the protocol that sent it.
    Map,
    /// A sequence of typed values (`StreamMessage`), likewise.
    Stream,
    /// A serialized object (`ObjectMessage`): bytes the broker never deserializes.
    Object,
}

impl BodyKind {
    /// The number the store writes for it.
    pub fn code(self) -> u8 {
        match self {
            BodyKind::Empty => 0,
            BodyKind::Text => 1,
            BodyKind::Bytes => 2,
            BodyKind::Map => 3,
            BodyKind::Stream => 4,
            BodyKind::Object => 5,
            BodyKind::NullText => 6,
        }
    }

    /// The kind the store wrote as `code`.
    pub fn from_code(code: u8) -> Option<BodyKind> {
        Some(match code {
            0 => BodyKind::Empty,
            1 => BodyKind::Text,
            2 => BodyKind::Bytes,
            3 => BodyKind::Map,
            4 => BodyKind::Stream,
            5 => BodyKind::Object,
            6 => BodyKind::NullText,
            _ => return None,
        })
    }
}

/// The JMS header fields a producer sets, and its properties. Every protocol
/// maps its own headers onto these; the engine names none of them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MessageFields {
    /// The id the producer gave the message (`JMSMessageID`), if its protocol
    /// has one; the broker's own [`MessageId`] is separate.
    pub message_id: Option<Arc<str>>,
    /// `JMSCorrelationID`.
    pub correlation_id: Option<Arc<str>>,
    /// `JMSReplyTo`.
    pub reply_to: Option<Destination>,
    /// `JMSType`.
    pub message_type: Option<Arc<str>>,
    /// Where a dead letter was first sent (ActiveMQ's `originalDestination`).
    pub original_destination: Option<Destination>,
    /// `JMSXGroupID`: messages of a group go to one consumer at a time.
    pub group_id: Option<Arc<str>>,
    /// `JMSXGroupSeq` (0 when unset; -1 closes the group).
    pub group_seq: i32,
    /// Application properties.
    pub properties: Properties,
}

impl MessageFields {
    /// Bytes the fields hold beyond a fixed overhead (for memory accounting).
    pub fn extra_bytes(&self) -> usize {
        let text = |s: &Option<Arc<str>>| s.as_deref().map_or(0, str::len);
        text(&self.message_id)
            + text(&self.correlation_id)
            + text(&self.message_type)
            + text(&self.group_id)
            + self.reply_to.as_ref().map_or(0, |d| d.name.len())
            + self
                .original_destination
                .as_ref()
                .map_or(0, |d| d.name.len())
            + self
                .properties
                .iter()
                .map(|(k, v)| k.len() + v.extra_bytes() + 48)
                .sum::<usize>()
    }
}

/// What a producer hands the engine: everything but the identity the broker assigns.
#[derive(Clone, Debug, PartialEq)]
pub struct NewMessage {
    /// Where the message goes.
    pub destination: Destination,
    /// The JMS fields and properties. Protocol-level headers (receipt,
    /// transaction, content-length...) are the codec's and are not here.
    pub fields: MessageFields,
    /// What the body holds.
    pub body_kind: BodyKind,
    /// The payload, opaque to the broker.
    pub body: Bytes,
    /// Persistent messages are written to the store before anyone is told they exist.
    pub persistent: bool,
    /// 0 (lowest) to 9 (highest).
    pub priority: u8,
    /// Absolute expiry time in milliseconds since the Unix epoch; `None` never expires.
    pub expires_ms: Option<u64>,
    /// When the producer sent it (`JMSTimestamp`), if it said; else the broker's arrival time.
    pub timestamp_ms: Option<u64>,
    /// Who sent it and its place in that producer's sequence, for duplicate detection.
    pub producer: Option<ProducerRef>,
}

impl NewMessage {
    /// A non-persistent bytes message of default priority with no fields set.
    pub fn new(destination: Destination, body: Bytes) -> NewMessage {
        NewMessage {
            destination,
            fields: MessageFields::default(),
            body_kind: BodyKind::Bytes,
            body,
            persistent: false,
            priority: DEFAULT_PRIORITY,
            expires_ms: None,
            timestamp_ms: None,
            producer: None,
        }
    }
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
#[derive(Clone, Debug, PartialEq)]
pub struct MessageData {
    /// Broker-assigned identity.
    pub id: MessageId,
    /// Where the producer sent it (not where it is now: a dead letter keeps its origin here).
    pub destination: Destination,
    /// The JMS fields and properties.
    pub fields: MessageFields,
    /// What the body holds.
    pub body_kind: BodyKind,
    /// The payload.
    pub body: Bytes,
    /// Whether the message is kept in the store.
    pub persistent: bool,
    /// 0..=9.
    pub priority: u8,
    /// Absolute expiry in ms since the epoch, if any.
    pub expires_ms: Option<u64>,
    /// When the producer sent it, or else when the broker accepted it, in ms since the epoch.
    pub timestamp_ms: u64,
}

impl MessageData {
    /// Gives a producer's message its identity, and its arrival time unless the producer set one.
    pub fn accept(id: MessageId, new: NewMessage, now_ms: u64) -> MessageData {
        MessageData {
            id,
            destination: new.destination,
            fields: new.fields,
            body_kind: new.body_kind,
            body: new.body,
            persistent: new.persistent,
            priority: new.priority.min(MAX_PRIORITY),
            expires_ms: new.expires_ms,
            timestamp_ms: new.timestamp_ms.unwrap_or(now_ms),
        }
    }

    /// The message as a producer's again, to be accepted anew (a recovered
    /// prepared transaction's send gets its id when the transaction commits).
    /// The producer's identity is not stored with it.
    pub fn into_new(self) -> NewMessage {
        NewMessage {
            destination: self.destination,
            fields: self.fields,
            body_kind: self.body_kind,
            body: self.body,
            persistent: self.persistent,
            priority: self.priority,
            expires_ms: self.expires_ms,
            timestamp_ms: Some(self.timestamp_ms),
            producer: None,
        }
    }

    /// The application property `name`.
    pub fn property(&self, name: &str) -> Option<&PropertyValue> {
        property(&self.fields.properties, name)
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
        let bytes = estimate_bytes(&data.fields, &data.body);
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

    /// The memory counters of its destination, if it is charged to one.
    pub fn usage(&self) -> Option<&Arc<crate::usage::DestinationUsage>> {
        self.charge.destination()
    }

    /// Whether the memory it is charged to has room for it (it counts itself).
    pub fn room(&self) -> Result<(), crate::usage::Full> {
        self.charge.room()
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

/// Rough memory held by a message: body plus fields plus a fixed overhead for the structs.
pub fn estimate_bytes(fields: &MessageFields, body: &Bytes) -> u64 {
    const OVERHEAD_BYTES: u64 = 256;
    OVERHEAD_BYTES + (fields.extra_bytes() + body.len()) as u64
}

/// A text field as a selector value.
fn text(s: &Option<Arc<str>>) -> Option<Value<'_>> {
    s.as_deref().map(|v| Value::Str(v.into()))
}

/// Selectors see the JMS header fields by their JMS names and every property
/// with its type (text from STOMP compares as a number against a number).
impl SelectorProperties for MessageData {
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
            "JMSMessageID" => match &self.fields.message_id {
                Some(id) => Some(Value::Str((&**id).into())),
                None => Some(Value::Str(format!("ID:hawser-{}", self.id).into())),
            },
            "JMSCorrelationID" => text(&self.fields.correlation_id),
            "JMSType" => text(&self.fields.message_type),
            "JMSXGroupID" => text(&self.fields.group_id),
            "JMSXGroupSeq" => Some(Value::Int(i64::from(self.fields.group_seq))),
            _ => self.property(name).and_then(PropertyValue::selector_value),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_message(body: &'static [u8]) -> NewMessage {
        let mut m = NewMessage::new(Destination::queue("q"), Bytes::from_static(body));
        m.fields.properties = vec![(Arc::from("color"), PropertyValue::String(Arc::from("blue")))];
        m.priority = 12;
        m
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
