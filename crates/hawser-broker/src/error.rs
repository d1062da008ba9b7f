//! What can go wrong when a client asks the engine for something.

use crate::destination::InvalidDestination;
use crate::message::MessageId;
use crate::producer::InvalidProducer;
use crate::store::StoreError;

/// Why the engine refused an operation. The protocol layer reports it to the
/// client (STOMP: an ERROR frame) and closes the connection.
#[non_exhaustive]
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum BrokerError {
    /// The connection is not (or no longer) registered.
    #[error("connection is closed")]
    ConnectionClosed,
    /// The connection's user may not do this (see `access`).
    #[error("user {user} is not authorized to {operation}: {destination}")]
    NotAuthorized {
        /// Who asked.
        user: String,
        /// What it asked: "read from", "write to", "create".
        operation: &'static str,
        /// Where.
        destination: String,
    },
    /// Another live connection uses this client id.
    #[error("client id {0:?} is already connected")]
    ClientIdInUse(String),
    /// The client id has durable subscriptions of another user (see
    /// `Broker::connect`); which user is not said.
    #[error("client id {0:?} belongs to another user")]
    ClientIdOwned(String),
    /// The subscription id is already used on this connection.
    #[error("subscription id {0:?} is already in use on this connection")]
    DuplicateSubscription(String),
    /// No subscription with this id on this connection.
    #[error("no subscription with id {0:?} on this connection")]
    UnknownSubscription(String),
    /// The message is not awaiting acknowledgement by this connection.
    #[error("message {0} is not awaiting acknowledgement on this connection")]
    UnknownMessage(MessageId),
    /// No transaction with this id on this connection.
    #[error("no transaction {0:?} on this connection")]
    UnknownTransaction(String),
    /// BEGIN of a transaction id already open.
    #[error("transaction {0:?} is already open")]
    DuplicateTransaction(String),
    /// A selector did not parse.
    #[error("invalid selector {selector:?}: {reason}")]
    InvalidSelector {
        /// The selector text.
        selector: String,
        /// The parser's explanation.
        reason: String,
    },
    /// A durable subscription needs the connection's client id.
    #[error("a durable subscription needs a client-id on the connection")]
    DurableNeedsClientId,
    /// The durable subscription already has an active subscriber.
    #[error("durable subscription {0:?} is already active")]
    DurableActive(String),
    /// A destination name was refused.
    #[error("invalid destination: {0}")]
    InvalidDestination(#[from] InvalidDestination),
    /// A per-connection limit was reached.
    #[error("limit reached: {0}")]
    Limit(&'static str),
    /// The message, or the transaction with it, would make a store record
    /// larger than the store takes.
    #[error("too large: a record of {len} bytes would exceed the store's limit of {max} bytes")]
    TooLarge {
        /// Encoded bytes the record would have.
        len: usize,
        /// The store's largest record.
        max: usize,
    },
    /// A producer id or sequence number the broker cannot use.
    #[error("invalid producer: {0}")]
    InvalidProducer(#[from] InvalidProducer),
    /// A temporary destination whose connection is gone (or never existed).
    #[error("temporary destination {0} does not exist")]
    UnknownTemporary(String),
    /// A consumer of several queues at once (a composite or wildcard queue
    /// destination): sends to composites and topic subscriptions by pattern
    /// are supported, such queue consumers not yet.
    #[error(
        "consuming from several queues at once ({0}) is not supported; subscribe to each queue"
    )]
    MultiQueueConsumer(String),
    /// An operator named a destination that does not exist.
    #[error("no such destination: {0}")]
    UnknownDestination(String),
    /// An operation for queues was asked of a topic.
    #[error("{0} is not a queue")]
    NotAQueue(String),
    /// An operator asked to delete a destination that has consumers (or,
    /// a topic, subscriptions).
    #[error("{0} has consumers or subscriptions")]
    DestinationInUse(String),
    /// An operator asked to move a message that is not waiting in memory
    /// (delivered to a consumer, gone, or still in the store only).
    #[error("message {0} is not waiting in memory; it cannot be moved now")]
    NotMovable(MessageId),
    /// The store refused the record.
    #[error(transparent)]
    Store(#[from] StoreError),
}
