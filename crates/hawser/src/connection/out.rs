//! What a connection's writer is given to send, and how a protocol encodes it.

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use hawser_broker::{Consumed, Delivery, Seq};

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
    /// Appends the error that tells the client an operator closed its
    /// connection, saying `reason` (the connection then closes).
    fn closed_by_operator(&mut self, reason: &str, buf: &mut BytesMut);
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
    /// [`super::Outbound`]: the subscription's prefetch already bounds them.
    Deliver(Delivery),
    /// A message for a queue browser, from the session (counted).
    Browse(Delivery),
    /// An operator closes the connection (from the engine, not counted in
    /// [`super::Outbound`]): say why, then close.
    Evict(Arc<str>),
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
    pub(super) fn seq(&self) -> Seq {
        match self {
            Out::Frame { seq, .. } => *seq,
            Out::Confirm { until, .. } => until.seq,
            Out::Deliver(d) | Out::Browse(d) => d.seq,
            Out::Setup { .. } | Out::Close { .. } | Out::Evict(_) => 0,
        }
    }

    /// The flag that can release this item before its record is durable.
    pub(super) fn consumed(&self) -> Option<&Arc<Consumed>> {
        match self {
            Out::Confirm { until, .. } => until.consumed.as_ref(),
            _ => None,
        }
    }

    /// Whether it may be written with the watermark at `durable`. A
    /// confirmation released by its message's consumer passes the same check
    /// as the watermark's own releases: `confirmable` says the store is not
    /// failed and (on a shared store) not superseded.
    pub(super) fn ready(&self, durable: Seq, confirmable: impl FnOnce() -> bool) -> bool {
        self.seq() <= durable || (self.consumed().is_some_and(|c| c.is_set()) && confirmable())
    }
}
