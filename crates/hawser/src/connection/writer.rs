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
use hawser_broker::{Broker, ConsumerId, DurabilityWatch, MessageId};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::out::{Encode, Out};
use super::outbound::Outbound;

/// How long a closing connection may take to flush what it owes the client.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// The same during a server shutdown, so a client that does not read cannot delay it.
const SHUTDOWN_DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// Bytes gathered before a write, so a long run of ready items is sent in slices.
const WRITE_BATCH_BYTES: usize = 256 * 1024;

/// Items taken from the channel at once, so one wake-up does not grow the FIFO without end.
const RECEIVE_BATCH: usize = 4096;

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
            taken += usize::from(!matches!(item, Out::Deliver(_) | Out::Evict(_)));
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
                Out::Evict(reason) => {
                    encoder.closed_by_operator(&reason, &mut buf);
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
                    admit(&mut fifo, o);
                    while let Ok(o) = rx.try_recv() {
                        admit(&mut fifo, o);
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

/// Queues `item` for writing: in order, except an operator's eviction,
/// which goes first: it must not wait behind a confirmation that waits for
/// the store, or for a consumer.
fn admit<E: Encode>(fifo: &mut VecDeque<Out<E>>, item: Out<E>) {
    if matches!(item, Out::Evict(_)) {
        fifo.push_front(item);
    } else {
        fifo.push_back(item);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use bytes::BytesMut;
    use hawser_broker::{Broker, BrokerConfig, Delivery, Durability, MemoryStore, Recovered};
    use tokio::io::{AsyncReadExt, DuplexStream};
    use tokio::sync::{mpsc, watch};
    use tokio_util::sync::CancellationToken;

    use super::run_writer;
    use crate::connection::{Confirm, Encode, Out, Outbound};

    /// A protocol of text lines, to show the writer needs nothing of STOMP.
    struct Lines;

    impl Encode for Lines {
        type Frame = &'static str;
        type Setup = ();
        fn setup(&mut self, (): ()) {}
        fn frame(&mut self, frame: &&'static str, buf: &mut BytesMut) {
            buf.extend_from_slice(format!("{frame}\n").as_bytes());
        }
        fn delivery(&mut self, d: &Delivery, buf: &mut BytesMut) {
            buf.extend_from_slice(format!("message {}\n", d.message.id).as_bytes());
        }
        fn store_failure(&mut self, buf: &mut BytesMut) {
            buf.extend_from_slice(b"store failed\n");
        }
        fn closed_by_operator(&mut self, reason: &str, buf: &mut BytesMut) {
            buf.extend_from_slice(format!("closed: {reason}\n").as_bytes());
        }
        fn keep_alive(&mut self, buf: &mut BytesMut) {
            buf.extend_from_slice(b"keep-alive\n");
        }
    }

    struct Harness {
        out: mpsc::UnboundedSender<Out<Lines>>,
        outbound: Arc<Outbound>,
        durability: watch::Sender<Durability>,
        client: DuplexStream,
        read: String,
    }

    impl Harness {
        /// A writer over an in-memory pipe, with a watermark the test raises.
        fn start() -> Harness {
            let (client, server) = tokio::io::duplex(4096);
            let (out, rx) = mpsc::unbounded_channel();
            let outbound = Arc::new(Outbound::default());
            let (durability, watermark) = watch::channel(Durability::default());
            let broker = Arc::new(Broker::new(
                BrokerConfig::default(),
                Arc::new(MemoryStore::new()),
                Recovered::default(),
            ));
            tokio::spawn(run_writer(
                server,
                Lines,
                rx,
                Arc::clone(&outbound),
                watermark,
                broker,
                CancellationToken::new(),
            ));
            Harness {
                out,
                outbound,
                durability,
                client,
                read: String::new(),
            }
        }

        fn push(&self, item: Out<Lines>) {
            self.outbound.push(&self.out, item);
        }

        /// Reads until `line` has come (bounded), returning everything read so far.
        async fn until(&mut self, line: &str) -> &str {
            let mut chunk = [0u8; 256];
            for _ in 0..100 {
                if self.read.lines().any(|l| l == line) {
                    return &self.read;
                }
                let n = tokio::time::timeout(Duration::from_secs(5), self.client.read(&mut chunk))
                    .await
                    .expect("the writer wrote in time")
                    .unwrap();
                assert!(n > 0, "closed before {line:?}; read {:?}", self.read);
                self.read
                    .push_str(std::str::from_utf8(&chunk[..n]).unwrap());
            }
            panic!("no {line:?} in {:?}", self.read);
        }
    }

    #[tokio::test]
    async fn a_confirmation_waits_for_its_record_and_holds_what_follows() {
        let mut h = Harness::start();
        h.push(Out::Frame {
            frame: "first",
            seq: 0,
        });
        h.push(Out::Confirm {
            frame: "confirmed",
            until: Confirm::after(5),
        });
        h.push(Out::Frame {
            frame: "behind",
            seq: 0,
        });
        assert_eq!(h.until("first").await, "first\n");
        // The writer took `first` before writing it and cannot take the
        // confirmation before record 5 is durable: both remain queued.
        assert_eq!(h.outbound.queued(), 2);
        h.durability.send_modify(|d| d.seq = 4);
        h.durability.send_modify(|d| d.seq = 5);
        assert_eq!(h.until("behind").await, "first\nconfirmed\nbehind\n");
        assert_eq!(h.outbound.queued(), 0);
    }

    #[tokio::test]
    async fn a_quiet_connection_gets_keep_alives() {
        let mut h = Harness::start();
        h.push(Out::Setup {
            frame: "connected",
            setup: (),
            keep_alive: Some(Duration::from_millis(20)),
        });
        let read = h.until("keep-alive").await;
        assert!(read.starts_with("connected\n"), "{read:?}");
    }

    #[tokio::test]
    async fn a_failed_store_is_told_and_the_connection_closes() {
        let mut h = Harness::start();
        h.push(Out::Confirm {
            frame: "never",
            until: Confirm::after(1),
        });
        h.durability
            .send_modify(|d| d.failed = Some(Arc::from("disk gone")));
        assert_eq!(h.until("store failed").await, "store failed\n");
        let mut rest = Vec::new();
        h.client.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty(), "nothing after the failure: {rest:?}");
    }
}
