//! Hawser's journal: an append-only, segmented log of opaque byte records.
//!
//! The journal knows nothing about messages. It stores byte records, each framed with
//! its length, a CRC-32C of the payload and a CRC-32C of the framing that also covers the
//! record's position (see `format`), in segment files of bounded size, and promises one
//! thing: when a `sync` append's [`Durable`] completes with `Ok`, the record is on disk
//! (fsync), and every open after any crash recovers it, or refuses to open with the file
//! and offset of the damage.
//!
//! How data flows:
//!
//! ```text
//! append()  -- position assigned under the state lock, record queued --+
//!                                                                      v
//!                       writer thread: take the whole queue, frame each record (with how
//!                       far its segment is known synced), write it with few syscalls,
//!                       one fdatasync if any record asked for it, then complete every
//!                       Durable of the batch (group commit); after a small commit
//!                       of sync records, hold the next one briefly for the senders
//!                       it released (see `writer`)
//!
//! open()    -- scan every segment (scan_segment_bytes); judge the last one's damage
//!              (judge_tail): cut a torn tail, keeping its bytes aside, refuse damage to
//!              durable data there and any damage elsewhere; fsync; start the writer
//! ```
//!
//! Modules, one noun each:
//! - `config`: [`JournalConfig`] and the named limits.
//! - `format`: the on-disk bytes of a segment header and of a record.
//! - `scan`: [`scan_segment_bytes`] and [`judge_tail`], the pure parser and the
//!   torn-or-corrupt rule that recovery (and the fuzzer) use.
//! - `recovery`: what [`Journal::open`] does to the directory before writing resumes.
//! - `writer`: the single writer thread and its group commit.
//! - `preallocate`: the thread that makes the next segment file (header, allocated blocks) ahead of time.
//! - `journal`: the [`Journal`] handle shared by producers.
//! - `read`: reading records back, one or a batch of nearby ones with one `pread`.
//! - `durable`: the [`Durable`] future an append returns.
//! - `storage`: the [`Storage`] trait every file operation goes through, and the real
//!   file system behind it; tests put a simulated disk that crashes there (`sim_disk`,
//!   `crash_tests`, `crash_harness`; public with the `sim-disk` feature, for the crash
//!   tests of stores built on the journal).
//! - `error`: one error enum per operation.

mod config;
mod durable;
mod epochs;
mod error;
mod format;
mod journal;
mod position;
mod preallocate;
mod read;
mod recovery;
mod scan;
mod shared;
mod stats;
mod storage;
mod writer;

#[cfg(any(test, feature = "sim-disk"))]
pub mod crash_harness;
#[cfg(test)]
mod crash_tests;
#[cfg(test)]
mod fault_tests;
#[cfg(test)]
mod linger_tests;
#[cfg(any(test, feature = "sim-disk"))]
pub mod sim_disk;
pub use config::{
    ConfirmCheck, JournalConfig, DEFAULT_LINGER, DEFAULT_MAX_RECORD_BYTES, DEFAULT_SEGMENT_BYTES,
    DIRECT_WRITE_MIN_BYTES, LINGER_BYTES, MAX_QUEUED_BYTES, MIN_SEGMENT_BYTES, WRITE_BUFFER_BYTES,
};
pub use durable::Durable;
pub use epochs::{epoch_dir_name, format_seals, parse_seals, Seals};
pub use error::{AppendError, DeleteError, OpenError, ReadError, WriteError};
pub use format::{
    decode_record_header, decode_segment_header, encode_record_header, encode_record_header_v1,
    encode_segment_header, encode_segment_header_as, header_checksum, parse_segment_file_name,
    record_checksum, segment_file_name, torn_tail_file_name, Corruption, Framing, RecordHeader,
    SegmentHeader, FORMAT_VERSION, MAX_SEGMENT_BYTES, RECORD_HEADER_BYTES, SEGMENT_HEADER_BYTES,
    SEGMENT_MAGIC, V1_RECORD_HEADER_BYTES,
};
pub use journal::{Journal, Recovered};
pub use position::Position;
pub use preallocate::MIN_FREE_SEGMENTS;
pub use recovery::{Layout, RecordVisitor, ResumeChooser};
pub use scan::{
    judge_tail, scan_segment_bytes, ScanResult, ScannedRecord, Tail, V1_SEARCH_BUDGET_BYTES,
};
pub use shared::ProgressHook;
pub use stats::{HistogramSnapshot, BATCH_RECORDS, SYNC_SECONDS};
pub use storage::{
    create_dir_all_durable, FileSystem, LockGuard, OpenMode, Storage, StorageFile, StorageHandle,
};
