//! OpenWire, ActiveMQ's native protocol, for its Java clients
//! (`ActiveMQConnectionFactory`): the codec is `hawser-openwire`; this module
//! is the session that turns commands into engine calls, on the connection
//! core every protocol shares (`crate::connection`).

mod encoder;
mod mapping;
mod session;
#[cfg(test)]
mod session_tests;
mod transaction;

pub use session::{serve_connection, OpenWireSettings};

use hawser_broker::BrokerError;
use hawser_openwire::{DecodeError, NegotiationError};

use crate::connection::ReadError;

/// Why an OpenWire command failed, or why a connection ends.
#[non_exhaustive]
#[derive(thiserror::Error, Debug)]
pub enum SessionError {
    /// The bytes were not a valid frame: the connection closes.
    #[error("malformed frame: {0}")]
    Decode(#[from] DecodeError),
    /// The client's WireFormatInfo cannot be used.
    #[error("wire format: {0}")]
    WireFormat(#[from] NegotiationError),
    /// A command before the WireFormatInfo.
    #[error("expected WireFormatInfo first")]
    NotNegotiated,
    /// A command that needs a connection before ConnectionInfo.
    #[error("no ConnectionInfo yet")]
    NotConnected,
    /// The engine refused the command.
    #[error(transparent)]
    Broker(#[from] BrokerError),
    /// ConnectionInfo's credentials were refused: the client is told, then
    /// the connection closes.
    #[error(transparent)]
    Auth(#[from] crate::security::AuthError),
    /// The command asks for something Hawser does not do (yet).
    #[error("{0} is not supported")]
    Unsupported(&'static str),
    /// A value the broker cannot use.
    #[error("invalid {what}: {reason}")]
    Invalid {
        /// What was invalid.
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// The reading side ended (a timeout, the client gone, flow control).
    #[error(transparent)]
    Read(#[from] ReadError),
}

impl SessionError {
    /// The Java exception class a client is told of: one of a fixed few, never a
    /// name taken from the wire.
    fn java_class(&self) -> &'static str {
        match self {
            SessionError::Broker(BrokerError::ClientIdInUse(_) | BrokerError::ClientIdOwned(_)) => {
                "javax.jms.InvalidClientIDException"
            }
            SessionError::Broker(BrokerError::InvalidSelector { .. }) => {
                "javax.jms.InvalidSelectorException"
            }
            SessionError::Read(ReadError::ResourceFull(_)) => {
                "javax.jms.ResourceAllocationException"
            }
            // ActiveMQ's client turns it into a JMSSecurityException.
            SessionError::Auth(_) | SessionError::Broker(BrokerError::NotAuthorized { .. }) => {
                "java.lang.SecurityException"
            }
            _ => "javax.jms.JMSException",
        }
    }

    /// True if the engine refused the command (a full destination, a limit,
    /// a deleted temporary queue...) and the connection can go on; false for
    /// what ends it: bad bytes, a broken protocol, a closed connection or a
    /// failed store.
    fn is_refusal(&self) -> bool {
        match self {
            SessionError::Broker(BrokerError::ConnectionClosed) => false,
            SessionError::Broker(BrokerError::Store(e)) => !e.is_fatal(),
            SessionError::Broker(_) => true,
            SessionError::Read(ReadError::ResourceFull(_)) => true,
            _ => false,
        }
    }

    /// The message a client is told: what it did wrong, but for a store failure
    /// no server detail (the log has it).
    fn client_message(&self) -> String {
        match self {
            SessionError::Broker(BrokerError::Store(e)) if e.is_fatal() => {
                tracing::warn!("a client's operation failed in the store: {e}");
                STORE_FAILURE_MESSAGE.to_owned()
            }
            other => other.to_string(),
        }
    }
}

/// What a client is told when the store failed.
const STORE_FAILURE_MESSAGE: &str = "store failure: message not confirmed";
