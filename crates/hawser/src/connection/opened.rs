//! A connection's two halves, started over an accepted socket.

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::out::{Encode, Out};
use super::outbound::Outbound;
use super::reader::{ReadTimeouts, Reader};
use super::settings::CoreSettings;
use super::transport::{ReadHalf, Transport};
use super::writer::{drain, run_writer};

/// What a protocol's session holds of its connection: the queue to the
/// writer task (already running) and the reading side.
pub struct Opened<E: Encode> {
    /// Queue to the writer.
    pub out: mpsc::UnboundedSender<Out<E>>,
    /// What the writer still has to send, shared with it and the engine's outbox.
    pub outbound: Arc<Outbound>,
    /// The transport's reading half, its buffer and deadlines.
    pub reader: Reader<ReadHalf>,
    /// The writer task, to [`Closing::finish`] when the session ends.
    pub closing: Closing,
}

/// The end of a connection: its writer flushes what it owes, for a while.
pub struct Closing {
    writer: JoinHandle<()>,
    done: CancellationToken,
    shutdown: CancellationToken,
}

impl Closing {
    /// Waits for the writer to flush what is queued (see [`drain`]).
    pub async fn finish(self) {
        drain(self.writer, &self.done, &self.shutdown).await;
    }
}

/// Starts the writer of an accepted connection, with the protocol's
/// `encoder`, and returns the rest for the session.
pub fn open<E: Encode>(
    transport: Transport,
    encoder: E,
    core: &Arc<CoreSettings>,
    timeouts: ReadTimeouts,
    shutdown: CancellationToken,
) -> Opened<E> {
    let (rd, wr) = (transport.read, transport.write);
    let (out, rx) = mpsc::unbounded_channel();
    let done = CancellationToken::new();
    let outbound = Arc::new(Outbound::default());
    let broker = Arc::clone(&core.broker);
    let writer = tokio::spawn(run_writer(
        wr,
        encoder,
        rx,
        Arc::clone(&outbound),
        broker.store().durability(),
        broker,
        done.clone(),
    ));
    let reader = Reader::new(
        rd,
        Arc::clone(core),
        timeouts,
        Arc::clone(&outbound),
        shutdown.clone(),
        done.clone(),
    );
    Opened {
        out,
        outbound,
        reader,
        closing: Closing {
            writer,
            done,
            shutdown,
        },
    }
}
