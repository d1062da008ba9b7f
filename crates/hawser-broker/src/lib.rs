//! Hawser's broker engine: everything a message broker decides, and nothing
//! about sockets, wire formats or disks.
//!
//! Data flows one way through it: a protocol session turns its client's frames
//! into calls on [`Broker`] (send, subscribe, ack, commit...); the broker routes
//! messages into [`queue::MessageQueue`]s, dispatches them to each consumer's
//! [`Outbox`], and appends what must survive a crash to a [`Store`]. Stores
//! (a local journal, later a replicated log or PostgreSQL) implement [`Store`]
//! and feed [`Recovered`] state back in at start.

pub mod access;
pub mod advisory;
pub mod advisory_events;
mod authorization;
pub mod broker;
pub mod config;
pub mod consumed;
mod container;
pub mod destination;
pub mod error;
pub mod identity;
pub mod message;
pub mod metrics;
mod operator;
pub mod outbox;
mod paging;
pub mod producer;
pub mod producer_registry;
pub mod property;
mod publish;
pub mod queue;
mod redelivery;
mod state;
pub mod store;
pub mod store_codec;
mod subscription;
mod topic;
mod transaction;
pub mod usage;

#[cfg(test)]
mod access_tests;
#[cfg(test)]
mod broker_tests;
#[cfg(test)]
mod operator_tests;
#[cfg(test)]
mod ownership_tests;
#[cfg(test)]
mod paging_tests;
#[cfg(test)]
mod promise_tests;
#[cfg(test)]
mod test_support;
#[cfg(test)]
mod xa_tests;

pub use access::{AccessEntry, AccessPolicy, AccessTarget, Operation};
pub use broker::{Broker, ContainerStats, RolledBackAcks, SubscribeSpec};
pub use config::{BrokerConfig, PolicyEntry};
pub use consumed::Consumed;
pub use destination::{Destination, DestinationKind, DestinationPattern, InvalidDestination};
pub use error::BrokerError;
pub use identity::{ConnectInfo, Principal, Protocol};
pub use message::{
    BodyKind, Message, MessageData, MessageFields, MessageId, NewMessage, ProducerRef,
};
pub use operator::{ConnectionView, Moved, SubscriptionView, RETRY_BATCH};
pub use outbox::{AckMode, ConnectionId, ConsumerId, Delivery, Outbox};
pub use paging::Paging;
pub use producer::{ProducerKey, SeqWindow};
pub use property::{Properties, PropertyValue};
pub use queue::{LastDelivered, PagedOut};
pub use store::{
    forget_spilled, wait_durable, Durability, DurabilityWatch, DurableSubscription, Histogram,
    MemoryStore, PendingCounts, PreparedSend, PreparedTransaction, ReadFuture, ReadLimit,
    Recovered, Replay, Seq, Store, StoreError, StoreKey, StoreOp, StoredMessage, WriteStats,
    PRIORITIES,
};
pub use usage::{DestinationPolicy, DestinationUsage, Full, MemoryUsage};
