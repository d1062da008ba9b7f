//! The master's own reckoning of its lease, on the boot clock (see `clock`).
//!
//! A pure state machine: callers pass the time. The master may confirm writes only
//! while its last successful renewal is younger than `lease_ms - skew_ms`, measured
//! from when that renewal *started* (the write may have reached the store at any
//! moment after). A renewal that starts after the lease already ran out does not
//! revive it: a standby may have taken the store over meanwhile, and on a network
//! file system this master may not yet see the new claim, so it must give up.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::clock::BootInstant;

/// Until when a master's lease holds, as its renewals succeed.
#[derive(Debug)]
pub(crate) struct LeaseTimer {
    /// How long past the start of a renewal the master trusts it: the lease
    /// duration less the allowed clock skew.
    trusted: Duration,
    /// End of the lease, as [`BootInstant`] nanoseconds; only moves forward.
    valid_until: AtomicU64,
}

/// A renewal started after the lease had already run out.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Lapsed {
    /// How long before the renewal started the lease ran out.
    pub late_by: Duration,
}

impl LeaseTimer {
    /// The lease of a master whose claim (epoch claim and first lease write) started
    /// at `started`.
    pub(crate) fn new(started: BootInstant, lease_ms: u64, skew_ms: u64) -> LeaseTimer {
        let trusted = Duration::from_millis(lease_ms.saturating_sub(skew_ms));
        LeaseTimer {
            trusted,
            valid_until: AtomicU64::new(started.saturating_add(trusted).as_nanos()),
        }
    }

    /// When the lease runs out unless renewed.
    pub(crate) fn valid_until(&self) -> BootInstant {
        BootInstant::from_nanos(self.valid_until.load(Ordering::SeqCst))
    }

    /// Whether the lease still holds at `now`.
    pub(crate) fn holds(&self, now: BootInstant) -> bool {
        now <= self.valid_until()
    }

    /// Whether a renewal may be attempted at `now`: not once the lease ran out.
    ///
    /// # Errors
    /// [`Lapsed`] if the lease ran out before `now`.
    pub(crate) fn may_renew(&self, now: BootInstant) -> Result<(), Lapsed> {
        let until = self.valid_until();
        if now <= until {
            Ok(())
        } else {
            Err(Lapsed {
                late_by: now.saturating_duration_since(until),
            })
        }
    }

    /// A renewal that started at `started` (and was checked with
    /// [`may_renew`](Self::may_renew) then) reached the store: the lease holds until
    /// `started + lease - skew`.
    pub(crate) fn renewed(&self, started: BootInstant) {
        let until = started.saturating_add(self.trusted).as_nanos();
        self.valid_until.fetch_max(until, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at_ms(ms: u64) -> BootInstant {
        BootInstant::from_nanos(ms * 1_000_000)
    }

    #[test]
    fn holds_for_lease_minus_skew_from_the_start_of_the_claim() {
        let t = LeaseTimer::new(at_ms(1_000), 3_000, 500);
        assert_eq!(t.valid_until(), at_ms(3_500));
        assert!(t.holds(at_ms(1_000)));
        assert!(t.holds(at_ms(3_500)));
        assert!(!t.holds(at_ms(3_501)));
    }

    #[test]
    fn a_renewal_extends_from_its_start_and_never_shortens() {
        let t = LeaseTimer::new(at_ms(0), 3_000, 500);
        assert_eq!(t.may_renew(at_ms(2_000)), Ok(()));
        t.renewed(at_ms(2_000));
        assert_eq!(t.valid_until(), at_ms(4_500));
        // A slow renewal that started earlier and finished later moves nothing back.
        t.renewed(at_ms(1_000));
        assert_eq!(t.valid_until(), at_ms(4_500));
    }

    #[test]
    fn a_lapsed_lease_is_not_revived() {
        let t = LeaseTimer::new(at_ms(0), 3_000, 500);
        assert_eq!(
            t.may_renew(at_ms(2_600)),
            Err(Lapsed {
                late_by: Duration::from_millis(100)
            })
        );
        assert!(!t.holds(at_ms(2_600)));
    }

    #[test]
    fn skew_at_least_the_lease_means_never_trusted() {
        let t = LeaseTimer::new(at_ms(10), 500, 500);
        assert!(t.holds(at_ms(10)));
        assert!(!t.holds(at_ms(11)));
    }
}
