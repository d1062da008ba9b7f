//! One message container and its consumers: the dispatch state machine.
//!
//! Every place that holds messages for consumers is a [`MessageQueue`]: a queue
//! with competing consumers, a durable subscription with at most one, a
//! non-durable topic subscription with exactly one. It orders pending messages by
//! priority (FIFO within a priority), hands them to consumers with free prefetch
//! credit (round robin among the highest consumer priority that can take the
//! message, honouring selectors and exclusive consumers) and tracks
//! what each consumer holds until it is acknowledged or handed back.
//!
//! It performs no I/O and takes the time as an argument; the broker decides what
//! to write to the store and where dead letters go.
//!
//! **Paging.** Beyond its memory limit a container keeps persistent messages in
//! the store only (and non-persistent ones the broker spilled there, see
//! `paging`): per priority a [`Tail`] counts them. They all entered after
//! every message of that priority held in memory, so they are exactly the
//! stored messages of that priority with ids above the tail's mark, and the
//! store reads them back in that order ([`crate::Store::read`]). While a
//! priority has a tail, later messages of it join the tail too (order), and
//! dispatch does not go below it before its messages are read (priority). The
//! broker asks for reads ([`MessageQueue::page_wanted`]) and hands what was
//! read back ([`MessageQueue::take_page`]); the `tail` module holds that part.

use std::collections::VecDeque;

use foldhash::HashMap;
use std::sync::Arc;

use hawser_selector::Selector;

use crate::consumed::Consumed;
use crate::message::{Message, MessageId, MAX_PRIORITY};
use crate::outbox::{AckMode, ConsumerId, Delivery, Outbox};
use crate::store::{Seq, PRIORITIES};

mod tail;

use tail::Tail;
pub use tail::{Memory, PageTaken, PageWanted, PagedOut, PAGE_BATCH, PAGE_BYTES, PAGE_LOW};

/// Most pending messages examined in one dispatch pass when consumers have
/// selectors, so a long run of messages nobody selects cannot stall the broker.
pub const MAX_DISPATCH_SCAN: usize = 10_000;

/// A message in a container, with what the container knows about it.
#[derive(Clone, Debug)]
pub struct Entry {
    /// The message, shared with other containers.
    pub msg: Arc<Message>,
    /// How often it has been handed back for redelivery.
    pub redeliveries: u32,
    /// The store record a consumer must not see it before (0: nothing to wait for).
    pub seq: Seq,
    /// The store record that made it persistent here, whatever `seq` says
    /// (0: none, or known durable): what a network link waits for before
    /// the message leaves this broker.
    pub record: Seq,
    /// Set when a consumer acknowledges it, for a producer waiting on its receipt.
    pub consumed: Option<Arc<Consumed>>,
}

/// A consumer attached to a container.
pub struct Consumer {
    /// Broker-wide consumer identity.
    pub id: ConsumerId,
    /// The protocol's subscription id, echoed on every delivery.
    pub subscription: Arc<str>,
    /// How the consumer acknowledges.
    pub ack_mode: AckMode,
    /// Most messages it may hold unacknowledged; 0: only what it pulls.
    pub prefetch: u32,
    /// Only messages matching it are dispatched to this consumer (queues only).
    pub selector: Option<Arc<Selector>>,
    /// Exclusive consumers get every message while they are the first exclusive one.
    pub exclusive: bool,
    /// Consumers of a lower priority get a message only when none of a
    /// higher one can (see [`crate::SubscribeSpec::priority`]).
    pub priority: i8,
    /// A network link's consumer: the path of the demand it serves.
    pub network_path: Option<Arc<str>>,
    /// Where its deliveries go.
    pub outbox: Arc<dyn Outbox>,
    /// Delivered and not yet acknowledged, in delivery order (cumulative acks walk it).
    unacked: VecDeque<MessageId>,
    /// Deliveries counting against `prefetch`. A transactional ack frees its slot
    /// before the transaction ends, as ActiveMQ does, so the consumer keeps flowing.
    in_window: u32,
    /// Messages asked for beyond the window (a consumer with prefetch 0 pulls
    /// each one).
    pulls: u32,
    /// Deliveries so far: the last one's ordinal (its place in delivery order).
    dispatched: u64,
    /// Of the messages that left `unacked` (acknowledged), the one delivered
    /// last, with its ordinal: what [`LastDelivered::Message`] most often names.
    settled_last: Option<(MessageId, u64)>,
}

impl Consumer {
    /// A consumer with nothing delivered yet.
    pub fn new(
        id: ConsumerId,
        subscription: Arc<str>,
        ack_mode: AckMode,
        prefetch: u32,
        selector: Option<Arc<Selector>>,
        exclusive: bool,
        outbox: Arc<dyn Outbox>,
    ) -> Consumer {
        Consumer {
            id,
            subscription,
            ack_mode,
            prefetch,
            selector,
            exclusive,
            priority: 0,
            network_path: None,
            outbox,
            unacked: VecDeque::new(),
            in_window: 0,
            pulls: 0,
            dispatched: 0,
            settled_last: None,
        }
    }

    /// The same consumer with consumer priority `priority`, serving the
    /// network demand of `network_path` if any.
    pub fn with_priority(self, priority: i8, network_path: Option<Arc<str>>) -> Consumer {
        Consumer {
            priority,
            network_path,
            ..self
        }
    }

    fn has_credit(&self) -> bool {
        self.in_window < self.prefetch || self.pulls > 0
    }

    /// Messages it may be given now.
    fn credit(&self) -> u32 {
        self.prefetch
            .saturating_sub(self.in_window)
            .saturating_add(self.pulls)
    }
}

/// A delivered message not yet settled.
#[derive(Debug)]
struct Inflight {
    /// The message and its counters.
    entry: Entry,
    /// Who holds it.
    consumer: ConsumerId,
    /// Its place in that consumer's delivery order (from 1).
    ordinal: u64,
    /// Acknowledged inside a transaction that has not ended yet.
    tx_acked: bool,
}

/// What a closing consumer's client says its application was given
/// (OpenWire's `lastDeliveredSequenceId`). What the consumer held beyond
/// that was only prefetched: it goes back as it was, not as a redelivery, so
/// it is neither marked redelivered nor counted towards the dead-letter queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LastDelivered {
    /// Nothing is known (a dropped connection, STOMP): everything the
    /// consumer held counts as delivered.
    Unknown,
    /// The application was given nothing: everything held was only prefetched.
    Nothing,
    /// The last message the application was given: what the consumer was
    /// given up to it, in delivery order, was delivered; what came after it
    /// was not.
    Message(MessageId),
}

/// What a detached consumer held, in delivery order.
#[derive(Debug, Default)]
pub struct Released {
    /// Delivered to its application and not acknowledged: a redelivery.
    pub delivered: Vec<Entry>,
    /// Only prefetched: goes back as it was.
    pub unseen: Vec<Entry>,
}

/// Why an acknowledgement could not be applied.
#[non_exhaustive]
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum AckError {
    /// The consumer holds no such unacknowledged message.
    #[error("message {0} is not awaiting acknowledgement by this subscription")]
    UnknownMessage(MessageId),
}

/// Pending messages by priority, the consumers, and what they hold.
#[derive(Default)]
pub struct MessageQueue {
    /// Pending messages in memory, one FIFO per priority 0..=9.
    pending: [VecDeque<Entry>; PRIORITIES],
    /// Total of all `pending` FIFOs.
    pending_len: usize,
    /// Pending messages left in the store, per priority (paging).
    tails: [Tail; PRIORITIES],
    /// Total of the tails.
    paged_len: u64,
    /// The read of stored messages under way, by the token the broker gave it.
    reading: Option<u64>,
    /// That read is a scan (see [`MessageQueue::page_wanted`]).
    reading_scan: bool,
    /// The consumers the last scan stopped for: the next message wanted
    /// one of them, and none had credit. No scan until one has (or goes).
    scan_stalled_on: Vec<ConsumerId>,
    /// Stored messages in memory with ids above their tail's mark, by id,
    /// with their priority: held since recovery for prepared transactions,
    /// or taken by a scan. A read from the mark skips them; one settled
    /// leaves (the store no longer has it either).
    held: HashMap<MessageId, u8>,
    /// Attached consumers in subscription order (the first exclusive one wins).
    consumers: Vec<Consumer>,
    /// Where the next round-robin search starts.
    next_consumer: usize,
    /// Delivered, unsettled messages.
    inflight: HashMap<MessageId, Inflight>,
    /// Pending or inflight messages that carry an expiry, so sweeps can skip this queue.
    expiring: usize,
    /// Message groups (JMSXGroupID) and the consumer each belongs to, at most
    /// [`MAX_GROUPS`]: a group's messages go to its consumer only, in order,
    /// until that consumer goes or the group is closed (sequence -1).
    groups: HashMap<Arc<str>, ConsumerId>,
    /// Messages that entered it since this broker started, recovered ones
    /// included (an operator's counters; see [`MessageQueue::entered`]).
    entered: u64,
}

/// Pulls a consumer may have outstanding: a client pulls one message at a
/// time, so more is a client that asks faster than it reads.
pub const MAX_PULLS: u32 = 1000;

/// Groups a queue remembers (ActiveMQ's default message group cache holds 1024).
/// Past it, an assignment is forgotten to make room: that group's next message
/// may go to another consumer, as with ActiveMQ's cache.
pub const MAX_GROUPS: usize = 1024;

impl MessageQueue {
    /// An empty container.
    pub fn new() -> MessageQueue {
        MessageQueue::default()
    }

    /// Messages waiting for a consumer, in memory.
    pub fn pending_len(&self) -> usize {
        self.pending_len
    }

    /// Messages delivered and not settled.
    pub fn inflight_len(&self) -> usize {
        self.inflight.len()
    }

    /// Attached consumers.
    pub fn consumer_count(&self) -> usize {
        self.consumers.len()
    }

    /// Attached consumers of clients (not network links).
    pub fn local_consumer_count(&self) -> usize {
        self.consumers
            .iter()
            .filter(|c| c.network_path.is_none())
            .count()
    }

    /// True if nothing is pending (in memory or the store), inflight or attached.
    pub fn is_idle(&self) -> bool {
        self.pending_len == 0
            && self.paged_len == 0
            && self.inflight.is_empty()
            && self.consumers.is_empty()
    }

    /// Adds a message at the back of its priority, in memory. A message that
    /// could stay in the store joins its priority's tail instead while there
    /// is one ([`MessageQueue::is_paging`]); one that cannot (non-persistent)
    /// goes ahead of the tail: JMS orders messages only within a delivery mode.
    pub fn enqueue(&mut self, entry: Entry) {
        self.entered += 1;
        let tail = &mut self.tails[usize::from(entry.msg.priority)];
        debug_assert!(
            !entry.msg.persistent || tail.count == 0 || entry.msg.id <= tail.after,
            "a persistent message joins its priority's tail (unless older than its mark: see can_page)"
        );
        if tail.count == 0 {
            tail.after = tail.after.max(entry.msg.id);
        }
        self.push_back(entry);
    }

    fn push_back(&mut self, entry: Entry) {
        if entry.msg.expires_ms.is_some() {
            self.expiring += 1;
        }
        self.pending_len += 1;
        self.pending[usize::from(entry.msg.priority)].push_back(entry);
    }

    /// Holds a recovered message for a prepared transaction that acknowledged
    /// it: no consumer gets it until the transaction commits or rolls back
    /// ([`MessageQueue::settle_tx_ack`]).
    pub fn hold_for_transaction(&mut self, entry: Entry) {
        if entry.msg.expires_ms.is_some() {
            self.expiring += 1;
        }
        self.inflight.insert(
            entry.msg.id,
            Inflight {
                entry,
                // Consumer ids start at 1: nobody's.
                consumer: 0,
                ordinal: 0,
                tx_acked: true,
            },
        );
    }

    /// Puts messages back in front of their priority, keeping their relative order.
    pub fn requeue_front(&mut self, entries: Vec<Entry>) {
        for entry in entries.into_iter().rev() {
            let p = usize::from(entry.msg.priority.min(MAX_PRIORITY));
            if entry.msg.id > self.tails[p].after {
                // Taken by a scan (or held for a recovered transaction), and
                // given back: still in the store above the mark, so a read,
                // now or once a tail forms again, must pass over it.
                self.held.insert(entry.msg.id, p as u8);
            }
            if entry.msg.expires_ms.is_some() {
                self.expiring += 1;
            }
            self.pending_len += 1;
            self.pending[usize::from(entry.msg.priority)].push_front(entry);
        }
    }

    /// Attaches a consumer. What scans left in the store may be for it: the
    /// next reads look at those messages again.
    pub fn add_consumer(&mut self, consumer: Consumer) {
        self.consumers.push(consumer);
        for tail in &mut self.tails {
            tail.rescan();
        }
    }

    /// Detaches a consumer and returns what it held unacknowledged (not what it
    /// acknowledged inside a still-open transaction: the transaction settles those).
    pub fn remove_consumer(&mut self, id: ConsumerId) -> Vec<Entry> {
        self.remove_consumer_after(id, LastDelivered::Unknown)
            .delivered
    }

    /// [`MessageQueue::remove_consumer`], told what the consumer's client
    /// delivered to its application: what it held is split into what was
    /// delivered and what was only prefetched.
    pub fn remove_consumer_after(&mut self, id: ConsumerId, last: LastDelivered) -> Released {
        let Some(pos) = self.consumers.iter().position(|c| c.id == id) else {
            return Released::default();
        };
        let consumer = self.consumers.remove(pos);
        if self.next_consumer > pos {
            self.next_consumer -= 1;
        }
        self.groups.retain(|_, c| *c != id);
        // Delivered: up to the last delivered message's ordinal, if the
        // consumer holds it or acknowledged it last; else (it is another
        // consumer's, or was acknowledged out of order) by message id, as
        // ActiveMQ decides, which only errs towards "delivered".
        enum Rule {
            All,
            None,
            UpToOrdinal(u64),
            UpToId(MessageId),
        }
        let rule = match last {
            LastDelivered::Unknown => Rule::All,
            LastDelivered::Nothing => Rule::None,
            LastDelivered::Message(x) => self
                .inflight
                .get(&x)
                .filter(|i| i.consumer == id && !i.tx_acked)
                .map(|i| i.ordinal)
                .or_else(|| {
                    consumer
                        .settled_last
                        .filter(|(m, _)| *m == x)
                        .map(|(_, o)| o)
                })
                .map_or(Rule::UpToId(x), Rule::UpToOrdinal),
        };
        let delivered = |i: &Inflight| match rule {
            Rule::All => true,
            Rule::None => false,
            Rule::UpToOrdinal(o) => i.ordinal <= o,
            Rule::UpToId(x) => i.entry.msg.id <= x,
        };
        let mut released = Released::default();
        for m in &consumer.unacked {
            let seen = self.inflight.get(m).is_some_and(&delivered);
            if let Some(entry) = self.take_inflight(*m) {
                if seen {
                    released.delivered.push(entry);
                } else {
                    released.unseen.push(entry);
                }
            }
        }
        released
    }

    /// Asks for one more message for `consumer` beyond its window; the
    /// caller dispatches. False if no such consumer.
    pub fn pull(&mut self, consumer: ConsumerId) -> bool {
        match self.consumer_mut(consumer) {
            Some(c) => {
                c.pulls = c.pulls.saturating_add(1).min(MAX_PULLS);
                true
            }
            None => false,
        }
    }

    /// Changes how many messages `consumer` may hold unacknowledged; the
    /// caller dispatches. What it holds stays with it, also beyond a smaller
    /// window. False if no such consumer.
    pub fn set_prefetch(&mut self, consumer: ConsumerId, prefetch: u32) -> bool {
        match self.consumer_mut(consumer) {
            Some(c) => {
                c.prefetch = prefetch;
                true
            }
            None => false,
        }
    }

    /// Withdraws what `consumer` asked for and has not got; true if there was
    /// something (so no message will come for it).
    pub fn cancel_pull(&mut self, consumer: ConsumerId) -> bool {
        self.consumer_mut(consumer)
            .is_some_and(|c| std::mem::take(&mut c.pulls) > 0)
    }

    /// Pulls of `consumer` not answered yet.
    pub fn pulls(&self, consumer: ConsumerId) -> u32 {
        self.consumers
            .iter()
            .find(|c| c.id == consumer)
            .map_or(0, |c| c.pulls)
    }

    /// True if a consumer with this id is attached.
    pub fn has_consumer(&self, id: ConsumerId) -> bool {
        self.consumers.iter().any(|c| c.id == id)
    }

    fn consumer_mut(&mut self, id: ConsumerId) -> Option<&mut Consumer> {
        self.consumers.iter_mut().find(|c| c.id == id)
    }

    fn take_inflight(&mut self, id: MessageId) -> Option<Entry> {
        let inflight = self.inflight.remove(&id)?;
        // Settled, or given back (`requeue_front` holds it again).
        self.held.remove(&id);
        if inflight.entry.msg.expires_ms.is_some() {
            self.expiring -= 1;
        }
        Some(inflight.entry)
    }

    /// Hands pending messages to consumers with credit. Expired messages found on
    /// the way are removed and pushed to `expired` for the broker to dispose of.
    pub fn dispatch(&mut self, now_ms: u64, expired: &mut Vec<Entry>) {
        if self.consumers.is_empty() || self.pending_len == 0 {
            return;
        }
        let selective = self.consumers.iter().any(|c| c.selector.is_some());
        let exclusive_owner = self.consumers.iter().position(|c| c.exclusive);
        let mut scanned = 0;
        for priority in (0..=MAX_PRIORITY as usize).rev() {
            let mut i = 0;
            while i < self.pending[priority].len() {
                if !self.consumers.iter().any(Consumer::has_credit) {
                    return;
                }
                let msg = &self.pending[priority][i].msg;
                if msg.is_expired(now_ms) {
                    let entry = self.remove_pending(priority, i);
                    self.expiring -= 1;
                    expired.push(entry);
                    continue;
                }
                let grouped = msg.fields.group_id.is_some();
                match self.pick_consumer(msg, exclusive_owner) {
                    Some(c) => {
                        let entry = self.remove_pending(priority, i);
                        self.deliver(c, entry);
                    }
                    // Nobody can take anything: unless some messages are for
                    // particular consumers (selectors, groups), stop looking.
                    None if !selective && !grouped => return,
                    None => {
                        scanned += 1;
                        if scanned >= MAX_DISPATCH_SCAN {
                            return;
                        }
                        i += 1;
                    }
                }
            }
            let tail = &self.tails[priority];
            if tail.count > 0 && !tail.scanned_all() {
                // Lower priorities wait until this one's stored messages are
                // read (or scanned, and found to be for none of these consumers).
                return;
            }
        }
    }

    fn remove_pending(&mut self, priority: usize, i: usize) -> Entry {
        self.pending_len -= 1;
        self.pending[priority]
            .remove(i)
            .expect("index checked by caller")
    }

    /// The consumer of the message's group if it has one, else round robin
    /// over consumers that have credit and accept the message.
    fn pick_consumer(&self, msg: &Message, exclusive_owner: Option<usize>) -> Option<usize> {
        if let Some(owner) = msg
            .fields
            .group_id
            .as_ref()
            .and_then(|g| self.groups.get(g))
            .and_then(|id| self.consumers.iter().position(|c| c.id == *id))
        {
            let c = &self.consumers[owner];
            return c.has_credit().then_some(owner);
        }
        if let Some(owner) = exclusive_owner {
            let c = &self.consumers[owner];
            let ok = c.has_credit() && c.selector.as_ref().is_none_or(|s| s.matches(&**msg));
            return ok.then_some(owner);
        }
        let n = self.consumers.len();
        let can_take =
            |c: &Consumer| c.has_credit() && c.selector.as_ref().is_none_or(|s| s.matches(&**msg));
        // Round robin among the consumers of the highest priority that can
        // take it. Nearly always all have one priority (0): then that is
        // every consumer, and no selector is asked twice.
        let top = self.consumers.iter().map(|c| c.priority).max()?;
        let best = if self.consumers.iter().all(|c| c.priority == top) {
            top
        } else {
            self.consumers
                .iter()
                .filter(|c| can_take(c))
                .map(|c| c.priority)
                .max()?
        };
        (0..n).map(|k| (self.next_consumer + k) % n).find(|&idx| {
            let c = &self.consumers[idx];
            c.priority == best && can_take(c)
        })
    }

    fn deliver(&mut self, idx: usize, entry: Entry) {
        self.next_consumer = (idx + 1) % self.consumers.len();
        if let Some(group) = &entry.msg.fields.group_id {
            if entry.msg.fields.group_seq == -1 {
                self.groups.remove(group);
            } else if !self.groups.contains_key(group) {
                if self.groups.len() >= MAX_GROUPS {
                    let old = self.groups.keys().next().cloned().expect("not empty");
                    self.groups.remove(&old);
                }
                self.groups
                    .insert(Arc::clone(group), self.consumers[idx].id);
            }
        }
        let c = &mut self.consumers[idx];
        if c.in_window >= c.prefetch {
            c.pulls -= 1;
        }
        c.in_window += 1;
        c.dispatched += 1;
        c.unacked.push_back(entry.msg.id);
        c.outbox.deliver(Delivery {
            consumer: c.id,
            subscription: Arc::clone(&c.subscription),
            message: Arc::clone(&entry.msg),
            redelivery_count: entry.redeliveries,
            seq: entry.seq,
            record: entry.record,
            auto_ack: c.ack_mode == AckMode::Auto,
        });
        self.inflight.insert(
            entry.msg.id,
            Inflight {
                entry,
                consumer: c.id,
                ordinal: c.dispatched,
                tx_acked: false,
            },
        );
    }

    /// The ids a consumer's acknowledgement of `id` covers: just `id`, or with
    /// `cumulative` everything delivered to it up to and including `id`.
    pub fn covered(
        &self,
        consumer: ConsumerId,
        id: MessageId,
        cumulative: bool,
    ) -> Result<Vec<MessageId>, AckError> {
        let c = self
            .consumers
            .iter()
            .find(|c| c.id == consumer)
            .ok_or(AckError::UnknownMessage(id))?;
        let pos = c
            .unacked
            .iter()
            .position(|m| *m == id)
            .ok_or(AckError::UnknownMessage(id))?;
        Ok(if cumulative {
            c.unacked.iter().take(pos + 1).copied().collect()
        } else {
            vec![id]
        })
    }

    fn forget_unacked(&mut self, consumer: ConsumerId, ids: &[MessageId]) {
        let inflight = &self.inflight;
        if let Some(c) = self.consumers.iter_mut().find(|c| c.id == consumer) {
            for id in ids {
                if let Some(pos) = c.unacked.iter().position(|m| m == id) {
                    c.unacked.remove(pos);
                    c.in_window = c.in_window.saturating_sub(1);
                    if let Some(i) = inflight.get(id) {
                        if c.settled_last.is_none_or(|(_, o)| o < i.ordinal) {
                            c.settled_last = Some((*id, i.ordinal));
                        }
                    }
                }
            }
        }
    }

    /// A delivered, unsettled message, without changing anything (the engine
    /// writes what an acknowledgement means before it applies it).
    pub fn inflight(&self, id: MessageId) -> Option<&Entry> {
        self.inflight.get(&id).map(|i| &i.entry)
    }

    /// A message acknowledged inside a still-open transaction, without settling it.
    pub fn tx_acked(&self, id: MessageId) -> Option<&Entry> {
        self.inflight
            .get(&id)
            .filter(|i| i.tx_acked)
            .map(|i| &i.entry)
    }

    /// Settles an acknowledgement: the covered messages leave the queue and are returned.
    pub fn ack(
        &mut self,
        consumer: ConsumerId,
        id: MessageId,
        cumulative: bool,
    ) -> Result<Vec<Entry>, AckError> {
        let ids = self.covered(consumer, id, cumulative)?;
        Ok(self.settle(consumer, &ids))
    }

    /// Settles what [`MessageQueue::covered`] returned: the messages leave the
    /// queue and are returned.
    pub fn settle(&mut self, consumer: ConsumerId, ids: &[MessageId]) -> Vec<Entry> {
        self.forget_unacked(consumer, ids);
        ids.iter()
            .filter_map(|id| self.take_inflight(*id))
            .collect()
    }

    /// Takes back delivered messages (a NACK): they leave the consumer and are
    /// returned for the broker to redeliver or dead-letter.
    pub fn take_back(
        &mut self,
        consumer: ConsumerId,
        id: MessageId,
        cumulative: bool,
    ) -> Result<Vec<Entry>, AckError> {
        self.ack(consumer, id, cumulative)
    }

    /// Acknowledges inside a transaction: frees the consumer's credit but keeps
    /// the messages until the transaction commits or rolls back. Returns the ids covered.
    pub fn tx_ack(
        &mut self,
        consumer: ConsumerId,
        id: MessageId,
        cumulative: bool,
    ) -> Result<Vec<MessageId>, AckError> {
        let ids = self.covered(consumer, id, cumulative)?;
        self.forget_unacked(consumer, &ids);
        for id in &ids {
            if let Some(inflight) = self.inflight.get_mut(id) {
                inflight.tx_acked = true;
            }
        }
        Ok(ids)
    }

    /// Ends a transactional ack: the message leaves the queue (commit) or is
    /// returned for redelivery (rollback); either way the caller gets the entry.
    pub fn settle_tx_ack(&mut self, id: MessageId) -> Option<Entry> {
        match self.inflight.get(&id) {
            Some(inflight) if inflight.tx_acked => self.take_inflight(id),
            _ => None,
        }
    }

    /// Ends a transactional ack with a rollback whose client redelivers what
    /// it rolled back by itself (ActiveMQ's): the message is its consumer's
    /// again, unacknowledged, in its place in delivery order, and counts
    /// against its prefetch. Returns the entry for the caller to redeliver
    /// from the queue only if that consumer is gone.
    pub fn return_tx_ack(&mut self, id: MessageId) -> Option<Entry> {
        let (consumer, ordinal) = self
            .inflight
            .get(&id)
            .filter(|i| i.tx_acked)
            .map(|i| (i.consumer, i.ordinal))?;
        let inflight = &self.inflight;
        let Some(c) = self.consumers.iter_mut().find(|c| c.id == consumer) else {
            return self.take_inflight(id);
        };
        let pos = c
            .unacked
            .iter()
            .position(|m| inflight.get(m).is_some_and(|i| i.ordinal > ordinal))
            .unwrap_or(c.unacked.len());
        c.unacked.insert(pos, id);
        c.in_window += 1;
        if let Some(i) = self.inflight.get_mut(&id) {
            i.tx_acked = false;
        }
        None
    }

    /// Settles auto-acknowledged deliveries once the connection has written them.
    pub fn auto_ack(&mut self, consumer: ConsumerId, id: MessageId) -> Option<Entry> {
        match self.inflight.get(&id) {
            Some(inflight) if inflight.consumer == consumer && !inflight.tx_acked => {
                self.forget_unacked(consumer, &[id]);
                self.take_inflight(id)
            }
            _ => None,
        }
    }

    /// True if `consumer` holds `id` unacknowledged.
    pub fn holds(&self, consumer: ConsumerId, id: MessageId) -> bool {
        self.inflight
            .get(&id)
            .is_some_and(|i| i.consumer == consumer && !i.tx_acked)
    }

    /// Removes expired pending messages.
    pub fn sweep_expired(&mut self, now_ms: u64, expired: &mut Vec<Entry>) {
        if self.expiring == 0 {
            return;
        }
        for priority in 0..=MAX_PRIORITY as usize {
            let before = self.pending[priority].len();
            let (keep, gone): (VecDeque<Entry>, VecDeque<Entry>) = self.pending[priority]
                .drain(..)
                .partition(|e| !e.msg.is_expired(now_ms));
            self.pending[priority] = keep;
            let removed = before - self.pending[priority].len();
            self.pending_len -= removed;
            self.expiring -= removed;
            expired.extend(gone);
        }
    }

    /// Messages that entered since this broker started, those it recovered
    /// included: with what waits and what is out, how many left (consumed,
    /// expired, dead-lettered, purged).
    pub fn entered(&self) -> u64 {
        self.entered
    }

    /// Messages ever delivered to consumer `id` (0 if it is not attached).
    pub fn dispatched_to(&self, id: ConsumerId) -> u64 {
        self.consumers
            .iter()
            .find(|c| c.id == id)
            .map_or(0, |c| c.dispatched)
    }

    /// Messages consumer `id` holds, delivered and not acknowledged.
    pub fn held_by(&self, id: ConsumerId) -> usize {
        self.consumers
            .iter()
            .find(|c| c.id == id)
            .map_or(0, |c| c.unacked.len())
    }

    /// Ids of the messages delivered and not settled, or held by a transaction.
    pub fn inflight_ids(&self) -> Vec<MessageId> {
        self.inflight.keys().copied().collect()
    }

    /// Takes pending message `id` out of memory, if it is there.
    pub fn take_pending(&mut self, id: MessageId) -> Option<Entry> {
        self.take_pending_where(|e| e.msg.id == id).pop()
    }

    /// Takes the pending messages in memory that `wanted` picks, in
    /// dispatch order, in one pass.
    pub fn take_pending_where(&mut self, wanted: impl Fn(&Entry) -> bool) -> Vec<Entry> {
        let mut taken = Vec::new();
        for fifo in self.pending.iter_mut().rev() {
            if !fifo.iter().any(&wanted) {
                continue;
            }
            let (out, stay): (VecDeque<Entry>, VecDeque<Entry>) =
                std::mem::take(fifo).into_iter().partition(|e| wanted(e));
            *fifo = stay;
            taken.extend(out);
        }
        for e in &taken {
            self.pending_len -= 1;
            if e.msg.expires_ms.is_some() {
                self.expiring -= 1;
            }
            // Taken by a scan, it was in `held`; it leaves the store now.
            self.held.remove(&e.msg.id);
        }
        taken
    }

    /// Removes and returns every pending message (the container is being deleted).
    pub fn drain_pending(&mut self) -> Vec<Entry> {
        let mut all = Vec::with_capacity(self.pending_len);
        for p in self.pending.iter_mut().rev() {
            all.extend(p.drain(..));
        }
        self.pending_len = 0;
        all
    }

    /// Pending messages in memory in dispatch order (highest priority first),
    /// for browsing.
    pub fn browse(&self) -> impl Iterator<Item = &Entry> {
        self.pending.iter().rev().flat_map(|p| p.iter())
    }
}

#[cfg(test)]
mod tests;
