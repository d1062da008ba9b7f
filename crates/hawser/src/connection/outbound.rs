//! What a connection owes its client, and the engine's handle on it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hawser_broker::{Delivery, Outbox};
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;

use super::out::{Encode, Out};

/// What a connection's writer still has to send because of what its client
/// sent (confirmations, errors, browsed messages), not yet encoded. The session
/// stops reading the client while there are too many (`max_outbound_frames`),
/// so a client that does not read cannot make the broker hold an unbounded
/// queue for it. Deliveries are not counted: prefetch bounds them, and counting
/// them would put a shared counter on the broker's hottest path.
#[derive(Debug, Default)]
pub struct Outbound {
    /// Counted items in the channel and the writer's FIFO.
    queued: AtomicUsize,
    /// Woken each time the writer has written a batch that took counted items.
    drained: Notify,
}

impl Outbound {
    /// Items not yet encoded.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    /// Queues `item` on `out`, counted. Every item but an engine's delivery
    /// must come through here, or the count would go wrong.
    pub fn push<E: Encode>(&self, out: &mpsc::UnboundedSender<Out<E>>, item: Out<E>) {
        self.queued.fetch_add(1, Ordering::Relaxed);
        if out.send(item).is_err() {
            // The writer is gone; nothing will take it off again.
            self.queued.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Resolves after the writer's next write (or at once if one came since the last wait).
    pub async fn drained(&self) {
        self.drained.notified().await;
    }

    /// The writer took `n` counted items.
    pub(super) fn taken(&self, n: usize) {
        if n > 0 {
            self.queued.fetch_sub(n, Ordering::Relaxed);
        }
    }

    /// The writer wrote what it took: a waiting session may read again.
    pub(super) fn wake(&self) {
        self.drained.notify_one();
    }
}

/// How long a connection an operator closes has to take its last error: a
/// client that reads nothing (its socket full) is cut off after it.
pub const EVICT_GRACE: Duration = Duration::from_secs(2);

/// The engine's handle on a connection: deliveries join the writer's FIFO.
pub struct ConnectionOutbox<E: Encode> {
    out: mpsc::UnboundedSender<Out<E>>,
    /// Ends the writer, and so the connection (see [`EVICT_GRACE`]).
    writer_done: CancellationToken,
}

impl<E: Encode> ConnectionOutbox<E> {
    /// The handle on the writer fed by `out`, which `writer_done` ends.
    pub fn new(out: mpsc::UnboundedSender<Out<E>>, writer_done: CancellationToken) -> Self {
        ConnectionOutbox { out, writer_done }
    }
}

impl<E: Encode> Outbox for ConnectionOutbox<E> {
    fn deliver(&self, delivery: Delivery) {
        // A send fails only when the writer has already gone; the session's
        // disconnect then hands the message back to the queue.
        let _ = self.out.send(Out::Deliver(delivery));
    }

    fn close(&self, reason: &str) -> bool {
        if self.out.send(Out::Evict(Arc::from(reason))).is_err() {
            return false;
        }
        // The writer sends the error and closes; one stuck in a write to a
        // client that reads nothing is ended here.
        let done = self.writer_done.clone();
        tokio::spawn(async move {
            tokio::time::sleep(EVICT_GRACE).await;
            done.cancel();
        });
        true
    }
}
