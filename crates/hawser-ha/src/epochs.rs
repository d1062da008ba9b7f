//! Epoch claims: the numbers that only grow, one per master of a shared store.
//!
//! A broker becomes master of epoch N by creating the file `epoch-<N>` in the
//! store's `ha/` directory. Creation is a hard link of a fully written temporary
//! file, which fails if the name exists: of two brokers claiming the same epoch,
//! exactly one wins, on a local file system and on NFS alike. The master of epoch N
//! is superseded once `epoch-<N+1>` exists; it checks before confirming anything
//! (the journal's fence), so nothing it writes after that is ever confirmed.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

const EPOCH_PREFIX: &str = "epoch-";
/// Zero padding so that lexical order is numeric order.
const EPOCH_DIGITS: usize = 20;
/// Claims kept below the current one (older ones are only history).
const KEPT_CLAIMS: u64 = 16;

/// The `ha/` directory of a shared store.
#[derive(Clone, Debug)]
pub struct Epochs {
    dir: PathBuf,
}

impl Epochs {
    /// Opens (creating) the directory.
    ///
    /// # Errors
    /// If it cannot be created.
    pub fn open(dir: impl Into<PathBuf>) -> io::Result<Epochs> {
        let dir = dir.into();
        // Durably: were `ha/` lost in a crash, the next master would claim epoch 1 and
        // inherit none of the store's epoch directories.
        hawser_journal::create_dir_all_durable(&hawser_journal::FileSystem, &dir)?;
        Ok(Epochs { dir })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The highest epoch claimed so far; 0 before the first master.
    ///
    /// # Errors
    /// If the directory cannot be listed.
    pub fn current(&self) -> io::Result<u64> {
        let mut max = 0;
        for entry in fs::read_dir(&self.dir)? {
            if let Some(n) = entry?.file_name().to_str().and_then(parse_claim_name) {
                max = max.max(n);
            }
        }
        Ok(max)
    }

    /// Claims `epoch` for `owner`. `Ok(false)` if somebody else claimed it first.
    ///
    /// # Errors
    /// If the file system fails.
    pub fn claim(&self, epoch: u64, owner: &str) -> io::Result<bool> {
        let tmp = self
            .dir
            .join(format!(".claim-{epoch}-{}.tmp", std::process::id()));
        {
            let mut file = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&tmp)?;
            file.write_all(format!("{owner}\n").as_bytes())?;
            file.sync_all()?;
        }
        let claimed = match fs::hard_link(&tmp, self.claim_path(epoch)) {
            Ok(()) => true,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => false,
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                return Err(e);
            }
        };
        fs::remove_file(&tmp)?;
        File::open(&self.dir)?.sync_all()?;
        if claimed {
            self.prune(epoch);
        }
        Ok(claimed)
    }

    /// True once a later master claimed the epoch after `epoch` (or `epoch`'s own
    /// claim is gone, which pruning does only long after). Two `stat`s: cheap enough
    /// to ask before every confirmation.
    pub fn superseded(&self, epoch: u64) -> bool {
        let exists = |n: u64| fs::symlink_metadata(self.claim_path(n)).is_ok();
        exists(epoch + 1) || !exists(epoch)
    }

    /// Who claimed `epoch`, as it wrote itself.
    pub fn owner(&self, epoch: u64) -> Option<String> {
        fs::read_to_string(self.claim_path(epoch))
            .ok()
            .map(|s| s.trim_end().to_owned())
    }

    fn claim_path(&self, epoch: u64) -> PathBuf {
        self.dir
            .join(format!("{EPOCH_PREFIX}{epoch:0EPOCH_DIGITS$}"))
    }

    /// Removes claims long past; best effort.
    fn prune(&self, current: u64) {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return;
        };
        for entry in entries.flatten() {
            let old = entry
                .file_name()
                .to_str()
                .and_then(parse_claim_name)
                .is_some_and(|n| n + KEPT_CLAIMS < current);
            if old {
                let _ = fs::remove_file(entry.path());
            }
        }
    }
}

fn parse_claim_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix(EPOCH_PREFIX)?;
    (digits.len() == EPOCH_DIGITS && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_claim_per_epoch_and_superseded_after_the_next() {
        let tmp = tempfile::tempdir().unwrap();
        let e = Epochs::open(tmp.path().join("ha")).unwrap();
        assert_eq!(e.current().unwrap(), 0);
        assert!(e.claim(1, "a").unwrap());
        assert!(!e.claim(1, "b").unwrap(), "a second claim of 1 loses");
        assert_eq!(e.owner(1).as_deref(), Some("a"));
        assert_eq!(e.current().unwrap(), 1);
        assert!(!e.superseded(1));
        assert!(e.claim(2, "b").unwrap());
        assert!(e.superseded(1));
        assert!(!e.superseded(2));
        assert_eq!(e.current().unwrap(), 2);
        // No temporary files are left behind.
        let names: Vec<_> = fs::read_dir(e.dir())
            .unwrap()
            .map(|d| d.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }

    #[test]
    fn old_claims_are_pruned() {
        let tmp = tempfile::tempdir().unwrap();
        let e = Epochs::open(tmp.path()).unwrap();
        for n in 1..=40 {
            assert!(e.claim(n, "x").unwrap());
        }
        assert_eq!(e.current().unwrap(), 40);
        assert!(e.owner(1).is_none());
        assert!(e.owner(40 - KEPT_CLAIMS).is_some());
        assert!(e.superseded(1), "a pruned claim is superseded");
    }
}
