//! State shared by the [`Journal`](crate::Journal) handle (producers, readers, deleters)
//! and the writer thread, all behind one lock so that position assignment, queueing and
//! the writer's progress are seen consistently.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::OnceLock;

use bytes::Bytes;
use parking_lot::{Condvar, Mutex};
use tokio::sync::oneshot;

use crate::config::JournalConfig;
use crate::error::WriteError;
use crate::format::segment_file_name;
use crate::position::Position;
use crate::preallocate::Prepared;

/// One appended record on its way to the writer.
pub(crate) struct Pending {
    /// Assigned by `append`; the writer asserts it lands exactly there.
    pub position: Position,
    /// The payload, written after its framing.
    pub record: Bytes,
    /// Whether `done` must wait for an fsync covering this record.
    pub sync: bool,
    /// Completes the caller's `Durable`.
    pub done: oneshot::Sender<Result<(), WriteError>>,
    /// The caller's own number for the record, passed to the progress hook once it is
    /// durable (see [`Journal::append_tagged`](crate::Journal::append_tagged)).
    pub tag: Option<u64>,
}

/// Told by the writer thread, after each batch it completed, the highest tag in it;
/// or the failure that stopped the journal. Runs on the writer thread: keep it short.
pub type ProgressHook = Box<dyn Fn(Result<u64, &WriteError>) + Send + Sync>;

/// Everything guarded by [`Shared::state`].
pub(crate) struct State {
    /// Where the next appended record goes. Advanced only by `append` under this lock, in
    /// the same critical section that queues the record: that is what makes the on-disk
    /// order the order of `append` calls.
    pub next: Position,
    /// Records appended but not yet taken by the writer, in position order.
    pub queue: Vec<Pending>,
    /// Framed bytes in `queue`, held under [`MAX_QUEUED_BYTES`](crate::MAX_QUEUED_BYTES).
    pub queued_bytes: u64,
    /// Records in `queue` that asked for an fsync.
    pub queued_syncs: usize,
    /// The writer is waiting for more records before writing a batch of records
    /// that asked for no fsync (see [`DEFAULT_LINGER`](crate::config::DEFAULT_LINGER)):
    /// `append` wakes it early only for a record that asks for one, or once
    /// [`LINGER_BYTES`](crate::config::LINGER_BYTES) are queued.
    pub lingering: bool,
    /// Someone waits for a queued record to be written (`read`, `delete_segment`):
    /// the writer stops lingering.
    pub urgent: bool,
    /// End of what the writer has written (not necessarily synced): its open segment and
    /// that file's length. Advanced by the writer after each batch.
    pub written: Position,
    /// Ids of the existing segments, including one `append` just assigned whose file the
    /// writer has yet to create. Grows on rotation, shrinks in `delete_segment`.
    pub segments: BTreeSet<u64>,
    /// The first write or fsync error. Once set nothing more is written or accepted:
    /// after a failed fsync the page cache can no longer be trusted to match the disk.
    pub failed: Option<WriteError>,
    /// Set by `close`: the writer drains the queue, fsyncs and exits; appends are refused.
    pub closing: bool,
    /// Set when the writer thread has exited, for whatever reason.
    pub writer_done: bool,
    /// A segment file made ready by the preallocator for segment `next.segment + 1`
    /// (see `preallocate`); taken by the writer when it starts that segment.
    pub prepared: Option<Prepared>,
    /// Whether segment `next.segment` was prepared, so that appending to it overwrites
    /// zeros instead of growing the file.
    pub preallocated: bool,
}

impl State {
    /// Whether the record at `position` has been handed to the file system.
    pub fn is_written(&self, position: Position) -> bool {
        position.segment < self.written.segment
            || (position.segment == self.written.segment && position.offset < self.written.offset)
    }

    /// Whether waiting for the writer to make progress can still succeed.
    pub fn writer_can_progress(&self) -> bool {
        self.failed.is_none() && !self.writer_done
    }
}

/// The journal's shared core; owned through an `Arc` by the handle and the writer.
pub(crate) struct Shared {
    /// As given to `open`, checked there.
    pub config: JournalConfig,
    pub state: Mutex<State>,
    /// Wakes the writer: the queue became non-empty, or `closing` was set.
    pub work: Condvar,
    /// Wakes threads waiting on the writer: the queue was taken (backpressure), `written`
    /// advanced (read, delete_segment), or the writer failed or exited.
    pub progress: Condvar,
    /// Wakes the preallocator: its prepared file was taken, or `closing` was set.
    pub spare: Condvar,
    /// fsyncs of segment files performed (group commit makes this less than the number of
    /// sync appends). Directory fsyncs are not counted.
    pub sync_count: AtomicU64,
    /// Batches the writer has written (each one `write`, or a few for a large batch).
    pub batch_count: AtomicU64,
    /// Record bytes the writer has written to segment files; with `sync_count`, what
    /// tells the preallocator how large commits are.
    pub written_bytes: AtomicU64,
    /// `State::queued_bytes`, readable without the lock (a store's producers
    /// are held while it is long: `Journal::queued_bytes`).
    pub queued_bytes: AtomicU64,
    /// Size of all segments, counting records as soon as they are queued.
    pub disk_bytes: AtomicU64,
    /// fsync latencies and batch sizes, for monitoring.
    pub stats: crate::stats::WriterStats,
    /// Set once, by `Journal::set_progress_hook`.
    pub progress_hook: OnceLock<ProgressHook>,
    /// Failures the writer injects into its own I/O, for unit tests of error paths.
    #[cfg(test)]
    pub faults: Faults,
}

impl Shared {
    /// Ends the writer's lingering: a caller waits for what is queued to be written.
    pub fn hurry(&self, state: &mut State) {
        if !state.urgent {
            state.urgent = true;
            self.work.notify_one();
        }
    }

    /// Tells the progress hook, if there is one.
    pub fn report(&self, progress: Result<u64, &WriteError>) {
        if let Some(hook) = self.progress_hook.get() {
            hook(progress);
        }
    }

    pub fn segment_path(&self, segment: u64) -> PathBuf {
        self.config.dir.join(segment_file_name(segment))
    }
}

/// Test switches: when set, the writer's next write or fsync fails as a full disk would.
#[cfg(test)]
#[derive(Default)]
pub(crate) struct Faults {
    pub fail_writes: std::sync::atomic::AtomicBool,
    pub fail_syncs: std::sync::atomic::AtomicBool,
}
