//! Segment files made ready before the writer needs them.
//!
//! Why: an `fdatasync` after appending to a file must also write the inode (its size
//! changed), and on ext4 without a journal, what this machine runs, that is a second
//! synchronous write after the data's. In a file whose blocks are already allocated and
//! whose size already covers the write, the commit costs about half as much: 4,251 vs
//! 6,500-8,000 commits/s for 1 KiB appends here, and twice the synchronous-send
//! throughput (docs/benchmarks.md). So a thread of its own makes the next segment ahead
//! of time: its header, then its blocks up to `segment_bytes`, all fsynced, under a name
//! recovery ignores (`journal-<id>.prealloc`). The writer renames it into place when it
//! starts that segment.
//!
//! How the blocks are made ready depends on the commits the writer has been making:
//! - `fallocate` marks them allocated but unwritten (they read as zeros); the first write
//!   to each turns it written, metadata that `fdatasync` must and does make durable with
//!   the data. That is a second synchronous write per commit: 216 vs 140 µs for a 4 KiB
//!   commit on this machine.
//! - writing real zeros (then fsyncing) leaves nothing for a commit but its data, at the
//!   price of writing the segment twice, which cost a quarter of the throughput of 64 KiB
//!   persistent messages when measured.
//!
//! Which is cheaper follows from the bytes per commit, measured over the segments since
//! the last one was prepared. Below [`ZERO_FILL_BELOW_BYTES_PER_SYNC`] per commit (small
//! synchronous sends: about 2 KiB each, where zeros lifted four synchronous producers
//! from 9-11k to 14-15k msg/s) the next segment is written with zeros; above it (large
//! messages, big group commits: 64 KiB bodies, or 256 pipelined 1 KiB sends at about
//! 40 KiB per commit, where zeros measured no better) it is allocated. Before any
//! commit has been seen, zeros: the latency-bound case is fast from the first segment,
//! and a bulk load pays one extra segment write.
//!
//! Consequences for the rest of the journal:
//! - the segment being written is longer than its records; its tail is zeros, which
//!   recovery reads as the end (a record header of zeros is never valid, see `format`)
//!   and cuts off without a warning;
//! - a segment is cut to its records' length when the writer leaves it, so that every
//!   segment but the last holds only records, as recovery requires;
//! - a segment the writer had to create itself (at first start, after recovery cut one,
//!   or when it ran ahead of this thread) is left as soon as a prepared one is ready
//!   (see `Journal::append`), so appends do not stay on the slow path for a whole
//!   segment.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use tracing::{debug, warn};

use crate::format::{encode_segment_header, segment_file_name, SEGMENT_HEADER_BYTES};
use crate::shared::Shared;
use crate::storage::{OpenMode, Storage, StorageFile};

/// Free space, in segments, below which nothing is prepared: the space a prepared
/// segment reserves must not be what leaves the records no room.
pub const MIN_FREE_SEGMENTS: u64 = 4;

/// How often free space is looked at again while it is short.
const LOW_SPACE_RETRY: Duration = Duration::from_secs(1);

/// Commits smaller than this on average get their next segment written with zeros;
/// larger ones get it allocated (see the module comment).
pub(crate) const ZERO_FILL_BELOW_BYTES_PER_SYNC: u64 = 16 * 1024;

/// Size of each write of zeros.
const ZERO_CHUNK_BYTES: usize = 1024 * 1024;

/// Suffix of a segment file being prepared; not a segment name, so recovery skips it.
const PREPARED_SUFFIX: &str = ".prealloc";

/// How a prepared segment's blocks are made ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fill {
    /// Allocated, unwritten: cheap to prepare, a commit also writes extent metadata.
    Allocate,
    /// Written with zeros: the segment is written twice, a commit writes only its data.
    Zeros,
}

impl Fill {
    /// The cheaper fill for commits of the sizes seen: `bytes` written over `syncs`
    /// fsyncs since the last segment was prepared.
    pub(crate) fn for_commits(bytes: u64, syncs: u64) -> Fill {
        match (bytes, syncs) {
            // Nothing seen yet: assume small commits, the case where latency shows.
            (0, 0) => Fill::Zeros,
            // Writes without fsyncs (non-persistent traffic): nothing to save per commit.
            (_, 0) => Fill::Allocate,
            _ if bytes / syncs < ZERO_FILL_BELOW_BYTES_PER_SYNC => Fill::Zeros,
            _ => Fill::Allocate,
        }
    }
}

/// A segment file ready to be written: header in place, blocks ready up to
/// `segment_bytes` (reading as zeros), all durable.
pub(crate) struct Prepared {
    /// The segment it was made for; only that segment may use it.
    pub segment: u64,
    pub file: Box<dyn StorageFile>,
    pub path: PathBuf,
}

/// Where segment `segment` is prepared.
pub(crate) fn prepared_path(dir: &Path, segment: u64) -> PathBuf {
    dir.join(format!("{}{PREPARED_SUFFIX}", segment_file_name(segment)))
}

/// Deletes prepared files a crash left behind: none of them was ever a segment.
pub(crate) fn remove_leftovers(storage: &dyn Storage, dir: &Path) -> io::Result<()> {
    for name in storage.list_dir(dir)? {
        if name.ends_with(PREPARED_SUFFIX) {
            storage.remove_file(&dir.join(name))?;
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
    let storage = &*shared.config.storage;
    // The writer's counters when the last segment was prepared.
    let mut seen = (0, 0);
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
            if !room_for(storage, &shared.config.dir, shared.config.segment_bytes) {
                shared.spare.wait_for(&mut state, LOW_SPACE_RETRY);
                continue;
            }
            state.next.segment + 1
        };
        let now = (
            shared.written_bytes.load(Ordering::Relaxed),
            shared.sync_count.load(Ordering::Relaxed),
        );
        let fill = Fill::for_commits(now.0 - seen.0, now.1 - seen.1);
        seen = now;
        let path = prepared_path(&shared.config.dir, segment);
        let closing = || shared.state.lock().closing;
        let file = match prepare(
            storage,
            &path,
            segment,
            shared.config.segment_bytes,
            fill,
            closing,
        ) {
            Ok(file) => file,
            Err(_) if closing() => {
                // Given up half-way so that closing does not wait for it.
                let _ = storage.remove_file(&path);
                return;
            }
            Err(e) => {
                // Not fatal: the writer creates segments itself, only more slowly.
                warn!(file = %path.display(), error = %e, "journal: could not preallocate a segment; appending without");
                let _ = storage.remove_file(&path);
                return;
            }
        };
        let mut state = shared.state.lock();
        if state.closing || state.next.segment + 1 != segment {
            // Closing, or appends moved on to a segment the writer created itself.
            drop(state);
            let _ = storage.remove_file(&path);
            continue;
        }
        debug!(file = %path.display(), ?fill, "journal: segment preallocated");
        state.prepared = Some(Prepared {
            segment,
            file,
            path,
        });
    }
}

/// Writes the segment's header and makes its blocks ready up to `segment_bytes` as
/// `fill` says, durably. Writing zeros stops with an error as soon as `stop` says so:
/// a segment's worth of zeros takes long enough (about half a second here) to hold up
/// a broker's shutdown.
pub(crate) fn prepare(
    storage: &dyn Storage,
    path: &Path,
    segment: u64,
    segment_bytes: u64,
    fill: Fill,
    stop: impl Fn() -> bool,
) -> io::Result<Box<dyn StorageFile>> {
    let _ = storage.remove_file(path);
    let file = storage.open(path, OpenMode::CreateNew)?;
    file.write_at(0, &encode_segment_header(segment), &[])?;
    // Allocated either way first, so that a full disk shows here and not halfway.
    file.allocate(segment_bytes)?;
    if fill == Fill::Zeros {
        let zeros = vec![0u8; ZERO_CHUNK_BYTES];
        let mut at = SEGMENT_HEADER_BYTES;
        while at < segment_bytes {
            if stop() {
                return Err(io::Error::new(
                    io::ErrorKind::Interrupted,
                    "journal closing",
                ));
            }
            let n = (segment_bytes - at).min(ZERO_CHUNK_BYTES as u64) as usize;
            file.write_at(at, &zeros[..n], &[])?;
            at += n as u64;
        }
    }
    file.sync_all()?;
    Ok(file)
}

/// Whether the file system of `dir` has room for a prepared segment and then some.
fn room_for(storage: &dyn Storage, dir: &Path, segment_bytes: u64) -> bool {
    match storage.available_bytes(dir) {
        Ok(free) => free >= MIN_FREE_SEGMENTS * segment_bytes,
        // Unknown: do not risk it.
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::FileSystem;

    #[test]
    fn small_commits_get_zeros_large_ones_allocation() {
        assert_eq!(Fill::for_commits(0, 0), Fill::Zeros, "nothing seen yet");
        assert_eq!(Fill::for_commits(1 << 20, 0), Fill::Allocate, "no fsyncs");
        assert_eq!(Fill::for_commits(2048 * 100, 100), Fill::Zeros);
        let limit = ZERO_FILL_BELOW_BYTES_PER_SYNC;
        assert_eq!(Fill::for_commits((limit - 1) * 10, 10), Fill::Zeros);
        assert_eq!(Fill::for_commits(limit * 10, 10), Fill::Allocate);
        assert_eq!(Fill::for_commits(64 * 1024 * 1000, 10), Fill::Allocate);
    }

    #[test]
    fn either_fill_gives_a_full_length_segment_of_header_then_zeros() {
        let dir = tempfile::tempdir().unwrap();
        let segment_bytes = 3 * ZERO_CHUNK_BYTES as u64 + 4096 + 7;
        for fill in [Fill::Allocate, Fill::Zeros] {
            let path = dir.path().join(format!("{fill:?}"));
            let file = prepare(&FileSystem, &path, 9, segment_bytes, fill, || false).unwrap();
            assert_eq!(file.file_len().unwrap(), segment_bytes, "{fill:?}");
            drop(file);
            let mut bytes = Vec::new();
            FileSystem.read(&path, &mut bytes).unwrap();
            let header = SEGMENT_HEADER_BYTES as usize;
            assert_eq!(&bytes[..header], &encode_segment_header(9)[..], "{fill:?}");
            assert!(bytes[header..].iter().all(|&b| b == 0), "{fill:?}");
        }
    }

    #[test]
    fn writing_zeros_stops_when_told() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stopped");
        let bytes = 8 * ZERO_CHUNK_BYTES as u64;
        let err = prepare(&FileSystem, &path, 1, bytes, Fill::Zeros, || true)
            .err()
            .expect("stopped");
        assert_eq!(err.kind(), io::ErrorKind::Interrupted);
        assert!(
            prepare(&FileSystem, &path, 1, bytes, Fill::Allocate, || true).is_ok(),
            "allocating is quick and not stopped"
        );
    }
}
