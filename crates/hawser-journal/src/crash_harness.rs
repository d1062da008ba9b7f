//! The harness of the crash tests (this crate's `crash_tests` and the journal
//! store's): seeds, a case runner that names the seed of a failure, and the
//! ways a phase ends on the simulated disk ([`SimDisk`]). Built for tests and
//! with the `sim-disk` feature.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::sim_disk::{Rng, SimDisk};

/// Cases per run unless `HAWSER_CRASH_CASES` says otherwise.
const DEFAULT_CASES: u64 = 300;

/// What the runs did, to make sure they exercised what they claim to.
#[derive(Default)]
pub struct Coverage {
    /// Opens of the journal.
    pub opens: AtomicU64,
    /// Torn tails recovery cut.
    pub torn_cuts: AtomicU64,
    /// Phases that ended in a power loss.
    pub power_losses: AtomicU64,
    /// Phases that ended in a process crash.
    pub process_crashes: AtomicU64,
    /// Recoveries a crash interrupted.
    pub crashed_recoveries: AtomicU64,
    /// Records confirmed before a crash.
    pub confirmed: AtomicU64,
    /// Reclaim rounds that deleted segments (store cases).
    pub reclaims: AtomicU64,
}

impl Coverage {
    /// Adds `n` to one of the counters.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

/// Seeds of the cases to run: one from `HAWSER_CRASH_SEED`, or `HAWSER_CRASH_CASES`
/// (default [`DEFAULT_CASES`]) from a base that changes every run.
pub fn seeds(salt: u64) -> Vec<u64> {
    if let Ok(seed) = std::env::var("HAWSER_CRASH_SEED") {
        return vec![seed.parse().expect("HAWSER_CRASH_SEED is a number")];
    }
    let cases = std::env::var("HAWSER_CRASH_CASES")
        .map(|n| n.parse().expect("HAWSER_CRASH_CASES is a number"))
        .unwrap_or(DEFAULT_CASES);
    let base = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
        ^ salt;
    let mut rng = Rng::new(base);
    (0..cases).map(|_| rng.next_u64()).collect()
}

/// Runs `case` for every seed, naming the seed of a failure.
pub fn run_cases(salt: u64, case: impl Fn(u64) + std::panic::RefUnwindSafe) {
    for seed in seeds(salt) {
        if let Err(panic) = std::panic::catch_unwind(|| case(seed)) {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default();
            panic!("crash case failed; rerun with HAWSER_CRASH_SEED={seed}: {message}");
        }
    }
}

/// How a phase of a case ends.
#[derive(Clone, Copy, Debug)]
pub enum Ending {
    /// The machine loses power: unsynced writes may be lost or torn.
    PowerLoss,
    /// The process dies; the page cache survives.
    ProcessCrash,
    /// The journal is closed.
    Close,
}

impl Ending {
    /// A random ending, power losses most often.
    pub fn pick(rng: &mut Rng) -> Ending {
        match rng.below(10) {
            0..6 => Ending::PowerLoss,
            6..9 => Ending::ProcessCrash,
            _ => Ending::Close,
        }
    }
}

/// Ends a phase: the disk the next phase opens.
pub fn end_phase(disk: SimDisk, ending: Ending, rng: &mut Rng, coverage: &Coverage) -> SimDisk {
    match ending {
        Ending::PowerLoss => {
            Coverage::add(&coverage.power_losses, 1);
            disk.power_loss(rng)
        }
        Ending::ProcessCrash => {
            Coverage::add(&coverage.process_crashes, 1);
            disk.restart();
            disk
        }
        Ending::Close => {
            disk.restart();
            disk
        }
    }
}
