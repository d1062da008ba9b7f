//! One network link: this broker's connection to a peer, and the consumers
//! it keeps here to serve the peer's demand (docs/network-plan.md).
//!
//! The link is a STOMP client of the peer (hawser-client, so it reconnects
//! with back-off by itself). It listens to the peer's consumer advisories;
//! for each queue or topic and selector the peer's consumers want, it keeps
//! one bridge consumer on this broker (`conduitSubscriptions`: one however
//! many consumers the peer has), below every local consumer in priority.
//! A topic's messages thus cross once, and the peer fans them out.
//! What that consumer receives is sent to the peer whole (the store's
//! record format, [`FORWARD_HEADER`]) and acknowledged here only when the
//! peer's receipt says it is stored: store and forward, nothing lost. Each
//! forward names itself by its store and message id (a producer per block
//! of 2048 ids), so the peer drops a forward repeated after a broken link
//! or a crash, or by the slave that took the store over: nothing doubled.
//!
//! A message is never sent to a broker it has passed, nor beyond
//! `messageTTL` hops: the bridge consumer's selector says so, so such a
//! message is simply never given to it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hawser_broker::advisory::{
    ADVISORY_ADDED, ADVISORY_BROKER, ADVISORY_CONSUMER, ADVISORY_DESTINATION,
    ADVISORY_NETWORK_PATH, ADVISORY_SELECTOR,
};
use hawser_broker::message::AsMessageData;
use hawser_broker::{
    AckMode, Broker, ConnectInfo, ConnectionId, Delivery, Destination, DestinationKind,
    LastDelivered, MessageId, Outbox, Principal, Protocol, SubscribeSpec,
};
use hawser_client::{Client, ClientError, Headers, Identity, SubscribeOptions};
use hawser_stomp::extensions::FORWARD_HEADER;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

mod duplex;

use duplex::{Duplex, PullEvent, LOCAL_DEMAND};

use super::connector::MAX_TTL;
use super::path::{forwarded_record, HOPS_PROPERTY, PATH_PROPERTY};
use super::NetworkOptions;

/// Ids per producer block of forwards: a producer's duplicate-detection
/// window covers exactly one block.
const BLOCK_IDS: u64 = hawser_broker::producer::WINDOW_SEQS;
/// Most of the peer's consumers one link serves (and so at most this many
/// bridge consumers here, each holding at most `prefetchSize`): a peer that
/// announces more is served for these only, and the rest are logged.
pub const MAX_LINK_DEMANDS: usize = 10_000;
/// How often the link checks whether its client reconnected.
const RECONNECT_CHECK: Duration = Duration::from_millis(250);

/// What a link is told to do.
pub struct LinkSettings {
    /// This broker.
    pub broker: Arc<Broker>,
    /// This broker's name (`BrokerConfig::name`).
    pub local: Arc<str>,
    /// Its store's name (`network::store_name`): forwards are named by it.
    pub store: Arc<str>,
    /// The peer (a failover URI of hawser-client).
    pub uri: String,
    /// How it logs in at the peer.
    pub identity: Identity,
    /// The connector's options.
    pub options: Arc<NetworkOptions>,
    /// Its counters.
    pub stats: Arc<LinkStats>,
}

/// One network link as `/status` and `/metrics` show it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LinkStatus {
    /// The peer, as the link dials it.
    pub peer: String,
    /// Whether it is connected now.
    pub up: bool,
    /// Connections made to the peer so far.
    pub connections: u64,
    /// The peer's consumers it serves now.
    pub demands: u64,
    /// Messages the peer confirmed.
    pub forwarded: u64,
    /// Messages taken from the peer and stored here (duplex links).
    #[serde(default)]
    pub pulled: u64,
}

/// A link's counters, for `/status`.
#[derive(Debug, Default)]
pub struct LinkStats {
    /// Messages the peer confirmed.
    pub forwarded: AtomicU64,
    /// Messages taken from the peer (duplex) and stored here.
    pub pulled: AtomicU64,
    /// Demands (the peer's consumers) served now.
    pub demands: AtomicU64,
    /// Connections made to the peer so far.
    pub connections: AtomicU64,
    /// Connected now (its advisories flowing).
    pub up: std::sync::atomic::AtomicBool,
}

impl LinkStats {
    /// The counters now, for the link to `peer`.
    pub fn snapshot(&self, peer: &str) -> LinkStatus {
        use std::sync::atomic::Ordering::Relaxed;
        LinkStatus {
            peer: peer.to_owned(),
            up: self.up.load(Relaxed),
            connections: self.connections.load(Relaxed),
            demands: self.demands.load(Relaxed),
            forwarded: self.forwarded.load(Relaxed),
            pulled: self.pulled.load(Relaxed),
        }
    }
}

/// Deliveries of the link's bridge consumers.
struct LinkOutbox(mpsc::UnboundedSender<Delivery>);

impl Outbox for LinkOutbox {
    fn deliver(&self, d: Delivery) {
        let _ = self.0.send(d);
    }
}

/// What the peer's consumers want from one queue or topic (or topic
/// pattern), with one selector.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Want {
    destination: Destination,
    selector: Option<String>,
    /// Without conduit subscriptions, each of the peer's consumers is a
    /// want of its own (ActiveMQ's `conduitSubscriptions=false`).
    consumer: Option<String>,
    /// A rescue: while this broker has no consumer of its own on the queue,
    /// its messages go to the peer's (local) consumers whatever their path
    /// and hops, so none is stranded where the consumers left.
    rescue: bool,
}

/// A bridge consumer on this broker.
struct Bridge {
    want: Want,
    /// The peer's name, and the path of the demand it serves.
    peer: Arc<str>,
    path: Arc<str>,
    /// The peer's consumers it serves, by their advisory id.
    consumers: usize,
    /// Of those, the peer's own (not its links'): what a rescue serves.
    local_demands: usize,
    /// Sent to the peer, its receipt not yet come.
    in_flight: usize,
    /// No demand left: sends nothing more, and goes once `in_flight` is 0.
    draining: bool,
}

/// A forward waiting for the peer's receipt.
type InFlight = (Arc<str>, MessageId, hawser_client::Confirmation);

/// Runs a link until `shutdown`.
pub async fn run(settings: LinkSettings, shutdown: CancellationToken) {
    let connected = tokio::select! {
        _ = shutdown.cancelled() => return,
        c = Client::connect(&settings.uri, settings.identity.clone()) => c,
    };
    let client = match connected {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!("network link to {}: gave up: {e}", settings.uri);
            return;
        }
    };
    let (tx, rx) = mpsc::unbounded_channel();
    // The link's client id here too: a duplex link publishes the peer's
    // messages on this connection, and their duplicate-detection windows
    // are kept (and survive a restart) under it.
    let info = ConnectInfo::new(
        Protocol::InProcess,
        settings.identity.client_id.as_deref(),
        None,
    )
    .with_principal(Principal::Broker);
    let conn = match settings.broker.connect(info, Arc::new(LinkOutbox(tx))) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!("network link to {}: {e}", settings.uri);
            return;
        }
    };
    let (duplex, pulled) = if settings.options.duplex {
        let (d, rx) = Duplex::new();
        (Some(d), Some(rx))
    } else {
        (None, None)
    };
    let mut link = Link {
        settings,
        client: Arc::new(client),
        duplex,
        conn,
        bridges: HashMap::new(),
        by_want: HashMap::new(),
        demand: HashMap::new(),
        temps: std::collections::HashSet::new(),
        next_bridge: 1,
        connections: 0,
    };
    link.serve(rx, pulled, shutdown).await;
    link.settings.broker.disconnect(conn);
}

struct Link {
    settings: LinkSettings,
    client: Arc<Client>,
    /// With `duplex=true`: the peer's messages for consumers here.
    duplex: Option<Duplex>,
    /// This broker's connection holding the bridge consumers.
    conn: ConnectionId,
    /// Bridge consumers by subscription id.
    bridges: HashMap<Arc<str>, Bridge>,
    /// The bridge consumer serving each want.
    by_want: HashMap<Want, Arc<str>>,
    /// The peer's temporary queues mirrored here.
    temps: std::collections::HashSet<Destination>,
    /// The peer's consumers served, by advisory id: what each wants, and
    /// whether it is the peer's own.
    demand: HashMap<String, (Want, bool)>,
    next_bridge: u64,
    /// The client's connections when last looked at: a new one is a new
    /// view of the peer's consumers.
    connections: u64,
}

impl Link {
    async fn serve(
        &mut self,
        mut deliveries: mpsc::UnboundedReceiver<Delivery>,
        mut pulled: Option<mpsc::UnboundedReceiver<PullEvent>>,
        shutdown: CancellationToken,
    ) {
        let advisories = self
            .client
            .subscribe(
                // Queues' and topics' consumers (and, on the kind's own
                // topic, subscriptions to patterns).
                "/topic/ActiveMQ.Advisory.Consumer.>",
                SubscribeOptions::default(),
            )
            .await;
        let mut advisories = match advisories {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("network link to {}: {e}", self.settings.uri);
                return;
            }
        };
        // The peer's temporary queues, so that a reply sent here reaches one.
        let mut temps = match self
            .client
            .subscribe(
                "/topic/ActiveMQ.Advisory.TempQueue",
                SubscribeOptions::default(),
            )
            .await
        {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("network link to {}: {e}", self.settings.uri);
                return;
            }
        };
        if self.duplex.is_some() && !self.start_duplex() {
            return;
        }
        tracing::info!("network link to {}: up", self.settings.uri);
        self.settings.stats.up.store(true, Ordering::Relaxed);
        self.connections = self.client.status().connections;
        self.settings
            .stats
            .connections
            .store(self.connections, Ordering::Relaxed);
        // The forwards waiting for their receipts, in the order sent: one
        // connection's receipts come in that order, so only the oldest is
        // waited on (a later one that came first is taken right after).
        let mut in_flight: std::collections::VecDeque<InFlight> = std::collections::VecDeque::new();
        let mut tick = tokio::time::interval(RECONNECT_CHECK);
        // Deliveries whose record here is not durable yet (the engine
        // dispatches while it writes): they leave this broker only once
        // they are on its disk. Otherwise a crash here could lose a message
        // the peer already has, and the producer's resend, stored here
        // under a new id, would reach the peer as a second message.
        let mut durable = self.settings.broker.store().durability();
        let mut held: std::collections::VecDeque<Delivery> = std::collections::VecDeque::new();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                m = advisories.recv() => match m {
                    Some(m) => self.on_advisory(&m),
                    None => return,
                },
                m = temps.recv() => match m {
                    Some(m) => self.on_temporary(&m),
                    None => return,
                },
                Some(d) = deliveries.recv() => {
                    if &*d.subscription == LOCAL_DEMAND {
                        self.on_local_advisory(&d);
                        continue;
                    }
                    held.push_back(d);
                    self.forward_durable(&mut held, durable.borrow().seq, &mut in_flight);
                }
                Some(event) = async { pulled.as_mut()?.recv().await }, if pulled.is_some() => {
                    self.on_pull_event(event);
                    self.settle_pulled(durable.borrow().seq);
                }
                changed = durable.changed(),
                    if !held.is_empty() || self.duplex.as_ref().is_some_and(Duplex::waits_for_store) => {
                    if changed.is_err() {
                        return;
                    }
                    let seq = durable.borrow_and_update().seq;
                    self.forward_durable(&mut held, seq, &mut in_flight);
                    self.settle_pulled(seq);
                }
                result = async { (&mut in_flight.front_mut().expect("not empty").2).await }, if !in_flight.is_empty() => {
                    let (sub, id, _) = in_flight.pop_front().expect("not empty");
                    self.on_confirmed(&sub, id, result);
                }
                _ = tick.tick() => {
                    self.check_reconnected();
                    self.rescue_stranded();
                    self.retry_pulled();
                    self.rescue_pulls();
                }
            }
        }
    }

    /// A new connection to the peer, seen by the client's count of them
    /// (with no advisory on it yet: the peer may have no consumers).
    fn check_reconnected(&mut self) {
        let status = self.client.status();
        self.settings
            .stats
            .up
            .store(status.connected_to.is_some(), Ordering::Relaxed);
        if status.connections > self.connections {
            self.new_view(status.connections);
        }
    }

    /// The peer's consumers as connection `connection` sees them: the peer
    /// replays those there are to the restored advisory subscription, so
    /// what an earlier connection said is dropped (some may have gone while
    /// the link was down, or the peer is another broker now).
    fn new_view(&mut self, connection: u64) {
        self.connections = connection;
        self.settings
            .stats
            .connections
            .store(connection, Ordering::Relaxed);
        tracing::info!("network link to {}: reconnected", self.settings.uri);
        let ids: Vec<String> = self.demand.keys().cloned().collect();
        for id in ids {
            self.remove_demand(&id);
        }
        for temp in std::mem::take(&mut self.temps) {
            self.forget_temporary(&Want {
                destination: temp,
                selector: None,
                consumer: None,
                rescue: false,
            });
        }
        self.duplex_new_view();
    }

    /// Whether an advisory is of the current view of the peer: one of a
    /// newer connection than the tick has seen replaces the old view first.
    fn current(&mut self, m: &hawser_client::Message) -> bool {
        match m.connection() {
            c if c > self.connections => {
                self.new_view(c);
                true
            }
            c => c == self.connections,
        }
    }

    /// A temporary queue made or deleted on the peer. While it exists, one
    /// of the same name here, owned by the link, carries to the peer what is
    /// sent to it: a reply from a consumer here reaches its requester there.
    fn on_temporary(&mut self, m: &hawser_client::Message) {
        if !self.current(m) {
            return;
        }
        let Some(name) = m
            .header(ADVISORY_DESTINATION)
            .and_then(|d| d.strip_prefix("temp-queue://"))
        else {
            return;
        };
        let Ok(temp) = Destination::new(DestinationKind::TempQueue, name) else {
            return;
        };
        let want = Want {
            destination: temp.clone(),
            selector: None,
            consumer: None,
            rescue: false,
        };
        let broker = Arc::clone(&self.settings.broker);
        if m.header(ADVISORY_ADDED) == Some("true") {
            // One made here (by a client, or mirrored from elsewhere) stays as it is.
            if self.temps.contains(&temp) || broker.register_temporary(self.conn, &temp).is_err() {
                return;
            }
            self.temps.insert(temp);
            let peer: Arc<str> = Arc::from(m.header(ADVISORY_BROKER).unwrap_or("?"));
            if let Some(sub) = self.open_bridge(want, &peer, &peer) {
                self.bridges.get_mut(&sub).expect("opened").consumers += 1;
            }
        } else if self.temps.remove(&temp) {
            self.forget_temporary(&want);
        }
    }

    /// Stops mirroring a temporary queue of the peer.
    fn forget_temporary(&mut self, want: &Want) {
        if let Some(sub) = self.by_want.get(want).cloned() {
            if let Some(b) = self.bridges.get_mut(&sub) {
                b.consumers = 0;
            }
            self.drain(&sub);
        }
        let _ = self
            .settings
            .broker
            .delete_temporary_destination(self.conn, &want.destination);
    }

    fn on_advisory(&mut self, m: &hawser_client::Message) {
        if !self.current(m) {
            return;
        }
        let Some(a) = Announced::read(|h| m.header(h).map(str::to_owned)) else {
            return;
        };
        if !a.added {
            self.remove_demand(&a.id);
            return;
        }
        // The demand's path: the brokers it crossed to reach the peer, then
        // the peer. Never served back to where it came from, nor beyond
        // consumerTTL hops.
        let local = Arc::clone(&self.settings.local);
        let Some(destination) = a.servable(&local, self.settings.options.consumer_ttl) else {
            return;
        };
        if !self.forwards(destination) {
            return;
        }
        let id = a.id.as_str();
        let path = &a.path;
        let peer = path.last().expect("ends with the peer").as_str();
        let want = Want {
            destination: destination.clone(),
            selector: a.selector.clone(),
            consumer: (!self.settings.options.conduit_subscriptions).then(|| id.to_owned()),
            rescue: false,
        };
        let own = path.len() == 1;
        if self.demand.len() >= MAX_LINK_DEMANDS && !self.demand.contains_key(id) {
            tracing::warn!(
                "network link to {}: the peer has more than {MAX_LINK_DEMANDS} consumers; {} is not served",
                self.settings.uri,
                want.destination
            );
            return;
        }
        let path = path.join(",");
        if self
            .demand
            .insert(id.to_owned(), (want.clone(), own))
            .is_some()
        {
            return;
        }
        self.settings.stats.demands.fetch_add(1, Ordering::Relaxed);
        self.add_demand(want, peer, &path, own);
    }

    /// Whether `d` passes the connector's included and excluded lists.
    fn forwards(&self, d: &Destination) -> bool {
        let o = &self.settings.options;
        let included = o.included.is_empty() || o.included.iter().any(|p| p.matches(d));
        included && !o.excluded.iter().any(|p| p.matches(d))
    }

    fn add_demand(&mut self, want: Want, peer: &str, path: &str, own: bool) {
        if let Some(sub) = self.open_bridge(want, peer, path) {
            let b = self.bridges.get_mut(&sub).expect("opened");
            b.consumers += 1;
            b.local_demands += usize::from(own);
        }
    }

    /// The bridge consumer serving `want`, opened if need be (or kept if
    /// it was going); `None` if the broker refused it.
    fn open_bridge(&mut self, want: Want, peer: &str, path: &str) -> Option<Arc<str>> {
        if let Some(sub) = self.by_want.get(&want) {
            let b = self.bridges.get_mut(sub).expect("indexed");
            if b.draining {
                // Wanted again before it went: it serves on.
                b.draining = false;
                let _ = self.settings.broker.set_prefetch(
                    self.conn,
                    sub,
                    self.settings.options.prefetch_size,
                );
            }
            return Some(Arc::clone(sub));
        }
        let sub: Arc<str> = Arc::from(format!("bridge-{}", self.next_bridge));
        self.next_bridge += 1;
        let spec = SubscribeSpec {
            id: Arc::clone(&sub),
            destination: want.destination.clone(),
            ack_mode: AckMode::ClientIndividual,
            prefetch: self.settings.options.prefetch_size,
            selector: Some(self.selector(&want, peer)),
            exclusive: false,
            durable_name: None,
            no_local: false,
            priority: self.priority(path),
            network_path: Some(Arc::from(path)),
        };
        match self.settings.broker.subscribe(self.conn, spec) {
            Ok(_) => {
                self.bridges.insert(
                    Arc::clone(&sub),
                    Bridge {
                        want: want.clone(),
                        peer: Arc::from(peer),
                        path: Arc::from(path),
                        consumers: 0,
                        local_demands: 0,
                        in_flight: 0,
                        draining: false,
                    },
                );
                self.by_want.insert(want, Arc::clone(&sub));
                Some(sub)
            }
            Err(e) => {
                tracing::warn!(
                    "network link to {}: cannot serve {}: {e}",
                    self.settings.uri,
                    want.destination
                );
                None
            }
        }
    }

    /// Nothing stranded: for each queue whose consumers on the peer are the
    /// peer's own, a rescue bridge while this broker has no consumer of its
    /// own there (the consumers moved to the peer), none otherwise. Its
    /// messages may have passed the peer or used their hops: they go anyway,
    /// to where the consumers are. A message moves again only if its
    /// consumers move again; [`MAX_TTL`] hops bound even that.
    fn rescue_stranded(&mut self) {
        let mut open = Vec::new();
        let mut close = Vec::new();
        for (sub, b) in &self.bridges {
            if b.draining || b.want.destination.is_topic() {
                continue;
            }
            let base_wanted = |w: &Want| {
                let base = Want {
                    rescue: false,
                    ..w.clone()
                };
                self.by_want
                    .get(&base)
                    .and_then(|s| self.bridges.get(s))
                    .is_some_and(|b| !b.draining && b.local_demands > 0)
            };
            let none_here = || self.settings.broker.local_consumers(&b.want.destination) == 0;
            if b.want.rescue {
                if !base_wanted(&b.want) || !none_here() {
                    close.push(Arc::clone(sub));
                }
            } else if b.local_demands > 0 && none_here() {
                let rescue = Want {
                    rescue: true,
                    ..b.want.clone()
                };
                if !self.by_want.contains_key(&rescue) {
                    open.push((rescue, Arc::clone(&b.peer), Arc::clone(&b.path)));
                }
            }
        }
        for (want, peer, path) in open {
            tracing::info!(
                "network link to {}: nothing consumes {} here; its messages go on to the peer's consumers",
                self.settings.uri,
                want.destination
            );
            self.open_bridge(want, &peer, &path);
        }
        for sub in close {
            self.drain(&sub);
        }
    }

    /// Takes nothing new; what is on its way to the peer is acknowledged as
    /// it is confirmed, then the rest goes back.
    fn drain(&mut self, sub: &Arc<str>) {
        if let Some(b) = self.bridges.get_mut(sub) {
            b.draining = true;
            let _ = self.settings.broker.set_prefetch(self.conn, sub, 0);
        }
        self.retire_if_idle(sub);
    }

    /// Below every local consumer (priority 0): one step, or one per hop of
    /// the demand's path with `decreaseNetworkConsumerPriority`.
    fn priority(&self, path: &str) -> i8 {
        if self.settings.options.decrease_network_consumer_priority {
            -(path.split(',').count().min(127) as i8)
        } else {
            -1
        }
    }

    /// The bridge consumer's selector: the demand's own, and only messages
    /// that have not passed the peer and have hops left.
    fn selector(&self, want: &Want, peer: &str) -> String {
        network_selector(want, peer, self.settings.options.message_ttl)
    }

    fn remove_demand(&mut self, id: &str) {
        let Some((want, own)) = self.demand.remove(id) else {
            return;
        };
        self.settings.stats.demands.fetch_sub(1, Ordering::Relaxed);
        let Some(sub) = self.by_want.get(&want).cloned() else {
            return;
        };
        let b = self.bridges.get_mut(&sub).expect("indexed");
        b.consumers -= 1;
        b.local_demands -= usize::from(own);
        if b.consumers == 0 {
            self.drain(&sub);
        }
    }

    fn retire_if_idle(&mut self, sub: &Arc<str>) {
        let Some(b) = self.bridges.get(sub) else {
            return;
        };
        if !b.draining || b.in_flight > 0 {
            return;
        }
        let b = self.bridges.remove(sub).expect("present");
        self.by_want.remove(&b.want);
        // What it was given and did not send was only prefetched: it goes
        // back as it was, not counted as a redelivery.
        let _ = self.settings.broker.unsubscribe_after(
            self.conn,
            Some(sub),
            None,
            LastDelivered::Nothing,
        );
    }

    /// Sends a delivery to the peer; the future resolves with its receipt.
    fn forward(&mut self, d: Delivery) -> Option<InFlight> {
        let b = self.bridges.get_mut(&d.subscription)?;
        if b.draining {
            return None;
        }
        let m = &d.message;
        let body = forwarded_record(m.message_data(), &self.settings.local);
        let mut headers = Headers::new();
        headers.push(FORWARD_HEADER, "1");
        let producer = (
            Arc::from(format!("{}#{}", self.settings.store, m.id / BLOCK_IDS)),
            m.id % BLOCK_IDS + 1,
        );
        let kind = match m.destination.kind {
            DestinationKind::Topic | DestinationKind::TempTopic => "topic",
            DestinationKind::Queue => "queue",
            // The peer's own, reached by its broker-wide name.
            DestinationKind::TempQueue => "remote-temp-queue",
        };
        let destination = format!("/{kind}/{}", m.destination.name);
        let confirmation = self.client.send_as(&destination, body, headers, producer);
        b.in_flight += 1;
        Some((Arc::clone(&d.subscription), m.id, confirmation))
    }

    /// Forwards the held deliveries, in order, whose records are durable
    /// (`durable` and below; `Delivery::record`, not `seq`, which concurrent
    /// dispatch leaves at 0).
    fn forward_durable(
        &mut self,
        held: &mut std::collections::VecDeque<Delivery>,
        durable: hawser_broker::Seq,
        in_flight: &mut std::collections::VecDeque<InFlight>,
    ) {
        while held.front().is_some_and(|d| d.record <= durable) {
            let d = held.pop_front().expect("checked");
            if let Some(sent) = self.forward(d) {
                in_flight.push_back(sent);
            }
        }
    }

    fn on_confirmed(&mut self, sub: &Arc<str>, id: MessageId, result: Result<(), ClientError>) {
        if let Some(b) = self.bridges.get_mut(sub) {
            b.in_flight -= 1;
        }
        match result {
            Ok(()) => {
                self.settings
                    .stats
                    .forwarded
                    .fetch_add(1, Ordering::Relaxed);
                if let Err(e) = self
                    .settings
                    .broker
                    .ack(self.conn, Some(sub), id, None, false)
                {
                    tracing::warn!("network link to {}: ack of {id}: {e}", self.settings.uri);
                }
            }
            // The peer refused it (or the client closed): it stays with the
            // bridge consumer and goes back to the queue when that goes.
            Err(e) => tracing::warn!(
                "network link to {}: message {id} not forwarded: {e}",
                self.settings.uri
            ),
        }
        self.retire_if_idle(sub);
    }
}

/// The selector of a link's consumer serving `want`, for messages going to
/// broker `to`: the demand's own, and (unless a rescue) only messages that
/// have not passed `to` and have hops left under `message_ttl`.
fn network_selector(want: &Want, to: &str, message_ttl: u32) -> String {
    let escaped: String = to
        .chars()
        .flat_map(|c| match c {
            '%' | '_' | '\\' => vec!['\\', c],
            '\'' => vec!['\'', '\''],
            c => vec![c],
        })
        .collect();
    let network = if want.rescue {
        format!("({HOPS_PROPERTY} IS NULL OR {HOPS_PROPERTY} < {MAX_TTL})")
    } else {
        format!(
            "({PATH_PROPERTY} IS NULL OR {PATH_PROPERTY} NOT LIKE '%,{escaped},%' ESCAPE '\\') \
             AND ({HOPS_PROPERTY} IS NULL OR {HOPS_PROPERTY} < {message_ttl})"
        )
    };
    match &want.selector {
        Some(s) => format!("({s}) AND {network}"),
        None => network,
    }
}

/// A consumer advisory, read: the same whether it came from the peer (a
/// STOMP MESSAGE) or from this broker (a message of its engine).
struct Announced {
    id: String,
    added: bool,
    /// `None`: a temporary destination (its connection's, on its broker).
    destination: Option<Destination>,
    selector: Option<String>,
    /// The brokers the demand crossed, ending with the advising broker.
    path: Vec<String>,
}

impl Announced {
    fn read(header: impl Fn(&str) -> Option<String>) -> Option<Announced> {
        let id = header(ADVISORY_CONSUMER)?;
        let destination = header(ADVISORY_DESTINATION)?;
        let destination = if let Some(name) = destination.strip_prefix("queue://") {
            Some(Destination::new(DestinationKind::Queue, name).ok()?)
        } else if let Some(name) = destination.strip_prefix("topic://") {
            Some(Destination::new(DestinationKind::Topic, name).ok()?)
        } else {
            None
        };
        let mut path: Vec<String> = header(ADVISORY_NETWORK_PATH)
            .map(|p| {
                p.split(',')
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        path.push(header(ADVISORY_BROKER).unwrap_or_else(|| "?".to_owned()));
        Some(Announced {
            id,
            added: header(ADVISORY_ADDED).as_deref() == Some("true"),
            destination,
            selector: header(ADVISORY_SELECTOR),
            path,
        })
    }

    /// Whether a link may serve it across to broker `to` (`MAX`: the
    /// connector's consumerTTL): one queue or topic (or topic pattern),
    /// not from `to`, not beyond consumerTTL.
    fn servable(&self, to: &str, consumer_ttl: u32) -> Option<&Destination> {
        let d = self.destination.as_ref()?;
        // A queue consumer names one queue; a topic subscription may be a
        // pattern (the link subscribes with the same pattern).
        let single = !d.is_wildcard() || d.is_topic();
        let fits = single
            && d.composite_parts().is_none()
            && !self.path.iter().any(|b| b == to)
            && self.path.len() <= consumer_ttl as usize;
        fits.then_some(d)
    }
}
