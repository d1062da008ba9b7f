//! The broker engine: the calls a protocol session makes, each under the one
//! engine lock.
//!
//! A protocol session calls these methods with what its client asked for; the
//! engine routes messages into [`MessageQueue`](crate::queue::MessageQueue)s, dispatches them to consumers'
//! [`Outbox`]es and appends what must survive a crash to the [`Store`], in the
//! same critical section, and changes its state only once the store has taken
//! the record (the lock invariant, written in [`crate::state`]). Each call that
//! wrote a record returns its sequence number: the session holds the client's
//! receipt until the store reports it durable.
//!
//! By default a persistent message is dispatched while its record is being
//! written, as ActiveMQ does (`concurrent_store_and_dispatch`); the producer's
//! receipt waits for the fsync unless a consumer acknowledges the message first
//! (`confirm_consumed`, see [`crate::consumed`]), and an acknowledgement's record comes
//! after the message's in the store, so a confirmed ack never outlives its
//! message. With the option off, each delivery carries the sequence to wait
//! for and consumers see only durable messages.
//!
//! The rest of the engine, one noun each: [`crate::publish`] (sends and
//! commits), [`crate::subscription`] (consumers, browsers, temporary
//! destinations), [`crate::redelivery`] (redelivery and dead letters),
//! [`crate::producer`] (duplicate detection), [`crate::transaction`],
//! [`crate::usage`] (memory and flow control).

use foldhash::HashMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use hawser_selector::Selector;
use parking_lot::Mutex;

use crate::access::Operation;
use crate::config::BrokerConfig;
use crate::consumed::Consumed;
use crate::container::ContainerKey;
use crate::destination::Destination;
use crate::error::BrokerError;
use crate::identity::{ConnectInfo, Protocol};
use crate::message::{estimate_bytes, Message, MessageData, MessageId, NewMessage};
use crate::metrics::{Gauges, Metrics};
use crate::outbox::{AckMode, ConnectionId, Outbox};
use crate::paging::Pager;
use crate::producer::{ProducerAudit, ProducerKey};
use crate::publish::{Publish, Publisher};
use crate::queue::{Entry, LastDelivered};
use crate::state::{Connection, NoLocal, State, SubRef, TopicLink};
use crate::store::{
    PreparedSend, PreparedTransaction, Recovered, Seq, Store, StoreError, StoreKey, StoreOp,
};
use crate::store_codec;
use crate::transaction::Transaction;
use crate::usage::{DestinationUsage, MemoryCharge, MemoryUsage};

/// What a client asks for when it subscribes.
#[derive(Clone, Debug)]
pub struct SubscribeSpec {
    /// The protocol's subscription id, unique on the connection.
    pub id: Arc<str>,
    /// Queue or topic to consume from.
    pub destination: Destination,
    /// How the consumer acknowledges.
    pub ack_mode: AckMode,
    /// Most unacknowledged messages it may hold (capped at `max_prefetch`); 0:
    /// only what it asks for with [`Broker::pull`].
    pub prefetch: u32,
    /// A JMS selector, if any.
    pub selector: Option<String>,
    /// ActiveMQ's exclusive consumer.
    pub exclusive: bool,
    /// Makes a topic subscription durable under this name.
    pub durable_name: Option<String>,
    /// Skip messages published by the subscriber itself (topics).
    pub no_local: bool,
    /// ActiveMQ's consumer priority (`consumer.priority`, STOMP's
    /// `activemq.priority`; 0 normal): a queue gives a message to a consumer
    /// of a lower priority only when none of a higher one can take it. A
    /// network link's consumers are below every local one.
    pub priority: i8,
    /// For a network link's consumer, the brokers the demand it serves has
    /// passed (comma-separated, nearest last); `None` for a client's own.
    /// Consumer advisories carry it, so that a link never serves demand
    /// that came from its own broker.
    pub network_path: Option<Arc<str>>,
}

/// What a rollback does with the messages its transaction acknowledged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RolledBackAcks {
    /// They go back to their queues and are redelivered, to any consumer
    /// (STOMP: the client forgets what it acknowledged in the transaction).
    Redeliver,
    /// Their consumers hold them again, unacknowledged, in their places:
    /// ActiveMQ's client redelivers what it rolled back by itself, and
    /// acknowledges it again or gives it up with a poison ack. Those of a
    /// consumer that is gone go back to their queues.
    BackToConsumers,
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
    /// All mutable state (see [`crate::state`] for the lock invariant).
    pub(crate) state: Mutex<State>,
    /// Where persistent state goes.
    store: Arc<dyn Store>,
    /// Memory held by messages, broker-wide, for producer flow control.
    usage: Arc<MemoryUsage>,
    /// Each destination's share of `usage`. Outside the engine lock: sessions
    /// look theirs up before a SEND. Entries are released with the idle sweep
    /// ([`Broker::expire`]) once empty and held by nobody else.
    usages: Mutex<HashMap<Destination, Arc<DestinationUsage>>>,
    /// Settings.
    pub(crate) config: BrokerConfig,
    /// Wakes the pager (see [`crate::paging`]).
    pub(crate) pager: Pager,
    /// What monitoring reads (see [`crate::metrics`]).
    metrics: Metrics,
}

/// Open connections by protocol.
fn count_by_protocol(st: &State) -> std::collections::BTreeMap<Protocol, usize> {
    let mut counts = std::collections::BTreeMap::new();
    for c in st.connections.values() {
        *counts.entry(c.info.protocol).or_insert(0) += 1;
    }
    counts
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

pub(crate) fn parse_selector(text: Option<&str>) -> Result<Option<Arc<Selector>>, BrokerError> {
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
        let broker = Broker {
            state: Mutex::new(State::default()),
            store,
            usage,
            usages: Mutex::new(HashMap::default()),
            config,
            pager: Pager::default(),
            metrics: Metrics::default(),
        };
        let mut st = State {
            // Ids stay unique across restarts even when the store kept nothing:
            // start above both what was recovered and the clock in microseconds.
            next_message_id: (recovered.max_message_id + 1).max(now_ms() * 1000),
            next_connection: 1,
            next_consumer: 1,
            producers: ProducerAudit::recovered(recovered.producers),
            ..State::default()
        };
        for sub in recovered.subscriptions {
            let key = ContainerKey::durable(&sub.client_id, &sub.name);
            // A selector that parsed when stored parses now; if the grammar ever
            // changes, keep the subscription and let it match everything rather than lose it.
            let filter = parse_selector(sub.selector.as_deref()).unwrap_or_else(|e| {
                tracing::warn!("durable subscription {}: {e}", sub.name);
                None
            });
            st.topics.link(
                &Destination::topic(&sub.topic),
                TopicLink {
                    key: key.clone(),
                    filter,
                    no_local: sub
                        .no_local
                        .then(|| NoLocal::ClientId(Arc::clone(&sub.client_id))),
                },
            );
            st.containers.entry(key).or_default();
            st.durables
                .insert((Arc::clone(&sub.client_id), Arc::clone(&sub.name)), sub);
        }
        // The messages stay in the store: each container counts them and
        // reads them back as its consumers need them (see `paging`).
        for (skey, counts) in &recovered.pending {
            st.containers
                .entry(container_key(skey))
                .or_default()
                .recovered(counts);
        }
        // Messages that prepared transactions acknowledged stay held for them.
        for (skey, (data, redeliveries)) in recovered.held {
            let usage = broker.destination_usage(&data.destination);
            let entry = Entry {
                msg: Arc::new(Message::charged(data, &broker.usage, Some(&usage))),
                redeliveries,
                seq: 0,
                record: 0,
                consumed: None,
            };
            st.containers
                .entry(container_key(&skey))
                .or_default()
                .hold_recovered(entry);
        }
        for p in recovered.prepared {
            // Its connection is gone; its client id still scopes its
            // producers' windows, so a commit marks them as before the restart.
            let mut t = Transaction {
                prepared_by: Some(Publisher {
                    conn: None,
                    client_id: p.client_id,
                    owner: p.owner,
                }),
                ..Transaction::default()
            };
            for send in p.sends {
                let data = send.message;
                let usage = broker.destination_usage(&data.destination);
                let bytes = estimate_bytes(&data.fields, &data.body);
                let charge = MemoryCharge::new(&broker.usage, Some(&usage), bytes);
                let mut new = data.into_new();
                new.producer = send.producer;
                t.sends.push((new, charge));
            }
            t.acks = p
                .acks
                .iter()
                .map(|(k, id)| (container_key(k), *id))
                .collect();
            st.prepared.insert(p.xid, t);
        }
        // Each container's first batch, so that browsers see it at once.
        let keys: Vec<ContainerKey> = st.containers.keys().cloned().collect();
        for key in &keys {
            broker.want_pages(&mut st, key, true);
        }
        *broker.state.lock() = st;
        broker
    }

    /// The engine's settings.
    pub fn config(&self) -> &BrokerConfig {
        &self.config
    }

    /// Memory held by messages, broker-wide.
    pub fn memory(&self) -> &Arc<MemoryUsage> {
        &self.usage
    }

    /// The memory counters of a destination, with its policy: a session asks
    /// them for room before a SEND (see [`crate::usage`]) and may keep them.
    pub fn destination_usage(&self, d: &Destination) -> Arc<DestinationUsage> {
        let mut usages = self.usages.lock();
        if let Some(u) = usages.get(d) {
            return Arc::clone(u);
        }
        let u = DestinationUsage::new(d.clone(), &self.usage, self.config.policy_for(d));
        usages.insert(d.clone(), Arc::clone(&u));
        u
    }

    /// The store behind the engine.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Registers a connection. A client id may be used by one connection at
    /// a time, and while it has durable subscriptions made by a user, only
    /// by that user's connections.
    pub fn connect(
        &self,
        info: ConnectInfo,
        outbox: Arc<dyn Outbox>,
    ) -> Result<ConnectionId, BrokerError> {
        let mut st = self.state.lock();
        if let Some(cid) = &info.client_id {
            if st
                .connections
                .values()
                .any(|c| c.info.client_id.as_ref() == Some(cid))
            {
                return Err(BrokerError::ClientIdInUse(cid.to_string()));
            }
            let user = info.principal.user();
            if st
                .durables_of(cid)
                .any(|d| d.owner.is_some() && d.owner.as_ref() != user)
            {
                tracing::warn!(
                    target: "audit",
                    "client id {cid:?} refused to {info}: it belongs to another user"
                );
                return Err(BrokerError::ClientIdOwned(cid.to_string()));
            }
        }
        let id = st.next_connection;
        st.next_connection += 1;
        tracing::debug!("connection {id}: {info}");
        let announced = info.clone();
        st.connections.insert(id, Connection::new(info, outbox));
        self.advise_connection(&mut st, id, &announced, true);
        Ok(id)
    }

    /// How many connections are open, by protocol.
    pub fn connections_by_protocol(&self) -> std::collections::BTreeMap<Protocol, usize> {
        count_by_protocol(&self.state.lock())
    }

    /// Who an open connection is.
    pub fn connect_info(&self, conn: ConnectionId) -> Option<ConnectInfo> {
        self.state
            .lock()
            .connections
            .get(&conn)
            .map(|c| c.info.clone())
    }

    /// Ends a connection: open transactions roll back, unacknowledged messages
    /// return to their queues marked redelivered, non-durable subscriptions and
    /// the connection's temporary destinations disappear.
    pub fn disconnect(&self, conn: ConnectionId) {
        let mut st = self.state.lock();
        // Announced while the connection is still open (it publishes them).
        let temps = st
            .connections
            .get(&conn)
            .map(|c| c.temps.clone())
            .unwrap_or_default();
        for dest in &temps {
            self.advise_temporary(&mut st, conn, dest, false);
        }
        self.remove_producers_of(&mut st, conn);
        if let Some(info) = st.connections.get(&conn).map(|c| c.info.clone()) {
            self.advise_connection(&mut st, conn, &info, false);
        }
        let Some(mut c) = st.connections.remove(&conn) else {
            return;
        };
        for (_, tx) in c.txs.drain() {
            self.rollback_acks(&mut st, tx.acks, RolledBackAcks::Redeliver);
        }
        for (_, sub) in c.subs.drain() {
            // A network link's consumer processes nothing: what it held goes
            // back as it was, not counted towards the dead-letter queue (a
            // link that breaks often would otherwise send healthy messages
            // there).
            let last = if sub.advice.network_path.is_some() {
                LastDelivered::Nothing
            } else {
                LastDelivered::Unknown
            };
            self.detach_after(&mut st, &sub, last);
        }
        for dest in c.temps {
            st.temp_owners.remove(&dest);
            self.delete_temporary(&mut st, &dest);
        }
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
        // The store's limit, checked before anything is held: the record
        // carries the message and at most a little framing and one producer mark.
        let len = single_record_len(&message.destination, &message.fields, message.body.len());
        let max = self.store.max_record_bytes();
        if message.persistent && len > max {
            return Err(BrokerError::TooLarge { len, max });
        }
        if let Some(p) = &message.producer {
            p.check()?;
        }
        // Looked up before the engine's lock is taken: it takes a lock of its own.
        let usage = self.destination_usage(&message.destination);
        let mut st = self.state.lock();
        let st = &mut *st;
        self.authorize_use(st, conn, &message.destination, Operation::Write)?;
        let c = st.connections.open_mut(conn)?;
        if let Some(tx) = tx {
            let limit = self.config.max_transaction_ops;
            let t = c
                .txs
                .get_mut(tx)
                .ok_or_else(|| BrokerError::UnknownTransaction(tx.to_owned()))?;
            if t.ops() >= limit {
                return Err(BrokerError::Limit("operations in one transaction"));
            }
            let record = t.record_bytes + if message.persistent { len } else { 0 };
            if record > max {
                return Err(BrokerError::TooLarge { len: record, max });
            }
            let charge = MemoryCharge::new(
                &self.usage,
                Some(&usage),
                estimate_bytes(&message.fields, &message.body),
            );
            t.record_bytes = record;
            t.sends.push((message, charge));
            return Ok((0, None));
        }
        let from = Publisher::of(st, conn)?;
        let mut plan = self.plan_publish(st, &from, vec![message], Vec::new(), Some(&usage))?;
        let seq = self.write_plan(st, &mut plan)?;
        let consumed = self.apply_publish(st, plan, seq, confirmable);
        Ok((seq, consumed))
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
        self.ack_as(conn, subscription, id, tx, sync, None)
    }

    /// [`Broker::ack`] for protocols whose acknowledgements say themselves
    /// whether they cover what came before (OpenWire's standard and
    /// individual acks): `cumulative` overrides the subscription's mode.
    pub fn ack_as(
        &self,
        conn: ConnectionId,
        subscription: Option<&str>,
        id: MessageId,
        tx: Option<&str>,
        sync: bool,
        cumulative: Option<bool>,
    ) -> Result<Seq, BrokerError> {
        let mut st = self.state.lock();
        let st = &mut *st;
        let Some(sub) = Self::find_holder(st, conn, subscription, id)? else {
            // An auto-acknowledging subscription settled it already.
            return Ok(0);
        };
        let cumulative = cumulative.unwrap_or(sub.ack_mode.is_cumulative());
        if let Some(tx) = tx {
            let c = st.connections.get_mut(&conn).expect("found above");
            let t = c
                .txs
                .get_mut(tx)
                .ok_or_else(|| BrokerError::UnknownTransaction(tx.to_owned()))?;
            if t.ops() >= self.config.max_transaction_ops {
                return Err(BrokerError::Limit("operations in one transaction"));
            }
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
        let q = st.containers.get(&sub.container).expect("holder exists");
        let ids = q
            .covered(sub.consumer, id, cumulative)
            .map_err(|_| BrokerError::UnknownMessage(id))?;
        let stored = |i: &&MessageId| q.inflight(**i).is_some_and(|e| e.msg.persistent);
        let ops: Vec<StoreOp> = match sub.container.store_key() {
            Some(key) if ids.iter().any(|i| stored(&i)) => ids
                .iter()
                .filter(stored)
                .map(|i| StoreOp::Dequeue {
                    key: key.clone(),
                    id: *i,
                })
                .collect(),
            _ => Vec::new(),
        };
        let seq = if ops.is_empty() {
            0
        } else {
            self.write(st, ops, sync)?
        };
        let q = st
            .containers
            .get_mut(&sub.container)
            .expect("holder exists");
        let entries = q.settle(sub.consumer, &ids);
        for e in &entries {
            st.tally.dequeued(&e.msg.destination);
        }
        for consumed in entries.iter().filter_map(|e| e.consumed.as_deref()) {
            consumed.set();
        }
        drop(entries);
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
        let (sub, entries) = Self::take_back(st, conn, subscription, id, None)?;
        self.redeliver(st, &sub.container, entries);
        Ok(())
    }

    /// Takes `id` (and with a cumulative ack mode, or `cumulative`, what
    /// its consumer was given before it) back from the subscription holding it.
    fn take_back(
        st: &mut State,
        conn: ConnectionId,
        subscription: Option<&str>,
        id: MessageId,
        cumulative: Option<bool>,
    ) -> Result<(SubRef, Vec<Entry>), BrokerError> {
        let Some(sub) = Self::find_holder(st, conn, subscription, id)? else {
            return Err(BrokerError::UnknownMessage(id));
        };
        let q = st
            .containers
            .get_mut(&sub.container)
            .expect("holder exists");
        let cumulative = cumulative.unwrap_or(sub.ack_mode.is_cumulative());
        let entries = q
            .take_back(sub.consumer, id, cumulative)
            .map_err(|_| BrokerError::UnknownMessage(id))?;
        Ok((sub, entries))
    }

    /// Dead-letters `id` (with `cumulative`, and what this consumer was given
    /// before it) at once, with `cause` as the reason: the client, not the
    /// broker, decided the message must not come again (OpenWire's poison
    /// ack: past its own redelivery limit, or a duplicate its audit dropped,
    /// such as a message whose ack a failed broker lost). A redelivery
    /// would only come back to be refused again.
    pub fn poison(
        &self,
        conn: ConnectionId,
        subscription: Option<&str>,
        id: MessageId,
        cumulative: bool,
        cause: &str,
    ) -> Result<(), BrokerError> {
        let mut st = self.state.lock();
        let st = &mut *st;
        let (sub, entries) = Self::take_back(st, conn, subscription, id, Some(cumulative))?;
        self.dead_letter(st, &sub.container, entries, cause);
        self.dispatch(st, &sub.container);
        Ok(())
    }

    /// A consumer with prefetch 0 asks for one message (JMS `receive` over
    /// OpenWire's MessagePull). True if one was dispatched at once; otherwise
    /// the next that arrives is, unless [`Broker::cancel_pull`] comes first.
    pub fn pull(&self, conn: ConnectionId, subscription: &str) -> Result<bool, BrokerError> {
        let mut st = self.state.lock();
        let st = &mut *st;
        let sub = st.connections.subscription(conn, subscription)?;
        let Some(q) = st.containers.get_mut(&sub.container) else {
            return Ok(false);
        };
        q.pull(sub.consumer);
        let asked = q.pulls(sub.consumer);
        self.dispatch(st, &sub.container);
        let q = st.containers.get(&sub.container).expect("still there");
        Ok(q.pulls(sub.consumer) < asked)
    }

    /// Withdraws a consumer's pull that no message has answered; true if there
    /// was one (the protocol then tells its client that nothing came).
    pub fn cancel_pull(&self, conn: ConnectionId, subscription: &str) -> bool {
        let mut st = self.state.lock();
        let st = &mut *st;
        let Some(sub) = st
            .connections
            .get(&conn)
            .and_then(|c| c.subs.get(subscription))
            .cloned()
        else {
            return false;
        };
        st.containers
            .get_mut(&sub.container)
            .is_some_and(|q| q.cancel_pull(sub.consumer))
    }

    /// Settles auto-acknowledged deliveries once their connection has written them.
    pub fn delivered(&self, written: &[(crate::outbox::ConsumerId, MessageId)]) {
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
                    st.tally.dequeued(&entry.msg.destination);
                    ops.extend(dequeue_ops(key, std::slice::from_ref(&entry)));
                    settled = true;
                }
            }
            if settled && !touched.contains(key) {
                touched.push(key.clone());
            }
        }
        // Written to the client's socket is consumed, for auto-acknowledge; a
        // lost dequeue record costs a redelivery after a crash, never a message.
        self.append_quietly(st, ops);
        for key in touched {
            self.dispatch(st, &key);
        }
    }

    /// Opens transaction `tx` on the connection.
    pub fn begin(&self, conn: ConnectionId, tx: &str) -> Result<(), BrokerError> {
        let mut st = self.state.lock();
        let c = st.connections.open_mut(conn)?;
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
    /// one store record. Returns that record's sequence. If the store refuses
    /// the record the transaction stays open and nothing changes.
    pub fn commit(&self, conn: ConnectionId, tx: &str) -> Result<Seq, BrokerError> {
        let mut st = self.state.lock();
        let st = &mut *st;
        let t = st
            .connections
            .open(conn)?
            .txs
            .get(tx)
            .ok_or_else(|| BrokerError::UnknownTransaction(tx.to_owned()))?;
        let (acks, sends) = (dequeues(stored_acks(st, &t.acks)), sends_of(t));
        let from = Publisher::of(st, conn)?;
        let mut plan = self.plan_publish(st, &from, sends, acks, None)?;
        let seq = self.write_plan(st, &mut plan)?;
        let t = st
            .connections
            .get_mut(&conn)
            .and_then(|c| c.txs.remove(tx))
            .expect("checked above");
        self.apply_commit(st, t, plan, seq);
        Ok(seq)
    }

    /// Prepares an XA transaction (its first phase): what its commit will do
    /// is written to the store, and from then on it belongs to no connection
    /// and survives a restart until [`Broker::commit_prepared`] or
    /// [`Broker::rollback_prepared`]. Returns the record's sequence, or `None`
    /// for a transaction that did nothing (XA's read-only vote: it is over).
    pub fn prepare(&self, conn: ConnectionId, tx: &str) -> Result<Option<Seq>, BrokerError> {
        let mut st = self.state.lock();
        let st = &mut *st;
        let t = st
            .connections
            .open(conn)?
            .txs
            .get(tx)
            .ok_or_else(|| BrokerError::UnknownTransaction(tx.to_owned()))?;
        if t.ops() == 0 {
            st.connections.open_mut(conn)?.txs.remove(tx);
            return Ok(None);
        }
        if st.prepared.contains_key(tx) {
            return Err(BrokerError::DuplicateTransaction(tx.to_owned()));
        }
        if st.prepared.len() >= self.config.max_prepared_transactions {
            return Err(BrokerError::Limit("prepared transactions"));
        }
        let now = now_ms();
        let from = Publisher::of(st, conn)?;
        let record = PreparedTransaction {
            xid: Arc::from(tx),
            client_id: from.client_id.clone(),
            owner: from.owner.clone(),
            sends: t
                .sends
                .iter()
                .filter(|(m, _)| m.persistent)
                .map(|(m, _)| PreparedSend {
                    producer: m.producer.clone(),
                    message: MessageData::accept(0, m.clone(), now),
                })
                .collect(),
            acks: stored_acks(st, &t.acks),
        };
        let seq = self.write(st, vec![StoreOp::Prepare(record)], true)?;
        let mut t = st
            .connections
            .get_mut(&conn)
            .and_then(|c| c.txs.remove(tx))
            .expect("checked above");
        t.prepared_by = Some(from);
        st.prepared.insert(Arc::from(tx), t);
        Ok(Some(seq))
    }

    /// Commits a prepared XA transaction (its second phase), from whichever
    /// connection the transaction manager uses: as [`Broker::commit`], with
    /// the transaction's end in the same record. Its messages are published
    /// as the preparing connection's (its producer ids, its no-local
    /// subscriptions), not as the committing one's.
    pub fn commit_prepared(&self, conn: ConnectionId, xid: &str) -> Result<Seq, BrokerError> {
        let mut st = self.state.lock();
        let st = &mut *st;
        st.connections.open(conn)?;
        let t = st
            .prepared
            .get(xid)
            .ok_or_else(|| BrokerError::UnknownTransaction(xid.to_owned()))?;
        let (mut ops, sends) = (dequeues(stored_acks(st, &t.acks)), sends_of(t));
        ops.push(StoreOp::Resolve {
            xid: Arc::from(xid),
        });
        let from = t.prepared_by.clone().unwrap_or_default();
        let mut plan = self.plan_publish(st, &from, sends, ops, None)?;
        let seq = self.write_plan(st, &mut plan)?;
        let t = st.prepared.remove(xid).expect("checked above");
        self.apply_commit(st, t, plan, seq);
        Ok(seq)
    }

    /// Rolls back a prepared XA transaction: its end is written, then its
    /// sends are discarded and what it acknowledged is redelivered. Returns
    /// the record's sequence.
    pub fn rollback_prepared(&self, xid: &str) -> Result<Seq, BrokerError> {
        self.rollback_prepared_with(xid, RolledBackAcks::Redeliver)
    }

    /// [`Broker::rollback_prepared`], with what becomes of what the
    /// transaction acknowledged (see [`Broker::abort_with`]).
    pub fn rollback_prepared_with(
        &self,
        xid: &str,
        acked: RolledBackAcks,
    ) -> Result<Seq, BrokerError> {
        let mut st = self.state.lock();
        let st = &mut *st;
        if !st.prepared.contains_key(xid) {
            return Err(BrokerError::UnknownTransaction(xid.to_owned()));
        }
        let resolve = StoreOp::Resolve {
            xid: Arc::from(xid),
        };
        let seq = self.write(st, vec![resolve], true)?;
        let t = st.prepared.remove(xid).expect("checked above");
        self.rollback_acks(st, t.acks, acked);
        Ok(seq)
    }

    /// The XA transactions prepared and not yet resolved (XA `recover`).
    pub fn prepared_transactions(&self) -> Vec<Arc<str>> {
        let mut xids: Vec<Arc<str>> = self.state.lock().prepared.keys().cloned().collect();
        xids.sort();
        xids
    }

    /// Settles a committed transaction's acks and places its sends, now that
    /// the store took record `seq`.
    fn apply_commit(&self, st: &mut State, mut t: Transaction, plan: Publish, seq: Seq) {
        let mut touched: Vec<ContainerKey> = Vec::new();
        for (key, id) in std::mem::take(&mut t.acks) {
            if let Some(entry) = st
                .containers
                .get_mut(&key)
                .and_then(|q| q.settle_tx_ack(id))
            {
                st.tally.dequeued(&entry.msg.destination);
                drop(entry);
                if !touched.contains(&key) {
                    touched.push(key);
                }
            }
        }
        // The published messages carry their own charges from here on.
        drop(t);
        self.apply_publish(st, plan, seq, false);
        for key in touched {
            self.dispatch(st, &key);
        }
    }

    /// Rolls back: sends are discarded, acknowledged messages are redelivered.
    pub fn abort(&self, conn: ConnectionId, tx: &str) -> Result<(), BrokerError> {
        self.abort_with(conn, tx, RolledBackAcks::Redeliver)
    }

    /// Rolls back: sends are discarded, and acknowledged messages are
    /// redelivered or, with [`RolledBackAcks::BackToConsumers`], held again
    /// by the consumers that acknowledged them.
    pub fn abort_with(
        &self,
        conn: ConnectionId,
        tx: &str,
        acked: RolledBackAcks,
    ) -> Result<(), BrokerError> {
        let mut st = self.state.lock();
        let c = st.connections.open_mut(conn)?;
        let t = c
            .txs
            .remove(tx)
            .ok_or_else(|| BrokerError::UnknownTransaction(tx.to_owned()))?;
        self.rollback_acks(&mut st, t.acks, acked);
        Ok(())
    }

    /// The periodic sweep: removes expired messages that no consumer has asked
    /// for yet, and releases idle queues (no messages, no consumers) and the
    /// counters of destinations nobody holds, so that a client sending to ever
    /// new names does not grow the broker.
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
        let declared = &st.declared;
        st.containers.retain(|key, q| match key {
            ContainerKey::Queue(d) => !q.is_idle() || declared.contains(d),
            _ => true,
        });
        self.usages
            .lock()
            .retain(|_, u| u.used() > 0 || Arc::strong_count(u) > 1);
        self.sample_metrics(st, now);
    }

    /// Hands monitoring what happened since the last sample and the gauges
    /// of now (see [`crate::metrics`]); the sweep calls it every second.
    fn sample_metrics(&self, st: &mut State, now: u64) {
        let gauges_of = |q: &crate::queue::MessageQueue| Gauges {
            depth: q.pending_len() as u64 + q.paged_len(),
            paged: q.paged_len(),
            inflight: q.inflight_len() as u64,
            consumers: q.consumer_count() as u64,
            producers: 0,
        };
        let mut gauges: HashMap<Destination, Gauges> = HashMap::default();
        for (key, q) in &st.containers {
            if let ContainerKey::Queue(d) = key {
                gauges.insert(d.clone(), gauges_of(q));
            }
        }
        for (topic, links) in st.topics.subscribed() {
            let g = gauges.entry(topic.clone()).or_default();
            for q in links.iter().filter_map(|l| st.containers.get(&l.key)) {
                let sub = gauges_of(q);
                g.depth += sub.depth;
                g.paged += sub.paged;
                g.inflight += sub.inflight;
            }
            g.consumers += links.len() as u64;
        }
        for (d, n) in &st.producer_counts {
            gauges.entry(d.clone()).or_default().producers = *n as u64;
        }
        let connections = count_by_protocol(st);
        self.metrics
            .publish(std::mem::take(&mut st.tally), gauges, connections, now);
    }

    /// What monitoring reads, without the engine's lock (see
    /// [`crate::metrics`]): at most a second old.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Consumers of queue `queue` that are clients', not network links':
    /// with none, a link may send the queue's messages back to where a
    /// consumer went (docs/network-plan.md, "Nothing stranded").
    pub fn local_consumers(&self, queue: &Destination) -> usize {
        self.state
            .lock()
            .containers
            .get(&ContainerKey::Queue(queue.clone()))
            .map_or(0, crate::queue::MessageQueue::local_consumer_count)
    }

    /// The messages waiting in a queue, in the order they would be dispatched,
    /// without consuming them (JMS queue browsing), at most `max`. Each comes
    /// with its redelivery count and the store record it must not be shown before.
    /// Of a queue larger than memory, what is in memory: a browser sees more
    /// as consumers take messages and more are read back, as with ActiveMQ's
    /// browse page.
    pub fn browse(&self, queue: &Destination, max: usize) -> Vec<(Arc<Message>, u32, Seq)> {
        let mut st = self.state.lock();
        let key = ContainerKey::Queue(queue.clone());
        self.want_pages(&mut st, &key, true);
        st.containers
            .get(&key)
            .map(|q| {
                q.browse()
                    .take(max)
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
                pending: q.pending_len() + q.paged_len() as usize,
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

    /// Destinations whose memory counters exist (for tests of the idle sweep).
    pub fn tracked_destinations(&self) -> usize {
        self.usages.lock().len()
    }

    /// Client-id scoped producers whose windows are tracked.
    pub fn tracked_producers(&self) -> usize {
        self.state.lock().producers.len()
    }

    /// Whether `seq` of a client-id scoped producer is known stored (for tests).
    pub fn producer_has(&self, key: &ProducerKey, seq: u64) -> bool {
        self.state
            .lock()
            .producers
            .get(key)
            .is_some_and(|w| w.contains(seq))
    }

    // ---- internals; all run under the state lock ----

    /// Appends a record and remembers its sequence. A record the store could
    /// not take is refused here, before the store sees it.
    pub(crate) fn write(
        &self,
        st: &mut State,
        ops: Vec<StoreOp>,
        sync: bool,
    ) -> Result<Seq, StoreError> {
        let len = store_codec::encoded_len(&ops);
        let max = self.store.max_record_bytes();
        if len > max {
            return Err(StoreError::TooLarge { len, max });
        }
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
        let c = st.connections.open(conn)?;
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

    /// Gives back what a rolled-back transaction acknowledged: to the
    /// consumers that still hold a place for it, or to its queue for redelivery.
    fn rollback_acks(
        &self,
        st: &mut State,
        acks: Vec<(ContainerKey, MessageId)>,
        acked: RolledBackAcks,
    ) {
        let mut by_key: Vec<(ContainerKey, Vec<Entry>)> = Vec::new();
        for (key, id) in acks {
            let Some(q) = st.containers.get_mut(&key) else {
                continue;
            };
            let entry = match acked {
                RolledBackAcks::Redeliver => q.settle_tx_ack(id),
                RolledBackAcks::BackToConsumers => q.return_tx_ack(id),
            };
            let Some(entry) = entry else {
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

    /// Lets a container hand out what it can.
    pub(crate) fn dispatch(&self, st: &mut State, key: &ContainerKey) {
        let Some(q) = st.containers.get_mut(key) else {
            return;
        };
        let mut expired = Vec::new();
        q.dispatch(now_ms(), &mut expired);
        let paged = q.paged_len() > 0;
        if !expired.is_empty() {
            self.dispose_expired(st, key, expired);
        }
        if paged {
            self.want_pages(st, key, false);
        }
    }

    /// Appends ops whose loss in a crash costs only a redelivery; a failure is
    /// logged, since the store then fails every later confirmation anyway.
    pub(crate) fn append_quietly(&self, st: &mut State, ops: Vec<StoreOp>) {
        if ops.is_empty() {
            return;
        }
        if let Err(e) = self.write(st, ops, false) {
            tracing::error!("store append failed: {e}");
        }
    }
}

/// Bytes a single message's record may need beyond the message itself: the
/// enqueue op's framing and key, and a producer mark.
const RECORD_SLACK_BYTES: usize = 2 * 1024 + crate::destination::MAX_DESTINATION_NAME_BYTES;

/// The most a record of one message can take: the message, the record's
/// header, and [`RECORD_SLACK_BYTES`].
pub(crate) fn single_record_len(
    destination: &Destination,
    fields: &crate::message::MessageFields,
    body_len: usize,
) -> usize {
    store_codec::RECORD_HEADER_LEN
        + store_codec::message_len(destination, fields, body_len)
        + RECORD_SLACK_BYTES
}

/// The store ops saying a container is done with these entries.
pub(crate) fn dequeue_ops(key: &ContainerKey, entries: &[Entry]) -> Vec<StoreOp> {
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

/// Which of a transaction's acks the store knows of: those of stored messages.
fn stored_acks(st: &State, acks: &[(ContainerKey, MessageId)]) -> Vec<(StoreKey, MessageId)> {
    acks.iter()
        .filter_map(|(key, id)| {
            let skey = key.store_key()?;
            st.containers
                .get(key)
                .and_then(|q| q.tx_acked(*id))
                .is_some_and(|e| e.msg.persistent)
                .then_some((skey, *id))
        })
        .collect()
}

/// The dequeues a commit of these acks writes.
fn dequeues(acks: Vec<(StoreKey, MessageId)>) -> Vec<StoreOp> {
    acks.into_iter()
        .map(|(key, id)| StoreOp::Dequeue { key, id })
        .collect()
}

/// A transaction's sends, to plan their publication.
fn sends_of(t: &Transaction) -> Vec<NewMessage> {
    t.sends.iter().map(|(m, _)| m.clone()).collect()
}

/// The container whose persistent messages the store keeps under `key`.
fn container_key(key: &StoreKey) -> ContainerKey {
    match key {
        StoreKey::Queue(name) => ContainerKey::Queue(Destination::queue(name)),
        StoreKey::Durable { client_id, name } => ContainerKey::Durable {
            client_id: Arc::clone(client_id),
            name: Arc::clone(name),
        },
    }
}
