//! Hawser's broker engine: everything a message broker decides, and nothing
//! about sockets, wire formats or disks.
//!
//! Data flows one way through it: a protocol session turns its client's frames
//! into calls on [`Broker`] (send, subscribe, ack, commit...); the broker routes
//! messages into [`queue::MessageQueue`]s, dispatches them to each consumer's
//! [`Outbox`], and appends what must survive a crash to a [`Store`]. Stores
//! (a local journal, later a replicated log or PostgreSQL) implement [`Store`]
//! and feed [`Recovered`] state back in at start.

pub mod broker;
pub mod config;
pub mod consumed;
pub mod destination;
pub mod error;
pub mod message;
pub mod outbox;
pub mod queue;
pub mod store;
pub mod store_codec;

#[cfg(test)]
mod broker_tests;

pub use broker::{Broker, ContainerStats, SubscribeSpec};
pub use config::BrokerConfig;
pub use consumed::Consumed;
pub use destination::{Destination, DestinationKind, InvalidDestination};
pub use error::BrokerError;
pub use message::{MemoryUsage, Message, MessageData, MessageId, NewMessage, ProducerRef};
pub use outbox::{AckMode, ConnectionId, ConsumerId, Delivery, Outbox};
pub use store::{
    wait_durable, Durability, DurabilityWatch, DurableSubscription, MemoryStore, Recovered, Seq,
    Store, StoreError, StoreKey, StoreOp,
};
