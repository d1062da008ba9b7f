//! Epoch directories: how the new master of a shared store takes the journal over
//! without sharing one file name, or one byte it will read, with the master before it.
//!
//! With [`JournalConfig::epoch`](crate::JournalConfig) set to N, the journal lives in
//! `dir/epoch-<N>/`. Preparing it:
//!
//! 1. The predecessor is the newest earlier epoch directory that is complete (it has
//!    a `SEALS` file), or, the first time, the segments directly in `dir`.
//! 2. Every predecessor segment is hard-linked into the new directory and sealed at
//!    the length of its valid records: the length it was sealed at in the predecessor,
//!    the file's length for a segment its writer had finished, and for the one it was
//!    writing, the end of its last good record (a torn tail is left where it is).
//! 3. The seals go to `SEALS` (written to a temporary file, fsynced, renamed, directory
//!    fsynced); only then is the directory complete. The new master appends to a
//!    segment of its own, never to a sealed one. The epoch directory's entry and the
//!    links are made durable (their directories fsynced) before `SEALS` is written, so
//!    that a crash never leaves a `SEALS` naming links that are not there.
//!
//! Why: a master that was paused or cut off may wake up and go on writing before it
//! notices it was superseded. Whatever it does happens in its own directory: its
//! appends to a file both directories link land beyond the seal, which every later
//! recovery ignores; the segments it creates and deletes are names only it sees. So
//! the new master's store is exactly what it found at takeover plus what it wrote.
//! Hard links and an atomic rename are all this asks of the file system; NFS has both.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use tracing::info;

use crate::error::OpenError;
use crate::format::{segment_file_name, Corruption, SEGMENT_HEADER_BYTES};
use crate::recovery::list_segments;
use crate::scan::{judge_tail, scan_segment_bytes, Tail};
use crate::storage::{OpenMode, Storage};

/// Name of the file that lists an epoch directory's sealed segments; its presence
/// marks the directory complete.
pub(crate) const SEALS_FILE: &str = "SEALS";
const EPOCH_DIR_PREFIX: &str = "epoch-";
/// Zero padding so that lexical order is numeric order.
const EPOCH_DIGITS: usize = 20;
/// First line of a seals file, naming its format.
const SEALS_HEADER: &str = "hawser-seals 1";

/// Sealed segments of an epoch directory: segment id to the length recovery reads.
pub type Seals = BTreeMap<u64, u64>;

/// The directory name of epoch `epoch`.
pub fn epoch_dir_name(epoch: u64) -> String {
    format!("{EPOCH_DIR_PREFIX}{epoch:0EPOCH_DIGITS$}")
}

fn parse_epoch_dir_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix(EPOCH_DIR_PREFIX)?;
    (digits.len() == EPOCH_DIGITS && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

/// An epoch directory made ready for recovery.
pub(crate) struct Prepared {
    /// The directory.
    pub dir: PathBuf,
    /// Its sealed segments.
    pub seals: Seals,
    /// Where they were inherited from: the epoch before, or `base`.
    pub from: PathBuf,
}

/// Makes `base/epoch-<epoch>` ready for recovery.
pub(crate) fn prepare(
    storage: &dyn Storage,
    base: &Path,
    epoch: u64,
    max_record_bytes: u32,
) -> Result<Prepared, OpenError> {
    let dir = base.join(epoch_dir_name(epoch));
    if let Some(seals) = read_seals(storage, &dir)? {
        // Reopened by the epoch that made it (a broker restarting in place).
        let from =
            predecessor(storage, base, epoch)?.map_or_else(|| base.to_path_buf(), |(from, _)| from);
        return Ok(Prepared { dir, seals, from });
    }
    if storage.exists(&dir).map_err(io_error("look for", &dir))? {
        // A takeover that died half-way: nothing in it was ever served from.
        storage
            .remove_dir_all(&dir)
            .map_err(io_error("remove incomplete", &dir))?;
    }
    let (from, inherited) = match predecessor(storage, base, epoch)? {
        Some((from, seals)) => (from, seals),
        None => (base.to_path_buf(), Seals::new()),
    };
    let found = list_segments(storage, &from)?;
    let last_own = found
        .iter()
        .map(|(id, _)| *id)
        .filter(|id| !inherited.contains_key(id))
        .max();
    let mut seals = Seals::new();
    for (segment, path) in &found {
        let length = match inherited.get(segment) {
            Some(&sealed) => sealed,
            None if Some(*segment) == last_own => valid_length(storage, path, max_record_bytes)?,
            None => storage.len(path).map_err(io_error("stat", path))?,
        };
        if length < SEGMENT_HEADER_BYTES {
            // Created but never written: holds nothing to inherit.
            continue;
        }
        seals.insert(*segment, length);
    }
    // Each step's entries are made durable before the next: SEALS must never be on disk
    // without the links it describes, nor the links without their directory.
    storage.create_dir(&dir).map_err(io_error("create", &dir))?;
    storage.sync_dir(base).map_err(io_error("fsync", base))?;
    for segment in seals.keys() {
        let name = segment_file_name(*segment);
        storage
            .hard_link(&from.join(&name), &dir.join(&name))
            .map_err(io_error("link segment into", &dir))?;
    }
    storage.sync_dir(&dir).map_err(io_error("fsync", &dir))?;
    write_seals(storage, &dir, &seals)?;
    info!(
        epoch,
        from = %from.display(),
        segments = seals.len(),
        "journal: took over the store's segments, sealed"
    );
    remove_older_epochs(storage, base, &from, epoch);
    Ok(Prepared { dir, seals, from })
}

/// True if `base` holds a complete epoch directory.
pub(crate) fn has_epochs(storage: &dyn Storage, base: &Path) -> bool {
    predecessor(storage, base, u64::MAX)
        .ok()
        .flatten()
        .is_some()
}

/// The newest complete epoch directory below `epoch`, with its seals.
fn predecessor(
    storage: &dyn Storage,
    base: &Path,
    epoch: u64,
) -> Result<Option<(PathBuf, Seals)>, OpenError> {
    let mut epochs: Vec<u64> = storage
        .list_dir(base)
        .map_err(io_error("list", base))?
        .iter()
        .filter_map(|name| parse_epoch_dir_name(name))
        .filter(|&e| e < epoch)
        .collect();
    epochs.sort_unstable();
    for e in epochs.into_iter().rev() {
        let dir = base.join(epoch_dir_name(e));
        if let Some(seals) = read_seals(storage, &dir)? {
            return Ok(Some((dir, seals)));
        }
    }
    Ok(None)
}

/// Epoch directories older than the one just inherited from: nobody reads them again.
/// Best effort; a master still running in one only loses names it no longer needs.
fn remove_older_epochs(storage: &dyn Storage, base: &Path, kept: &Path, epoch: u64) {
    let Ok(names) = storage.list_dir(base) else {
        return;
    };
    for name in names {
        let path = base.join(&name);
        let older = parse_epoch_dir_name(&name).is_some_and(|e| e < epoch);
        if older && path != kept {
            let _ = storage.remove_dir_all(&path);
        }
    }
}

/// Where the last good record of the segment a predecessor was writing ends (0 if its
/// header is not whole), judged as recovery judges a last segment: damage that an intact
/// later record proves was durable is refused, not sealed off. The file is fsynced first:
/// a predecessor that crashed may have left records in the page cache only, and a seal
/// must never cover bytes a power loss could still take away.
fn valid_length(
    storage: &dyn Storage,
    path: &Path,
    max_record_bytes: u32,
) -> Result<u64, OpenError> {
    storage
        .open(path, OpenMode::Existing)
        .and_then(|file| file.sync_all())
        .map_err(io_error("fsync", path))?;
    let mut data = Vec::new();
    storage
        .read(path, &mut data)
        .map_err(io_error("read", path))?;
    let scan = scan_segment_bytes(&data, max_record_bytes);
    match judge_tail(&data, &scan, max_record_bytes) {
        Tail::Corrupt(reason) => Err(OpenError::Corrupt {
            file: path.to_path_buf(),
            offset: scan.valid_len,
            reason,
        }),
        // A torn tail stays where it is, beyond the seal: nothing is cut or lost.
        Tail::Clean | Tail::Unused | Tail::Torn | Tail::TornHeader => {
            Ok(if scan.segment.is_some() {
                scan.valid_len
            } else {
                0
            })
        }
    }
}

/// The seals of a complete epoch directory; `None` if it is missing or incomplete.
pub(crate) fn read_seals(storage: &dyn Storage, dir: &Path) -> Result<Option<Seals>, OpenError> {
    let path = dir.join(SEALS_FILE);
    let mut bytes = Vec::new();
    match storage.read(&path, &mut bytes) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error("read", &path)(e)),
    }
    let text = String::from_utf8_lossy(&bytes);
    match parse_seals(&text) {
        Some(seals) => Ok(Some(seals)),
        None => Err(OpenError::Corrupt {
            file: path,
            offset: 0,
            reason: Corruption::BadSeals,
        }),
    }
}

/// `hawser-seals 1`, then one `segment length` line per seal, then `end`: a file cut
/// short (which the rename makes impossible, but a damaged disk does not) is refused.
pub fn parse_seals(text: &str) -> Option<Seals> {
    let mut lines = text.lines();
    if lines.next()? != SEALS_HEADER {
        return None;
    }
    let mut seals = Seals::new();
    for line in lines {
        if line == "end" {
            return Some(seals);
        }
        let (segment, length) = line.split_once(' ')?;
        seals.insert(segment.parse().ok()?, length.parse().ok()?);
    }
    None
}

/// The text of a seals file.
pub fn format_seals(seals: &Seals) -> String {
    let mut text = format!("{SEALS_HEADER}\n");
    for (segment, length) in seals {
        text.push_str(&format!("{segment} {length}\n"));
    }
    text.push_str("end\n");
    text
}

/// Writes `SEALS` atomically: a temporary file, fsynced, renamed into place, and the
/// directory fsynced so that the rename outlives a crash.
fn write_seals(storage: &dyn Storage, dir: &Path, seals: &Seals) -> Result<(), OpenError> {
    let tmp = dir.join(format!("{SEALS_FILE}.tmp"));
    let file = storage
        .open(&tmp, OpenMode::CreateTruncate)
        .map_err(io_error("create", &tmp))?;
    file.write_at(0, format_seals(seals).as_bytes(), &[])
        .and_then(|()| file.sync_all())
        .map_err(io_error("write", &tmp))?;
    drop(file);
    let path = dir.join(SEALS_FILE);
    storage
        .rename(&tmp, &path)
        .map_err(io_error("rename to", &path))?;
    storage.sync_dir(dir).map_err(io_error("fsync", dir))
}

fn io_error<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> OpenError + 'a {
    move |source| OpenError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_round_trip_and_a_cut_file_is_refused() {
        let seals = Seals::from([(3, 20), (4, 1_000_000)]);
        let text = format_seals(&seals);
        assert_eq!(parse_seals(&text), Some(seals));
        assert_eq!(parse_seals(text.trim_end_matches("end\n")), None);
        assert_eq!(parse_seals("hawser-seals 2\nend\n"), None);
        assert_eq!(parse_seals("hawser-seals 1\n3 x\nend\n"), None);
    }

    proptest::proptest! {
        #[test]
        fn any_seals_round_trip(seals in proptest::collection::btree_map(proptest::prelude::any::<u64>(), proptest::prelude::any::<u64>(), 0..20)) {
            proptest::prop_assert_eq!(parse_seals(&format_seals(&seals)), Some(seals));
        }

        #[test]
        fn any_text_parses_or_is_refused_without_panicking(text in "\\PC{0,200}") {
            if let Some(seals) = parse_seals(&text) {
                proptest::prop_assert_eq!(parse_seals(&format_seals(&seals)), Some(seals));
            }
        }
    }

    #[test]
    fn epoch_names_sort_numerically() {
        assert_eq!(parse_epoch_dir_name(&epoch_dir_name(42)), Some(42));
        assert!(epoch_dir_name(9) < epoch_dir_name(10));
        assert_eq!(parse_epoch_dir_name("epoch-12"), None);
        assert_eq!(
            parse_epoch_dir_name("journal-00000000000000000001.log"),
            None
        );
    }
}
