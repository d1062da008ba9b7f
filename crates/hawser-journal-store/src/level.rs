//! One priority of one container's live messages, compactly: the index the
//! journal store keeps of a backlog, so that ten million pending messages take
//! tens of megabytes, not the gigabyte a tree node per message did.
//!
//! Messages are kept in runs of up to [`RUN_ENTRIES`], in id order. A run is
//! a byte string of entries, each four varints of how it differs from the
//! entry before (id, segment, offset, size: messages arrive in order, one
//! record after another, alike: four bytes a message), a bitmap of which
//! entries are still live, and the run's last entry, from which the next one
//! is encoded: an append costs a few bytes and no allocation. Runs are found by
//! their first id in a tree of runs, one node per run instead of per message.
//!
//! Removing a message clears its bit; a run with none left goes, and one
//! mostly dead is rewritten with its live entries only, so that a few
//! messages left behind (by selectors) do not hold whole runs. A message
//! inserted among existing ones (a dead-letter move of an old id, a copy made
//! by reclaiming) rewrites its run: rare, and no different in result.
//! Redelivery counts, rarely above zero, sit in a map beside the runs.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::{BufMut, BytesMut};
use foldhash::HashMap;
use hawser_broker::MessageId;
use hawser_journal::Position;

/// Entries per run (the width of its live bitmap).
pub(crate) const RUN_ENTRIES: usize = 128;

/// A message's place in the journal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Entry {
    /// Its id.
    pub(crate) id: MessageId,
    /// Its record.
    pub(crate) pos: Position,
    /// Its share of the record's bytes (what holding it costs its segment).
    pub(crate) bytes: u64,
}

const ORIGIN: Position = Position {
    segment: 0,
    offset: 0,
};

/// What the first entry of a run is encoded from.
const NONE: Entry = Entry {
    id: 0,
    pos: ORIGIN,
    bytes: 0,
};

/// Up to [`RUN_ENTRIES`] entries in id order (see the module).
#[derive(Clone, Debug)]
struct Run {
    /// Its last entry: the next one is encoded from it.
    last: Entry,
    /// The lowest and highest segment of its entries.
    min_segment: u64,
    max_segment: u64,
    /// Bit i: entry i is live.
    live: u128,
    /// Entries encoded.
    len: u8,
    /// Where lookups start: every entry before it is dead (a queue consumed
    /// in order removes its runs' entries first to last, each found without
    /// decoding the ones gone before it).
    head: Cursor,
    /// The entries (see [`put_entry`]).
    data: Vec<u8>,
}

/// A place in a run's entries, with what decoding the next one needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Cursor {
    /// The entry's index.
    index: u8,
    /// Its byte offset.
    at: u32,
    /// The entry before it (`NONE` for the first).
    prev: Entry,
}

const START: Cursor = Cursor {
    index: 0,
    at: 0,
    prev: NONE,
};

impl Run {
    fn new() -> Run {
        Run {
            last: NONE,
            min_segment: u64::MAX,
            max_segment: 0,
            live: 0,
            len: 0,
            head: START,
            data: Vec::new(),
        }
    }

    fn is_full(&self) -> bool {
        usize::from(self.len) == RUN_ENTRIES
    }

    /// Appends `e`, whose id is above every entry's.
    fn push(&mut self, e: Entry) {
        debug_assert!(!self.is_full() && (self.len == 0 || e.id > self.last.id));
        let mut buf = Vec::with_capacity(24);
        put_entry(&mut buf, self.last, e);
        if self.data.capacity() == 0 {
            // About what a full run of sequential messages takes.
            self.data.reserve(RUN_ENTRIES * 4 + 16);
        }
        self.data.extend_from_slice(&buf);
        self.live |= 1 << self.len;
        self.len += 1;
        self.last = e;
        self.min_segment = self.min_segment.min(e.pos.segment);
        self.max_segment = self.max_segment.max(e.pos.segment);
        if self.is_full() {
            self.data.shrink_to_fit();
        }
    }

    /// Every entry, live or not, with its index.
    fn all(&self) -> impl Iterator<Item = (usize, Entry)> + '_ {
        self.from(START).map(|(i, e, _)| (i, e))
    }

    /// The entries from `c` on, each with its index and its own cursor.
    fn from(&self, c: Cursor) -> impl Iterator<Item = (usize, Entry, Cursor)> + '_ {
        let mut at = c.at as usize;
        let mut prev = c.prev;
        (usize::from(c.index)..usize::from(self.len)).map(move |i| {
            let here = Cursor {
                index: i as u8,
                at: at as u32,
                prev,
            };
            let e = get_entry(&self.data, &mut at, prev);
            prev = e;
            (i, e, here)
        })
    }

    fn is_live(&self, i: usize) -> bool {
        self.live & (1 << i) != 0
    }

    fn live_entries(&self) -> impl Iterator<Item = Entry> + '_ {
        self.from(self.head)
            .filter(|(i, _, _)| self.is_live(*i))
            .map(|(_, e, _)| e)
    }

    /// The live entry `id`, with its index.
    fn find(&self, id: MessageId) -> Option<(usize, Entry)> {
        self.from(self.head)
            .take_while(|(_, e, _)| e.id <= id)
            .find(|(i, e, _)| e.id == id && self.is_live(*i))
            .map(|(i, e, _)| (i, e))
    }

    /// Marks entry `i` dead, and moves the head past the dead ones.
    fn kill(&mut self, i: usize) {
        self.live &= !(1 << i);
        if i == usize::from(self.head.index) {
            let head = self.from(self.head).find(|(j, _, _)| self.is_live(*j));
            if let Some((_, _, c)) = head {
                self.head = c;
            }
        }
    }

    fn live_count(&self) -> usize {
        self.live.count_ones() as usize
    }

    /// Runs holding `entries` (in id order), full but the last.
    fn from_entries(entries: &[Entry]) -> Vec<Run> {
        entries
            .chunks(RUN_ENTRIES)
            .map(|chunk| {
                let mut run = Run::new();
                for e in chunk {
                    run.push(*e);
                }
                run.data.shrink_to_fit();
                run
            })
            .collect()
    }
}

/// One priority of a container's live messages (see the module).
#[derive(Clone, Debug, Default)]
pub(crate) struct Level {
    /// Runs by their first entry's id (live or not); their ids do not overlap.
    /// Shared: a checkpoint takes the level by cloning the tree (see
    /// `checkpoint`), and a run changed meanwhile is copied first.
    runs: BTreeMap<MessageId, Arc<Run>>,
    /// Live entries.
    len: u64,
    /// Redelivery counts above zero.
    redeliveries: HashMap<MessageId, u32>,
}

impl Level {
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Adds `e`; returns the entry it replaced (a copy replaces its original).
    pub(crate) fn insert(&mut self, e: Entry) -> Option<Entry> {
        let covering = self.runs.range_mut(..=e.id).next_back();
        match covering {
            Some((_, run)) if e.id > run.last.id && !run.is_full() => {
                // Later runs start above e.id: it goes at this one's end.
                Arc::make_mut(run).push(e);
            }
            Some((&key, run)) if e.id <= run.last.id => return self.rewrite(key, Some(e)),
            // After a full run, or before the first.
            _ => {
                let mut new = Run::new();
                new.push(e);
                self.runs.insert(e.id, Arc::new(new));
            }
        }
        self.len += 1;
        None
    }

    /// The live entry `id`.
    pub(crate) fn get(&self, id: MessageId) -> Option<Entry> {
        let (_, run) = self.runs.range(..=id).next_back()?;
        run.find(id).map(|(_, e)| e)
    }

    /// Removes the live entry `id`.
    pub(crate) fn remove(&mut self, id: MessageId) -> Option<Entry> {
        let (&key, run) = self.runs.range_mut(..=id).next_back()?;
        let (i, e) = run.find(id)?;
        let run = Arc::make_mut(run);
        run.kill(i);
        self.len -= 1;
        self.redeliveries.remove(&id);
        let live = run.live_count();
        if live == 0 {
            self.runs.remove(&key);
        } else if live * 4 <= usize::from(run.len) && run.len >= 16 {
            // Mostly dead (a selector left these behind): keep only the live.
            self.rewrite(key, None);
        }
        Some(e)
    }

    /// Rewrites run `key` with its live entries, plus `add` (replacing an
    /// entry with its id); returns the entry replaced.
    fn rewrite(&mut self, key: MessageId, add: Option<Entry>) -> Option<Entry> {
        let run = self.runs.remove(&key).expect("the run rewritten");
        let mut entries: Vec<Entry> = run.live_entries().collect();
        let mut replaced = None;
        if let Some(e) = add {
            match entries.binary_search_by_key(&e.id, |x| x.id) {
                Ok(i) => replaced = Some(std::mem::replace(&mut entries[i], e)),
                Err(i) => {
                    entries.insert(i, e);
                    self.len += 1;
                }
            }
        }
        for run in Run::from_entries(&entries) {
            let first = run
                .all()
                .next()
                .map(|(_, e)| e.id)
                .expect("a run has entries");
            self.runs.insert(first, Arc::new(run));
        }
        replaced
    }

    pub(crate) fn redeliveries(&self, id: MessageId) -> u32 {
        self.redeliveries.get(&id).copied().unwrap_or(0)
    }

    /// Records `id`'s redelivery count if it is live; false if it is not.
    pub(crate) fn set_redeliveries(&mut self, id: MessageId, count: u32) -> bool {
        if self.get(id).is_none() {
            return false;
        }
        if count == 0 {
            self.redeliveries.remove(&id);
        } else {
            self.redeliveries.insert(id, count);
        }
        true
    }

    /// Live entries in id order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = Entry> + '_ {
        self.runs.values().flat_map(|run| run.live_entries())
    }

    /// Live entries with ids above `after`, in id order.
    pub(crate) fn after(&self, after: MessageId) -> impl Iterator<Item = Entry> + '_ {
        let from = self
            .runs
            .range(..=after)
            .next_back()
            .map_or(0, |(&key, _)| key);
        self.runs
            .range(from..)
            .flat_map(|(_, run)| run.live_entries())
            .filter(move |e| e.id > after)
    }

    /// Live entries whose record is in `segment` (runs without any are skipped).
    pub(crate) fn in_segment(&self, segment: u64) -> impl Iterator<Item = Entry> + '_ {
        self.runs
            .values()
            .filter(move |run| run.min_segment <= segment && segment <= run.max_segment)
            .flat_map(|run| run.live_entries())
            .filter(move |e| e.pos.segment == segment)
    }

    /// Writes the level as it is in memory (runs, then redelivery counts):
    /// a copy, not an encoding. `spill` is called after each run, to send
    /// what is gathered on before it grows large.
    pub(crate) fn dump<E>(
        &self,
        buf: &mut BytesMut,
        mut spill: impl FnMut(&mut BytesMut) -> Result<(), E>,
    ) -> Result<(), E> {
        put_varint(buf, self.runs.len() as u64);
        for run in self.runs.values() {
            put_varint(buf, run.last.id);
            put_varint(buf, run.last.pos.segment);
            put_varint(buf, run.last.pos.offset);
            put_varint(buf, run.last.bytes);
            put_varint(buf, run.min_segment);
            put_varint(buf, run.max_segment);
            buf.put_u128_le(run.live);
            buf.put_u8(run.len);
            put_varint(buf, run.data.len() as u64);
            buf.put_slice(&run.data);
            spill(buf)?;
        }
        put_varint(buf, self.redeliveries.len() as u64);
        for (id, count) in &self.redeliveries {
            put_varint(buf, *id);
            put_varint(buf, u64::from(*count));
        }
        Ok(())
    }

    /// Reads what [`Level::dump`] wrote at `*at`, checking each run against
    /// its header (a checkpoint passed its checksum, but is still not trusted
    /// to make the index lie).
    pub(crate) fn undump(data: &[u8], at: &mut usize) -> Result<Level, &'static str> {
        let mut level = Level::default();
        for _ in 0..varint(data, at)? {
            let mut run = Run {
                last: Entry {
                    id: varint(data, at)?,
                    pos: Position {
                        segment: varint(data, at)?,
                        offset: varint(data, at)?,
                    },
                    bytes: varint(data, at)?,
                },
                min_segment: varint(data, at)?,
                max_segment: varint(data, at)?,
                live: u128::from_le_bytes(take(data, at, 16)?.try_into().expect("16 bytes")),
                len: take(data, at, 1)?[0],
                head: START,
                data: Vec::new(),
            };
            let n = usize::try_from(varint(data, at)?).map_err(|_| "run length")?;
            run.data = take(data, at, n)?.to_vec();
            if run.len == 0
                || usize::from(run.len) > RUN_ENTRIES
                || run.live >> (run.len - 1) >> 1 != 0
            {
                return Err("a run's entry count");
            }
            let mut end = 0;
            let mut prev = NONE;
            let mut first = None;
            for _ in 0..run.len {
                let e = try_get_entry(&run.data, &mut end, prev).ok_or("a run's entries")?;
                if first.is_some() && e.id <= prev.id {
                    return Err("a run's ids");
                }
                if e.pos.segment < run.min_segment || e.pos.segment > run.max_segment {
                    return Err("a run's segments");
                }
                first.get_or_insert(e.id);
                prev = e;
            }
            if end != run.data.len() || prev != run.last {
                return Err("a run's last entry");
            }
            let first = first.expect("a run has entries");
            let head = run.from(START).find(|(i, _, _)| run.is_live(*i));
            if let Some((_, _, c)) = head {
                run.head = c;
            }
            if level
                .runs
                .last_key_value()
                .is_some_and(|(_, r)| r.last.id >= first)
            {
                return Err("runs out of order");
            }
            level.len += run.live.count_ones() as u64;
            level.runs.insert(first, Arc::new(run));
        }
        for _ in 0..varint(data, at)? {
            let id = varint(data, at)?;
            let count = u32::try_from(varint(data, at)?).map_err(|_| "a redelivery count")?;
            level.redeliveries.insert(id, count);
        }
        Ok(level)
    }
}

/// An entry as varints from the one before: the id's difference; the
/// segment's (zigzag: a copy may sit before its neighbour); the offset's from
/// where the entry before ended, in the same segment (0 when messages were
/// written one after another), else the offset; the size's difference (0
/// when messages are alike). A backlog of like messages takes four bytes each.
fn put_entry(buf: &mut impl BufMut, prev: Entry, e: Entry) {
    put_varint(buf, e.id.wrapping_sub(prev.id));
    put_varint(buf, zigzag(e.pos.segment, prev.pos.segment));
    put_varint(
        buf,
        zigzag(e.pos.offset, expected_offset(prev, e.pos.segment)),
    );
    put_varint(buf, zigzag(e.bytes, prev.bytes));
}

/// Where an entry in `segment` after `prev` most likely starts.
fn expected_offset(prev: Entry, segment: u64) -> u64 {
    if segment == prev.pos.segment {
        prev.pos.offset.wrapping_add(prev.bytes)
    } else {
        0
    }
}

/// What [`put_entry`] wrote at `*at` (in a run this process encoded).
fn get_entry(data: &[u8], at: &mut usize, prev: Entry) -> Entry {
    try_get_entry(data, at, prev).expect("a run's entries are well formed")
}

fn try_get_entry(data: &[u8], at: &mut usize, prev: Entry) -> Option<Entry> {
    let id = prev.id.wrapping_add(varint(data, at).ok()?);
    let segment = unzigzag(varint(data, at).ok()?, prev.pos.segment);
    let offset = unzigzag(varint(data, at).ok()?, expected_offset(prev, segment));
    let bytes = unzigzag(varint(data, at).ok()?, prev.bytes);
    Some(Entry {
        id,
        pos: Position { segment, offset },
        bytes,
    })
}

/// LEB128: seven bits a byte, low first.
pub(crate) fn put_varint(buf: &mut impl BufMut, mut v: u64) {
    while v >= 0x80 {
        buf.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    buf.put_u8(v as u8);
}

/// What [`put_varint`] wrote at `*at`.
pub(crate) fn varint(data: &[u8], at: &mut usize) -> Result<u64, &'static str> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *data.get(*at).ok_or("truncated")?;
        *at += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b < 0x80 {
            return Ok(v);
        }
    }
    Err("a varint longer than 64 bits")
}

fn take<'a>(data: &'a [u8], at: &mut usize, n: usize) -> Result<&'a [u8], &'static str> {
    let end = at
        .checked_add(n)
        .filter(|&end| end <= data.len())
        .ok_or("truncated")?;
    let s = &data[*at..end];
    *at = end;
    Ok(s)
}

/// `v - prev` as a small unsigned number whichever way it goes.
fn zigzag(v: u64, prev: u64) -> u64 {
    let d = v.wrapping_sub(prev) as i64;
    ((d << 1) ^ (d >> 63)) as u64
}

fn unzigzag(z: u64, prev: u64) -> u64 {
    let d = ((z >> 1) as i64) ^ -((z & 1) as i64);
    prev.wrapping_add(d as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn entry(id: u64) -> Entry {
        Entry {
            id,
            pos: Position {
                segment: 1 + id / 50,
                offset: 64 + (id % 50) * 1100,
            },
            bytes: 1000 + id % 7,
        }
    }

    #[derive(Clone, Debug)]
    enum Op {
        Insert(u64),
        Remove(u64),
        /// The oldest live message (a queue consumed in order).
        RemoveFirst,
        Redeliver(u64, u32),
        Dump,
    }

    proptest! {
        /// A level behaves as a map from id to entry (the reference model),
        /// whatever order entries come and go in, and survives a dump.
        #[test]
        fn a_level_is_a_map_of_entries(ops in prop::collection::vec(prop_oneof![
            // Mostly appends, as messages arrive; some far below (dead-letter moves).
            6 => (0u64..400).prop_map(Op::Insert),
            4 => (0u64..400).prop_map(Op::Remove),
            4 => Just(Op::RemoveFirst),
            1 => (0u64..400, 0u32..4).prop_map(|(id, n)| Op::Redeliver(id, n)),
            1 => Just(Op::Dump),
        ], 1..600)) {
            let mut level = Level::default();
            let mut model: BTreeMap<u64, (Entry, u32)> = BTreeMap::new();
            let mut next = 0;
            for op in ops {
                match op {
                    Op::Insert(low) => {
                        // Half the inserts are the next id; the others anywhere.
                        let id = if low % 2 == 0 { next += 1 + low % 3; next } else { low };
                        let mut e = entry(id);
                        e.pos.offset += u64::from(model.contains_key(&id)) * 7;
                        let old = model.insert(id, (e, 0)).map(|(e, _)| e);
                        prop_assert_eq!(level.insert(e), old);
                        if old.is_some() {
                            // A copy's redelivery count comes with it (a separate op).
                            level.set_redeliveries(id, 0);
                        }
                    }
                    Op::Remove(id) => {
                        prop_assert_eq!(level.remove(id), model.remove(&id).map(|(e, _)| e));
                    }
                    Op::RemoveFirst => {
                        let first = model.keys().next().copied();
                        if let Some(id) = first {
                            prop_assert_eq!(level.remove(id), model.remove(&id).map(|(e, _)| e));
                        }
                    }
                    Op::Redeliver(id, n) => {
                        let live = model.get_mut(&id).map(|m| m.1 = n).is_some();
                        prop_assert_eq!(level.set_redeliveries(id, n), live);
                    }
                    Op::Dump => {
                        let mut buf = BytesMut::new();
                        level.dump(&mut buf, |_| Ok::<(), ()>(())).unwrap();
                        let mut at = 0;
                        level = Level::undump(&buf, &mut at).unwrap();
                        prop_assert_eq!(at, buf.len());
                    }
                }
                prop_assert_eq!(level.len(), model.len() as u64);
            }
            let all: Vec<Entry> = level.iter().collect();
            let expected: Vec<Entry> = model.values().map(|(e, _)| *e).collect();
            prop_assert_eq!(&all, &expected);
            for (id, (e, n)) in &model {
                prop_assert_eq!(level.get(*id), Some(*e));
                prop_assert_eq!(level.redeliveries(*id), *n);
            }
            for after in [0, 10, 77, 200, 399] {
                let got: Vec<Entry> = level.after(after).collect();
                let want: Vec<Entry> = model.range(after + 1..).map(|(_, (e, _))| *e).collect();
                prop_assert_eq!(got, want);
            }
            for segment in 1..10 {
                let got: Vec<Entry> = level.in_segment(segment).collect();
                let want: Vec<Entry> = expected.iter().filter(|e| e.pos.segment == segment).copied().collect();
                prop_assert_eq!(got, want);
            }
        }
    }

    #[test]
    fn a_sequential_backlog_takes_a_few_bytes_a_message() {
        // Records one after another, segments of 64 MiB, as a filling queue's.
        let mut level = Level::default();
        let mut pos = Position {
            segment: 1,
            offset: 64,
        };
        for id in 1..=100_000 {
            let bytes = 1100 + id % 3;
            if pos.offset + bytes > 64 << 20 {
                pos = Position {
                    segment: pos.segment + 1,
                    offset: 64,
                };
            }
            level.insert(Entry { id, pos, bytes });
            pos.offset += bytes;
        }
        let mut buf = BytesMut::new();
        level.dump(&mut buf, |_| Ok::<(), ()>(())).unwrap();
        let per_message = buf.len() as f64 / 100_000.0;
        assert!(per_message < 5.0, "{per_message} bytes a message");
    }

    #[test]
    fn a_garbled_dump_is_refused_not_believed() {
        let mut level = Level::default();
        for id in 1..=200 {
            level.insert(entry(id));
        }
        let mut buf = BytesMut::new();
        level.dump(&mut buf, |_| Ok::<(), ()>(())).unwrap();
        for i in 0..buf.len() {
            let mut bad = buf.to_vec();
            bad[i] ^= 0x5a;
            let mut at = 0;
            if let Ok(l) = Level::undump(&bad, &mut at) {
                // Some bytes (a live bit, an entry's size) change what it says
                // without breaking its shape; it must still be a well-formed level.
                let _: Vec<Entry> = l.iter().collect();
            }
        }
    }
}
