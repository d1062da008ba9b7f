//! The marshal cache (CacheEnabled): each direction of a connection remembers recent ids and
//! destinations by slot, so that a value the peer has seen travels as a 2-byte index.
//!
//! The two directions are independent: the encoder's cache describes what the peer's decoder
//! holds, and the decoder's cache what the peer's encoder assumes we hold. Both start empty
//! when the settings are (re)negotiated. A null value goes through the cache like any other
//! (Java's `HashMap` takes a null key), so a slot can hold "null".
//!
//! A frame that fails (an encode error, or an incomplete unprefixed frame on the decoding
//! side) must leave its cache as it was, or the two sides would disagree from then on: both
//! caches log what each frame changed and [`commit`](DecodeCache::commit) or
//! [`rollback`](DecodeCache::rollback) at the frame's end.

use std::collections::HashMap;
use std::hash::Hash;

use crate::data_structure::{DataStructure, Marshal};
use crate::{
    BrokerId, ConnectionId, ConsumerId, DecodeError, Destination, ProducerId, SessionId,
    TransactionId,
};

/// Java's index for "new, but not stored": a writer whose cache is full sends it.
const NOT_CACHED: i16 = -1;

/// What a decoder's slot holds.
#[derive(Debug, Clone)]
enum Slot {
    /// Never written by the peer.
    Empty,
    /// The peer sent a null here.
    Null,
    /// The peer sent this value here.
    Value(DataStructure),
}

/// The decoding direction's slots, filled as the peer says.
#[derive(Debug)]
pub(crate) struct DecodeCache {
    /// Negotiated number of slots: valid indexes are `0..size`.
    size: usize,
    /// Slots written so far; grows up to `size` as the peer uses higher indexes, so an idle
    /// connection does not pay for all of them.
    slots: Vec<Slot>,
    /// The current frame's changes: each slot written and what it held before.
    undo: Vec<(usize, Slot)>,
}

impl DecodeCache {
    pub(crate) fn new(size: usize) -> Self {
        DecodeCache {
            size,
            slots: Vec::new(),
            undo: Vec::new(),
        }
    }

    /// Stores what the peer sent as new at `index`; -1 means "not stored".
    pub(crate) fn store(
        &mut self,
        index: i16,
        value: Option<&DataStructure>,
    ) -> Result<(), DecodeError> {
        if index == NOT_CACHED {
            return Ok(());
        }
        let i = self.index(index)?;
        if self.slots.len() <= i {
            self.slots.resize(i + 1, Slot::Empty);
        }
        let slot = match value {
            Some(value) => Slot::Value(value.clone()),
            None => Slot::Null,
        };
        let previous = std::mem::replace(&mut self.slots[i], slot);
        self.undo.push((i, previous));
        Ok(())
    }

    /// What the peer stored at `index`.
    pub(crate) fn load(&self, index: i16) -> Result<Option<DataStructure>, DecodeError> {
        let i = self.index(index)?;
        match self.slots.get(i) {
            Some(Slot::Value(value)) => Ok(Some(value.clone())),
            Some(Slot::Null) => Ok(None),
            // Java would read null here, but no Java writer refers to a slot it never filled:
            // a peer that does has lost track of its cache.
            Some(Slot::Empty) | None => Err(DecodeError::CacheSlotEmpty(index)),
        }
    }

    fn index(&self, index: i16) -> Result<usize, DecodeError> {
        usize::try_from(index)
            .ok()
            .filter(|&i| i < self.size)
            .ok_or(DecodeError::CacheIndexOutOfRange {
                index,
                size: self.size,
            })
    }

    /// Keeps the current frame's changes.
    pub(crate) fn commit(&mut self) {
        self.undo.clear();
    }

    /// Undoes the current frame's changes.
    pub(crate) fn rollback(&mut self) {
        while let Some((i, previous)) = self.undo.pop() {
            self.slots[i] = previous;
        }
    }
}

/// A value the encoder has put in a slot.
#[derive(Debug, Clone)]
pub(crate) enum CacheKey {
    /// A null value (Java caches those too).
    Null,
    ConnectionId(ConnectionId),
    SessionId(SessionId),
    ProducerId(ProducerId),
    ConsumerId(ConsumerId),
    BrokerId(BrokerId),
    Destination(Destination),
    TransactionId(TransactionId),
}

/// Slot of each value the peer holds, one map per type so that a lookup needs no copy of the
/// value.
#[derive(Debug, Default)]
pub(crate) struct Entries {
    /// The slot holding null, if one does.
    null: Option<i16>,
    connection_ids: HashMap<ConnectionId, i16>,
    session_ids: HashMap<SessionId, i16>,
    producer_ids: HashMap<ProducerId, i16>,
    consumer_ids: HashMap<ConsumerId, i16>,
    broker_ids: HashMap<BrokerId, i16>,
    destinations: HashMap<Destination, i16>,
    transaction_ids: HashMap<TransactionId, i16>,
}

/// A type the encoder caches.
pub(crate) trait CacheValue: Marshal + Clone + Eq + Hash {
    fn entries(entries: &Entries) -> &HashMap<Self, i16>;
    fn into_key(self) -> CacheKey;
}

macro_rules! cache_value {
    ($type:ident, $field:ident) => {
        impl CacheValue for $type {
            fn entries(entries: &Entries) -> &HashMap<Self, i16> {
                &entries.$field
            }
            fn into_key(self) -> CacheKey {
                CacheKey::$type(self)
            }
        }
    };
}

cache_value!(ConnectionId, connection_ids);
cache_value!(SessionId, session_ids);
cache_value!(ProducerId, producer_ids);
cache_value!(ConsumerId, consumer_ids);
cache_value!(BrokerId, broker_ids);
cache_value!(Destination, destinations);
cache_value!(TransactionId, transaction_ids);

impl CacheKey {
    fn remember(&self, entries: &mut Entries, index: i16) {
        match self {
            CacheKey::Null => entries.null = Some(index),
            CacheKey::ConnectionId(v) => {
                entries.connection_ids.insert(v.clone(), index);
            }
            CacheKey::SessionId(v) => {
                entries.session_ids.insert(v.clone(), index);
            }
            CacheKey::ProducerId(v) => {
                entries.producer_ids.insert(v.clone(), index);
            }
            CacheKey::ConsumerId(v) => {
                entries.consumer_ids.insert(v.clone(), index);
            }
            CacheKey::BrokerId(v) => {
                entries.broker_ids.insert(v.clone(), index);
            }
            CacheKey::Destination(v) => {
                entries.destinations.insert(v.clone(), index);
            }
            CacheKey::TransactionId(v) => {
                entries.transaction_ids.insert(v.clone(), index);
            }
        }
    }

    fn forget(&self, entries: &mut Entries) {
        match self {
            CacheKey::Null => entries.null = None,
            CacheKey::ConnectionId(v) => {
                entries.connection_ids.remove(v);
            }
            CacheKey::SessionId(v) => {
                entries.session_ids.remove(v);
            }
            CacheKey::ProducerId(v) => {
                entries.producer_ids.remove(v);
            }
            CacheKey::ConsumerId(v) => {
                entries.consumer_ids.remove(v);
            }
            CacheKey::BrokerId(v) => {
                entries.broker_ids.remove(v);
            }
            CacheKey::Destination(v) => {
                entries.destinations.remove(v);
            }
            CacheKey::TransactionId(v) => {
                entries.transaction_ids.remove(v);
            }
        }
    }
}

/// One slot assignment of the current frame, to undo it.
#[derive(Debug)]
struct Undo {
    /// The slot assigned.
    index: usize,
    /// What the slot held before.
    previous: Option<CacheKey>,
}

/// The encoding direction's view of the peer's slots.
///
/// Slots are handed out round robin; a slot being reused first forgets its old value, so a
/// value found in the maps is always still in the peer's slot. (Java's encoder instead keeps
/// 100 slots free, evicting at the start of each frame, and sends -1 when full; the peer's
/// decoder only needs indexes below the negotiated size, so both interoperate.)
#[derive(Debug)]
pub(crate) struct EncodeCache {
    /// Negotiated number of slots (at least 1 when the cache is on).
    size: usize,
    /// What each slot holds; grows up to `size`.
    ring: Vec<Option<CacheKey>>,
    /// The slot the next new value takes.
    next: usize,
    /// Slot of each value in `ring`.
    entries: Entries,
    /// The current frame's assignments.
    undo: Vec<Undo>,
    /// `next` before the current frame's first assignment.
    next_at_frame_start: usize,
}

impl EncodeCache {
    pub(crate) fn new(size: usize) -> Self {
        EncodeCache {
            size: size.max(1),
            ring: Vec::new(),
            next: 0,
            entries: Entries::default(),
            undo: Vec::new(),
            next_at_frame_start: 0,
        }
    }

    /// The slot the peer holds `value` in, if any.
    pub(crate) fn lookup<T: CacheValue>(&self, value: Option<&T>) -> Option<i16> {
        match value {
            None => self.entries.null,
            Some(value) => T::entries(&self.entries).get(value).copied(),
        }
    }

    /// Assigns `value` the next slot and returns its index.
    pub(crate) fn insert<T: CacheValue>(&mut self, value: Option<&T>) -> i16 {
        let index = self.next;
        self.next = (index + 1) % self.size;
        if self.ring.len() <= index {
            self.ring.resize_with(index + 1, || None);
        }
        let previous = self.ring[index].take();
        if let Some(old) = &previous {
            old.forget(&mut self.entries);
        }
        // `size` is at most i16::MAX (see `settings`), so the index fits.
        let slot = index as i16;
        let key = match value {
            None => CacheKey::Null,
            Some(value) => value.clone().into_key(),
        };
        key.remember(&mut self.entries, slot);
        self.ring[index] = Some(key);
        self.undo.push(Undo { index, previous });
        slot
    }

    /// Keeps the current frame's assignments.
    pub(crate) fn commit(&mut self) {
        self.undo.clear();
        self.next_at_frame_start = self.next;
    }

    /// Undoes the current frame's assignments: the peer never saw them.
    pub(crate) fn rollback(&mut self) {
        while let Some(Undo { index, previous }) = self.undo.pop() {
            if let Some(current) = self.ring[index].take() {
                current.forget(&mut self.entries);
            }
            if let Some(previous) = previous {
                previous.remember(&mut self.entries, index as i16);
                self.ring[index] = Some(previous);
            }
        }
        self.next = self.next_at_frame_start;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue(name: &str) -> Destination {
        Destination::queue(name)
    }

    #[test]
    fn decoder_keeps_nulls_refuses_bad_indexes_and_rolls_back() {
        let mut cache = DecodeCache::new(4);
        let q = DataStructure::Destination(queue("q"));
        cache.store(0, Some(&q)).unwrap();
        cache.store(1, None).unwrap();
        cache.store(-1, Some(&q)).unwrap();
        cache.commit();
        assert_eq!(cache.load(0), Ok(Some(q.clone())));
        assert_eq!(cache.load(1), Ok(None));
        assert_eq!(cache.load(2), Err(DecodeError::CacheSlotEmpty(2)));
        for bad in [4, -1, -2, i16::MAX] {
            assert_eq!(
                cache.load(bad),
                Err(DecodeError::CacheIndexOutOfRange {
                    index: bad,
                    size: 4
                })
            );
        }
        assert!(cache.store(4, None).is_err());

        cache.store(0, None).unwrap();
        cache.store(3, Some(&q)).unwrap();
        cache.rollback();
        assert_eq!(cache.load(0), Ok(Some(q)));
        assert_eq!(cache.load(3), Err(DecodeError::CacheSlotEmpty(3)));
    }

    #[test]
    fn encoder_reuses_slots_round_robin_and_forgets_what_they_held() {
        let mut cache = EncodeCache::new(2);
        let (a, b, c) = (queue("a"), queue("b"), queue("c"));
        assert_eq!(cache.insert(Some(&a)), 0);
        assert_eq!(cache.insert::<Destination>(None), 1);
        assert_eq!(cache.lookup(Some(&a)), Some(0));
        assert_eq!(cache.lookup::<Destination>(None), Some(1));
        assert_eq!(cache.insert(Some(&b)), 0);
        assert_eq!(cache.lookup(Some(&a)), None);
        assert_eq!(cache.insert(Some(&c)), 1);
        assert_eq!(cache.lookup::<Destination>(None), None);
        cache.commit();

        assert_eq!(cache.insert(Some(&a)), 0);
        cache.rollback();
        assert_eq!(cache.lookup(Some(&a)), None);
        assert_eq!(cache.lookup(Some(&b)), Some(0));
        assert_eq!(cache.insert(Some(&a)), 0);
    }
}
