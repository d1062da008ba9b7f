//! The broker engine: destinations, subscriptions, acknowledgements and
//! transactions, behind one lock.
//!
//! A protocol session calls these methods with what its client asked for; the
//! engine routes messages into [`MessageQueue`]s, dispatches them to consumers'
//! [`Outbox`]es and appends what must survive a crash to the [`Store`], in the
//! same critical section, so the store's record order is the order of the
//! engine's decisions. Each call that wrote a record returns its sequence number:
//! the session holds the client's receipt until the store reports it durable.
//!
//! By default a persistent message is dispatched while its record is being
//! written, as ActiveMQ does (`concurrent_store_and_dispatch`); the producer's
//! receipt waits for the fsync unless a consumer acknowledges the message first
//! (`confirm_consumed`, see [`crate::consumed`]), and an acknowledgement's record comes
//! after the message's in the store, so a confirmed ack never outlives its
//! message. With the option off, each delivery carries the sequence to wait
//! for and consumers see only durable messages.

use foldhash::HashMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use hawser_selector::Selector;
use parking_lot::Mutex;

use crate::config::BrokerConfig;
use crate::consumed::Consumed;
use crate::destination::{Destination, DestinationKind};
use crate::error::BrokerError;
use crate::message::{MemoryUsage, Message, MessageData, MessageId, NewMessage, ProducerRef};
use crate::outbox::{AckMode, ConnectionId, ConsumerId, Outbox};
use crate::queue::{Consumer, Entry, MessageQueue};
use crate::store::{DurableSubscription, Recovered, Seq, Store, StoreError, StoreKey, StoreOp};

/// Where a container's messages come from and whether the store keeps them.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum ContainerKey {
    /// A queue or temporary queue.
    Queue(Destination),
    /// A durable topic subscription.
    Durable { client_id: Arc<str>, name: Arc<str> },
    /// A non-durable topic subscription, owned by one connection.
    TopicSub { conn: ConnectionId, sub: Arc<str> },
}

impl ContainerKey {
    /// The store's name for it, if the store keeps its persistent messages.
    fn store_key(&self) -> Option<StoreKey> {
        match self {
            ContainerKey::Queue(d) if d.kind == DestinationKind::Queue => {
                Some(StoreKey::Queue(Arc::clone(&d.name)))
            }
            ContainerKey::Durable { client_id, name } => Some(StoreKey::Durable {
                client_id: Arc::clone(client_id),
                name: Arc::clone(name),
            }),
            _ => None,
        }
    }
}

/// Whose messages a topic subscription skips.
#[derive(Clone, Debug, PartialEq, Eq)]
enum NoLocal {
    /// Messages published on this connection.
    Connection(ConnectionId),
    /// Messages published by any connection with this client id (durable subscriptions outlive connections).
    ClientId(Arc<str>),
}

/// A topic's link to one of its subscriptions.
#[derive(Clone)]
struct TopicLink {
    /// The subscription's container.
    key: ContainerKey,
    /// Messages must match it to enter the container.
    filter: Option<Arc<Selector>>,
    /// Set when the subscriber does not want its own messages.
    no_local: Option<NoLocal>,
}

/// A subscription as its connection knows it.
#[derive(Clone, Debug)]
struct SubRef {
    /// Where its consumer is attached.
    container: ContainerKey,
    /// The consumer.
    consumer: ConsumerId,
    /// How it acknowledges.
    ack_mode: AckMode,
}

/// An open transaction: work buffered until COMMIT.
#[derive(Default)]
struct Transaction {
    /// Messages to publish at commit.
    sends: Vec<NewMessage>,
    /// Messages acknowledged in it, held until it ends.
    acks: Vec<(ContainerKey, MessageId)>,
}

/// A connected client.
struct Connection {
    /// Its JMS client id, if it gave one (durable subscriptions need it).
    client_id: Option<Arc<str>>,
    /// Where its deliveries go.
    outbox: Arc<dyn Outbox>,
    /// Its subscriptions by protocol subscription id.
    subs: HashMap<Arc<str>, SubRef>,
    /// Its open transactions by protocol transaction id.
    txs: HashMap<String, Transaction>,
    /// Temporary destinations it created; deleted when it leaves.
    temps: Vec<Destination>,
}

/// Everything the lock protects.
#[derive(Default)]
struct State {
    /// The next message id to assign.
    next_message_id: MessageId,
    /// The next connection id to assign.
    next_connection: ConnectionId,
    /// The next consumer id to assign.
    next_consumer: ConsumerId,
    /// Every container, created on first use.
    containers: HashMap<ContainerKey, MessageQueue>,
    /// Topics and their subscriptions.
    topics: HashMap<Destination, Vec<TopicLink>>,
    /// Durable subscriptions by (client id, name).
    durables: HashMap<(Arc<str>, Arc<str>), DurableSubscription>,
    /// Live connections.
    connections: HashMap<ConnectionId, Connection>,
    /// Which container each consumer is attached to.
    consumers: HashMap<ConsumerId, ContainerKey>,
    /// Highest stored sequence per producer, for duplicate detection.
    producers: HashMap<Arc<str>, TrackedProducer>,
    /// Ticks on every producer use; orders producers for eviction.
    producer_clock: u64,
    /// The last store record this engine appended (a duplicate's receipt waits for it).
    last_seq: Seq,
}

/// A producer's duplicate-detection window: everything up to `seq` is stored.
#[derive(Clone, Copy, Debug)]
struct TrackedProducer {
    /// Highest sequence stored.
    seq: u64,
    /// `producer_clock` at its last use.
    last_used: u64,
}

/// What a client asks for when it subscribes.
#[derive(Clone, Debug)]
pub struct SubscribeSpec {
    /// The protocol's subscription id, unique on the connection.
    pub id: Arc<str>,
    /// Queue or topic to consume from.
    pub destination: Destination,
    /// How the consumer acknowledges.
    pub ack_mode: AckMode,
    /// Most unacknowledged messages it may hold.
    pub prefetch: u32,
    /// A JMS selector, if any.
    pub selector: Option<String>,
    /// ActiveMQ's exclusive consumer.
    pub exclusive: bool,
    /// Makes a topic subscription durable under this name.
    pub durable_name: Option<String>,
    /// Skip messages published by the subscriber itself (topics).
    pub no_local: bool,
}

/// Counters of one destination, for tools and metrics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerStats {
    /// `queue://name`, `durable://client:name` or `topic-sub://conn:sub`.
    pub name: String,
    /// Messages waiting.
    pub pending: usize,
    /// Messages delivered and not settled.
    pub inflight: usize,
    /// Consumers attached.
    pub consumers: usize,
}

/// The broker engine. Shared by every connection (`Arc<Broker>`).
pub struct Broker {
    /// All mutable state.
    state: Mutex<State>,
    /// Where persistent state goes.
    store: Arc<dyn Store>,
    /// Memory held by messages, for producer flow control.
    usage: Arc<MemoryUsage>,
    /// Settings.
    config: BrokerConfig,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn parse_selector(text: Option<&str>) -> Result<Option<Arc<Selector>>, BrokerError> {
    match text.map(str::trim) {
        None | Some("") => Ok(None),
        Some(s) => Selector::parse(s)
            .map(|sel| Some(Arc::new(sel)))
            .map_err(|e| BrokerError::InvalidSelector {
                selector: s.to_owned(),
                reason: e.to_string(),
            }),
    }
}

impl Broker {
    /// Starts the engine from what the store recovered.
    pub fn new(config: BrokerConfig, store: Arc<dyn Store>, recovered: Recovered) -> Broker {
        let usage = MemoryUsage::new(config.max_pending_memory_bytes);
        let mut st = State {
            // Ids stay unique across restarts even when the store kept nothing:
            // start above both what was recovered and the clock in microseconds.
            next_message_id: (recovered.max_message_id + 1).max(now_ms() * 1000),
            next_connection: 1,
            next_consumer: 1,
            ..State::default()
        };
        for sub in recovered.subscriptions {
            let key = ContainerKey::Durable {
                client_id: Arc::clone(&sub.client_id),
                name: Arc::clone(&sub.name),
            };
            // A selector that parsed when stored parses now; if the grammar ever
            // changes, keep the subscription and let it match everything rather than lose it.
            let filter = parse_selector(sub.selector.as_deref()).unwrap_or_else(|e| {
                tracing::warn!("durable subscription {}: {e}", sub.name);
                None
            });
            st.topics
                .entry(Destination::topic(&sub.topic))
                .or_default()
                .push(TopicLink {
                    key: key.clone(),
                    filter,
                    no_local: sub
                        .no_local
                        .then(|| NoLocal::ClientId(Arc::clone(&sub.client_id))),
                });
            st.containers.entry(key).or_default();
            st.durables
                .insert((Arc::clone(&sub.client_id), Arc::clone(&sub.name)), sub);
        }
        for (id, seq) in recovered.producers {
            st.producers
                .insert(id, TrackedProducer { seq, last_used: 0 });
        }
        for (skey, messages) in recovered.messages {
            let key = match skey {
                StoreKey::Queue(name) => ContainerKey::Queue(Destination::queue(&name)),
                StoreKey::Durable { client_id, name } => ContainerKey::Durable { client_id, name },
            };
            let container = st.containers.entry(key).or_default();
            for (data, redeliveries) in messages {
                container.enqueue(Entry {
                    msg: Arc::new(Message::new(data, &usage)),
                    redeliveries,
                    seq: 0,
                    consumed: None,
                });
            }
        }
        Broker {
            state: Mutex::new(st),
            store,
            usage,
            config,
        }
    }

    /// The engine's settings.
    pub fn config(&self) -> &BrokerConfig {
        &self.config
    }

    /// Memory held by messages (producer flow control waits on it).
    pub fn memory(&self) -> &Arc<MemoryUsage> {
        &self.usage
    }

    /// The store behind the engine.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Registers a connection. A client id may be used by one connection at a time.
    pub fn connect(
        &self,
        client_id: Option<&str>,
        outbox: Arc<dyn Outbox>,
    ) -> Result<ConnectionId, BrokerError> {
        let mut st = self.state.lock();
        if let Some(cid) = client_id {
            if st
                .connections
                .values()
                .any(|c| c.client_id.as_deref() == Some(cid))
            {
                return Err(BrokerError::ClientIdInUse(cid.to_owned()));
            }
        }
        let id = st.next_connection;
        st.next_connection += 1;
        st.connections.insert(
            id,
            Connection {
                client_id: client_id.map(Arc::from),
                outbox,
                subs: HashMap::default(),
                txs: HashMap::default(),
                temps: Vec::new(),
            },
        );
        Ok(id)
    }

    /// Ends a connection: open transactions roll back, unacknowledged messages
    /// return to their queues marked redelivered, non-durable subscriptions and
    /// the connection's temporary destinations disappear.
    pub fn disconnect(&self, conn: ConnectionId) {
        let mut st = self.state.lock();
        let Some(mut c) = st.connections.remove(&conn) else {
            return;
        };
        for (_, tx) in c.txs.drain() {
            self.rollback_acks(&mut st, tx.acks);
        }
        for (_, sub) in c.subs.drain() {
            self.detach(&mut st, &sub);
        }
        for dest in c.temps {
            self.delete_temporary(&mut st, &dest);
        }
    }

    /// Records that `dest` (a temporary destination) belongs to `conn` and goes when it does.
    pub fn register_temporary(&self, conn: ConnectionId, dest: &Destination) {
        let mut st = self.state.lock();
        if let Some(c) = st.connections.get_mut(&conn) {
            if !c.temps.contains(dest) {
                c.temps.push(dest.clone());
            }
        }
    }

    /// Attaches a consumer. Returns the sequence of the store record to wait for
    /// before confirming (non-zero when a durable subscription was created).
    pub fn subscribe(&self, conn: ConnectionId, spec: SubscribeSpec) -> Result<Seq, BrokerError> {
        let mut st = self.state.lock();
        let st = &mut *st;
        let c = st
            .connections
            .get(&conn)
            .ok_or(BrokerError::ConnectionClosed)?;
        if c.subs.contains_key(&spec.id) {
            return Err(BrokerError::DuplicateSubscription(spec.id.to_string()));
        }
        if c.subs.len() >= self.config.max_subscriptions_per_connection {
            return Err(BrokerError::Limit("subscriptions per connection"));
        }
        let outbox = Arc::clone(&c.outbox);
        let client_id = c.client_id.clone();
        let selector = parse_selector(spec.selector.as_deref())?;
        let consumer_id = st.next_consumer;
        st.next_consumer += 1;
        let mut seq = 0;

        let (key, consumer_selector) = if !spec.destination.is_topic() {
            (ContainerKey::Queue(spec.destination.clone()), selector)
        } else if let Some(name) = spec.durable_name.as_deref() {
            let client_id = client_id.ok_or(BrokerError::DurableNeedsClientId)?;
            let def = DurableSubscription {
                client_id: Arc::clone(&client_id),
                name: Arc::from(name),
                topic: Arc::clone(&spec.destination.name),
                selector: selector.as_ref().map(|s| s.text().to_owned()),
                no_local: spec.no_local,
            };
            let key = ContainerKey::Durable {
                client_id: Arc::clone(&client_id),
                name: Arc::clone(&def.name),
            };
            let existing = st
                .durables
                .get(&(Arc::clone(&client_id), Arc::clone(&def.name)));
            if existing.is_some_and(|_| {
                st.containers
                    .get(&key)
                    .is_some_and(|q| q.consumer_count() > 0)
            }) {
                return Err(BrokerError::DurableActive(name.to_owned()));
            }
            if existing != Some(&def) {
                // New, or changed topic/selector: as in JMS, a changed durable
                // subscription is a new one and the old one's messages are dropped.
                let mut ops = Vec::new();
                if existing.is_some() {
                    self.remove_durable(st, &client_id, &def.name, &mut ops);
                }
                ops.push(StoreOp::Subscribe(def.clone()));
                seq = self.write(st, ops, true)?;
                st.topics
                    .entry(spec.destination.clone())
                    .or_default()
                    .push(TopicLink {
                        key: key.clone(),
                        filter: selector,
                        no_local: def
                            .no_local
                            .then(|| NoLocal::ClientId(Arc::clone(&client_id))),
                    });
                st.durables
                    .insert((Arc::clone(&client_id), Arc::clone(&def.name)), def);
            }
            (key, None)
        } else {
            let key = ContainerKey::TopicSub {
                conn,
                sub: Arc::clone(&spec.id),
            };
            st.topics
                .entry(spec.destination.clone())
                .or_default()
                .push(TopicLink {
                    key: key.clone(),
                    filter: selector,
                    no_local: spec.no_local.then_some(NoLocal::Connection(conn)),
                });
            (key, None)
        };

        st.containers
            .entry(key.clone())
            .or_default()
            .add_consumer(Consumer::new(
                consumer_id,
                Arc::clone(&spec.id),
                spec.ack_mode,
                spec.prefetch,
                consumer_selector,
                spec.exclusive,
                outbox,
            ));
        st.consumers.insert(consumer_id, key.clone());
        st.connections
            .get_mut(&conn)
            .expect("checked above")
            .subs
            .insert(
                Arc::clone(&spec.id),
                SubRef {
                    container: key.clone(),
                    consumer: consumer_id,
                    ack_mode: spec.ack_mode,
                },
            );
        self.dispatch(st, &key);
        Ok(seq)
    }

    /// Detaches a subscription; with `remove_durable` a durable subscription is
    /// deleted with everything it held. `durable_name` alone (no active
    /// subscription id) deletes an inactive durable subscription.
    pub fn unsubscribe(
        &self,
        conn: ConnectionId,
        id: Option<&str>,
        durable_name: Option<&str>,
    ) -> Result<Seq, BrokerError> {
        let mut st = self.state.lock();
        let st = &mut *st;
        let c = st
            .connections
            .get_mut(&conn)
            .ok_or(BrokerError::ConnectionClosed)?;
        let client_id = c.client_id.clone();
        let sub = id.and_then(|id| c.subs.remove(id));
        if sub.is_none() && durable_name.is_none() {
            return Err(BrokerError::UnknownSubscription(
                id.unwrap_or_default().to_owned(),
            ));
        }
        if let Some(sub) = &sub {
            self.detach(st, sub);
        }
        let Some(name) = durable_name else {
            return Ok(0);
        };
        let client_id = client_id.ok_or(BrokerError::DurableNeedsClientId)?;
        let key = ContainerKey::Durable {
            client_id: Arc::clone(&client_id),
            name: Arc::from(name),
        };
        if st
            .containers
            .get(&key)
            .is_some_and(|q| q.consumer_count() > 0)
        {
            return Err(BrokerError::DurableActive(name.to_owned()));
        }
        if !st
            .durables
            .contains_key(&(Arc::clone(&client_id), Arc::from(name)))
        {
            return Err(BrokerError::UnknownSubscription(name.to_owned()));
        }
        let mut ops = Vec::new();
        self.remove_durable(st, &client_id, name, &mut ops);
        Ok(self.write(st, ops, true)?)
    }

    /// Accepts a message from a producer, or buffers it in transaction `tx`.
    /// Returns the store record to wait for before confirming (0: none).
    pub fn send(
        &self,
        conn: ConnectionId,
        message: NewMessage,
        tx: Option<&str>,
    ) -> Result<Seq, BrokerError> {
        Ok(self.accept(conn, message, tx, false)?.0)
    }

    /// [`Broker::send`] for a producer that waits for its receipt: also returns
    /// the flag a consumer's acknowledgement sets when it settles the message
    /// before its record is durable (see [`crate::consumed`]). `None` when
    /// only durability can confirm it (transactions, topics, the option off).
    pub fn send_confirmable(
        &self,
        conn: ConnectionId,
        message: NewMessage,
        tx: Option<&str>,
    ) -> Result<(Seq, Option<Arc<Consumed>>), BrokerError> {
        self.accept(conn, message, tx, true)
    }

    /// Both sends: `confirmable` asks for the consumed flag.
    fn accept(
        &self,
        conn: ConnectionId,
        message: NewMessage,
        tx: Option<&str>,
        confirmable: bool,
    ) -> Result<(Seq, Option<Arc<Consumed>>), BrokerError> {
        let mut st = self.state.lock();
        let st = &mut *st;
        let c = st
            .connections
            .get_mut(&conn)
            .ok_or(BrokerError::ConnectionClosed)?;
        if let Some(tx) = tx {
            let limit = self.config.max_transaction_ops;
            let t = c
                .txs
                .get_mut(tx)
                .ok_or_else(|| BrokerError::UnknownTransaction(tx.to_owned()))?;
            if t.sends.len() + t.acks.len() >= limit {
                return Err(BrokerError::Limit("operations in one transaction"));
            }
            t.sends.push(message);
            return Ok((0, None));
        }
        self.publish(st, conn, vec![message], Vec::new(), confirmable)
    }

    /// Acknowledges `id` (and, for cumulative subscriptions, what came before it).
    /// `subscription` narrows the search when the protocol gives it. With `sync`,
    /// the returned record must be durable before the ack is confirmed.
    pub fn ack(
        &self,
        conn: ConnectionId,
        subscription: Option<&str>,
        id: MessageId,
        tx: Option<&str>,
        sync: bool,
    ) -> Result<Seq, BrokerError> {
        let mut st = self.state.lock();
        let st = &mut *st;
        let Some(sub) = Self::find_holder(st, conn, subscription, id)? else {
            // An auto-acknowledging subscription settled it already.
            return Ok(0);
        };
        let cumulative = sub.ack_mode.is_cumulative();
        if let Some(tx) = tx {
            let c = st.connections.get_mut(&conn).expect("found above");
            let t = c
                .txs
                .get_mut(tx)
                .ok_or_else(|| BrokerError::UnknownTransaction(tx.to_owned()))?;
            let q = st
                .containers
                .get_mut(&sub.container)
                .expect("holder exists");
            let ids = q
                .tx_ack(sub.consumer, id, cumulative)
                .map_err(|_| BrokerError::UnknownMessage(id))?;
            t.acks
                .extend(ids.into_iter().map(|i| (sub.container.clone(), i)));
            self.dispatch(st, &sub.container);
            return Ok(0);
        }
        let q = st
            .containers
            .get_mut(&sub.container)
            .expect("holder exists");
        let entries = q
            .ack(sub.consumer, id, cumulative)
            .map_err(|_| BrokerError::UnknownMessage(id))?;
        for consumed in entries.iter().filter_map(|e| e.consumed.as_deref()) {
            consumed.set();
        }
        let ops = dequeue_ops(&sub.container, &entries);
        let seq = if ops.is_empty() {
            0
        } else {
            self.write(st, ops, sync)?
        };
        self.dispatch(st, &sub.container);
        Ok(seq)
    }

    /// Refuses `id` (and earlier ones for cumulative subscriptions): they are
    /// redelivered, or dead-lettered past the redelivery limit.
    pub fn nack(
        &self,
        conn: ConnectionId,
        subscription: Option<&str>,
        id: MessageId,
    ) -> Result<(), BrokerError> {
        let mut st = self.state.lock();
        let st = &mut *st;
        let Some(sub) = Self::find_holder(st, conn, subscription, id)? else {
            return Err(BrokerError::UnknownMessage(id));
        };
        let q = st
            .containers
            .get_mut(&sub.container)
            .expect("holder exists");
        let entries = q
            .take_back(sub.consumer, id, sub.ack_mode.is_cumulative())
            .map_err(|_| BrokerError::UnknownMessage(id))?;
        self.redeliver(st, &sub.container, entries);
        Ok(())
    }

    /// Settles auto-acknowledged deliveries once their connection has written them.
    pub fn delivered(&self, written: &[(ConsumerId, MessageId)]) {
        let mut st = self.state.lock();
        let st = &mut *st;
        let mut ops = Vec::new();
        let mut touched: Vec<ContainerKey> = Vec::new();
        // A connection writes runs of deliveries to the same consumer: look its
        // container up once per run.
        for run in written.chunk_by(|a, b| a.0 == b.0) {
            let consumer = run[0].0;
            let Some(key) = st.consumers.get(&consumer) else {
                continue;
            };
            let Some(q) = st.containers.get_mut(key) else {
                continue;
            };
            let mut settled = false;
            for &(_, id) in run {
                if let Some(entry) = q.auto_ack(consumer, id) {
                    ops.extend(dequeue_ops(key, std::slice::from_ref(&entry)));
                    settled = true;
                }
            }
            if settled && !touched.contains(key) {
                touched.push(key.clone());
            }
        }
        self.append_quietly(st, ops);
        for key in touched {
            self.dispatch(st, &key);
        }
    }

    /// Opens transaction `tx` on the connection.
    pub fn begin(&self, conn: ConnectionId, tx: &str) -> Result<(), BrokerError> {
        let mut st = self.state.lock();
        let c = st
            .connections
            .get_mut(&conn)
            .ok_or(BrokerError::ConnectionClosed)?;
        if c.txs.contains_key(tx) {
            return Err(BrokerError::DuplicateTransaction(tx.to_owned()));
        }
        if c.txs.len() >= self.config.max_transactions_per_connection {
            return Err(BrokerError::Limit("open transactions per connection"));
        }
        c.txs.insert(tx.to_owned(), Transaction::default());
        Ok(())
    }

    /// Commits: the transaction's sends are published and its acks settled, in
    /// one store record. Returns that record's sequence.
    pub fn commit(&self, conn: ConnectionId, tx: &str) -> Result<Seq, BrokerError> {
        let mut st = self.state.lock();
        let st = &mut *st;
        let c = st
            .connections
            .get_mut(&conn)
            .ok_or(BrokerError::ConnectionClosed)?;
        let t = c
            .txs
            .remove(tx)
            .ok_or_else(|| BrokerError::UnknownTransaction(tx.to_owned()))?;
        let mut ops = Vec::new();
        let mut touched = Vec::new();
        for (key, id) in t.acks {
            if let Some(entry) = st
                .containers
                .get_mut(&key)
                .and_then(|q| q.settle_tx_ack(id))
            {
                ops.extend(dequeue_ops(&key, std::slice::from_ref(&entry)));
                touched.push(key);
            }
        }
        let (seq, _) = self.publish(st, conn, t.sends, ops, false)?;
        for key in touched {
            self.dispatch(st, &key);
        }
        Ok(seq)
    }

    /// Rolls back: sends are discarded, acknowledged messages are redelivered.
    pub fn abort(&self, conn: ConnectionId, tx: &str) -> Result<(), BrokerError> {
        let mut st = self.state.lock();
        let c = st
            .connections
            .get_mut(&conn)
            .ok_or(BrokerError::ConnectionClosed)?;
        let t = c
            .txs
            .remove(tx)
            .ok_or_else(|| BrokerError::UnknownTransaction(tx.to_owned()))?;
        self.rollback_acks(&mut st, t.acks);
        Ok(())
    }

    /// Removes expired messages that no consumer has asked for yet.
    pub fn expire(&self) {
        let mut st = self.state.lock();
        let st = &mut *st;
        let now = now_ms();
        let keys: Vec<ContainerKey> = st.containers.keys().cloned().collect();
        for key in keys {
            let mut expired = Vec::new();
            if let Some(q) = st.containers.get_mut(&key) {
                q.sweep_expired(now, &mut expired);
            }
            if !expired.is_empty() {
                self.dispose_expired(st, &key, expired);
            }
        }
    }

    /// The messages waiting in a queue, in the order they would be dispatched,
    /// without consuming them (JMS queue browsing). Each comes with its
    /// redelivery count and the store record it must not be shown before.
    pub fn browse(&self, queue: &Destination) -> Vec<(Arc<Message>, u32, Seq)> {
        let st = self.state.lock();
        st.containers
            .get(&ContainerKey::Queue(queue.clone()))
            .map(|q| {
                q.browse()
                    .map(|e| (Arc::clone(&e.msg), e.redeliveries, e.seq))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Per-container counters, sorted by name.
    pub fn stats(&self) -> Vec<ContainerStats> {
        let st = self.state.lock();
        let mut out: Vec<ContainerStats> = st
            .containers
            .iter()
            .map(|(key, q)| ContainerStats {
                name: match key {
                    ContainerKey::Queue(d) => d.to_string(),
                    ContainerKey::Durable { client_id, name } => {
                        format!("durable://{client_id}:{name}")
                    }
                    ContainerKey::TopicSub { conn, sub } => format!("topic-sub://{conn}:{sub}"),
                },
                pending: q.pending_len(),
                inflight: q.inflight_len(),
                consumers: q.consumer_count(),
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// Number of live connections.
    pub fn connection_count(&self) -> usize {
        self.state.lock().connections.len()
    }

    // ---- internals; all run under the state lock ----

    /// Assigns ids, routes messages to containers, writes persistent ones (with
    /// `extra` ops) as one record, and dispatches. With `confirmable`, a single
    /// persistent message for a queue carries a [`Consumed`] flag, returned too.
    fn publish(
        &self,
        st: &mut State,
        conn: ConnectionId,
        messages: Vec<NewMessage>,
        mut ops: Vec<StoreOp>,
        confirmable: bool,
    ) -> Result<(Seq, Option<Arc<Consumed>>), BrokerError> {
        let now = now_ms();
        let publisher_client = st.connections.get(&conn).and_then(|c| c.client_id.clone());
        let mut placed: Vec<(ContainerKey, Arc<Message>)> = Vec::with_capacity(messages.len());
        let mut marks: Vec<(Arc<str>, u64)> = Vec::new();
        let mut duplicates = 0;
        let total = messages.len();
        for new in messages {
            if let Some(p) = &new.producer {
                if self.is_duplicate(st, p, &mut ops) {
                    duplicates += 1;
                    continue;
                }
                if new.persistent {
                    match marks.iter_mut().find(|(id, _)| *id == p.id) {
                        Some(m) => m.1 = m.1.max(p.seq),
                        None => marks.push((Arc::clone(&p.id), p.seq)),
                    }
                }
            }
            let id = st.next_message_id;
            st.next_message_id += 1;
            let msg = Arc::new(Message::new(MessageData::accept(id, new, now), &self.usage));
            if msg.destination.is_topic() {
                let mut targets = Vec::new();
                for link in st.topics.get(&msg.destination).into_iter().flatten() {
                    let own = match &link.no_local {
                        Some(NoLocal::Connection(c)) => *c == conn,
                        Some(NoLocal::ClientId(id)) => publisher_client.as_ref() == Some(id),
                        None => false,
                    };
                    if own || link.filter.as_ref().is_some_and(|f| !f.matches(&**msg)) {
                        continue;
                    }
                    if msg.persistent {
                        targets.extend(link.key.store_key());
                    }
                    placed.push((link.key.clone(), Arc::clone(&msg)));
                }
                if !targets.is_empty() {
                    ops.push(StoreOp::Enqueue {
                        message: Arc::clone(&msg),
                        targets,
                    });
                }
            } else {
                let key = ContainerKey::Queue(msg.destination.clone());
                if msg.persistent {
                    if let Some(skey) = key.store_key() {
                        ops.push(StoreOp::Enqueue {
                            message: Arc::clone(&msg),
                            targets: vec![skey],
                        });
                    }
                }
                placed.push((key, msg));
            }
        }
        ops.extend(
            marks
                .into_iter()
                .map(|(producer, seq)| StoreOp::ProducerMark { producer, seq }),
        );
        let seq = if ops.is_empty() {
            // Only resends: confirm once everything appended so far (the
            // originals among it) is durable.
            if duplicates == total {
                st.last_seq
            } else {
                0
            }
        } else {
            self.write(st, ops, true)?
        };
        let visible_after = if self.config.concurrent_store_and_dispatch {
            0
        } else {
            seq
        };
        let consumed = match placed.as_slice() {
            [(ContainerKey::Queue(_), msg)]
                if confirmable
                    && msg.persistent
                    && seq != 0
                    && self.config.concurrent_store_and_dispatch
                    && self.config.confirm_consumed =>
            {
                Some(Arc::new(Consumed::new()))
            }
            _ => None,
        };
        // One message (a plain SEND) lands in each container at most once, so each can
        // be dispatched at once; a batch (a commit) may hit a container many times and
        // dispatches each once, after all are placed.
        let mut touched: Vec<ContainerKey> = Vec::new();
        for (key, msg) in placed {
            let entry = Entry {
                msg,
                redeliveries: 0,
                seq: visible_after,
                consumed: consumed.clone(),
            };
            match st.containers.get_mut(&key) {
                Some(q) => q.enqueue(entry),
                None => st.containers.entry(key.clone()).or_default().enqueue(entry),
            }
            if total == 1 {
                self.dispatch(st, &key);
            } else if !touched.contains(&key) {
                touched.push(key);
            }
        }
        for key in touched {
            self.dispatch(st, &key);
        }
        Ok((seq, consumed))
    }

    /// True if the producer's message was stored before (a resend); otherwise
    /// records it as the producer's highest sequence, evicting the least
    /// recently used producer when the window is full.
    fn is_duplicate(&self, st: &mut State, p: &ProducerRef, ops: &mut Vec<StoreOp>) -> bool {
        st.producer_clock += 1;
        let now = st.producer_clock;
        if let Some(t) = st.producers.get_mut(&p.id) {
            t.last_used = now;
            if p.seq <= t.seq {
                return true;
            }
            t.seq = p.seq;
            return false;
        }
        if st.producers.len() >= self.config.max_tracked_producers {
            if let Some(oldest) = st
                .producers
                .iter()
                .min_by_key(|(_, t)| t.last_used)
                .map(|(id, _)| Arc::clone(id))
            {
                st.producers.remove(&oldest);
                ops.push(StoreOp::ProducerForget { producer: oldest });
            }
        }
        st.producers.insert(
            Arc::clone(&p.id),
            TrackedProducer {
                seq: p.seq,
                last_used: now,
            },
        );
        false
    }

    /// Appends a record and remembers its sequence.
    fn write(&self, st: &mut State, ops: Vec<StoreOp>, sync: bool) -> Result<Seq, StoreError> {
        let seq = self.store.append(ops, sync)?;
        st.last_seq = st.last_seq.max(seq);
        Ok(seq)
    }

    /// Finds the subscription of `conn` holding `id` unacknowledged. `Ok(None)`
    /// means no holder but an auto-acknowledging subscription could have settled it.
    fn find_holder(
        st: &State,
        conn: ConnectionId,
        subscription: Option<&str>,
        id: MessageId,
    ) -> Result<Option<SubRef>, BrokerError> {
        let c = st
            .connections
            .get(&conn)
            .ok_or(BrokerError::ConnectionClosed)?;
        match subscription {
            Some(name) => {
                let sub = c
                    .subs
                    .get(name)
                    .ok_or_else(|| BrokerError::UnknownSubscription(name.to_owned()))?;
                Self::holder_among(st, std::iter::once(sub), id)
            }
            None => Self::holder_among(st, c.subs.values(), id),
        }
    }

    /// The candidate holding `id`; else `Ok(None)` if an auto-acknowledging one
    /// could have settled it, else `UnknownMessage`. Runs on every ACK, so the
    /// candidates are walked, not collected.
    fn holder_among<'a>(
        st: &State,
        candidates: impl Iterator<Item = &'a SubRef> + Clone,
        id: MessageId,
    ) -> Result<Option<SubRef>, BrokerError> {
        let holds = |s: &&SubRef| {
            st.containers
                .get(&s.container)
                .is_some_and(|q| q.holds(s.consumer, id))
        };
        if let Some(found) = candidates.clone().find(holds) {
            return Ok(Some(found.clone()));
        }
        if candidates.into_iter().any(|s| s.ack_mode == AckMode::Auto) {
            return Ok(None);
        }
        Err(BrokerError::UnknownMessage(id))
    }

    /// Removes a subscription's consumer and returns what it held to the queue;
    /// a non-durable topic subscription disappears with its messages.
    fn detach(&self, st: &mut State, sub: &SubRef) {
        st.consumers.remove(&sub.consumer);
        let Some(q) = st.containers.get_mut(&sub.container) else {
            return;
        };
        let held = q.remove_consumer(sub.consumer);
        if let ContainerKey::TopicSub { .. } = sub.container {
            st.containers.remove(&sub.container);
            for links in st.topics.values_mut() {
                links.retain(|l| l.key != sub.container);
            }
            st.topics.retain(|_, links| !links.is_empty());
            return;
        }
        self.redeliver(st, &sub.container, held);
    }

    /// Deletes a durable subscription and its messages; pushes the store ops that say so.
    fn remove_durable(
        &self,
        st: &mut State,
        client_id: &Arc<str>,
        name: &str,
        ops: &mut Vec<StoreOp>,
    ) {
        let name: Arc<str> = Arc::from(name);
        let key = ContainerKey::Durable {
            client_id: Arc::clone(client_id),
            name: Arc::clone(&name),
        };
        st.durables
            .remove(&(Arc::clone(client_id), Arc::clone(&name)));
        st.containers.remove(&key);
        for links in st.topics.values_mut() {
            links.retain(|l| l.key != key);
        }
        st.topics.retain(|_, links| !links.is_empty());
        ops.push(StoreOp::Unsubscribe {
            client_id: Arc::clone(client_id),
            name,
        });
    }

    /// Drops a temporary destination and whatever it held.
    fn delete_temporary(&self, st: &mut State, dest: &Destination) {
        if dest.is_topic() {
            if let Some(links) = st.topics.remove(dest) {
                for link in links {
                    st.containers.remove(&link.key);
                }
            }
        } else {
            st.containers.remove(&ContainerKey::Queue(dest.clone()));
        }
    }

    /// Returns messages acknowledged in a rolled-back transaction to their queues.
    fn rollback_acks(&self, st: &mut State, acks: Vec<(ContainerKey, MessageId)>) {
        let mut by_key: Vec<(ContainerKey, Vec<Entry>)> = Vec::new();
        for (key, id) in acks {
            let Some(entry) = st
                .containers
                .get_mut(&key)
                .and_then(|q| q.settle_tx_ack(id))
            else {
                continue;
            };
            match by_key.iter_mut().find(|(k, _)| *k == key) {
                Some((_, v)) => v.push(entry),
                None => by_key.push((key, vec![entry])),
            }
        }
        for (key, entries) in by_key {
            self.redeliver(st, &key, entries);
        }
    }

    /// Hands messages back to their container for redelivery, or to the
    /// dead-letter queue once they have been redelivered too often.
    fn redeliver(&self, st: &mut State, key: &ContainerKey, entries: Vec<Entry>) {
        if entries.is_empty() {
            return;
        }
        let skey = key.store_key();
        let mut back = Vec::with_capacity(entries.len());
        let mut dead = Vec::new();
        let mut ops = Vec::new();
        for mut e in entries {
            e.redeliveries += 1;
            if e.redeliveries > self.config.max_redeliveries {
                dead.push(e);
                continue;
            }
            if let (true, Some(skey)) = (e.msg.persistent, &skey) {
                ops.push(StoreOp::Redelivered {
                    key: skey.clone(),
                    id: e.msg.id,
                    count: e.redeliveries,
                });
            }
            back.push(e);
        }
        self.append_quietly(st, ops);
        if let Some(q) = st.containers.get_mut(key) {
            q.requeue_front(back);
        }
        if !dead.is_empty() {
            let cause = format!(
                "delivery failed more than maximumRedeliveries={}",
                self.config.max_redeliveries
            );
            self.dead_letter(st, key, dead, &cause);
        }
        self.dispatch(st, key);
    }

    /// Moves messages to the dead-letter queue, atomically in the store.
    fn dead_letter(&self, st: &mut State, from: &ContainerKey, entries: Vec<Entry>, cause: &str) {
        let dlq = Destination::queue(&self.config.dead_letter_queue);
        let dlq_key = ContainerKey::Queue(dlq.clone());
        if *from == dlq_key {
            // Messages failing in the DLQ itself stay there rather than loop.
            if let Some(q) = st.containers.get_mut(from) {
                q.requeue_front(entries);
            }
            return;
        }
        let mut ops = dequeue_ops(from, &entries);
        let now = now_ms();
        let mut moved = Vec::with_capacity(entries.len());
        for e in entries {
            let mut data = MessageData::clone(&e.msg);
            data.id = st.next_message_id;
            st.next_message_id += 1;
            data.destination = dlq.clone();
            data.expires_ms = None;
            data.timestamp_ms = now;
            data.headers
                .push(("original-destination".into(), e.msg.destination.to_string()));
            data.headers.push((
                "original-message-id".into(),
                format!("ID:hawser-{}", e.msg.id),
            ));
            data.headers
                .push(("dlqDeliveryFailureCause".into(), cause.to_owned()));
            let msg = Arc::new(Message::new(data, &self.usage));
            if msg.persistent {
                ops.push(StoreOp::Enqueue {
                    message: Arc::clone(&msg),
                    targets: vec![StoreKey::Queue(Arc::clone(&dlq.name))],
                });
            }
            moved.push(msg);
        }
        let seq = if ops.is_empty() {
            0
        } else {
            match self.write(st, ops, false) {
                Ok(seq) => seq,
                Err(e) => {
                    tracing::error!("dead-lettering failed: {e}");
                    return;
                }
            }
        };
        let q = st.containers.entry(dlq_key.clone()).or_default();
        for msg in moved {
            q.enqueue(Entry {
                msg,
                redeliveries: 0,
                seq,
                consumed: None,
            });
        }
        self.dispatch(st, &dlq_key);
    }

    /// Expired persistent messages go to the dead-letter queue (as in ActiveMQ);
    /// expired non-persistent ones are dropped.
    fn dispose_expired(&self, st: &mut State, key: &ContainerKey, expired: Vec<Entry>) {
        let (persistent, dropped): (Vec<Entry>, Vec<Entry>) =
            expired.into_iter().partition(|e| e.msg.persistent);
        drop(dropped);
        if !persistent.is_empty() {
            self.dead_letter(st, key, persistent, "message expired");
        }
    }

    /// Lets a container hand out what it can.
    fn dispatch(&self, st: &mut State, key: &ContainerKey) {
        let Some(q) = st.containers.get_mut(key) else {
            return;
        };
        let mut expired = Vec::new();
        q.dispatch(now_ms(), &mut expired);
        if !expired.is_empty() {
            self.dispose_expired(st, key, expired);
        }
    }

    /// Appends ops whose loss in a crash costs only a redelivery; a failure is
    /// logged, since the store then fails every later confirmation anyway.
    fn append_quietly(&self, st: &mut State, ops: Vec<StoreOp>) {
        if ops.is_empty() {
            return;
        }
        if let Err(e) = self.write(st, ops, false) {
            tracing::error!("store append failed: {e}");
        }
    }
}

/// The store ops saying a container is done with these entries.
fn dequeue_ops(key: &ContainerKey, entries: &[Entry]) -> Vec<StoreOp> {
    let Some(skey) = key.store_key() else {
        return Vec::new();
    };
    entries
        .iter()
        .filter(|e| e.msg.persistent)
        .map(|e| StoreOp::Dequeue {
            key: skey.clone(),
            id: e.msg.id,
        })
        .collect()
}
