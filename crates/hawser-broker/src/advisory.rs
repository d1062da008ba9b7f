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
    Destination::parse(text).filter(|d| d.kind.is_temporary())
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
        let replay = existing.iter().map(|dest| advisory(dest, true)).collect();
        self.enqueue_replay(st, key, replay);
        self.dispatch(st, key);
    }

    /// Puts a replay of advisories in front of one subscription (container
    /// `key`) only, without publishing them to anyone else.
    pub(crate) fn enqueue_replay(
        &self,
        st: &mut State,
        key: &ContainerKey,
        replay: Vec<NewMessage>,
    ) {
        let now = crate::broker::now_ms();
        for m in replay {
            let id = st.next_message_id;
            st.next_message_id += 1;
            let data = MessageData::accept(id, m, now);
            let entry = Entry {
                msg: Arc::new(Message::new(data, self.memory())),
                redeliveries: 0,
                seq: 0,
                record: 0,
                consumed: None,
            };
            if let Some(q) = st.containers.get_mut(key) {
                q.enqueue(entry);
            }
        }
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

/// A destination kind as ActiveMQ's advisory topic names spell it
/// (`ActiveMQ.Advisory.<Event>.<Kind>.<name>`).
pub(crate) fn advisory_kind(kind: crate::destination::DestinationKind) -> &'static str {
    use crate::destination::DestinationKind;
    match kind {
        DestinationKind::Queue => "Queue",
        DestinationKind::Topic => "Topic",
        DestinationKind::TempQueue => "TempQueue",
        DestinationKind::TempTopic => "TempTopic",
    }
}

/// Where consumers are announced: `ActiveMQ.Advisory.Consumer.Queue.<name>`
/// and `...Topic.<name>` (also `TempQueue`, `TempTopic`), ActiveMQ's names.
/// A subscription to a pattern or a composite is announced on the kind's own
/// topic (`ActiveMQ.Advisory.Consumer.Topic`): a message sent to a name with
/// wildcards would reach only that name's subscribers, not the patterns that
/// a network link subscribes with. The destination is in
/// [`ADVISORY_DESTINATION`] either way.
pub const CONSUMER_ADVISORY_PREFIX: &str = "ActiveMQ.Advisory.Consumer.";
/// The property with the consumer's id (unique within this broker's run).
pub const ADVISORY_CONSUMER: &str = "hawser.advisory.consumer";
/// The property with the consumer's selector, if it has one.
pub const ADVISORY_SELECTOR: &str = "hawser.advisory.selector";
/// The property with the consumer's priority.
pub const ADVISORY_PRIORITY: &str = "hawser.advisory.priority";
/// The property naming the broker that announces (its `BrokerConfig::name`).
pub const ADVISORY_BROKER: &str = "hawser.advisory.broker";
/// The property with a network link's consumer's path (absent for a
/// client's own consumer): see [`crate::SubscribeSpec::network_path`].
pub const ADVISORY_NETWORK_PATH: &str = "hawser.advisory.networkPath";

/// What a consumer advisory says of a consumer.
#[derive(Clone, Debug)]
pub(crate) struct ConsumerAdvice {
    /// What it consumes from, as it subscribed.
    pub destination: Destination,
    /// Its selector's text.
    pub selector: Option<Arc<str>>,
    /// Its consumer priority.
    pub priority: i8,
    /// A network link's consumer's path.
    pub network_path: Option<Arc<str>>,
}

/// The topic a consumer of `d` is announced on; `None` for consumers of
/// advisory topics themselves (as ActiveMQ: nobody needs to hear of them,
/// and announcing them would announce the announcers).
pub fn consumer_advisory_topic(d: &Destination) -> Option<Destination> {
    use crate::destination::DestinationKind;
    let parts = d.composite_parts();
    if parts
        .as_deref()
        .unwrap_or(std::slice::from_ref(d))
        .iter()
        .any(|p| p.name.starts_with("ActiveMQ.Advisory."))
    {
        return None;
    }
    let kind = advisory_kind(d.kind);
    let name = if parts.is_some() || d.is_wildcard() {
        format!("{CONSUMER_ADVISORY_PREFIX}{kind}")
    } else {
        format!("{CONSUMER_ADVISORY_PREFIX}{kind}.{}", d.name)
    };
    Destination::new(DestinationKind::Topic, &name).ok()
}

/// The advisory message saying consumer `id` was added or removed.
fn consumer_advisory(
    broker: &Arc<str>,
    topic: Destination,
    id: u64,
    advice: &ConsumerAdvice,
    added: bool,
) -> NewMessage {
    let mut m = NewMessage::new(topic, Bytes::new());
    m.body_kind = BodyKind::Empty;
    m.fields.message_type = Some(Arc::from(ADVISORY_TYPE));
    let text = |s: &str| PropertyValue::String(Arc::from(s));
    let mut properties = vec![
        (
            Arc::from(ADVISORY_DESTINATION),
            text(&advice.destination.to_string()),
        ),
        (Arc::from(ADVISORY_ADDED), PropertyValue::Bool(added)),
        (Arc::from(ADVISORY_CONSUMER), text(&id.to_string())),
        (
            Arc::from(ADVISORY_BROKER),
            PropertyValue::String(Arc::clone(broker)),
        ),
        (
            Arc::from(ADVISORY_PRIORITY),
            PropertyValue::Int(i32::from(advice.priority)),
        ),
    ];
    if let Some(s) = &advice.selector {
        properties.push((
            Arc::from(ADVISORY_SELECTOR),
            PropertyValue::String(Arc::clone(s)),
        ));
    }
    if let Some(p) = &advice.network_path {
        properties.push((
            Arc::from(ADVISORY_NETWORK_PATH),
            PropertyValue::String(Arc::clone(p)),
        ));
    }
    m.fields.properties = properties;
    m
}

impl Broker {
    /// Announces consumer `id` added or removed. Like every advisory, not
    /// persistent, and published by the broker itself (no connection's
    /// no-local or producer windows apply).
    pub(crate) fn advise_consumer(
        &self,
        st: &mut State,
        id: u64,
        advice: &ConsumerAdvice,
        added: bool,
    ) {
        let Some(topic) = consumer_advisory_topic(&advice.destination) else {
            return;
        };
        // Nearly always nobody listens: then nothing is built.
        if st.topics.matching(&topic).next().is_none() {
            return;
        }
        let m = consumer_advisory(&self.config().name, topic, id, advice, added);
        self.publish_advisory(st, m);
    }

    /// Tells a new subscription (container `key`, to `subscribed`) of the
    /// consumers that exist, if it covers their advisory topics: a network
    /// link that connects learns the demand there already is. Only this
    /// subscription gets them; at most [`MAX_ADVISORY_REPLAY`].
    pub(crate) fn replay_consumers(
        &self,
        st: &mut State,
        key: &ContainerKey,
        subscribed: &Destination,
    ) {
        // Only a pattern or an advisory name can cover them: a plain
        // subscription (nearly all) looks at no consumer.
        let parts = subscribed.composite_parts();
        let could = parts
            .as_deref()
            .unwrap_or(std::slice::from_ref(subscribed))
            .iter()
            .any(|p| p.is_wildcard() || p.name.starts_with(CONSUMER_ADVISORY_PREFIX));
        if !could {
            return;
        }
        let mut existing: Vec<(u64, Arc<ConsumerAdvice>, Destination)> = st
            .connections
            .values()
            .flat_map(|c| c.subs.values())
            .filter(|s| &s.container != key)
            .filter_map(|s| {
                let topic = consumer_advisory_topic(&s.advice.destination)?;
                let covered = st.topics.matching(&topic).any(|l| &l.key == key);
                covered.then(|| (s.consumer, Arc::clone(&s.advice), topic))
            })
            .collect();
        if existing.len() > MAX_ADVISORY_REPLAY {
            tracing::warn!(
                "{} consumers exist; a new consumer advisory subscriber is told of {MAX_ADVISORY_REPLAY}",
                existing.len()
            );
        }
        existing.sort_by_key(|(id, _, _)| *id);
        existing.truncate(MAX_ADVISORY_REPLAY);
        let replay = existing
            .into_iter()
            .map(|(id, advice, topic)| {
                consumer_advisory(&self.config().name, topic, id, &advice, true)
            })
            .collect();
        self.enqueue_replay(st, key, replay);
    }
}
