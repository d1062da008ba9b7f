//! Journal configuration and the named limits the journal enforces.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::format::{RECORD_HEADER_BYTES, SEGMENT_HEADER_BYTES};
use crate::storage::StorageHandle;

/// Default size at which a segment is closed and a new one started: large enough that
/// rotation (one extra fsync and a directory fsync) is rare, small enough that deleting
/// a segment reclaims space in useful steps.
pub const DEFAULT_SEGMENT_BYTES: u64 = 64 * 1024 * 1024;

/// Default largest payload of one record.
pub const DEFAULT_MAX_RECORD_BYTES: u32 = 16 * 1024 * 1024;

/// Smallest accepted `segment_bytes`: a header and one empty record. Anything smaller
/// would only ever hold one record per file.
pub const MIN_SEGMENT_BYTES: u64 = SEGMENT_HEADER_BYTES + RECORD_HEADER_BYTES;

/// Bytes (framed records) that may wait for the writer before `append` blocks until the
/// writer has taken the queue. Bounds memory when producers outrun the disk; one record
/// is always accepted into an empty queue, whatever its size.
pub const MAX_QUEUED_BYTES: u64 = 64 * 1024 * 1024;

/// How long a batch of records that asked for no fsync (acknowledgements,
/// redelivery counts: what a crash may lose at the cost of a redelivery) waits for
/// more before it is written, unless a record asking for an fsync or
/// [`LINGER_BYTES`] arrive first, or someone waits to read what is queued.
///
/// Why: `append` wakes a sleeping writer, and a consumer acknowledging each message
/// of a fast drain appended one such record at a time, each waking the writer for a
/// write of its own: futex wakes and context switches were a fifth of the broker's
/// CPU draining 1,024-byte messages at 120k msg/s (docs/benchmarks.md). No
/// confirmation of a persistent send waits on these records (a record that asks
/// for an fsync takes them along); what does wait, on an otherwise idle broker,
/// up to one linger: a delivery from the DLQ whose move was written this way, and
/// the receipt of a send that was only duplicates.
pub const DEFAULT_LINGER: Duration = Duration::from_millis(1);

/// Queued bytes that end the writer's linger (see [`DEFAULT_LINGER`]).
pub const LINGER_BYTES: u64 = 256 * 1024;

/// The writer copies small records into one buffer and writes it when it reaches this
/// size or the batch ends, so a batch of small records costs one `write` syscall.
pub const WRITE_BUFFER_BYTES: usize = 1024 * 1024;

/// Records at least this large are written from the caller's buffer (vectored with the
/// pending buffer) instead of being copied into it.
pub const DIRECT_WRITE_MIN_BYTES: usize = 64 * 1024;

/// Asked by the writer after every batch reached the disk and before anyone is told
/// so: `Err(reason)` fails the journal instead of confirming the batch. The journal
/// does not know why a check says no; the broker passes its mastership's fence here,
/// which refuses once another process owns a shared store (see `epochs`).
#[derive(Clone)]
pub struct ConfirmCheck(Arc<dyn Fn() -> Result<(), String> + Send + Sync>);

impl ConfirmCheck {
    /// A check from a function.
    pub fn new(check: impl Fn() -> Result<(), String> + Send + Sync + 'static) -> ConfirmCheck {
        ConfirmCheck(Arc::new(check))
    }

    /// Runs the check: `Err(reason)` means confirm nothing more.
    pub fn check(&self) -> Result<(), String> {
        (self.0)()
    }
}

impl fmt::Debug for ConfirmCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ConfirmCheck")
    }
}

impl PartialEq for ConfirmCheck {
    fn eq(&self, other: &ConfirmCheck) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for ConfirmCheck {}

/// Where the journal lives and how large its files and records may grow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JournalConfig {
    /// Directory of the segment files; created by `open` if missing. One journal per
    /// directory (enforced with a lock file). With `epoch`, the base of the epoch
    /// directories.
    pub dir: PathBuf,
    /// A record that would make the current segment exceed this starts a new segment
    /// (unless the segment holds no record yet). At least [`MIN_SEGMENT_BYTES`], at most
    /// [`MAX_SEGMENT_BYTES`](crate::MAX_SEGMENT_BYTES).
    pub segment_bytes: u64,
    /// Largest payload accepted by `append`; a stored length above it is a bad record.
    /// Lowering it below the size of records already on disk makes them unreadable.
    pub max_record_bytes: u32,
    /// The epoch of the master writing a shared store: the journal then lives in
    /// `dir/epoch-<N>/`, inheriting the newest earlier epoch's segments sealed, so
    /// that an older master can never write into it (see `epochs`). `None`: the
    /// journal is `dir` itself, for a broker that owns its store alone.
    pub epoch: Option<u64>,
    /// Checked before any batch is confirmed; see [`ConfirmCheck`].
    pub confirm_check: Option<ConfirmCheck>,
    /// Make each next segment file ahead of time, its blocks allocated to
    /// `segment_bytes`, so that commits overwrite instead of growing the file (see
    /// `preallocate`). Reserves up to a segment of disk space ahead of the data.
    pub preallocate: bool,
    /// How long records that asked for no fsync may wait for more before they are
    /// written (see [`DEFAULT_LINGER`]).
    pub linger: Duration,
    /// The file system the journal's files live on: the real one by default; tests put
    /// a simulated disk that crashes here (see [`Storage`](crate::Storage)).
    pub storage: StorageHandle,
}

impl JournalConfig {
    /// A configuration with the default limits.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            segment_bytes: DEFAULT_SEGMENT_BYTES,
            max_record_bytes: DEFAULT_MAX_RECORD_BYTES,
            epoch: None,
            confirm_check: None,
            preallocate: true,
            linger: DEFAULT_LINGER,
            storage: StorageHandle::default(),
        }
    }
}
