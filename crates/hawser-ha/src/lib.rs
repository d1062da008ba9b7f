//! Master/slave on a shared store: which of the brokers pointed at one data
//! directory may write it, and how the others know when to take over.
//!
//! ```text
//! epochs       claims of epoch numbers that only grow (one winner per epoch, by hard link)
//! lease        the lease file for stores whose locks cannot be trusted (network file systems)
//! lease_timer  the master's own lease deadline, pure: renewals in, "still holds?" out
//! clock        CLOCK_BOOTTIME, which the lease is timed with (it counts through a suspend)
//! fstype       which file system the store is on: network ones refuse the file-lock mode
//! mastership   the interface: an Election to wait in, a Mastership while master, its Fence
//! master       today's implementation: becoming master by file lock or lease, staying
//!              master, the fence, stepping down
//! ```
//!
//! The journal does the other half (see `hawser_journal`'s epoch directories): a
//! new master inherits the segments sealed and writes only in its own directory,
//! and its writer asks the master's [`Fence`] (as its `ConfirmCheck`) before
//! confirming.

mod clock;
mod epochs;
mod fstype;
mod lease;
mod lease_timer;
mod master;
mod mastership;

pub use clock::{boot_now, BootClock, BootInstant, Clock};
pub use epochs::Epochs;
pub use fstype::{file_system_type, network_file_system};
pub use lease::{Lease, LeaseFile, LEASE_FILE};
pub use master::{
    acquire, check_lock_mode, FileElection, FileMastership, HaSettings, LockMode,
    DEFAULT_CLOCK_SKEW_MS, DEFAULT_LEASE_MS, DEFAULT_POLL_MS, DEFAULT_RENEW_MS, LOCK_FILE,
};
pub use mastership::{AcquireError, Acquired, Election, Fence, Mastership, Role};
