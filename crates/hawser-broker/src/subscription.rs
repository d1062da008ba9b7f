//! Subscriptions: consumers attached to queues, topics and durable
//! subscriptions, queue browsers, and the temporary destinations connections own.
//!
//! Creating or replacing a durable subscription, and deleting one, is a store
//! record; the engine changes its state only once the store took it (see
//! [`crate::state`]). Non-durable subscriptions and temporary destinations live
//! in memory only and go with their connection.

use std::sync::Arc;

use crate::access::Operation;
use crate::advisory::ConsumerAdvice;
use crate::broker::{parse_selector, Broker, SubscribeSpec};
use crate::container::ContainerKey;
use crate::destination::Destination;
use crate::error::BrokerError;
use crate::outbox::ConnectionId;
use crate::queue::{Consumer, LastDelivered};
use crate::state::{NoLocal, State, SubRef, TopicLink};
use crate::store::{DurableSubscription, Seq, StoreOp};

impl Broker {
    /// Records that `dest` (a temporary destination) belongs to `conn` and goes
    /// when it does. Refused past the per-connection limit.
    pub fn register_temporary(
        &self,
        conn: ConnectionId,
        dest: &Destination,
    ) -> Result<(), BrokerError> {
        let mut st = self.state.lock();
        let st = &mut *st;
        let c = st.connections.open_mut(conn)?;
        if c.temps.contains(dest) {
            return Ok(());
        }
        // Another connection's: it stays that connection's.
        if st.temp_owners.contains_key(dest) {
            let who = &st.connections.open(conn)?.info.principal;
            return Err(crate::authorization::refusal(who, dest, Operation::Admin));
        }
        let c = st.connections.open_mut(conn)?;
        if c.temps.len() >= self.config.max_temporary_destinations_per_connection {
            return Err(BrokerError::Limit("temporary destinations per connection"));
        }
        self.authorize(st, conn, dest, Operation::Admin)?;
        let c = st.connections.open_mut(conn)?;
        c.temps.push(dest.clone());
        st.temp_owners.insert(dest.clone(), conn);
        self.advise_temporary(st, conn, dest, true);
        Ok(())
    }

    /// Deletes a temporary destination of `conn` and whatever it held (a JMS
    /// client's `TemporaryQueue.delete()`); one it does not own is refused.
    pub fn delete_temporary_destination(
        &self,
        conn: ConnectionId,
        dest: &Destination,
    ) -> Result<(), BrokerError> {
        let mut st = self.state.lock();
        let st = &mut *st;
        let c = st.connections.open_mut(conn)?;
        let Some(pos) = c.temps.iter().position(|d| d == dest) else {
            return Err(BrokerError::UnknownTemporary(dest.to_string()));
        };
        c.temps.remove(pos);
        st.temp_owners.remove(dest);
        self.advise_temporary(st, conn, dest, false);
        self.delete_temporary(st, dest);
        Ok(())
    }

    /// Counts a browser of `queue` against the connection's subscription
    /// limit, if the connection may read it.
    pub fn open_browser(&self, conn: ConnectionId, queue: &Destination) -> Result<(), BrokerError> {
        let mut st = self.state.lock();
        if queue.kind.is_temporary() {
            self.authorize_temporary_read(&st, conn, queue)?;
        }
        self.authorize(&st, conn, queue, Operation::Read)?;
        let c = st.connections.open_mut(conn)?;
        if c.subs.len() + c.browsers >= self.config.max_subscriptions_per_connection {
            return Err(BrokerError::Limit("subscriptions per connection"));
        }
        c.browsers += 1;
        Ok(())
    }

    /// A browser of the connection was closed.
    pub fn close_browser(&self, conn: ConnectionId) {
        if let Some(c) = self.state.lock().connections.get_mut(&conn) {
            c.browsers = c.browsers.saturating_sub(1);
        }
    }

    /// Attaches a consumer. Returns the sequence of the store record to wait for
    /// before confirming (non-zero when a durable subscription was created).
    pub fn subscribe(&self, conn: ConnectionId, spec: SubscribeSpec) -> Result<Seq, BrokerError> {
        let mut st = self.state.lock();
        let st = &mut *st;
        let c = st.connections.open(conn)?;
        if c.subs.contains_key(&spec.id) {
            return Err(BrokerError::DuplicateSubscription(spec.id.to_string()));
        }
        if c.subs.len() + c.browsers >= self.config.max_subscriptions_per_connection {
            return Err(BrokerError::Limit("subscriptions per connection"));
        }
        let d = &spec.destination;
        if !d.is_topic() && (d.composite_parts().is_some() || d.is_wildcard()) {
            return Err(BrokerError::MultiQueueConsumer(
                spec.destination.to_string(),
            ));
        }
        if spec.destination.kind.is_temporary() {
            self.authorize_temporary_read(st, conn, &spec.destination)?;
        }
        self.authorize_use(st, conn, &spec.destination, Operation::Read)?;
        let c = st.connections.open(conn)?;
        let outbox = Arc::clone(&c.outbox);
        let client_id = c.info.client_id.clone();
        let user = c.info.principal.user().cloned();
        let selector = parse_selector(spec.selector.as_deref())?;
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
                owner: user,
            };
            let key = ContainerKey::durable(&client_id, &def.name);
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
            // `connect` let this connection have the client id, so no other
            // user owns its subscriptions; this holds that in one more place.
            if existing.is_some_and(|e| e.owner.is_some() && e.owner != def.owner) {
                return Err(BrokerError::ClientIdOwned(client_id.to_string()));
            }
            if existing
                .is_some_and(|e| e.selects_as(&def) && e.owner.is_none() && def.owner.is_some())
            {
                // Made before its client id had an owner (before users were
                // configured): the first user to use it again claims it,
                // and keeps its messages.
                seq = self.write(st, vec![StoreOp::Subscribe(def.clone())], true)?;
                st.durables
                    .insert((Arc::clone(&client_id), Arc::clone(&def.name)), def);
            } else if existing != Some(&def) {
                // New, or changed topic/selector: as in JMS, a changed durable
                // subscription is a new one and the old one's messages are dropped.
                let replaces = existing.is_some();
                let mut ops = Vec::new();
                if replaces {
                    ops.push(StoreOp::Unsubscribe {
                        client_id: Arc::clone(&client_id),
                        name: Arc::clone(&def.name),
                    });
                }
                ops.push(StoreOp::Subscribe(def.clone()));
                seq = self.write(st, ops, true)?;
                if replaces {
                    remove_durable(st, &client_id, &def.name);
                }
                st.topics.link(
                    &spec.destination,
                    TopicLink {
                        key: key.clone(),
                        filter: selector,
                        no_local: def
                            .no_local
                            .then(|| NoLocal::ClientId(Arc::clone(&client_id))),
                    },
                );
                st.durables
                    .insert((Arc::clone(&client_id), Arc::clone(&def.name)), def);
            }
            (key, None)
        } else {
            let key = ContainerKey::TopicSub {
                conn,
                sub: Arc::clone(&spec.id),
            };
            st.topics.link(
                &spec.destination,
                TopicLink {
                    key: key.clone(),
                    filter: selector,
                    no_local: spec.no_local.then_some(NoLocal::Connection(conn)),
                },
            );
            (key, None)
        };

        let consumer_id = st.next_consumer;
        st.next_consumer += 1;
        let advice = Arc::new(ConsumerAdvice {
            destination: spec.destination.clone(),
            selector: spec.selector.as_deref().map(Arc::from),
            priority: spec.priority,
            network_path: spec.network_path.clone(),
        });
        st.containers.entry(key.clone()).or_default().add_consumer(
            Consumer::new(
                consumer_id,
                Arc::clone(&spec.id),
                spec.ack_mode,
                spec.prefetch.min(self.config.max_prefetch),
                consumer_selector,
                spec.exclusive,
                outbox,
            )
            .with_priority(spec.priority, spec.network_path.clone()),
        );
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
                    advice: Arc::clone(&advice),
                },
            );
        if !matches!(key, ContainerKey::Queue(_)) {
            self.replay_temporaries(st, &key);
            self.replay_consumers(st, &key, &spec.destination);
            self.replay_connections(st, &key);
        }
        self.advise_consumer(st, consumer_id, &advice, true);
        self.dispatch(st, &key);
        Ok(seq)
    }

    /// Changes a subscription's window (capped at `max_prefetch`, as when it
    /// was made) and dispatches what the new window allows. A failover client
    /// restores its consumers with prefetch 0 and widens them again this way
    /// once it has dropped what it had buffered (OpenWire's ConsumerControl).
    pub fn set_prefetch(
        &self,
        conn: ConnectionId,
        subscription: &str,
        prefetch: u32,
    ) -> Result<(), BrokerError> {
        let mut st = self.state.lock();
        let st = &mut *st;
        let sub = st.connections.subscription(conn, subscription)?;
        let prefetch = prefetch.min(self.config.max_prefetch);
        if let Some(q) = st.containers.get_mut(&sub.container) {
            q.set_prefetch(sub.consumer, prefetch);
        }
        self.dispatch(st, &sub.container);
        Ok(())
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
        self.unsubscribe_after(conn, id, durable_name, LastDelivered::Unknown)
    }

    /// [`Broker::unsubscribe`], told what the consumer's client delivered
    /// to its application (OpenWire says so when a consumer, session or
    /// connection closes): what the consumer only had prefetched goes back
    /// as it was, neither marked redelivered nor counted towards the
    /// dead-letter queue.
    pub fn unsubscribe_after(
        &self,
        conn: ConnectionId,
        id: Option<&str>,
        durable_name: Option<&str>,
        last: LastDelivered,
    ) -> Result<Seq, BrokerError> {
        let mut st = self.state.lock();
        let st = &mut *st;
        let c = st.connections.open_mut(conn)?;
        let client_id = c.info.client_id.clone();
        let user = c.info.principal.user().cloned();
        let sub = id.and_then(|id| c.subs.remove(id));
        if sub.is_none() && durable_name.is_none() {
            return Err(BrokerError::UnknownSubscription(
                id.unwrap_or_default().to_owned(),
            ));
        }
        if let Some(sub) = &sub {
            self.detach_after(st, sub, last);
        }
        let Some(name) = durable_name else {
            return Ok(0);
        };
        let client_id = client_id.ok_or(BrokerError::DurableNeedsClientId)?;
        let name: Arc<str> = Arc::from(name);
        let seq = self.drop_durable(st, &client_id, &name, Some(user.as_ref()))?;
        let who = &st.connections.open(conn)?.info.principal;
        tracing::info!(
            target: "audit",
            user = crate::authorization::user_name(who),
            "deletes durable subscription {name:?} of client id {client_id:?}"
        );
        Ok(seq)
    }

    /// Deletes durable subscription `name` of `client_id` and its messages,
    /// unless a subscriber is attached; with `user`, only if that user (or
    /// nobody) owns it (an operator names none).
    pub(crate) fn drop_durable(
        &self,
        st: &mut State,
        client_id: &Arc<str>,
        name: &Arc<str>,
        user: Option<Option<&Arc<str>>>,
    ) -> Result<Seq, BrokerError> {
        let key = ContainerKey::durable(client_id, name);
        if st
            .containers
            .get(&key)
            .is_some_and(|q| q.consumer_count() > 0)
        {
            return Err(BrokerError::DurableActive(name.to_string()));
        }
        match st.durables.get(&(Arc::clone(client_id), Arc::clone(name))) {
            None => return Err(BrokerError::UnknownSubscription(name.to_string())),
            // As in `subscribe`: `connect` already refused anyone else.
            Some(d) if user.is_some_and(|u| d.owner.is_some() && d.owner.as_ref() != u) => {
                return Err(BrokerError::ClientIdOwned(client_id.to_string()))
            }
            Some(_) => {}
        }
        let ops = vec![StoreOp::Unsubscribe {
            client_id: Arc::clone(client_id),
            name: Arc::clone(name),
        }];
        let seq = self.write(st, ops, true)?;
        remove_durable(st, client_id, name);
        Ok(seq)
    }

    /// Removes a subscription's consumer and returns what it held to the
    /// queue (a non-durable topic subscription disappears with its
    /// messages): what its client delivered (`last`) is redelivered; what it
    /// only had prefetched goes back in front of the queue as it was, after it.
    pub(crate) fn detach_after(&self, st: &mut State, sub: &SubRef, last: LastDelivered) {
        st.consumers.remove(&sub.consumer);
        self.advise_consumer(st, sub.consumer, &sub.advice, false);
        let Some(q) = st.containers.get_mut(&sub.container) else {
            return;
        };
        let held = q.remove_consumer_after(sub.consumer, last);
        if let ContainerKey::TopicSub { .. } = sub.container {
            st.containers.remove(&sub.container);
            st.topics.unlink(&sub.container);
            return;
        }
        q.requeue_front(held.unseen);
        if held.delivered.is_empty() {
            self.dispatch(st, &sub.container);
        } else {
            self.redeliver(st, &sub.container, held.delivered);
        }
    }

    /// Drops a temporary destination and whatever it held.
    pub(crate) fn delete_temporary(&self, st: &mut State, dest: &Destination) {
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
}

/// Deletes a durable subscription and its messages from memory (the caller wrote
/// the record that says so).
pub(crate) fn remove_durable(st: &mut State, client_id: &Arc<str>, name: &Arc<str>) {
    let key = ContainerKey::durable(client_id, name);
    st.durables
        .remove(&(Arc::clone(client_id), Arc::clone(name)));
    st.containers.remove(&key);
    st.topics.unlink(&key);
}
