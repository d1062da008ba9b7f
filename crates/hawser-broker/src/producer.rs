//! Duplicate detection of resent messages: which sequence numbers of each
//! producer the store has accepted.
//!
//! A client numbers each producer's sends (`ProducerRef`) so that a resend
//! after a failover, whose first copy the broker may or may not have stored,
//! is confirmed without being stored twice. The rule that keeps this safe:
//! **a message is dropped as a duplicate only if the broker stored that very
//! (producer, sequence) before.** Hence:
//! - a window of the last [`WINDOW_SEQS`] sequence numbers, one bit each, not a
//!   high-water mark: sends arrive out of order (a transaction's sends are
//!   stored at its COMMIT, after plain sends numbered later), and a gap is a
//!   send not stored yet, not one to drop (as ActiveMQ's producer audit);
//! - a sequence number older than the window is accepted: the broker cannot
//!   prove it stored it, and a second copy is better than a lost message;
//! - the window is marked only after the store accepted the record;
//! - a producer id is scoped to the identity of its connection: the client id
//!   (exclusive among live connections, and what a failover client reconnects
//!   with), or, for a connection without one, the connection itself. No
//!   connection can mark another identity's windows.
//!
//! Windows of client-id scoped producers are persisted (`StoreOp::ProducerSeen`
//! per stored message, `StoreOp::ProducerWindow` when a store copies them
//! forward) and survive restarts; a connection's own windows die with it.

use std::collections::BTreeMap;
use std::sync::Arc;

use foldhash::HashMap;

use crate::message::ProducerRef;

/// Sequence numbers a window remembers, below its highest.
pub const WINDOW_SEQS: u64 = 2048;
/// 64-bit words of a window's bitmap.
pub const WINDOW_WORDS: usize = (WINDOW_SEQS / 64) as usize;
/// Highest sequence number a producer may use (ActiveMQ's are Java longs).
pub const MAX_PRODUCER_SEQ: u64 = i64::MAX as u64;
/// Longest producer id accepted, in bytes: ids are stored with every mark.
pub const MAX_PRODUCER_ID_BYTES: usize = 256;

impl ProducerRef {
    /// Checks a producer reference a client gave: a sequence number in
    /// 1..=[`MAX_PRODUCER_SEQ`], an id of 1 to [`MAX_PRODUCER_ID_BYTES`] bytes.
    pub fn check(&self) -> Result<(), InvalidProducer> {
        if self.seq == 0 || self.seq > MAX_PRODUCER_SEQ {
            return Err(InvalidProducer::Seq(self.seq));
        }
        if self.id.is_empty() || self.id.len() > MAX_PRODUCER_ID_BYTES {
            return Err(InvalidProducer::IdLength);
        }
        Ok(())
    }
}

/// Why a producer reference cannot be used.
#[non_exhaustive]
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum InvalidProducer {
    /// The sequence number is 0 or above [`MAX_PRODUCER_SEQ`].
    #[error("sequence number {0} is outside 1..={MAX_PRODUCER_SEQ}")]
    Seq(u64),
    /// The id is empty or longer than [`MAX_PRODUCER_ID_BYTES`].
    #[error("producer id must have 1 to {MAX_PRODUCER_ID_BYTES} bytes")]
    IdLength,
}

/// A persisted producer: its id within the identity (user and client id)
/// that owns it. The user is part of the key so that another user who
/// connects with the same client id (while its owner is away) marks windows
/// of its own: it can never make the owner's genuine sends look like resends.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProducerKey {
    /// The authenticated user of the connections that use it; `None` for
    /// anonymous connections.
    pub owner: Option<Arc<str>>,
    /// The JMS client id of the connections that use it.
    pub client_id: Arc<str>,
    /// The producer id chosen by the client.
    pub producer: Arc<str>,
}

/// The sequence numbers of one producer the store accepted, within
/// [`WINDOW_SEQS`] of the highest.
#[derive(Clone, PartialEq, Eq)]
pub struct SeqWindow {
    /// The highest sequence number marked (0: none yet).
    high: u64,
    /// Bit `s % WINDOW_SEQS` is set when `s`, within the window, was marked.
    bits: Box<[u64; WINDOW_WORDS]>,
}

impl Default for SeqWindow {
    fn default() -> Self {
        SeqWindow {
            high: 0,
            bits: Box::new([0; WINDOW_WORDS]),
        }
    }
}

impl std::fmt::Debug for SeqWindow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let marked: u32 = self.bits.iter().map(|w| w.count_ones()).sum();
        f.debug_struct("SeqWindow")
            .field("high", &self.high)
            .field("marked", &marked)
            .finish()
    }
}

impl SeqWindow {
    /// An empty window.
    pub fn new() -> SeqWindow {
        SeqWindow::default()
    }

    /// Rebuilds a window from its parts (a store's snapshot); `None` if the
    /// bitmap has the wrong length.
    pub fn from_parts(high: u64, words: &[u64]) -> Option<SeqWindow> {
        let bits: [u64; WINDOW_WORDS] = words.try_into().ok()?;
        Some(SeqWindow {
            high,
            bits: Box::new(bits),
        })
    }

    /// The highest sequence number marked.
    pub fn high(&self) -> u64 {
        self.high
    }

    /// The bitmap, for a store's snapshot.
    pub fn words(&self) -> &[u64] {
        &self.bits[..]
    }

    /// True only if `seq` was marked and is still within the window.
    pub fn contains(&self, seq: u64) -> bool {
        if seq == 0 || seq > self.high || self.high - seq >= WINDOW_SEQS {
            return false;
        }
        let slot = seq % WINDOW_SEQS;
        self.bits[(slot / 64) as usize] & (1 << (slot % 64)) != 0
    }

    /// Marks `seq`, sliding the window forward if it is the highest yet. A
    /// number older than the window is not remembered.
    pub fn insert(&mut self, seq: u64) {
        if seq == 0 {
            return;
        }
        if seq > self.high {
            if seq - self.high >= WINDOW_SEQS {
                self.bits.fill(0);
            } else {
                // The slots of the numbers that enter the window held numbers
                // that leave it.
                for s in self.high + 1..seq {
                    self.clear(s);
                }
            }
            self.high = seq;
        } else if self.high - seq >= WINDOW_SEQS {
            return;
        }
        let slot = seq % WINDOW_SEQS;
        self.bits[(slot / 64) as usize] |= 1 << (slot % 64);
    }

    fn clear(&mut self, seq: u64) {
        let slot = seq % WINDOW_SEQS;
        self.bits[(slot / 64) as usize] &= !(1 << (slot % 64));
    }
}

/// A persisted producer's window and when it was last used.
#[derive(Debug)]
struct Tracked {
    window: SeqWindow,
    /// The audit's clock at its last use (its key in `by_use`).
    last_used: u64,
}

/// The windows of client-id scoped producers, at most `max` of them; the least
/// recently used is forgotten first.
#[derive(Debug, Default)]
pub(crate) struct ProducerAudit {
    /// Windows by producer.
    windows: HashMap<ProducerKey, Tracked>,
    /// Producers by last use, oldest first.
    by_use: BTreeMap<u64, ProducerKey>,
    /// Ticks on every use.
    clock: u64,
}

impl ProducerAudit {
    /// Starts from what a store recovered.
    pub(crate) fn recovered(windows: impl IntoIterator<Item = (ProducerKey, SeqWindow)>) -> Self {
        let mut audit = ProducerAudit::default();
        for (key, window) in windows {
            audit.clock += 1;
            audit.by_use.insert(audit.clock, key.clone());
            audit.windows.insert(
                key,
                Tracked {
                    window,
                    last_used: audit.clock,
                },
            );
        }
        audit
    }

    /// The producer's window, if it is tracked.
    pub(crate) fn get(&self, key: &ProducerKey) -> Option<&SeqWindow> {
        self.windows.get(key).map(|t| &t.window)
    }

    /// Producers tracked.
    pub(crate) fn len(&self) -> usize {
        self.windows.len()
    }

    /// Which tracked producers must be forgotten to make room for `new` more,
    /// sparing those in `keep`: the least recently used.
    pub(crate) fn victims(&self, new: usize, max: usize, keep: &[ProducerKey]) -> Vec<ProducerKey> {
        let excess = (self.windows.len() + new).saturating_sub(max);
        self.by_use
            .values()
            .filter(|k| !keep.contains(k))
            .take(excess)
            .cloned()
            .collect()
    }

    /// Forgets a producer.
    pub(crate) fn forget(&mut self, key: &ProducerKey) {
        if let Some(t) = self.windows.remove(key) {
            self.by_use.remove(&t.last_used);
        }
    }

    /// Marks `seq` stored for `key`, tracking the producer if it is new.
    pub(crate) fn mark(&mut self, key: &ProducerKey, seq: u64) {
        self.clock += 1;
        let now = self.clock;
        match self.windows.get_mut(key) {
            Some(t) => {
                self.by_use.remove(&t.last_used);
                t.last_used = now;
                t.window.insert(seq);
            }
            None => {
                let mut window = SeqWindow::new();
                window.insert(seq);
                self.windows.insert(
                    key.clone(),
                    Tracked {
                        window,
                        last_used: now,
                    },
                );
            }
        }
        self.by_use.insert(now, key.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn marks_are_remembered_with_gaps_and_out_of_order() {
        let mut w = SeqWindow::new();
        assert!(!w.contains(1));
        w.insert(2);
        assert!(w.contains(2));
        assert!(!w.contains(1), "a gap is a send not stored yet");
        w.insert(1);
        assert!(w.contains(1) && w.contains(2));
        assert!(!w.contains(0) && !w.contains(3));
    }

    #[test]
    fn numbers_older_than_the_window_are_not_claimed() {
        let mut w = SeqWindow::new();
        w.insert(1);
        w.insert(WINDOW_SEQS);
        assert!(w.contains(1));
        w.insert(WINDOW_SEQS + 1);
        assert!(!w.contains(1), "left the window");
        assert!(w.contains(WINDOW_SEQS + 1));
        w.insert(MAX_PRODUCER_SEQ);
        assert!(!w.contains(WINDOW_SEQS + 1));
        assert!(w.contains(MAX_PRODUCER_SEQ));
        // Too old to be remembered: inserting it changes nothing.
        let before = w.clone();
        w.insert(5);
        assert_eq!(w, before);
    }

    #[test]
    fn snapshot_round_trips() {
        let mut w = SeqWindow::new();
        for s in [3, 9, 700, 2500] {
            w.insert(s);
        }
        let back = SeqWindow::from_parts(w.high(), w.words()).unwrap();
        assert_eq!(back, w);
        assert!(SeqWindow::from_parts(1, &[0; 3]).is_none());
    }

    #[test]
    fn the_audit_forgets_the_least_recently_used() {
        let key = |p: &str| ProducerKey {
            owner: None,
            client_id: Arc::from("c"),
            producer: Arc::from(p),
        };
        let mut a = ProducerAudit::default();
        a.mark(&key("a"), 1);
        a.mark(&key("b"), 1);
        a.mark(&key("a"), 2);
        assert_eq!(a.victims(1, 2, &[]), vec![key("b")]);
        assert_eq!(a.victims(1, 2, &[key("b")]), vec![key("a")]);
        assert!(a.victims(0, 2, &[]).is_empty());
        a.forget(&key("b"));
        assert_eq!(a.len(), 1);
        assert!(a.get(&key("a")).unwrap().contains(2));
    }

    proptest! {
        /// Against a set of every number marked: the window claims exactly the
        /// marked numbers within WINDOW_SEQS of the highest, never another.
        #[test]
        fn window_matches_a_set(ops in proptest::collection::vec(
            prop_oneof![1u64..40, 1u64..5000, Just(MAX_PRODUCER_SEQ)], 0..200))
        {
            let mut w = SeqWindow::new();
            let mut marked = std::collections::BTreeSet::new();
            for s in ops {
                w.insert(s);
                let high = *marked.iter().next_back().unwrap_or(&0);
                if high == 0 || s > high || high - s < WINDOW_SEQS {
                    marked.insert(s);
                }
                let high = *marked.iter().next_back().unwrap();
                for probe in [s, s.saturating_sub(1), s + 1, 1, high, high.saturating_sub(WINDOW_SEQS)] {
                    let expected = marked.contains(&probe) && high - probe < WINDOW_SEQS;
                    prop_assert_eq!(w.contains(probe), expected, "probe {}", probe);
                }
            }
        }
    }
}
