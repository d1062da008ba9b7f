//! Memory held by messages, against the broker's limit and each destination's:
//! what producer flow control reads.
//!
//! Every message in memory (and every send buffered in an open transaction)
//! holds a [`MemoryCharge`]: its bytes counted in the broker-wide
//! [`MemoryUsage`] and in its destination's [`DestinationUsage`] until the last
//! holder drops it. A protocol session asks the destination's usage for room
//! before it reads a SEND's message into the engine, and holds (or refuses)
//! the producer while there is none.
//!
//! Two limits, so that one backlog never stops unrelated producers:
//! - a destination's own limit (ActiveMQ's per-destination `memoryLimit`,
//!   from its [`DestinationPolicy`]) holds only that destination's producers;
//! - the broker-wide limit (ActiveMQ's `memoryUsage`), once reached, holds only
//!   producers of destinations that hold at least their fair share of it (the
//!   limit divided by the destinations holding memory). A queue that filled
//!   the broker is held; a queue that holds little is not. Memory can then pass
//!   the broker-wide limit, but by at most about the limit again (each other
//!   destination stops at its share), plus one message per destination.
//!
//! Messages of queues are not held back: beyond the limits persistent ones
//! stay in the store, and non-persistent ones spill there while the store
//! keeps fewer than `max_temp_bytes` of them (see `paging`); producer flow
//! control holds the others (topics, transactions' sends, a store that keeps
//! nothing).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use crate::destination::Destination;

/// How often a held producer checks again even without a wake-up: the fair
/// share also grows when another destination empties, which wakes nobody.
const ROOM_POLL: Duration = Duration::from_millis(100);

/// Bytes held by messages in memory, broker-wide, against the limit that
/// triggers producer flow control.
#[derive(Debug)]
pub struct MemoryUsage {
    /// Bytes currently charged.
    used: AtomicU64,
    /// Above this, producers of destinations holding their fair share are held.
    limit: u64,
    /// Destinations whose usage is above zero: the fair share's denominator.
    active: AtomicU64,
    /// Woken when room may have appeared (a limit was crossed downwards).
    room: Notify,
}

impl MemoryUsage {
    /// A usage counter with the given limit in bytes.
    pub fn new(limit: u64) -> Arc<MemoryUsage> {
        Arc::new(MemoryUsage {
            used: AtomicU64::new(0),
            limit,
            active: AtomicU64::new(0),
            room: Notify::new(),
        })
    }

    /// Bytes currently held.
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    /// The configured limit.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// True when the broker-wide limit is reached.
    pub fn is_full(&self) -> bool {
        self.used() >= self.limit
    }

    /// Destinations holding memory now.
    pub fn active_destinations(&self) -> u64 {
        self.active.load(Ordering::Relaxed)
    }

    /// Waits until usage is under the broker-wide limit.
    pub async fn wait_for_room(&self) {
        loop {
            let notified = self.room.notified();
            if !self.is_full() {
                return;
            }
            notified.await;
        }
    }
}

/// What a destination allows: ActiveMQ's per-destination policy entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DestinationPolicy {
    /// Bytes of messages the destination may hold in memory before its
    /// producers are held (ActiveMQ's `memoryLimit`).
    pub memory_limit_bytes: u64,
    /// Whether a producer that finds no room is held (`Some(true)`) or refused
    /// with an error (`Some(false)`, ActiveMQ's `producerFlowControl=false`
    /// with `sendFailIfNoSpace`); `None` leaves it to the listener's setting.
    pub producer_flow_control: Option<bool>,
}

impl Default for DestinationPolicy {
    fn default() -> Self {
        DestinationPolicy {
            memory_limit_bytes: u64::MAX,
            producer_flow_control: None,
        }
    }
}

/// Which limit holds a producer back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Full {
    /// The destination's own memory limit.
    Destination,
    /// The broker-wide memory limit, and this destination holds its share of it.
    Broker,
}

impl Full {
    /// A short name for logs and error messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Full::Destination => "destination memory",
            Full::Broker => "memory",
        }
    }
}

/// Bytes held by one destination's messages.
#[derive(Debug)]
pub struct DestinationUsage {
    /// The destination counted.
    destination: Destination,
    /// Bytes currently charged to this destination.
    used: AtomicU64,
    /// Its limits.
    policy: DestinationPolicy,
    /// The broker-wide usage it is part of.
    global: Arc<MemoryUsage>,
    /// Set while its queue has non-persistent messages spilled to the store,
    /// so that later ones spill too (see `paging`): what the temporary
    /// store's limit holds, whatever the memory.
    spilling: AtomicBool,
}

impl DestinationUsage {
    /// The counter of `destination` under `global`.
    pub fn new(
        destination: Destination,
        global: &Arc<MemoryUsage>,
        policy: DestinationPolicy,
    ) -> Arc<DestinationUsage> {
        Arc::new(DestinationUsage {
            destination,
            used: AtomicU64::new(0),
            policy,
            global: Arc::clone(global),
            spilling: AtomicBool::new(false),
        })
    }

    /// Whether its queue has spilled messages in the store now.
    pub fn is_spilling(&self) -> bool {
        self.spilling.load(Ordering::Relaxed)
    }

    /// Says whether its queue has spilled messages in the store (the engine,
    /// as they go there and are read back).
    pub fn set_spilling(&self, spilling: bool) {
        self.spilling.store(spilling, Ordering::Relaxed);
    }

    /// The destination counted.
    pub fn destination(&self) -> &Destination {
        &self.destination
    }

    /// Bytes currently held by the destination.
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    /// The destination's policy.
    pub fn policy(&self) -> DestinationPolicy {
        self.policy
    }

    /// `Ok` if a producer of this destination may send now, else which limit holds it.
    pub fn room(&self) -> Result<(), Full> {
        self.room_times(1)
    }

    /// [`DestinationUsage::room`] with every limit `n` times as large: how
    /// far paging may read ahead past the limits (see `paging`).
    pub fn room_times(&self, n: u64) -> Result<(), Full> {
        let used = self.used();
        if used >= self.policy.memory_limit_bytes.saturating_mul(n) {
            return Err(Full::Destination);
        }
        let limit = self.global.limit.saturating_mul(n);
        if self.global.used() >= limit {
            let active = self.global.active_destinations().max(1);
            if used.saturating_mul(active) >= limit {
                return Err(Full::Broker);
            }
        }
        Ok(())
    }

    /// Waits until [`DestinationUsage::room`] is `Ok`.
    pub async fn wait_for_room(&self) {
        loop {
            let notified = self.global.room.notified();
            if self.room().is_ok() {
                return;
            }
            let _ = tokio::time::timeout(ROOM_POLL, notified).await;
        }
    }
}

/// Bytes charged to the broker and a destination, released on drop: held by
/// every message in memory and every send buffered in a transaction.
#[derive(Debug)]
pub struct MemoryCharge {
    /// The broker-wide usage.
    global: Arc<MemoryUsage>,
    /// The destination's, if the charge belongs to one.
    destination: Option<Arc<DestinationUsage>>,
    /// Bytes charged.
    bytes: u64,
}

impl MemoryCharge {
    /// Charges `bytes` to `global` and to `destination`.
    pub fn new(
        global: &Arc<MemoryUsage>,
        destination: Option<&Arc<DestinationUsage>>,
        bytes: u64,
    ) -> MemoryCharge {
        global.used.fetch_add(bytes, Ordering::Relaxed);
        if let Some(d) = destination {
            if d.used.fetch_add(bytes, Ordering::Relaxed) == 0 && bytes > 0 {
                global.active.fetch_add(1, Ordering::Relaxed);
            }
        }
        MemoryCharge {
            global: Arc::clone(global),
            destination: destination.map(Arc::clone),
            bytes,
        }
    }

    /// Bytes charged.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The destination's usage it counts against, if any.
    pub fn destination(&self) -> Option<&Arc<DestinationUsage>> {
        self.destination.as_ref()
    }

    /// Whether what this charge counts against has room (see [`DestinationUsage::room`]).
    pub fn room(&self) -> Result<(), Full> {
        match &self.destination {
            Some(d) => d.room(),
            None if self.global.is_full() => Err(Full::Broker),
            None => Ok(()),
        }
    }
}

impl Drop for MemoryCharge {
    fn drop(&mut self) {
        let global = &self.global;
        let before = global.used.fetch_sub(self.bytes, Ordering::Relaxed);
        // While the broker is full, any release can give some destination its
        // share back; otherwise only a destination falling under its own limit can.
        let mut wake = before >= global.limit;
        if let Some(d) = &self.destination {
            let was = d.used.fetch_sub(self.bytes, Ordering::Relaxed);
            if was == self.bytes && self.bytes > 0 {
                global.active.fetch_sub(1, Ordering::Relaxed);
            }
            wake |= was >= d.policy.memory_limit_bytes
                && was - self.bytes < d.policy.memory_limit_bytes;
        }
        if wake {
            global.room.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(limit: u64) -> DestinationPolicy {
        DestinationPolicy {
            memory_limit_bytes: limit,
            producer_flow_control: None,
        }
    }

    #[test]
    fn charges_count_in_both_and_are_released() {
        let global = MemoryUsage::new(1000);
        let d = DestinationUsage::new(
            Destination::queue("d"),
            &global,
            DestinationPolicy::default(),
        );
        let c = MemoryCharge::new(&global, Some(&d), 300);
        assert_eq!(
            (global.used(), d.used(), global.active_destinations()),
            (300, 300, 1)
        );
        let c2 = MemoryCharge::new(&global, Some(&d), 200);
        assert_eq!(global.active_destinations(), 1);
        drop(c);
        drop(c2);
        assert_eq!(
            (global.used(), d.used(), global.active_destinations()),
            (0, 0, 0)
        );
    }

    #[test]
    fn a_destination_limit_holds_only_that_destination() {
        let global = MemoryUsage::new(10_000);
        let big = DestinationUsage::new(Destination::queue("d"), &global, policy(500));
        let other = DestinationUsage::new(Destination::queue("d"), &global, policy(500));
        let _c = MemoryCharge::new(&global, Some(&big), 500);
        assert_eq!(big.room(), Err(Full::Destination));
        assert_eq!(other.room(), Ok(()));
    }

    #[test]
    fn a_full_broker_holds_only_destinations_at_their_share() {
        let global = MemoryUsage::new(1000);
        let big = DestinationUsage::new(
            Destination::queue("d"),
            &global,
            DestinationPolicy::default(),
        );
        let other = DestinationUsage::new(
            Destination::queue("d"),
            &global,
            DestinationPolicy::default(),
        );
        let _b = MemoryCharge::new(&global, Some(&big), 1000);
        assert!(global.is_full());
        assert_eq!(big.room(), Err(Full::Broker));
        assert_eq!(
            other.room(),
            Ok(()),
            "an empty destination is never held by another's backlog"
        );
        // Two destinations hold memory: each may hold half of the limit.
        let o = MemoryCharge::new(&global, Some(&other), 499);
        assert_eq!(other.room(), Ok(()));
        let o2 = MemoryCharge::new(&global, Some(&other), 1);
        assert_eq!(other.room(), Err(Full::Broker));
        drop((o, o2));
        assert_eq!(other.room(), Ok(()));
    }

    #[tokio::test]
    async fn a_held_producer_resumes_when_its_destination_drains() {
        let global = MemoryUsage::new(u64::MAX);
        let d = DestinationUsage::new(Destination::queue("d"), &global, policy(100));
        let c = MemoryCharge::new(&global, Some(&d), 100);
        let waiter = {
            let d = Arc::clone(&d);
            tokio::spawn(async move { d.wait_for_room().await })
        };
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        drop(c);
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("woken when the destination fell under its limit")
            .unwrap();
    }
}
