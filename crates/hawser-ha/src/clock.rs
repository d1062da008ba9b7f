//! The clock a master times its lease with: `CLOCK_BOOTTIME`.
//!
//! Why not [`std::time::Instant`]: on Linux it reads `CLOCK_MONOTONIC`, which stops
//! while the machine is suspended. A master whose machine slept for a minute would
//! wake up believing its lease had a minute less behind it than it has, and confirm
//! writes a standby may already have taken over from. `CLOCK_BOOTTIME` is the same
//! clock except that it goes on counting through a suspension, so every lease
//! deadline, renewal and expiry computed on it stays true.
//!
//! The lease logic takes the time from a [`Clock`], so tests can move it by hand
//! (a suspension is boot time jumping ahead while monotonic time does not).

use std::fmt;
use std::time::Duration;

/// A point in time on `CLOCK_BOOTTIME`: nanoseconds since the machine booted,
/// suspensions included. Only differences between two of them mean anything.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BootInstant {
    /// Nanoseconds since boot.
    nanos: u64,
}

impl BootInstant {
    /// The instant `nanos` nanoseconds after boot.
    pub const fn from_nanos(nanos: u64) -> BootInstant {
        BootInstant { nanos }
    }

    /// Nanoseconds since boot.
    pub const fn as_nanos(self) -> u64 {
        self.nanos
    }

    /// `self + d`, saturating at the end of time.
    #[must_use]
    pub fn saturating_add(self, d: Duration) -> BootInstant {
        let add = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        BootInstant {
            nanos: self.nanos.saturating_add(add),
        }
    }

    /// How long after `earlier` this is; zero if it is not after it.
    pub fn saturating_duration_since(self, earlier: BootInstant) -> Duration {
        Duration::from_nanos(self.nanos.saturating_sub(earlier.nanos))
    }
}

/// Where the lease logic reads the time.
pub trait Clock: Send + Sync + fmt::Debug {
    /// Now.
    fn now(&self) -> BootInstant;
}

/// The real clock: `clock_gettime(CLOCK_BOOTTIME)`.
#[derive(Clone, Copy, Debug, Default)]
pub struct BootClock;

impl Clock for BootClock {
    fn now(&self) -> BootInstant {
        boot_now()
    }
}

/// `CLOCK_BOOTTIME` now.
pub fn boot_now() -> BootInstant {
    let ts = rustix::time::clock_gettime(rustix::time::ClockId::Boottime);
    // Both fields are non-negative for this clock; a negative one would be a kernel bug.
    let secs = u64::try_from(ts.tv_sec).unwrap_or(0);
    let nanos = u64::try_from(ts.tv_nsec).unwrap_or(0);
    BootInstant::from_nanos(secs.saturating_mul(1_000_000_000).saturating_add(nanos))
}

/// A clock that moves only when told: a suspension in a test is `advance`.
#[cfg(test)]
#[derive(Debug, Default)]
pub(crate) struct ManualClock {
    /// Nanoseconds since the (pretend) boot.
    nanos: std::sync::atomic::AtomicU64,
}

#[cfg(test)]
impl ManualClock {
    /// Moves the clock forward by `d`.
    pub(crate) fn advance(&self, d: Duration) {
        let add = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.nanos
            .fetch_add(add, std::sync::atomic::Ordering::SeqCst);
    }
}

#[cfg(test)]
impl Clock for ManualClock {
    fn now(&self) -> BootInstant {
        BootInstant::from_nanos(self.nanos.load(std::sync::atomic::Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boot_time_moves_forward_with_monotonic_time() {
        let (b0, m0) = (boot_now(), std::time::Instant::now());
        std::thread::sleep(Duration::from_millis(20));
        let (b1, m1) = (boot_now(), std::time::Instant::now());
        let boot = b1.saturating_duration_since(b0);
        let mono = m1 - m0;
        assert!(boot >= Duration::from_millis(20), "{boot:?}");
        // Without a suspension in between the two clocks agree closely.
        let diff = boot.abs_diff(mono);
        assert!(
            diff < Duration::from_millis(5),
            "boot {boot:?} vs monotonic {mono:?}"
        );
    }

    #[test]
    fn arithmetic_saturates() {
        let t = BootInstant::from_nanos(5);
        assert_eq!(t.saturating_add(Duration::from_nanos(3)).as_nanos(), 8);
        assert_eq!(
            BootInstant::from_nanos(u64::MAX - 1)
                .saturating_add(Duration::from_secs(1))
                .as_nanos(),
            u64::MAX
        );
        assert_eq!(
            t.saturating_duration_since(BootInstant::from_nanos(9)),
            Duration::ZERO
        );
    }

    #[test]
    fn a_manual_clock_moves_only_when_told() {
        let c = ManualClock::default();
        let t0 = c.now();
        assert_eq!(c.now(), t0);
        c.advance(Duration::from_secs(60));
        assert_eq!(
            c.now().saturating_duration_since(t0),
            Duration::from_secs(60)
        );
    }
}
