//! Connection housekeeping: keep-alives, shutdown, flush, control commands sent by the broker
//! to steer clients (reconnect elsewhere, change a consumer's prefetch), and connection
//! errors.

use bytes::Bytes;

use crate::cursor::ReadError;
use crate::destination::Destination;
use crate::exception::ExceptionInfo;
use crate::ids::{ConnectionId, ConsumerId};
use crate::reader::Reader;
use crate::writer::Writer;
use crate::EncodeError;

/// A command with no fields of its own: only BaseCommand's.
macro_rules! bare_command {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
        pub struct $name {
            /// The command's number.
            pub command_id: i32,
            /// The sender wants a reply.
            pub response_required: bool,
        }

        impl $name {
            pub(crate) fn unmarshal(r: &mut Reader<'_, '_>) -> Result<Self, ReadError> {
                let (command_id, response_required) = r.command_header()?;
                Ok($name {
                    command_id,
                    response_required,
                })
            }

            pub(crate) fn marshal(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
                w.command_header(self.command_id, self.response_required);
                Ok(())
            }
        }
    };
}

bare_command!(
    /// Keeps an idle connection alive (type 10). Either side sends one when it has written
    /// nothing for a third of the inactivity duration; one with `response_required` is
    /// echoed back without it, same command id.
    KeepAliveInfo
);
bare_command!(
    /// The client is closing the connection (type 11).
    ShutdownInfo
);
bare_command!(
    /// Asks for pending work to be flushed (type 15).
    FlushCommand
);

/// A free-form control command (type 14), e.g. the advisory "shutdown".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ControlCommand {
    /// The command's number.
    pub command_id: i32,
    /// The sender wants a reply.
    pub response_required: bool,
    /// The command text.
    pub command: Option<String>,
}

impl ControlCommand {
    pub(crate) fn unmarshal(r: &mut Reader<'_, '_>) -> Result<Self, ReadError> {
        let (command_id, response_required) = r.command_header()?;
        Ok(ControlCommand {
            command_id,
            response_required,
            command: r.string()?,
        })
    }

    pub(crate) fn marshal(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.command_header(self.command_id, self.response_required);
        w.string(self.command.as_deref())
    }
}

/// The broker steers a client's connection (type 18): close it, tell a failover client its
/// peers, or rebalance it to another broker.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectionControl {
    /// The command's number.
    pub command_id: i32,
    /// The sender wants a reply.
    pub response_required: bool,
    /// Close the connection.
    pub close: bool,
    /// Exit (the client closes for good).
    pub exit: bool,
    /// The broker is fault tolerant.
    pub fault_tolerant: bool,
    /// Resume sending.
    pub resume: bool,
    /// Suspend sending.
    pub suspend: bool,
    /// Comma-separated URIs of the brokers a failover client may use. Since version 6.
    pub connected_brokers: Option<String>,
    /// The URI to reconnect to. Since version 6.
    pub reconnect_to: Option<String>,
    /// Reconnect now to `reconnect_to`. Since version 6.
    pub rebalance_connection: bool,
    /// An opaque token. Since version 8.
    pub token: Option<Bytes>,
}

impl ConnectionControl {
    pub(crate) fn unmarshal(r: &mut Reader<'_, '_>) -> Result<Self, ReadError> {
        let (command_id, response_required) = r.command_header()?;
        let v = r.version();
        Ok(ConnectionControl {
            command_id,
            response_required,
            close: r.boolean()?,
            exit: r.boolean()?,
            fault_tolerant: r.boolean()?,
            resume: r.boolean()?,
            suspend: r.boolean()?,
            connected_brokers: if v >= 6 { r.string()? } else { None },
            reconnect_to: if v >= 6 { r.string()? } else { None },
            rebalance_connection: v >= 6 && r.boolean()?,
            token: if v >= 8 { r.bytes()? } else { None },
        })
    }

    pub(crate) fn marshal(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.command_header(self.command_id, self.response_required);
        w.boolean(self.close);
        w.boolean(self.exit);
        w.boolean(self.fault_tolerant);
        w.boolean(self.resume);
        w.boolean(self.suspend);
        if w.version() >= 6 {
            w.string(self.connected_brokers.as_deref())?;
            w.string(self.reconnect_to.as_deref())?;
            w.boolean(self.rebalance_connection);
        }
        if w.version() >= 8 {
            w.bytes(self.token.as_deref())?;
        }
        Ok(())
    }
}

/// The broker steers one consumer (type 17): close it, change its prefetch, start or stop it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConsumerControl {
    /// The command's number.
    pub command_id: i32,
    /// The sender wants a reply.
    pub response_required: bool,
    /// The consumer's destination (not cached). Since version 6, and first on the wire.
    pub destination: Option<Destination>,
    /// Close the consumer.
    pub close: bool,
    /// The consumer (not cached).
    pub consumer_id: Option<ConsumerId>,
    /// New prefetch size.
    pub prefetch: i32,
    /// Flush. Since version 2.
    pub flush: bool,
    /// Start delivery. Since version 2.
    pub start: bool,
    /// Stop delivery. Since version 2.
    pub stop: bool,
}

impl ConsumerControl {
    pub(crate) fn unmarshal(r: &mut Reader<'_, '_>) -> Result<Self, ReadError> {
        let (command_id, response_required) = r.command_header()?;
        let v = r.version();
        Ok(ConsumerControl {
            command_id,
            response_required,
            destination: if v >= 6 {
                r.nested("ConsumerControl.destination")?
            } else {
                None
            },
            close: r.boolean()?,
            consumer_id: r.nested("ConsumerControl.consumerId")?,
            prefetch: r.i32()?,
            flush: v >= 2 && r.boolean()?,
            start: v >= 2 && r.boolean()?,
            stop: v >= 2 && r.boolean()?,
        })
    }

    pub(crate) fn marshal(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.command_header(self.command_id, self.response_required);
        if w.version() >= 6 {
            w.nested(self.destination.as_ref())?;
        }
        w.boolean(self.close);
        w.nested(self.consumer_id.as_ref())?;
        w.i32(self.prefetch);
        if w.version() >= 2 {
            w.boolean(self.flush);
            w.boolean(self.start);
            w.boolean(self.stop);
        }
        Ok(())
    }
}

/// An asynchronous error on the connection (type 16), after which the peer closes it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectionError {
    /// The command's number.
    pub command_id: i32,
    /// The sender wants a reply.
    pub response_required: bool,
    /// What went wrong.
    pub exception: Option<ExceptionInfo>,
    /// The connection (not cached).
    pub connection_id: Option<ConnectionId>,
}

impl ConnectionError {
    pub(crate) fn unmarshal(r: &mut Reader<'_, '_>) -> Result<Self, ReadError> {
        let (command_id, response_required) = r.command_header()?;
        Ok(ConnectionError {
            command_id,
            response_required,
            exception: r.throwable()?,
            connection_id: r.nested("ConnectionError.connectionId")?,
        })
    }

    pub(crate) fn marshal(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.command_header(self.command_id, self.response_required);
        w.throwable(self.exception.as_ref())?;
        w.nested(self.connection_id.as_ref())
    }
}
