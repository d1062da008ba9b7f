//! Messages (types 23 to 29): one layout for every JMS message type, told apart by the type
//! byte and by what the body holds.
//!
//! The body (`content`) stays opaque bytes: a text message's modified UTF-8 with its length,
//! a map message's primitive map, an object message's Java serialization (never
//! deserialized here), each possibly deflated when `compressed` is set. Properties are
//! decoded into a typed [`PrimitiveMap`], since the broker reads them (selectors, groups).

use bytes::Bytes;

use crate::cursor::ReadError;
use crate::data_structure::{type_id, DataStructure};
use crate::destination::Destination;
use crate::ids::{BrokerId, ConsumerId, MessageId, ProducerId};
use crate::reader::Reader;
use crate::transaction::TransactionId;
use crate::writer::Writer;
use crate::{EncodeError, PrimitiveMap};

/// Which JMS message type, from the type byte.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum MessageKind {
    /// `ActiveMQMessage` (23): a message without a body.
    #[default]
    Plain,
    /// `ActiveMQBytesMessage` (24): raw bytes (if compressed: i32 length + deflate).
    Bytes,
    /// `ActiveMQMapMessage` (25): a primitive map.
    Map,
    /// `ActiveMQObjectMessage` (26): a Java-serialized object, opaque.
    Object,
    /// `ActiveMQStreamMessage` (27): tagged primitives without a count.
    Stream,
    /// `ActiveMQTextMessage` (28): i32 length (-1: null) + modified UTF-8.
    Text,
    /// `ActiveMQBlobMessage` (29, since version 3): the body is elsewhere, at a URL.
    Blob(BlobInfo),
}

/// The fields a blob message adds after the common ones.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BlobInfo {
    /// Where the body is.
    pub remote_blob_url: Option<String>,
    /// Its MIME type.
    pub mime_type: Option<String>,
    /// The broker has deleted the body.
    pub deleted_by_broker: bool,
}

impl MessageKind {
    pub(crate) fn type_id(&self) -> u8 {
        match self {
            MessageKind::Plain => type_id::MESSAGE,
            MessageKind::Bytes => type_id::BYTES_MESSAGE,
            MessageKind::Map => type_id::MAP_MESSAGE,
            MessageKind::Object => type_id::OBJECT_MESSAGE,
            MessageKind::Stream => type_id::STREAM_MESSAGE,
            MessageKind::Text => type_id::TEXT_MESSAGE,
            MessageKind::Blob(_) => type_id::BLOB_MESSAGE,
        }
    }
}

/// The text of an uncompressed TextMessage body: a big-endian i32 length (-1 for a null
/// text) and that many bytes of modified UTF-8, as Java's client stores it.
///
/// # Errors
/// `Truncated` when the length says more than the body holds, `InvalidString` when the
/// bytes are not modified UTF-8 or bytes follow the text.
pub fn decode_text_body(content: &[u8]) -> Result<Option<String>, crate::DecodeError> {
    let (len, text) = content
        .split_first_chunk::<4>()
        .ok_or(crate::DecodeError::Truncated)?;
    let len = i32::from_be_bytes(*len);
    if len < 0 {
        return Ok(None);
    }
    let len = len as usize;
    if text.len() < len {
        return Err(crate::DecodeError::Truncated);
    }
    if text.len() > len {
        return Err(crate::DecodeError::InvalidString);
    }
    crate::modified_utf8::decode(text).map(Some)
}

/// A TextMessage body holding `text` (see [`decode_text_body`]).
pub fn encode_text_body(text: Option<&str>) -> Bytes {
    let Some(text) = text else {
        return Bytes::from_static(&[0xff, 0xff, 0xff, 0xff]);
    };
    let mut out = bytes::BytesMut::with_capacity(4 + crate::modified_utf8::encoded_len(text));
    out.extend_from_slice(&(crate::modified_utf8::encoded_len(text) as i32).to_be_bytes());
    crate::modified_utf8::encode(text, &mut out);
    out.freeze()
}

/// A message, as a producer sends it and as a MessageDispatch delivers it.
///
/// Field order is the wire order. `Default` is Java's zero values, not its constructor's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Message {
    /// The JMS type, from the type byte.
    pub kind: MessageKind,
    /// The command's number (a producer's send).
    pub command_id: i32,
    /// A synchronous send: the producer waits for the Response (persistent sends outside a
    /// transaction, by default).
    pub response_required: bool,
    /// The producer (cached).
    pub producer_id: Option<ProducerId>,
    /// Where the message goes (cached).
    pub destination: Option<Destination>,
    /// The transaction the send is part of (cached).
    pub transaction_id: Option<TransactionId>,
    /// Where the message was first sent, if it has been moved (a DLQ) (cached).
    pub original_destination: Option<Destination>,
    /// JMSMessageID: the producer and its sequence number.
    pub message_id: Option<MessageId>,
    /// The transaction of the original send (cached).
    pub original_transaction_id: Option<TransactionId>,
    /// JMSXGroupID.
    pub group_id: Option<String>,
    /// JMSXGroupSeq.
    pub group_sequence: i32,
    /// JMSCorrelationID.
    pub correlation_id: Option<String>,
    /// JMSDeliveryMode is PERSISTENT.
    pub persistent: bool,
    /// JMSExpiration, ms since the epoch; 0 never expires.
    pub expiration: i64,
    /// JMSPriority (0 to 9).
    pub priority: i8,
    /// JMSReplyTo (not cached).
    pub reply_to: Option<Destination>,
    /// JMSTimestamp, ms since the epoch.
    pub timestamp: i64,
    /// JMSType.
    pub jms_type: Option<String>,
    /// The body, opaque (see [`MessageKind`] for each type's format).
    pub content: Option<Bytes>,
    /// Application, JMSX and vendor properties (`marshalledProperties` on the wire).
    pub properties: Option<PrimitiveMap>,
    /// An advisory's payload (a ConsumerInfo, a DestinationInfo...).
    pub data_structure: Option<DataStructure>,
    /// The consumer the message is meant for (cached).
    pub target_consumer_id: Option<ConsumerId>,
    /// The body is deflated.
    pub compressed: bool,
    /// Times the message was redelivered (JMSXDeliveryCount - 1).
    pub redelivery_counter: i32,
    /// Brokers the message has passed through (network of brokers).
    pub broker_path: Option<Vec<BrokerId>>,
    /// When the message arrived at the broker, ms since the epoch.
    pub arrival: i64,
    /// JMSXUserID.
    pub user_id: Option<String>,
    /// Received by a durable-forwarding bridge (Java spells it `recievedByDFBridge`).
    pub received_by_df_bridge: bool,
    /// May be dropped under memory pressure. Since version 2.
    pub droppable: bool,
    /// Brokers of a cluster the message has visited. Since version 3.
    pub cluster: Option<Vec<BrokerId>>,
    /// When the broker received it, ms since the epoch. Since version 3.
    pub broker_in_time: i64,
    /// When the broker dispatched it, ms since the epoch. Since version 3.
    pub broker_out_time: i64,
    /// JMSXGroupFirstForConsumer: first message of its group for this consumer. Since
    /// version 10.
    pub jmsx_group_first_for_consumer: bool,
}

impl Message {
    pub(crate) fn type_id(&self) -> u8 {
        self.kind.type_id()
    }

    /// The message body for `type_id`, a message type (23 to 29).
    pub(crate) fn unmarshal(type_id: u8, r: &mut Reader<'_, '_>) -> Result<Self, ReadError> {
        let (command_id, response_required) = r.command_header()?;
        let v = r.version();
        let mut message = Message {
            kind: MessageKind::Plain,
            command_id,
            response_required,
            producer_id: r.cached("Message.producerId")?,
            destination: r.cached("Message.destination")?,
            transaction_id: r.cached("Message.transactionId")?,
            original_destination: r.cached("Message.originalDestination")?,
            message_id: r.nested("Message.messageId")?,
            original_transaction_id: r.cached("Message.originalTransactionId")?,
            group_id: r.string()?,
            group_sequence: r.i32()?,
            correlation_id: r.string()?,
            persistent: r.boolean()?,
            expiration: r.long()?,
            priority: r.i8()?,
            reply_to: r.nested("Message.replyTo")?,
            timestamp: r.long()?,
            jms_type: r.string()?,
            content: r.bytes()?,
            properties: r.primitive_map(usize::MAX)?,
            data_structure: r.nested_any()?,
            target_consumer_id: r.cached("Message.targetConsumerId")?,
            compressed: r.boolean()?,
            redelivery_counter: r.i32()?,
            broker_path: r.array("Message.brokerPath")?,
            arrival: r.long()?,
            user_id: r.string()?,
            received_by_df_bridge: r.boolean()?,
            droppable: v >= 2 && r.boolean()?,
            cluster: if v >= 3 {
                r.array("Message.cluster")?
            } else {
                None
            },
            broker_in_time: if v >= 3 { r.long()? } else { 0 },
            broker_out_time: if v >= 3 { r.long()? } else { 0 },
            jmsx_group_first_for_consumer: v >= 10 && r.boolean()?,
        };
        message.kind = match type_id {
            type_id::BYTES_MESSAGE => MessageKind::Bytes,
            type_id::MAP_MESSAGE => MessageKind::Map,
            type_id::OBJECT_MESSAGE => MessageKind::Object,
            type_id::STREAM_MESSAGE => MessageKind::Stream,
            type_id::TEXT_MESSAGE => MessageKind::Text,
            type_id::BLOB_MESSAGE => MessageKind::Blob(BlobInfo {
                remote_blob_url: r.string()?,
                mime_type: r.string()?,
                deleted_by_broker: r.boolean()?,
            }),
            _ => MessageKind::Plain,
        };
        Ok(message)
    }

    pub(crate) fn marshal(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.command_header(self.command_id, self.response_required);
        w.cached(self.producer_id.as_ref())?;
        w.cached(self.destination.as_ref())?;
        w.cached(self.transaction_id.as_ref())?;
        w.cached(self.original_destination.as_ref())?;
        w.nested(self.message_id.as_ref())?;
        w.cached(self.original_transaction_id.as_ref())?;
        w.string(self.group_id.as_deref())?;
        w.i32(self.group_sequence);
        w.string(self.correlation_id.as_deref())?;
        w.boolean(self.persistent);
        w.long(self.expiration);
        w.i8(self.priority);
        w.nested(self.reply_to.as_ref())?;
        w.long(self.timestamp);
        w.string(self.jms_type.as_deref())?;
        w.bytes(self.content.as_deref())?;
        w.primitive_map(self.properties.as_ref())?;
        w.nested(self.data_structure.as_ref())?;
        w.cached(self.target_consumer_id.as_ref())?;
        w.boolean(self.compressed);
        w.i32(self.redelivery_counter);
        w.array(self.broker_path.as_deref())?;
        w.long(self.arrival);
        w.string(self.user_id.as_deref())?;
        w.boolean(self.received_by_df_bridge);
        if w.version() >= 2 {
            w.boolean(self.droppable);
        }
        if w.version() >= 3 {
            w.array(self.cluster.as_deref())?;
            w.long(self.broker_in_time);
            w.long(self.broker_out_time);
        }
        if w.version() >= 10 {
            w.boolean(self.jmsx_group_first_for_consumer);
        }
        if let MessageKind::Blob(blob) = &self.kind {
            w.string(blob.remote_blob_url.as_deref())?;
            w.string(blob.mime_type.as_deref())?;
            w.boolean(blob.deleted_by_broker);
        }
        Ok(())
    }
}

#[cfg(test)]
mod text_body_tests {
    use super::*;

    #[test]
    fn text_bodies_round_trip_in_javas_format() {
        for text in ["", "hello", "nul \0 and é and 😀"] {
            let body = encode_text_body(Some(text));
            assert_eq!(decode_text_body(&body).unwrap().as_deref(), Some(text));
        }
        // Java writes NUL as two bytes, and the length counts encoded bytes.
        assert_eq!(
            &encode_text_body(Some("a\0"))[..],
            &[0, 0, 0, 3, b'a', 0xc0, 0x80]
        );
        assert_eq!(decode_text_body(&encode_text_body(None)).unwrap(), None);
        assert!(decode_text_body(&[0, 0, 0, 5, b'a']).is_err());
        assert!(decode_text_body(&[0, 0, 0, 1, b'a', b'b']).is_err());
        assert!(decode_text_body(&[0, 0]).is_err());
    }
}
