//! The duplicate audit of one subscription: which messages the application has
//! already acknowledged, by (producer id, sequence number).
//!
//! After a failover the broker delivers again what it had not seen
//! acknowledged, and a producer may have resent what it had not seen confirmed.
//! A copy of a message the application already acknowledged is dropped here
//! (and acknowledged again, so the broker forgets it), as ActiveMQ's connection
//! audit (`checkForDuplicates`) does. Memory is bounded: the oldest entries go
//! first.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use hawser_stomp::extensions::{PRODUCER_HEADER, PRODUCER_SEQ_HEADER};
use hawser_stomp::Headers;

/// Acknowledged (producer, sequence) pairs remembered per subscription.
pub(crate) const AUDIT_CAPACITY: usize = 100_000;

/// A message's place in its producer's sequence: the producer's id (shared by
/// every message of that producer the audit knows) and the sequence number.
pub(crate) type ProducerKey = (Arc<str>, u64);

/// Bounded memory of acknowledged (producer, sequence) pairs.
#[derive(Default)]
pub(crate) struct Audit {
    /// Acknowledged sequence numbers per producer.
    seen: HashMap<Arc<str>, HashSet<u64>>,
    /// Every remembered pair, oldest first, for eviction.
    order: VecDeque<ProducerKey>,
}

impl Audit {
    /// The producer key of a message, from its headers, sharing the producer id
    /// string with the audit's own when it has one.
    pub(crate) fn key_of(&self, headers: &Headers) -> Option<ProducerKey> {
        let producer = headers.get(PRODUCER_HEADER)?;
        let seq = headers.get(PRODUCER_SEQ_HEADER)?.parse().ok()?;
        let id = match self.seen.get_key_value(producer) {
            Some((id, _)) => Arc::clone(id),
            None => Arc::from(producer),
        };
        Some((id, seq))
    }

    /// Remembers that the application acknowledged `key`.
    pub(crate) fn insert(&mut self, key: ProducerKey) {
        let (producer, seq) = key;
        let seqs = self.seen.entry(Arc::clone(&producer)).or_default();
        if !seqs.insert(seq) {
            return;
        }
        self.order.push_back((producer, seq));
        if self.order.len() > AUDIT_CAPACITY {
            if let Some((old_producer, old_seq)) = self.order.pop_front() {
                if let Some(s) = self.seen.get_mut(&old_producer) {
                    s.remove(&old_seq);
                    if s.is_empty() {
                        self.seen.remove(&old_producer);
                    }
                }
            }
        }
    }

    /// True if the application acknowledged `key` before.
    pub(crate) fn contains(&self, key: &ProducerKey) -> bool {
        self.seen.get(&key.0).is_some_and(|s| s.contains(&key.1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(producer: &str, seq: u64) -> Headers {
        [
            (PRODUCER_HEADER, producer.to_owned()),
            (PRODUCER_SEQ_HEADER, seq.to_string()),
        ]
        .into_iter()
        .collect()
    }

    #[test]
    fn remembers_per_producer_and_shares_ids() {
        let mut a = Audit::default();
        let k = a.key_of(&headers("p1", 1)).unwrap();
        assert!(!a.contains(&k));
        a.insert(k.clone());
        assert!(a.contains(&k));
        let again = a.key_of(&headers("p1", 2)).unwrap();
        assert!(Arc::ptr_eq(&again.0, &k.0), "the known id is shared");
        assert!(!a.contains(&again));
        assert!(!a.contains(&a.key_of(&headers("p2", 1)).unwrap()));
        assert_eq!(a.key_of(&Headers::new()), None);
    }

    #[test]
    fn forgets_the_oldest_past_capacity() {
        let mut a = Audit::default();
        for seq in 0..=AUDIT_CAPACITY as u64 {
            let k = a.key_of(&headers("p", seq)).unwrap();
            a.insert(k);
        }
        assert!(!a.contains(&(Arc::from("p"), 0)), "oldest evicted");
        assert!(a.contains(&(Arc::from("p"), 1)));
        assert!(a.contains(&(Arc::from("p"), AUDIT_CAPACITY as u64)));
        assert_eq!(a.order.len(), AUDIT_CAPACITY);
    }
}
