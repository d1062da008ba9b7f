//! What the engine counts for monitoring (`/metrics`), readable without
//! taking the engine's lock.
//!
//! Events (a message enqueued, acknowledged, expired, dead-lettered) are
//! counted where they happen, under the engine's lock, in the plain
//! integers of a [`Tally`]: the lock is held there anyway, and nothing is
//! cheaper. Once a second the engine's sweep ([`crate::Broker::expire`])
//! adds the tally to the [`Metrics`] registry and samples the gauges
//! (depth, consumers, connections), taking the registry's own lock for
//! that moment; a scrape takes only the registry's lock. So a scrape never
//! waits for the engine, nor the engine for a scrape, and values are at
//! most a sweep old.

use std::collections::BTreeMap;

use foldhash::HashMap;
use parking_lot::Mutex;

use crate::destination::Destination;
use crate::identity::Protocol;

/// Destinations the registry keeps apart: beyond it, a destination's
/// counts go to [`Sample::untracked`] (destinations that no longer exist
/// are forgotten first). Names come from clients: this bounds what they
/// can make the registry hold.
pub const MAX_METRIC_DESTINATIONS: usize = 10_000;

/// Counts of one destination since the broker started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Messages that entered it (once per message for a topic).
    pub enqueued: u64,
    /// Messages consumers acknowledged (per subscription for a topic).
    pub dequeued: u64,
    /// Messages that expired in it.
    pub expired: u64,
    /// Messages moved from it to the dead-letter queue.
    pub dead_lettered: u64,
}

impl Counts {
    fn add(&mut self, other: Counts) {
        self.enqueued += other.enqueued;
        self.dequeued += other.dequeued;
        self.expired += other.expired;
        self.dead_lettered += other.dead_lettered;
    }
}

/// The gauges of a destination at the last sample.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Gauges {
    /// Messages waiting: in memory and paged out (a topic: in its
    /// subscriptions).
    pub depth: u64,
    /// Of those, how many wait in the store only.
    pub paged: u64,
    /// Delivered and not yet acknowledged.
    pub inflight: u64,
    /// Consumers attached (a topic: subscriptions).
    pub consumers: u64,
    /// Producers announced for it (OpenWire's; see `producer_registry`).
    pub producers: u64,
}

/// One destination in the registry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DestinationSample {
    pub counts: Counts,
    pub gauges: Gauges,
    /// It had a container (or subscriptions) at the last sample.
    pub live: bool,
}

/// Everything a scrape reads.
#[derive(Clone, Debug, Default)]
pub struct Sample {
    pub destinations: BTreeMap<Destination, DestinationSample>,
    /// Counts of destinations beyond [`MAX_METRIC_DESTINATIONS`].
    pub untracked: Counts,
    /// Open connections by protocol.
    pub connections: BTreeMap<Protocol, usize>,
    /// When the engine last sampled, ms since the Unix epoch.
    pub sampled_at_ms: u64,
}

/// What happened since the last sample, counted under the engine's lock.
#[derive(Default)]
pub(crate) struct Tally {
    counts: HashMap<Destination, Counts>,
}

impl Tally {
    fn at(&mut self, d: &Destination) -> &mut Counts {
        // Looked up by reference first: the common case allocates nothing.
        if !self.counts.contains_key(d) {
            self.counts.insert(d.clone(), Counts::default());
        }
        self.counts.get_mut(d).expect("inserted")
    }

    pub fn enqueued(&mut self, d: &Destination, n: u64) {
        self.at(d).enqueued += n;
    }

    pub fn dequeued(&mut self, d: &Destination) {
        self.at(d).dequeued += 1;
    }

    pub fn expired(&mut self, d: &Destination) {
        self.at(d).expired += 1;
    }

    pub fn dead_lettered(&mut self, d: &Destination) {
        self.at(d).dead_lettered += 1;
    }

    /// An operator took `n` messages out (a purge, a move, a retry):
    /// dequeued, as ActiveMQ counts them.
    pub fn removed(&mut self, d: &Destination, n: u64) {
        if n > 0 {
            self.at(d).dequeued += n;
        }
    }

    /// A deleted destination's counts go with it.
    pub fn forget(&mut self, d: &Destination) {
        self.counts.remove(d);
    }
}

/// The registry a scrape reads.
#[derive(Default)]
pub struct Metrics {
    sample: Mutex<Sample>,
}

impl Metrics {
    /// A copy of the last sample.
    pub fn sample(&self) -> Sample {
        self.sample.lock().clone()
    }

    /// Forgets a deleted destination (its counts start again from 0 if it
    /// is made again, as in ActiveMQ).
    pub(crate) fn forget(&self, d: &Destination) {
        self.sample.lock().destinations.remove(d);
    }

    /// Adds `tally` and replaces the gauges (the engine's sweep).
    pub(crate) fn publish(
        &self,
        tally: Tally,
        gauges: impl IntoIterator<Item = (Destination, Gauges)>,
        connections: BTreeMap<Protocol, usize>,
        now_ms: u64,
    ) {
        let mut s = self.sample.lock();
        let s = &mut *s;
        for d in s.destinations.values_mut() {
            d.gauges = Gauges::default();
            d.live = false;
        }
        // Destinations that may make room, found once if room is needed.
        let mut gone = None;
        for (d, g) in gauges {
            if let Some(entry) = entry(s, &mut gone, &d) {
                entry.gauges = g;
                entry.live = true;
            }
        }
        for (d, counts) in tally.counts {
            match entry(s, &mut gone, &d) {
                Some(entry) => entry.counts.add(counts),
                None => s.untracked.add(counts),
            }
        }
        // Temporary destinations are gone for good once their container is.
        s.destinations
            .retain(|d, sample| sample.live || !d.kind.is_temporary());
        s.connections = connections;
        s.sampled_at_ms = now_ms;
    }
}

/// The registry's entry of `d`, made if there is room: past the bound, a
/// destination that no longer exists makes room (its counts go to
/// `untracked`; `gone` lists them, found on first need); with none, `None`.
fn entry<'a>(
    s: &'a mut Sample,
    gone: &mut Option<Vec<Destination>>,
    d: &Destination,
) -> Option<&'a mut DestinationSample> {
    if !s.destinations.contains_key(d) {
        if s.destinations.len() >= MAX_METRIC_DESTINATIONS {
            let gone = gone.get_or_insert_with(|| {
                s.destinations
                    .iter()
                    .filter(|(_, sample)| !sample.live)
                    .map(|(d, _)| d.clone())
                    .collect()
            });
            // Made live since the list was made: not to be forgotten.
            let victim = loop {
                let candidate = gone.pop()?;
                if s.destinations.get(&candidate).is_some_and(|x| !x.live) {
                    break candidate;
                }
            };
            let forgotten = s.destinations.remove(&victim).expect("checked");
            s.untracked.add(forgotten.counts);
        }
        s.destinations
            .insert(d.clone(), DestinationSample::default());
    }
    s.destinations.get_mut(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn publish(m: &Metrics, tally: Tally, live: &[Destination]) {
        let gauges = live.iter().map(|d| (d.clone(), Gauges::default()));
        m.publish(tally, gauges, BTreeMap::new(), 1);
    }

    #[test]
    fn counts_add_up_across_samples_and_outlive_their_container() {
        let m = Metrics::default();
        let q = Destination::queue("q");
        let mut t = Tally::default();
        t.enqueued(&q, 3);
        t.dequeued(&q);
        publish(&m, t, std::slice::from_ref(&q));
        let mut t = Tally::default();
        t.enqueued(&q, 2);
        t.expired(&q);
        t.dead_lettered(&q);
        publish(&m, t, &[]);
        let s = m.sample();
        let got = s.destinations[&q];
        assert_eq!(
            got.counts,
            Counts {
                enqueued: 5,
                dequeued: 1,
                expired: 1,
                dead_lettered: 1
            }
        );
        assert!(!got.live, "no container at the last sample");
    }

    #[test]
    fn temporary_destinations_are_forgotten_with_their_container() {
        let m = Metrics::default();
        let tmp = Destination::new(crate::DestinationKind::TempQueue, "t1").unwrap();
        let mut t = Tally::default();
        t.enqueued(&tmp, 1);
        publish(&m, t, std::slice::from_ref(&tmp));
        assert!(m.sample().destinations.contains_key(&tmp));
        publish(&m, Tally::default(), &[]);
        assert!(!m.sample().destinations.contains_key(&tmp));
    }

    #[test]
    fn the_registry_is_bounded_and_keeps_every_count() {
        let m = Metrics::default();
        let mut t = Tally::default();
        for i in 0..MAX_METRIC_DESTINATIONS + 5 {
            t.enqueued(&Destination::queue(&format!("q{i}")), 1);
        }
        // All live: the last five have no room.
        let live: Vec<Destination> = (0..MAX_METRIC_DESTINATIONS + 5)
            .map(|i| Destination::queue(&format!("q{i}")))
            .collect();
        publish(&m, t, &live);
        let s = m.sample();
        assert_eq!(s.destinations.len(), MAX_METRIC_DESTINATIONS);
        let tracked: u64 = s.destinations.values().map(|d| d.counts.enqueued).sum();
        assert_eq!(
            tracked + s.untracked.enqueued,
            (MAX_METRIC_DESTINATIONS + 5) as u64
        );
        // Once some are gone, new ones take their places.
        let mut t = Tally::default();
        t.enqueued(&Destination::queue("new"), 1);
        publish(&m, t, &[Destination::queue("new")]);
        assert!(m
            .sample()
            .destinations
            .contains_key(&Destination::queue("new")));
    }
}
