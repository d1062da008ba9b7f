//! ActiveMQ's advisory topics for what happens to connections and messages:
//! `ActiveMQ.Advisory.Connection` (a connection opened or closed),
//! `ActiveMQ.Advisory.Expired.Queue.<name>` (and `.Topic.`) and
//! `ActiveMQ.Advisory.MessageDLQd.Queue.<name>` (and `.Topic.`, `.TempQueue.`,
//! `.TempTopic.`). Like ActiveMQ's, they are always on, not persistent, of
//! type `Advisory`, published by the broker itself, and say which broker in
//! `originBrokerName`. A message advisory is a copy of the message without
//! its body (ActiveMQ's default, `includeBodyForAdvisory=false`), with the
//! original's JMS message id in `orignalMessageId` (ActiveMQ's spelling).
//!
//! Who may read them is what `[[authorization]]` says of those topics by
//! name: with authorization on, nobody not named in an entry that matches
//! `ActiveMQ.Advisory.>` reads them.
//!
//! Nothing is built while nobody subscribes (the usual case). A new
//! subscriber of the connection advisories is told of the connections open
//! (as ActiveMQ does), at most [`MAX_ADVISORY_REPLAY`].

use std::sync::Arc;

use bytes::Bytes;

use crate::advisory::{ADVISORY_ADDED, ADVISORY_TYPE, MAX_ADVISORY_REPLAY};
use crate::broker::Broker;
use crate::container::ContainerKey;
use crate::destination::{Destination, DestinationKind};
use crate::identity::ConnectInfo;
use crate::message::{BodyKind, Message, NewMessage};
use crate::outbox::ConnectionId;
use crate::property::PropertyValue;
use crate::publish::Publisher;
use crate::state::State;

/// Where connections are announced.
pub const CONNECTION_ADVISORY: &str = "ActiveMQ.Advisory.Connection";
/// Where expired messages are announced, before the kind and name.
pub const EXPIRED_ADVISORY_PREFIX: &str = "ActiveMQ.Advisory.Expired.";
/// Where dead-lettered messages are announced, before the kind and name.
pub const DLQ_ADVISORY_PREFIX: &str = "ActiveMQ.Advisory.MessageDLQd.";
/// The property naming the broker that announces (ActiveMQ's name).
pub const ORIGIN_BROKER_NAME: &str = "originBrokerName";
/// The property with a message advisory's original JMS message id
/// (ActiveMQ's name, misspelt as there).
pub const ORIGINAL_MESSAGE_ID: &str = "orignalMessageId";
/// The property with the connection's id (unique within this broker's run).
pub const ADVISORY_CONNECTION: &str = "hawser.advisory.connection";
/// The property with the connection's client id, if it gave one.
pub const ADVISORY_CLIENT_ID: &str = "hawser.advisory.clientId";
/// The property with the connection's user, if it authenticated.
pub const ADVISORY_USER: &str = "hawser.advisory.user";
/// The property with where the connection comes from.
pub const ADVISORY_REMOTE: &str = "hawser.advisory.remote";
/// The property with the connection's protocol.
pub const ADVISORY_PROTOCOL: &str = "hawser.advisory.protocol";

/// The topic a message event about `d` is announced on (`prefix` and the
/// kind and name, ActiveMQ's form); `None` for advisory topics themselves,
/// and for a composite or wildcard name: its text would make the advisory's
/// own name a composite or pattern, and so publish elsewhere.
pub fn message_advisory_topic(prefix: &str, d: &Destination) -> Option<Destination> {
    if d.name.starts_with("ActiveMQ.Advisory.") || d.composite_parts().is_some() || d.is_wildcard()
    {
        return None;
    }
    let kind = crate::advisory::advisory_kind(d.kind);
    Destination::new(
        DestinationKind::Topic,
        &format!("{prefix}{kind}.{}", d.name),
    )
    .ok()
}

fn text(s: &str) -> PropertyValue {
    PropertyValue::String(Arc::from(s))
}

impl Broker {
    /// Publishes advisory `m` (if anybody listens to its topic); an
    /// advisory is not persistent, and one that fails is logged.
    pub(crate) fn publish_advisory(&self, st: &mut State, mut m: NewMessage) {
        if st.topics.matching(&m.destination).next().is_none() {
            return;
        }
        m.persistent = false;
        m.fields.message_type = Some(Arc::from(ADVISORY_TYPE));
        m.fields.properties.push((
            Arc::from(ORIGIN_BROKER_NAME),
            PropertyValue::String(Arc::clone(&self.config().name)),
        ));
        let topic = m.destination.clone();
        let published = self
            .plan_publish(st, &Publisher::default(), vec![m], Vec::new(), None)
            .and_then(|mut plan| {
                let seq = self.write_plan(st, &mut plan)?;
                self.apply_publish(st, plan, seq, false);
                Ok(())
            });
        if let Err(e) = published {
            tracing::warn!("advisory on {topic} not published: {e}");
        }
    }

    /// Announces that connection `id` opened (`added`) or closed.
    pub(crate) fn advise_connection(
        &self,
        st: &mut State,
        id: ConnectionId,
        info: &ConnectInfo,
        added: bool,
    ) {
        let topic = Destination::topic(CONNECTION_ADVISORY);
        if st.topics.matching(&topic).next().is_none() {
            return;
        }
        self.publish_advisory(st, connection_advisory(id, info, added));
    }

    /// Tells a new subscription (container `key`) of the open connections,
    /// if it covers the connection advisory topic.
    pub(crate) fn replay_connections(&self, st: &mut State, key: &ContainerKey) {
        let topic = Destination::topic(CONNECTION_ADVISORY);
        if !st.topics.matching(&topic).any(|l| &l.key == key) {
            return;
        }
        let mut open: Vec<(ConnectionId, ConnectInfo)> = st
            .connections
            .iter()
            .map(|(id, c)| (*id, c.info.clone()))
            .collect();
        open.sort_by_key(|(id, _)| *id);
        open.truncate(MAX_ADVISORY_REPLAY);
        let name = Arc::clone(&self.config().name);
        let replay = open
            .iter()
            .map(|(id, info)| {
                let mut m = connection_advisory(*id, info, true);
                m.persistent = false;
                m.fields.message_type = Some(Arc::from(ADVISORY_TYPE));
                m.fields.properties.push((
                    Arc::from(ORIGIN_BROKER_NAME),
                    PropertyValue::String(Arc::clone(&name)),
                ));
                m
            })
            .collect();
        self.enqueue_replay(st, key, replay);
    }

    /// Announces that `msg` expired, or (`dead`) went to the dead-letter
    /// queue, on its destination's advisory topic.
    pub(crate) fn advise_message(&self, st: &mut State, msg: &Message, dead: bool) {
        let prefix = if dead {
            DLQ_ADVISORY_PREFIX
        } else {
            EXPIRED_ADVISORY_PREFIX
        };
        let Some(topic) = message_advisory_topic(prefix, &msg.destination) else {
            return;
        };
        if st.topics.matching(&topic).next().is_none() {
            return;
        }
        // A copy of the message without its body, as ActiveMQ's.
        let mut m = NewMessage::new(topic, Bytes::new());
        m.body_kind = BodyKind::Empty;
        m.priority = msg.priority;
        m.fields = msg.fields.clone();
        let original = msg
            .fields
            .message_id
            .as_deref()
            .map_or_else(|| format!("ID:hawser-{}", msg.id), str::to_owned);
        m.fields
            .properties
            .push((Arc::from(ORIGINAL_MESSAGE_ID), text(&original)));
        self.publish_advisory(st, m);
    }
}

/// The message saying connection `id` (who `info` says) opened or closed.
fn connection_advisory(id: ConnectionId, info: &ConnectInfo, added: bool) -> NewMessage {
    let mut m = NewMessage::new(Destination::topic(CONNECTION_ADVISORY), Bytes::new());
    m.body_kind = BodyKind::Empty;
    let mut properties = vec![
        (Arc::from(ADVISORY_ADDED), PropertyValue::Bool(added)),
        (Arc::from(ADVISORY_CONNECTION), text(&id.to_string())),
        (
            Arc::from(ADVISORY_PROTOCOL),
            text(&info.protocol.to_string()),
        ),
    ];
    if let Some(c) = &info.client_id {
        properties.push((
            Arc::from(ADVISORY_CLIENT_ID),
            PropertyValue::String(Arc::clone(c)),
        ));
    }
    if let Some(u) = info.principal.user() {
        properties.push((
            Arc::from(ADVISORY_USER),
            PropertyValue::String(Arc::clone(u)),
        ));
    }
    if let Some(r) = info.remote {
        properties.push((Arc::from(ADVISORY_REMOTE), text(&r.to_string())));
    }
    m.fields.properties = properties;
    m
}
