//! Free space on the journal's file system, for producer flow control.
//!
//! The journal must never meet `ENOSPC`: a write that fails fails the journal for
//! good (it never retries after a failed write or fsync), and a standalone broker
//! then stops. So producers are held (or refused, with `flow_control = "fail"`)
//! while the file system's free space (`statvfs`: blocks available to the broker
//! times the fragment size, what `df` shows as available) is below
//! `[limits] min_free_disk_bytes`; consumers, acks and everything else go on, and
//! producers resume by themselves once space comes back.
//!
//! A send does not make a syscall: a task samples the file system every
//! [`DISK_SAMPLE_INTERVAL`] and keeps the answer in an atomic, with the journal's
//! size at that moment. [`DiskSpace::is_low`] takes the journal's size now and
//! counts whatever the journal grew since the sample as gone from the free space,
//! so producers fast enough to write the reserve within one interval are held in
//! time all the same (a deleted segment counts only from the next sample).
//! What other processes write counts only from the next sample too: the reserve
//! must also cover what they may write in one interval.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// How often the journal's file system is asked for its free space. Within one
/// interval producers can write what the disk takes in that time; the default
/// reserve ([`crate::config::DEFAULT_MIN_FREE_DISK_SEGMENTS`]) leaves room for it.
pub const DISK_SAMPLE_INTERVAL: Duration = Duration::from_millis(100);

/// Free bytes before the first sample: "plenty", so nothing is held by a guess.
const NOT_SAMPLED: u64 = u64::MAX;

/// The free space of one file system, as last sampled, against its threshold.
#[derive(Debug)]
pub struct DiskSpace {
    /// Producers are held while fewer bytes than this are free; 0: never.
    min_free_bytes: u64,
    /// Free bytes at the last sample ([`NOT_SAMPLED`] before the first).
    free_bytes: AtomicU64,
    /// The journal's size (bytes appended, less segments deleted) at the last sample.
    journal_bytes: AtomicU64,
    /// Whether the last sample was below the threshold (to log changes once).
    low: AtomicBool,
}

impl DiskSpace {
    /// Space checked against `min_free_bytes` (0: never low).
    pub fn new(min_free_bytes: u64) -> DiskSpace {
        DiskSpace {
            min_free_bytes,
            free_bytes: AtomicU64::new(NOT_SAMPLED),
            journal_bytes: AtomicU64::new(0),
            low: AtomicBool::new(false),
        }
    }

    /// Space that is never low (memory persistence, or the check switched off).
    pub fn unchecked() -> DiskSpace {
        DiskSpace::new(0)
    }

    /// The threshold (0: off).
    pub fn min_free_bytes(&self) -> u64 {
        self.min_free_bytes
    }

    /// Whether producers must wait, the journal being `journal_bytes` large now:
    /// the free space at the last sample, less what the journal grew since, is below
    /// the threshold. Two atomic loads.
    pub fn is_low(&self, journal_bytes: u64) -> bool {
        self.min_free_bytes > 0 && self.free_now(journal_bytes) < self.min_free_bytes
    }

    /// Free bytes at the last sample, if there was one.
    pub fn free_bytes(&self) -> Option<u64> {
        Some(self.free_bytes.load(Ordering::Relaxed)).filter(|&b| b != NOT_SAMPLED)
    }

    /// Free bytes now by the last sample, the journal being `journal_bytes` large.
    pub fn free_now(&self, journal_bytes: u64) -> u64 {
        let grown = journal_bytes.saturating_sub(self.journal_bytes.load(Ordering::Relaxed));
        self.free_bytes
            .load(Ordering::Relaxed)
            .saturating_sub(grown)
    }

    /// Takes a sample: `free` bytes are free now, the journal being `journal_bytes`
    /// large. Returns `Some(true)` when this made the space low, `Some(false)` when it
    /// made it no longer low, `None` if nothing changed.
    pub fn record(&self, free: u64, journal_bytes: u64) -> Option<bool> {
        self.journal_bytes.store(journal_bytes, Ordering::Relaxed);
        self.free_bytes
            .store(free.min(NOT_SAMPLED - 1), Ordering::Relaxed);
        let low = self.is_low(journal_bytes);
        (self.low.swap(low, Ordering::Relaxed) != low).then_some(low)
    }

    /// Samples `dir`'s file system now and logs a change of state. The journal's
    /// size is read first: what it writes meanwhile is counted twice, not missed.
    fn sample(&self, dir: &Path, journal_bytes: &dyn Fn() -> u64) {
        let journal = journal_bytes();
        match free_bytes(dir) {
            Ok(free) => match self.record(free, journal) {
                Some(true) => tracing::warn!(
                    free_bytes = free,
                    min_free_disk_bytes = self.min_free_bytes,
                    "free disk space on {} is below min_free_disk_bytes: producers are held until there is room",
                    dir.display()
                ),
                Some(false) => tracing::info!(
                    free_bytes = free,
                    min_free_disk_bytes = self.min_free_bytes,
                    "free disk space on {} is back above min_free_disk_bytes: producers resume",
                    dir.display()
                ),
                None => {}
            },
            // The last sample stands; a file system that cannot say does not stop
            // producers on a guess (the journal itself still refuses ENOSPC loudly).
            Err(e) => tracing::debug!("cannot read free space of {}: {e}", dir.display()),
        }
    }
}

/// Free bytes of `dir`'s file system for an unprivileged writer (`statvfs`).
///
/// # Errors
/// If `statvfs` fails.
pub fn free_bytes(dir: &Path) -> std::io::Result<u64> {
    let fs = rustix::fs::statvfs(dir)?;
    Ok(fs.f_bavail.saturating_mul(fs.f_frsize))
}

/// Samples `dir` at once, then every [`DISK_SAMPLE_INTERVAL`] until `stop`;
/// `journal_bytes` says how large the journal is. The `statvfs` runs on Tokio's
/// blocking pool: on a network file system it can wait for the server.
pub async fn sample_until(
    space: std::sync::Arc<DiskSpace>,
    dir: PathBuf,
    journal_bytes: std::sync::Arc<dyn Fn() -> u64 + Send + Sync>,
    stop: CancellationToken,
) {
    if space.min_free_bytes == 0 {
        return;
    }
    let mut tick = tokio::time::interval(DISK_SAMPLE_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => return,
        }
        let (s, d, j) = (
            std::sync::Arc::clone(&space),
            dir.clone(),
            std::sync::Arc::clone(&journal_bytes),
        );
        if tokio::task::spawn_blocking(move || s.sample(&d, &*j))
            .await
            .is_err()
        {
            return;
        }
    }
}

/// Takes one sample now, before the broker accepts producers.
pub fn sample_now(space: &DiskSpace, dir: &Path, journal_bytes: &dyn Fn() -> u64) {
    if space.min_free_bytes > 0 {
        space.sample(dir, journal_bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn low_below_the_threshold_and_back_when_space_returns() {
        let d = DiskSpace::new(1000);
        assert!(!d.is_low(0), "not low before the first sample");
        assert_eq!(d.free_bytes(), None);
        assert_eq!(d.record(5000, 0), None);
        assert!(!d.is_low(0));
        assert_eq!(d.record(1000, 0), None, "exactly the threshold is enough");
        assert_eq!(d.record(999, 0), Some(true));
        assert!(d.is_low(0));
        assert_eq!(d.record(10, 0), None, "still low: no second report");
        assert_eq!(d.free_bytes(), Some(10));
        assert_eq!(d.record(1500, 0), Some(false));
        assert!(!d.is_low(0));
    }

    #[test]
    fn what_the_journal_wrote_since_the_sample_counts_as_used() {
        let d = DiskSpace::new(1000);
        d.record(5000, 70_000);
        assert_eq!(d.free_now(70_000), 5000);
        assert!(!d.is_low(74_000));
        assert_eq!(d.free_now(74_001), 999);
        assert!(d.is_low(74_001), "low before the next sample");
        // A journal that shrank (segments deleted) frees nothing until the next sample.
        assert_eq!(d.free_now(10), 5000);
        // The next sample stands on its own (state changes are logged from samples).
        assert_eq!(d.record(999_999, 74_001), None);
        assert!(!d.is_low(74_001));
    }

    #[test]
    fn zero_means_off() {
        let d = DiskSpace::unchecked();
        assert_eq!(d.record(0, 0), None);
        assert!(!d.is_low(u64::MAX));
    }

    #[test]
    fn a_real_directory_has_some_free_space() {
        let dir = tempfile::tempdir().unwrap();
        assert!(free_bytes(dir.path()).unwrap() > 0);
        assert!(free_bytes(&dir.path().join("missing")).is_err());
        let d = DiskSpace::new(u64::MAX - 2);
        sample_now(&d, dir.path(), &|| 0);
        assert!(d.is_low(0), "nothing has that much free");
    }

    #[tokio::test]
    async fn the_sampler_follows_the_file_system_and_stops() {
        let dir = tempfile::tempdir().unwrap();
        let d = std::sync::Arc::new(DiskSpace::new(1));
        let stop = CancellationToken::new();
        let task = tokio::spawn(sample_until(
            std::sync::Arc::clone(&d),
            dir.path().to_owned(),
            std::sync::Arc::new(|| 0),
            stop.clone(),
        ));
        for _ in 0..100 {
            if d.free_bytes().is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(d.free_bytes().is_some(), "sampled");
        stop.cancel();
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .unwrap()
            .unwrap();
    }
}
