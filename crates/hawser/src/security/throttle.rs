//! Slowing down repeated authentication failures from one address.
//!
//! Every failed login is answered only after a delay, which doubles with each
//! failure from the same address (from [`FAILURE_DELAY`] up to
//! [`MAX_FAILURE_DELAY`]) and is forgotten after [`FAILURE_MEMORY`] without
//! one, or at a success. Guessing passwords from one address thus costs
//! seconds per guess, and the connection it guesses on is busy meanwhile.
//! Sans-IO: the caller says what time it is and sleeps for what it is told.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// Delay before a first failure is answered.
pub const FAILURE_DELAY: Duration = Duration::from_millis(500);

/// Longest delay before a failure is answered.
pub const MAX_FAILURE_DELAY: Duration = Duration::from_secs(8);

/// How long an address's failures are remembered after its last one.
pub const FAILURE_MEMORY: Duration = Duration::from_secs(300);

/// Addresses whose failures are remembered at once: beyond it the one whose
/// last failure is oldest is forgotten, so that a spray of addresses cannot
/// grow the table.
pub const MAX_TRACKED_ADDRESSES: usize = 10_000;

/// One address's recent failures.
#[derive(Clone, Copy, Debug)]
struct Failures {
    /// How many in a row.
    count: u32,
    /// When the last one came.
    last: Instant,
}

/// Failures per address (see the module).
#[derive(Debug, Default)]
pub struct Throttle {
    by_address: Mutex<HashMap<IpAddr, Failures>>,
}

impl Throttle {
    /// Records a failure from `address` at `now`; returns how long to wait
    /// before answering it.
    pub fn failed(&self, address: IpAddr, now: Instant) -> Duration {
        let mut map = self.by_address.lock();
        if map.len() >= MAX_TRACKED_ADDRESSES && !map.contains_key(&address) {
            map.retain(|_, f| now.duration_since(f.last) < FAILURE_MEMORY);
            if map.len() >= MAX_TRACKED_ADDRESSES {
                if let Some(oldest) = map.iter().min_by_key(|(_, f)| f.last).map(|(a, _)| *a) {
                    map.remove(&oldest);
                }
            }
        }
        let f = map.entry(address).or_insert(Failures {
            count: 0,
            last: now,
        });
        if now.duration_since(f.last) >= FAILURE_MEMORY {
            f.count = 0;
        }
        f.count = f.count.saturating_add(1);
        f.last = now;
        let doublings = f.count.saturating_sub(1).min(16);
        FAILURE_DELAY
            .saturating_mul(1 << doublings)
            .min(MAX_FAILURE_DELAY)
    }

    /// Forgets `address`'s failures (it authenticated).
    pub fn succeeded(&self, address: IpAddr) {
        self.by_address.lock().remove(&address);
    }

    /// Addresses remembered now.
    pub fn tracked(&self) -> usize {
        self.by_address.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_per_address_up_to_the_cap_and_are_forgotten() {
        let t = Throttle::default();
        let a: IpAddr = "127.0.0.2".parse().unwrap();
        let b: IpAddr = "127.0.0.3".parse().unwrap();
        let now = Instant::now();
        let delays: Vec<u64> = (0..6)
            .map(|_| t.failed(a, now).as_millis() as u64)
            .collect();
        assert_eq!(delays, [500, 1000, 2000, 4000, 8000, 8000]);
        assert_eq!(
            t.failed(b, now),
            FAILURE_DELAY,
            "another address starts afresh"
        );
        assert_eq!(
            t.failed(a, now + FAILURE_MEMORY),
            FAILURE_DELAY,
            "forgotten after a quiet while"
        );
        t.failed(a, now + FAILURE_MEMORY);
        t.succeeded(a);
        assert_eq!(
            t.failed(a, now + FAILURE_MEMORY),
            FAILURE_DELAY,
            "and at a success"
        );
    }

    #[test]
    fn a_spray_of_addresses_stays_within_the_table() {
        let t = Throttle::default();
        let now = Instant::now();
        for i in 0..(MAX_TRACKED_ADDRESSES as u32 + 500) {
            t.failed(IpAddr::from(i.to_be_bytes()), now);
        }
        assert_eq!(t.tracked(), MAX_TRACKED_ADDRESSES);
    }
}
