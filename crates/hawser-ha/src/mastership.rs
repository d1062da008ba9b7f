//! Mastership as the rest of the broker sees it, whatever holds it: an
//! [`Election`] to wait in until this broker is master, a [`Mastership`] while
//! it is (its epoch, its [`Fence`], and a watch that fires when it is lost),
//! and stepping down. Today's implementation is a file lock or a lease on a
//! shared directory (`master`: [`FileElection`](crate::FileElection)); a store
//! with its own notion of an owner (a database, a replicated log) implements
//! the same two traits, and the server runs any of them the same way.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::master::{AcquireError, Role};

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
