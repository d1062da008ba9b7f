//! Hawser's client: an async STOMP client for Rust services, with ActiveMQ's
//! failover URIs.
//!
//! ```text
//! uri        parse tcp://h:p and failover:(...)?options, with ActiveMQ's names and defaults
//! reconnect  the reconnect policy as a pure state machine (no sockets, no clocks)
//! connection one STOMP connection: handshake, reader and writer tasks, heart-beats
//! audit      which acknowledged messages a subscription has seen, to drop copies
//! client     the supervisor that keeps a connection as the policy says, and the API
//! ```
//!
//! The wire format is `hawser-stomp`, the same codec the broker uses.

mod audit;
pub mod client;
pub mod connection;
pub mod error;
pub mod message;
pub mod reconnect;
pub mod uri;

pub use client::{
    AckMode, Client, Confirmation, Status, SubscribeOptions, Subscription, Transaction,
};
pub use connection::{tls_config, Identity};
pub use error::ClientError;
pub use hawser_stomp::Headers;
pub use message::Message;
