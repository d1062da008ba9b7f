//! The reading half of a connection, whatever its protocol: bytes in, with
//! the deadlines, the outbound bound and producer flow control every protocol
//! needs. The protocol's session decodes what [`Reader::buf`] holds.

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use hawser_broker::{DestinationUsage, Paging};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::outbound::Outbound;
use super::settings::CoreSettings;
use crate::config::{ClusterConfig, FlowControl};

/// Spare capacity kept in the read buffer before each read.
pub const READ_CHUNK_BYTES: usize = 64 * 1024;
/// Clients may be this much later than their keep-alive interval (ActiveMQ allows 1.5x).
const KEEP_ALIVE_GRACE_NUM: u64 = 3;
const KEEP_ALIVE_GRACE_DEN: u64 = 2;
/// How often a producer held by a full store or disk checks again.
const STORE_FULL_POLL: Duration = Duration::from_millis(100);

/// How long a producer held for the store's writes waits at most before it
/// looks again, should no commit say so sooner.
const WRITES_POLL: Duration = Duration::from_millis(10);

/// What a held producer waits for.
#[derive(Clone, Copy)]
enum Wait {
    /// Memory, signalled when it frees; refused instead if the policy says.
    Memory(&'static str),
    /// The store's size or the disk's space, sampled; refused instead if
    /// the policy says.
    Sampled(&'static str),
    /// The store's writes to catch up (`Store::writes_behind`): never refused.
    Writes,
}

/// The deadlines of a protocol's connections (ms; 0 where it says never).
#[derive(Clone, Copy, Debug)]
pub struct ReadTimeouts {
    /// From accepting the socket to the protocol's connect.
    pub connect_ms: u64,
    /// From the first byte of a frame to its last.
    pub frame_ms: u64,
    /// Without keep-alives, nothing received for this long closes the connection (0: never).
    pub idle_ms: u64,
}

/// Why a connection stopped being read.
#[non_exhaustive]
#[derive(thiserror::Error, Debug)]
pub enum ReadError {
    /// The client went away, or the server is shutting down: nothing is owed.
    #[error("connection closed")]
    Closed,
    /// No connect in time.
    #[error("not connected within {0} ms")]
    ConnectTimeout(u64),
    /// A protocol that connects before it authenticates (OpenWire) did not
    /// authenticate in time.
    #[error("not authenticated within {0} ms")]
    LoginTimeout(u64),
    /// A frame started arriving and stalled.
    #[error("incomplete frame stalled for {0} ms")]
    FrameTimeout(u64),
    /// The client stopped sending keep-alives.
    #[error("no keep-alive or frame from client within {0} ms")]
    KeepAliveTimeout(u64),
    /// A client without keep-alives sent nothing for too long.
    #[error(
        "connection idle: nothing received for {0} ms (ask for keep-alives to stay connected)"
    )]
    IdleTimeout(u64),
    /// Producer flow control is set to fail and memory, the store, its
    /// temporary part or the disk is full.
    #[error("{0} is full; message refused")]
    ResourceFull(&'static str),
}

/// What woke a session waiting for its client.
pub enum Wake {
    /// More bytes are in [`Reader::buf`].
    Read,
    /// The broker URIs advertised to clients changed (to a client that asked).
    Cluster(Arc<ClusterConfig>),
    /// The server is shutting down or the writer ended: stop reading, quietly.
    Stop,
}

/// A connection's reading side.
pub struct Reader<R> {
    rd: R,
    /// Bytes read and not yet decoded.
    pub buf: BytesMut,
    core: Arc<CoreSettings>,
    timeouts: ReadTimeouts,
    accepted: Instant,
    last_read: Instant,
    partial_since: Option<Instant>,
    connected: bool,
    /// Until the client authenticates, when it must have (and the limit in
    /// ms): see [`Reader::expect_login`].
    login_by: Option<(Instant, u64)>,
    /// Expect a frame or keep-alive at least this often (ms; 0: no expectation).
    keep_alive_ms: u64,
    outbound: Arc<Outbound>,
    shutdown: CancellationToken,
    writer_done: CancellationToken,
    /// Set when the client asked to hear of cluster changes.
    cluster: Option<watch::Receiver<Arc<ClusterConfig>>>,
}

impl<R: AsyncRead + Unpin> Reader<R> {
    /// Reads `rd` for a connection accepted now.
    pub fn new(
        rd: R,
        core: Arc<CoreSettings>,
        timeouts: ReadTimeouts,
        outbound: Arc<Outbound>,
        shutdown: CancellationToken,
        writer_done: CancellationToken,
    ) -> Reader<R> {
        let now = Instant::now();
        Reader {
            rd,
            buf: BytesMut::with_capacity(READ_CHUNK_BYTES),
            core,
            timeouts,
            accepted: now,
            last_read: now,
            partial_since: None,
            connected: false,
            login_by: None,
            keep_alive_ms: 0,
            outbound,
            shutdown,
            writer_done,
            cluster: None,
        }
    }

    /// The client connected: the connect deadline is over; from now on it is
    /// expected to send something every `keep_alive_ms` (0: no expectation,
    /// the idle timeout applies instead).
    pub fn connected(&mut self, keep_alive_ms: u64) {
        self.connected = true;
        self.keep_alive_ms = keep_alive_ms;
    }

    /// The client must authenticate within `within_ms` of its connection's
    /// accept, whatever it sends meanwhile: for a protocol whose connect
    /// (OpenWire's WireFormatInfo) comes before its credentials.
    pub fn expect_login(&mut self, within_ms: u64) {
        self.login_by = Some((self.accepted + Duration::from_millis(within_ms), within_ms));
    }

    /// The client authenticated: [`Reader::expect_login`] is over.
    pub fn logged_in(&mut self) {
        self.login_by = None;
    }

    /// Tells the client of cluster changes from now on.
    pub fn follow_cluster(&mut self, cluster: watch::Receiver<Arc<ClusterConfig>>) {
        self.cluster = Some(cluster);
    }

    /// Waits for the client (or a cluster change), after the session decoded
    /// what it could. While the writer holds too much for the client, nothing
    /// is read: a client that does not read what it is sent is not read from
    /// either, and its frames wait in the socket, not in the broker.
    pub async fn wait(&mut self) -> Result<Wake, ReadError> {
        if !self.wait_for_outbound().await? {
            return Ok(Wake::Stop);
        }
        self.partial_since = if self.buf.is_empty() {
            None
        } else {
            self.partial_since.or(Some(Instant::now()))
        };
        let (deadline, timeout) = self.deadline(true);
        let (shutdown, writer_done) = (self.shutdown.clone(), self.writer_done.clone());
        let mut cluster = self.cluster.take();
        let cluster_changed = async {
            match cluster.as_mut() {
                Some(rx) => rx.changed().await.is_ok(),
                None => std::future::pending().await,
            }
        };
        let wake = tokio::select! {
            changed = cluster_changed => match cluster.as_mut() {
                Some(rx) if changed => Wake::Cluster(Arc::clone(&rx.borrow_and_update())),
                _ => {
                    cluster = None;
                    Wake::Read
                }
            },
            read = self.read_more() => {
                read?;
                Wake::Read
            }
            _ = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {
                return Err(timeout.expect("set with deadline"));
            }
            _ = shutdown.cancelled() => Wake::Stop,
            _ = writer_done.cancelled() => Wake::Stop,
        };
        self.cluster = cluster;
        Ok(wake)
    }

    /// Waits while the writer holds more than `max_outbound_frames` for the
    /// client; `false` if the connection is to stop meanwhile. The client's
    /// keep-alives are not expected while it is not read.
    async fn wait_for_outbound(&mut self) -> Result<bool, ReadError> {
        let limit = self.core.max_outbound_frames;
        while self.outbound.queued() > limit {
            tokio::select! {
                _ = self.outbound.drained() => {}
                _ = self.shutdown.cancelled() => return Ok(false),
                _ = self.writer_done.cancelled() => return Ok(false),
            }
            // Waiting on our own account is not the client being late.
            self.last_read = Instant::now();
        }
        Ok(true)
    }

    /// Reads whatever the client sent next into the buffer; `Closed` at end of stream.
    async fn read_more(&mut self) -> Result<(), ReadError> {
        if self.buf.capacity() - self.buf.len() < READ_CHUNK_BYTES / 4 {
            self.buf.reserve(READ_CHUNK_BYTES);
        }
        match self.rd.read_buf(&mut self.buf).await {
            Ok(0) | Err(_) => Err(ReadError::Closed),
            Ok(_) => {
                self.last_read = Instant::now();
                Ok(())
            }
        }
    }

    /// The earliest moment the client must have sent something, and the error
    /// if it has not; `with_partial` counts a frame left half-read.
    fn deadline(&self, with_partial: bool) -> (Option<Instant>, Option<ReadError>) {
        let t = &self.timeouts;
        let mut best: (Option<Instant>, Option<ReadError>) = (None, None);
        let mut consider = |at: Instant, err: ReadError| {
            if best.0.is_none_or(|b| at < b) {
                best = (Some(at), Some(err));
            }
        };
        if !self.connected {
            consider(
                self.accepted + Duration::from_millis(t.connect_ms),
                ReadError::ConnectTimeout(t.connect_ms),
            );
        }
        if let Some((at, ms)) = self.login_by {
            consider(at, ReadError::LoginTimeout(ms));
        }
        if let Some(p) = self.partial_since.filter(|_| with_partial) {
            consider(
                p + Duration::from_millis(t.frame_ms),
                ReadError::FrameTimeout(t.frame_ms),
            );
        }
        if self.keep_alive_ms > 0 {
            let grace = self.keep_alive_ms * KEEP_ALIVE_GRACE_NUM / KEEP_ALIVE_GRACE_DEN;
            consider(
                self.last_read + Duration::from_millis(grace),
                ReadError::KeepAliveTimeout(self.keep_alive_ms),
            );
        } else if self.connected && t.idle_ms > 0 {
            consider(
                self.last_read + Duration::from_millis(t.idle_ms),
                ReadError::IdleTimeout(t.idle_ms),
            );
        }
        best
    }

    /// Producer flow control: holds a send to the destination counted by
    /// `usage` while there is no room: its memory limit, the broker's (for
    /// destinations holding their share of it, see `hawser_broker::usage`),
    /// the store's, or the disk's free space; or refuses it, as the policy
    /// says. Only this producer waits; other connections go on.
    ///
    /// While a producer is held, its socket is still read (up to `read_limit`
    /// buffered bytes, about one frame) so that its keep-alives count and a
    /// producer that goes away frees its connection; the frames themselves wait.
    /// Once that much is buffered the socket is not read, and the client's
    /// keep-alives wait behind its frames: then no keep-alive is expected (not
    /// reading is on our own account, as in `wait_for_outbound`), or a producer
    /// of asynchronous sends held longer than its keep-alive interval would be
    /// closed for being late. ActiveMQ does not time out a connection whose
    /// command is being handled either.
    ///
    /// A message the store can keep out of memory (`paging`, see the
    /// engine's `Broker::pages`) is not held for memory: only the store's
    /// size and the disk's space hold it, and for a non-persistent one
    /// ([`Paging::Temp`]) the temporary store's limit too.
    ///
    /// And every producer waits, whatever the policy, while the store's
    /// writes are behind (`Store::writes_behind`): the engine appends under
    /// its lock, and an append that had to wait there would hold every
    /// connection, not just the producers that fill the store.
    pub async fn wait_for_room(
        &mut self,
        usage: &DestinationUsage,
        paging: Paging,
        read_limit: usize,
    ) -> Result<(), ReadError> {
        let core = Arc::clone(&self.core);
        let store = core.broker.store();
        let mut counted = false;
        loop {
            let memory_room = match paging {
                Paging::Memory => usage.room(),
                Paging::Store | Paging::Temp => Ok(()),
            };
            let wait = match memory_room {
                Err(full) => Wait::Memory(full.as_str()),
                Ok(()) => match core.store_room() {
                    Err(which) => Wait::Sampled(which),
                    Ok(()) if paging == Paging::Temp && core.broker.temp_full(usage) => {
                        Wait::Sampled("temporary store")
                    }
                    Ok(()) if store.writes_behind() => Wait::Writes,
                    Ok(()) => return Ok(()),
                },
            };
            let block = usage
                .policy()
                .producer_flow_control
                .unwrap_or(core.flow_control == FlowControl::Block);
            match wait {
                Wait::Memory(which) | Wait::Sampled(which) if !block => {
                    core.flow_events.refused(which);
                    return Err(ReadError::ResourceFull(which));
                }
                Wait::Memory(which) | Wait::Sampled(which) if !counted => {
                    core.flow_events.held(which);
                }
                Wait::Writes if !counted => core.flow_events.held("writes behind"),
                _ => {}
            }
            counted = true;
            let can_read = self.buf.len() < read_limit;
            let (deadline, timeout) = if can_read {
                self.deadline(false)
            } else {
                (None, None)
            };
            let mut durability = store.durability();
            let room = async {
                match wait {
                    Wait::Memory(_) => usage.wait_for_room().await,
                    Wait::Sampled(_) => tokio::time::sleep(STORE_FULL_POLL).await,
                    // The writer takes its whole queue at each commit, and each
                    // commit moves the watermark: look again then (or soon).
                    Wait::Writes => {
                        let _ = tokio::time::timeout(WRITES_POLL, durability.changed()).await;
                    }
                }
            };
            let (shutdown, writer_done) = (self.shutdown.clone(), self.writer_done.clone());
            tokio::select! {
                _ = room => {}
                read = self.read_more(), if can_read => read?,
                _ = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {
                    return Err(timeout.expect("set with deadline"));
                }
                _ = shutdown.cancelled() => return Err(ReadError::Closed),
                _ = writer_done.cancelled() => return Err(ReadError::Closed),
            }
            if !can_read {
                // The client's keep-alives are due from when we read again.
                self.last_read = Instant::now();
            }
        }
    }
}

impl<R> Reader<R> {
    /// The token that ends the connection's writer (and so the connection).
    pub fn writer_done(&self) -> CancellationToken {
        self.writer_done.clone()
    }
}
