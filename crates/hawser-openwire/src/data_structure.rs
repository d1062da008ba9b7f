//! Every data structure by type byte: the table of type ids, the [`DataStructure`] enum that
//! a field of "any type" holds, and the dispatch from a type byte to its unmarshaller.
//!
//! The type byte on the wire, not the field's declared type, chooses the unmarshaller (as in
//! Java); a field whose declared type does not match what arrived is an error
//! ([`DecodeError::UnexpectedType`]), where Java would fail with a ClassCastException.

use crate::command::Command;
use crate::cursor::ReadError;
use crate::reader::Reader;
use crate::writer::Writer;
use crate::{
    BrokerId, BrokerInfo, ConnectionId, ConsumerId, DecodeError, Destination, DestinationKind,
    EncodeError, LocalTransactionId, Message, MessageId, ProducerId, SessionId, TransactionId,
    XaTransactionId,
};

/// Type bytes (`CommandTypes` in Java).
pub(crate) mod type_id {
    pub const NULL: u8 = 0;
    pub const WIRE_FORMAT_INFO: u8 = 1;
    pub const BROKER_INFO: u8 = 2;
    pub const CONNECTION_INFO: u8 = 3;
    pub const SESSION_INFO: u8 = 4;
    pub const CONSUMER_INFO: u8 = 5;
    pub const PRODUCER_INFO: u8 = 6;
    pub const TRANSACTION_INFO: u8 = 7;
    pub const DESTINATION_INFO: u8 = 8;
    pub const REMOVE_SUBSCRIPTION_INFO: u8 = 9;
    pub const KEEP_ALIVE_INFO: u8 = 10;
    pub const SHUTDOWN_INFO: u8 = 11;
    pub const REMOVE_INFO: u8 = 12;
    pub const CONTROL_COMMAND: u8 = 14;
    pub const FLUSH_COMMAND: u8 = 15;
    pub const CONNECTION_ERROR: u8 = 16;
    pub const CONSUMER_CONTROL: u8 = 17;
    pub const CONNECTION_CONTROL: u8 = 18;
    pub const PRODUCER_ACK: u8 = 19;
    pub const MESSAGE_PULL: u8 = 20;
    pub const MESSAGE_DISPATCH: u8 = 21;
    pub const MESSAGE_ACK: u8 = 22;
    pub const MESSAGE: u8 = 23;
    pub const BYTES_MESSAGE: u8 = 24;
    pub const MAP_MESSAGE: u8 = 25;
    pub const OBJECT_MESSAGE: u8 = 26;
    pub const STREAM_MESSAGE: u8 = 27;
    pub const TEXT_MESSAGE: u8 = 28;
    pub const BLOB_MESSAGE: u8 = 29;
    pub const RESPONSE: u8 = 30;
    pub const EXCEPTION_RESPONSE: u8 = 31;
    pub const DATA_RESPONSE: u8 = 32;
    pub const DATA_ARRAY_RESPONSE: u8 = 33;
    pub const INTEGER_RESPONSE: u8 = 34;
    pub const QUEUE: u8 = 100;
    pub const TOPIC: u8 = 101;
    pub const TEMP_QUEUE: u8 = 102;
    pub const TEMP_TOPIC: u8 = 103;
    pub const MESSAGE_ID: u8 = 110;
    pub const LOCAL_TRANSACTION_ID: u8 = 111;
    pub const XA_TRANSACTION_ID: u8 = 112;
    pub const CONNECTION_ID: u8 = 120;
    pub const SESSION_ID: u8 = 121;
    pub const CONSUMER_ID: u8 = 122;
    pub const PRODUCER_ID: u8 = 123;
    pub const BROKER_ID: u8 = 124;
}

/// Types ActiveMQ marshals that only brokers (network bridges, discovery, journals,
/// partial commands of the UDP transport) exchange. Known, but not decoded.
const BROKER_ONLY_TYPES: [u8; 12] = [40, 50, 52, 53, 54, 55, 60, 61, 65, 90, 91, 92];

/// Whether a type's Java class is "marshal aware": nested, it gets an extra bit in tight
/// encoding (WireFormatInfo and every message type).
pub(crate) fn is_marshal_aware(type_id: u8) -> bool {
    type_id == type_id::WIRE_FORMAT_INFO
        || (type_id::MESSAGE..=type_id::BLOB_MESSAGE).contains(&type_id)
}

/// Whether `type_id` is one of the commands this crate decodes.
pub(crate) fn is_command(type_id: u8) -> bool {
    matches!(type_id, 1..=12 | 14..=34)
}

/// The version that introduced `type_id`.
pub(crate) fn since_version(type_id: u8) -> u8 {
    match type_id {
        type_id::MESSAGE_PULL => 2,
        type_id::PRODUCER_ACK | type_id::BLOB_MESSAGE => 3,
        92 => 12,
        _ => 1,
    }
}

/// Why a type byte cannot be decoded at `version`, if it cannot.
pub(crate) fn check_type(type_id: u8, version: u8) -> Result<(), DecodeError> {
    let known = is_command(type_id)
        || matches!(type_id, 100..=103 | 110..=112 | 120..=124)
        || BROKER_ONLY_TYPES.contains(&type_id);
    if !known {
        return Err(DecodeError::UnknownType(type_id));
    }
    if version < since_version(type_id) {
        return Err(DecodeError::TypeNotInVersion { type_id, version });
    }
    if BROKER_ONLY_TYPES.contains(&type_id) {
        return Err(DecodeError::UnsupportedType(type_id));
    }
    Ok(())
}

/// A data structure of any type: what a field declared as `DataStructure` in Java holds (an
/// advisory's payload, a DataResponse's result, a RemoveInfo's object id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataStructure {
    /// A command (any message type included).
    Command(Box<Command>),
    /// A connection id.
    ConnectionId(ConnectionId),
    /// A session id.
    SessionId(SessionId),
    /// A producer id.
    ProducerId(ProducerId),
    /// A consumer id.
    ConsumerId(ConsumerId),
    /// A broker id.
    BrokerId(BrokerId),
    /// A message id.
    MessageId(MessageId),
    /// A local or XA transaction id.
    TransactionId(TransactionId),
    /// A queue or topic.
    Destination(Destination),
}

impl DataStructure {
    /// The type byte it travels with.
    pub fn type_id(&self) -> u8 {
        match self {
            DataStructure::Command(command) => command.type_id(),
            DataStructure::ConnectionId(_) => type_id::CONNECTION_ID,
            DataStructure::SessionId(_) => type_id::SESSION_ID,
            DataStructure::ProducerId(_) => type_id::PRODUCER_ID,
            DataStructure::ConsumerId(_) => type_id::CONSUMER_ID,
            DataStructure::BrokerId(_) => type_id::BROKER_ID,
            DataStructure::MessageId(_) => type_id::MESSAGE_ID,
            DataStructure::TransactionId(id) => id.type_id(),
            DataStructure::Destination(d) => d.kind.type_id(),
        }
    }

    /// Reads the body of a `type_id` object (its type byte already read).
    pub(crate) fn unmarshal(type_id: u8, r: &mut Reader<'_, '_>) -> Result<Self, ReadError> {
        check_type(type_id, r.version())?;
        if let Some(kind) = DestinationKind::from_type_id(type_id) {
            return Ok(DataStructure::Destination(Destination::unmarshal(kind, r)?));
        }
        Ok(match type_id {
            type_id::CONNECTION_ID => DataStructure::ConnectionId(ConnectionId::unmarshal(r)?),
            type_id::SESSION_ID => DataStructure::SessionId(SessionId::unmarshal(r)?),
            type_id::PRODUCER_ID => DataStructure::ProducerId(ProducerId::unmarshal(r)?),
            type_id::CONSUMER_ID => DataStructure::ConsumerId(ConsumerId::unmarshal(r)?),
            type_id::BROKER_ID => DataStructure::BrokerId(BrokerId::unmarshal(r)?),
            type_id::MESSAGE_ID => DataStructure::MessageId(MessageId::unmarshal(r)?),
            type_id::LOCAL_TRANSACTION_ID => DataStructure::TransactionId(TransactionId::Local(
                LocalTransactionId::unmarshal(r)?,
            )),
            type_id::XA_TRANSACTION_ID => {
                DataStructure::TransactionId(TransactionId::Xa(XaTransactionId::unmarshal(r)?))
            }
            _ => DataStructure::Command(Box::new(Command::unmarshal(type_id, r)?)),
        })
    }
}

/// A type that can be written as a nested object: its type byte and its body.
pub(crate) trait Marshal {
    fn type_id(&self) -> u8;
    fn marshal(&self, w: &mut Writer<'_>) -> Result<(), EncodeError>;
}

impl Marshal for DataStructure {
    fn type_id(&self) -> u8 {
        DataStructure::type_id(self)
    }

    fn marshal(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        match self {
            DataStructure::Command(command) => command.marshal(w),
            DataStructure::ConnectionId(id) => id.marshal(w),
            DataStructure::SessionId(id) => id.marshal(w),
            DataStructure::ProducerId(id) => id.marshal(w),
            DataStructure::ConsumerId(id) => id.marshal(w),
            DataStructure::BrokerId(id) => id.marshal(w),
            DataStructure::MessageId(id) => id.marshal(w),
            DataStructure::TransactionId(id) => id.marshal(w),
            DataStructure::Destination(d) => d.marshal(w),
        }
    }
}

/// A type a nested field declares: what to accept from a decoded [`DataStructure`].
pub(crate) trait FromData: Sized {
    /// The Java type name, for errors.
    const EXPECTED: &'static str;
    /// The value if it has this type, else the value back.
    fn from_data(value: DataStructure) -> Result<Self, DataStructure>;
}

impl FromData for DataStructure {
    const EXPECTED: &'static str = "DataStructure";
    fn from_data(value: DataStructure) -> Result<Self, DataStructure> {
        Ok(value)
    }
}

/// FromData for the value types that are one `DataStructure` variant.
macro_rules! value_from_data {
    ($type:ident, $java:literal) => {
        impl FromData for $type {
            const EXPECTED: &'static str = $java;
            fn from_data(value: DataStructure) -> Result<Self, DataStructure> {
                match value {
                    DataStructure::$type(v) => Ok(v),
                    other => Err(other),
                }
            }
        }
    };
}

value_from_data!(ConnectionId, "ConnectionId");
value_from_data!(SessionId, "SessionId");
value_from_data!(ProducerId, "ProducerId");
value_from_data!(ConsumerId, "ConsumerId");
value_from_data!(BrokerId, "BrokerId");
value_from_data!(MessageId, "MessageId");
value_from_data!(TransactionId, "TransactionId");
value_from_data!(Destination, "ActiveMQDestination");

/// Marshal for types whose inherent `marshal` writes their body.
macro_rules! marshal_by {
    ($type:ty, |$value:ident| $type_id:expr) => {
        impl Marshal for $type {
            fn type_id(&self) -> u8 {
                let $value = self;
                $type_id
            }
            fn marshal(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
                <$type>::marshal(self, w)
            }
        }
    };
}

marshal_by!(ConnectionId, |_id| type_id::CONNECTION_ID);
marshal_by!(SessionId, |_id| type_id::SESSION_ID);
marshal_by!(ProducerId, |_id| type_id::PRODUCER_ID);
marshal_by!(ConsumerId, |_id| type_id::CONSUMER_ID);
marshal_by!(BrokerId, |_id| type_id::BROKER_ID);
marshal_by!(MessageId, |_id| type_id::MESSAGE_ID);
marshal_by!(TransactionId, |id| id.type_id());
marshal_by!(Destination, |d| d.kind.type_id());
marshal_by!(Message, |m| m.type_id());
marshal_by!(BrokerInfo, |_info| type_id::BROKER_INFO);

impl FromData for Box<Message> {
    const EXPECTED: &'static str = "Message";
    fn from_data(value: DataStructure) -> Result<Self, DataStructure> {
        match value {
            DataStructure::Command(command) => match *command {
                Command::Message(message) => Ok(message),
                other => Err(DataStructure::Command(Box::new(other))),
            },
            other => Err(other),
        }
    }
}

impl FromData for BrokerInfo {
    const EXPECTED: &'static str = "BrokerInfo";
    fn from_data(value: DataStructure) -> Result<Self, DataStructure> {
        match value {
            DataStructure::Command(command) => match *command {
                Command::BrokerInfo(info) => Ok(info),
                other => Err(DataStructure::Command(Box::new(other))),
            },
            other => Err(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_table() {
        assert_eq!(check_type(13, 12), Err(DecodeError::UnknownType(13)));
        assert_eq!(check_type(75, 12), Err(DecodeError::UnknownType(75)));
        assert_eq!(check_type(255, 12), Err(DecodeError::UnknownType(255)));
        assert_eq!(check_type(90, 12), Err(DecodeError::UnsupportedType(90)));
        assert_eq!(
            check_type(20, 1),
            Err(DecodeError::TypeNotInVersion {
                type_id: 20,
                version: 1
            })
        );
        assert_eq!(check_type(20, 2), Ok(()));
        for t in (1..=12)
            .chain(14..=34)
            .chain([100, 103, 110, 112, 120, 124])
        {
            assert_eq!(check_type(t, 12), Ok(()), "type {t}");
        }
        assert!(is_marshal_aware(1) && is_marshal_aware(28) && !is_marshal_aware(21));
    }
}
