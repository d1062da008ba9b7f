//! Publishing: from a producer's messages to the store record that keeps them
//! and the containers that hold them, in two steps around the store's append.
//!
//! [`Broker::plan_publish`] decides everything without changing the engine's
//! state (it only hands out message ids): which messages are resends the store
//! already holds, where each message goes, the store ops, which producer
//! windows to mark. [`Broker::write_plan`] appends the ops; only if the store
//! accepts them does [`Broker::apply_publish`] mark the windows and place the
//! messages. A refused record leaves the engine as it was (see [`crate::state`]).

use std::sync::Arc;

use crate::broker::Broker;
use crate::consumed::Consumed;
use crate::container::ContainerKey;
use crate::destination::{Destination, InvalidDestination};
use crate::error::BrokerError;
use crate::message::{Message, MessageData, NewMessage, ProducerRef};
use crate::outbox::ConnectionId;
use crate::producer::ProducerKey;
use crate::queue::Entry;
use crate::state::{NoLocal, State};
use crate::store::{Seq, StoreOp};
use crate::usage::DestinationUsage;

/// Who publishes: the identity that scopes its producers' sequence numbers
/// (see [`crate::producer`]) and that no-local subscriptions skip. Usually
/// the connection making the call; for a prepared XA transaction, the one
/// that sent its messages, whichever connection commits it.
#[derive(Clone, Debug, Default)]
pub(crate) struct Publisher {
    /// The connection the messages came from; `None` when unknown (a
    /// transaction prepared before a restart). Its producer windows are used
    /// only while it is open: a closed connection's died with it.
    pub conn: Option<ConnectionId>,
    /// That connection's client id, which scopes its producers' windows.
    pub client_id: Option<Arc<str>>,
    /// Its user, which scopes them too (see [`ProducerKey`]).
    pub owner: Option<Arc<str>>,
}

impl Publisher {
    /// An open connection, as the publisher of what it sends.
    pub(crate) fn of(st: &State, conn: ConnectionId) -> Result<Publisher, BrokerError> {
        let c = st.connections.open(conn)?;
        Ok(Publisher {
            conn: Some(conn),
            client_id: c.info.client_id.clone(),
            owner: c.info.principal.user().cloned(),
        })
    }
}

/// A producer's sequence number to mark once the record is accepted.
enum Mark {
    /// A client-id scoped producer, remembered across connections and restarts.
    Scoped(ProducerKey, u64),
    /// A producer of a connection without client id, remembered by it alone.
    Connection(Arc<str>, u64),
}

impl Mark {
    fn is(&self, p: &ProducerRef) -> bool {
        match self {
            Mark::Scoped(k, s) => *s == p.seq && k.producer == p.id,
            Mark::Connection(id, s) => *s == p.seq && *id == p.id,
        }
    }
}

/// What publishing some messages will do, decided but not yet done.
pub(crate) struct Publish {
    /// Each accepted message and the container it goes to, in order, and
    /// whether it is a non-persistent message the record spills to the
    /// store ([`Broker::spills`]).
    placed: Vec<(ContainerKey, Arc<Message>, bool)>,
    /// Of `ops`, the spills: a record of nothing else is written without an
    /// fsync (nothing in it needs to survive a crash).
    spills: usize,
    /// Each queue and priority a message of this plan spilled to: later
    /// non-persistent messages of it spill too (a few entries, however
    /// large the batch).
    spilled_to: Vec<(ContainerKey, u8)>,
    /// The store ops: the caller's, then the messages', then the producers'.
    pub ops: Vec<StoreOp>,
    /// Producer windows to mark.
    marks: Vec<Mark>,
    /// Tracked producers to forget to make room for new ones.
    forget: Vec<ProducerKey>,
    /// Messages dropped as resends of stored ones.
    pub duplicates: usize,
    /// Messages given.
    pub total: usize,
    /// The connection whose own windows `Mark::Connection`s go to.
    conn: Option<ConnectionId>,
    /// Messages accepted, by destination, in runs (one for a plain send):
    /// counted for the metrics once the record is taken.
    enqueued: Vec<(Destination, u64)>,
}

impl Broker {
    /// Decides what publishing `messages` from `from` does, with `extra` ops
    /// (a commit's acknowledgements) first in the record. `usage` is the
    /// memory counters of the messages' destination if the caller has them
    /// (looked up before the engine's lock was taken, to keep it short).
    pub(crate) fn plan_publish(
        &self,
        st: &mut State,
        from: &Publisher,
        messages: Vec<NewMessage>,
        extra: Vec<StoreOp>,
        usage: Option<&Arc<DestinationUsage>>,
    ) -> Result<Publish, BrokerError> {
        let now = crate::broker::now_ms();
        let client_id = from.client_id.clone();
        // Without a client id, the producers' windows are the connection's
        // own, while it is open; with neither, no resend can be recognised
        // (nor needs to be: nobody can resend on a closed connection).
        let own_windows = match (&client_id, from.conn) {
            (None, Some(conn)) => st.connections.get(&conn),
            _ => None,
        };
        let mut plan = Publish {
            placed: Vec::with_capacity(messages.len()),
            spills: 0,
            spilled_to: Vec::new(),
            ops: extra,
            marks: Vec::new(),
            forget: Vec::new(),
            duplicates: 0,
            total: messages.len(),
            conn: own_windows.and(from.conn),
            enqueued: Vec::new(),
        };
        let mut seen_ops = Vec::new();
        for new in messages {
            if let Some(p) = &new.producer {
                p.check()?;
                let stored = match (&client_id, own_windows) {
                    (Some(cid), _) => st
                        .producers
                        .get(&ProducerKey {
                            owner: from.owner.clone(),
                            client_id: Arc::clone(cid),
                            producer: Arc::clone(&p.id),
                        })
                        .is_some_and(|w| w.contains(p.seq)),
                    (None, Some(c)) => c.producers.get(&p.id).is_some_and(|w| w.contains(p.seq)),
                    (None, None) => false,
                };
                if stored || plan.marks.iter().any(|m| m.is(p)) {
                    plan.duplicates += 1;
                    continue;
                }
                match &client_id {
                    Some(cid) => {
                        let key = ProducerKey {
                            owner: from.owner.clone(),
                            client_id: Arc::clone(cid),
                            producer: Arc::clone(&p.id),
                        };
                        if new.persistent {
                            seen_ops.push(StoreOp::ProducerSeen {
                                producer: key.clone(),
                                seq: p.seq,
                            });
                        }
                        plan.marks.push(Mark::Scoped(key, p.seq));
                    }
                    None if own_windows.is_some() => {
                        plan.marks.push(Mark::Connection(Arc::clone(&p.id), p.seq));
                    }
                    None => {}
                }
            }
            // A composite destination: a copy to each part (ActiveMQ's rule), which
            // remembers the composite as its original destination; each copy is
            // a message of its own, the producer's sequence number counted once.
            // A plain destination (nearly every send) allocates nothing here.
            let (plain, copies): (Option<NewMessage>, Vec<NewMessage>) =
                match new.destination.composite_parts() {
                    None => (Some(new), Vec::new()),
                    Some(parts) if parts.is_empty() => {
                        return Err(InvalidDestination::Empty.into());
                    }
                    Some(parts) => (
                        None,
                        parts
                            .into_iter()
                            .map(|part| {
                                let mut copy = new.clone();
                                copy.fields
                                    .original_destination
                                    .get_or_insert_with(|| copy.destination.clone());
                                copy.destination = part;
                                copy
                            })
                            .collect(),
                    ),
                };
            for new in plain.into_iter().chain(copies) {
                if new.destination.kind.is_temporary()
                    && !st.temp_owners.contains_key(&new.destination)
                {
                    return Err(BrokerError::UnknownTemporary(new.destination.to_string()));
                }
                let id = st.next_message_id;
                st.next_message_id += 1;
                let looked_up;
                let usage = match usage {
                    Some(u) if u.destination() == &new.destination => u,
                    _ => {
                        looked_up = self.destination_usage(&new.destination);
                        &looked_up
                    }
                };
                let msg = Arc::new(Message::charged(
                    MessageData::accept(id, new, now),
                    self.memory(),
                    Some(usage),
                ));
                match plan.enqueued.last_mut() {
                    Some((d, n)) if *d == msg.destination => *n += 1,
                    _ => plan.enqueued.push((msg.destination.clone(), 1)),
                }
                if msg.destination.is_topic() {
                    let mut targets = Vec::new();
                    let dedupe = st.topics.has_shared();
                    let mut reached: Vec<&ContainerKey> = Vec::new();
                    for link in st.topics.matching(&msg.destination) {
                        // A composite subscription may match through two of its names.
                        if dedupe {
                            if reached.contains(&&link.key) {
                                continue;
                            }
                            reached.push(&link.key);
                        }
                        let own = match &link.no_local {
                            Some(NoLocal::Connection(c)) => from.conn == Some(*c),
                            Some(NoLocal::ClientId(id)) => client_id.as_ref() == Some(id),
                            None => false,
                        };
                        if own || link.filter.as_ref().is_some_and(|f| !f.matches(&**msg)) {
                            continue;
                        }
                        if msg.persistent {
                            targets.extend(link.key.store_key());
                        }
                        plan.placed
                            .push((link.key.clone(), Arc::clone(&msg), false));
                    }
                    if !targets.is_empty() {
                        plan.ops.push(StoreOp::Enqueue {
                            message: Arc::clone(&msg),
                            targets,
                        });
                    }
                } else {
                    let key = ContainerKey::Queue(msg.destination.clone());
                    // A non-persistent message spills behind the messages of
                    // its priority already in the store, or spilled earlier
                    // in this same plan.
                    let spills = !msg.persistent
                        && self.spills(&key, &msg, || {
                            st.containers
                                .get(&key)
                                .is_some_and(|q| q.is_paging(msg.priority))
                                || plan.spilled_to.contains(&(key.clone(), msg.priority))
                        });
                    if spills && !plan.spilled_to.contains(&(key.clone(), msg.priority)) {
                        plan.spilled_to.push((key.clone(), msg.priority));
                    }
                    if msg.persistent || spills {
                        if let Some(skey) = key.store_key() {
                            plan.ops.push(StoreOp::Enqueue {
                                message: Arc::clone(&msg),
                                targets: vec![skey],
                            });
                        }
                    }
                    plan.spills += usize::from(spills);
                    plan.placed.push((key, msg, spills));
                }
            }
        }
        if !plan.marks.is_empty() {
            plan.bound_producers(self, st)?;
        }
        plan.ops.extend(seen_ops);
        Ok(plan)
    }

    /// Appends a publish's record, if it has ops; a batch of nothing but resends
    /// is confirmed once everything appended so far (the originals) is durable.
    pub(crate) fn write_plan(
        &self,
        st: &mut State,
        plan: &mut Publish,
    ) -> Result<Seq, BrokerError> {
        if !plan.ops.is_empty() {
            let sync = plan.ops.len() > plan.spills;
            return Ok(self.write(st, std::mem::take(&mut plan.ops), sync)?);
        }
        Ok(if plan.duplicates == plan.total && plan.total > 0 {
            st.last_seq
        } else {
            0
        })
    }

    /// Places the messages and marks the producers, now that the store took
    /// record `seq` (0: nothing needed writing). With `confirmable`, a single
    /// persistent queue message carries the flag its consumer's
    /// acknowledgement sets (see [`crate::consumed`]), returned too.
    pub(crate) fn apply_publish(
        &self,
        st: &mut State,
        plan: Publish,
        seq: Seq,
        confirmable: bool,
    ) -> Option<Arc<Consumed>> {
        plan.apply(self, st, seq, confirmable)
    }
}

impl Publish {
    /// Keeps the producer windows bounded: a connection without client id may
    /// use only so many producer ids; the client-id scoped ones are forgotten
    /// least recently used first, in the same record.
    fn bound_producers(&mut self, broker: &Broker, st: &State) -> Result<(), BrokerError> {
        let config = broker.config();
        let own = self.conn.and_then(|conn| st.connections.get(&conn));
        let mut new_ids: Vec<&Arc<str>> = Vec::new();
        let mut new_keys: Vec<ProducerKey> = Vec::new();
        for mark in &self.marks {
            match mark {
                Mark::Connection(id, _) => {
                    let known = own.is_some_and(|c| c.producers.contains_key(id));
                    if !known && !new_ids.contains(&id) {
                        new_ids.push(id);
                    }
                }
                Mark::Scoped(key, _) => {
                    if st.producers.get(key).is_none() && !new_keys.contains(key) {
                        new_keys.push(key.clone());
                    }
                }
            }
        }
        let tracked = own.map_or(0, |c| c.producers.len());
        if tracked + new_ids.len() > config.max_producers_per_connection {
            return Err(BrokerError::Limit("producer ids per connection"));
        }
        if !new_keys.is_empty() {
            let keep: Vec<ProducerKey> = self
                .marks
                .iter()
                .filter_map(|m| match m {
                    Mark::Scoped(k, _) => Some(k.clone()),
                    Mark::Connection(..) => None,
                })
                .collect();
            self.forget = st
                .producers
                .victims(new_keys.len(), config.max_tracked_producers, &keep);
            self.ops
                .extend(self.forget.iter().map(|k| StoreOp::ProducerForget {
                    producer: k.clone(),
                }));
        }
        Ok(())
    }

    /// [`Broker::apply_publish`].
    fn apply(
        self,
        broker: &Broker,
        st: &mut State,
        seq: Seq,
        confirmable: bool,
    ) -> Option<Arc<Consumed>> {
        for key in &self.forget {
            st.producers.forget(key);
        }
        for (d, n) in &self.enqueued {
            st.tally.enqueued(d, *n);
        }
        for mark in self.marks {
            match mark {
                Mark::Scoped(key, s) => st.producers.mark(&key, s),
                Mark::Connection(id, s) => {
                    if let Some(c) = self.conn.and_then(|conn| st.connections.get_mut(&conn)) {
                        c.producers.entry(id).or_default().insert(s);
                    }
                }
            }
        }
        let config = broker.config();
        let visible_after = if config.concurrent_store_and_dispatch {
            0
        } else {
            seq
        };
        let pages = broker.store().pages();
        let consumed = match self.placed.as_slice() {
            // Paged, the message is not consumed before it is durable: the
            // flag is never set and its receipt waits for the record alone.
            [(ContainerKey::Queue(_), msg, _)]
                if confirmable
                    && msg.persistent
                    && seq != 0
                    && config.concurrent_store_and_dispatch
                    && config.confirm_consumed =>
            {
                Some(Arc::new(Consumed::new()))
            }
            _ => None,
        };
        // One message (a plain SEND) lands in each container at most once, so each can
        // be dispatched at once; a batch (a commit) may hit a container many times and
        // dispatches each once, after all are placed.
        let single = self.total == 1;
        let mut touched: Vec<ContainerKey> = Vec::new();
        for (key, msg, spilled) in self.placed {
            let q = match st.containers.get_mut(&key) {
                Some(q) => q,
                None => st.containers.entry(key.clone()).or_default(),
            };
            let record = if msg.persistent { seq } else { 0 };
            let entry = Entry {
                msg,
                redeliveries: 0,
                seq: visible_after,
                record,
                consumed: consumed.clone(),
            };
            Broker::place(q, &key, entry, seq, pages, spilled);
            if single {
                broker.dispatch(st, &key);
            } else if !touched.contains(&key) {
                touched.push(key);
            }
        }
        for key in touched {
            broker.dispatch(st, &key);
        }
        consumed
    }
}
