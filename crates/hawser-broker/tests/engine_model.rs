//! A model-based property test of the engine: random sequences of sends
//! (plain, transactional, resent, with and without producer ids, from clients
//! with and without client id), acknowledgements of every mode, nacks,
//! aborts, disconnects, store refusals, fsyncs and crashes, checked against a
//! small reference model of what the broker promised.
//!
//! The promises checked:
//! - nothing confirmed is lost: a persistent send whose receipt the broker
//!   would release (its record durable, or its message acknowledged by a
//!   consumer) and every message of a commit whose record is durable are, at
//!   the end, still in the broker or were acknowledged by a consumer;
//! - with producer ids, a message whose acknowledgement is durable is never
//!   delivered again (not redelivered, and no second copy from a resend);
//! - with producer ids on a client-id connection, the broker never holds two
//!   copies of one (producer, sequence).
//!
//! The store here keeps records in memory; `Flush` makes everything appended
//! durable (an fsync), `Crash` drops what is not and starts a new engine from
//! the rest, as recovery would. Failures print the seed and the operations.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use hawser_broker::ConnectInfo;

use bytes::Bytes;
use hawser_broker::{
    AckMode, Broker, BrokerConfig, ConnectionId, Consumed, Delivery, Destination, Durability,
    DurabilityWatch, MessageData, NewMessage, Outbox, ProducerRef, Recovered, Replay, Seq, Store,
    StoreError, StoreOp, SubscribeSpec,
};
use parking_lot::Mutex;
use proptest::prelude::*;

// ---------------------------------------------------------------------------
// The store: records in memory, durable up to a watermark, refusing on demand
// ---------------------------------------------------------------------------

#[derive(Default)]
struct ModelStore {
    /// Every record appended, with its sequence.
    records: Mutex<Vec<(Seq, Vec<StoreOp<MessageData>>)>>,
    /// Records up to here survive a crash.
    durable: Mutex<Seq>,
    /// Appends fail while set (a failed disk; cleared by a restart).
    failed: AtomicBool,
    /// The last sequence handed out.
    last: Mutex<Seq>,
    durability: Mutex<Option<tokio::sync::watch::Sender<Durability>>>,
}

impl ModelStore {
    fn new() -> Arc<ModelStore> {
        let s = ModelStore::default();
        *s.durability.lock() = Some(tokio::sync::watch::channel(Durability::default()).0);
        Arc::new(s)
    }

    fn flush(&self) -> Seq {
        let last = *self.last.lock();
        *self.durable.lock() = last;
        last
    }

    fn durable(&self) -> Seq {
        *self.durable.lock()
    }

    /// Drops what is not durable, as a crash does.
    fn crash(&self) {
        let durable = self.durable();
        self.records.lock().retain(|(s, _)| *s <= durable);
        self.failed.store(false, Ordering::SeqCst);
    }

    /// What the journal's replay recovers from the records.
    fn recover(&self) -> Recovered {
        let mut replay = Replay::default();
        for (_, ops) in self.records.lock().iter() {
            replay.apply(ops.clone());
        }
        replay.into_recovered()
    }
}

impl Store for ModelStore {
    fn append(&self, ops: Vec<StoreOp>, _sync: bool) -> Result<Seq, StoreError> {
        if self.failed.load(Ordering::SeqCst) {
            return Err(StoreError::Failed("the model's disk failed".into()));
        }
        let mut last = self.last.lock();
        *last += 1;
        self.records
            .lock()
            .push((*last, ops.iter().map(StoreOp::to_data).collect()));
        Ok(*last)
    }
    fn durability(&self) -> DurabilityWatch {
        self.durability.lock().as_ref().unwrap().subscribe()
    }
    fn disk_bytes(&self) -> u64 {
        0
    }
    fn close(&self) {}
}

// ---------------------------------------------------------------------------
// Connections as the model sees them
// ---------------------------------------------------------------------------

#[derive(Default)]
struct Inbox(Mutex<Vec<Delivery>>);

impl Outbox for Inbox {
    fn deliver(&self, d: Delivery) {
        self.0.lock().push(d);
    }
}

/// A plain send waiting for its receipt.
struct Pending {
    seq: u64,
    body: String,
    record: Seq,
    consumed: Option<Arc<Consumed>>,
}

struct Producer {
    /// Client id, or none (then resends on a new connection are new messages).
    client_id: Option<&'static str>,
    conn: Option<ConnectionId>,
    next_seq: u64,
    /// Sends of an open transaction: (seq, body).
    tx: Option<Vec<(u64, String)>>,
    /// Plain persistent sends not yet confirmed, resent on reconnect.
    unconfirmed: Vec<Pending>,
    /// Plain sends already confirmed (candidates for a stray resend).
    confirmed: Vec<(u64, String)>,
    /// Commits waiting for their record: (record, bodies).
    commits: Vec<(Seq, Vec<String>)>,
}

struct Consumer {
    conn: Option<ConnectionId>,
    inbox: Arc<Inbox>,
    mode: AckMode,
    /// Deliveries not yet visible (their record not durable, without
    /// concurrent dispatch), in order.
    hidden: Vec<Delivery>,
    /// Visible deliveries not yet acknowledged, in delivery order.
    held: Vec<Delivery>,
    /// Bodies acknowledged in the consumer's open transaction.
    tx_acks: Option<Vec<String>>,
}

#[derive(Clone, Copy, Debug)]
enum Op {
    Send {
        p: usize,
        persistent: bool,
        receipt: bool,
    },
    TxSend {
        p: usize,
    },
    Commit {
        p: usize,
    },
    Abort {
        p: usize,
    },
    Resend {
        p: usize,
        k: usize,
    },
    DisconnectProducer {
        p: usize,
    },
    Subscribe {
        c: usize,
        mode: u8,
    },
    Ack {
        c: usize,
        k: usize,
        sync: bool,
    },
    Nack {
        c: usize,
        k: usize,
    },
    TxAck {
        c: usize,
        k: usize,
    },
    ConsumerCommit {
        c: usize,
    },
    ConsumerAbort {
        c: usize,
    },
    DisconnectConsumer {
        c: usize,
    },
    Flush,
    Refuse,
    Crash,
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let p = 0usize..3;
    let c = 0usize..2;
    prop_oneof![
        8 => (p.clone(), any::<bool>(), prop::bool::weighted(0.8))
            .prop_map(|(p, persistent, receipt)| Op::Send { p, persistent: persistent || receipt, receipt }),
        3 => p.clone().prop_map(|p| Op::TxSend { p }),
        2 => p.clone().prop_map(|p| Op::Commit { p }),
        1 => p.clone().prop_map(|p| Op::Abort { p }),
        2 => (p.clone(), any::<usize>()).prop_map(|(p, k)| Op::Resend { p, k }),
        1 => p.prop_map(|p| Op::DisconnectProducer { p }),
        2 => (c.clone(), 0u8..3).prop_map(|(c, mode)| Op::Subscribe { c, mode }),
        6 => (c.clone(), any::<usize>(), any::<bool>()).prop_map(|(c, k, sync)| Op::Ack { c, k, sync }),
        2 => (c.clone(), any::<usize>()).prop_map(|(c, k)| Op::Nack { c, k }),
        2 => (c.clone(), any::<usize>()).prop_map(|(c, k)| Op::TxAck { c, k }),
        1 => c.clone().prop_map(|c| Op::ConsumerCommit { c }),
        1 => c.clone().prop_map(|c| Op::ConsumerAbort { c }),
        1 => c.prop_map(|c| Op::DisconnectConsumer { c }),
        4 => Just(Op::Flush),
        1 => Just(Op::Refuse),
        1 => Just(Op::Crash),
    ]
}

struct World {
    config: BrokerConfig,
    store: Arc<ModelStore>,
    broker: Broker,
    queue: Destination,
    producers: Vec<Producer>,
    consumers: Vec<Consumer>,
    /// Bodies the broker promised to keep (receipt released or commit durable).
    confirmed: BTreeSet<String>,
    /// Bodies a consumer acknowledged (the ack was accepted).
    acked: BTreeSet<String>,
    /// Acks waiting for their record: (record, bodies).
    acks: Vec<(Seq, Vec<String>)>,
    /// Bodies whose acknowledgement is durable: never to be delivered again.
    acked_durably: BTreeSet<String>,
    /// Bodies from client-id producers (duplicates of these are bugs).
    scoped: BTreeSet<String>,
}

fn body(p: usize, seq: u64) -> String {
    format!("p{p}-{seq}")
}

impl World {
    fn new(config: BrokerConfig) -> World {
        let store = ModelStore::new();
        let broker = Broker::new(config.clone(), store.clone(), Recovered::default());
        World {
            config,
            store,
            broker,
            queue: Destination::queue("q"),
            producers: [Some("c0"), None, Some("c2")]
                .into_iter()
                .map(|client_id| Producer {
                    client_id,
                    conn: None,
                    next_seq: 1,
                    tx: None,
                    unconfirmed: Vec::new(),
                    confirmed: Vec::new(),
                    commits: Vec::new(),
                })
                .collect(),
            consumers: (0..2)
                .map(|_| Consumer {
                    conn: None,
                    inbox: Arc::new(Inbox::default()),
                    mode: AckMode::ClientIndividual,
                    hidden: Vec::new(),
                    held: Vec::new(),
                    tx_acks: None,
                })
                .collect(),
            confirmed: BTreeSet::new(),
            acked: BTreeSet::new(),
            acks: Vec::new(),
            acked_durably: BTreeSet::new(),
            scoped: BTreeSet::new(),
        }
    }

    fn message(&self, p: usize, seq: u64, persistent: bool) -> NewMessage {
        NewMessage {
            persistent,
            producer: Some(ProducerRef {
                id: Arc::from("prod"),
                seq,
            }),
            ..NewMessage::new(self.queue.clone(), Bytes::from(body(p, seq)))
        }
    }

    /// The producer's connection, connecting (and resending what it was not
    /// told is safe, as a failover client does) if needed.
    fn producer_conn(&mut self, p: usize) -> Option<ConnectionId> {
        if let Some(c) = self.producers[p].conn {
            return Some(c);
        }
        let client_id = self.producers[p].client_id;
        let conn = self
            .broker
            .connect(
                ConnectInfo::in_process(client_id),
                Arc::new(Inbox::default()),
            )
            .ok()?;
        self.producers[p].conn = Some(conn);
        let resend: Vec<(u64, String)> = self.producers[p]
            .unconfirmed
            .drain(..)
            .map(|u| (u.seq, u.body))
            .collect();
        for (seq, _) in resend {
            let m = self.message(p, seq, true);
            match self.broker.send_confirmable(conn, m, None) {
                Ok((record, consumed)) => self.producers[p].unconfirmed.push(Pending {
                    seq,
                    body: body(p, seq),
                    record,
                    consumed,
                }),
                Err(_) => {
                    // Refused: put it back for the next reconnect.
                    self.producers[p].unconfirmed.push(Pending {
                        seq,
                        body: body(p, seq),
                        record: Seq::MAX,
                        consumed: None,
                    });
                    self.drop_producer(p);
                    return None;
                }
            }
        }
        Some(conn)
    }

    fn drop_producer(&mut self, p: usize) {
        if let Some(c) = self.producers[p].conn.take() {
            self.broker.disconnect(c);
        }
        self.producers[p].tx = None;
        // Commits not yet durable were not confirmed; the client hears of a failure.
        self.producers[p].commits.clear();
    }

    /// What consumer `c`'s acknowledgement of its `k`th held delivery covers,
    /// taken off its held list: everything up to it when acks are cumulative.
    fn take_covered(&mut self, c: usize, k: usize) -> Vec<Delivery> {
        let consumer = &mut self.consumers[c];
        if consumer.mode == AckMode::Client {
            consumer.held.drain(..=k).collect()
        } else {
            vec![consumer.held.remove(k)]
        }
    }

    fn drop_consumer(&mut self, c: usize) {
        if let Some(conn) = self.consumers[c].conn.take() {
            self.broker.disconnect(conn);
        }
        self.consumers[c].held.clear();
        self.consumers[c].hidden.clear();
        self.consumers[c].tx_acks = None;
        self.consumers[c].inbox.0.lock().clear();
    }

    fn apply(&mut self, op: Op) {
        match op {
            Op::Send {
                p,
                persistent,
                receipt,
            } => {
                let Some(conn) = self.producer_conn(p) else {
                    return;
                };
                let seq = self.producers[p].next_seq;
                self.producers[p].next_seq += 1;
                let m = self.message(p, seq, persistent);
                match self.broker.send_confirmable(conn, m, None) {
                    Ok((record, consumed)) => {
                        if self.producers[p].client_id.is_some() {
                            self.scoped.insert(body(p, seq));
                        }
                        if persistent && receipt {
                            self.producers[p].unconfirmed.push(Pending {
                                seq,
                                body: body(p, seq),
                                record,
                                consumed,
                            });
                        }
                    }
                    Err(_) => {
                        if persistent && receipt {
                            // The client resends what was refused, after reconnecting.
                            self.producers[p].unconfirmed.push(Pending {
                                seq,
                                body: body(p, seq),
                                record: Seq::MAX,
                                consumed: None,
                            });
                        }
                        self.drop_producer(p);
                    }
                }
            }
            Op::TxSend { p } => {
                let Some(conn) = self.producer_conn(p) else {
                    return;
                };
                if self.producers[p].tx.is_none() {
                    if self.broker.begin(conn, "tx").is_err() {
                        return self.drop_producer(p);
                    }
                    self.producers[p].tx = Some(Vec::new());
                }
                let seq = self.producers[p].next_seq;
                self.producers[p].next_seq += 1;
                let m = self.message(p, seq, true);
                match self.broker.send(conn, m, Some("tx")) {
                    Ok(_) => self.producers[p]
                        .tx
                        .as_mut()
                        .expect("open")
                        .push((seq, body(p, seq))),
                    Err(_) => self.drop_producer(p),
                }
            }
            Op::Commit { p } => {
                let (Some(conn), Some(_)) = (self.producers[p].conn, &self.producers[p].tx) else {
                    return;
                };
                match self.broker.commit(conn, "tx") {
                    Ok(record) => {
                        let sent = self.producers[p].tx.take().expect("open");
                        let bodies: Vec<String> = sent.into_iter().map(|(_, b)| b).collect();
                        if self.producers[p].client_id.is_some() {
                            self.scoped.extend(bodies.iter().cloned());
                        }
                        self.producers[p].commits.push((record, bodies));
                    }
                    Err(_) => self.drop_producer(p),
                }
            }
            Op::Abort { p } => {
                let (Some(conn), Some(_)) = (self.producers[p].conn, &self.producers[p].tx) else {
                    return;
                };
                self.producers[p].tx = None;
                if self.broker.abort(conn, "tx").is_err() {
                    self.drop_producer(p);
                }
            }
            Op::Resend { p, k } => {
                // A stray resend of a confirmed message (a lost receipt): it
                // must be confirmed again without a second copy.
                if self.producers[p].confirmed.is_empty() {
                    return;
                }
                let (seq, _) =
                    self.producers[p].confirmed[k % self.producers[p].confirmed.len()].clone();
                let Some(conn) = self.producer_conn(p) else {
                    return;
                };
                let m = self.message(p, seq, true);
                if self.broker.send(conn, m, None).is_err() {
                    self.drop_producer(p);
                }
            }
            Op::DisconnectProducer { p } => self.drop_producer(p),
            Op::Subscribe { c, mode } => {
                if self.consumers[c].conn.is_some() {
                    return;
                }
                let inbox = Arc::clone(&self.consumers[c].inbox);
                let Ok(conn) = self.broker.connect(ConnectInfo::in_process(None), inbox) else {
                    return;
                };
                let mode =
                    [AckMode::ClientIndividual, AckMode::Client, AckMode::Auto][mode as usize];
                let spec = SubscribeSpec {
                    id: Arc::from("s"),
                    destination: self.queue.clone(),
                    ack_mode: mode,
                    prefetch: 4,
                    selector: None,
                    exclusive: false,
                    durable_name: None,
                    no_local: false,
                };
                self.consumers[c].conn = Some(conn);
                self.consumers[c].mode = mode;
                if self.broker.subscribe(conn, spec).is_err() {
                    self.drop_consumer(c);
                }
            }
            Op::Ack { c, k, sync } => {
                let Some(conn) = self.consumers[c].conn else {
                    return;
                };
                if self.consumers[c].held.is_empty() || self.consumers[c].mode == AckMode::Auto {
                    return;
                }
                let k = k % self.consumers[c].held.len();
                let id = self.consumers[c].held[k].message.id;
                match self.broker.ack(conn, Some("s"), id, None, sync) {
                    Ok(record) => {
                        let covered = self.take_covered(c, k);
                        let bodies: Vec<String> = covered.iter().map(text).collect();
                        self.acked.extend(bodies.iter().cloned());
                        if record != 0 {
                            self.acks.push((record, bodies));
                        }
                    }
                    Err(_) => self.drop_consumer(c),
                }
            }
            Op::Nack { c, k } => {
                let Some(conn) = self.consumers[c].conn else {
                    return;
                };
                if self.consumers[c].held.is_empty() || self.consumers[c].mode == AckMode::Auto {
                    return;
                }
                let k = k % self.consumers[c].held.len();
                let id = self.consumers[c].held[k].message.id;
                match self.broker.nack(conn, Some("s"), id) {
                    Ok(()) => {
                        self.take_covered(c, k);
                    }
                    Err(_) => self.drop_consumer(c),
                }
            }
            Op::TxAck { c, k } => {
                let Some(conn) = self.consumers[c].conn else {
                    return;
                };
                if self.consumers[c].held.is_empty() || self.consumers[c].mode == AckMode::Auto {
                    return;
                }
                if self.consumers[c].tx_acks.is_none() {
                    if self.broker.begin(conn, "ctx").is_err() {
                        return self.drop_consumer(c);
                    }
                    self.consumers[c].tx_acks = Some(Vec::new());
                }
                let k = k % self.consumers[c].held.len();
                let id = self.consumers[c].held[k].message.id;
                match self.broker.ack(conn, Some("s"), id, Some("ctx"), false) {
                    Ok(_) => {
                        let covered = self.take_covered(c, k);
                        let acks = self.consumers[c].tx_acks.as_mut().expect("open");
                        acks.extend(covered.iter().map(text));
                    }
                    Err(_) => self.drop_consumer(c),
                }
            }
            Op::ConsumerCommit { c } => {
                let (Some(conn), Some(_)) = (self.consumers[c].conn, &self.consumers[c].tx_acks)
                else {
                    return;
                };
                match self.broker.commit(conn, "ctx") {
                    Ok(record) => {
                        let bodies = self.consumers[c].tx_acks.take().expect("open");
                        self.acked.extend(bodies.iter().cloned());
                        if record != 0 {
                            self.acks.push((record, bodies));
                        }
                    }
                    Err(_) => self.drop_consumer(c),
                }
            }
            Op::ConsumerAbort { c } => {
                let (Some(conn), Some(_)) = (self.consumers[c].conn, &self.consumers[c].tx_acks)
                else {
                    return;
                };
                self.consumers[c].tx_acks = None;
                if self.broker.abort(conn, "ctx").is_err() {
                    self.drop_consumer(c);
                }
            }
            Op::DisconnectConsumer { c } => self.drop_consumer(c),
            Op::Flush => {
                if !self.store.failed.load(Ordering::SeqCst) {
                    self.store.flush();
                }
            }
            Op::Refuse => self.store.failed.store(true, Ordering::SeqCst),
            Op::Crash => self.crash(),
        }
        self.settle();
    }

    /// Takes what the engine delivered and what became confirmed.
    fn settle(&mut self) {
        let durable = self.store.durable();
        let failed = self.store.failed.load(Ordering::SeqCst);
        for c in 0..self.consumers.len() {
            let new: Vec<Delivery> = std::mem::take(&mut *self.consumers[c].inbox.0.lock());
            self.consumers[c].hidden.extend(new);
            // A delivery is shown only once its record is durable (without
            // concurrent dispatch); the connection keeps them in order.
            let visible = self.consumers[c]
                .hidden
                .iter()
                .take_while(|d| d.seq <= durable)
                .count();
            let shown: Vec<Delivery> = self.consumers[c].hidden.drain(..visible).collect();
            for d in shown {
                let b = text(&d);
                assert!(
                    !self.acked_durably.contains(&b),
                    "{b} delivered again after its acknowledgement was durable"
                );
                if self.consumers[c].mode == AckMode::Auto {
                    self.broker.delivered(&[(d.consumer, d.message.id)]);
                    self.acked.insert(b);
                } else {
                    self.consumers[c].held.push(d);
                }
            }
        }
        for p in 0..self.producers.len() {
            let producer = &mut self.producers[p];
            let mut still = Vec::new();
            for u in producer.unconfirmed.drain(..) {
                let by_disk = u.record <= durable;
                let by_consumer = !failed && u.consumed.as_ref().is_some_and(|c| c.is_set());
                if by_disk || by_consumer {
                    self.confirmed.insert(u.body.clone());
                    producer.confirmed.push((u.seq, u.body));
                } else {
                    still.push(u);
                }
            }
            producer.unconfirmed = still;
            let (done, waiting): (Vec<_>, Vec<_>) =
                producer.commits.drain(..).partition(|(r, _)| *r <= durable);
            producer.commits = waiting;
            for (_, bodies) in done {
                self.confirmed.extend(bodies);
            }
        }
        let (done, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.acks)
            .into_iter()
            .partition(|(r, _)| *r <= durable);
        self.acks = waiting;
        for (_, bodies) in done {
            for b in bodies {
                if self.scoped.contains(&b) {
                    self.acked_durably.insert(b);
                }
            }
        }
    }

    /// Loses everything not durable and starts a new engine from the rest.
    fn crash(&mut self) {
        self.store.crash();
        let store = Arc::clone(&self.store);
        self.broker = Broker::new(self.config.clone(), store.clone(), store.recover());
        for p in &mut self.producers {
            p.conn = None;
            p.tx = None;
            p.commits.clear();
            // Not confirmed before the crash: only a resend can confirm them now.
            for u in &mut p.unconfirmed {
                u.record = Seq::MAX;
                u.consumed = None;
            }
        }
        for c in &mut self.consumers {
            c.conn = None;
            c.held.clear();
            c.hidden.clear();
            c.tx_acks = None;
            c.inbox.0.lock().clear();
        }
        self.acks.clear();
        self.check_single_copies();
    }

    /// No two stored copies of one client-id producer's message.
    fn check_single_copies(&self) {
        let mut copies: BTreeMap<String, usize> = BTreeMap::new();
        for (m, _, _) in self.broker.browse(&self.queue, usize::MAX) {
            *copies
                .entry(String::from_utf8_lossy(&m.body).into_owned())
                .or_default() += 1;
        }
        for (b, n) in copies {
            if self.scoped.contains(&b) {
                assert!(n <= 1, "{n} copies of {b} after a restart");
            }
        }
    }

    /// Heals the store, makes everything durable, reconnects the producers (so
    /// their resends go in), and drains the queue: every confirmed message must
    /// be there or have been acknowledged.
    fn finish(&mut self) {
        if self.store.failed.load(Ordering::SeqCst) {
            self.crash();
        }
        for p in 0..self.producers.len() {
            self.producer_conn(p);
        }
        self.store.flush();
        self.settle();
        for c in 0..self.consumers.len() {
            self.drop_consumer(c);
        }
        self.settle();
        let mut left: Vec<String> = Vec::new();
        for (m, _, _) in self.broker.browse(&self.queue, usize::MAX) {
            left.push(String::from_utf8_lossy(&m.body).into_owned());
        }
        // Dead letters are kept too, in the DLQ.
        let dlq = Destination::queue(&self.config.dead_letter_queue);
        let dead: Vec<String> = self
            .broker
            .browse(&dlq, usize::MAX)
            .iter()
            .map(|(m, _, _)| String::from_utf8_lossy(&m.body).into_owned())
            .collect();
        let present: BTreeSet<String> = left.iter().chain(&dead).cloned().collect();
        let lost: Vec<&String> = self
            .confirmed
            .iter()
            .filter(|b| !present.contains(*b) && !self.acked.contains(*b))
            .collect();
        assert!(lost.is_empty(), "confirmed and lost: {lost:?}");
        let mut copies: BTreeMap<&String, usize> = BTreeMap::new();
        for b in &left {
            *copies.entry(b).or_default() += 1;
        }
        for (b, n) in copies {
            if self.scoped.contains(b) {
                assert!(n <= 1, "{n} copies of {b}");
            }
            assert!(
                !self.acked_durably.contains(b),
                "{b} is back after its acknowledgement was durable"
            );
        }
    }
}

fn text(d: &Delivery) -> String {
    String::from_utf8_lossy(&d.message.body).into_owned()
}

fn config_strategy() -> impl Strategy<Value = BrokerConfig> {
    (any::<bool>(), any::<bool>(), 1u32..4).prop_map(
        |(concurrent, confirm_consumed, redeliveries)| BrokerConfig {
            concurrent_store_and_dispatch: concurrent,
            confirm_consumed,
            max_redeliveries: redeliveries,
            ..BrokerConfig::default()
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("HAWSER_MODEL_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(2000),
        max_shrink_iters: 2000,
        ..ProptestConfig::default()
    })]

    #[test]
    fn the_engine_keeps_what_it_confirmed(
        config in config_strategy(),
        ops in proptest::collection::vec(op_strategy(), 1..250),
    ) {
        let mut world = World::new(config);
        for op in &ops {
            world.apply(*op);
        }
        world.finish();
    }
}
