//! A model-based property test of the engine: random sequences of sends
//! (plain, transactional, resent, with and without producer ids, from clients
//! with and without client id, to queues and to composites of queues),
//! acknowledgements of every mode, nacks, aborts, XA transactions (prepared,
//! then committed from any connection or rolled back, across disconnects,
//! store refusals and restarts), disconnects, store refusals, fsyncs and
//! crashes, checked against a small reference model of what the broker
//! promised.
//!
//! The model counts copies: a message sent to the composite `q,q2` is two
//! copies, `q/<body>` and `q2/<body>`, each kept, delivered and acknowledged
//! on its own. The promises checked:
//! - nothing confirmed is lost: a persistent send whose receipt the broker
//!   would release (its record durable, or its message acknowledged by a
//!   consumer) and every message of a commit whose record is durable (a
//!   one-phase commit or an XA `commit_prepared`) are, at the end, still in
//!   the broker or were acknowledged by a consumer, each copy;
//! - with producer ids, a message whose acknowledgement is durable is never
//!   delivered again (not redelivered, and no second copy from a resend);
//! - with producer ids on a client-id connection, the broker never holds two
//!   copies of one (producer, sequence) in one queue;
//! - XA: a transaction's sends are delivered only once its commit was
//!   accepted, and those of one rolled back or lost never; what an open or
//!   prepared transaction acknowledged is delivered to nobody, and comes back
//!   at once when it rolls back; `prepared_transactions` lists exactly the
//!   prepared ones; after a crash every transaction whose prepare was durable
//!   (and whose end was not) is prepared again, holding what it acknowledged,
//!   and one whose prepare was not durable is either prepared or gone without
//!   a trace; a transaction that ended cannot be ended again.
//!
//! XA branches run on the consumers' connections (one with a client id, one
//! without), so that they both send and acknowledge; a transaction manager
//! commits what voted yes from any connection (a producer's, a consumer's or
//! its own) and may roll back before the vote; at the end it resolves what is
//! still prepared.
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
    AckMode, Broker, BrokerConfig, BrokerError, ConnectionId, Consumed, Delivery, Destination,
    Durability, DurabilityWatch, MessageData, NewMessage, Outbox, ProducerRef, Recovered, Replay,
    Seq, Store, StoreError, StoreOp, SubscribeSpec,
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
// Where sends go
// ---------------------------------------------------------------------------

/// The destinations a send may name, each with the queues that get a copy:
/// plain queues, a composite of both, and one that mixes in a topic nobody
/// subscribes to (its copy goes nowhere).
const TARGETS: [(&str, &[&str]); 4] = [
    ("q", &["q"]),
    ("q2", &["q2"]),
    ("q,q2", &["q", "q2"]),
    ("q2,topic://t,queue://q", &["q2", "q"]),
];

/// The queues the model's messages can be in (the DLQ aside).
const QUEUES: [&str; 2] = ["q", "q2"];

/// The copy of a message in one queue: what the model counts.
fn copy(queue: &str, body: &str) -> String {
    format!("{queue}/{body}")
}

/// Every copy a send of `body` to `TARGETS[dest]` makes.
fn copies(body: &str, dest: usize) -> Vec<String> {
    TARGETS[dest].1.iter().map(|q| copy(q, body)).collect()
}

fn dest_strategy() -> impl Strategy<Value = usize> {
    prop_oneof![5 => Just(0usize), 1 => Just(1), 2 => Just(2), 1 => Just(3)]
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
    /// Index into `TARGETS`.
    dest: usize,
    record: Seq,
    consumed: Option<Arc<Consumed>>,
}

struct Producer {
    /// Client id, or none (then resends on a new connection are new messages).
    client_id: Option<&'static str>,
    conn: Option<ConnectionId>,
    next_seq: u64,
    /// Sends of an open transaction: (seq, dest).
    tx: Option<Vec<(u64, usize)>>,
    /// Plain persistent sends not yet confirmed, resent on reconnect.
    unconfirmed: Vec<Pending>,
    /// Plain sends already confirmed (candidates for a stray resend): (seq, dest).
    confirmed: Vec<(u64, usize)>,
    /// Commits waiting for their record: (record, copies).
    commits: Vec<(Seq, Vec<String>)>,
}

/// Where an XA transaction is, as its transaction manager knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum XaState {
    /// Open on its consumer's connection.
    Active,
    /// `prepare` returned this record; not durable yet, so not voted.
    Preparing(Seq),
    /// Its prepare record is durable: the vote was yes.
    Prepared,
    /// `commit_prepared` returned this record; not durable yet.
    Committing(Seq),
    /// `rollback_prepared` returned this record; not durable yet.
    RollingBack(Seq),
    /// Ended: its end is durable, or its prepare was lost in a crash.
    Done,
}

/// An XA transaction: begun on a consumer's connection, prepared, then the
/// broker's until it ends.
struct Xa {
    xid: String,
    state: XaState,
    /// The record of its prepare, once prepared.
    prepare: Seq,
    /// The copies its sends make (all persistent).
    sends: Vec<String>,
    /// The copies it acknowledged, and whether each is persistent.
    acks: Vec<(String, bool)>,
}

impl Xa {
    /// Holds what it acknowledged from every consumer.
    fn holds(&self) -> bool {
        matches!(
            self.state,
            XaState::Active | XaState::Preparing(_) | XaState::Prepared
        )
    }
}

struct Consumer {
    /// Client id of its connections (its XA sends are scoped by it).
    client_id: Option<&'static str>,
    conn: Option<ConnectionId>,
    inbox: Arc<Inbox>,
    mode: AckMode,
    /// Deliveries not yet visible (their record not durable, without
    /// concurrent dispatch), in order.
    hidden: Vec<Delivery>,
    /// Visible deliveries not yet acknowledged, in delivery order.
    held: Vec<Delivery>,
    /// Copies acknowledged in the consumer's open transaction.
    tx_acks: Option<Vec<String>>,
    /// The XA transaction open on its connection.
    xa: Option<Xa>,
    /// The producer sequence of its next XA send.
    xa_seq: u64,
}

#[derive(Clone, Copy, Debug)]
enum Op {
    Send {
        p: usize,
        persistent: bool,
        receipt: bool,
        dest: usize,
    },
    TxSend {
        p: usize,
        dest: usize,
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
        q2: bool,
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
    /// A send in the XA transaction on consumer `c`'s connection (begun if none).
    XaSend {
        c: usize,
        dest: usize,
    },
    /// An acknowledgement in it.
    XaAck {
        c: usize,
        k: usize,
    },
    /// Prepares it; with none open and `empty`, begins one and prepares it
    /// at once (a read-only vote).
    XaPrepare {
        c: usize,
        empty: bool,
    },
    /// A transaction manager commits a prepared transaction from connection
    /// `via` (a producer's, a consumer's or its own); `stale`: one that ended.
    XaCommit {
        x: usize,
        via: usize,
        stale: bool,
    },
    /// A transaction manager rolls one back; `stale`: one that ended.
    XaRollback {
        x: usize,
        stale: bool,
    },
    Flush,
    Refuse,
    Crash,
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let p = 0usize..3;
    let c = 0usize..2;
    prop_oneof![
        8 => (p.clone(), any::<bool>(), prop::bool::weighted(0.8), dest_strategy())
            .prop_map(|(p, persistent, receipt, dest)| Op::Send { p, persistent: persistent || receipt, receipt, dest }),
        3 => (p.clone(), dest_strategy()).prop_map(|(p, dest)| Op::TxSend { p, dest }),
        2 => p.clone().prop_map(|p| Op::Commit { p }),
        1 => p.clone().prop_map(|p| Op::Abort { p }),
        2 => (p.clone(), any::<usize>()).prop_map(|(p, k)| Op::Resend { p, k }),
        1 => p.prop_map(|p| Op::DisconnectProducer { p }),
        2 => (c.clone(), 0u8..3, prop::bool::weighted(0.3)).prop_map(|(c, mode, q2)| Op::Subscribe { c, mode, q2 }),
        6 => (c.clone(), any::<usize>(), any::<bool>()).prop_map(|(c, k, sync)| Op::Ack { c, k, sync }),
        2 => (c.clone(), any::<usize>()).prop_map(|(c, k)| Op::Nack { c, k }),
        2 => (c.clone(), any::<usize>()).prop_map(|(c, k)| Op::TxAck { c, k }),
        1 => c.clone().prop_map(|c| Op::ConsumerCommit { c }),
        1 => c.clone().prop_map(|c| Op::ConsumerAbort { c }),
        1 => c.clone().prop_map(|c| Op::DisconnectConsumer { c }),
        3 => (c.clone(), dest_strategy()).prop_map(|(c, dest)| Op::XaSend { c, dest }),
        3 => (c.clone(), any::<usize>()).prop_map(|(c, k)| Op::XaAck { c, k }),
        2 => (c, prop::bool::weighted(0.2)).prop_map(|(c, empty)| Op::XaPrepare { c, empty }),
        2 => (any::<usize>(), 0usize..6, prop::bool::weighted(0.1))
            .prop_map(|(x, via, stale)| Op::XaCommit { x, via, stale }),
        1 => (any::<usize>(), prop::bool::weighted(0.1)).prop_map(|(x, stale)| Op::XaRollback { x, stale }),
        4 => Just(Op::Flush),
        1 => Just(Op::Refuse),
        1 => Just(Op::Crash),
    ]
}

struct World {
    config: BrokerConfig,
    store: Arc<ModelStore>,
    broker: Broker,
    producers: Vec<Producer>,
    consumers: Vec<Consumer>,
    /// The transaction manager's own connection, opened when first needed.
    tm: Option<ConnectionId>,
    /// Every XA transaction that was prepared, oldest first.
    xas: Vec<Xa>,
    /// Names the next XA transaction.
    next_xid: u64,
    /// Copies the broker promised to keep (receipt released or commit durable).
    confirmed: BTreeSet<String>,
    /// Copies a consumer acknowledged (the ack or its commit was accepted).
    acked: BTreeSet<String>,
    /// Acks waiting for their record: (record, copies).
    acks: Vec<(Seq, Vec<String>)>,
    /// Copies whose acknowledgement is durable: never to be delivered again.
    acked_durably: BTreeSet<String>,
    /// Copies of which the broker may hold one at most (from client-id
    /// producers, or sent in an XA transaction: never resent).
    scoped: BTreeSet<String>,
    /// Copies of every XA send.
    xa_sent: BTreeSet<String>,
    /// Copies of XA sends whose commit the broker accepted (and kept).
    xa_committed: BTreeSet<String>,
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
            consumers: [Some("k0"), None]
                .into_iter()
                .map(|client_id| Consumer {
                    client_id,
                    conn: None,
                    inbox: Arc::new(Inbox::default()),
                    mode: AckMode::ClientIndividual,
                    hidden: Vec::new(),
                    held: Vec::new(),
                    tx_acks: None,
                    xa: None,
                    xa_seq: 1,
                })
                .collect(),
            tm: None,
            xas: Vec::new(),
            next_xid: 1,
            confirmed: BTreeSet::new(),
            acked: BTreeSet::new(),
            acks: Vec::new(),
            acked_durably: BTreeSet::new(),
            scoped: BTreeSet::new(),
            xa_sent: BTreeSet::new(),
            xa_committed: BTreeSet::new(),
        }
    }

    fn message(&self, p: usize, seq: u64, persistent: bool, dest: usize) -> NewMessage {
        NewMessage {
            persistent,
            producer: Some(ProducerRef {
                id: Arc::from("prod"),
                seq,
            }),
            ..NewMessage::new(
                Destination::queue(TARGETS[dest].0),
                Bytes::from(body(p, seq)),
            )
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
        let resend: Vec<(u64, usize)> = self.producers[p]
            .unconfirmed
            .drain(..)
            .map(|u| (u.seq, u.dest))
            .collect();
        for (seq, dest) in resend {
            let m = self.message(p, seq, true, dest);
            match self.broker.send_confirmable(conn, m, None) {
                Ok((record, consumed)) => self.producers[p].unconfirmed.push(Pending {
                    seq,
                    dest,
                    record,
                    consumed,
                }),
                Err(_) => {
                    // Refused: put it back for the next reconnect.
                    self.producers[p].unconfirmed.push(Pending {
                        seq,
                        dest,
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

    /// The transaction manager's connection.
    fn tm_conn(&mut self) -> Option<ConnectionId> {
        if self.tm.is_none() {
            self.tm = self
                .broker
                .connect(ConnectInfo::in_process(None), Arc::new(Inbox::default()))
                .ok();
        }
        self.tm
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
        // Its open XA transaction rolls back with the connection.
        self.consumers[c].xa = None;
        self.consumers[c].inbox.0.lock().clear();
    }

    /// Begins an XA transaction on consumer `c`'s connection if none is open.
    fn xa_begin(&mut self, c: usize, conn: ConnectionId) -> bool {
        if self.consumers[c].xa.is_some() {
            return true;
        }
        let xid = format!("xa:{}", self.next_xid);
        self.next_xid += 1;
        if self.broker.begin(conn, &xid).is_err() {
            self.drop_consumer(c);
            return false;
        }
        self.consumers[c].xa = Some(Xa {
            xid,
            state: XaState::Active,
            prepare: 0,
            sends: Vec::new(),
            acks: Vec::new(),
        });
        true
    }

    /// A transaction manager's connection `via`: a producer's (0..3), a
    /// consumer's (3, 4; its own when that one is closed) or its own.
    fn via_conn(&mut self, via: usize) -> Option<ConnectionId> {
        match via {
            0..=2 => self.producer_conn(via),
            3 | 4 => match self.consumers[via - 3].conn {
                Some(conn) => Some(conn),
                None => self.tm_conn(),
            },
            _ => self.tm_conn(),
        }
    }

    /// An XA transaction for a commit or rollback: with `stale`, one that
    /// ended (or whose end the broker accepted); else one that is `live`.
    fn pick_xa(&self, x: usize, stale: bool, live: fn(XaState) -> bool) -> Option<usize> {
        let ended = |s| {
            matches!(
                s,
                XaState::Done | XaState::Committing(_) | XaState::RollingBack(_)
            )
        };
        let candidates: Vec<usize> = (0..self.xas.len())
            .filter(|&i| {
                let s = self.xas[i].state;
                if stale {
                    ended(s)
                } else {
                    live(s)
                }
            })
            .collect();
        (!candidates.is_empty()).then(|| candidates[x % candidates.len()])
    }

    /// Every copy the engine holds where a consumer can get it, or has just
    /// handed to a consumer, or dead-lettered.
    fn present_now(&self) -> BTreeSet<String> {
        let mut present = self.stored_copies();
        for c in &self.consumers {
            for d in c.inbox.0.lock().iter().chain(&c.hidden).chain(&c.held) {
                present.insert(text(d));
            }
        }
        present
    }

    /// The copies waiting in the queues and the DLQ.
    fn stored_copies(&self) -> BTreeSet<String> {
        let mut present: BTreeSet<String> = BTreeSet::new();
        for q in QUEUES {
            for (m, _, _) in self.broker.browse(&Destination::queue(q), usize::MAX) {
                present.insert(copy(q, &String::from_utf8_lossy(&m.body)));
            }
        }
        present.extend(self.dead_letters());
        present
    }

    /// The copies in the DLQ, by the queue they died in.
    fn dead_letters(&self) -> Vec<String> {
        let dlq = Destination::queue(&self.config.dead_letter_queue);
        self.broker
            .browse(&dlq, usize::MAX)
            .iter()
            .map(|(m, _, _)| {
                let from = m
                    .fields
                    .original_destination
                    .as_ref()
                    .map_or("?", |d| &*d.name);
                copy(from, &String::from_utf8_lossy(&m.body))
            })
            .collect()
    }

    /// Commits `xas[i]` from `conn`; the broker must refuse an ended one.
    fn xa_commit(&mut self, i: usize, conn: ConnectionId) {
        let xid = self.xas[i].xid.clone();
        let result = self.broker.commit_prepared(conn, &xid);
        if self.xas[i].state != XaState::Prepared {
            assert!(
                matches!(result, Err(BrokerError::UnknownTransaction(_))),
                "{xid} ({:?}) committed again: {result:?}",
                self.xas[i].state
            );
            return;
        }
        // A refusal leaves it prepared; the transaction manager tries again later.
        if let Ok(record) = result {
            let xa = &mut self.xas[i];
            xa.state = XaState::Committing(record);
            self.acked.extend(xa.acks.iter().map(|(k, _)| k.clone()));
            self.xa_committed.extend(xa.sends.iter().cloned());
        }
    }

    /// Rolls `xas[i]` back; what it acknowledged must be back at once.
    fn xa_rollback(&mut self, i: usize) {
        let xid = self.xas[i].xid.clone();
        let result = self.broker.rollback_prepared(&xid);
        if !matches!(self.xas[i].state, XaState::Preparing(_) | XaState::Prepared) {
            assert!(
                matches!(result, Err(BrokerError::UnknownTransaction(_))),
                "{xid} ({:?}) rolled back again: {result:?}",
                self.xas[i].state
            );
            return;
        }
        if let Ok(record) = result {
            self.xas[i].state = XaState::RollingBack(record);
            let present = self.present_now();
            let missing: Vec<&String> = self.xas[i]
                .acks
                .iter()
                .map(|(k, _)| k)
                .filter(|k| !present.contains(*k))
                .collect();
            assert!(
                missing.is_empty(),
                "{xid} rolled back but what it acknowledged is not back: {missing:?}"
            );
        }
    }

    fn apply(&mut self, op: Op) {
        match op {
            Op::Send {
                p,
                persistent,
                receipt,
                dest,
            } => {
                let Some(conn) = self.producer_conn(p) else {
                    return;
                };
                let seq = self.producers[p].next_seq;
                self.producers[p].next_seq += 1;
                let m = self.message(p, seq, persistent, dest);
                match self.broker.send_confirmable(conn, m, None) {
                    Ok((record, consumed)) => {
                        if self.producers[p].client_id.is_some() {
                            self.scoped.extend(copies(&body(p, seq), dest));
                        }
                        if persistent && receipt {
                            self.producers[p].unconfirmed.push(Pending {
                                seq,
                                dest,
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
                                dest,
                                record: Seq::MAX,
                                consumed: None,
                            });
                        }
                        self.drop_producer(p);
                    }
                }
            }
            Op::TxSend { p, dest } => {
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
                let m = self.message(p, seq, true, dest);
                match self.broker.send(conn, m, Some("tx")) {
                    Ok(_) => self.producers[p]
                        .tx
                        .as_mut()
                        .expect("open")
                        .push((seq, dest)),
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
                        let made: Vec<String> = sent
                            .into_iter()
                            .flat_map(|(seq, dest)| copies(&body(p, seq), dest))
                            .collect();
                        if self.producers[p].client_id.is_some() {
                            self.scoped.extend(made.iter().cloned());
                        }
                        self.producers[p].commits.push((record, made));
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
                let (seq, dest) =
                    self.producers[p].confirmed[k % self.producers[p].confirmed.len()];
                let Some(conn) = self.producer_conn(p) else {
                    return;
                };
                let m = self.message(p, seq, true, dest);
                if self.broker.send(conn, m, None).is_err() {
                    self.drop_producer(p);
                }
            }
            Op::DisconnectProducer { p } => self.drop_producer(p),
            Op::Subscribe { c, mode, q2 } => {
                if self.consumers[c].conn.is_some() {
                    return;
                }
                let inbox = Arc::clone(&self.consumers[c].inbox);
                let client_id = self.consumers[c].client_id;
                let Ok(conn) = self
                    .broker
                    .connect(ConnectInfo::in_process(client_id), inbox)
                else {
                    return;
                };
                let mode =
                    [AckMode::ClientIndividual, AckMode::Client, AckMode::Auto][mode as usize];
                let queue = if q2 { "q2" } else { "q" };
                let spec = SubscribeSpec {
                    id: Arc::from("s"),
                    destination: Destination::queue(queue),
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
                        let keys: Vec<String> = covered.iter().map(text).collect();
                        self.acked.extend(keys.iter().cloned());
                        if record != 0 {
                            self.acks.push((record, keys));
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
                        let keys = self.consumers[c].tx_acks.take().expect("open");
                        self.acked.extend(keys.iter().cloned());
                        if record != 0 {
                            self.acks.push((record, keys));
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
            Op::XaSend { c, dest } => {
                let Some(conn) = self.consumers[c].conn else {
                    return;
                };
                if !self.xa_begin(c, conn) {
                    return;
                }
                let seq = self.consumers[c].xa_seq;
                self.consumers[c].xa_seq += 1;
                let text = format!("x{c}-{seq}");
                let m = NewMessage {
                    persistent: true,
                    producer: Some(ProducerRef {
                        id: Arc::from("prod"),
                        seq,
                    }),
                    ..NewMessage::new(
                        Destination::queue(TARGETS[dest].0),
                        Bytes::from(text.clone()),
                    )
                };
                let xa = self.consumers[c].xa.as_mut().expect("begun");
                match self.broker.send(conn, m, Some(&xa.xid)) {
                    Ok(_) => {
                        let made = copies(&text, dest);
                        xa.sends.extend(made.iter().cloned());
                        self.xa_sent.extend(made.iter().cloned());
                        self.scoped.extend(made);
                    }
                    Err(_) => self.drop_consumer(c),
                }
            }
            Op::XaAck { c, k } => {
                let Some(conn) = self.consumers[c].conn else {
                    return;
                };
                if self.consumers[c].held.is_empty() || self.consumers[c].mode == AckMode::Auto {
                    return;
                }
                if !self.xa_begin(c, conn) {
                    return;
                }
                let k = k % self.consumers[c].held.len();
                let id = self.consumers[c].held[k].message.id;
                let xid = self.consumers[c].xa.as_ref().expect("begun").xid.clone();
                match self.broker.ack(conn, Some("s"), id, Some(&xid), false) {
                    Ok(_) => {
                        let covered = self.take_covered(c, k);
                        let xa = self.consumers[c].xa.as_mut().expect("begun");
                        xa.acks
                            .extend(covered.iter().map(|d| (text(d), d.message.persistent)));
                    }
                    Err(_) => self.drop_consumer(c),
                }
            }
            Op::XaPrepare { c, empty } => {
                let Some(conn) = self.consumers[c].conn else {
                    return;
                };
                let Some(xa) = self.consumers[c].xa.take() else {
                    // A branch that did nothing votes read-only and is over.
                    if !empty || !self.xa_begin(c, conn) {
                        return;
                    }
                    let xid = self.consumers[c].xa.take().expect("begun").xid;
                    let vote = self.broker.prepare(conn, &xid);
                    assert!(
                        matches!(vote, Ok(None)),
                        "{xid} did nothing but voted {vote:?}"
                    );
                    return;
                };
                match self.broker.prepare(conn, &xa.xid) {
                    Ok(Some(record)) => self.xas.push(Xa {
                        state: XaState::Preparing(record),
                        prepare: record,
                        ..xa
                    }),
                    Ok(None) => panic!("{} did something but voted read-only", xa.xid),
                    Err(_) => {
                        // Still open on the connection: the client gives up
                        // and the connection's end rolls it back.
                        self.consumers[c].xa = Some(xa);
                        self.drop_consumer(c);
                    }
                }
            }
            Op::XaCommit { x, via, stale } => {
                // A transaction manager commits only what voted yes.
                let Some(i) = self.pick_xa(x, stale, |s| s == XaState::Prepared) else {
                    return;
                };
                let Some(conn) = self.via_conn(via) else {
                    return;
                };
                self.xa_commit(i, conn);
            }
            Op::XaRollback { x, stale } => {
                // It may roll back without waiting for the vote.
                let live = |s| matches!(s, XaState::Preparing(_) | XaState::Prepared);
                let Some(i) = self.pick_xa(x, stale, live) else {
                    return;
                };
                self.xa_rollback(i);
            }
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

    /// Copies an open or prepared XA transaction holds from every consumer
    /// (only those the broker holds one of: another copy of the same body
    /// may be delivered legitimately).
    fn xa_held(&self) -> BTreeSet<&String> {
        self.consumers
            .iter()
            .filter_map(|c| c.xa.as_ref())
            .chain(self.xas.iter().filter(|x| x.holds()))
            .flat_map(|x| x.acks.iter().map(|(k, _)| k))
            .filter(|k| self.scoped.contains(*k))
            .collect()
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
                let k = text(&d);
                assert!(
                    !self.acked_durably.contains(&k),
                    "{k} delivered again after its acknowledgement was durable"
                );
                assert!(
                    !self.xa_sent.contains(&k) || self.xa_committed.contains(&k),
                    "{k} delivered, but its XA transaction did not commit"
                );
                assert!(
                    !self.xa_held().contains(&k),
                    "{k} delivered while an XA transaction holds its acknowledgement"
                );
                if self.consumers[c].mode == AckMode::Auto {
                    self.broker.delivered(&[(d.consumer, d.message.id)]);
                    self.acked.insert(k);
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
                    self.confirmed.extend(copies(&body(p, u.seq), u.dest));
                    producer.confirmed.push((u.seq, u.dest));
                } else {
                    still.push(u);
                }
            }
            producer.unconfirmed = still;
            let (done, waiting): (Vec<_>, Vec<_>) =
                producer.commits.drain(..).partition(|(r, _)| *r <= durable);
            producer.commits = waiting;
            for (_, made) in done {
                self.confirmed.extend(made);
            }
        }
        let (done, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.acks)
            .into_iter()
            .partition(|(r, _)| *r <= durable);
        self.acks = waiting;
        for (_, keys) in done {
            for k in keys {
                if self.scoped.contains(&k) {
                    self.acked_durably.insert(k);
                }
            }
        }
        for xa in &mut self.xas {
            match xa.state {
                XaState::Preparing(r) if r <= durable => xa.state = XaState::Prepared,
                XaState::Committing(r) if r <= durable => {
                    xa.state = XaState::Done;
                    self.confirmed.extend(xa.sends.iter().cloned());
                    for (k, _) in &xa.acks {
                        if self.scoped.contains(k) {
                            self.acked_durably.insert(k.clone());
                        }
                    }
                }
                XaState::RollingBack(r) if r <= durable => xa.state = XaState::Done,
                _ => {}
            }
        }
        // The broker lists what is prepared and nothing else.
        let mut expected: Vec<&str> = self
            .xas
            .iter()
            .filter(|x| matches!(x.state, XaState::Preparing(_) | XaState::Prepared))
            .map(|x| x.xid.as_str())
            .collect();
        expected.sort_unstable();
        let listed = self.broker.prepared_transactions();
        let listed: Vec<&str> = listed.iter().map(|x| &**x).collect();
        assert_eq!(listed, expected, "prepared transactions");
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
            c.xa = None;
            c.inbox.0.lock().clear();
        }
        self.tm = None;
        self.acks.clear();
        self.recover_xas();
        self.check_single_copies();
    }

    /// After a restart: the transactions whose prepare was durable and whose
    /// end was not are prepared again, holding what they acknowledged; one
    /// whose prepare was lost may be gone, and then entirely.
    fn recover_xas(&mut self) {
        let durable = self.store.durable();
        let listed: BTreeSet<String> = self
            .broker
            .prepared_transactions()
            .iter()
            .map(|x| x.to_string())
            .collect();
        let known: BTreeSet<&str> = self
            .xas
            .iter()
            .filter(|x| x.state != XaState::Done)
            .map(|x| x.xid.as_str())
            .collect();
        for xid in &listed {
            assert!(
                known.contains(xid.as_str()),
                "{xid} is prepared after a restart, but it ended or never was"
            );
        }
        for xa in &mut self.xas {
            if xa.state == XaState::Done {
                continue;
            }
            let is_listed = listed.contains(&xa.xid);
            assert!(
                is_listed || xa.prepare > durable,
                "{} ({:?}) was durably prepared and not ended, but is gone after a restart",
                xa.xid,
                xa.state
            );
            if let XaState::Committing(_) = xa.state {
                // Its commit did not survive: its sends are not committed.
                for k in &xa.sends {
                    self.xa_committed.remove(k);
                }
            }
            if is_listed {
                xa.state = XaState::Prepared;
                // What a crash keeps of it: its acks of stored messages.
                xa.acks.retain(|(_, persistent)| *persistent);
            } else {
                xa.state = XaState::Done;
            }
        }
        // What the prepared ones hold is not waiting for a consumer.
        let stored = self.stored_copies();
        for xa in self.xas.iter().filter(|x| x.state == XaState::Prepared) {
            for (k, _) in &xa.acks {
                assert!(
                    !self.scoped.contains(k) || !stored.contains(k),
                    "{k} is back in its queue after a restart, but {} still holds it",
                    xa.xid
                );
            }
        }
        for k in &stored {
            assert!(
                !self.xa_sent.contains(k) || self.xa_committed.contains(k),
                "{k} is stored after a restart, but its XA transaction did not commit"
            );
        }
    }

    /// No two stored copies of one client-id producer's message in one queue.
    fn check_single_copies(&self) {
        let mut copies: BTreeMap<String, usize> = BTreeMap::new();
        for q in QUEUES {
            for (m, _, _) in self.broker.browse(&Destination::queue(q), usize::MAX) {
                *copies
                    .entry(copy(q, &String::from_utf8_lossy(&m.body)))
                    .or_default() += 1;
            }
        }
        for (k, n) in copies {
            if self.scoped.contains(&k) {
                assert!(n <= 1, "{n} copies of {k} after a restart");
            }
        }
    }

    /// Heals the store, makes everything durable, reconnects the producers (so
    /// their resends go in), resolves what is prepared (committing some and
    /// rolling back the others, as a transaction manager's recovery would),
    /// and drains the queues: every confirmed copy must be there or have been
    /// acknowledged.
    fn finish(&mut self) {
        if self.store.failed.load(Ordering::SeqCst) {
            self.crash();
        }
        for p in 0..self.producers.len() {
            self.producer_conn(p);
        }
        self.store.flush();
        self.settle();
        for i in 0..self.xas.len() {
            if self.xas[i].state != XaState::Prepared {
                continue;
            }
            if i % 2 == 0 {
                let conn = self.tm_conn().expect("the transaction manager connects");
                self.xa_commit(i, conn);
            } else {
                self.xa_rollback(i);
            }
            assert!(
                self.xas[i].state != XaState::Prepared,
                "{} could not be resolved on a healthy store",
                self.xas[i].xid
            );
        }
        self.store.flush();
        self.settle();
        for c in 0..self.consumers.len() {
            self.drop_consumer(c);
        }
        self.settle();
        assert!(self.broker.prepared_transactions().is_empty());
        let mut left: Vec<String> = Vec::new();
        for q in QUEUES {
            for (m, _, _) in self.broker.browse(&Destination::queue(q), usize::MAX) {
                left.push(copy(q, &String::from_utf8_lossy(&m.body)));
            }
        }
        // Dead letters are kept too, in the DLQ.
        let dead = self.dead_letters();
        let present: BTreeSet<String> = left.iter().chain(&dead).cloned().collect();
        let lost: Vec<&String> = self
            .confirmed
            .iter()
            .filter(|k| !present.contains(*k) && !self.acked.contains(*k))
            .collect();
        assert!(lost.is_empty(), "confirmed and lost: {lost:?}");
        for k in &present {
            assert!(
                !self.xa_sent.contains(k) || self.xa_committed.contains(k),
                "{k} is in the broker, but its XA transaction did not commit"
            );
        }
        let mut copies: BTreeMap<&String, usize> = BTreeMap::new();
        for k in &left {
            *copies.entry(k).or_default() += 1;
        }
        for (k, n) in copies {
            if self.scoped.contains(k) {
                assert!(n <= 1, "{n} copies of {k}");
            }
            assert!(
                !self.acked_durably.contains(k),
                "{k} is back after its acknowledgement was durable"
            );
        }
    }
}

/// The copy a delivery carries: the queue it came from and its body.
fn text(d: &Delivery) -> String {
    copy(
        &d.message.destination.name,
        &String::from_utf8_lossy(&d.message.body),
    )
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
