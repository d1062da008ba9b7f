//! Hawser's journal: an append-only, segmented log of opaque byte records.
//!
//! The journal knows nothing about messages. It stores byte records, each framed with
//! its length and a CRC-32C, in segment files of bounded size, and promises one thing:
//! when a `sync` append's [`Durable`] completes with `Ok`, the record is on disk (fsync).
//!
//! How data flows:
//!
//! ```text
//! append()  -- position assigned under the state lock, record queued --+
//!                                                                      v
//!                       writer thread: take the whole queue, write it with few syscalls,
//!                       one fdatasync if any record asked for it, then complete every
//!                       Durable of the batch (group commit); after a small commit
//!                       of sync records, hold the next one briefly for the senders
//!                       it released (see `writer`)
//!
//! open()    -- scan every segment (scan_segment_bytes), cut a torn tail of the last
//!              segment, refuse corruption anywhere else, start the writer
//! ```
//!
//! Modules, one noun each:
//! - `config`: [`JournalConfig`] and the named limits.
//! - `format`: the on-disk bytes of a segment header and of a record.
//! - `scan`: [`scan_segment_bytes`], the pure parser that recovery (and the fuzzer) uses.
//! - `recovery`: what [`Journal::open`] does to the directory before writing resumes.
//! - `writer`: the single writer thread and its group commit.
//! - `preallocate`: the thread that makes the next segment file (header, allocated blocks) ahead of time.
//! - `journal`: the [`Journal`] handle shared by producers.
//! - `durable`: the [`Durable`] future an append returns.
//! - `error`: one error enum per operation.

mod broker_store;
mod config;
mod durable;
mod epochs;
mod error;
mod format;
mod journal;
mod position;
mod preallocate;
mod recovery;
mod scan;
mod shared;
mod writer;

#[cfg(test)]
mod fault_tests;

pub use broker_store::{JournalStore, JournalStoreError};
pub use config::{
    Fence, JournalConfig, DEFAULT_MAX_RECORD_BYTES, DEFAULT_SEGMENT_BYTES, DIRECT_WRITE_MIN_BYTES,
    MAX_QUEUED_BYTES, MIN_SEGMENT_BYTES, WRITE_BUFFER_BYTES,
};
pub use durable::Durable;
pub use epochs::{epoch_dir_name, format_seals, parse_seals, Seals};
pub use error::{AppendError, DeleteError, OpenError, ReadError, WriteError};
pub use format::{
    decode_record_header, decode_segment_header, encode_record_header, encode_segment_header,
    parse_segment_file_name, record_checksum, segment_file_name, Corruption, RecordHeader,
    FORMAT_VERSION, RECORD_HEADER_BYTES, SEGMENT_HEADER_BYTES, SEGMENT_MAGIC,
};
pub use journal::{Journal, Recovered};
pub use position::Position;
pub use preallocate::MIN_FREE_SEGMENTS;
pub use scan::{scan_segment_bytes, ScanResult, ScannedRecord};
pub use shared::ProgressHook;
