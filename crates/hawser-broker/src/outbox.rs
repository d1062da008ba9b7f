//! How the engine hands messages to connections without knowing what a connection is.
//!
//! The engine calls [`Outbox::deliver`] while it holds its state lock, so an
//! outbox must only queue the delivery (a channel send) and return. The protocol
//! layer turns each [`Delivery`] into its own frame, waits until the message is
//! durable (`seq`), writes it, and for auto-acknowledging consumers reports it
//! written so the engine can settle it.

use std::sync::Arc;

use crate::message::Message;
use crate::store::Seq;

/// Broker-wide identity of a consumer.
pub type ConsumerId = u64;
/// Broker-wide identity of a connection.
pub type ConnectionId = u64;

/// How a consumer acknowledges messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AckMode {
    /// Settled as soon as the connection has written the message.
    Auto,
    /// An ack settles everything delivered to the subscription up to that message.
    Client,
    /// An ack settles exactly one message.
    ClientIndividual,
}

impl AckMode {
    /// True when one ack covers every earlier delivery too.
    pub fn is_cumulative(self) -> bool {
        self == AckMode::Client
    }
}

/// One message for one consumer.
#[derive(Clone, Debug)]
pub struct Delivery {
    /// The consumer it is for.
    pub consumer: ConsumerId,
    /// The protocol's subscription id.
    pub subscription: Arc<str>,
    /// The message.
    pub message: Arc<Message>,
    /// Times it was delivered before and handed back; non-zero means "redelivered".
    pub redelivery_count: u32,
    /// Do not show the message to the consumer before this store record is durable.
    pub seq: Seq,
    /// The record that stored the message, even when `seq` lets it be shown
    /// earlier (0: none, or durable already): see `Entry::record`.
    pub record: Seq,
    /// The consumer uses auto-acknowledge: report the delivery once written.
    pub auto_ack: bool,
}

/// A connection's queue of outgoing deliveries.
pub trait Outbox: Send + Sync {
    /// Queues a delivery. Must not block: it is called under the engine's lock.
    fn deliver(&self, delivery: Delivery);
    /// Closes the connection, telling its client `reason` (an operator
    /// asked); `false` if this outbox cannot (the default).
    fn close(&self, reason: &str) -> bool {
        let _ = reason;
        false
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    use super::*;
    use parking_lot::Mutex;

    /// An outbox that remembers what it was given.
    #[derive(Default)]
    pub struct Recorder {
        pub deliveries: Mutex<Vec<Delivery>>,
    }

    impl Recorder {
        pub fn new() -> Arc<Recorder> {
            Arc::new(Recorder::default())
        }

        pub fn ids(&self) -> Vec<u64> {
            self.deliveries
                .lock()
                .iter()
                .map(|d| d.message.id)
                .collect()
        }

        pub fn consumers(&self) -> Vec<u64> {
            self.deliveries.lock().iter().map(|d| d.consumer).collect()
        }

        pub fn take(&self) -> Vec<Delivery> {
            std::mem::take(&mut *self.deliveries.lock())
        }
    }

    impl Outbox for Recorder {
        fn deliver(&self, delivery: Delivery) {
            self.deliveries.lock().push(delivery);
        }
    }
}
