//! The lease: for shared stores whose file locks cannot be trusted (network file
//! systems), mastership is a lease the master renews in the store.
//!
//! The master rewrites `ha/lease` (write a temporary file, rename it over) every
//! renew interval with its epoch and the wall-clock time of the renewal. A standby
//! takes over only when the lease is older than its duration plus the allowed clock
//! skew, and then only by winning the next epoch's claim (see `epochs`), so two
//! standbys cannot both take over. The master stops confirming by itself once its
//! last successful renewal is older than the duration minus the skew (measured on
//! its own boot clock, which counts through a suspended machine: see `clock` and
//! `lease_timer`), and a superseded master stops at its next fence check whatever
//! the clocks say.
//!
//! Clock assumptions (also in docs/failover.md): the wall clocks of the brokers
//! sharing a store differ by less than `clock_skew_ms`; a renewal reaches the
//! store within `lease_ms - renew_ms - clock_skew_ms`.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// First line of a lease file, naming its format.
const LEASE_HEADER: &str = "hawser-lease 1";
/// Name of the lease file in the `ha/` directory.
pub const LEASE_FILE: &str = "lease";

/// One lease as written in the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    /// The epoch of the master holding it.
    pub epoch: u64,
    /// Who that master is.
    pub owner: String,
    /// Wall-clock time of the last renewal, ms since the Unix epoch.
    pub renewed_ms: u64,
    /// How long a renewal holds, ms.
    pub lease_ms: u64,
}

impl Lease {
    /// True if a standby whose wall clock reads `now_ms` may take over: the lease ran
    /// out more than `skew_ms` ago.
    pub fn expired(&self, now_ms: u64, skew_ms: u64) -> bool {
        now_ms
            > self
                .renewed_ms
                .saturating_add(self.lease_ms)
                .saturating_add(skew_ms)
    }

    /// The lease as written in the file.
    pub fn encode(&self) -> String {
        format!(
            "{LEASE_HEADER}\nepoch {}\nowner {}\nrenewed_ms {}\nlease_ms {}\nend\n",
            self.epoch,
            self.owner.replace('\n', " "),
            self.renewed_ms,
            self.lease_ms
        )
    }

    /// Parses a lease file; `None` if it is not one (cut short, damaged, another format).
    pub fn decode(text: &str) -> Option<Lease> {
        let mut lines = text.lines();
        if lines.next()? != LEASE_HEADER {
            return None;
        }
        let mut field = |name: &str| -> Option<String> {
            let line = lines.next()?;
            line.strip_prefix(name)?
                .strip_prefix(' ')
                .map(str::to_owned)
        };
        let lease = Lease {
            epoch: field("epoch")?.parse().ok()?,
            owner: field("owner")?,
            renewed_ms: field("renewed_ms")?.parse().ok()?,
            lease_ms: field("lease_ms")?.parse().ok()?,
        };
        (lines.next()? == "end").then_some(lease)
    }
}

/// The lease file of a store's `ha/` directory.
#[derive(Clone, Debug)]
pub struct LeaseFile {
    path: PathBuf,
}

impl LeaseFile {
    /// The lease file in `ha_dir`.
    pub fn new(ha_dir: &Path) -> LeaseFile {
        LeaseFile {
            path: ha_dir.join(LEASE_FILE),
        }
    }

    /// The lease now in the store; `None` if there is none. A lease file that does
    /// not parse (cut short by a crash of a non-atomic file system) counts as none:
    /// its writer could not have been renewing it either.
    ///
    /// # Errors
    /// If the file exists and cannot be read.
    pub fn read(&self) -> io::Result<Option<Lease>> {
        match fs::read_to_string(&self.path) {
            Ok(text) => Ok(Lease::decode(&text)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Replaces the lease, atomically (temporary file renamed over it).
    ///
    /// # Errors
    /// If the file system fails.
    pub fn write(&self, lease: &Lease) -> io::Result<()> {
        let tmp = self
            .path
            .with_extension(format!("{}.tmp", std::process::id()));
        {
            let mut file = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&tmp)?;
            file.write_all(lease.encode().as_bytes())?;
            // Synced before the rename and the directory after it, so that a crash
            // leaves the old lease or the new one, never an empty file or a lost name.
            file.sync_all()?;
        }
        fs::rename(&tmp, &self.path)?;
        File::open(self.path.parent().unwrap_or(Path::new(".")))?.sync_all()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease() -> Lease {
        Lease {
            epoch: 7,
            owner: "node-a pid 12".into(),
            renewed_ms: 1_000,
            lease_ms: 3_000,
        }
    }

    #[test]
    fn expires_only_past_duration_and_skew() {
        let l = lease();
        assert!(!l.expired(4_000, 500));
        assert!(!l.expired(4_500, 500));
        assert!(l.expired(4_501, 500));
        assert!(
            !l.expired(0, 0),
            "a clock behind the renewal never expires it"
        );
    }

    #[test]
    fn file_round_trips_and_garbage_is_no_lease() {
        let tmp = tempfile::tempdir().unwrap();
        let f = LeaseFile::new(tmp.path());
        assert_eq!(f.read().unwrap(), None);
        f.write(&lease()).unwrap();
        assert_eq!(f.read().unwrap(), Some(lease()));
        fs::write(tmp.path().join(LEASE_FILE), "hawser-lease 1\nepoch 7\n").unwrap();
        assert_eq!(f.read().unwrap(), None);
        assert_eq!(Lease::decode(&lease().encode()), Some(lease()));
    }

    proptest::proptest! {
        #[test]
        fn any_lease_round_trips(epoch: u64, owner in "[^\n\r]{0,40}", renewed_ms: u64, lease_ms: u64) {
            let l = Lease { epoch, owner, renewed_ms, lease_ms };
            proptest::prop_assert_eq!(Lease::decode(&l.encode()), Some(l));
        }

        #[test]
        fn any_text_parses_or_is_refused_without_panicking(text in "\\PC{0,200}") {
            if let Some(l) = Lease::decode(&text) {
                proptest::prop_assert_eq!(Lease::decode(&l.encode()), Some(l));
            }
        }
    }
}
