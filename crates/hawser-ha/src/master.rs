//! Becoming master of a shared store, staying master, and stepping down.
//!
//! A standby polls every `poll_ms`: in file-lock mode it tries the exclusive lock
//! on `ha/master.lock` (and refuses to start on a network file system, whose locks
//! cannot be trusted: see `fstype`); in lease mode it reads the lease and waits for
//! it to run out. Either way it then claims the next epoch (see `epochs`) and, having won
//! it, is master. While master, a watcher looks for a later claim, and in lease
//! mode a renewer keeps the lease fresh; either one failing cancels the
//! [`FileMastership`], and its [`Fence`] refuses from then on, so the journal confirms
//! nothing more. Lease deadlines are kept on the boot clock (see `clock`), which
//! counts through a suspended machine.

use std::fs::{File, OpenOptions, TryLockError};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::clock::{BootClock, Clock};
use crate::epochs::Epochs;
use crate::fstype;
use crate::lease::{Lease, LeaseFile};
use crate::lease_timer::LeaseTimer;
use crate::mastership::{AcquireError, Acquired, Election, Fence, Mastership, Role};

/// Name of the lock file in the `ha/` directory (file-lock mode).
pub const LOCK_FILE: &str = "master.lock";
/// Default pause between a standby's attempts.
pub const DEFAULT_POLL_MS: u64 = 50;
/// Default lease duration.
pub const DEFAULT_LEASE_MS: u64 = 3_000;
/// Default lease renewal interval.
pub const DEFAULT_RENEW_MS: u64 = 500;
/// Default allowance for the difference between brokers' wall clocks.
pub const DEFAULT_CLOCK_SKEW_MS: u64 = 500;

/// How mastership is held.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockMode {
    /// An exclusive lock on a file in the store, held while the process lives (local
    /// file systems, and network ones whose locks are trusted).
    File,
    /// A lease renewed in the store (see `lease`).
    Lease {
        /// How long a renewal holds.
        lease_ms: u64,
        /// How often the master renews.
        renew_ms: u64,
        /// Largest difference allowed between the brokers' wall clocks.
        skew_ms: u64,
    },
}

/// Settings of one broker of a shared store.
#[derive(Clone, Debug)]
pub struct HaSettings {
    /// The store's data directory; the coordination files live in its `ha/`.
    pub data_dir: PathBuf,
    /// File lock or lease.
    pub mode: LockMode,
    /// Pause between a standby's attempts to become master.
    pub poll_ms: u64,
    /// How this broker names itself in claims and leases.
    pub node: String,
}

impl HaSettings {
    fn ha_dir(&self) -> PathBuf {
        self.data_dir.join("ha")
    }
}

/// Being master of one epoch, by a file lock or a lease. Dropping it (or
/// [`Mastership::step_down`]) gives
/// mastership up.
pub struct FileMastership {
    /// The epoch this broker is master of.
    pub epoch: u64,
    epochs: Epochs,
    settings: HaSettings,
    /// The exclusive lock (file-lock mode); released when dropped.
    lock: Option<File>,
    /// Cancelled when mastership is lost; `reason` says why.
    lost: CancellationToken,
    reason: Arc<Mutex<Option<String>>>,
    /// Lease mode: until when the last renewal holds.
    lease: Option<Arc<LeaseTimer>>,
    /// The clock the lease is timed with (the boot clock but in tests).
    clock: Arc<dyn Clock>,
    tasks: Vec<JoinHandle<()>>,
}

/// What `acquire` reads from the machine, replaceable in tests.
#[derive(Clone, Debug)]
struct Env {
    /// Times the lease.
    clock: Arc<dyn Clock>,
    /// `statfs(dir).f_type`: which file system the store is on.
    fs_type: fn(&Path) -> io::Result<i64>,
}

impl Env {
    /// The real machine.
    fn real() -> Env {
        Env {
            clock: Arc::new(BootClock),
            fs_type: fstype::file_system_type,
        }
    }
}

impl FileMastership {
    /// The check the journal makes before confirming a batch: refuses once this
    /// mastership is lost, its lease ran out, or a later epoch was claimed.
    pub fn fence(&self) -> Fence {
        let epochs = self.epochs.clone();
        let epoch = self.epoch;
        let lost = self.lost.clone();
        let reason = Arc::clone(&self.reason);
        let lease = self.lease.clone();
        let clock = Arc::clone(&self.clock);
        Fence::new(move || {
            if lost.is_cancelled() {
                let why = reason.lock().map(|r| r.clone()).unwrap_or(None);
                return Err(why.unwrap_or_else(|| "mastership lost".into()));
            }
            if let Some(lease) = &lease {
                if !lease.holds(clock.now()) {
                    return Err(format!("lease of epoch {epoch} not renewed in time"));
                }
            }
            if epochs.superseded(epoch) {
                return Err(superseded_reason(&epochs, epoch));
            }
            Ok(())
        })
    }

    /// Resolves when mastership is lost, with the reason.
    pub async fn lost(&self) -> String {
        self.lost.cancelled().await;
        self.reason().unwrap_or_else(|| "mastership lost".into())
    }

    fn reason(&self) -> Option<String> {
        self.reason.lock().map(|r| r.clone()).unwrap_or(None)
    }

    /// Gives mastership up. In lease mode a master that still holds the lease
    /// ends it, so that a standby need not wait for it to run out.
    pub fn step_down(mut self) {
        self.lost.cancel();
        for t in self.tasks.drain(..) {
            t.abort();
        }
        if let LockMode::Lease { lease_ms, .. } = self.settings.mode {
            let file = LeaseFile::new(&self.settings.ha_dir());
            let ours = file
                .read()
                .ok()
                .flatten()
                .is_some_and(|l| l.epoch == self.epoch);
            if ours && !self.epochs.superseded(self.epoch) {
                let ended = Lease {
                    epoch: self.epoch,
                    owner: self.settings.node.clone(),
                    renewed_ms: 0,
                    lease_ms,
                };
                if let Err(e) = file.write(&ended) {
                    warn!("could not end the lease of epoch {}: {e}", self.epoch);
                }
            }
        }
        drop(self.lock.take());
        info!(epoch = self.epoch, "stepped down: no longer master");
    }
}

impl Drop for FileMastership {
    fn drop(&mut self) {
        self.lost.cancel();
        for t in self.tasks.drain(..) {
            t.abort();
        }
    }
}

impl Mastership for FileMastership {
    fn epoch(&self) -> u64 {
        self.epoch
    }

    fn fence(&self) -> Fence {
        FileMastership::fence(self)
    }

    fn watch(&self) -> CancellationToken {
        self.lost.clone()
    }

    fn lost_reason(&self) -> Option<String> {
        self.lost
            .is_cancelled()
            .then(|| self.reason().unwrap_or_else(|| "mastership lost".into()))
    }

    fn step_down(self: Box<Self>) {
        FileMastership::step_down(*self);
    }
}

/// Mastership of a shared directory, by file lock or lease (see the module).
#[derive(Clone, Debug)]
pub struct FileElection {
    settings: HaSettings,
}

impl FileElection {
    /// An election among the brokers pointed at `settings.data_dir`.
    pub fn new(settings: HaSettings) -> FileElection {
        FileElection { settings }
    }
}

impl Election for FileElection {
    fn acquire<'a>(
        &'a self,
        role: &'a tokio::sync::watch::Sender<Role>,
        shutdown: &'a CancellationToken,
    ) -> Acquired<'a> {
        Box::pin(async move {
            let m = acquire(&self.settings, role, shutdown).await?;
            Ok(m.map(|m| Box::new(m) as Box<dyn Mastership>))
        })
    }
}

/// Waits until this broker is master (or `shutdown` is cancelled: `Ok(None)`),
/// reporting its role as a slave through `role` meanwhile. Reporting
/// [`Role::Master`] is the caller's, once it serves.
///
/// # Errors
/// If the `ha/` directory cannot be used at all, or file-lock mode was asked for
/// on a network file system.
pub async fn acquire(
    settings: &HaSettings,
    role: &tokio::sync::watch::Sender<Role>,
    shutdown: &CancellationToken,
) -> Result<Option<FileMastership>, AcquireError> {
    acquire_in(&Env::real(), settings, role, shutdown).await
}

/// [`acquire`] on the machine `env` describes.
async fn acquire_in(
    env: &Env,
    settings: &HaSettings,
    role: &tokio::sync::watch::Sender<Role>,
    shutdown: &CancellationToken,
) -> Result<Option<FileMastership>, AcquireError> {
    let dir = settings.ha_dir();
    let io_error = |source| AcquireError::Io {
        dir: dir.clone(),
        source,
    };
    let epochs = Epochs::open(&dir).map_err(io_error)?;
    check_lock_mode(settings.mode, &dir, (env.fs_type)(&dir).map_err(io_error)?)?;
    waiting(env, settings, &epochs, role, shutdown)
        .await
        .map_err(io_error)
}

/// Refuses file-lock mode on a file system of type `f_type` (`statfs`) whose
/// locks cannot be trusted.
///
/// # Errors
/// [`AcquireError::NetworkFileSystem`] naming the file system.
pub fn check_lock_mode(mode: LockMode, dir: &Path, f_type: i64) -> Result<(), AcquireError> {
    match (mode, fstype::network_file_system(f_type)) {
        (LockMode::File, Some(file_system)) => Err(AcquireError::NetworkFileSystem {
            dir: dir.to_owned(),
            file_system,
        }),
        (LockMode::Lease { .. }, Some(file_system)) => {
            info!(
                "the shared store {} is on {file_system}: lease mode",
                dir.display()
            );
            Ok(())
        }
        (_, None) => Ok(()),
    }
}

/// Polls until master or shut down.
async fn waiting(
    env: &Env,
    settings: &HaSettings,
    epochs: &Epochs,
    role: &tokio::sync::watch::Sender<Role>,
    shutdown: &CancellationToken,
) -> io::Result<Option<FileMastership>> {
    let mut announced = None;
    loop {
        let current = epochs.current()?;
        role.send_replace(Role::Slave { epoch: current });
        if announced != Some(current) {
            info!(
                epoch = current,
                master = epochs.owner(current).unwrap_or_default(),
                "standby: waiting to become master of the shared store {}",
                settings.data_dir.display()
            );
            announced = Some(current);
        }
        let attempt = match settings.mode {
            LockMode::File => try_file_lock(env, settings, epochs, current)?,
            LockMode::Lease { .. } => try_lease(env, settings, epochs, current)?,
        };
        if let Some(m) = attempt {
            // The caller reports Role::Master once it serves.
            info!(
                epoch = m.epoch,
                node = %settings.node,
                "master: won epoch {} of the shared store",
                m.epoch
            );
            return Ok(Some(m));
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(settings.poll_ms.max(1))) => {}
            _ = shutdown.cancelled() => return Ok(None),
        }
    }
}

fn try_file_lock(
    env: &Env,
    settings: &HaSettings,
    epochs: &Epochs,
    current: u64,
) -> io::Result<Option<FileMastership>> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(settings.ha_dir().join(LOCK_FILE))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => return Ok(None),
        Err(TryLockError::Error(e)) => return Err(e),
    }
    let epoch = current + 1;
    if !epochs.claim(epoch, &owner_line(settings))? {
        // Another broker claimed it while holding the "same" lock: the locks of this
        // file system cannot be trusted. Let it be master.
        warn!("epoch {epoch} was claimed by another broker despite the lock; use lease mode on this file system");
        return Ok(None);
    }
    let mut m = mastership(env, settings, epochs, epoch, None);
    m.lock = Some(file);
    m.tasks.push(spawn_watcher(&m));
    Ok(Some(m))
}

fn try_lease(
    env: &Env,
    settings: &HaSettings,
    epochs: &Epochs,
    current: u64,
) -> io::Result<Option<FileMastership>> {
    let LockMode::Lease {
        lease_ms,
        renew_ms,
        skew_ms,
    } = settings.mode
    else {
        unreachable!("lease mode");
    };
    let file = LeaseFile::new(&settings.ha_dir());
    if let Some(lease) = file.read()? {
        if !lease.expired(wall_ms(), skew_ms) {
            return Ok(None);
        }
    }
    let epoch = current + 1;
    // The lease is reckoned from before the claim: whatever the claim and the first
    // write take comes off it.
    let started = env.clock.now();
    if !epochs.claim(epoch, &owner_line(settings))? {
        return Ok(None);
    }
    file.write(&Lease {
        epoch,
        owner: settings.node.clone(),
        renewed_ms: wall_ms(),
        lease_ms,
    })?;
    let lease = Arc::new(LeaseTimer::new(started, lease_ms, skew_ms));
    let mut m = mastership(env, settings, epochs, epoch, Some(lease));
    m.tasks.push(spawn_watcher(&m));
    m.tasks.push(spawn_renewer(&m, file, lease_ms, renew_ms));
    Ok(Some(m))
}

fn mastership(
    env: &Env,
    settings: &HaSettings,
    epochs: &Epochs,
    epoch: u64,
    lease: Option<Arc<LeaseTimer>>,
) -> FileMastership {
    FileMastership {
        epoch,
        epochs: epochs.clone(),
        settings: settings.clone(),
        lock: None,
        lost: CancellationToken::new(),
        reason: Arc::new(Mutex::new(None)),
        lease,
        clock: Arc::clone(&env.clock),
        tasks: Vec::new(),
    }
}

/// Cancels the mastership with `reason`, once.
fn lose(lost: &CancellationToken, reason: &Mutex<Option<String>>, why: String) {
    if lost.is_cancelled() {
        return;
    }
    warn!("mastership lost: {why}");
    if let Ok(mut r) = reason.lock() {
        r.get_or_insert(why);
    }
    lost.cancel();
}

/// Looks for a later claim every poll interval.
fn spawn_watcher(m: &FileMastership) -> JoinHandle<()> {
    let (epochs, epoch, lost, reason) = (
        m.epochs.clone(),
        m.epoch,
        m.lost.clone(),
        Arc::clone(&m.reason),
    );
    let poll = Duration::from_millis(m.settings.poll_ms.max(1));
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(poll) => {}
                _ = lost.cancelled() => return,
            }
            if epochs.superseded(epoch) {
                lose(&lost, &reason, superseded_reason(&epochs, epoch));
                return;
            }
        }
    })
}

/// Renews the lease every `renew_ms`; gives up mastership when another epoch holds
/// it, when renewals fail until it runs out, or when it ran out before a renewal
/// could start (the process was paused or the machine suspended that long).
fn spawn_renewer(
    m: &FileMastership,
    file: LeaseFile,
    lease_ms: u64,
    renew_ms: u64,
) -> JoinHandle<()> {
    let (epoch, node, lost, reason, clock) = (
        m.epoch,
        m.settings.node.clone(),
        m.lost.clone(),
        Arc::clone(&m.reason),
        Arc::clone(&m.clock),
    );
    let lease = m.lease.clone().expect("lease mode");
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(renew_ms.max(1))) => {}
                _ = lost.cancelled() => return,
            }
            let attempt_at = clock.now();
            if let Err(lapsed) = lease.may_renew(attempt_at) {
                let why = format!(
                    "lease of epoch {epoch} ran out {} ms before it could be renewed (process paused or machine suspended?)",
                    lapsed.late_by.as_millis()
                );
                lose(&lost, &reason, why);
                return;
            }
            let renewed = file.read().and_then(|current| match current {
                Some(l) if l.epoch > epoch => Err(io::Error::other(format!(
                    "the lease is held by epoch {} ({})",
                    l.epoch, l.owner
                ))),
                _ => file.write(&Lease {
                    epoch,
                    owner: node.clone(),
                    renewed_ms: wall_ms(),
                    lease_ms,
                }),
            });
            match renewed {
                Ok(()) => lease.renewed(attempt_at),
                Err(e) if e.kind() == io::ErrorKind::Other => {
                    lose(&lost, &reason, e.to_string());
                    return;
                }
                Err(e) => {
                    if !lease.holds(clock.now()) {
                        lose(&lost, &reason, format!("lease not renewed in time: {e}"));
                        return;
                    }
                    warn!("lease renewal failed (will retry): {e}");
                }
            }
        }
    })
}

fn superseded_reason(epochs: &Epochs, epoch: u64) -> String {
    format!(
        "superseded: epoch {} was claimed by {}",
        epoch + 1,
        epochs
            .owner(epoch + 1)
            .unwrap_or_else(|| "another broker".into())
    )
}

fn owner_line(settings: &HaSettings) -> String {
    format!(
        "{} pid {} at {} ms",
        settings.node,
        std::process::id(),
        wall_ms()
    )
}

fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(dir: &std::path::Path, mode: LockMode, node: &str) -> HaSettings {
        HaSettings {
            data_dir: dir.to_path_buf(),
            mode,
            poll_ms: 10,
            node: node.into(),
        }
    }

    const LEASE: LockMode = LockMode::Lease {
        lease_ms: 300,
        renew_ms: 50,
        skew_ms: 50,
    };

    #[tokio::test]
    async fn file_lock_makes_one_master_and_the_next_takes_over_on_release() {
        let tmp = tempfile::tempdir().unwrap();
        let (role, _) = tokio::sync::watch::channel(Role::Standalone);
        let stop = CancellationToken::new();
        let a = acquire(&settings(tmp.path(), LockMode::File, "a"), &role, &stop)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(a.epoch, 1);
        assert!(a.fence().check().is_ok());
        // b waits while a holds the lock.
        let b_settings = settings(tmp.path(), LockMode::File, "b");
        let (b_role, b_watch) = tokio::sync::watch::channel(Role::Standalone);
        let b = tokio::spawn(async move {
            let stop = CancellationToken::new();
            acquire(&b_settings, &b_role, &stop).await.unwrap().unwrap()
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(*b_watch.borrow(), Role::Slave { epoch: 1 });
        let fence = a.fence();
        a.step_down();
        let b = tokio::time::timeout(Duration::from_secs(5), b)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(b.epoch, 2);
        assert!(fence.check().is_err(), "the old master's fence refuses");
        assert!(b.fence().check().is_ok());
    }

    #[tokio::test]
    async fn a_later_claim_fences_and_cancels_the_master() {
        let tmp = tempfile::tempdir().unwrap();
        let (role, _) = tokio::sync::watch::channel(Role::Standalone);
        let stop = CancellationToken::new();
        let a = acquire(&settings(tmp.path(), LEASE, "a"), &role, &stop)
            .await
            .unwrap()
            .unwrap();
        let fence = a.fence();
        assert!(fence.check().is_ok());
        Epochs::open(tmp.path().join("ha"))
            .unwrap()
            .claim(a.epoch + 1, "intruder")
            .unwrap();
        let err = fence.check().unwrap_err();
        assert!(err.contains("intruder"), "{err}");
        let why = tokio::time::timeout(Duration::from_secs(5), a.lost())
            .await
            .unwrap();
        assert!(why.contains("superseded"), "{why}");
    }

    fn on_nfs(_: &Path) -> io::Result<i64> {
        Ok(0x6969)
    }

    #[tokio::test]
    async fn file_lock_mode_refuses_to_start_on_a_network_file_system() {
        let tmp = tempfile::tempdir().unwrap();
        let (role, role_rx) = tokio::sync::watch::channel(Role::Standalone);
        let stop = CancellationToken::new();
        let env = Env {
            fs_type: on_nfs,
            ..Env::real()
        };
        let refused = acquire_in(
            &env,
            &settings(tmp.path(), LockMode::File, "a"),
            &role,
            &stop,
        )
        .await
        .map(|m| m.map(|m| m.epoch))
        .unwrap_err();
        assert!(
            matches!(
                refused,
                AcquireError::NetworkFileSystem {
                    file_system: "NFS",
                    ..
                }
            ),
            "{refused:?}"
        );
        let text = refused.to_string();
        assert!(
            text.contains("NFS") && text.contains("--ha-lock lease"),
            "{text}"
        );
        assert!(text.contains(&tmp.path().display().to_string()), "{text}");
        // Nothing was claimed, and the broker never called itself anything but standalone.
        let epochs = Epochs::open(tmp.path().join("ha")).unwrap();
        assert_eq!(epochs.current().unwrap(), 0);
        assert_eq!(*role_rx.borrow(), Role::Standalone);
        // Lease mode on the same file system goes ahead.
        let m = acquire_in(&env, &settings(tmp.path(), LEASE, "a"), &role, &stop)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(m.epoch, 1);
    }

    #[test]
    fn the_lock_mode_check_refuses_only_file_locks_on_network_file_systems() {
        let dir = Path::new("/srv/store/ha");
        assert!(check_lock_mode(LockMode::File, dir, 0xEF53).is_ok());
        assert!(check_lock_mode(LockMode::File, dir, 0x6969).is_err());
        assert!(check_lock_mode(LockMode::File, dir, 0x6573_5546).is_err());
        assert!(check_lock_mode(LEASE, dir, 0x6969).is_ok());
    }

    /// A suspended machine: boot time jumps past the lease while monotonic time (and
    /// so Tokio's timers and `Instant`) barely moves. The master must count its
    /// lease as run out: the fence refuses at once, and the renewer, waking up,
    /// does not revive the lease but gives mastership up.
    #[tokio::test]
    async fn a_lease_that_ran_out_on_the_boot_clock_is_expired() {
        let tmp = tempfile::tempdir().unwrap();
        let (role, _) = tokio::sync::watch::channel(Role::Standalone);
        let stop = CancellationToken::new();
        let clock = Arc::new(crate::clock::ManualClock::default());
        let env = Env {
            clock: clock.clone(),
            ..Env::real()
        };
        let slow_renewals = LockMode::Lease {
            lease_ms: 300,
            renew_ms: 100,
            skew_ms: 50,
        };
        let m = acquire_in(
            &env,
            &settings(tmp.path(), slow_renewals, "a"),
            &role,
            &stop,
        )
        .await
        .unwrap()
        .unwrap();
        let fence = m.fence();
        assert!(fence.check().is_ok());
        let mono = std::time::Instant::now();
        clock.advance(Duration::from_millis(251));
        let err = fence.check().unwrap_err();
        assert!(err.contains("not renewed in time"), "{err}");
        assert!(
            mono.elapsed() < Duration::from_millis(250),
            "the monotonic clock must not have run the lease out by itself"
        );
        let why = tokio::time::timeout(Duration::from_secs(5), m.lost())
            .await
            .expect("the renewer gives mastership up");
        assert!(why.contains("ran out"), "{why}");
        assert!(fence.check().is_err(), "and the fence stays shut");
    }

    #[tokio::test]
    async fn a_lease_standby_waits_for_expiry_then_takes_over() {
        let tmp = tempfile::tempdir().unwrap();
        let (role, _) = tokio::sync::watch::channel(Role::Standalone);
        let stop = CancellationToken::new();
        let a = acquire(&settings(tmp.path(), LEASE, "a"), &role, &stop)
            .await
            .unwrap()
            .unwrap();
        // While a renews, b cannot take over.
        let b_settings = settings(tmp.path(), LEASE, "b");
        let b_stop = CancellationToken::new();
        let b_stop2 = b_stop.clone();
        let b = tokio::spawn(async move {
            let (role, _) = tokio::sync::watch::channel(Role::Standalone);
            acquire(&b_settings, &role, &b_stop2).await.unwrap()
        });
        tokio::time::sleep(Duration::from_millis(700)).await;
        assert!(!b.is_finished(), "b took over a renewed lease");
        // a stops renewing (as if paused): b takes over after the lease runs out.
        let fence = a.fence();
        for t in &a.tasks {
            t.abort();
        }
        let b = tokio::time::timeout(Duration::from_secs(5), b)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(b.epoch, 2);
        assert!(fence.check().is_err());
        b_stop.cancel();
    }
}
