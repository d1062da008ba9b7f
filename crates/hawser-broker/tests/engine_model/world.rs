//! The model's world: producers, consumers and XA transactions as the model sees
//! them, and each operation applied to the engine and to the model.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use hawser_broker::{ConnectInfo, Principal};

use bytes::Bytes;
use hawser_broker::{
    AckMode, Broker, BrokerConfig, BrokerError, ConnectionId, Consumed, Delivery, Destination,
    MessageData, MessageId, NewMessage, Outbox, ProducerRef, Recovered, Seq, StoreKey,
    SubscribeSpec,
};
use parking_lot::Mutex;

use crate::ops::*;
use crate::store::ModelStore;

#[derive(Default)]
pub(crate) struct Inbox(pub(crate) Mutex<Vec<Delivery>>);

impl Outbox for Inbox {
    fn deliver(&self, d: Delivery) {
        self.0.lock().push(d);
    }
}

/// A plain send waiting for its receipt.
pub(crate) struct Pending {
    pub(crate) seq: u64,
    /// Index into `TARGETS`.
    pub(crate) dest: usize,
    pub(crate) record: Seq,
    pub(crate) consumed: Option<Arc<Consumed>>,
}

pub(crate) struct Producer {
    /// Client id, or none (then resends on a new connection are new messages).
    pub(crate) client_id: Option<&'static str>,
    /// The user its connections authenticate as, or none (anonymous).
    pub(crate) user: Option<&'static str>,
    pub(crate) conn: Option<ConnectionId>,
    pub(crate) next_seq: u64,
    /// Sends of an open transaction: (seq, dest).
    pub(crate) tx: Option<Vec<(u64, usize)>>,
    /// Plain persistent sends not yet confirmed, resent on reconnect.
    pub(crate) unconfirmed: Vec<Pending>,
    /// Plain sends already confirmed (candidates for a stray resend): (seq, dest).
    pub(crate) confirmed: Vec<(u64, usize)>,
    /// Commits waiting for their record: (record, copies).
    pub(crate) commits: Vec<(Seq, Vec<String>)>,
}

/// Where an XA transaction is, as its transaction manager knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum XaState {
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
pub(crate) struct Xa {
    pub(crate) xid: String,
    pub(crate) state: XaState,
    /// The record of its prepare, once prepared.
    pub(crate) prepare: Seq,
    /// The copies its sends make (all persistent).
    pub(crate) sends: Vec<String>,
    /// The copies it acknowledged, and whether each is persistent.
    pub(crate) acks: Vec<(String, bool)>,
}

impl Xa {
    /// Holds what it acknowledged from every consumer.
    pub(crate) fn holds(&self) -> bool {
        matches!(
            self.state,
            XaState::Active | XaState::Preparing(_) | XaState::Prepared
        )
    }
}

pub(crate) struct Consumer {
    /// Client id of its connections (its XA sends are scoped by it).
    pub(crate) client_id: Option<&'static str>,
    /// The user its connections authenticate as (its XA sends are scoped by it too).
    pub(crate) user: Option<&'static str>,
    pub(crate) conn: Option<ConnectionId>,
    pub(crate) inbox: Arc<Inbox>,
    pub(crate) mode: AckMode,
    /// Deliveries not yet visible (their record not durable, without
    /// concurrent dispatch), in order.
    pub(crate) hidden: Vec<Delivery>,
    /// Visible deliveries not yet acknowledged, in delivery order.
    pub(crate) held: Vec<Delivery>,
    /// Copies acknowledged in the consumer's open transaction.
    pub(crate) tx_acks: Option<Vec<String>>,
    /// The XA transaction open on its connection.
    pub(crate) xa: Option<Xa>,
    /// The producer sequence of its next XA send.
    pub(crate) xa_seq: u64,
}

pub(crate) struct World {
    pub(crate) config: BrokerConfig,
    pub(crate) store: Arc<ModelStore>,
    pub(crate) broker: Broker,
    pub(crate) producers: Vec<Producer>,
    pub(crate) consumers: Vec<Consumer>,
    /// The transaction manager's own connection, opened when first needed.
    pub(crate) tm: Option<ConnectionId>,
    /// Every XA transaction that was prepared, oldest first.
    pub(crate) xas: Vec<Xa>,
    /// Names the next XA transaction.
    pub(crate) next_xid: u64,
    /// Copies the broker promised to keep (receipt released or commit durable).
    pub(crate) confirmed: BTreeSet<String>,
    /// Copies a consumer acknowledged (the ack or its commit was accepted).
    pub(crate) acked: BTreeSet<String>,
    /// Acks waiting for their record: (record, copies).
    pub(crate) acks: Vec<(Seq, Vec<String>)>,
    /// Copies whose acknowledgement is durable: never to be delivered again.
    pub(crate) acked_durably: BTreeSet<String>,
    /// Copies of which the broker may hold one at most (from client-id
    /// producers, or sent in an XA transaction: never resent).
    pub(crate) scoped: BTreeSet<String>,
    /// Copies of every XA send.
    pub(crate) xa_sent: BTreeSet<String>,
    /// Copies of XA sends whose commit the broker accepted (and kept).
    pub(crate) xa_committed: BTreeSet<String>,
    /// Runs the broker's reads of stored messages (its pager).
    pub(crate) runtime: tokio::runtime::Runtime,
}

/// A connection from inside the test, as `user` (or anonymous).
pub(crate) fn connect_info(client_id: Option<&str>, user: Option<&str>) -> ConnectInfo {
    let info = ConnectInfo::in_process(client_id);
    match user {
        None => info,
        Some(name) => info.with_principal(Principal::User {
            name: Arc::from(name),
            groups: Arc::from([]),
        }),
    }
}

pub(crate) fn body(p: usize, seq: u64) -> String {
    format!("p{p}-{seq}")
}

impl World {
    pub(crate) fn new(config: BrokerConfig) -> World {
        let store = ModelStore::new();
        let broker = Broker::new(config.clone(), store.clone(), Recovered::default());
        World {
            config,
            store,
            broker,
            producers: [
                (Some("c0"), Some("alice")),
                (None, None),
                (Some("c2"), None),
            ]
            .into_iter()
            .map(|(client_id, user)| Producer {
                client_id,
                user,
                conn: None,
                next_seq: 1,
                tx: None,
                unconfirmed: Vec::new(),
                confirmed: Vec::new(),
                commits: Vec::new(),
            })
            .collect(),
            consumers: [(Some("k0"), Some("carol")), (None, None)]
                .into_iter()
                .map(|(client_id, user)| Consumer {
                    client_id,
                    user,
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
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
                .expect("runtime"),
        }
    }

    pub(crate) fn message(&self, p: usize, seq: u64, persistent: bool, dest: usize) -> NewMessage {
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
    pub(crate) fn producer_conn(&mut self, p: usize) -> Option<ConnectionId> {
        if let Some(c) = self.producers[p].conn {
            return Some(c);
        }
        let info = connect_info(self.producers[p].client_id, self.producers[p].user);
        let conn = self.broker.connect(info, Arc::new(Inbox::default())).ok()?;
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

    pub(crate) fn drop_producer(&mut self, p: usize) {
        if let Some(c) = self.producers[p].conn.take() {
            self.broker.disconnect(c);
        }
        self.producers[p].tx = None;
        // Commits not yet durable were not confirmed; the client hears of a failure.
        self.producers[p].commits.clear();
    }

    /// The transaction manager's connection.
    pub(crate) fn tm_conn(&mut self) -> Option<ConnectionId> {
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
    pub(crate) fn take_covered(&mut self, c: usize, k: usize) -> Vec<Delivery> {
        let consumer = &mut self.consumers[c];
        if consumer.mode == AckMode::Client {
            consumer.held.drain(..=k).collect()
        } else {
            vec![consumer.held.remove(k)]
        }
    }

    pub(crate) fn drop_consumer(&mut self, c: usize) {
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
    pub(crate) fn xa_begin(&mut self, c: usize, conn: ConnectionId) -> bool {
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
    pub(crate) fn via_conn(&mut self, via: usize) -> Option<ConnectionId> {
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
    pub(crate) fn pick_xa(
        &self,
        x: usize,
        stale: bool,
        live: fn(XaState) -> bool,
    ) -> Option<usize> {
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

    /// Serves the reads of stored messages the broker asked for (the pager
    /// task of a server), until it asks for no more.
    pub(crate) fn page_in(&self) {
        self.runtime
            .block_on(async { while self.broker.page_in().await > 0 {} });
    }

    /// Every copy the engine holds where a consumer can get it, or has just
    /// handed to a consumer, or dead-lettered.
    pub(crate) fn present_now(&self) -> BTreeSet<String> {
        let mut present = self.stored_copies();
        for c in &self.consumers {
            for d in c.inbox.0.lock().iter().chain(&c.hidden).chain(&c.held) {
                present.insert(text(d));
            }
        }
        present
    }

    /// The copies waiting in the queues and the DLQ.
    pub(crate) fn stored_copies(&self) -> BTreeSet<String> {
        let mut present: BTreeSet<String> = BTreeSet::new();
        for q in QUEUES {
            for m in self.waiting(&Destination::queue(q)) {
                present.insert(copy(q, &String::from_utf8_lossy(&m.body)));
            }
        }
        present.extend(self.dead_letters());
        present
    }

    /// What waits in `queue` for a consumer: in memory, and paged out (the
    /// store's messages above each priority's mark).
    pub(crate) fn waiting(&self, queue: &Destination) -> Vec<MessageData> {
        let mut all: Vec<MessageData> = self
            .broker
            .browse(queue, usize::MAX)
            .into_iter()
            .map(|(m, _, _)| MessageData::clone(&m))
            .collect();
        let key = StoreKey::Queue(Arc::clone(&queue.name));
        for tail in self.broker.paged_out(queue) {
            let paged: Vec<MessageData> = self
                .store
                .read_now(
                    &key,
                    tail.priority,
                    tail.after,
                    hawser_broker::ReadLimit::ALL,
                )
                .into_iter()
                .map(|(m, _)| m)
                .filter(|m| !tail.in_memory.contains(&m.id))
                .take(tail.count as usize)
                .collect();
            assert_eq!(
                paged.len() as u64,
                tail.count,
                "{queue}: the store has what the broker counts"
            );
            all.extend(paged);
        }
        all
    }

    /// The copies in the DLQ, by the queue they died in.
    pub(crate) fn dead_letters(&self) -> Vec<String> {
        let dlq = Destination::queue(&self.config.dead_letter_queue);
        self.waiting(&dlq)
            .iter()
            .map(|m| {
                let from = m
                    .fields
                    .original_destination
                    .as_ref()
                    .map_or("?", |d| &*d.name);
                copy(from, &String::from_utf8_lossy(&m.body))
            })
            .collect()
    }

    /// True when `xas[i]` can no longer be ended (not `live`): then the broker
    /// must have refused to end it (`result`) as an unknown transaction.
    pub(crate) fn refused_once_ended(
        &self,
        i: usize,
        live: bool,
        result: &Result<Seq, BrokerError>,
        ended: &str,
    ) -> bool {
        if !live {
            assert!(
                matches!(result, Err(BrokerError::UnknownTransaction(_))),
                "{} ({:?}) {ended} again: {result:?}",
                self.xas[i].xid,
                self.xas[i].state
            );
        }
        !live
    }

    /// Consumer `c`'s connection, and the `k`th (modulo) delivery it holds and
    /// may acknowledge itself: its place and message id; none if it is not
    /// connected, holds nothing, or acknowledges automatically.
    pub(crate) fn ackable(&self, c: usize, k: usize) -> Option<(ConnectionId, usize, MessageId)> {
        let consumer = &self.consumers[c];
        let conn = consumer.conn?;
        if consumer.held.is_empty() || consumer.mode == AckMode::Auto {
            return None;
        }
        let k = k % consumer.held.len();
        Some((conn, k, consumer.held[k].message.id))
    }

    /// Commits `xas[i]` from `conn`; the broker must refuse an ended one.
    pub(crate) fn xa_commit(&mut self, i: usize, conn: ConnectionId) {
        let xid = self.xas[i].xid.clone();
        let result = self.broker.commit_prepared(conn, &xid);
        if self.refused_once_ended(
            i,
            self.xas[i].state == XaState::Prepared,
            &result,
            "committed",
        ) {
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
    pub(crate) fn xa_rollback(&mut self, i: usize) {
        let xid = self.xas[i].xid.clone();
        let result = self.broker.rollback_prepared(&xid);
        let live = matches!(self.xas[i].state, XaState::Preparing(_) | XaState::Prepared);
        if self.refused_once_ended(i, live, &result, "rolled back") {
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

    pub(crate) fn apply(&mut self, op: Op) {
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
            Op::Squat { p, ahead } => {
                // The producer's connection drops; another user connects
                // with its client id and sends with its producer id and the
                // sequence numbers it will use next, to a queue nobody
                // reads. The owner's own sends of them must still count.
                let Some(client_id) = self.producers[p].client_id else {
                    return;
                };
                self.drop_producer(p);
                let Ok(conn) = self.broker.connect(
                    connect_info(Some(client_id), Some("mallory")),
                    Arc::new(Inbox::default()),
                ) else {
                    return;
                };
                let next = self.producers[p].next_seq;
                for seq in next..next + ahead {
                    let m = NewMessage {
                        producer: Some(ProducerRef {
                            id: Arc::from("prod"),
                            seq,
                        }),
                        ..NewMessage::new(Destination::queue("q3"), Bytes::from("squat"))
                    };
                    if self.broker.send(conn, m, None).is_err() {
                        break;
                    }
                }
                self.broker.disconnect(conn);
            }
            Op::Subscribe { c, mode, q2 } => {
                if self.consumers[c].conn.is_some() {
                    return;
                }
                let inbox = Arc::clone(&self.consumers[c].inbox);
                let info = connect_info(self.consumers[c].client_id, self.consumers[c].user);
                let Ok(conn) = self.broker.connect(info, inbox) else {
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
                    // Mixed consumer priorities: which consumer gets what
                    // changes, never what is kept.
                    priority: mode as i8 - 1,
                    network_path: None,
                };
                self.consumers[c].conn = Some(conn);
                self.consumers[c].mode = mode;
                if self.broker.subscribe(conn, spec).is_err() {
                    self.drop_consumer(c);
                }
            }
            Op::Ack { c, k, sync } => {
                let Some((conn, k, id)) = self.ackable(c, k) else {
                    return;
                };
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
                let Some((conn, k, id)) = self.ackable(c, k) else {
                    return;
                };
                match self.broker.nack(conn, Some("s"), id) {
                    Ok(()) => {
                        self.take_covered(c, k);
                    }
                    Err(_) => self.drop_consumer(c),
                }
            }
            Op::TxAck { c, k } => {
                let Some((conn, k, id)) = self.ackable(c, k) else {
                    return;
                };
                if self.consumers[c].tx_acks.is_none() {
                    if self.broker.begin(conn, "ctx").is_err() {
                        return self.drop_consumer(c);
                    }
                    self.consumers[c].tx_acks = Some(Vec::new());
                }
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
                let Some((conn, k, id)) = self.ackable(c, k) else {
                    return;
                };
                if !self.xa_begin(c, conn) {
                    return;
                }
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
            Op::PageIn => self.page_in(),
        }
        self.settle();
    }
}

/// The copy a delivery carries: the queue it came from and its body.
pub(crate) fn text(d: &Delivery) -> String {
    copy(
        &d.message.destination.name,
        &String::from_utf8_lossy(&d.message.body),
    )
}
