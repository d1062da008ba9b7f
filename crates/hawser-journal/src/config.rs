//! Journal configuration and the named limits the journal enforces.

use std::path::PathBuf;

use crate::format::{RECORD_HEADER_BYTES, SEGMENT_HEADER_BYTES};

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

/// The writer copies small records into one buffer and writes it when it reaches this
/// size or the batch ends, so a batch of small records costs one `write` syscall.
pub const WRITE_BUFFER_BYTES: usize = 1024 * 1024;

/// Records at least this large are written from the caller's buffer (vectored with the
/// pending buffer) instead of being copied into it.
pub const DIRECT_WRITE_MIN_BYTES: usize = 64 * 1024;

/// Where the journal lives and how large its files and records may grow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JournalConfig {
    /// Directory of the segment files; created by `open` if missing. One journal per
    /// directory (enforced with a lock file).
    pub dir: PathBuf,
    /// A record that would make the current segment exceed this starts a new segment
    /// (unless the segment holds no record yet). At least [`MIN_SEGMENT_BYTES`].
    pub segment_bytes: u64,
    /// Largest payload accepted by `append`; a stored length above it is a bad record.
    /// Lowering it below the size of records already on disk makes them unreadable.
    pub max_record_bytes: u32,
}

impl JournalConfig {
    /// A configuration with the default limits.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            segment_bytes: DEFAULT_SEGMENT_BYTES,
            max_record_bytes: DEFAULT_MAX_RECORD_BYTES,
        }
    }
}
