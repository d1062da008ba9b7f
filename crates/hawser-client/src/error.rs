//! What the client reports.

use crate::uri::UriError;

/// Why a client operation failed.
#[non_exhaustive]
#[derive(thiserror::Error, Debug, Clone, PartialEq)]
pub enum ClientError {
    /// The connection URI is malformed or has an unknown option.
    #[error(transparent)]
    Uri(#[from] UriError),
    /// The TLS configuration could not be made (a CA or certificate file).
    #[error("TLS: {0}")]
    Tls(String),
    /// One connection attempt failed.
    #[error("cannot connect to {uri}: {reason}")]
    Connect {
        /// The broker tried.
        uri: String,
        /// What went wrong.
        reason: String,
    },
    /// The broker answered CONNECT with an ERROR.
    #[error("broker {uri} refused the connection: {message}")]
    Refused {
        /// The broker.
        uri: String,
        /// Its ERROR frame's message.
        message: String,
    },
    /// The reconnect policy gave up.
    #[error("no broker reachable: {0}")]
    Unreachable(String),
    /// The broker rejected an operation with an ERROR frame.
    #[error("broker error: {0}")]
    Broker(String),
    /// A transaction was open when the connection failed; the broker rolled it back.
    #[error("transaction {0:?} was rolled back because the connection failed over")]
    TransactionRolledBack(String),
    /// A send waited longer than the failover `timeout` option for a connection.
    #[error("send timed out after {0} ms without a connection")]
    SendTimeout(u64),
    /// The client was closed.
    #[error("client is closed")]
    Closed,
}
