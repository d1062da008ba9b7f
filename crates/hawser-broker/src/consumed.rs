//! Confirming a send whose message was consumed before its record was durable.
//!
//! With concurrent store and dispatch a consumer can receive, and acknowledge,
//! a persistent message while its store record is still being written. Once a
//! consumer has explicitly acknowledged it the broker holds nothing a crash
//! could lose: the message has reached its end. Waiting for the fsync before
//! telling the producer would only add the disk's latency to every synchronous
//! send. ActiveMQ (concurrent store and dispatch) and RabbitMQ (classic queues)
//! confirm such sends at the acknowledgement too.
//!
//! What a receipt means is unchanged for every message that is still in the
//! broker: it is on disk. A crash after the early receipt can at worst bring
//! the message back (its record durable, the ack's not), a redelivery, never a
//! loss. Only explicit, non-transactional acknowledgements count: an
//! auto-acknowledged message has only reached the consumer's socket.

use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Notify;

/// Shared by a queued message and its producer's pending receipt: set when a
/// consumer acknowledges the message, and wakes the connection holding the receipt.
#[derive(Debug, Default)]
pub struct Consumed {
    done: AtomicBool,
    wake: Notify,
}

impl Consumed {
    /// A flag not yet set.
    pub fn new() -> Consumed {
        Consumed::default()
    }

    /// Marks the message consumed and wakes the waiting connection, if any.
    pub fn set(&self) {
        self.done.store(true, Ordering::Release);
        // notify_one keeps a permit when nobody waits yet, so a waiter that
        // checked the flag just before it was set still wakes.
        self.wake.notify_one();
    }

    /// Whether a consumer has acknowledged the message.
    pub fn is_set(&self) -> bool {
        self.done.load(Ordering::Acquire)
    }

    /// Resolves after the next [`Consumed::set`] (or at once if a wake is pending).
    pub async fn wait(&self) {
        self.wake.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[tokio::test]
    async fn a_set_before_waiting_is_not_missed() {
        let c = Consumed::new();
        assert!(!c.is_set());
        c.set();
        assert!(c.is_set());
        tokio::time::timeout(Duration::from_secs(5), c.wait())
            .await
            .expect("the pending wake is kept");
    }

    #[tokio::test]
    async fn a_waiter_wakes_when_set_from_another_thread() {
        let c = Arc::new(Consumed::new());
        let setter = Arc::clone(&c);
        let waiter = tokio::spawn(async move {
            c.wait().await;
            c.is_set()
        });
        std::thread::spawn(move || setter.set());
        let seen = tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("woken")
            .expect("task ran");
        assert!(seen);
    }
}
