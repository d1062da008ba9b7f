//! One error enum per journal operation.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use thiserror::Error;

use crate::format::Corruption;
use crate::position::Position;

/// Why [`Journal::open`](crate::Journal::open) failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The caller's record visitor ([`Journal::open_with`](crate::Journal::open_with))
    /// stopped the open at this record.
    #[error("opening stopped at the record in {file} at offset {offset}")]
    Stopped { file: PathBuf, offset: u64 },
    /// The position [`Journal::open_from`](crate::Journal::open_from) was asked to
    /// resume at is not a record's (its segment is gone, or it falls inside one).
    #[error("no record to resume at {at}")]
    NoResume { at: crate::Position },
    #[error("segment_bytes {segment_bytes} is below the minimum {min}")]
    SegmentTooSmall { segment_bytes: u64, min: u64 },
    /// Record offsets are stored in 32 bits (see `format`).
    #[error("segment_bytes {segment_bytes} is above the maximum {max}")]
    SegmentTooLarge { segment_bytes: u64, max: u64 },
    #[error("journal directory {dir} is in use by another journal")]
    Locked { dir: PathBuf },
    /// The directory holds a shared store's epoch directories: opening it as a plain
    /// journal would ignore them.
    #[error("journal directory {dir} belongs to shared-store brokers (it has epoch directories); open it with an epoch")]
    SharedStore { dir: PathBuf },
    #[error("cannot {op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A bad record or header that cannot be a torn tail: refused, never skipped, and
    /// the files left as they are.
    #[error("journal corrupt in {file} at offset {offset}: {reason}")]
    Corrupt {
        file: PathBuf,
        offset: u64,
        reason: Corruption,
    },
}

/// Why [`Journal::append`](crate::Journal::append) refused a record.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum AppendError {
    #[error("record of {len} bytes exceeds max_record_bytes {max}")]
    TooLarge { len: usize, max: u32 },
    /// An earlier write or fsync failed; nothing more is written until the journal is
    /// reopened (recovery then finds what really reached the disk).
    #[error("journal failed earlier: {cause}")]
    Failed { cause: WriteError },
    #[error("journal is closed")]
    Closed,
}

/// Why a [`Durable`](crate::Durable) completed with an error. Shared by every record of
/// a failed batch, hence `Clone` (the I/O error sits behind an `Arc`).
#[derive(Clone, Debug, Error)]
#[non_exhaustive]
pub enum WriteError {
    #[error("cannot {op} {file}: {source}")]
    Io {
        op: &'static str,
        file: PathBuf,
        #[source]
        source: Arc<io::Error>,
    },
    /// The writer thread ended without answering (it panicked).
    #[error("journal writer thread is gone")]
    WriterGone,
    /// The [`ConfirmCheck`](crate::ConfirmCheck) said no (for a broker's store:
    /// a newer master owns it): nothing written since may be confirmed.
    #[error("confirmation refused: {reason}")]
    ConfirmRefused { reason: String },
}

/// Why [`Journal::read`](crate::Journal::read) failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ReadError {
    #[error("segment {segment} does not exist (deleted or never created)")]
    NoSuchSegment { segment: u64 },
    #[error("no record was appended at {position}")]
    NotAppended { position: Position },
    #[error("cannot read {file}: {source}")]
    Io {
        file: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("bad record in {file} at offset {offset}: {reason}")]
    Corrupt {
        file: PathBuf,
        offset: u64,
        reason: Corruption,
    },
}

/// Why [`Journal::delete_segment`](crate::Journal::delete_segment) refused or failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum DeleteError {
    #[error("segment {segment} is not older than the current segment {current}")]
    Active { segment: u64, current: u64 },
    #[error("segment {segment} does not exist")]
    NoSuchSegment { segment: u64 },
    #[error("cannot {op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}
