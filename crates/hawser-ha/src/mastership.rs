//! Mastership as the rest of the broker sees it, whatever holds it: an
//! [`Election`] to wait in until this broker is master, a [`Mastership`] while
//! it is (its epoch, its [`Fence`], and a watch that fires when it is lost),
//! and stepping down. Today's implementation is a file lock or a lease on a
//! shared directory (`master`: [`FileElection`](crate::FileElection)); a store
//! with its own notion of an owner (a database, a replicated log) implements
//! the same two traits, and the server runs any of them the same way. What a
//! broker is meanwhile ([`Role`]) and why it could not wait
//! ([`AcquireError`]) are the interface's too.

use std::fmt;
use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// The check a store makes after its writes reached the disk (or the
/// database, or a majority) and before it confirms them: `Err(reason)` once
/// this broker is no longer master, so that a deposed master confirms nothing
/// its successor may not have.
#[derive(Clone)]
pub struct Fence(Arc<dyn Fn() -> Result<(), String> + Send + Sync>);

impl Fence {
    /// A fence from a check.
    pub fn new(check: impl Fn() -> Result<(), String> + Send + Sync + 'static) -> Fence {
        Fence(Arc::new(check))
    }

    /// Runs the check: `Err(reason)` once the store has another owner.
    pub fn check(&self) -> Result<(), String> {
        (self.0)()
    }
}

impl fmt::Debug for Fence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Fence")
    }
}

/// Being master: held until lost or given up.
pub trait Mastership: Send + Sync {
    /// The epoch (fencing token) this broker is master of; it only grows.
    fn epoch(&self) -> u64;
    /// The check a store makes before each confirmation.
    fn fence(&self) -> Fence;
    /// Cancelled when mastership is lost (a successor claimed a later epoch, a
    /// lease ran out): what depends on it stops.
    fn watch(&self) -> CancellationToken;
    /// Why mastership was lost, once it was.
    fn lost_reason(&self) -> Option<String>;
    /// Gives mastership up, so that a standby may take over at once.
    fn step_down(self: Box<Self>);
}

/// What [`Election::acquire`] returns: mastership, or `None` if shut down first.
pub type Acquired<'a> =
    Pin<Box<dyn Future<Output = Result<Option<Box<dyn Mastership>>, AcquireError>> + Send + 'a>>;

/// How a broker becomes master.
pub trait Election: Send + Sync {
    /// Waits until this broker is master (or `shutdown` is cancelled:
    /// `Ok(None)`), reporting its role as a standby through `role` meanwhile.
    /// Reporting [`Role::Master`] is the caller's, once it serves.
    fn acquire<'a>(
        &'a self,
        role: &'a watch::Sender<Role>,
        shutdown: &'a CancellationToken,
    ) -> Acquired<'a>;
}

/// What a broker of a shared store is, for its log and status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Role {
    /// Not part of a shared store.
    Standalone,
    /// Waiting to become master; `epoch` is the master's as last seen.
    Slave {
        /// The current master's epoch (0: none yet).
        epoch: u64,
    },
    /// Serving, as master of `epoch`.
    Master {
        /// This master's epoch.
        epoch: u64,
    },
}

impl Role {
    /// `standalone`, `slave` or `master`.
    pub fn name(&self) -> &'static str {
        match self {
            Role::Standalone => "standalone",
            Role::Slave { .. } => "slave",
            Role::Master { .. } => "master",
        }
    }

    /// The epoch the role refers to.
    pub fn epoch(&self) -> u64 {
        match self {
            Role::Standalone => 0,
            Role::Slave { epoch } | Role::Master { epoch } => *epoch,
        }
    }
}

/// Why a broker could not wait for mastership of a shared store.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum AcquireError {
    /// File-lock mode on a network file system: its locks cannot keep one master.
    #[error(
        "the shared store {dir} is on {file_system}, a network file system whose file locks \
         cannot be trusted to keep a single master: use lease mode (--ha-lock lease, or \
         lock = \"lease\" in [ha]) on every broker of this store (docs/failover.md)"
    )]
    NetworkFileSystem {
        /// The store's `ha/` directory.
        dir: PathBuf,
        /// What the file system was recognised as.
        file_system: &'static str,
    },
    /// The `ha/` directory could not be used.
    #[error("shared store {dir}: {source}")]
    Io {
        /// The store's `ha/` directory.
        dir: PathBuf,
        /// What failed.
        #[source]
        source: io::Error,
    },
}
