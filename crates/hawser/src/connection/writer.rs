//! The writing half of a connection, whatever its protocol.
//!
//! Items arrive in one FIFO from the session (replies, errors, confirmations)
//! and from the engine (deliveries). An item that depends on a store record (a
//! confirmation of a persistent send, a persistent message) waits at the head
//! of the FIFO until the store's durability watermark passes its sequence, or,
//! for a send's confirmation, until a consumer has acknowledged the message
//! (see `hawser_broker::consumed`); everything behind it waits too, which keeps
//! the connection's frames in order. All ready items are encoded into one
//! buffer and written with one syscall.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use hawser_broker::{Broker, Consumed, ConsumerId, Delivery, DurabilityWatch, MessageId, Seq};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::outbound::Outbound;

/// How long a closing connection may take to flush what it owes the client.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// The same during a server shutdown, so a client that does not read cannot delay it.
const SHUTDOWN_DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// Bytes gathered before a write, so a long run of ready items is sent in slices.
const WRITE_BATCH_BYTES: usize = 256 * 1024;

/// Items taken from the channel at once, so one wake-up does not grow the FIFO without end.
const RECEIVE_BATCH: usize = 4096;

/// How a protocol writes what the connection core sends. The encoder lives in
/// the writer task and may keep state (a negotiated version, a marshal cache).
pub trait Encode: Send + 'static {
    /// A reply or notice the protocol sends (not a delivery).
    type Frame: Send + 'static;
    /// What the protocol switches to once the connection is established (a
    /// negotiated version or wire format).
    type Setup: Send + 'static;

    /// Applies a setup; frames after it are encoded accordingly.
    fn setup(&mut self, setup: Self::Setup);
    /// Appends `frame` to `buf`.
    fn frame(&mut self, frame: &Self::Frame, buf: &mut BytesMut);
    /// Appends a message delivery to `buf`.
    fn delivery(&mut self, delivery: &Delivery, buf: &mut BytesMut);
    /// Appends what tells the client the store failed (the connection then
    /// closes): no detail, the reason is in the server's log.
    fn store_failure(&mut self, buf: &mut BytesMut);
    /// Appends a keep-alive, sent when nothing else was written for a while.
    fn keep_alive(&mut self, buf: &mut BytesMut);
}

/// Something to send on the connection.
pub enum Out<E: Encode> {
    /// The setup a connection was established with, and the reply that says so.
    Setup {
        /// Written with the setup already applied.
        frame: E::Frame,
        /// Applied first.
        setup: E::Setup,
        /// Send a keep-alive after this long without writing (None: never).
        keep_alive: Option<Duration>,
    },
    /// A frame, sent once record `seq` is durable.
    Frame {
        /// The frame.
        frame: E::Frame,
        /// Store record it waits for (0: none).
        seq: Seq,
    },
    /// A confirmation, sent once record `seq` is durable or, for a send, once a
    /// consumer has acknowledged its message.
    Confirm {
        /// The protocol's confirmation (a RECEIPT, a Response...).
        frame: E::Frame,
        /// What it waits for.
        until: Confirm,
    },
    /// A message for a subscription, from the engine. Not counted in
    /// [`Outbound`]: the subscription's prefetch already bounds them.
    Deliver(Delivery),
    /// A message for a queue browser, from the session (counted).
    Browse(Delivery),
    /// Send the frame if any, then close the connection.
    Close {
        /// A last confirmation or error.
        frame: Option<E::Frame>,
    },
}

/// What a confirmation waits for: a store record, or its message being consumed.
#[derive(Clone, Default)]
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

impl<E: Encode> Out<E> {
    fn seq(&self) -> Seq {
        match self {
            Out::Frame { seq, .. } => *seq,
            Out::Confirm { until, .. } => until.seq,
            Out::Deliver(d) | Out::Browse(d) => d.seq,
            Out::Setup { .. } | Out::Close { .. } => 0,
        }
    }

    /// The flag that can release this item before its record is durable.
    fn consumed(&self) -> Option<&Arc<Consumed>> {
        match self {
            Out::Confirm { until, .. } => until.consumed.as_ref(),
            _ => None,
        }
    }

    /// Whether it may be written with the watermark at `durable`. A
    /// confirmation released by its message's consumer passes the same check
    /// as the watermark's own releases: `confirmable` says the store is not
    /// failed and (on a shared store) not superseded.
    fn ready(&self, durable: Seq, confirmable: impl FnOnce() -> bool) -> bool {
        self.seq() <= durable || (self.consumed().is_some_and(|c| c.is_set()) && confirmable())
    }
}

/// Runs until the FIFO closes, a Close item is written, or the socket fails;
/// cancels `done` on the way out so the reading side stops too.
pub async fn run_writer<E: Encode, W: AsyncWrite + Unpin>(
    mut sock: W,
    mut encoder: E,
    mut rx: mpsc::UnboundedReceiver<Out<E>>,
    outbound: Arc<Outbound>,
    mut durability: DurabilityWatch,
    broker: Arc<Broker>,
    done: CancellationToken,
) {
    // However the writer ends (a panic included), the session hears of it.
    let _done = done.clone().drop_guard();
    let confirmable = || broker.store().check_confirmable().is_ok();
    let mut keep_alive: Option<Duration> = None;
    let mut fifo: VecDeque<Out<E>> = VecDeque::new();
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let mut auto_acked: Vec<(ConsumerId, MessageId)> = Vec::new();
    let mut rx_open = true;
    let mut last_write = Instant::now();
    loop {
        let mut closing = false;
        // A copy, never a borrow held across `confirmable`: the store's writer
        // thread raises this watermark, and a borrow held while the store is
        // asked would block it (and, through the engine lock an append holds
        // while it waits for that writer, every connection).
        let durable = durability.borrow().clone();
        let mut taken = 0;
        while let Some(front) = fifo.front() {
            if !front.ready(durable.seq, || durable.failed.is_none() && confirmable()) {
                if durable.failed.is_some() {
                    // Nothing waiting will ever be confirmed: say so and close.
                    buf.clear();
                    auto_acked.clear();
                    encoder.store_failure(&mut buf);
                    closing = true;
                }
                break;
            }
            let item = fifo.pop_front().expect("front exists");
            taken += usize::from(!matches!(item, Out::Deliver(_)));
            match item {
                Out::Setup {
                    frame,
                    setup,
                    keep_alive: k,
                } => {
                    encoder.setup(setup);
                    encoder.frame(&frame, &mut buf);
                    keep_alive = k;
                }
                Out::Frame { frame, .. } | Out::Confirm { frame, .. } => {
                    encoder.frame(&frame, &mut buf);
                }
                Out::Deliver(d) => {
                    encoder.delivery(&d, &mut buf);
                    if d.auto_ack {
                        auto_acked.push((d.consumer, d.message.id));
                    }
                }
                Out::Browse(d) => encoder.delivery(&d, &mut buf),
                Out::Close { frame } => {
                    if let Some(f) = frame {
                        encoder.frame(&f, &mut buf);
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
            if taken > 0 {
                outbound.wake();
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
        let durable = durability.borrow().clone();
        let head_blocked = fifo
            .front()
            .is_some_and(|o| !o.ready(durable.seq, || durable.failed.is_none() && confirmable()));
        if !fifo.is_empty() && !head_blocked {
            continue;
        }
        // Woken by a consumer's ack when the blocked head is a send's confirmation.
        let head_consumed = fifo
            .front()
            .and_then(Out::consumed)
            .filter(|_| head_blocked)
            .cloned();
        let beat_at = keep_alive.map(|k| last_write + k);
        tokio::select! {
            item = rx.recv(), if rx_open => match item {
                Some(o) => {
                    fifo.push_back(o);
                    while let Ok(o) = rx.try_recv() {
                        fifo.push_back(o);
                        if fifo.len() >= RECEIVE_BATCH {
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
                encoder.keep_alive(&mut buf);
            }
            _ = done.cancelled() => break,
        }
    }
}

/// Lets a closing connection's writer flush what it owes the client, for a
/// while: a client that does not read must not hold the broker (or a
/// shutdown) up for long.
pub async fn drain(
    mut writer: tokio::task::JoinHandle<()>,
    done: &CancellationToken,
    shutdown: &CancellationToken,
) {
    let limit = if shutdown.is_cancelled() {
        SHUTDOWN_DRAIN_TIMEOUT
    } else {
        DRAIN_TIMEOUT
    };
    if tokio::time::timeout(limit, &mut writer).await.is_err() {
        done.cancel();
        let _ = writer.await;
    }
}
