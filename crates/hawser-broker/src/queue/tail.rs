//! Paging: the messages of a container left in the store, per priority (see
//! the parent module), and the reads that bring them back.

use super::{Consumer, Entry, MessageQueue, MAX_DISPATCH_SCAN};
use crate::message::{MessageId, MAX_PRIORITY};
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
                in_memory: self
                    .held
                    .iter()
                    .filter(|(hp, _)| usize::from(*hp) == p)
                    .map(|(_, id)| *id)
                    .collect(),
            })
            .collect()
    }

    /// Messages of `priority` waiting in the store.
    pub fn paged_count(&self, priority: u8) -> u64 {
        self.tails[usize::from(priority.min(MAX_PRIORITY))].count
    }

    /// Counts a message left in the store, written by record `seq` (see the module).
    pub fn enqueue_paged(&mut self, id: MessageId, priority: u8, seq: Seq) {
        let tail = &mut self.tails[usize::from(priority.min(MAX_PRIORITY))];
        debug_assert!(id > tail.after, "ids grow");
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
        self.held.push((entry.msg.priority, entry.msg.id));
        self.hold_for_transaction(entry);
    }

    /// Counts the messages a store recovered, all left in the store.
    pub fn recovered(&mut self, counts: &[u64; PRIORITIES]) {
        for (tail, &count) in self.tails.iter_mut().zip(counts) {
            tail.count += count;
            self.paged_len += count;
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
        let starved = memory != Memory::Full
            && self.pending_len > 0
            && self.pending_len < MAX_DISPATCH_SCAN
            && takers;
        let mut loaded = 0;
        for priority in (0..PRIORITIES).rev() {
            loaded += self.pending[priority].len();
            let tail = &self.tails[priority];
            if tail.count == 0 {
                continue;
            }
            let wanted = loaded == 0 || starved || (memory == Memory::Room && loaded < PAGE_LOW);
            return wanted.then_some(PageWanted {
                priority: priority as u8,
                after: tail.after,
                limit: ReadLimit {
                    messages: PAGE_BATCH,
                    bytes: PAGE_BYTES,
                },
            });
        }
        None
    }

    /// Marks a read as under way, with the broker's `token` for it.
    pub fn start_reading(&mut self, token: u64) {
        self.reading = Some(token);
    }

    /// Takes what read `token` found for `priority` (in id order): messages
    /// above the tail's mark join the pending ones, behind those in memory.
    /// `expected` is how many the tail held when the read was asked for. A
    /// read may return fewer than it asked for (its byte budget), but one
    /// that found nothing at all while the tail held some means the store
    /// does not have them: they are dropped from the count, and their number
    /// returned. `None` if the read is not this container's (it was replaced
    /// meanwhile).
    pub fn take_page(
        &mut self,
        token: u64,
        priority: u8,
        entries: Vec<Entry>,
        expected: u64,
    ) -> Option<u64> {
        if self.reading != Some(token) {
            return None;
        }
        self.reading = None;
        let p = usize::from(priority.min(MAX_PRIORITY));
        let mut taken = 0;
        let found = !entries.is_empty();
        for mut entry in entries {
            let tail = &mut self.tails[p];
            if entry.msg.id <= tail.after {
                continue;
            }
            tail.after = entry.msg.id;
            if let Some(i) = self.held.iter().position(|&(_, id)| id == entry.msg.id) {
                // Held for a prepared transaction since recovery (or given
                // back by it already): it is in memory, not in the tail.
                self.held.swap_remove(i);
                continue;
            }
            taken += 1;
            entry.seq = entry.seq.max(tail.seq);
            self.push_back(entry);
        }
        let after = self.tails[p].after;
        self.held
            .retain(|&(held_priority, id)| usize::from(held_priority) != p || id > after);
        let missing = if found { 0 } else { expected };
        let tail = &mut self.tails[p];
        let gone = (taken + missing).min(tail.count);
        tail.count -= gone;
        self.paged_len -= gone;
        Some(missing)
    }

    /// Ends a read that failed; the broker asks again later.
    pub fn read_failed(&mut self, token: u64) {
        if self.reading == Some(token) {
            self.reading = None;
        }
    }
}
