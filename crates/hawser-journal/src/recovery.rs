//! What `open` does to the journal directory before writing resumes: read every segment
//! in order, verify every record, cut a torn tail off the last segment, and refuse to go
//! on if any other segment is damaged.
//!
//! Why only the last segment may be torn: the writer fsyncs a segment before it creates
//! the next one, so every older segment was complete on disk. A torn tail only ever loses
//! records whose `Durable` had not completed: an fsync covers every earlier write of the
//! file, so a record that was reported durable lies before any damage a crash can cause.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use tracing::{debug, warn};

use crate::config::JournalConfig;
use crate::epochs::Seals;
use crate::error::OpenError;
use crate::format::{
    encode_segment_header, parse_segment_file_name, segment_file_name, Corruption,
    SEGMENT_HEADER_BYTES,
};
use crate::position::Position;
use crate::scan::scan_segment_bytes;
use crate::storage::{OpenMode, Storage, StorageFile};

/// Id of the segment a new journal starts with.
const FIRST_SEGMENT: u64 = 1;

/// The directory's state after recovery, ready for the writer.
pub(crate) struct Recovery {
    /// Every good record, oldest first.
    pub records: Vec<(Position, Bytes)>,
    /// The last segment's file and the length it was cut to, if it was cut.
    pub truncated: Option<(PathBuf, u64)>,
    /// Ids of all segments.
    pub segments: BTreeSet<u64>,
    /// Where the next record goes: the last segment and its length.
    pub end: Position,
    /// The last segment, opened for writing; it is `end.offset` long.
    pub file: Box<dyn StorageFile>,
    /// Total size of all segment files.
    pub disk_bytes: u64,
}

/// Recovers `config.dir`. Segments in `seals` were inherited from an earlier epoch
/// (see `epochs`): only their sealed length is read, they are never cut or appended
/// to, and damage inside it is corruption.
pub(crate) fn recover(config: &JournalConfig, seals: &Seals) -> Result<Recovery, OpenError> {
    let storage = &*config.storage;
    let found = list_segments(storage, &config.dir)?;
    let Some(&(last, _)) = found.last() else {
        return start_empty(config);
    };
    let mut records = Vec::new();
    let mut truncated = None;
    let mut end_offset = 0;
    let mut disk_bytes = 0;
    // One buffer for every segment: its pages are faulted in once, not per segment.
    let mut data = Vec::new();
    for (segment, path) in &found {
        let sealed = seals.get(segment).copied();
        let is_last = *segment == last && sealed.is_none();
        data.clear();
        storage
            .read(path, &mut data)
            .map_err(|source| OpenError::Io {
                op: "read segment",
                path: path.clone(),
                source,
            })?;
        if let Some(sealed) = sealed {
            let len = data.len() as u64;
            if len < sealed {
                return Err(OpenError::Corrupt {
                    file: path.clone(),
                    offset: len,
                    reason: Corruption::SealedTooShort { sealed, len },
                });
            }
            // What a superseded master appended after the seal is not part of this store.
            data.truncate(sealed as usize);
        }
        let length = if is_last && is_torn_creation(&data) {
            // A crash right after the writer created this file: it cannot hold a record.
            rewrite_header(storage, path, *segment)?;
            warn_cut(
                path,
                0,
                &format!("torn segment header ({} bytes)", data.len()),
            );
            truncated = Some((path.clone(), 0));
            SEGMENT_HEADER_BYTES
        } else {
            let scan = scan_segment_bytes(&data, config.max_record_bytes);
            let corrupt = |offset, reason| OpenError::Corrupt {
                file: path.clone(),
                offset,
                reason,
            };
            let header_segment = match (scan.segment, &scan.damage) {
                (Some(id), _) => id,
                (None, Some(reason)) => return Err(corrupt(0, reason.clone())),
                (None, None) => unreachable!("a scan without a header reports why"),
            };
            if header_segment != *segment {
                let reason = Corruption::SegmentIdMismatch {
                    in_header: header_segment,
                    in_name: *segment,
                };
                return Err(corrupt(0, reason));
            }
            if let Some(reason) = scan.damage {
                if !is_last {
                    return Err(corrupt(scan.valid_len, reason));
                }
                cut(storage, path, scan.valid_len)?;
                if data[scan.valid_len as usize..].iter().all(|&b| b == 0) {
                    // The unused end of a preallocated segment, not a torn write.
                    debug!(file = %path.display(), offset = scan.valid_len, "journal: cut preallocated tail of last segment");
                } else {
                    warn_cut(path, scan.valid_len, &reason.to_string());
                    truncated = Some((path.clone(), scan.valid_len));
                }
            }
            records.extend(scan.records.into_iter().map(|record| {
                let position = Position {
                    segment: *segment,
                    offset: record.offset,
                };
                // Copied out rather than sliced from `data`, so that a caller keeping one
                // payload does not pin the whole segment in memory.
                (position, Bytes::copy_from_slice(&data[record.payload]))
            }));
            scan.valid_len
        };
        disk_bytes += length;
        if is_last {
            end_offset = length;
        }
    }
    let mut segments: BTreeSet<u64> = found.iter().map(|(segment, _)| *segment).collect();
    let (end, file) = if seals.contains_key(&last) {
        // Everything here was inherited: this epoch appends to a segment of its own.
        let own = last + 1;
        let file = create_segment(config, own)?;
        segments.insert(own);
        disk_bytes += SEGMENT_HEADER_BYTES;
        let end = Position {
            segment: own,
            offset: SEGMENT_HEADER_BYTES,
        };
        (end, file)
    } else {
        let last_path = config.dir.join(segment_file_name(last));
        let end = Position {
            segment: last,
            offset: end_offset,
        };
        (end, open_for_append(storage, &last_path, end_offset)?)
    };
    Ok(Recovery {
        records,
        truncated,
        segments,
        end,
        file,
        disk_bytes,
    })
}

/// Segment files in `dir`, by ascending id. Other files (the lock file) are ignored.
pub(crate) fn list_segments(
    storage: &dyn Storage,
    dir: &Path,
) -> Result<Vec<(u64, PathBuf)>, OpenError> {
    let names = storage.list_dir(dir).map_err(|source| OpenError::Io {
        op: "list directory",
        path: dir.to_path_buf(),
        source,
    })?;
    let mut found: Vec<(u64, PathBuf)> = names
        .iter()
        .filter_map(|name| Some((parse_segment_file_name(name)?, dir.join(name))))
        .collect();
    found.sort_unstable();
    Ok(found)
}

/// A last segment shorter than its header, or all zeros (a file system that extended the
/// file but lost its data), can only come from a crash while the writer created it.
/// Every sync'd record would have carried the header to disk with it, so nothing durable
/// is lost by starting the file over.
fn is_torn_creation(data: &[u8]) -> bool {
    (data.len() as u64) < SEGMENT_HEADER_BYTES || data.iter().all(|&b| b == 0)
}

fn start_empty(config: &JournalConfig) -> Result<Recovery, OpenError> {
    let file = create_segment(config, FIRST_SEGMENT)?;
    Ok(Recovery {
        records: Vec::new(),
        truncated: None,
        segments: BTreeSet::from([FIRST_SEGMENT]),
        end: Position {
            segment: FIRST_SEGMENT,
            offset: SEGMENT_HEADER_BYTES,
        },
        file,
        disk_bytes: SEGMENT_HEADER_BYTES,
    })
}

/// Creates segment `segment` with its header, durable (file and directory entry).
fn create_segment(config: &JournalConfig, segment: u64) -> Result<Box<dyn StorageFile>, OpenError> {
    let storage = &*config.storage;
    let path = config.dir.join(segment_file_name(segment));
    let io_error = |op| {
        let path = path.clone();
        move |source| OpenError::Io { op, path, source }
    };
    let file = storage
        .open(&path, OpenMode::CreateNew)
        .map_err(io_error("create segment"))?;
    file.write_at(0, &encode_segment_header(segment), &[])
        .map_err(io_error("write segment header"))?;
    file.sync_all().map_err(io_error("fsync"))?;
    storage
        .sync_dir(&config.dir)
        .map_err(|source| OpenError::Io {
            op: "fsync directory",
            path: config.dir.clone(),
            source,
        })?;
    Ok(file)
}

fn rewrite_header(storage: &dyn Storage, path: &Path, segment: u64) -> Result<(), OpenError> {
    let io_error = |op| {
        move |source| OpenError::Io {
            op,
            path: path.to_path_buf(),
            source,
        }
    };
    let file = storage
        .open(path, OpenMode::Existing)
        .map_err(io_error("open segment"))?;
    file.set_len(0).map_err(io_error("truncate"))?;
    file.write_at(0, &encode_segment_header(segment), &[])
        .map_err(io_error("write segment header"))?;
    file.sync_all().map_err(io_error("fsync"))
}

/// Cuts the torn tail off and makes the cut durable before anything is appended after it.
fn cut(storage: &dyn Storage, path: &Path, length: u64) -> Result<(), OpenError> {
    let io_error = |op| {
        move |source| OpenError::Io {
            op,
            path: path.to_path_buf(),
            source,
        }
    };
    let file = storage
        .open(path, OpenMode::Existing)
        .map_err(io_error("open segment"))?;
    file.set_len(length).map_err(io_error("truncate"))?;
    file.sync_all().map_err(io_error("fsync"))
}

fn warn_cut(path: &Path, offset: u64, reason: &str) {
    warn!(
        file = %path.display(),
        offset,
        reason,
        "journal: cut torn tail of last segment"
    );
}

fn open_for_append(
    storage: &dyn Storage,
    path: &Path,
    length: u64,
) -> Result<Box<dyn StorageFile>, OpenError> {
    let io_error = |op| {
        move |source| OpenError::Io {
            op,
            path: path.to_path_buf(),
            source,
        }
    };
    let file = storage
        .open(path, OpenMode::Existing)
        .map_err(io_error("open segment"))?;
    let actual = file.file_len().map_err(io_error("stat"))?;
    assert_eq!(actual, length, "recovery left the last segment at its end");
    Ok(file)
}
