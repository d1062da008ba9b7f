//! Segment files made ready before the writer needs them.
//!
//! Why: an `fdatasync` after appending to a file must also write the inode (its size
//! changed), and on ext4 without a journal, what this machine runs, that is a second
//! synchronous write after the data's. In a file whose blocks are already allocated and
//! whose size already covers the write, the commit costs about half as much: 4,251 vs
//! 6,500-8,000 commits/s for 1 KiB appends here, and twice the synchronous-send
//! throughput (docs/benchmarks.md). So a thread of its own makes the next segment ahead
//! of time: its header, then `fallocate` to `segment_bytes`, all fsynced, under a name
//! recovery ignores (`journal-<id>.prealloc`). The writer renames it into place when it
//! starts that segment.
//!
//! `fallocate` marks the blocks allocated but unwritten (they read as zeros); the first
//! write to each turns it written, metadata that `fdatasync` must and does make durable
//! with the data, since the data cannot be read back without it. Writing real zeros
//! instead would make commits a little cheaper still, but writes every segment twice:
//! it cost a quarter of the throughput of 64 KiB persistent messages when measured.
//!
//! Consequences for the rest of the journal:
//! - the segment being written is longer than its records; its tail is zeros, which
//!   recovery reads as the end (a zero length with a zero CRC is never a valid record,
//!   see `format`) and cuts off;
//! - a segment is cut to its records' length when the writer leaves it, so that every
//!   segment but the last holds only records, as recovery requires;
//! - a segment the writer had to create itself (at first start, after recovery cut one,
//!   or when it ran ahead of this thread) is left as soon as a prepared one is ready
//!   (see `Journal::append`), so appends do not stay on the slow path for a whole
//!   segment.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use rustix::fs::{fallocate, FallocateFlags};

use tracing::{debug, warn};

use crate::format::{encode_segment_header, segment_file_name, SEGMENT_HEADER_BYTES};
use crate::shared::Shared;

/// Free space, in segments, below which nothing is prepared: the space a prepared
/// segment reserves must not be what leaves the records no room.
const MIN_FREE_SEGMENTS: u64 = 4;

/// How often free space is looked at again while it is short.
const LOW_SPACE_RETRY: Duration = Duration::from_secs(1);

/// Suffix of a segment file being prepared; not a segment name, so recovery skips it.
const PREPARED_SUFFIX: &str = ".prealloc";

/// A segment file ready to be written: header in place, blocks allocated up to
/// `segment_bytes` (reading as zeros), all durable, cursor after the header.
pub(crate) struct Prepared {
    /// The segment it was made for; only that segment may use it.
    pub segment: u64,
    pub file: File,
    pub path: PathBuf,
}

/// Where segment `segment` is prepared.
pub(crate) fn prepared_path(dir: &Path, segment: u64) -> PathBuf {
    dir.join(format!("{}{PREPARED_SUFFIX}", segment_file_name(segment)))
}

/// Deletes prepared files a crash left behind: none of them was ever a segment.
pub(crate) fn remove_leftovers(dir: &Path) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if entry
            .file_name()
            .to_string_lossy()
            .ends_with(PREPARED_SUFFIX)
        {
            fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}

/// Starts the thread that keeps one segment prepared ahead of the writer.
pub(crate) fn spawn(shared: Arc<Shared>) -> io::Result<JoinHandle<()>> {
    thread::Builder::new()
        .name("hawser-journal-prealloc".into())
        .spawn(move || run(&shared))
}

fn run(shared: &Shared) {
    loop {
        // Wait until the slot is empty, then prepare the segment after the one appends
        // go to now.
        let segment = {
            let mut state = shared.state.lock();
            while state.prepared.is_some() && !state.closing {
                shared.spare.wait(&mut state);
            }
            if state.closing || !state.writer_can_progress() {
                return;
            }
            if !room_for(&shared.config.dir, shared.config.segment_bytes) {
                shared.spare.wait_for(&mut state, LOW_SPACE_RETRY);
                continue;
            }
            state.next.segment + 1
        };
        let path = prepared_path(&shared.config.dir, segment);
        let file = match prepare(&path, segment, shared.config.segment_bytes) {
            Ok(file) => file,
            Err(e) => {
                // Not fatal: the writer creates segments itself, only more slowly.
                warn!(file = %path.display(), error = %e, "journal: could not preallocate a segment; appending without");
                let _ = fs::remove_file(&path);
                return;
            }
        };
        let mut state = shared.state.lock();
        if state.closing || state.next.segment + 1 != segment {
            // Closing, or appends moved on to a segment the writer created itself.
            drop(state);
            let _ = fs::remove_file(&path);
            continue;
        }
        debug!(file = %path.display(), "journal: segment preallocated");
        state.prepared = Some(Prepared {
            segment,
            file,
            path,
        });
    }
}

/// Writes the segment's header and allocates its blocks to `segment_bytes`, durably.
fn prepare(path: &Path, segment: u64, segment_bytes: u64) -> io::Result<File> {
    let _ = fs::remove_file(path);
    let mut file = OpenOptions::new().write(true).create_new(true).open(path)?;
    file.write_all(&encode_segment_header(segment))?;
    fallocate(&file, FallocateFlags::empty(), 0, segment_bytes)?;
    file.sync_all()?;
    file.seek(SeekFrom::Start(SEGMENT_HEADER_BYTES))?;
    Ok(file)
}

/// Whether the file system of `dir` has room for a prepared segment and then some.
fn room_for(dir: &Path, segment_bytes: u64) -> bool {
    match rustix::fs::statvfs(dir) {
        Ok(fs) => fs.f_bavail.saturating_mul(fs.f_frsize) >= MIN_FREE_SEGMENTS * segment_bytes,
        // Unknown: do not risk it.
        Err(_) => false,
    }
}
