//! What `open` does to the journal directory before writing resumes: read every segment
//! in order, verify every record, cut a torn tail off the last segment (keeping the bytes
//! it cut), and refuse to go on if any segment holds damage that a crash cannot explain.
//!
//! Why only the last segment may be torn: the writer fsyncs a segment before it creates
//! the next one, so every older segment was complete on disk. In the last one, the bytes
//! from its first bad record on are judged by `scan::judge_tail`: zeros are unused space,
//! writes after the last fsync may be torn or reordered by a crash and are cut, but damage
//! that an intact later record proves was already durable is refused with the file and
//! offset, as it would be in any other segment. A cut therefore only ever loses records
//! whose `Durable` had not completed: an fsync covers every earlier write of the file, and
//! every record framed after it says so.
//!
//! The bytes of a torn tail are written, trailing zeros trimmed, to
//! `journal-<id>.log.torn-<offset>` (fsynced, and the directory too) before the segment
//! is cut, and the warning names that file: a recovery never destroys the only copy of
//! anything. Nothing deletes these files; an operator does, after a look.
//!
//! Before the writer resumes, the last segment and the directory are fsynced: a process
//! that crashed may have left records, or the name of the segment it had just created,
//! in the page cache only, and the writer's `synced` fields (see `format`) must never
//! claim more than the disk holds, nor may confirmed records go to a file whose name a
//! power loss can still take away. A last segment of an older format
//! (version 1) is left as it is and appending goes to a new segment, as after a takeover.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use tracing::{debug, warn};

use crate::config::JournalConfig;
use crate::epochs::Seals;
use crate::error::OpenError;
use crate::format::{
    encode_segment_header, parse_segment_file_name, segment_file_name, torn_tail_file_name,
    Corruption, Framing, SEGMENT_HEADER_BYTES,
};
use crate::position::Position;
use crate::scan::{judge_tail, scan_segment_bytes, Tail};
use crate::storage::{OpenMode, Storage, StorageFile};

/// Id of the segment a new journal starts with.
const FIRST_SEGMENT: u64 = 1;

/// What recovery calls with every good record, oldest first, as it scans: the
/// record's position and payload (borrowed from the segment being scanned).
/// `Err(())` stops the open ([`OpenError::Stopped`]).
pub type RecordVisitor<'a> = dyn FnMut(Position, &[u8]) -> Result<(), ()> + 'a;

/// What a journal directory holds, shown to the caller of
/// [`Journal::open_from`](crate::Journal::open_from) before the scan so that it
/// can say where the records it needs start (a checkpoint of its own).
#[derive(Debug)]
pub struct Layout<'a> {
    /// The directory the journal writes to (an epoch directory on a shared store).
    pub dir: &'a Path,
    /// The shared store's epoch this journal opens as, if any.
    pub epoch: Option<u64>,
    /// Where the sealed segments were inherited from (the epoch before, or the
    /// store's own directory the first time), if any were.
    pub inherited_from: Option<&'a Path>,
    /// Inherited segments and the lengths they were sealed at.
    pub seals: &'a Seals,
    /// Every segment in `dir`, oldest first.
    pub segments: &'a [u64],
}

/// What [`Journal::open_from`](crate::Journal::open_from) asks before the scan:
/// the position of the first record to visit (`None`: all of them).
pub type ResumeChooser<'a> = dyn FnMut(&Layout<'_>) -> Option<Position> + 'a;

/// The directory's state after recovery, ready for the writer.
pub(crate) struct Recovery {
    /// How many good records there were.
    pub records: usize,
    /// The last segment's file and the length it was cut to, if a torn tail was cut.
    pub truncated: Option<(PathBuf, u64)>,
    /// Where the bytes of that torn tail were kept, if any were not zero.
    pub torn_tail_copy: Option<PathBuf>,
    /// Ids of all segments.
    pub segments: BTreeSet<u64>,
    /// Where the next record goes: the last segment and its length.
    pub end: Position,
    /// The last segment, opened for writing; it is `end.offset` long, all of it durable.
    pub file: Box<dyn StorageFile>,
    /// Total size of all segment files.
    pub disk_bytes: u64,
}

/// Recovers `config.dir`. Segments in `seals` were inherited from an earlier epoch
/// (see `epochs`): only their sealed length is read, they are never cut or appended
/// to, and damage inside it is corruption.
///
/// With `resume`, segments before its segment are neither read nor verified
/// (their sizes are taken from the file system), and records before it are not
/// visited: the caller has what they hold. It must be the position of a record
/// or the end of its segment's records, else `OpenError::NoResume`.
pub(crate) fn recover(
    config: &JournalConfig,
    seals: &Seals,
    resume: Option<Position>,
    visit: &mut RecordVisitor<'_>,
) -> Result<Recovery, OpenError> {
    let storage = &*config.storage;
    let found = list_segments(storage, &config.dir)?;
    let Some(&(last, _)) = found.last() else {
        return match resume {
            Some(at) => Err(OpenError::NoResume { at }),
            None => start_empty(config),
        };
    };
    if let Some(at) = resume {
        if !found.iter().any(|(segment, _)| *segment == at.segment) {
            return Err(OpenError::NoResume { at });
        }
    }
    let mut records = 0;
    let mut truncated = None;
    let mut torn_tail_copy = None;
    let mut end_offset = 0;
    let mut last_framing = Framing::CURRENT;
    let mut disk_bytes = 0;
    // One buffer for every segment: its pages are faulted in once, not per segment.
    let mut data = Vec::new();
    let mut progress = Progress::new(found.len());
    for (segment, path) in &found {
        progress.segment_done();
        let sealed = seals.get(segment).copied();
        let is_last = *segment == last && sealed.is_none();
        if resume.is_some_and(|at| *segment < at.segment) {
            // Before the resume point: what the caller needs of it, it has.
            disk_bytes += match sealed {
                Some(sealed) => sealed,
                None => storage.len(path).map_err(|source| OpenError::Io {
                    op: "stat segment",
                    path: path.clone(),
                    source,
                })?,
            };
            continue;
        }
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
        let corrupt = |offset, reason| OpenError::Corrupt {
            file: path.clone(),
            offset,
            reason,
        };
        let scan = scan_segment_bytes(&data, config.max_record_bytes);
        if let Some(header_segment) = scan.segment.filter(|id| id != segment) {
            let reason = Corruption::SegmentIdMismatch {
                in_header: header_segment,
                in_name: *segment,
            };
            return Err(corrupt(0, reason));
        }
        let tail = match &scan.damage {
            None => Tail::Clean,
            Some(reason) if !is_last => return Err(corrupt(scan.valid_len, reason.clone())),
            Some(_) => judge_tail(&data, &scan, config.max_record_bytes),
        };
        let length = match tail {
            Tail::Clean => scan.valid_len,
            Tail::Corrupt(reason) => return Err(corrupt(scan.valid_len, reason)),
            Tail::Unused => {
                cut(storage, path, scan.valid_len)?;
                debug!(file = %path.display(), offset = scan.valid_len, "journal: cut preallocated tail of last segment");
                scan.valid_len
            }
            Tail::Torn | Tail::TornHeader => {
                let at = scan.valid_len;
                let copy = keep_torn_tail(storage, &config.dir, *segment, at, &data)?;
                let reason = scan.damage.as_ref().expect("a torn tail is damage");
                if scan.segment.is_some() {
                    cut(storage, path, at)?;
                } else {
                    // The file was being created: it cannot hold a record.
                    rewrite_header(storage, path, *segment)?;
                }
                warn!(
                    file = %path.display(),
                    offset = at,
                    reason = %reason,
                    kept_in = %copy.as_deref().map_or_else(|| "(nothing but zeros)".into(), |p| p.display().to_string()),
                    "journal: cut torn tail of last segment"
                );
                truncated = Some((path.clone(), at));
                torn_tail_copy = copy;
                at.max(SEGMENT_HEADER_BYTES)
            }
        };
        if is_last {
            end_offset = length;
            last_framing = scan.framing.unwrap_or(Framing::CURRENT);
        }
        let first = match resume.filter(|at| at.segment == *segment) {
            None => 0,
            Some(at) if at.offset == length => scan.records.len(),
            Some(at) => scan
                .records
                .iter()
                .position(|r| r.offset == at.offset)
                .ok_or(OpenError::NoResume { at })?,
        };
        for record in scan.records.into_iter().skip(first) {
            let position = Position {
                segment: *segment,
                offset: record.offset,
            };
            records += 1;
            visit(position, &data[record.payload]).map_err(|()| OpenError::Stopped {
                file: path.clone(),
                offset: record.offset,
            })?;
        }
        disk_bytes += length;
    }
    let mut segments: BTreeSet<u64> = found.iter().map(|(segment, _)| *segment).collect();
    let last_path = config.dir.join(segment_file_name(last));
    let inherited = seals.contains_key(&last);
    let last_file = if inherited {
        None
    } else {
        Some(open_for_append(storage, &last_path, end_offset)?)
    };
    let (end, file) = match last_file {
        Some(file) if last_framing == Framing::CURRENT => {
            let end = Position {
                segment: last,
                offset: end_offset,
            };
            (end, file)
        }
        // Everything here was inherited, or written in an older format: this journal
        // appends to a segment of its own.
        _ => {
            let own = last + 1;
            let file = create_segment(config, own)?;
            segments.insert(own);
            disk_bytes += SEGMENT_HEADER_BYTES;
            let end = Position {
                segment: own,
                offset: SEGMENT_HEADER_BYTES,
            };
            (end, file)
        }
    };
    // A process that crashed may have left names in the page cache only: the segment it
    // had just created (now the last, about to take confirmed records), a deletion, the
    // leftovers removed at open. What recovery found must be what a power loss leaves.
    storage
        .sync_dir(&config.dir)
        .map_err(|source| OpenError::Io {
            op: "fsync directory",
            path: config.dir.clone(),
            source,
        })?;
    Ok(Recovery {
        records,
        truncated,
        torn_tail_copy,
        segments,
        end,
        file,
        disk_bytes,
    })
}

/// Writes the bytes of segment `segment` from `at` on (trailing zeros trimmed) to its
/// torn-tail file, durably, before the segment is cut there. `None` if they are all zero.
fn keep_torn_tail(
    storage: &dyn Storage,
    dir: &Path,
    segment: u64,
    at: u64,
    data: &[u8],
) -> Result<Option<PathBuf>, OpenError> {
    let tail = &data[(at as usize).min(data.len())..];
    let kept = tail.len() - tail.iter().rev().take_while(|&&b| b == 0).count();
    if kept == 0 {
        return Ok(None);
    }
    let path = dir.join(torn_tail_file_name(segment, at));
    let io_error = |op| {
        let path = path.clone();
        move |source| OpenError::Io { op, path, source }
    };
    // Truncated if present: a recovery that crashed after writing it cut nothing yet,
    // and this one writes the same bytes.
    let file = storage
        .open(&path, OpenMode::CreateTruncate)
        .map_err(io_error("create torn tail copy"))?;
    file.write_at(0, &tail[..kept], &[])
        .and_then(|()| file.sync_all())
        .map_err(io_error("write torn tail copy"))?;
    storage
        .sync_dir(dir)
        .map_err(io_error("fsync directory of torn tail copy"))?;
    Ok(Some(path))
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

fn start_empty(config: &JournalConfig) -> Result<Recovery, OpenError> {
    let file = create_segment(config, FIRST_SEGMENT)?;
    Ok(Recovery {
        records: 0,
        truncated: None,
        torn_tail_copy: None,
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

/// Opens the last segment for the writer and fsyncs it: what a crashed process left in
/// the page cache must be on disk before new records say it is (their `synced` field).
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
    file.sync_all().map_err(io_error("fsync"))?;
    Ok(file)
}

/// How often recovery says how far it is (a large journal takes a while).
const PROGRESS_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

/// Recovery's progress, logged every [`PROGRESS_EVERY`] while segments are
/// read: an operator waiting for a large store sees it move.
struct Progress {
    segments: usize,
    done: usize,
    started: std::time::Instant,
    last: std::time::Instant,
}

impl Progress {
    fn new(segments: usize) -> Progress {
        let now = std::time::Instant::now();
        Progress {
            segments,
            done: 0,
            started: now,
            last: now,
        }
    }

    /// Called as each segment starts (the previous one is done).
    fn segment_done(&mut self) {
        if self.last.elapsed() >= PROGRESS_EVERY {
            self.last = std::time::Instant::now();
            tracing::info!(
                "journal: recovering, {} of {} segments read ({:.0} s)",
                self.done,
                self.segments,
                self.started.elapsed().as_secs_f64()
            );
        }
        self.done += 1;
    }
}
