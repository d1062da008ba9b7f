//! STOMP 1.0-1.2 over TCP: one session task per connection, reading frames into
//! engine calls, and one writer task sending what the engine and the session
//! produce, each item no sooner than the store has made it durable.

mod mapping;
mod session;
mod writer;

#[cfg(test)]
mod confirm_tests;

pub use session::{serve_connection, SessionSettings};

use hawser_broker::BrokerError;
use hawser_stomp::{Command, DecodeError};

use crate::connection::ReadError;

/// Why a session ends with an ERROR frame.
#[non_exhaustive]
#[derive(thiserror::Error, Debug)]
pub enum SessionError {
    /// The bytes were not a valid frame.
    #[error("malformed frame: {0}")]
    Decode(#[from] DecodeError),
    /// A frame other than CONNECT/STOMP arrived first.
    #[error("{0} frame received before CONNECT")]
    NotConnected(&'static str),
    /// A second CONNECT.
    #[error("already connected")]
    AlreadyConnected,
    /// No protocol version in common.
    #[error("supported protocol versions are 1.0,1.1,1.2 (client accepts {0})")]
    UnsupportedVersion(String),
    /// A frame only a server sends.
    #[error("{0} frames are sent by brokers, not clients")]
    UnexpectedCommand(&'static str),
    /// A required header is missing.
    #[error("missing required header {0:?}")]
    MissingHeader(&'static str),
    /// A header has a value the broker cannot use.
    #[error("invalid {header:?} header: {reason}")]
    BadHeader {
        /// The header.
        header: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// An ACK or NACK names a message this broker did not deliver to this client.
    #[error("unknown message id {0:?}")]
    UnknownMessage(String),
    /// The engine refused the operation.
    #[error(transparent)]
    Broker(#[from] BrokerError),
    /// CONNECT's credentials were refused.
    #[error(transparent)]
    Auth(#[from] crate::security::AuthError),
    /// Producer flow control is set to fail and memory, the store, its
    /// temporary part or the disk is full.
    #[error("{0} is full; message refused")]
    ResourceFull(&'static str),
    /// No CONNECT in time.
    #[error("no CONNECT frame within {0} ms")]
    ConnectTimeout(u64),
    /// A frame started arriving and stalled.
    #[error("incomplete frame stalled for {0} ms")]
    FrameTimeout(u64),
    /// The client went away, or the server is shutting down: no ERROR frame is due.
    #[error("connection closed")]
    Closed,
    /// The client stopped sending heart-beats.
    #[error("no heart-beat or frame from client within {0} ms")]
    HeartBeatTimeout(u64),
    /// A client without heart-beats sent nothing for too long.
    #[error(
        "connection idle: nothing received for {0} ms (ask for heart-beats to stay connected)"
    )]
    IdleTimeout(u64),
}

/// The connection core's reasons, in STOMP's words.
impl From<ReadError> for SessionError {
    fn from(e: ReadError) -> SessionError {
        match e {
            ReadError::Closed => SessionError::Closed,
            // STOMP authenticates with its CONNECT: one deadline for both.
            ReadError::ConnectTimeout(ms) | ReadError::LoginTimeout(ms) => {
                SessionError::ConnectTimeout(ms)
            }
            ReadError::FrameTimeout(ms) => SessionError::FrameTimeout(ms),
            ReadError::KeepAliveTimeout(ms) => SessionError::HeartBeatTimeout(ms),
            ReadError::IdleTimeout(ms) => SessionError::IdleTimeout(ms),
            ReadError::ResourceFull(which) => SessionError::ResourceFull(which),
        }
    }
}

/// What a client is told when the store failed: the reason names server files,
/// so it goes to the log and `/status` only.
pub(crate) const STORE_FAILURE_MESSAGE: &str = "store failure: message not confirmed";

impl SessionError {
    /// A frame command as a static name for error messages.
    fn command_name(c: Command) -> &'static str {
        c.as_str()
    }

    /// The ERROR frame's `message`: what the client did wrong, but for a store
    /// failure only [`STORE_FAILURE_MESSAGE`] (the reason names server files;
    /// the log has it).
    pub(crate) fn client_message(&self) -> String {
        match self {
            SessionError::Broker(BrokerError::Store(e)) if e.is_fatal() => {
                tracing::warn!("a client's operation failed in the store: {e}");
                STORE_FAILURE_MESSAGE.to_owned()
            }
            other => other.to_string(),
        }
    }
}
