//! The writing half of a STOMP connection.
//!
//! Items arrive in one FIFO from the session (CONNECTED, RECEIPT, ERROR) and
//! from the engine (deliveries). An item that depends on a store record (a
//! receipt for a persistent send, a persistent message) waits at the head of the
//! FIFO until the store's durability watermark passes its sequence, or, for a
//! send's receipt, until a consumer has acknowledged the message (see
//! `hawser_broker::consumed`); everything behind it waits too, which keeps the
//! connection's frames in order. All ready items are encoded into one buffer
//! and written with one syscall.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use hawser_broker::{
    Broker, Consumed, ConsumerId, Delivery, DurabilityWatch, MessageId, Outbox, Seq,
};
use hawser_stomp::{encode, encode_heartbeat, Command, Frame, FrameWriter, Version};
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::{mpsc, Notify};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::mapping::write_message;

/// Bytes gathered before a write, so a long run of ready items is sent in slices.
const WRITE_BATCH_BYTES: usize = 256 * 1024;

/// Something to send on the connection.
pub enum Out {
    /// The CONNECTED frame; fixes the version and the heart-beat the broker sends.
    Connected {
        /// The frame.
        frame: Frame,
        /// Version for encoding later frames.
        version: Version,
        /// Send a heart-beat after this long without writing (None: never).
        heartbeat: Option<Duration>,
    },
    /// A frame, sent once record `seq` is durable.
    Frame {
        /// The frame.
        frame: Frame,
        /// Store record it waits for (0: none).
        seq: Seq,
    },
    /// A RECEIPT for `id`, sent once record `seq` is durable or, for a send,
    /// once a consumer has acknowledged its message.
    Receipt {
        /// The `receipt` header of the frame it confirms.
        id: String,
        /// Store record it waits for (0: none).
        seq: Seq,
        /// Set by the engine when the sent message was consumed first.
        consumed: Option<Arc<Consumed>>,
    },
    /// A message for a subscription, from the engine. Not counted in
    /// [`Outbound`]: the subscription's prefetch already bounds them.
    Deliver(Delivery),
    /// A message for a queue browser, from the session (counted).
    Browse(Delivery),
    /// Send the frame if any, then close the connection.
    Close {
        /// A last RECEIPT or ERROR.
        frame: Option<Frame>,
    },
}

/// What a receipt waits for: a store record, or its message being consumed.
pub struct Confirm {
    /// Store record to wait for (0: none).
    pub seq: Seq,
    /// Set when a consumer acknowledged the message first.
    pub consumed: Option<Arc<Consumed>>,
}

impl Confirm {
    /// Nothing to wait for.
    pub fn now() -> Confirm {
        Confirm::after(0)
    }

    /// Wait for record `seq` only.
    pub fn after(seq: Seq) -> Confirm {
        Confirm {
            seq,
            consumed: None,
        }
    }
}

impl Out {
    fn seq(&self) -> Seq {
        match self {
            Out::Frame { seq, .. } | Out::Receipt { seq, .. } => *seq,
            Out::Deliver(d) | Out::Browse(d) => d.seq,
            Out::Connected { .. } | Out::Close { .. } => 0,
        }
    }

    /// The flag that can release this item before its record is durable.
    fn consumed(&self) -> Option<&Arc<Consumed>> {
        match self {
            Out::Receipt { consumed, .. } => consumed.as_ref(),
            _ => None,
        }
    }

    /// Whether it may be written with the watermark at `durable`. A receipt
    /// released by its message's consumer passes the same check as the
    /// watermark's own releases: `confirmable` says the store is not failed
    /// and (on a shared store) not superseded.
    fn ready(&self, durable: Seq, confirmable: impl FnOnce() -> bool) -> bool {
        self.seq() <= durable || (self.consumed().is_some_and(|c| c.is_set()) && confirmable())
    }
}

/// What a connection's writer still has to send because of what its client
/// sent (receipts, errors, browsed messages), not yet encoded. The session stops
/// reading the client while there are too many (`max_outbound_frames`), so a
/// client that does not read cannot make the broker hold an unbounded queue
/// for it. Deliveries are not counted: prefetch bounds them, and counting them
/// would put a shared counter on the broker's hottest path.
#[derive(Debug, Default)]
pub struct Outbound {
    /// Counted items in the channel and the writer's FIFO.
    queued: AtomicUsize,
    /// Woken each time the writer has written a batch.
    drained: Notify,
}

impl Outbound {
    /// Items not yet encoded.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    /// Queues `item` on `out`, counted. Every item but an engine's delivery
    /// must come through here, or the count would go wrong.
    pub fn push(&self, out: &mpsc::UnboundedSender<Out>, item: Out) {
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

    fn taken(&self, n: usize) {
        if n > 0 {
            self.queued.fetch_sub(n, Ordering::Relaxed);
        }
    }
}

/// The engine's handle on a connection: deliveries join the writer's FIFO.
pub struct ConnectionOutbox(pub mpsc::UnboundedSender<Out>);

impl Outbox for ConnectionOutbox {
    fn deliver(&self, delivery: Delivery) {
        // A send fails only when the writer has already gone; the session's
        // disconnect then hands the message back to the queue.
        let _ = self.0.send(Out::Deliver(delivery));
    }
}

/// Runs until the FIFO closes, a Close item is written, or the socket fails;
/// cancels `done` on the way out so the reading side stops too.
pub async fn run_writer(
    mut sock: OwnedWriteHalf,
    mut rx: mpsc::UnboundedReceiver<Out>,
    outbound: Arc<Outbound>,
    mut durability: DurabilityWatch,
    broker: Arc<Broker>,
    done: CancellationToken,
) {
    // However the writer ends (a panic included), the session hears of it.
    let _done = done.clone().drop_guard();
    let confirmable = || broker.store().check_confirmable().is_ok();
    let mut version = Version::V1_0;
    let mut heartbeat: Option<Duration> = None;
    let mut fifo: VecDeque<Out> = VecDeque::new();
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let mut auto_acked: Vec<(ConsumerId, MessageId)> = Vec::new();
    let mut rx_open = true;
    let mut last_write = Instant::now();
    loop {
        let mut closing = false;
        let durable = durability.borrow().clone();
        let mut taken = 0;
        while let Some(front) = fifo.front() {
            if !front.ready(durable.seq, || durable.failed.is_none() && confirmable()) {
                if durable.failed.is_some() {
                    // Nothing waiting will ever be confirmed: say so and close.
                    // The reason (file names and all) is in the server's log,
                    // not for clients.
                    buf.clear();
                    auto_acked.clear();
                    let f = Frame::new(Command::Error)
                        .with_header("message", super::STORE_FAILURE_MESSAGE);
                    encode(&f, version, &mut buf);
                    closing = true;
                }
                break;
            }
            let item = fifo.pop_front().expect("front exists");
            taken += usize::from(!matches!(item, Out::Deliver(_)));
            match item {
                Out::Connected {
                    frame,
                    version: v,
                    heartbeat: hb,
                } => {
                    encode(&frame, v, &mut buf);
                    version = v;
                    heartbeat = hb;
                }
                Out::Frame { frame, .. } => encode(&frame, version, &mut buf),
                Out::Receipt { id, .. } => {
                    let mut w =
                        FrameWriter::begin(Command::Receipt, version, id.len() + 12, &mut buf);
                    w.header("receipt-id", &id);
                    w.finish(&[]);
                }
                Out::Deliver(d) => {
                    write_message(&d, version, &mut buf);
                    if d.auto_ack {
                        auto_acked.push((d.consumer, d.message.id));
                    }
                }
                Out::Browse(d) => write_message(&d, version, &mut buf),
                Out::Close { frame } => {
                    if let Some(f) = frame {
                        encode(&f, version, &mut buf);
                    }
                    closing = true;
                    break;
                }
            }
            if buf.len() >= WRITE_BATCH_BYTES {
                break;
            }
        }
        outbound.taken(taken);
        let wake_session = taken > 0;
        if !buf.is_empty() {
            // A peer that stops reading blocks this write; cancelling `done` ends it.
            let written = tokio::select! {
                r = sock.write_all(&buf) => r.is_ok(),
                _ = done.cancelled() => false,
            };
            if !written {
                break;
            }
            buf.clear();
            last_write = Instant::now();
            if wake_session {
                outbound.drained.notify_one();
            }
            if !auto_acked.is_empty() {
                broker.delivered(&auto_acked);
                auto_acked.clear();
            }
        }
        if closing || (!rx_open && fifo.is_empty()) {
            let _ = sock.shutdown().await;
            break;
        }
        // A copy, never a borrow held across `confirmable`: the store's writer
        // thread raises this watermark, and a borrow held while the store is
        // asked would block it (and, through the engine lock an append holds
        // while it waits for that writer, every connection).
        let durable = durability.borrow().clone();
        let head_blocked = fifo
            .front()
            .is_some_and(|o| !o.ready(durable.seq, || durable.failed.is_none() && confirmable()));
        if !fifo.is_empty() && !head_blocked {
            continue;
        }
        // Woken by a consumer's ack when the blocked head is a send's receipt.
        let head_consumed = fifo
            .front()
            .and_then(Out::consumed)
            .filter(|_| head_blocked)
            .cloned();
        let beat_at = heartbeat.map(|hb| last_write + hb);
        tokio::select! {
            item = rx.recv(), if rx_open => match item {
                Some(o) => {
                    fifo.push_back(o);
                    while let Ok(o) = rx.try_recv() {
                        fifo.push_back(o);
                        if fifo.len() >= 4096 {
                            break;
                        }
                    }
                }
                None => rx_open = false,
            },
            changed = durability.changed(), if head_blocked => {
                if changed.is_err() {
                    break;
                }
            }
            _ = async { head_consumed.as_deref().expect("guarded").wait().await }, if head_consumed.is_some() => {}
            _ = tokio::time::sleep_until(beat_at.unwrap_or_else(Instant::now)), if beat_at.is_some() => {
                encode_heartbeat(&mut buf);
            }
            _ = done.cancelled() => break,
        }
    }
}
