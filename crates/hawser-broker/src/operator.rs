//! What an operator asks of the engine (the admin API, the console, the
//! `hawser` commands): create, purge and delete destinations, move and copy
//! messages, retry the dead-letter queue, close connections, and the lists
//! they are chosen from.
//!
//! Each change keeps the lock invariant (see `state`): its store record is
//! accepted before memory changes, and the caller gets the record to wait
//! for, so that the operator's answer means the change is durable. The
//! caller writes the audit line: it knows who asked.

use std::sync::Arc;

use crate::broker::{dequeue_ops, Broker};
use crate::container::ContainerKey;
use crate::destination::Destination;
use crate::error::BrokerError;
use crate::identity::ConnectInfo;
use crate::message::{Message, MessageData, MessageId};
use crate::outbox::ConnectionId;
use crate::queue::{Entry, MessageQueue};
use crate::redelivery::DLQ_CAUSE_PROPERTY;
use crate::state::State;
use crate::store::{Seq, StoreKey, StoreOp};

/// Queues an operator may have made and not deleted (see
/// [`Broker::create_destination`]): each is kept while idle.
pub const MAX_DECLARED_QUEUES: usize = 10_000;

/// Messages moved per store record by [`Broker::retry_dead_letters`]: a
/// record stays far below any store's size limit, and each is atomic.
pub const RETRY_BATCH: usize = 100;

/// A connection as an operator sees it.
#[derive(Clone, Debug)]
pub struct ConnectionView {
    /// The engine's id for it (what [`Broker::close_connection`] takes).
    pub id: ConnectionId,
    /// Who it is and where from.
    pub info: ConnectInfo,
    /// Its consumers.
    pub subscriptions: usize,
    /// Its open transactions.
    pub transactions: usize,
    /// Its temporary destinations.
    pub temporaries: usize,
}

/// A subscription as an operator sees it: a consumer of a connection, or a
/// durable subscription without one.
#[derive(Clone, Debug)]
pub struct SubscriptionView {
    /// The connection it is attached to; `None` for an inactive durable one.
    pub connection: Option<ConnectionId>,
    /// The connection's (or the durable subscription's) client id.
    pub client_id: Option<Arc<str>>,
    /// The protocol's subscription id on its connection.
    pub id: Option<Arc<str>>,
    /// What it consumes from.
    pub destination: Destination,
    /// A durable subscription's name.
    pub durable_name: Option<Arc<str>>,
    /// Its selector.
    pub selector: Option<Arc<str>>,
    /// Messages waiting for it: its container's (shared by every consumer
    /// of a queue).
    pub pending: u64,
    /// Messages delivered to it and not yet settled.
    pub inflight: u64,
    /// Messages delivered to it so far (0 for an offline durable one).
    pub dispatched: u64,
    /// Messages that entered its container since the broker started (a
    /// queue's consumers share their queue's).
    pub enqueued: u64,
    /// Of those, the ones that left it: consumed, expired, dead-lettered
    /// or purged.
    pub dequeued: u64,
    /// A network link's consumer.
    pub network: bool,
}

/// What moving messages did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Moved {
    /// Messages moved (or copied).
    pub messages: u64,
    /// Messages left where they were (retry: no queue to return to).
    pub left: u64,
    /// The last store record written (0: none); durable once the store's
    /// watermark passes it.
    pub seq: Seq,
}

impl Broker {
    /// Makes queue `dest` exist now, before anyone uses it (ActiveMQ's
    /// `addQueue`); a topic needs nothing. It lasts while the broker runs
    /// or while it holds messages: queues are known by their messages, so
    /// an empty one is not remembered across a restart.
    pub fn create_destination(&self, dest: &Destination) -> Result<(), BrokerError> {
        let mut st = self.state.lock();
        if !dest.is_topic() {
            if !st.declared.contains(dest) && st.declared.len() >= MAX_DECLARED_QUEUES {
                return Err(BrokerError::Limit("queues created by an operator"));
            }
            st.containers
                .entry(ContainerKey::Queue(dest.clone()))
                .or_default();
            st.declared.insert(dest.clone());
        }
        Ok(())
    }

    /// Drops every message waiting in queue `dest`, in memory and in the
    /// store; those delivered and not yet acknowledged stay, and settle as
    /// usual (ActiveMQ's `purge`). Returns how many went, and the record.
    pub fn purge(&self, dest: &Destination) -> Result<(u64, Seq), BrokerError> {
        if dest.is_topic() {
            return Err(BrokerError::NotAQueue(dest.to_string()));
        }
        let mut guard = self.state.lock();
        let st = &mut *guard;
        self.purge_locked(st, dest)
    }

    fn purge_locked(&self, st: &mut State, dest: &Destination) -> Result<(u64, Seq), BrokerError> {
        let key = ContainerKey::Queue(dest.clone());
        let Some(q) = st.containers.get(&key) else {
            return Err(BrokerError::UnknownDestination(dest.to_string()));
        };
        let keep = q.inflight_ids();
        let seq = match key.store_key() {
            Some(skey) => self.write(st, vec![StoreOp::Purge { key: skey, keep }], true)?,
            None => 0,
        };
        let last_id = st.next_message_id.saturating_sub(1);
        let q = st.containers.get_mut(&key).expect("looked up above");
        let (entries, paged) = q.purge(last_id);
        let purged = entries.len() as u64 + paged;
        drop(entries);
        st.tally.removed(dest, purged);
        self.destination_usage(dest).set_spilling(false);
        Ok((purged, seq))
    }

    /// Deletes destination `dest` and every message it holds (ActiveMQ's
    /// `removeQueue`/`removeTopic`). Refused while it has consumers (or a
    /// topic, durable subscriptions): they would be cut off unasked.
    pub fn delete_destination(&self, dest: &Destination) -> Result<Seq, BrokerError> {
        let mut guard = self.state.lock();
        let st = &mut *guard;
        if dest.is_topic() {
            if st.topics.subscribed().any(|(d, _)| d == dest) {
                return Err(BrokerError::DestinationInUse(dest.to_string()));
            }
            st.tally.forget(dest);
            self.metrics().forget(dest);
            return Ok(0);
        }
        let key = ContainerKey::Queue(dest.clone());
        let Some(q) = st.containers.get(&key) else {
            return Err(BrokerError::UnknownDestination(dest.to_string()));
        };
        if q.consumer_count() > 0 || q.inflight_len() > 0 {
            return Err(BrokerError::DestinationInUse(dest.to_string()));
        }
        let (_, seq) = self.purge_locked(st, dest)?;
        st.containers.remove(&key);
        st.declared.remove(dest);
        st.tally.forget(dest);
        self.metrics().forget(dest);
        Ok(seq)
    }

    /// Moves (or with `copy`, copies) message `id` waiting in queue `from`
    /// to queue `to`, atomically in the store (ActiveMQ's `moveMessageTo`,
    /// `copyMessageTo`). Only a message waiting in memory can be taken: one
    /// out with a consumer is refused (it may be acknowledged any moment).
    pub fn move_message(
        &self,
        from: &Destination,
        id: MessageId,
        to: &Destination,
        copy: bool,
    ) -> Result<Moved, BrokerError> {
        if from.is_topic() || to.is_topic() {
            return Err(BrokerError::NotAQueue(
                if from.is_topic() { from } else { to }.to_string(),
            ));
        }
        let mut guard = self.state.lock();
        let st = &mut *guard;
        let key = ContainerKey::Queue(from.clone());
        let q = st
            .containers
            .get_mut(&key)
            .ok_or_else(|| BrokerError::UnknownDestination(from.to_string()))?;
        let entry = if copy {
            q.browse().find(|e| e.msg.id == id).cloned()
        } else {
            q.take_pending(id)
        };
        let Some(entry) = entry else {
            return Err(BrokerError::NotMovable(id));
        };
        let taken = if copy {
            Vec::new()
        } else {
            vec![entry.clone()]
        };
        let seq = self
            .relocate(st, &key, &taken, vec![entry], to, |_| {})
            .inspect_err(|_| {
                if let Some(q) = st.containers.get_mut(&key) {
                    q.requeue_front(taken.clone());
                }
            })?;
        if !copy {
            st.tally.dequeued(from);
        }
        Ok(Moved {
            messages: 1,
            left: 0,
            seq,
        })
    }

    /// Sends the messages waiting in dead-letter queue `dlq` (in memory)
    /// back to the queues they died in (ActiveMQ's `retryMessages`), a
    /// store record per [`RETRY_BATCH`]; those that died in a topic or a
    /// temporary queue, or came from nowhere else, stay, and are counted in
    /// `left` with those paged out. If a record fails, what it and the
    /// records after it would have moved goes back, and the error returns.
    pub fn retry_dead_letters(&self, dlq: &Destination) -> Result<Moved, BrokerError> {
        if dlq.is_topic() {
            return Err(BrokerError::NotAQueue(dlq.to_string()));
        }
        let mut guard = self.state.lock();
        let st = &mut *guard;
        let key = ContainerKey::Queue(dlq.clone());
        let q = st
            .containers
            .get_mut(&key)
            .ok_or_else(|| BrokerError::UnknownDestination(dlq.to_string()))?;
        // What can go back (to a queue that is not this one, nor temporary),
        // taken out in one pass; the rest stays, and so do those paged out
        // (a retry sees what is in memory; the next one sees more).
        let retryable = |e: &Entry| {
            matches!(&e.msg.fields.original_destination,
                Some(d) if d.kind == crate::destination::DestinationKind::Queue && d != dlq)
        };
        let taken = q.take_pending_where(retryable);
        let mut out = Moved {
            left: q.pending_len() as u64 + q.paged_len(),
            ..Moved::default()
        };
        // Grouped by where each goes, in the order they waited.
        let mut groups: Vec<(Destination, Vec<Entry>)> = Vec::new();
        for e in taken {
            let to = e
                .msg
                .fields
                .original_destination
                .clone()
                .expect("retryable");
            match groups.iter_mut().find(|(g, _)| *g == to) {
                Some((_, entries)) => entries.push(e),
                None => groups.push((to, vec![e])),
            }
        }
        let mut groups = groups.into_iter();
        while let Some((to, entries)) = groups.next() {
            let mut entries = entries.into_iter();
            loop {
                let chunk: Vec<Entry> = entries.by_ref().take(RETRY_BATCH).collect();
                if chunk.is_empty() {
                    break;
                }
                let n = chunk.len() as u64;
                let moved = self.relocate(st, &key, &chunk, chunk.clone(), &to, |data| {
                    data.fields
                        .properties
                        .retain(|(k, _)| &**k != DLQ_CAUSE_PROPERTY);
                });
                match moved {
                    Ok(seq) => {
                        st.tally.removed(dlq, n);
                        out.messages += n;
                        out.seq = out.seq.max(seq);
                    }
                    Err(e) => {
                        // What was not moved goes back, in its order.
                        let mut back = chunk;
                        back.extend(entries);
                        for (_, rest) in groups {
                            back.extend(rest);
                        }
                        if let Some(q) = st.containers.get_mut(&key) {
                            q.requeue_front(back);
                        }
                        return Err(e);
                    }
                }
            }
        }
        Ok(out)
    }

    /// Writes copies of `entries` into queue `to` (new ids, `edit` applied,
    /// their redelivery counts reset) and dequeues `taken` from `from`, in
    /// one store record; then places the copies. The dead-letter queue,
    /// moves and retries all come through here. On `Err`, nothing changed
    /// (the caller gives `taken` back). The caller counts what left `from`:
    /// dead-lettered, or (a move) dequeued.
    pub(crate) fn relocate(
        &self,
        st: &mut State,
        from: &ContainerKey,
        taken: &[Entry],
        entries: Vec<Entry>,
        to: &Destination,
        edit: impl Fn(&mut MessageData),
    ) -> Result<Seq, BrokerError> {
        let mut ops = dequeue_ops(from, taken);
        let usage = self.destination_usage(to);
        let first_id = st.next_message_id;
        let mut moved = Vec::with_capacity(entries.len());
        for (i, e) in entries.iter().enumerate() {
            let mut data = MessageData::clone(&e.msg);
            data.id = first_id + i as u64;
            data.destination = to.clone();
            // The JMS message id stays (as in ActiveMQ); one from a protocol
            // without ids is the broker's id of the original.
            if data.fields.message_id.is_none() {
                data.fields.message_id = Some(Arc::from(format!("ID:hawser-{}", e.msg.id)));
            }
            data.fields.original_destination = Some(e.msg.destination.clone());
            edit(&mut data);
            let msg = Arc::new(Message::charged(data, self.memory(), Some(&usage)));
            if msg.persistent {
                ops.push(StoreOp::Enqueue {
                    message: Arc::clone(&msg),
                    targets: vec![StoreKey::Queue(Arc::clone(&to.name))],
                });
            }
            moved.push(msg);
        }
        let seq = if ops.is_empty() {
            0
        } else {
            self.write(st, ops, false)?
        };
        st.next_message_id = first_id + moved.len() as u64;
        st.tally.enqueued(to, moved.len() as u64);
        let to_key = ContainerKey::Queue(to.clone());
        let pages = self.store().pages();
        let q = st.containers.entry(to_key.clone()).or_default();
        for msg in moved {
            let entry = Entry {
                msg,
                redeliveries: 0,
                seq,
                record: seq,
                consumed: None,
            };
            Broker::place(q, &to_key, entry, seq, pages, false);
        }
        self.dispatch(st, &to_key);
        Ok(seq)
    }

    /// Deletes durable subscription `name` of `client_id` and its messages,
    /// as an operator (ActiveMQ's console "delete" of an offline durable
    /// subscriber): refused while a subscriber is attached.
    pub fn destroy_durable(&self, client_id: &str, name: &str) -> Result<Seq, BrokerError> {
        let mut guard = self.state.lock();
        let st = &mut *guard;
        let (client_id, name): (Arc<str>, Arc<str>) = (Arc::from(client_id), Arc::from(name));
        self.drop_durable(st, &client_id, &name, None)
    }

    /// The open connections, by id.
    pub fn connections(&self) -> Vec<ConnectionView> {
        let st = self.state.lock();
        let mut out: Vec<ConnectionView> = st
            .connections
            .iter()
            .map(|(&id, c)| ConnectionView {
                id,
                info: c.info.clone(),
                subscriptions: c.subs.len(),
                transactions: c.txs.len(),
                temporaries: c.temps.len(),
            })
            .collect();
        out.sort_by_key(|c| c.id);
        out
    }

    /// Asks connection `id` to close, telling its client `reason` (the
    /// protocol's error), as ActiveMQ's console's "close connection". What
    /// it held goes back as at any disconnect, once its session ends.
    /// `false` if there is no such connection, or it cannot be closed so
    /// (a network link's: stop its connector instead).
    pub fn close_connection(&self, id: ConnectionId, reason: &str) -> bool {
        let st = self.state.lock();
        st.connections
            .get(&id)
            .is_some_and(|c| c.outbox.close(reason))
    }

    /// Every subscription: each connection's consumers, then the durable
    /// subscriptions nobody is attached to.
    pub fn subscriptions(&self) -> Vec<SubscriptionView> {
        let st = self.state.lock();
        let mut out = Vec::new();
        let mut ids: Vec<&ConnectionId> = st.connections.keys().collect();
        ids.sort();
        for conn in ids {
            let c = &st.connections[conn];
            let mut subs: Vec<_> = c.subs.iter().collect();
            subs.sort_by(|a, b| a.0.cmp(b.0));
            for (sub_id, sub) in subs {
                let q = st.containers.get(&sub.container);
                let durable_name = match &sub.container {
                    ContainerKey::Durable { name, .. } => Some(Arc::clone(name)),
                    _ => None,
                };
                out.push(SubscriptionView {
                    connection: Some(*conn),
                    client_id: c.info.client_id.clone(),
                    id: Some(Arc::clone(sub_id)),
                    destination: sub.advice.destination.clone(),
                    durable_name,
                    selector: sub.advice.selector.clone(),
                    pending: q.map_or(0, |q| q.pending_len() as u64 + q.paged_len()),
                    inflight: q.map_or(0, |q| q.held_by(sub.consumer) as u64),
                    dispatched: q.map_or(0, |q| q.dispatched_to(sub.consumer)),
                    enqueued: q.map_or(0, MessageQueue::entered),
                    dequeued: q.map_or(0, left),
                    network: sub.advice.network_path.is_some(),
                });
            }
        }
        for ((client_id, name), d) in &st.durables {
            let key = ContainerKey::Durable {
                client_id: Arc::clone(client_id),
                name: Arc::clone(name),
            };
            let q = st.containers.get(&key);
            if q.is_some_and(|q| q.consumer_count() > 0) {
                continue;
            }
            out.push(SubscriptionView {
                connection: None,
                client_id: Some(Arc::clone(client_id)),
                id: None,
                destination: Destination::topic(&d.topic),
                durable_name: Some(Arc::clone(name)),
                selector: d.selector.as_deref().map(Arc::from),
                pending: q.map_or(0, |q| q.pending_len() as u64 + q.paged_len()),
                inflight: q.map_or(0, |q| q.inflight_len() as u64),
                dispatched: 0,
                enqueued: q.map_or(0, MessageQueue::entered),
                dequeued: q.map_or(0, left),
                network: false,
            });
        }
        out
    }
}

/// Messages that left a container: what entered, less what waits or is out.
fn left(q: &MessageQueue) -> u64 {
    q.entered()
        .saturating_sub(q.pending_len() as u64 + q.paged_len() + q.inflight_len() as u64)
}
