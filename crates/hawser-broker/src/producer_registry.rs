//! The producers clients announce (OpenWire's `ProducerInfo`; STOMP has
//! none): counted per destination for monitoring, and announced on
//! ActiveMQ's producer advisory topics, `ActiveMQ.Advisory.Producer.Queue.<name>`
//! and `.Topic.<name>`, with `producerCount` after the change, as ActiveMQ's.
//! A producer without a destination (an anonymous one, which names it per
//! message) is neither counted nor announced (ActiveMQ's default,
//! `anonymousProducerAdvisorySupport=false`).
//!
//! A connection holds at most `max_producers_per_connection`; its producers
//! go with it.

use std::sync::Arc;

use bytes::Bytes;

use crate::advisory::ADVISORY_ADDED;
use crate::advisory_events::message_advisory_topic;
use crate::broker::Broker;
use crate::destination::Destination;
use crate::error::BrokerError;
use crate::message::{BodyKind, NewMessage};
use crate::outbox::ConnectionId;
use crate::property::PropertyValue;
use crate::state::State;

/// Where producers are announced, before the kind and name.
pub const PRODUCER_ADVISORY_PREFIX: &str = "ActiveMQ.Advisory.Producer.";
/// The property with the producer's id (the client's).
pub const ADVISORY_PRODUCER: &str = "hawser.advisory.producer";
/// The property with the producers of the destination after the change
/// (ActiveMQ's name).
pub const PRODUCER_COUNT: &str = "producerCount";

impl Broker {
    /// Connection `conn` announced producer `id`, sending to `destination`
    /// (`None`: anonymous). Refused past `max_producers_per_connection`.
    pub fn add_producer(
        &self,
        conn: ConnectionId,
        id: &str,
        destination: Option<Destination>,
    ) -> Result<(), BrokerError> {
        let mut guard = self.state.lock();
        let st = &mut *guard;
        // As ActiveMQ: a producer for a destination needs write on it.
        if let Some(d) = &destination {
            self.authorize_use(st, conn, d, crate::access::Operation::Write)?;
        }
        let limit = self.config().max_producers_per_connection;
        let c = st.connections.open_mut(conn)?;
        if c.live_producers.contains_key(id) {
            return Ok(());
        }
        if c.live_producers.len() >= limit {
            return Err(BrokerError::Limit("producers per connection"));
        }
        c.live_producers.insert(Arc::from(id), destination.clone());
        // A composite or pattern is counted and announced per name it stands for.
        for d in destination.iter().flat_map(counted_names) {
            *st.producer_counts.entry(d.clone()).or_default() += 1;
            self.advise_producer(st, id, &d, true);
        }
        Ok(())
    }

    /// Connection `conn` closed its producer `id` (unknown ids are ignored).
    pub fn remove_producer(&self, conn: ConnectionId, id: &str) {
        let mut guard = self.state.lock();
        let st = &mut *guard;
        let Ok(c) = st.connections.open_mut(conn) else {
            return;
        };
        if let Some(Some(d)) = c.live_producers.remove(id) {
            for d in counted_names(&d) {
                forget_one(st, &d);
                self.advise_producer(st, id, &d, false);
            }
        }
    }

    /// A closing connection's producers (see `disconnect`).
    pub(crate) fn remove_producers_of(&self, st: &mut State, conn: ConnectionId) {
        let Some(c) = st.connections.get_mut(&conn) else {
            return;
        };
        let gone: Vec<(Arc<str>, Option<Destination>)> = c.live_producers.drain().collect();
        for (id, d) in gone {
            for d in d.iter().flat_map(counted_names) {
                forget_one(st, &d);
                self.advise_producer(st, &id, &d, false);
            }
        }
    }

    /// Producers announced per destination now.
    pub(crate) fn producer_count(st: &State, d: &Destination) -> usize {
        st.producer_counts.get(d).copied().unwrap_or(0)
    }

    fn advise_producer(&self, st: &mut State, id: &str, d: &Destination, added: bool) {
        let Some(topic) = message_advisory_topic(PRODUCER_ADVISORY_PREFIX, d) else {
            return;
        };
        // Nearly always nobody listens: then nothing is built.
        if st.topics.matching(&topic).next().is_none() {
            return;
        }
        let count = Broker::producer_count(st, d);
        let mut m = NewMessage::new(topic, Bytes::new());
        m.body_kind = BodyKind::Empty;
        m.fields.properties = vec![
            (Arc::from(ADVISORY_ADDED), PropertyValue::Bool(added)),
            (
                Arc::from(ADVISORY_PRODUCER),
                PropertyValue::String(Arc::from(id)),
            ),
            (
                Arc::from(crate::advisory::ADVISORY_DESTINATION),
                PropertyValue::String(Arc::from(d.to_string())),
            ),
            (
                Arc::from(PRODUCER_COUNT),
                PropertyValue::Int(i32::try_from(count).unwrap_or(i32::MAX)),
            ),
        ];
        self.publish_advisory(st, m);
    }
}

/// The names a producer's destination is counted under: each part of a
/// composite; none for a pattern (it names no destination to send to).
fn counted_names(d: &Destination) -> Vec<Destination> {
    d.composite_parts()
        .unwrap_or_else(|| vec![d.clone()])
        .into_iter()
        .filter(|p| !p.is_wildcard())
        .collect()
}

/// One producer of `d` fewer; the entry goes at 0.
fn forget_one(st: &mut State, d: &Destination) {
    if let Some(n) = st.producer_counts.get_mut(d) {
        *n -= 1;
        if *n == 0 {
            st.producer_counts.remove(d);
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::identity::ConnectInfo;
    use crate::outbox::test_support::Recorder;
    use crate::test_support::{spec, RecordingStore};
    use crate::*;

    fn property(d: &Delivery, name: &str) -> Option<PropertyValue> {
        crate::property::property(&d.message.fields.properties, name).cloned()
    }

    #[test]
    fn producers_are_counted_announced_and_go_with_their_connection() {
        let config = BrokerConfig {
            max_producers_per_connection: 2,
            ..BrokerConfig::default()
        };
        let b = Broker::new(config, RecordingStore::new(), Recovered::default());
        let q = Destination::queue("orders");
        let watcher = Recorder::new();
        let w = b
            .connect(ConnectInfo::in_process(None), watcher.clone())
            .unwrap();
        let topic = Destination::topic("ActiveMQ.Advisory.Producer.Queue.orders");
        b.subscribe(w, spec("adv", topic, AckMode::Auto)).unwrap();

        let c = b
            .connect(ConnectInfo::in_process(None), Recorder::new())
            .unwrap();
        b.add_producer(c, "p1", Some(q.clone())).unwrap();
        b.add_producer(c, "p2", Some(q.clone())).unwrap();
        assert!(matches!(
            b.add_producer(c, "p3", None),
            Err(BrokerError::Limit("producers per connection"))
        ));
        b.expire();
        let sample = b.metrics().sample();
        assert_eq!(sample.destinations[&q].gauges.producers, 2);

        b.remove_producer(c, "p1");
        b.disconnect(c);
        b.expire();
        let sample = b.metrics().sample();
        assert_eq!(sample.destinations[&q].gauges.producers, 0);

        let seen: Vec<(Option<PropertyValue>, Option<PropertyValue>)> = watcher
            .take()
            .iter()
            .map(|d| {
                (
                    property(d, "hawser.advisory.added"),
                    property(d, "producerCount"),
                )
            })
            .collect();
        use PropertyValue::{Bool, Int};
        assert_eq!(
            seen,
            vec![
                (Some(Bool(true)), Some(Int(1))),
                (Some(Bool(true)), Some(Int(2))),
                (Some(Bool(false)), Some(Int(1))),
                (Some(Bool(false)), Some(Int(0))),
            ]
        );
    }
}
