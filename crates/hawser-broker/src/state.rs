//! Everything the engine's lock protects, and the rule every engine call keeps.
//!
//! **The lock invariant.** All engine state is one [`State`] behind one lock.
//! A call takes the lock, works out what it will change, appends the store
//! record that says so, and only once the store has accepted the record
//! changes memory; if the store refuses, memory is exactly as it was and the
//! caller gets the error. Because the append happens under the lock, the
//! store's record order is the order of the engine's decisions: an
//! acknowledgement's record can never come before its message's, and a
//! message dropped as a duplicate was stored by an earlier record. The few
//! records whose loss costs only a redelivery (a redelivery count, an
//! auto-acknowledgement) are appended after the change, and a refusal is
//! logged: a store that refuses them has failed and confirms nothing more.

use std::collections::BTreeMap;
use std::sync::Arc;

use foldhash::HashMap;
use hawser_selector::Selector;

use crate::advisory::ConsumerAdvice;
use crate::container::ContainerKey;
use crate::destination::Destination;
use crate::error::BrokerError;
use crate::identity::ConnectInfo;
use crate::message::MessageId;
use crate::outbox::{AckMode, ConnectionId, ConsumerId, Outbox};
use crate::paging::PageRequest;
use crate::producer::{ProducerAudit, SeqWindow};
use crate::queue::MessageQueue;
use crate::store::{DurableSubscription, Seq};
use crate::topic::Topics;
use crate::transaction::Transaction;

/// Whose messages a topic subscription skips.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum NoLocal {
    /// Messages published on this connection.
    Connection(ConnectionId),
    /// Messages published by any connection with this client id (durable subscriptions outlive connections).
    ClientId(Arc<str>),
}

/// A topic's link to one of its subscriptions.
#[derive(Clone)]
pub(crate) struct TopicLink {
    /// The subscription's container.
    pub key: ContainerKey,
    /// Messages must match it to enter the container.
    pub filter: Option<Arc<Selector>>,
    /// Set when the subscriber does not want its own messages.
    pub no_local: Option<NoLocal>,
}

/// A subscription as its connection knows it.
#[derive(Clone, Debug)]
pub(crate) struct SubRef {
    /// Where its consumer is attached.
    pub container: ContainerKey,
    /// The consumer.
    pub consumer: ConsumerId,
    /// How it acknowledges.
    pub ack_mode: AckMode,
    /// What its consumer advisories say of it.
    pub advice: Arc<ConsumerAdvice>,
}

/// A connected client.
pub(crate) struct Connection {
    /// Who it is. Its JMS client id, if it gave one, is its identity for
    /// durable subscriptions and for the producer ids it uses.
    pub info: ConnectInfo,
    /// Where its deliveries go.
    pub outbox: Arc<dyn Outbox>,
    /// Its subscriptions by protocol subscription id.
    pub subs: HashMap<Arc<str>, SubRef>,
    /// Queue browsers it has open (they count against the subscription limit).
    pub browsers: usize,
    /// Its open transactions by protocol transaction id.
    pub txs: HashMap<String, Transaction>,
    /// Temporary destinations it created; deleted when it leaves.
    pub temps: Vec<Destination>,
    /// Windows of the producer ids it uses, when it has no client id: they are
    /// its own and die with it (see [`crate::producer`]).
    pub producers: HashMap<Arc<str>, SeqWindow>,
    /// The producers it announced, and where each sends (`None`: anonymous);
    /// see [`crate::producer_registry`].
    pub live_producers: HashMap<Arc<str>, Option<Destination>>,
}

impl Connection {
    /// A connection with nothing open yet.
    pub(crate) fn new(info: ConnectInfo, outbox: Arc<dyn Outbox>) -> Connection {
        Connection {
            info,
            outbox,
            subs: HashMap::default(),
            browsers: 0,
            txs: HashMap::default(),
            temps: Vec::new(),
            producers: HashMap::default(),
            live_producers: HashMap::default(),
        }
    }
}

/// Everything the lock protects.
#[derive(Default)]
pub(crate) struct State {
    /// The next message id to assign.
    pub next_message_id: MessageId,
    /// The next connection id to assign.
    pub next_connection: ConnectionId,
    /// The next consumer id to assign.
    pub next_consumer: ConsumerId,
    /// Every container, created on first use, released when idle.
    pub containers: HashMap<ContainerKey, MessageQueue>,
    /// Topics and their subscriptions.
    pub topics: Topics,
    /// Durable subscriptions by (client id, name): ordered, so that those of
    /// one client id are found together ([`State::durables_of`]).
    pub durables: BTreeMap<(Arc<str>, Arc<str>), DurableSubscription>,
    /// Live connections.
    pub connections: Connections,
    /// Which container each consumer is attached to.
    pub consumers: HashMap<ConsumerId, ContainerKey>,
    /// Windows of client-id scoped producers, for duplicate detection.
    pub producers: ProducerAudit,
    /// Which connection owns each live temporary destination.
    pub temp_owners: HashMap<Destination, ConnectionId>,
    /// XA transactions prepared and not yet resolved, by name: no
    /// connection's any more, they wait for a transaction manager.
    pub prepared: HashMap<Arc<str>, Transaction>,
    /// The last store record this engine appended (a duplicate's receipt waits for it).
    pub last_seq: Seq,
    /// Reads of stored messages containers asked for, for the pager (see [`crate::paging`]).
    pub page_requests: Vec<PageRequest>,
    /// The last read's token.
    pub next_page_token: u64,
    /// Containers whose read failed, to ask again (by the pager, later).
    pub page_retries: Vec<ContainerKey>,
    /// Queues an operator created: kept while empty and idle (see
    /// [`Broker::create_destination`](crate::Broker::create_destination)).
    pub declared: std::collections::HashSet<Destination>,
    /// Producers announced per destination (see [`crate::producer_registry`]).
    pub producer_counts: HashMap<Destination, usize>,
    /// What happened since the last metrics sample (see [`crate::metrics`]).
    pub tally: crate::metrics::Tally,
}

impl State {
    /// The durable subscriptions of a client id.
    pub(crate) fn durables_of<'a>(
        &'a self,
        client_id: &'a Arc<str>,
    ) -> impl Iterator<Item = &'a DurableSubscription> + 'a {
        self.durables
            .range((Arc::clone(client_id), Arc::from(""))..)
            .take_while(move |((cid, _), _)| cid == client_id)
            .map(|(_, d)| d)
    }
}

/// The live connections, by id.
#[derive(Default)]
pub(crate) struct Connections(HashMap<ConnectionId, Connection>);

impl Connections {
    /// A live connection. A session's call can race with the engine closing
    /// its connection, so a missing one is the caller's `ConnectionClosed`.
    pub fn open(&self, conn: ConnectionId) -> Result<&Connection, BrokerError> {
        self.0.get(&conn).ok_or(BrokerError::ConnectionClosed)
    }

    /// Subscription `id` of open connection `conn`.
    pub fn subscription(&self, conn: ConnectionId, id: &str) -> Result<SubRef, BrokerError> {
        self.open(conn)?
            .subs
            .get(id)
            .cloned()
            .ok_or_else(|| BrokerError::UnknownSubscription(id.to_owned()))
    }

    /// [`Connections::open`], to change it.
    pub fn open_mut(&mut self, conn: ConnectionId) -> Result<&mut Connection, BrokerError> {
        self.0.get_mut(&conn).ok_or(BrokerError::ConnectionClosed)
    }
}

impl std::ops::Deref for Connections {
    type Target = HashMap<ConnectionId, Connection>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for Connections {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}
