//! Delivering messages and acknowledging them: MessageDispatch (broker to consumer) and
//! MessageAck (consumer to broker).

use crate::cursor::ReadError;
use crate::destination::Destination;
use crate::exception::ExceptionInfo;
use crate::ids::{ConsumerId, MessageId};
use crate::message::Message;
use crate::reader::Reader;
use crate::transaction::TransactionId;
use crate::writer::Writer;
use crate::EncodeError;

/// A message delivered to a consumer (type 21).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MessageDispatch {
    /// The command's number.
    pub command_id: i32,
    /// The sender wants a reply.
    pub response_required: bool,
    /// The consumer (cached).
    pub consumer_id: Option<ConsumerId>,
    /// The destination it consumes (cached).
    pub destination: Option<Destination>,
    /// The message; null answers a MessagePull (or ends a browse) with "nothing".
    pub message: Option<Box<Message>>,
    /// Times the message was redelivered.
    pub redelivery_counter: i32,
}

impl MessageDispatch {
    pub(crate) fn unmarshal(r: &mut Reader<'_, '_>) -> Result<Self, ReadError> {
        let (command_id, response_required) = r.command_header()?;
        Ok(MessageDispatch {
            command_id,
            response_required,
            consumer_id: r.cached("MessageDispatch.consumerId")?,
            destination: r.cached("MessageDispatch.destination")?,
            message: r.nested("MessageDispatch.message")?,
            redelivery_counter: r.i32()?,
        })
    }

    pub(crate) fn marshal(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.command_header(self.command_id, self.response_required);
        w.cached(self.consumer_id.as_ref())?;
        w.cached(self.destination.as_ref())?;
        w.nested(self.message.as_deref())?;
        w.i32(self.redelivery_counter);
        Ok(())
    }
}

/// What a [`MessageAck`] says about its messages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum AckType {
    /// Delivered to the application, not yet consumed (0): extends the prefetch window.
    #[default]
    Delivered,
    /// Failed beyond the redelivery limit: send to the DLQ (1).
    Poison,
    /// Consumed: every message up to `last_message_id` (2).
    Standard,
    /// Will be redelivered (3).
    Redelivered,
    /// Consumed: exactly this message (4).
    Individual,
    /// Does not match the (durable) subscription's selector (5).
    Unmatched,
    /// Expired on the client (6).
    Expired,
    /// A code Java does not define, kept as sent.
    Other(i8),
}

impl AckType {
    fn from_code(code: i8) -> Self {
        match code {
            0 => AckType::Delivered,
            1 => AckType::Poison,
            2 => AckType::Standard,
            3 => AckType::Redelivered,
            4 => AckType::Individual,
            5 => AckType::Unmatched,
            6 => AckType::Expired,
            other => AckType::Other(other),
        }
    }

    fn code(self) -> i8 {
        match self {
            AckType::Delivered => 0,
            AckType::Poison => 1,
            AckType::Standard => 2,
            AckType::Redelivered => 3,
            AckType::Individual => 4,
            AckType::Unmatched => 5,
            AckType::Expired => 6,
            AckType::Other(code) => code,
        }
    }
}

/// Acknowledges a range of delivered messages (type 22).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MessageAck {
    /// The command's number.
    pub command_id: i32,
    /// The client waits for a Response (e.g. a transacted or synchronous ack).
    pub response_required: bool,
    /// The destination (cached).
    pub destination: Option<Destination>,
    /// The transaction the ack is part of (cached).
    pub transaction_id: Option<TransactionId>,
    /// The consumer (cached).
    pub consumer_id: Option<ConsumerId>,
    /// What the ack says.
    pub ack_type: AckType,
    /// First message of the range (not cached).
    pub first_message_id: Option<MessageId>,
    /// Last message of the range (not cached).
    pub last_message_id: Option<MessageId>,
    /// Messages in the range.
    pub message_count: i32,
    /// Why a poison ack's message failed. Since version 7.
    pub poison_cause: Option<ExceptionInfo>,
}

impl MessageAck {
    pub(crate) fn unmarshal(r: &mut Reader<'_, '_>) -> Result<Self, ReadError> {
        let (command_id, response_required) = r.command_header()?;
        Ok(MessageAck {
            command_id,
            response_required,
            destination: r.cached("MessageAck.destination")?,
            transaction_id: r.cached("MessageAck.transactionId")?,
            consumer_id: r.cached("MessageAck.consumerId")?,
            ack_type: AckType::from_code(r.i8()?),
            first_message_id: r.nested("MessageAck.firstMessageId")?,
            last_message_id: r.nested("MessageAck.lastMessageId")?,
            message_count: r.i32()?,
            poison_cause: if r.version() >= 7 {
                r.throwable()?
            } else {
                None
            },
        })
    }

    pub(crate) fn marshal(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.command_header(self.command_id, self.response_required);
        w.cached(self.destination.as_ref())?;
        w.cached(self.transaction_id.as_ref())?;
        w.cached(self.consumer_id.as_ref())?;
        w.i8(self.ack_type.code());
        w.nested(self.first_message_id.as_ref())?;
        w.nested(self.last_message_id.as_ref())?;
        w.i32(self.message_count);
        if w.version() >= 7 {
            w.throwable(self.poison_cause.as_ref())?;
        }
        Ok(())
    }
}
