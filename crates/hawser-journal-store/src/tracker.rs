//! Which records are live, and where: the journal store's index of messages
//! (per container and priority, in id order), durable subscriptions, producer
//! windows and prepared transactions, with live holds counted per segment for
//! reclaiming. Appends and recovery apply records to it; a checkpoint
//! (`checkpoint`) saves it so that recovery need not replay the records before.

use std::collections::BTreeMap;
use std::sync::Arc;

use foldhash::HashMap;
use hawser_broker::message::MAX_PRIORITY;
use hawser_broker::PRIORITIES;
use hawser_broker::{MessageId, PendingCounts, ProducerKey, Seq, SeqWindow, StoreKey, StoreOp};
use hawser_journal::Position;

use crate::level::{Entry, Level};

/// One container's hold on a record.
#[derive(Clone, Copy, Debug)]
pub(crate) struct LiveRef {
    /// Where the record is.
    pub(crate) pos: Position,
    /// This hold's share of the record's bytes.
    pub(crate) bytes: u64,
    /// Redeliveries so far (copied forward with the message).
    pub(crate) redeliveries: u32,
    /// The message's priority (0 for holds that are not messages): reads
    /// (`Store::read`) are per priority.
    pub(crate) priority: u8,
}

impl LiveRef {
    pub(crate) fn at(pos: Position, bytes: u64) -> LiveRef {
        LiveRef {
            pos,
            bytes,
            redeliveries: 0,
            priority: 0,
        }
    }
}

/// One container's live messages: per priority, in id order (the order reads
/// return them in). A dequeue names no priority: it looks in the levels that
/// hold anything, which is one or a few.
#[derive(Clone, Default)]
pub(crate) struct Levels(pub(crate) [Level; PRIORITIES]);

impl Levels {
    fn slot(priority: u8) -> usize {
        usize::from(priority.min(MAX_PRIORITY))
    }

    fn live(level: &Level, priority: usize, e: Entry) -> LiveRef {
        LiveRef {
            pos: e.pos,
            bytes: e.bytes,
            redeliveries: level.redeliveries(e.id),
            priority: priority as u8,
        }
    }

    /// Adds a hold; returns the one it replaced (a copy replaces its original).
    pub(crate) fn insert(&mut self, id: MessageId, r: LiveRef) -> Option<LiveRef> {
        let p = Levels::slot(r.priority);
        let level = &mut self.0[p];
        let count = level.redeliveries(id);
        let old = level.insert(Entry {
            id,
            pos: r.pos,
            bytes: r.bytes,
        });
        if old.is_some() || r.redeliveries > 0 {
            // (A new message has none: no lookup for it.)
            level.set_redeliveries(id, r.redeliveries);
        }
        old.map(|e| LiveRef {
            redeliveries: count,
            ..Levels::live(level, p, e)
        })
    }

    pub(crate) fn get(&self, id: MessageId) -> Option<LiveRef> {
        self.0
            .iter()
            .enumerate()
            .filter(|(_, level)| !level.is_empty())
            .find_map(|(p, level)| level.get(id).map(|e| Levels::live(level, p, e)))
    }

    /// Sets a live message's redelivery count.
    pub(crate) fn set_redeliveries(&mut self, id: MessageId, count: u32) {
        for level in self.0.iter_mut().filter(|level| !level.is_empty()) {
            if level.set_redeliveries(id, count) {
                return;
            }
        }
    }

    /// Removes every message but `keep`; returns the holds removed.
    pub(crate) fn purge(&mut self, keep: &[MessageId]) -> Vec<LiveRef> {
        let keep: std::collections::HashSet<MessageId> = keep.iter().copied().collect();
        let mut gone = Vec::new();
        for (p, level) in self.0.iter_mut().enumerate() {
            if level.is_empty() {
                continue;
            }
            let ids: Vec<MessageId> = level
                .iter()
                .map(|e| e.id)
                .filter(|id| !keep.contains(id))
                .collect();
            for id in ids {
                let count = level.redeliveries(id);
                if let Some(e) = level.remove(id) {
                    gone.push(LiveRef {
                        redeliveries: count,
                        ..Levels::live(level, p, e)
                    });
                }
            }
        }
        gone
    }

    pub(crate) fn remove(&mut self, id: MessageId) -> Option<LiveRef> {
        self.0
            .iter_mut()
            .enumerate()
            .filter(|(_, level)| !level.is_empty())
            .find_map(|(p, level)| {
                let count = level.redeliveries(id);
                level.remove(id).map(|e| LiveRef {
                    redeliveries: count,
                    ..Levels::live(level, p, e)
                })
            })
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.iter().all(Level::is_empty)
    }

    /// Every live message's hold.
    pub(crate) fn values(&self) -> impl Iterator<Item = LiveRef> + '_ {
        self.0
            .iter()
            .enumerate()
            .flat_map(|(p, level)| level.iter().map(move |e| Levels::live(level, p, e)))
    }

    /// The holds of messages whose record is in `segment`, with their ids.
    pub(crate) fn in_segment(
        &self,
        segment: u64,
    ) -> impl Iterator<Item = (MessageId, LiveRef)> + '_ {
        self.0.iter().enumerate().flat_map(move |(p, level)| {
            level
                .in_segment(segment)
                .map(move |e| (e.id, Levels::live(level, p, e)))
        })
    }

    /// Messages of `priority` with ids above `after`, in id order.
    pub(crate) fn after(
        &self,
        priority: u8,
        after: MessageId,
    ) -> impl Iterator<Item = (MessageId, LiveRef)> + '_ {
        let p = Levels::slot(priority);
        let level = &self.0[p];
        level
            .after(after)
            .map(move |e| (e.id, Levels::live(level, p, e)))
    }

    /// Messages per priority.
    pub(crate) fn counts(&self) -> PendingCounts {
        let mut counts = [0; PRIORITIES];
        for (count, level) in counts.iter_mut().zip(&self.0) {
            *count = level.len();
        }
        counts
    }
}

/// Live holds counted per segment.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct SegmentLive {
    pub(crate) refs: u64,
    pub(crate) bytes: u64,
}

/// Non-persistent messages the engine left in the store beyond memory (its
/// spill, ActiveMQ's temporary store): indexed and held apart from the
/// persistent ones, so that a checkpoint leaves them out and every open drops
/// them (no restart or takeover delivers a non-persistent message).
#[derive(Default)]
pub(crate) struct Spilled {
    /// Per container, as [`Tracker::messages`].
    pub(crate) messages: HashMap<StoreKey, Levels>,
    /// Their holds per segment, as [`Tracker::segments`].
    pub(crate) segments: BTreeMap<u64, SegmentLive>,
    /// Their holds' bytes: what the temporary store's limit counts.
    pub(crate) bytes: u64,
}

/// Which records are live, and where.
#[derive(Default)]
pub(crate) struct Tracker {
    /// Last sequence handed out.
    pub(crate) seq: Seq,
    /// Live messages per container. Ordered by id, which is the order they were
    /// stored in: a queue consumed in order removes from one end, which stays in
    /// the cache; in a hash map of a large backlog every removal was a cache and
    /// TLB miss (8.6 % of the broker's CPU draining 1.5 million messages).
    pub(crate) messages: HashMap<StoreKey, Levels>,
    /// Live durable subscriptions.
    pub(crate) subscriptions: HashMap<StoreKey, LiveRef>,
    /// Each tracked producer's window, and the oldest record it still needs:
    /// its marks since its last snapshot (`ProducerWindow`) start there, so
    /// that segment must stay, or the window be copied forward, for a restart
    /// to know the window.
    pub(crate) producers: HashMap<ProducerKey, (LiveRef, SeqWindow)>,
    /// Prepared XA transactions not yet resolved: their record stays (or is
    /// copied forward) until a commit or rollback says what became of them.
    pub(crate) prepared: HashMap<Arc<str>, LiveRef>,
    /// Live holds per segment.
    pub(crate) segments: BTreeMap<u64, SegmentLive>,
    /// The last record applied: a checkpoint of this tracker stands for every
    /// record up to it.
    pub(crate) last: Option<Position>,
    /// The highest message id ever enqueued (ids are never reused: a restart
    /// goes on above it).
    pub(crate) max_id: MessageId,
    /// Bytes of records applied since the store opened (when to checkpoint).
    pub(crate) applied_bytes: u64,
    /// Non-persistent messages kept beyond memory.
    pub(crate) spilled: Spilled,
}

impl Tracker {
    pub(crate) fn hold(&mut self, r: LiveRef) {
        hold_in(&mut self.segments, r);
    }

    pub(crate) fn release(&mut self, r: LiveRef) {
        release_in(&mut self.segments, r);
    }

    fn hold_spilled(&mut self, r: LiveRef) {
        hold_in(&mut self.spilled.segments, r);
        self.spilled.bytes += r.bytes;
    }

    fn release_spilled(&mut self, r: LiveRef) {
        release_in(&mut self.spilled.segments, r);
        self.spilled.bytes = self.spilled.bytes.saturating_sub(r.bytes);
    }

    /// Live holds on `segment`, persistent and spilled.
    pub(crate) fn live(&self, segment: u64) -> SegmentLive {
        let a = self.segments.get(&segment).copied().unwrap_or_default();
        let b = self
            .spilled
            .segments
            .get(&segment)
            .copied()
            .unwrap_or_default();
        SegmentLive {
            refs: a.refs + b.refs,
            bytes: a.bytes + b.bytes,
        }
    }

    /// Forgets a dead segment's (empty) hold counts.
    pub(crate) fn forget_segment(&mut self, segment: u64) {
        self.segments.remove(&segment);
        self.spilled.segments.remove(&segment);
    }

    /// `key`'s live message `id`, persistent or spilled.
    pub(crate) fn message(&self, key: &StoreKey, id: MessageId) -> Option<LiveRef> {
        self.messages
            .get(key)
            .and_then(|m| m.get(id))
            .or_else(|| self.spilled.messages.get(key).and_then(|m| m.get(id)))
    }

    /// Up to `n` of `key`'s messages of `priority` with ids above `after`, in
    /// id order: persistent and spilled ones together, as they entered.
    pub(crate) fn after(
        &self,
        key: &StoreKey,
        priority: u8,
        after: MessageId,
        n: usize,
    ) -> Vec<(MessageId, LiveRef)> {
        let mut out: Vec<(MessageId, LiveRef)> = self
            .messages
            .get(key)
            .map(|m| m.after(priority, after).take(n).collect())
            .unwrap_or_default();
        if let Some(m) = self.spilled.messages.get(key) {
            let before = out.len();
            out.extend(m.after(priority, after).take(n));
            if out.len() > before && before > 0 {
                out.sort_unstable_by_key(|(id, _)| *id);
            }
            out.truncate(n);
        }
        out
    }

    /// Drops every spilled message (an open does: see [`Spilled`]); returns
    /// how many there were.
    pub(crate) fn drop_spilled(&mut self) -> u64 {
        let dropped = self
            .spilled
            .messages
            .values()
            .map(|m| m.counts().iter().sum::<u64>())
            .sum();
        self.spilled = Spilled::default();
        dropped
    }

    /// Applies one record's ops (written at `pos`, `len` bytes) to the live set.
    pub(crate) fn apply(
        &mut self,
        ops: &[StoreOp<impl hawser_broker::message::AsMessageData>],
        pos: Position,
        len: u64,
    ) {
        let holds: usize = ops
            .iter()
            .map(|op| match op {
                StoreOp::Enqueue { targets, .. } => targets.len(),
                StoreOp::Subscribe(_)
                | StoreOp::ProducerSeen { .. }
                | StoreOp::ProducerWindow { .. }
                | StoreOp::Prepare(_) => 1,
                _ => 0,
            })
            .sum();
        let share = len / holds.max(1) as u64;
        self.last = Some(pos);
        self.applied_bytes += len;
        for op in ops {
            match op {
                StoreOp::Enqueue { message, targets } => {
                    let data = message.message_data();
                    self.max_id = self.max_id.max(data.id);
                    for key in targets {
                        let r = LiveRef {
                            priority: data.priority,
                            ..LiveRef::at(pos, share)
                        };
                        // A copy made by reclaiming replaces the original.
                        if data.persistent {
                            let old = self
                                .messages
                                .entry(key.clone())
                                .or_default()
                                .insert(data.id, r);
                            if let Some(old) = old {
                                self.release(old);
                            }
                            self.hold(r);
                        } else {
                            let old = self
                                .spilled
                                .messages
                                .entry(key.clone())
                                .or_default()
                                .insert(data.id, r);
                            if let Some(old) = old {
                                self.release_spilled(old);
                            }
                            self.hold_spilled(r);
                        }
                    }
                }
                StoreOp::Dequeue { key, id } => {
                    if let Some(r) = self.messages.get_mut(key).and_then(|m| m.remove(*id)) {
                        self.release(r);
                    } else if let Some(r) = self
                        .spilled
                        .messages
                        .get_mut(key)
                        .and_then(|m| m.remove(*id))
                    {
                        self.release_spilled(r);
                    }
                }
                StoreOp::Redelivered { key, id, count } => {
                    for m in [
                        self.messages.get_mut(key),
                        self.spilled.messages.get_mut(key),
                    ]
                    .into_iter()
                    .flatten()
                    {
                        m.set_redeliveries(*id, *count);
                    }
                }
                StoreOp::Subscribe(sub) => {
                    let r = LiveRef::at(pos, share);
                    if let Some(old) = self.subscriptions.insert(sub.key(), r) {
                        self.release(old);
                    }
                    self.hold(r);
                }
                StoreOp::ProducerSeen { producer, seq } => match self.producers.get_mut(producer) {
                    // Pinned already, at an older record.
                    Some((_, window)) => window.insert(*seq),
                    None => {
                        let r = LiveRef::at(pos, share);
                        let mut window = SeqWindow::new();
                        window.insert(*seq);
                        self.producers.insert(producer.clone(), (r, window));
                        self.hold(r);
                    }
                },
                StoreOp::ProducerWindow { producer, window } => {
                    let r = LiveRef::at(pos, share);
                    if let Some((old, _)) =
                        self.producers.insert(producer.clone(), (r, window.clone()))
                    {
                        self.release(old);
                    }
                    self.hold(r);
                }
                StoreOp::ProducerForget { producer } => {
                    if let Some((r, _)) = self.producers.remove(producer) {
                        self.release(r);
                    }
                }
                StoreOp::Unsubscribe { client_id, name } => {
                    let key = StoreKey::Durable {
                        client_id: Arc::clone(client_id),
                        name: Arc::clone(name),
                    };
                    if let Some(r) = self.subscriptions.remove(&key) {
                        self.release(r);
                    }
                    for r in self.messages.remove(&key).unwrap_or_default().values() {
                        self.release(r);
                    }
                    for r in self
                        .spilled
                        .messages
                        .remove(&key)
                        .unwrap_or_default()
                        .values()
                    {
                        self.release_spilled(r);
                    }
                }
                StoreOp::Purge { key, keep } => {
                    if let Some(levels) = self.messages.get_mut(key) {
                        for r in levels.purge(keep) {
                            self.release(r);
                        }
                    }
                    if let Some(levels) = self.spilled.messages.get_mut(key) {
                        for r in levels.purge(keep) {
                            self.release_spilled(r);
                        }
                    }
                }
                StoreOp::Prepare(p) => {
                    let r = LiveRef::at(pos, share);
                    if let Some(old) = self.prepared.insert(Arc::clone(&p.xid), r) {
                        // A copy made by reclaiming replaces the original.
                        self.release(old);
                    }
                    self.hold(r);
                }
                StoreOp::Resolve { xid } => {
                    if let Some(r) = self.prepared.remove(xid) {
                        self.release(r);
                    }
                }
            }
        }
    }
}

fn hold_in(segments: &mut BTreeMap<u64, SegmentLive>, r: LiveRef) {
    let s = segments.entry(r.pos.segment).or_default();
    s.refs += 1;
    s.bytes += r.bytes;
}

fn release_in(segments: &mut BTreeMap<u64, SegmentLive>, r: LiveRef) {
    if let Some(s) = segments.get_mut(&r.pos.segment) {
        s.refs = s.refs.saturating_sub(1);
        s.bytes = s.bytes.saturating_sub(r.bytes);
    }
}
