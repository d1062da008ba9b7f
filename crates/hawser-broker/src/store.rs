//! The engine's view of persistence: a [`Store`] appends atomic groups of
//! [`StoreOp`]s and reports, through a watermark, how far they are durable.
//!
//! The engine decides *what* must be remembered (a persistent message entered a
//! queue, a consumer acknowledged it, a durable subscription was made); a store
//! decides *how*: a local journal, a replicated log, a database. Every group of
//! ops passed to [`Store::append`] is one record: after a crash either all of it
//! is recovered or none of it, which is what makes transaction commits and
//! dead-letter moves atomic.
//!
//! Durability is a single increasing sequence number (the watermark) rather than
//! a future per record: a connection holds back a receipt or a delivery until the
//! watermark reaches the record's sequence, so one fsync wakes every waiter at once.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::watch;

use crate::message::{
    estimate_bytes, AsMessageData, Message, MessageData, MessageId, ProducerRef, MAX_PRIORITY,
};
use crate::producer::{ProducerKey, SeqWindow};

/// A store-assigned sequence number for one appended record; increases by one per append.
pub type Seq = u64;

/// A container whose persistent messages the store keeps.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StoreKey {
    /// A queue, by name.
    Queue(Arc<str>),
    /// A durable topic subscription, by client id and subscription name.
    Durable {
        /// The JMS client id of the subscriber's connection.
        client_id: Arc<str>,
        /// The subscription name.
        name: Arc<str>,
    },
}

/// Everything needed to recreate a durable subscription after a restart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DurableSubscription {
    /// The JMS client id of the subscriber's connection.
    pub client_id: Arc<str>,
    /// The subscription name.
    pub name: Arc<str>,
    /// The topic subscribed to.
    pub topic: Arc<str>,
    /// The selector text, if any.
    pub selector: Option<String>,
    /// Whether messages published by the subscriber's own connection are skipped.
    pub no_local: bool,
    /// The user that made it; `None` when made by an anonymous connection.
    /// While it exists, its client id belongs to this user: a connection of
    /// anyone else with that client id is refused.
    pub owner: Option<Arc<str>>,
}

impl DurableSubscription {
    /// The key under which its messages are stored.
    pub fn key(&self) -> StoreKey {
        StoreKey::Durable {
            client_id: Arc::clone(&self.client_id),
            name: Arc::clone(&self.name),
        }
    }

    /// Whether it selects the same messages as `other` (whoever owns them):
    /// a subscription made again with a different topic, selector or
    /// no-local flag is a new one, and the old one's messages are dropped.
    pub fn selects_as(&self, other: &DurableSubscription) -> bool {
        self.client_id == other.client_id
            && self.name == other.name
            && self.topic == other.topic
            && self.selector == other.selector
            && self.no_local == other.no_local
    }
}

/// An XA transaction that was prepared and not yet committed or rolled back:
/// what its commit will do. It outlives the connection that prepared it and
/// a restart, until a transaction manager resolves it.
#[derive(Clone, Debug, PartialEq)]
pub struct PreparedTransaction {
    /// The transaction's global name (the protocol encodes the XA xid in it).
    pub xid: Arc<str>,
    /// The client id of the connection that prepared it: with each send's
    /// producer, what a commit after a restart marks in that client's producer
    /// windows, so that a resend of one of its messages is still recognised.
    pub client_id: Option<Arc<str>>,
    /// The user of that connection, the other half of its producers' scope
    /// (see [`crate::producer::ProducerKey`]).
    pub owner: Option<Arc<str>>,
    /// Its persistent sends, published (with new ids) when it commits.
    pub sends: Vec<PreparedSend>,
    /// Stored messages it acknowledged: held from every consumer until it ends.
    pub acks: Vec<(StoreKey, MessageId)>,
}

/// A persistent send of a prepared transaction.
#[derive(Clone, Debug, PartialEq)]
pub struct PreparedSend {
    /// The message; its `id` is 0: none is assigned before the commit.
    pub message: MessageData,
    /// Who sent it, for duplicate detection (see [`PreparedTransaction::client_id`]).
    pub producer: Option<ProducerRef>,
}

/// One change to remember. `M` is how the message is held: the engine writes
/// `Arc<Message>`, recovery reads back plain [`MessageData`].
#[derive(Clone, Debug, PartialEq)]
pub enum StoreOp<M = Arc<Message>> {
    /// A persistent message entered these containers.
    Enqueue {
        /// The message.
        message: M,
        /// Every container that holds it; it is live until each has dequeued it.
        targets: Vec<StoreKey>,
    },
    /// A container is done with a message (acknowledged, expired, moved, purged).
    Dequeue {
        /// The container.
        key: StoreKey,
        /// The message.
        id: MessageId,
    },
    /// A message was handed back for redelivery; `count` is its new redelivery count.
    Redelivered {
        /// The container.
        key: StoreKey,
        /// The message.
        id: MessageId,
        /// Redeliveries so far.
        count: u32,
    },
    /// A durable subscription was created (or replaced).
    Subscribe(DurableSubscription),
    /// A durable subscription and everything it held were removed.
    Unsubscribe {
        /// The JMS client id.
        client_id: Arc<str>,
        /// The subscription name.
        name: Arc<str>,
    },
    /// A producer's message with this sequence number was stored (in this
    /// record), so a resend after a failover or restart is recognised; see
    /// [`crate::producer`].
    ProducerSeen {
        /// The producer, within its client id.
        producer: ProducerKey,
        /// The stored message's sequence number.
        seq: u64,
    },
    /// A producer's whole window, replacing what earlier records said of it: a
    /// store writes it when it copies live state forward to drop old records.
    ProducerWindow {
        /// The producer, within its client id.
        producer: ProducerKey,
        /// The sequence numbers stored.
        window: SeqWindow,
    },
    /// The broker stopped tracking a producer (its window was evicted).
    ProducerForget {
        /// The producer.
        producer: ProducerKey,
    },
    /// An operator purged a container: every message it holds is dropped
    /// except `keep` (those out with consumers, or held by a transaction,
    /// which settle as usual). Messages enqueued by later records stay.
    Purge {
        /// The container.
        key: StoreKey,
        /// The messages that stay.
        keep: Vec<MessageId>,
    },
    /// An XA transaction was prepared.
    Prepare(PreparedTransaction),
    /// A prepared XA transaction ended: committed (this same record then
    /// holds what the commit did) or rolled back.
    Resolve {
        /// The transaction.
        xid: Arc<str>,
    },
}

impl<M: AsMessageData> StoreOp<M> {
    /// The op with its message as plain data (for stores that keep ops around).
    pub fn to_data(&self) -> StoreOp<MessageData> {
        match self {
            StoreOp::Enqueue { message, targets } => StoreOp::Enqueue {
                message: message.message_data().clone(),
                targets: targets.clone(),
            },
            StoreOp::Dequeue { key, id } => StoreOp::Dequeue {
                key: key.clone(),
                id: *id,
            },
            StoreOp::Redelivered { key, id, count } => StoreOp::Redelivered {
                key: key.clone(),
                id: *id,
                count: *count,
            },
            StoreOp::Subscribe(s) => StoreOp::Subscribe(s.clone()),
            StoreOp::Unsubscribe { client_id, name } => StoreOp::Unsubscribe {
                client_id: Arc::clone(client_id),
                name: Arc::clone(name),
            },
            StoreOp::ProducerSeen { producer, seq } => StoreOp::ProducerSeen {
                producer: producer.clone(),
                seq: *seq,
            },
            StoreOp::ProducerWindow { producer, window } => StoreOp::ProducerWindow {
                producer: producer.clone(),
                window: window.clone(),
            },
            StoreOp::ProducerForget { producer } => StoreOp::ProducerForget {
                producer: producer.clone(),
            },
            StoreOp::Purge { key, keep } => StoreOp::Purge {
                key: key.clone(),
                keep: keep.clone(),
            },
            StoreOp::Prepare(p) => StoreOp::Prepare(p.clone()),
            StoreOp::Resolve { xid } => StoreOp::Resolve {
                xid: Arc::clone(xid),
            },
        }
    }
}

/// How far appended records are durable, published by a store.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Durability {
    /// Every record with a sequence at or below this is durable.
    pub seq: Seq,
    /// Set once the store has failed; nothing after `seq` will become durable.
    pub failed: Option<Arc<str>>,
}

/// A receiver of a store's durability watermark.
pub type DurabilityWatch = watch::Receiver<Durability>;

/// Waits until record `seq` is durable.
pub async fn wait_durable(watch: &mut DurabilityWatch, seq: Seq) -> Result<(), StoreError> {
    loop {
        {
            let d = watch.borrow_and_update();
            if d.seq >= seq {
                return Ok(());
            }
            if let Some(reason) = &d.failed {
                return Err(StoreError::Failed(reason.to_string()));
            }
        }
        if watch.changed().await.is_err() {
            return Err(StoreError::Closed);
        }
    }
}

/// Levels of JMS priority (0..=9).
pub const PRIORITIES: usize = MAX_PRIORITY as usize + 1;

/// Stored messages of one container, counted per priority.
pub type PendingCounts = [u64; PRIORITIES];

/// A stored message as [`Store::read`] returns it: the message and how often
/// it was handed back for redelivery.
pub type StoredMessage = (MessageData, u32);

/// How much one [`Store::read`] returns at most: `messages`, and no more
/// once the messages' bytes reach `bytes` (one message at least, whatever its
/// size, so that a read always makes progress).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadLimit {
    /// Most messages.
    pub messages: usize,
    /// Bytes (bodies and properties, as the memory limits count them) after
    /// which no further message is added.
    pub bytes: u64,
}

impl ReadLimit {
    /// No limit: everything (tools and tests).
    pub const ALL: ReadLimit = ReadLimit {
        messages: usize::MAX,
        bytes: u64::MAX,
    };
}

/// What [`Store::read`] resolves to.
pub type ReadFuture = Pin<Box<dyn Future<Output = Result<Vec<StoredMessage>, StoreError>> + Send>>;

/// What a store found when it opened: the state the engine resumes from.
///
/// Not the messages themselves: a backlog may be far larger than memory. The
/// engine learns how many messages each container holds at each priority, and
/// reads them with [`Store::read`] as consumers need them.
#[derive(Debug, Default)]
pub struct Recovered {
    /// Stored messages per container, counted per priority (only containers
    /// that hold any).
    pub pending: HashMap<StoreKey, PendingCounts>,
    /// The stored messages that prepared transactions acknowledged, with
    /// their redelivery counts: the engine holds them for their transaction
    /// from the start (they are also among `pending` and what `read` returns).
    pub held: Vec<(StoreKey, StoredMessage)>,
    /// Durable subscriptions that exist.
    pub subscriptions: Vec<DurableSubscription>,
    /// The highest message id the store has seen; new ids must be above it.
    pub max_message_id: MessageId,
    /// The window of stored sequence numbers of every tracked producer.
    pub producers: HashMap<ProducerKey, SeqWindow>,
    /// XA transactions prepared and not resolved, in the order they were prepared.
    pub prepared: Vec<PreparedTransaction>,
}

impl Recovered {
    /// Stored messages of all containers.
    pub fn pending_total(&self) -> u64 {
        self.pending.values().flatten().sum()
    }
}

/// Replaying records as a store recovers them: every store (and the tests'
/// model stores) turns its records back into [`Recovered`] with this one piece.
///
/// A store that keeps its own index of where messages are (the journal's)
/// replays [`Replay::without_messages`] and fills in `pending` and `held`
/// itself; a store that keeps everything in memory keeps the messages here,
/// and serves [`Store::read`] from [`Replay::read`].
#[derive(Debug)]
pub struct Replay {
    /// Live messages per container, by id (send order); `None`: not kept.
    messages: Option<HashMap<StoreKey, BTreeMap<MessageId, StoredMessage>>>,
    subscriptions: HashMap<StoreKey, DurableSubscription>,
    producers: HashMap<ProducerKey, SeqWindow>,
    /// Prepared and unresolved, by name, with the order they were prepared in.
    prepared: HashMap<Arc<str>, (u64, PreparedTransaction)>,
    prepares: u64,
    max_id: MessageId,
}

impl Default for Replay {
    fn default() -> Self {
        Replay {
            messages: Some(HashMap::new()),
            subscriptions: HashMap::new(),
            producers: HashMap::new(),
            prepared: HashMap::new(),
            prepares: 0,
            max_id: 0,
        }
    }
}

impl Replay {
    /// A replay that keeps messages, for [`Replay::read`].
    pub fn new() -> Replay {
        Replay::default()
    }

    /// A replay of everything but the messages, for a store with an index of its own.
    pub fn without_messages() -> Replay {
        Replay {
            messages: None,
            ..Replay::default()
        }
    }

    /// Applies one record's ops, taking its messages (recovery decodes each
    /// record once and keeps what it decoded; nothing is copied).
    pub fn apply(&mut self, ops: Vec<StoreOp<MessageData>>) {
        for op in ops {
            match op {
                StoreOp::Enqueue { message, targets } => {
                    self.max_id = self.max_id.max(message.id);
                    let Some(messages) = &mut self.messages else {
                        continue;
                    };
                    // Each target but the last gets a copy (sharing the body); the last takes it.
                    let last = targets.len().saturating_sub(1);
                    let mut message = Some(message);
                    for (i, key) in targets.into_iter().enumerate() {
                        let data = if i == last {
                            message.take()
                        } else {
                            message.clone()
                        };
                        if let Some(data) = data {
                            // A copy a store made of a record takes the original's place.
                            messages.entry(key).or_default().insert(data.id, (data, 0));
                        }
                    }
                }
                StoreOp::Dequeue { key, id } => {
                    if let Some(m) = self.messages.as_mut().and_then(|m| m.get_mut(&key)) {
                        m.remove(&id);
                    }
                }
                StoreOp::Redelivered { key, id, count } => {
                    if let Some(e) = self
                        .messages
                        .as_mut()
                        .and_then(|m| m.get_mut(&key))
                        .and_then(|m| m.get_mut(&id))
                    {
                        e.1 = count;
                    }
                }
                StoreOp::Subscribe(sub) => {
                    self.subscriptions.insert(sub.key(), sub);
                }
                StoreOp::ProducerSeen { producer, seq } => {
                    self.producers.entry(producer).or_default().insert(seq);
                }
                StoreOp::ProducerWindow { producer, window } => {
                    self.producers.insert(producer, window);
                }
                StoreOp::ProducerForget { producer } => {
                    self.producers.remove(&producer);
                }
                StoreOp::Unsubscribe { client_id, name } => {
                    let key = StoreKey::Durable { client_id, name };
                    self.subscriptions.remove(&key);
                    if let Some(m) = &mut self.messages {
                        m.remove(&key);
                    }
                }
                StoreOp::Purge { key, keep } => {
                    if let Some(m) = self.messages.as_mut().and_then(|m| m.get_mut(&key)) {
                        let keep: std::collections::HashSet<MessageId> = keep.into_iter().collect();
                        m.retain(|id, _| keep.contains(id));
                    }
                }
                StoreOp::Prepare(p) => {
                    self.prepares += 1;
                    self.prepared.insert(Arc::clone(&p.xid), (self.prepares, p));
                }
                StoreOp::Resolve { xid } => {
                    self.prepared.remove(&xid);
                }
            }
        }
    }

    /// [`Store::read`] over the messages kept: `key`'s at `priority`, with
    /// ids above `after`, in id order, within `limit`.
    pub fn read(
        &self,
        key: &StoreKey,
        priority: u8,
        after: MessageId,
        limit: ReadLimit,
    ) -> Vec<StoredMessage> {
        let Some(m) = self.messages.as_ref().and_then(|m| m.get(key)) else {
            return Vec::new();
        };
        let mut bytes = 0u64;
        let mut out = Vec::new();
        for (data, count) in m.range(after.saturating_add(1)..).map(|(_, e)| e) {
            if data.priority != priority {
                continue;
            }
            if out.len() >= limit.messages || (!out.is_empty() && bytes >= limit.bytes) {
                break;
            }
            bytes += estimate_bytes(&data.fields, &data.body);
            out.push((data.clone(), *count));
        }
        out
    }

    /// What was recovered. Without messages kept, `pending` and `held` are
    /// left for the store to fill in.
    pub fn into_recovered(self) -> Recovered {
        let mut prepared: Vec<_> = self.prepared.into_values().collect();
        prepared.sort_by_key(|(order, _)| *order);
        let prepared: Vec<PreparedTransaction> = prepared.into_iter().map(|(_, p)| p).collect();
        let mut pending = HashMap::new();
        let mut held = Vec::new();
        if let Some(messages) = &self.messages {
            for (key, m) in messages.iter().filter(|(_, m)| !m.is_empty()) {
                let counts: &mut PendingCounts = pending.entry(key.clone()).or_default();
                for (data, _) in m.values() {
                    counts[usize::from(data.priority.min(MAX_PRIORITY))] += 1;
                }
            }
            for (key, id) in prepared.iter().flat_map(|p| &p.acks) {
                if let Some(e) = messages.get(key).and_then(|m| m.get(id)) {
                    held.push((key.clone(), e.clone()));
                }
            }
        }
        Recovered {
            pending,
            held,
            subscriptions: self.subscriptions.into_values().collect(),
            max_message_id: self.max_id,
            producers: self.producers,
            prepared,
        }
    }
}

/// Drops the spilled (non-persistent) messages from records, as a store
/// does when it opens (see [`Store::pages`]): for stores that keep their
/// records and replay them.
pub fn forget_spilled(ops: &mut Vec<StoreOp<MessageData>>) {
    ops.retain(|op| !matches!(op, StoreOp::Enqueue { message, .. } if !message.persistent));
}

/// Why a store could not take or keep a record.
#[non_exhaustive]
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// The store failed (disk error, lost quorum...) and accepts nothing more.
    #[error("store failed: {0}")]
    Failed(String),
    /// The store was closed.
    #[error("store is closed")]
    Closed,
    /// The record is larger than the store's largest; nothing was written and
    /// the store goes on.
    #[error("record of {len} bytes exceeds the store's limit of {max} bytes")]
    TooLarge {
        /// Encoded size of the record.
        len: usize,
        /// The store's largest record.
        max: usize,
    },
}

impl StoreError {
    /// True if the store can take nothing more (as opposed to refusing one record).
    pub fn is_fatal(&self) -> bool {
        !matches!(self, StoreError::TooLarge { .. })
    }
}

/// A histogram as a store measured it: cumulative counts per upper bound.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Histogram {
    /// (upper bound, observations at or below it), in bound order.
    pub buckets: Vec<(f64, u64)>,
    /// The sum of the observations.
    pub sum: f64,
    /// How many observations.
    pub count: u64,
}

/// How a store's writes go (see [`Store::write_stats`]).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WriteStats {
    /// Seconds each flush to stable storage took (a journal's fsync).
    pub sync_seconds: Histogram,
    /// Records each such flush made durable (group commit's batch).
    pub batch_records: Histogram,
}

/// Persistence as the engine needs it.
///
/// `append` is called while the engine holds its state lock, so the order of
/// records is the order of the engine's decisions (an ack never precedes its
/// message). It must therefore be quick: queue the record, do not wait for it.
pub trait Store: Send + Sync {
    /// Queues `ops` as one atomic record and returns its sequence number.
    /// With `sync`, the watermark passes it only once it survives a crash;
    /// without, it may be lost in a crash unless a later synced record follows.
    fn append(&self, ops: Vec<StoreOp>, sync: bool) -> Result<Seq, StoreError>;
    /// The durability watermark.
    fn durability(&self) -> DurabilityWatch;
    /// Bytes the store occupies, for the store-size limit.
    fn disk_bytes(&self) -> u64;
    /// How its writes are going, for monitoring; `None` for a store that
    /// does not measure them.
    fn write_stats(&self) -> Option<WriteStats> {
        None
    }
    /// Bytes of non-persistent messages it keeps, for the temporary-store
    /// limit (see [`Store::pages`]).
    fn spilled_bytes(&self) -> u64 {
        0
    }
    /// True while the store's appends are behind (a slow disk, a far
    /// replica): `append` must never wait under the engine's lock, so
    /// producers are held before their sends reach the engine until this is
    /// false again (the connection core asks before each send, and again at
    /// each change of the durability watermark). Not a limit: nothing is
    /// refused for it.
    fn writes_behind(&self) -> bool {
        false
    }
    /// The largest record (encoded by `store_codec`) `append` accepts. The
    /// engine refuses a message or transaction that could not fit up front.
    fn max_record_bytes(&self) -> usize {
        u32::MAX as usize
    }
    /// `Ok` while this store may still confirm anything: not failed, and (for a
    /// master of a shared store) not superseded. Asked before a confirmation
    /// that does not come from the durability watermark (a send confirmed by
    /// its consumer's acknowledgement), so it passes the same fence.
    fn check_confirmable(&self) -> Result<(), StoreError> {
        Ok(())
    }
    /// Whether the engine may leave new messages in this store and read them
    /// back ([`Store::read`]) instead of keeping them in memory: paging. A
    /// store that keeps nothing (persistence off) says no. (What a store
    /// recovered is always read back; a store that recovers messages must
    /// serve `read`.)
    ///
    /// A store that pages also takes non-persistent messages beyond memory
    /// (ActiveMQ's temporary store): an `Enqueue` of a message that is not
    /// `persistent` is such a *spill*, appended without `sync`, read back
    /// with the persistent ones in id order, and dequeued as soon as it is
    /// read. No open recovers one: a store drops them all when it opens
    /// (after a restart or a takeover), as ActiveMQ does its temporary
    /// store; [`forget_spilled`] does it for stores that replay records.
    fn pages(&self) -> bool {
        false
    }
    /// Reads stored messages of container `key` at `priority` with ids above
    /// `after`, in id order (which is the order they entered the container),
    /// with their redelivery counts, within `limit`. Messages appended before
    /// the call are seen, durable or not. The future is the store's: the
    /// engine awaits it without holding its lock.
    fn read(&self, key: &StoreKey, priority: u8, after: MessageId, limit: ReadLimit) -> ReadFuture {
        let _ = (key, priority, after, limit);
        Box::pin(std::future::ready(Ok(Vec::new())))
    }
    /// Flushes and stops; later appends fail.
    fn close(&self);
}

/// A store that keeps nothing: for brokers with persistence switched off, and tests.
/// Every record is durable at once, and nothing is recovered.
#[derive(Debug)]
pub struct MemoryStore {
    /// Last sequence handed out.
    seq: AtomicU64,
    /// Publishes the watermark (always equal to the last sequence).
    durability: watch::Sender<Durability>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> MemoryStore {
        MemoryStore {
            seq: AtomicU64::new(0),
            durability: watch::channel(Durability::default()).0,
        }
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore::new()
    }
}

impl Store for MemoryStore {
    fn append(&self, _ops: Vec<StoreOp>, _sync: bool) -> Result<Seq, StoreError> {
        let seq = self.seq.fetch_add(1, Ordering::SeqCst) + 1;
        self.durability.send_modify(|d| d.seq = d.seq.max(seq));
        Ok(seq)
    }

    fn durability(&self) -> DurabilityWatch {
        self.durability.subscribe()
    }

    fn disk_bytes(&self) -> u64 {
        0
    }

    fn close(&self) {}
}
