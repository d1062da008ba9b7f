//! Paging: backlogs larger than memory.
//!
//! A persistent message for a queue or durable subscription whose memory is
//! full (its destination's limit, or its share of the broker's) stays in the
//! store only; its container counts it in a tail (see [`crate::queue`]) and
//! the producer goes on at the store's pace. The messages come back from the
//! store, a batch at a time, ahead of the consumers: a container asks for a
//! read when it has consumers and little in memory ([`MessageQueue::page_wanted`]),
//! and [`Broker::pager`], a task of its own, reads (`Store::read`) without the
//! engine's lock and hands the batch back ([`MessageQueue::take_page`]).
//!
//! A restart starts here too: the store recovers counts, not messages
//! (`Recovered::pending`), so start-up does not grow with the backlog; each
//! container reads its first batch at once, so that a browser sees it.
//!
//! Non-persistent queue messages beyond memory *spill* to the same store
//! (ActiveMQ's temporary store, bounded by `max_temp_bytes`, its
//! `tempUsage`): the engine appends them without an fsync and counts them in
//! the tail like persistent ones, so that they come back in order and a
//! later non-persistent message of the same priority never passes one
//! ([`Broker::spills`]). Read back into memory, a spilled message is
//! dequeued from the store at once: from then on it is an ordinary
//! non-persistent message. No store recovers one (see `Store::pages`): a
//! restart or takeover loses them, as it loses those in memory.

use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::sync::Notify;

use crate::broker::Broker;
use crate::container::ContainerKey;
use crate::destination::{Destination, DestinationKind};
use crate::message::{Message, NewMessage};
use crate::queue::{Entry, Memory, MessageQueue, PageWanted, PagedOut};
use crate::state::State;
use crate::store::{Seq, StoreError, StoreOp, StoredMessage};
use crate::usage::DestinationUsage;

/// Where a message goes beyond its destination's memory ([`Broker::pages`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Paging {
    /// Nowhere: its producer is held while memory is full.
    Memory,
    /// A persistent message stays in the store.
    Store,
    /// A non-persistent one spills to the store, within `max_temp_bytes`.
    Temp,
}

/// How long a read the store refused waits before it is asked again.
const READ_RETRY: Duration = Duration::from_millis(200);

/// How far past its memory limits a container reads ahead for consumers that
/// can take nothing of what is in memory (selectors): this many times the
/// limits (see [`MessageQueue::page_wanted`](crate::queue::MessageQueue::page_wanted)).
const READ_AHEAD_TIMES: u64 = 2;

/// A read taken from the requests and not yet handed back: dropped unfinished
/// (its future cancelled: the start-up's time limit), it gives the read back
/// to its container and to the pager's retries, so that the pager reads it
/// again (the first batch of a container nobody consumes yet, for browsers).
struct Unfinished<'a> {
    broker: &'a Broker,
    request: Option<PageRequest>,
}

impl Drop for Unfinished<'_> {
    fn drop(&mut self) {
        if let Some(r) = self.request.take() {
            let mut st = self.broker.state.lock();
            if let Some(q) = st.containers.get_mut(&r.key) {
                q.read_failed(r.token);
            }
            if !st.page_retries.contains(&r.key) {
                st.page_retries.push(r.key);
            }
        }
    }
}

/// A read a container asked for, waiting for the pager.
#[derive(Clone, Debug)]
pub(crate) struct PageRequest {
    /// The container.
    key: ContainerKey,
    /// The read.
    wanted: PageWanted,
    /// Its token: the container takes only the read it is waiting for.
    token: u64,
    /// How many of the tail's messages the store should have for it.
    expected: u64,
}

/// Reads waiting for the pager, and the wake-up that tells it.
#[derive(Debug, Default)]
pub(crate) struct Pager {
    /// Woken when a request is added (a permit is kept if the pager is busy).
    wake: Arc<Notify>,
}

impl Broker {
    /// Where `message` would go when its destination's memory is full, for
    /// producer flow control: for a queue, on a store that pages, to the
    /// store ([`Paging::Store`]) if persistent, else to its temporary part
    /// ([`Paging::Temp`], see the module); otherwise nowhere but memory. A
    /// transaction's sends wait in memory until it commits: memory.
    pub fn pages(&self, message: &NewMessage, transactional: bool) -> Paging {
        let pages = !transactional
            && message.destination.kind == DestinationKind::Queue
            && message.destination.composite_parts().is_none()
            && self.store().pages();
        match (pages, message.persistent) {
            (false, _) => Paging::Memory,
            (true, true) => Paging::Store,
            (true, false) if self.config.max_temp_bytes > 0 => Paging::Temp,
            (true, false) => Paging::Memory,
        }
    }

    /// Whether a [`Paging::Temp`] message for the destination counted by
    /// `usage` must wait for the temporary store: it would spill (its memory
    /// is full, or its queue spills already: later messages follow into the
    /// store even when memory has room, to stay in order), and the store
    /// keeps `max_temp_bytes` of spilled messages or more. Its producer is
    /// then held (or refused), as ActiveMQ's are when its `tempUsage` is full.
    pub fn temp_full(&self, usage: &DestinationUsage) -> bool {
        (usage.is_spilling() || usage.room().is_err())
            && self.store().spilled_bytes() >= self.config.max_temp_bytes
    }

    /// Whether a non-persistent message `msg` for container `key` goes to
    /// the store rather than memory (a spill, see the module): on a store
    /// that pages, for a queue, when it would page were it persistent (its
    /// memory is full, or messages of its priority wait in the store already,
    /// `tail`, asked only when memory has room: a later non-persistent
    /// message never passes an earlier one), and if its record fits the
    /// store (else it stays in memory).
    pub(crate) fn spills(
        &self,
        key: &ContainerKey,
        msg: &Message,
        tail: impl FnOnce() -> bool,
    ) -> bool {
        !msg.persistent
            && self.config.max_temp_bytes > 0
            && matches!(key, ContainerKey::Queue(_))
            && key.is_stored()
            && self.store().pages()
            && (msg.room().is_err() || tail())
            && crate::broker::single_record_len(&msg.destination, &msg.fields, msg.body.len())
                <= self.store().max_record_bytes()
    }

    /// Asks for the read `key`'s container needs, if any (see the module);
    /// `force`: even without consumers (a browser, the first batch after a
    /// restart).
    pub(crate) fn want_pages(&self, st: &mut State, key: &ContainerKey, force: bool) {
        let Some(q) = st.containers.get(key) else {
            return;
        };
        if q.paged_len() == 0 || (!force && q.consumer_count() == 0) {
            return;
        }
        let memory = match container_destination(st, key) {
            Some(d) => {
                let usage = self.destination_usage(&d);
                if usage.room().is_ok() {
                    Memory::Room
                } else if usage.room_times(READ_AHEAD_TIMES).is_ok() {
                    Memory::Slack
                } else {
                    Memory::Full
                }
            }
            None => Memory::Room,
        };
        let Some(q) = st.containers.get_mut(key) else {
            return;
        };
        let Some(wanted) = q.page_wanted(memory) else {
            return;
        };
        st.next_page_token += 1;
        let token = st.next_page_token;
        q.start_reading(token, &wanted);
        let expected = q.paged_count(wanted.priority);
        st.page_requests.push(PageRequest {
            key: key.clone(),
            wanted,
            token,
            expected,
        });
        self.pager.wake.notify_one();
    }

    /// Puts a message written by record `seq` into container `key`: in memory,
    /// or, beyond memory, in the store only (see the module); `spilled`: a
    /// non-persistent message that record wrote ([`Broker::spills`]), which
    /// stays in the store. Every placement of a message goes through here,
    /// so that none passes a tail.
    pub(crate) fn place(
        q: &mut MessageQueue,
        key: &ContainerKey,
        entry: Entry,
        seq: Seq,
        pages: bool,
        spilled: bool,
    ) {
        let msg = &entry.msg;
        let paged = spilled
            || (pages
                && seq != 0
                && msg.persistent
                && key.is_stored()
                && q.can_page(msg.id, msg.priority)
                && (q.is_paging(msg.priority) || msg.room().is_err()));
        if paged {
            if spilled {
                if let Some(usage) = msg.usage() {
                    usage.set_spilling(true);
                }
            }
            q.enqueue_paged(msg.id, msg.priority, seq);
        } else {
            q.enqueue(entry);
        }
    }

    /// What of `queue` waits in the store only, per priority that has any
    /// (tools and tests; the store's `read` from there returns them).
    pub fn paged_out(&self, queue: &Destination) -> Vec<PagedOut> {
        let st = self.state.lock();
        st.containers
            .get(&ContainerKey::Queue(queue.clone()))
            .map(|q| q.tails())
            .unwrap_or_default()
    }

    /// Serves the reads asked for so far, one at a time; returns how many.
    /// The pager task calls it; tests call it to page in at a point of their
    /// choosing. Cancelling it (the start-up's time limit) loses no read: one
    /// under way is given back to its container, which asks again.
    pub async fn page_in(&self) -> usize {
        let mut served = 0;
        loop {
            let Some(r) = self.state.lock().page_requests.pop() else {
                return served;
            };
            served += 1;
            let mut guard = Unfinished {
                broker: self,
                request: Some(r),
            };
            let r = guard.request.as_ref().expect("set above");
            let read = match r.key.store_key() {
                Some(skey) => {
                    self.store()
                        .read(&skey, r.wanted.priority, r.wanted.after, r.wanted.limit)
                        .await
                }
                None => Err(StoreError::Failed("not a stored container".into())),
            };
            let r = guard.request.take().expect("set above");
            self.take_page(&r, read);
        }
    }

    /// The pager: serves reads as they are asked for, and asks again, every
    /// [`READ_RETRY`], for those that failed, until the broker is dropped.
    /// Spawned by whoever runs the broker.
    pub fn pager(self: &Arc<Self>) -> impl std::future::Future<Output = ()> + Send + 'static {
        let broker: Weak<Broker> = Arc::downgrade(self);
        let wake = Arc::clone(&self.pager.wake);
        async move {
            loop {
                let retrying = broker
                    .upgrade()
                    .is_some_and(|b| !b.state.lock().page_retries.is_empty());
                if retrying {
                    let _ = tokio::time::timeout(READ_RETRY, wake.notified()).await;
                } else {
                    wake.notified().await;
                }
                let Some(b) = broker.upgrade() else {
                    return;
                };
                b.retry_reads();
                while b.page_in().await > 0 {}
            }
        }
    }

    /// Asks again for the reads that failed.
    fn retry_reads(&self) {
        let mut guard = self.state.lock();
        let st = &mut *guard;
        for key in std::mem::take(&mut st.page_retries) {
            self.want_pages(st, &key, true);
        }
    }

    /// Hands a read's messages to its container and dispatches them.
    fn take_page(&self, r: &PageRequest, read: Result<Vec<StoredMessage>, StoreError>) {
        let mut guard = self.state.lock();
        let st = &mut *guard;
        let read = match read {
            Ok(read) => read,
            Err(e) => {
                tracing::warn!(
                    "reading stored messages of {:?} failed, asking again in {READ_RETRY:?}: {e}",
                    r.key
                );
                if let Some(q) = st.containers.get_mut(&r.key) {
                    q.read_failed(r.token);
                }
                if !st.page_retries.contains(&r.key) {
                    st.page_retries.push(r.key.clone());
                }
                return;
            }
        };
        let mut usage: Option<Arc<DestinationUsage>> = None;
        let entries: Vec<Entry> = read
            .into_iter()
            .map(|(data, redeliveries)| {
                let u = match &usage {
                    Some(u) if u.destination() == &data.destination => Arc::clone(u),
                    _ => {
                        let u = self.destination_usage(&data.destination);
                        usage = Some(Arc::clone(&u));
                        u
                    }
                };
                Entry {
                    msg: Arc::new(Message::charged(data, self.memory(), Some(&u))),
                    redeliveries,
                    seq: 0,
                    record: 0,
                    consumed: None,
                }
            })
            .collect();
        let Some(q) = st.containers.get_mut(&r.key) else {
            return;
        };
        let Some(taken) = q.take_page(r.token, r.wanted.priority, entries, r.expected) else {
            return;
        };
        if taken.missing > 0 {
            tracing::error!(
                "the store has {} fewer messages of {:?} at priority {} than it counted; \
                 they are not delivered",
                taken.missing,
                r.key,
                r.wanted.priority
            );
        }
        // Once nothing of the queue waits in the store, it spills no more
        // (an over-estimate until then: persistent messages may be what is
        // left, which only holds non-persistent producers a little longer
        // when the temporary store is full).
        if let (0, ContainerKey::Queue(d)) = (q.paged_len(), &r.key) {
            let usage = match usage {
                Some(u) if u.destination() == d => u,
                _ => self.destination_usage(d),
            };
            usage.set_spilling(false);
        }
        // Spilled messages leave the store as they come into memory: from
        // here on they are non-persistent messages like any other (lost in a
        // crash, and nothing to write when they are acknowledged).
        if let Some(skey) = r.key.store_key().filter(|_| !taken.spilled.is_empty()) {
            let ops = taken
                .spilled
                .into_iter()
                .map(|id| StoreOp::Dequeue {
                    key: skey.clone(),
                    id,
                })
                .collect();
            self.append_quietly(st, ops);
        }
        self.dispatch(st, &r.key);
        self.want_pages(st, &r.key, false);
    }
}

/// The destination whose memory a container's messages count against.
fn container_destination(st: &State, key: &ContainerKey) -> Option<Destination> {
    match key {
        ContainerKey::Queue(d) => Some(d.clone()),
        ContainerKey::Durable { client_id, name } => st
            .durables
            .get(&(Arc::clone(client_id), Arc::clone(name)))
            .map(|s| Destination::topic(&s.topic)),
        ContainerKey::TopicSub { .. } => None,
    }
}
