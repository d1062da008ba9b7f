//! ActiveMQ's advisory topics for temporary destinations.
//!
//! ActiveMQ's Java client keeps a list of the temporary destinations that
//! exist, from the messages its broker publishes on `ActiveMQ.Advisory.TempQueue`
//! and `ActiveMQ.Advisory.TempTopic`, and refuses to send to one it has not
//! heard of: a reply to another connection's temporary queue (request/reply)
//! works only if the broker tells. The engine publishes one message there per
//! temporary destination created or deleted: no body, type `Advisory`, and
//! what happened in properties; each protocol renders it its own way
//! (OpenWire as the DestinationInfo Java expects).

use std::sync::Arc;

use bytes::Bytes;

use crate::broker::Broker;
use crate::container::ContainerKey;
use crate::destination::Destination;
use crate::message::{BodyKind, Message, MessageData, NewMessage};
use crate::outbox::ConnectionId;
use crate::property::PropertyValue;
use crate::publish::Publisher;
use crate::queue::Entry;
use crate::state::State;

/// Where temporary queues are announced.
pub const TEMP_QUEUE_ADVISORY: &str = "ActiveMQ.Advisory.TempQueue";
/// Where temporary topics are announced.
pub const TEMP_TOPIC_ADVISORY: &str = "ActiveMQ.Advisory.TempTopic";
/// The type of advisory messages (`JMSType`).
pub const ADVISORY_TYPE: &str = "Advisory";
/// The property naming the temporary destination an advisory is about (its
/// engine form, e.g. `temp-queue://name`).
pub const ADVISORY_DESTINATION: &str = "hawser.advisory.destination";
/// The property saying whether it was created (`true`) or deleted (`false`).
pub const ADVISORY_ADDED: &str = "hawser.advisory.added";

/// What an advisory message says: which temporary destination, and whether it
/// was added.
pub fn read_advisory(fields: &crate::message::MessageFields) -> Option<(Destination, bool)> {
    if fields.message_type.as_deref() != Some(ADVISORY_TYPE) {
        return None;
    }
    let dest = match crate::property::property(&fields.properties, ADVISORY_DESTINATION)? {
        PropertyValue::String(s) => parse_temporary(s)?,
        _ => return None,
    };
    let added = matches!(
        crate::property::property(&fields.properties, ADVISORY_ADDED),
        Some(PropertyValue::Bool(true))
    );
    Some((dest, added))
}

/// A temporary destination from its engine form.
fn parse_temporary(text: &str) -> Option<Destination> {
    use crate::destination::DestinationKind;
    let (kind, name) = if let Some(n) = text.strip_prefix("temp-queue://") {
        (DestinationKind::TempQueue, n)
    } else {
        (
            DestinationKind::TempTopic,
            text.strip_prefix("temp-topic://")?,
        )
    };
    Destination::new(kind, name).ok()
}

impl Broker {
    /// Announces that `dest` was created or deleted by `conn` (still open).
    /// Advisories are not persistent: a failure to publish one is logged, and
    /// what it announced has happened anyway.
    pub(crate) fn advise_temporary(
        &self,
        st: &mut State,
        conn: ConnectionId,
        dest: &Destination,
        added: bool,
    ) {
        let m = advisory(dest, added);
        let published = Publisher::of(st, conn)
            .and_then(|from| self.plan_publish(st, &from, vec![m], Vec::new(), None))
            .and_then(|mut plan| {
                let seq = self.write_plan(st, &mut plan)?;
                self.apply_publish(st, plan, seq, false);
                Ok(())
            });
        if let Err(e) = published {
            tracing::warn!("advisory for {dest} not published: {e}");
        }
    }

    /// Tells a new subscription (container `key`, linked already) of the
    /// temporary destinations that exist, if it subscribed to their advisory
    /// topic (by name, pattern or composite), as ActiveMQ does: a client that
    /// connects after a temporary queue was made may still reply to it. Only
    /// this subscription gets them; at most [`MAX_ADVISORY_REPLAY`].
    pub(crate) fn replay_temporaries(&self, st: &mut State, key: &ContainerKey) {
        let covers = |topic: &'static str| {
            let topic = Destination::topic(topic);
            let covered = st.topics.matching(&topic).any(|l| &l.key == key);
            covered
        };
        let (queues, topics) = (covers(TEMP_QUEUE_ADVISORY), covers(TEMP_TOPIC_ADVISORY));
        if !queues && !topics {
            return;
        }
        let mut existing: Vec<Destination> = st
            .temp_owners
            .keys()
            .filter(|d| if d.is_topic() { topics } else { queues })
            .cloned()
            .collect();
        if existing.len() > MAX_ADVISORY_REPLAY {
            tracing::warn!(
                "{} temporary destinations exist; a new advisory subscriber is told of {MAX_ADVISORY_REPLAY}",
                existing.len()
            );
        }
        existing.sort();
        existing.truncate(MAX_ADVISORY_REPLAY);
        let now = crate::broker::now_ms();
        for dest in existing {
            let id = st.next_message_id;
            st.next_message_id += 1;
            let data = MessageData::accept(id, advisory(&dest, true), now);
            let entry = Entry {
                msg: Arc::new(Message::new(data, self.memory())),
                redeliveries: 0,
                seq: 0,
                consumed: None,
            };
            if let Some(q) = st.containers.get_mut(key) {
                q.enqueue(entry);
            }
        }
        self.dispatch(st, key);
    }
}

/// The most temporary destinations a new advisory subscriber is told of.
pub const MAX_ADVISORY_REPLAY: usize = 10_000;

/// The advisory message saying `dest` was created (`added`) or deleted.
fn advisory(dest: &Destination, added: bool) -> NewMessage {
    let topic = if dest.is_topic() {
        TEMP_TOPIC_ADVISORY
    } else {
        TEMP_QUEUE_ADVISORY
    };
    let mut m = NewMessage::new(Destination::topic(topic), Bytes::new());
    m.body_kind = BodyKind::Empty;
    m.fields.message_type = Some(Arc::from(ADVISORY_TYPE));
    m.fields.properties = vec![
        (
            Arc::from(ADVISORY_DESTINATION),
            PropertyValue::String(Arc::from(dest.to_string())),
        ),
        (Arc::from(ADVISORY_ADDED), PropertyValue::Bool(added)),
    ];
    m
}
