//! [`Command`]: what one frame carries, one variant per command type.

use crate::cursor::ReadError;
use crate::data_structure::{type_id, Marshal};
use crate::reader::Reader;
use crate::writer::Writer;
use crate::{
    BrokerInfo, ConnectionControl, ConnectionError, ConnectionInfo, ConsumerControl, ConsumerInfo,
    ControlCommand, DataArrayResponse, DataResponse, DestinationInfo, EncodeError,
    ExceptionResponse, FlushCommand, IntegerResponse, KeepAliveInfo, Message, MessageAck,
    MessageDispatch, MessagePull, ProducerAck, ProducerInfo, RemoveInfo, RemoveSubscriptionInfo,
    Response, SessionInfo, ShutdownInfo, TransactionInfo, WireFormatInfo,
};

/// One OpenWire command: the top-level object of a frame.
///
/// Every command but [`WireFormatInfo`] starts with BaseCommand's `command_id` (the sender
/// numbers its commands 1, 2, 3...) and `response_required` (the sender waits for a reply
/// whose `correlation_id` is that command id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Type 1: the first frame in each direction.
    WireFormatInfo(WireFormatInfo),
    /// Type 2: the broker introduces itself.
    BrokerInfo(BrokerInfo),
    /// Type 3: open a connection.
    ConnectionInfo(ConnectionInfo),
    /// Type 4: open a session.
    SessionInfo(SessionInfo),
    /// Type 5: open a consumer.
    ConsumerInfo(ConsumerInfo),
    /// Type 6: open a producer.
    ProducerInfo(ProducerInfo),
    /// Type 7: a transaction operation.
    TransactionInfo(TransactionInfo),
    /// Type 8: create or delete a (temporary) destination.
    DestinationInfo(DestinationInfo),
    /// Type 9: delete a durable subscription.
    RemoveSubscriptionInfo(RemoveSubscriptionInfo),
    /// Type 10: keep an idle connection alive.
    KeepAliveInfo(KeepAliveInfo),
    /// Type 11: the client is closing.
    ShutdownInfo(ShutdownInfo),
    /// Type 12: close a connection, session, producer or consumer.
    RemoveInfo(RemoveInfo),
    /// Type 14: a free-form control command.
    ControlCommand(ControlCommand),
    /// Type 15: flush.
    FlushCommand(FlushCommand),
    /// Type 16: an asynchronous connection error.
    ConnectionError(ConnectionError),
    /// Type 17: steer a consumer.
    ConsumerControl(ConsumerControl),
    /// Type 18: steer a connection (failover, rebalancing).
    ConnectionControl(ConnectionControl),
    /// Type 19: producer flow-control credit.
    ProducerAck(ProducerAck),
    /// Type 20: pull one message (prefetch 0).
    MessagePull(MessagePull),
    /// Type 21: deliver a message.
    MessageDispatch(MessageDispatch),
    /// Type 22: acknowledge messages.
    MessageAck(MessageAck),
    /// Types 23 to 29: a message (see [`crate::MessageKind`]).
    Message(Box<Message>),
    /// Type 30: success.
    Response(Response),
    /// Type 31: failure.
    ExceptionResponse(ExceptionResponse),
    /// Type 32: success with a result.
    DataResponse(DataResponse),
    /// Type 33: success with several results.
    DataArrayResponse(DataArrayResponse),
    /// Type 34: success with a number.
    IntegerResponse(IntegerResponse),
}

/// Runs `$body` with `$c` bound to the command's payload, whatever its variant.
macro_rules! each_command {
    ($command:expr, $c:ident => $body:expr) => {
        match $command {
            Command::WireFormatInfo($c) => $body,
            Command::BrokerInfo($c) => $body,
            Command::ConnectionInfo($c) => $body,
            Command::SessionInfo($c) => $body,
            Command::ConsumerInfo($c) => $body,
            Command::ProducerInfo($c) => $body,
            Command::TransactionInfo($c) => $body,
            Command::DestinationInfo($c) => $body,
            Command::RemoveSubscriptionInfo($c) => $body,
            Command::KeepAliveInfo($c) => $body,
            Command::ShutdownInfo($c) => $body,
            Command::RemoveInfo($c) => $body,
            Command::ControlCommand($c) => $body,
            Command::FlushCommand($c) => $body,
            Command::ConnectionError($c) => $body,
            Command::ConsumerControl($c) => $body,
            Command::ConnectionControl($c) => $body,
            Command::ProducerAck($c) => $body,
            Command::MessagePull($c) => $body,
            Command::MessageDispatch($c) => $body,
            Command::MessageAck($c) => $body,
            Command::Message($c) => $body,
            Command::Response($c) => $body,
            Command::ExceptionResponse($c) => $body,
            Command::DataResponse($c) => $body,
            Command::DataArrayResponse($c) => $body,
            Command::IntegerResponse($c) => $body,
        }
    };
}

/// BaseCommand's two fields, for every command type that has them.
macro_rules! base_command {
    ($($type:ty),* $(,)?) => {$(
        impl BaseCommand for $type {
            fn command_id(&self) -> Option<i32> {
                Some(self.command_id)
            }
            fn response_required(&self) -> bool {
                self.response_required
            }
        }
    )*};
}

/// Read access to BaseCommand's fields.
trait BaseCommand {
    fn command_id(&self) -> Option<i32>;
    fn response_required(&self) -> bool;
}

base_command!(
    BrokerInfo,
    ConnectionInfo,
    SessionInfo,
    ConsumerInfo,
    ProducerInfo,
    TransactionInfo,
    DestinationInfo,
    RemoveSubscriptionInfo,
    KeepAliveInfo,
    ShutdownInfo,
    RemoveInfo,
    ControlCommand,
    FlushCommand,
    ConnectionError,
    ConsumerControl,
    ConnectionControl,
    ProducerAck,
    MessagePull,
    MessageDispatch,
    MessageAck,
    Box<Message>,
    Response,
    ExceptionResponse,
    DataResponse,
    DataArrayResponse,
    IntegerResponse,
);

impl BaseCommand for WireFormatInfo {
    fn command_id(&self) -> Option<i32> {
        None
    }
    fn response_required(&self) -> bool {
        false
    }
}

impl Command {
    /// The type byte the command travels with.
    pub fn type_id(&self) -> u8 {
        use type_id as t;
        match self {
            Command::WireFormatInfo(_) => t::WIRE_FORMAT_INFO,
            Command::BrokerInfo(_) => t::BROKER_INFO,
            Command::ConnectionInfo(_) => t::CONNECTION_INFO,
            Command::SessionInfo(_) => t::SESSION_INFO,
            Command::ConsumerInfo(_) => t::CONSUMER_INFO,
            Command::ProducerInfo(_) => t::PRODUCER_INFO,
            Command::TransactionInfo(_) => t::TRANSACTION_INFO,
            Command::DestinationInfo(_) => t::DESTINATION_INFO,
            Command::RemoveSubscriptionInfo(_) => t::REMOVE_SUBSCRIPTION_INFO,
            Command::KeepAliveInfo(_) => t::KEEP_ALIVE_INFO,
            Command::ShutdownInfo(_) => t::SHUTDOWN_INFO,
            Command::RemoveInfo(_) => t::REMOVE_INFO,
            Command::ControlCommand(_) => t::CONTROL_COMMAND,
            Command::FlushCommand(_) => t::FLUSH_COMMAND,
            Command::ConnectionError(_) => t::CONNECTION_ERROR,
            Command::ConsumerControl(_) => t::CONSUMER_CONTROL,
            Command::ConnectionControl(_) => t::CONNECTION_CONTROL,
            Command::ProducerAck(_) => t::PRODUCER_ACK,
            Command::MessagePull(_) => t::MESSAGE_PULL,
            Command::MessageDispatch(_) => t::MESSAGE_DISPATCH,
            Command::MessageAck(_) => t::MESSAGE_ACK,
            Command::Message(message) => message.type_id(),
            Command::Response(_) => t::RESPONSE,
            Command::ExceptionResponse(_) => t::EXCEPTION_RESPONSE,
            Command::DataResponse(_) => t::DATA_RESPONSE,
            Command::DataArrayResponse(_) => t::DATA_ARRAY_RESPONSE,
            Command::IntegerResponse(_) => t::INTEGER_RESPONSE,
        }
    }

    /// The sender's number for the command; `None` for a WireFormatInfo, which has none.
    pub fn command_id(&self) -> Option<i32> {
        each_command!(self, c => c.command_id())
    }

    /// Whether the sender waits for a reply correlated to [`Command::command_id`].
    pub fn response_required(&self) -> bool {
        each_command!(self, c => c.response_required())
    }

    /// Reads the fields of a command of type `type_id` (known to be a command type).
    pub(crate) fn unmarshal(type_byte: u8, r: &mut Reader<'_, '_>) -> Result<Self, ReadError> {
        use type_id as t;
        Ok(match type_byte {
            t::WIRE_FORMAT_INFO => Command::WireFormatInfo(WireFormatInfo::unmarshal(r)?),
            t::BROKER_INFO => Command::BrokerInfo(BrokerInfo::unmarshal(r)?),
            t::CONNECTION_INFO => Command::ConnectionInfo(ConnectionInfo::unmarshal(r)?),
            t::SESSION_INFO => Command::SessionInfo(SessionInfo::unmarshal(r)?),
            t::CONSUMER_INFO => Command::ConsumerInfo(ConsumerInfo::unmarshal(r)?),
            t::PRODUCER_INFO => Command::ProducerInfo(ProducerInfo::unmarshal(r)?),
            t::TRANSACTION_INFO => Command::TransactionInfo(TransactionInfo::unmarshal(r)?),
            t::DESTINATION_INFO => Command::DestinationInfo(DestinationInfo::unmarshal(r)?),
            t::REMOVE_SUBSCRIPTION_INFO => {
                Command::RemoveSubscriptionInfo(RemoveSubscriptionInfo::unmarshal(r)?)
            }
            t::KEEP_ALIVE_INFO => Command::KeepAliveInfo(KeepAliveInfo::unmarshal(r)?),
            t::SHUTDOWN_INFO => Command::ShutdownInfo(ShutdownInfo::unmarshal(r)?),
            t::REMOVE_INFO => Command::RemoveInfo(RemoveInfo::unmarshal(r)?),
            t::CONTROL_COMMAND => Command::ControlCommand(ControlCommand::unmarshal(r)?),
            t::FLUSH_COMMAND => Command::FlushCommand(FlushCommand::unmarshal(r)?),
            t::CONNECTION_ERROR => Command::ConnectionError(ConnectionError::unmarshal(r)?),
            t::CONSUMER_CONTROL => Command::ConsumerControl(ConsumerControl::unmarshal(r)?),
            t::CONNECTION_CONTROL => Command::ConnectionControl(ConnectionControl::unmarshal(r)?),
            t::PRODUCER_ACK => Command::ProducerAck(ProducerAck::unmarshal(r)?),
            t::MESSAGE_PULL => Command::MessagePull(MessagePull::unmarshal(r)?),
            t::MESSAGE_DISPATCH => Command::MessageDispatch(MessageDispatch::unmarshal(r)?),
            t::MESSAGE_ACK => Command::MessageAck(MessageAck::unmarshal(r)?),
            t::MESSAGE..=t::BLOB_MESSAGE => {
                Command::Message(Box::new(Message::unmarshal(type_byte, r)?))
            }
            t::RESPONSE => Command::Response(Response::unmarshal(r)?),
            t::EXCEPTION_RESPONSE => Command::ExceptionResponse(ExceptionResponse::unmarshal(r)?),
            t::DATA_RESPONSE => Command::DataResponse(DataResponse::unmarshal(r)?),
            t::DATA_ARRAY_RESPONSE => Command::DataArrayResponse(DataArrayResponse::unmarshal(r)?),
            t::INTEGER_RESPONSE => Command::IntegerResponse(IntegerResponse::unmarshal(r)?),
            other => return Err(crate::DecodeError::NotACommand(other).into()),
        })
    }

    /// Writes the command's fields.
    pub(crate) fn marshal(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        each_command!(self, c => c.marshal(w))
    }
}

impl Marshal for Command {
    fn type_id(&self) -> u8 {
        Command::type_id(self)
    }

    fn marshal(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        Command::marshal(self, w)
    }
}

macro_rules! command_from {
    ($($variant:ident),* $(,)?) => {$(
        impl From<$variant> for Command {
            fn from(command: $variant) -> Self {
                Command::$variant(command)
            }
        }
    )*};
}

command_from!(
    WireFormatInfo,
    BrokerInfo,
    ConnectionInfo,
    SessionInfo,
    ConsumerInfo,
    ProducerInfo,
    TransactionInfo,
    DestinationInfo,
    RemoveSubscriptionInfo,
    KeepAliveInfo,
    ShutdownInfo,
    RemoveInfo,
    ControlCommand,
    FlushCommand,
    ConnectionError,
    ConsumerControl,
    ConnectionControl,
    ProducerAck,
    MessagePull,
    MessageDispatch,
    MessageAck,
    Response,
    ExceptionResponse,
    DataResponse,
    DataArrayResponse,
    IntegerResponse,
);

impl From<Message> for Command {
    fn from(message: Message) -> Self {
        Command::Message(Box::new(message))
    }
}
