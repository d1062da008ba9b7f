//! Paging: the messages of a container left in the store, per priority (see
//! the parent module), and the reads that bring them back.

use super::{Consumer, Entry, MessageQueue, MAX_DISPATCH_SCAN};
use crate::outbox::ConsumerId;

use crate::message::{Message, MessageId, MAX_PRIORITY};
use crate::store::{ReadLimit, Seq, PRIORITIES};

/// Stored messages read back per request (ActiveMQ's cursors page in 200).
pub const PAGE_BATCH: usize = 500;

/// Bytes of stored messages read back per request, at most (a read returns
/// one message at least): 500 messages of 10 MiB are not read at once.
pub const PAGE_BYTES: u64 = 4 * 1024 * 1024;

/// A priority's stored messages are read back when fewer than this many
/// messages at or above it are in memory: ahead of the consumers.
pub const PAGE_LOW: usize = PAGE_BATCH / 2;

/// The messages of one priority left in the store (see the module).
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Tail {
    /// How many.
    pub(super) count: u64,
    /// Each has an id above this; every message of this priority at or below
    /// it is in memory, delivered or gone.
    pub(super) after: MessageId,
    /// The last store record that enqueued one: none of them may be shown
    /// to a consumer before that record is durable.
    pub(super) seq: Seq,
    /// How far a scan has looked (at least `after` when one has): a scan
    /// reads on past messages kept in memory that consumers cannot take, for
    /// the ones they can ([`MessageQueue::page_wanted`]).
    pub(super) scan: MessageId,
    /// Of `count`, those with ids up to `scan`: looked at by a scan, wanted
    /// by none of the consumers there were, and left in the store.
    pub(super) skipped: u64,
}

impl Tail {
    /// True if every one of its messages was looked at by a scan and left:
    /// dispatch may go below it, and only a read with room in memory (or a
    /// new consumer) brings them back.
    pub(super) fn scanned_all(&self) -> bool {
        self.count > 0 && self.count == self.skipped
    }

    /// Forgets what scans found (a new consumer may want what they left).
    pub(super) fn rescan(&mut self) {
        self.scan = self.after;
        self.skipped = 0;
    }
}

/// The messages of one priority of a container that wait in the store only:
/// the first `count` stored messages of that priority with ids above
/// `after`, leaving out those with ids in `in_memory` (held in memory for a
/// recovered transaction, or given back by it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PagedOut {
    /// The priority.
    pub priority: u8,
    /// Every one has an id above this.
    pub after: MessageId,
    /// How many.
    pub count: u64,
    /// Stored messages above `after` that are not among them.
    pub in_memory: Vec<MessageId>,
}

/// What [`MessageQueue::take_page`] took.
#[derive(Debug, Default)]
pub struct PageTaken {
    /// Messages the tail counted that the store did not have.
    pub missing: u64,
    /// The spilled (non-persistent) messages now in memory: the broker
    /// dequeues them from the store at once (see `paging`).
    pub spilled: Vec<MessageId>,
}

/// What a scan makes of a message it read.
enum Scanned {
    /// A consumer with credit takes it.
    Taken,
    /// No consumer's selector (or group) wants it: it stays in the store.
    Unwanted,
    /// These consumers want it but have no credit left: the scan stops there.
    NoCredit(Vec<ConsumerId>),
}

/// How full a container's memory is, for [`MessageQueue::page_wanted`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Memory {
    /// Under its limit.
    Room,
    /// Over its limit, under twice it.
    Slack,
    /// Twice its limit or more.
    Full,
}

/// A read of stored messages the container asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageWanted {
    /// The priority to read.
    pub priority: u8,
    /// Read messages with ids above this.
    pub after: MessageId,
    /// How much it may read.
    pub limit: ReadLimit,
    /// A scan: the container keeps only what a waiting consumer can take
    /// now, and leaves the rest in the store.
    pub scan: bool,
}

impl MessageQueue {
    /// Messages waiting for a consumer in the store only (paged out).
    pub fn paged_len(&self) -> u64 {
        self.paged_len
    }

    /// True while messages of `priority` wait in the store: a new one of that
    /// priority must wait there too, behind them.
    pub fn is_paging(&self, priority: u8) -> bool {
        self.tails[usize::from(priority.min(MAX_PRIORITY))].count > 0
    }

    /// Per priority with messages in the store (highest first): what
    /// [`PagedOut`] says.
    pub fn tails(&self) -> Vec<PagedOut> {
        (0..PRIORITIES)
            .rev()
            .filter(|&p| self.tails[p].count > 0)
            .map(|p| PagedOut {
                priority: p as u8,
                after: self.tails[p].after,
                count: self.tails[p].count,
                in_memory: {
                    let mut ids: Vec<MessageId> = self
                        .held
                        .iter()
                        .filter(|(_, hp)| usize::from(**hp) == p)
                        .map(|(id, _)| *id)
                        .collect();
                    ids.sort_unstable();
                    ids
                },
            })
            .collect()
    }

    /// Messages of `priority` waiting in the store.
    pub fn paged_count(&self, priority: u8) -> u64 {
        self.tails[usize::from(priority.min(MAX_PRIORITY))].count
    }

    /// True if a message with this id may join its priority's tail: ids in a
    /// tail grow, and reads start above its mark. A message with an older id
    /// (sent in an XA transaction prepared before a read or a purge moved the
    /// mark past it) stays in memory instead, or no read would find it.
    pub fn can_page(&self, id: MessageId, priority: u8) -> bool {
        id > self.tails[usize::from(priority.min(MAX_PRIORITY))].after
    }

    /// Drops every pending message, in memory and in the store (an
    /// operator's purge): returns those that were in memory, and how many
    /// were in the store. `last_id` is the last message id given out: every
    /// tail's mark moves there, so that reads from now on find only messages
    /// enqueued after the purge, not the ones kept (delivered, held by a
    /// transaction) nor any a store has not yet dropped. A read under way is
    /// disowned: what it brings back is discarded.
    pub fn purge(&mut self, last_id: MessageId) -> (Vec<Entry>, u64) {
        let entries = self.drain_pending();
        self.expiring -= entries
            .iter()
            .filter(|e| e.msg.expires_ms.is_some())
            .count();
        let paged = self.paged_len;
        for tail in &mut self.tails {
            tail.count = 0;
            tail.after = tail.after.max(last_id);
            tail.rescan();
        }
        self.paged_len = 0;
        self.reading = None;
        self.reading_scan = false;
        self.scan_stalled_on.clear();
        self.held.clear();
        (entries, paged)
    }

    /// Counts a message left in the store, written by record `seq` (see the module).
    pub fn enqueue_paged(&mut self, id: MessageId, priority: u8, seq: Seq) {
        let tail = &mut self.tails[usize::from(priority.min(MAX_PRIORITY))];
        debug_assert!(id > tail.after, "ids grow");
        self.entered += 1;
        tail.count += 1;
        tail.seq = tail.seq.max(seq);
        self.paged_len += 1;
    }

    /// Holds a recovered message for the prepared transaction that
    /// acknowledged it ([`MessageQueue::hold_for_transaction`]); the store
    /// counted it among the recovered ones, which it leaves: reads skip it.
    pub fn hold_recovered(&mut self, entry: Entry) {
        let tail = &mut self.tails[usize::from(entry.msg.priority)];
        if tail.count > 0 {
            tail.count -= 1;
            self.paged_len -= 1;
        }
        self.held.insert(entry.msg.id, entry.msg.priority);
        self.hold_for_transaction(entry);
    }

    /// Counts the messages a store recovered, all left in the store.
    pub fn recovered(&mut self, counts: &[u64; PRIORITIES]) {
        for (tail, &count) in self.tails.iter_mut().zip(counts) {
            tail.count += count;
            self.paged_len += count;
            self.entered += count;
        }
    }

    /// The read of stored messages this container needs, if any and none is
    /// under way: the highest priority that has some,
    /// - with [`Memory::Room`], once fewer than [`PAGE_LOW`] messages at or
    ///   above it are in memory;
    /// - up to [`Memory::Slack`] (twice the limit), also when its consumers
    ///   can take nothing of what is in memory (selectors), up to
    ///   [`MAX_DISPATCH_SCAN`] messages: what keeps a selective consumer from
    ///   starving behind messages only others want;
    /// - whatever the memory, when nothing at or above it is in memory:
    ///   dispatch cannot pass it, so without the read nothing moves.
    ///
    /// Past twice the limit, a consumer that can take nothing in memory (of
    /// fewer than [`MAX_DISPATCH_SCAN`] messages, all of which dispatch
    /// looked at, so none it could take is passed over) gets a *scan*: the next batch
    /// after what earlier scans looked at, of which the container keeps only
    /// what its consumers with credit can take now (`take_page`), leaving the
    /// rest in the store (`Tail::skipped`). A selector that matches one
    /// stored message in a million is served in bounded memory; the messages
    /// it passed over are read again in order once memory has room, or a new
    /// consumer comes. A priority scanned to its end does not hold dispatch
    /// of lower ones: nothing in it is for the consumers there are.
    pub fn page_wanted(&self, memory: Memory) -> Option<PageWanted> {
        if self.paged_len == 0 || self.reading.is_some() {
            return None;
        }
        // Consumers with credit and messages in memory after a dispatch: none
        // of them takes what is in memory. An exclusive consumer shuts the
        // others out, so only its credit counts.
        let takers = match self.consumers.iter().find(|c| c.exclusive) {
            Some(owner) => owner.has_credit(),
            None => self.consumers.iter().any(Consumer::has_credit),
        };
        // Dispatch looked at every message in memory (fewer than it scans)
        // and gave none to a consumer with credit.
        let stuck = self.pending_len > 0 && self.pending_len < MAX_DISPATCH_SCAN && takers;
        let starved = stuck && memory != Memory::Full;
        // A scan that stopped for a consumer without credit goes on once one
        // of those it stopped for has credit again (or is gone).
        let stalled = !self.scan_stalled_on.is_empty()
            && self.scan_stalled_on.iter().all(|id| {
                self.consumers
                    .iter()
                    .any(|c| c.id == *id && !c.has_credit())
            });
        let scan = stuck && memory == Memory::Full && !stalled;
        let limit = ReadLimit {
            messages: PAGE_BATCH,
            bytes: PAGE_BYTES,
        };
        let mut loaded = 0;
        for priority in (0..PRIORITIES).rev() {
            loaded += self.pending[priority].len();
            let tail = &self.tails[priority];
            if tail.count == 0 {
                continue;
            }
            let scanned_all = tail.scanned_all();
            // (Nothing at or above it in memory: dispatch cannot pass it,
            // so it is read whatever the memory; but a scan, when one is
            // due, serves the consumers waiting and holds less.)
            let wanted = (loaded == 0 && !scanned_all && !scan)
                || starved
                || (memory == Memory::Room && loaded < PAGE_LOW);
            if wanted {
                return Some(PageWanted {
                    priority: priority as u8,
                    after: tail.after,
                    limit,
                    scan: false,
                });
            }
            if !scanned_all {
                return scan.then_some(PageWanted {
                    priority: priority as u8,
                    after: tail.scan.max(tail.after),
                    limit,
                    scan: true,
                });
            }
        }
        None
    }

    /// Marks a read as under way, with the broker's `token` for it.
    pub fn start_reading(&mut self, token: u64, wanted: &PageWanted) {
        self.reading = Some(token);
        self.reading_scan = wanted.scan;
    }

    /// Takes what read `token` found for `priority` (in id order): messages
    /// above the tail's mark join the pending ones, behind those in memory.
    /// `expected` is how many the tail held when the read was asked for. A
    /// read may return fewer than it asked for (its byte budget), but one
    /// that found nothing at all while the tail held some means the store
    /// does not have them: they are dropped from the count, and their number
    /// returned (`missing`). `None` if the read is not this container's (it
    /// was replaced meanwhile).
    pub fn take_page(
        &mut self,
        token: u64,
        priority: u8,
        entries: Vec<Entry>,
        expected: u64,
    ) -> Option<PageTaken> {
        if self.reading != Some(token) {
            return None;
        }
        self.reading = None;
        let p = usize::from(priority.min(MAX_PRIORITY));
        let mut out = PageTaken::default();
        if self.reading_scan {
            out.missing = self.take_scan(p, entries, expected, &mut out.spilled);
            return Some(out);
        }
        let mut taken = 0;
        let found = !entries.is_empty();
        for mut entry in entries {
            let tail = &mut self.tails[p];
            if entry.msg.id <= tail.after {
                continue;
            }
            tail.after = entry.msg.id;
            if self.held.remove(&entry.msg.id).is_some() {
                // Held for a prepared transaction since recovery (or given
                // back by it already), or taken by a scan: it is in memory,
                // not in the tail.
                continue;
            }
            let tail = &mut self.tails[p];
            if entry.msg.id <= tail.scan {
                // A scan left it in the store: it comes into memory now.
                tail.skipped = tail.skipped.saturating_sub(1);
            }
            taken += 1;
            entry.seq = entry.seq.max(tail.seq);
            if !entry.msg.persistent {
                out.spilled.push(entry.msg.id);
            }
            self.push_back(entry);
        }
        let after = self.tails[p].after;
        self.held
            .retain(|&id, &mut held_priority| usize::from(held_priority) != p || id > after);
        let missing = if found { 0 } else { expected };
        let tail = &mut self.tails[p];
        let gone = (taken + missing).min(tail.count);
        tail.count -= gone;
        self.paged_len -= gone;
        if tail.after >= tail.scan || tail.count == 0 {
            tail.rescan();
        }
        tail.skipped = tail.skipped.min(tail.count);
        out.missing = missing;
        Some(out)
    }

    /// Takes what a scan read (see [`MessageQueue::page_wanted`]): in id
    /// order, a message a consumer with credit can take now joins the
    /// pending ones (and the held ones, so that a read from the tail's mark
    /// passes over it); one no consumer wants is left in the store. A message
    /// a consumer wants but has no credit left for ends the scan before it,
    /// so that it is looked at again. Returns how many the store did not have
    /// (as `take_page`).
    fn take_scan(
        &mut self,
        p: usize,
        entries: Vec<Entry>,
        expected: u64,
        spilled: &mut Vec<MessageId>,
    ) -> u64 {
        let mut credit: Vec<u32> = self.consumers.iter().map(Consumer::credit).collect();
        let found = !entries.is_empty();
        let mut kept = 0;
        self.scan_stalled_on.clear();
        for mut entry in entries {
            let tail = &self.tails[p];
            let from = tail.scan.max(tail.after);
            if entry.msg.id <= from {
                continue;
            }
            if self.held.contains_key(&entry.msg.id) {
                // In memory already (held for a prepared transaction).
                self.tails[p].scan = entry.msg.id;
                continue;
            }
            match self.scan_pick(&entry.msg, &mut credit) {
                Scanned::Taken => {
                    let tail = &mut self.tails[p];
                    tail.scan = entry.msg.id;
                    entry.seq = entry.seq.max(tail.seq);
                    self.held.insert(entry.msg.id, p as u8);
                    kept += 1;
                    if !entry.msg.persistent {
                        spilled.push(entry.msg.id);
                    }
                    self.push_back(entry);
                }
                Scanned::Unwanted => {
                    let tail = &mut self.tails[p];
                    tail.scan = entry.msg.id;
                    tail.skipped += 1;
                }
                Scanned::NoCredit(wanted_by) => {
                    self.scan_stalled_on = wanted_by;
                    break;
                }
            }
        }
        let tail = &mut self.tails[p];
        let missing = if found {
            0
        } else {
            expected.min(tail.count - tail.skipped)
        };
        let gone = (kept + missing).min(tail.count);
        tail.count -= gone;
        self.paged_len -= gone;
        tail.skipped = tail.skipped.min(tail.count);
        missing
    }

    /// Whether a consumer with `credit` left could take `msg` now, as
    /// dispatch would choose (its group's consumer, the exclusive one, or any
    /// whose selector matches); takes the credit if so.
    fn scan_pick(&self, msg: &Message, credit: &mut [u32]) -> Scanned {
        let owner = msg
            .fields
            .group_id
            .as_ref()
            .and_then(|g| self.groups.get(g))
            .and_then(|id| self.consumers.iter().position(|c| c.id == *id))
            .or_else(|| self.consumers.iter().position(|c| c.exclusive));
        let candidates = match owner {
            Some(i) => i..i + 1,
            None => 0..self.consumers.len(),
        };
        let mut wanted_by = Vec::new();
        for i in candidates {
            let c = &self.consumers[i];
            if c.selector.as_ref().is_none_or(|s| s.matches(&**msg)) {
                if credit[i] > 0 {
                    credit[i] -= 1;
                    return Scanned::Taken;
                }
                wanted_by.push(c.id);
            }
        }
        if wanted_by.is_empty() {
            Scanned::Unwanted
        } else {
            Scanned::NoCredit(wanted_by)
        }
    }

    /// Ends a read that failed; the broker asks again later.
    pub fn read_failed(&mut self, token: u64) {
        if self.reading == Some(token) {
            self.reading = None;
        }
    }
}
