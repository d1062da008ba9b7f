//! The link's other direction, with `duplex=true`: the peer's messages come
//! here over this one connection, for this broker's consumers.
//!
//! The peer cannot send on a connection this broker opened, so the link
//! pulls: for each queue or topic and selector that consumers here want
//! (this broker's own consumer advisories), it subscribes on the peer as a
//! network consumer (`NETWORK_PATH_HEADER`, below the peer's own consumers
//! in priority) and asks for whole records (`FORWARD_HEADER`: the peer
//! stamps its name on the message's path as it leaves). Each message is
//! published here under a producer id of the peer's message-id block, so a
//! message the peer sends again (after a broken link, or a crash here) is
//! recognised and dropped, and is acknowledged on the peer only once it is
//! on this broker's disk. Nothing lost, nothing doubled here: the producer
//! ids are the peer's store's (its CONNECTED says it), and are kept under
//! the link's client id, whose windows survive a restart here.
//!
//! A pull takes messages only while it has demand; once it has none it
//! takes nothing more, waits for the acknowledgements of what it stored,
//! and unsubscribes (the peer puts back the rest as it was). Demand that
//! comes back meanwhile gets a new pull. A pull the peer refuses (its
//! authorization, or its subscription limit: the link keeps at most
//! [`MAX_PULLS`]) is not asked for again for [`REFUSED_BACKOFF`].
//!
//! One window is left, as in ActiveMQ's duplex bridges: if the link breaks
//! after a message is stored here and before the peer hears the
//! acknowledgement, the peer puts it back, and a consumer on the peer may
//! get it too (marked redelivered). A connector on each side has no such
//! window (the sending side keeps the message until the other has it).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hawser_broker::message::AsMessageData;
use hawser_broker::store_codec::decode_record;
use hawser_broker::{
    AckMode, BrokerError, Delivery, Destination, DestinationPattern, NewMessage, ProducerRef,
    PropertyValue, Seq, StoreOp, SubscribeSpec,
};
use hawser_client::{Message, SubscribeOptions};
use hawser_stomp::extensions::{FORWARD_HEADER, NETWORK_PATH_HEADER};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{network_selector, Announced, Link, Want, BLOCK_IDS};

/// The link's subscription to this broker's consumer advisories.
pub(super) const LOCAL_DEMAND: &str = "local-demand";
/// Most advisories that subscription holds before the link reads them.
const LOCAL_DEMAND_PREFETCH: u32 = 10_000;
/// Most subscriptions one link keeps on its peer (active and retiring):
/// below a peer's `max_subscriptions_per_connection` (1000 by default),
/// which would refuse one more and close the link's connection.
pub const MAX_PULLS: usize = 500;
/// How long a pull the peer refused is not asked for again.
pub const REFUSED_BACKOFF: Duration = Duration::from_secs(60);

/// What a pull's task reports.
pub(super) enum PullEvent {
    /// A message the peer sent to pull `.0`.
    Message(u64, Message),
    /// The peer refused pull `.0`.
    Refused(u64),
}

/// What the duplex direction keeps.
pub(super) struct Duplex {
    /// Consumers here, by advisory id: what each wants, and the path its
    /// demand has (ending with this broker). All of them, whatever the
    /// peer: which to serve is decided against the peer of the moment.
    demand: HashMap<String, (Want, String)>,
    /// The subscriptions on the peer, by id.
    pulls: HashMap<u64, Pull>,
    /// The pull taking messages for each want (not retiring).
    active: HashMap<Want, u64>,
    /// Wants the peer refused, and when.
    refused: HashMap<Want, Instant>,
    next: u64,
    tx: mpsc::UnboundedSender<PullEvent>,
    /// Published here, waiting for the store before the peer's ack.
    publishing: VecDeque<(Seq, u64, Message)>,
    /// Refused here for now (a limit, or the store): tried again on the
    /// next tick, in order, before anything newer of the same pull.
    retry: VecDeque<(u64, Message)>,
}

/// One subscription on the peer.
struct Pull {
    want: Want,
    /// Consumers here it serves.
    consumers: usize,
    /// Of those, this broker's own (not its other links'): what a rescue
    /// serves.
    own: usize,
    /// Published here, not yet acknowledged on the peer.
    pending: usize,
    /// No demand left: takes nothing more, and goes once `pending` is 0.
    retiring: bool,
    stop: CancellationToken,
}

impl Duplex {
    pub(super) fn new() -> (Duplex, mpsc::UnboundedReceiver<PullEvent>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let duplex = Duplex {
            demand: HashMap::new(),
            pulls: HashMap::new(),
            active: HashMap::new(),
            refused: HashMap::new(),
            next: 1,
            tx,
            publishing: VecDeque::new(),
            retry: VecDeque::new(),
        };
        (duplex, rx)
    }

    /// Whether a store record is awaited before acknowledging on the peer.
    pub(super) fn waits_for_store(&self) -> bool {
        !self.publishing.is_empty()
    }
}

/// Whether a message the peer sent for `want` may be published here: the
/// destination it was pulled for (or one its topic pattern covers).
fn fits(want: &Want, d: &Destination) -> bool {
    if want.destination.kind != d.kind {
        return false;
    }
    if want.destination.is_wildcard() {
        DestinationPattern::new(true, &want.destination.name).is_ok_and(|p| p.matches(d))
    } else {
        want.destination == *d
    }
}

impl Link {
    /// Listens to this broker's consumer advisories (they come with the
    /// link's other deliveries, by [`LOCAL_DEMAND`]).
    pub(super) fn start_duplex(&mut self) -> bool {
        let spec = SubscribeSpec {
            id: Arc::from(LOCAL_DEMAND),
            destination: Destination::topic("ActiveMQ.Advisory.Consumer.>"),
            ack_mode: AckMode::Auto,
            prefetch: LOCAL_DEMAND_PREFETCH,
            selector: None,
            exclusive: false,
            durable_name: None,
            no_local: false,
            priority: 0,
            network_path: None,
        };
        match self.settings.broker.subscribe(self.conn, spec) {
            Ok(_) => true,
            Err(e) => {
                tracing::warn!(
                    "network link to {}: duplex: cannot hear this broker's consumers: {e}",
                    self.settings.uri
                );
                false
            }
        }
    }

    /// A consumer here added or removed.
    pub(super) fn on_local_advisory(&mut self, d: &Delivery) {
        self.settings
            .broker
            .delivered(&[(d.consumer, d.message.id)]);
        let data = d.message.message_data();
        let Some(a) = Announced::read(|h| {
            data.property(h).map(|v| match v {
                PropertyValue::String(s) => s.to_string(),
                other => other.to_string(),
            })
        }) else {
            return;
        };
        let Some(duplex) = self.duplex.as_mut() else {
            return;
        };
        if !a.added {
            if let Some((want, path)) = duplex.demand.remove(&a.id) {
                self.unpull(&want, !path.contains(','));
            }
            return;
        }
        // Kept whatever the peer; served if it fits the peer of the moment.
        let Some(destination) = a.destination.clone() else {
            return;
        };
        if duplex.demand.len() >= super::MAX_LINK_DEMANDS {
            return;
        }
        let want = Want {
            destination,
            selector: a.selector.clone(),
            consumer: (!self.settings.options.conduit_subscriptions).then(|| a.id.clone()),
            rescue: false,
        };
        let path = a.path.join(",");
        if duplex
            .demand
            .insert(a.id.clone(), (want.clone(), path.clone()))
            .is_some()
        {
            return;
        }
        self.pull(want, &path);
    }

    /// Serves one more consumer of `want` (with demand path `path`) from
    /// the peer, if it may be served from there.
    fn pull(&mut self, want: Want, path: &str) {
        // Demand that came from the peer is not served from the peer, nor
        // beyond consumerTTL; nor what the connector leaves out.
        // Only a Hawser peer names itself and its store (its message ids
        // are unique within the store: the pulled messages' producer ids).
        let status = self.client.status();
        let (Some(peer), Some(_)) = (status.broker_name, status.store_name) else {
            return;
        };
        let announced = Announced {
            id: String::new(),
            added: true,
            destination: Some(want.destination.clone()),
            selector: None,
            path: path.split(',').map(str::to_owned).collect(),
        };
        if announced
            .servable(&peer, self.settings.options.consumer_ttl)
            .is_none()
            || !self.forwards(&want.destination)
        {
            return;
        }
        let own = usize::from(!path.contains(','));
        let priority = self.priority(path);
        let selector = network_selector(
            &want,
            &self.settings.local,
            self.settings.options.message_ttl,
        );
        let prefetch = self.settings.options.prefetch_size;
        let duplex = self.duplex.as_mut().expect("duplex");
        if let Some(id) = duplex.active.get(&want) {
            let p = duplex.pulls.get_mut(id).expect("indexed");
            p.consumers += 1;
            p.own += own;
            return;
        }
        if duplex
            .refused
            .get(&want)
            .is_some_and(|at| at.elapsed() < REFUSED_BACKOFF)
        {
            return;
        }
        if duplex.pulls.len() >= MAX_PULLS {
            tracing::warn!(
                "network link to {}: duplex: {MAX_PULLS} pulls on the peer already; {} is not served",
                self.settings.uri,
                want.destination
            );
            return;
        }
        let id = duplex.next;
        duplex.next += 1;
        let stop = CancellationToken::new();
        duplex.pulls.insert(
            id,
            Pull {
                want: want.clone(),
                consumers: 1,
                own,
                pending: 0,
                retiring: false,
                stop: stop.clone(),
            },
        );
        duplex.active.insert(want.clone(), id);
        let kind = if want.destination.is_topic() {
            "topic"
        } else {
            "queue"
        };
        let destination = format!("/{kind}/{}", want.destination.name);
        let options = SubscribeOptions {
            id: Some(format!("pull-{id}")),
            ack: hawser_client::AckMode::ClientIndividual,
            selector: Some(selector),
            prefetch: Some(prefetch),
            headers: vec![
                ("activemq.priority".to_owned(), priority.to_string()),
                (NETWORK_PATH_HEADER.to_owned(), path.to_owned()),
                (FORWARD_HEADER.to_owned(), "1".to_owned()),
            ],
            // Every copy the peer sends is acknowledged (this broker drops
            // the repeats), or the peer would hold it forever.
            keep_duplicates: true,
            ..SubscribeOptions::default()
        };
        let client = Arc::clone(&self.client);
        let tx = duplex.tx.clone();
        let uri = self.settings.uri.clone();
        tokio::spawn(async move {
            let mut sub = match client.subscribe(&destination, options).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!("network link to {uri}: duplex: cannot pull {destination}: {e}");
                    let _ = tx.send(PullEvent::Refused(id));
                    return;
                }
            };
            loop {
                tokio::select! {
                    _ = stop.cancelled() => {
                        let _ = sub.close(None).await;
                        return;
                    }
                    m = sub.recv() => match m {
                        Some(m) => {
                            if tx.send(PullEvent::Message(id, m)).is_err() {
                                return;
                            }
                        }
                        None => return,
                    },
                }
            }
        });
    }

    /// Serves one consumer fewer of `want`.
    fn unpull(&mut self, want: &Want, own: bool) {
        let duplex = self.duplex.as_mut().expect("duplex");
        let Some(&id) = duplex.active.get(want) else {
            return;
        };
        let p = duplex.pulls.get_mut(&id).expect("indexed");
        p.consumers = p.consumers.saturating_sub(1);
        p.own = p.own.saturating_sub(usize::from(own));
        if p.consumers == 0 {
            // Never revived: what it skips from now on stays unacknowledged
            // on its subscription until the UNSUBSCRIBE gives it back, so
            // new demand gets a subscription of its own.
            p.retiring = true;
            duplex.active.remove(want);
            self.retire_pull_if_idle(id);
        }
    }

    /// Unsubscribes a retiring pull once every message it stored here is
    /// acknowledged on the peer: those acknowledgements go before the
    /// UNSUBSCRIBE on the same connection, and the rest go back there.
    fn retire_pull_if_idle(&mut self, id: u64) {
        let duplex = self.duplex.as_mut().expect("duplex");
        if !duplex
            .pulls
            .get(&id)
            .is_some_and(|p| p.retiring && p.pending == 0)
        {
            return;
        }
        let p = duplex.pulls.remove(&id).expect("checked");
        duplex.retry.retain(|(r, _)| *r != id);
        p.stop.cancel();
    }

    /// What a pull's task reports.
    pub(super) fn on_pull_event(&mut self, event: PullEvent) {
        match event {
            PullEvent::Message(id, m) => {
                let duplex = self.duplex.as_mut().expect("duplex");
                // Behind what waits to be tried again, in order.
                if duplex.retry.iter().any(|(r, _)| *r == id) {
                    duplex.retry.push_back((id, m));
                } else {
                    self.on_pulled(id, m);
                }
            }
            PullEvent::Refused(id) => {
                let duplex = self.duplex.as_mut().expect("duplex");
                if let Some(p) = duplex.pulls.remove(&id) {
                    duplex.retry.retain(|(r, _)| *r != id);
                    if duplex.active.get(&p.want) == Some(&id) {
                        duplex.active.remove(&p.want);
                    }
                    // Bounded: what is past its back-off is forgotten.
                    duplex
                        .refused
                        .retain(|_, at| at.elapsed() < REFUSED_BACKOFF);
                    duplex.refused.insert(p.want, Instant::now());
                }
            }
        }
    }

    /// A message from the peer: published here.
    fn on_pulled(&mut self, id: u64, m: Message) {
        let forwards = |d: &Destination| self.forwards(d);
        let duplex = self.duplex.as_ref().expect("duplex");
        let Some(p) = duplex.pulls.get(&id) else {
            return;
        };
        if p.retiring {
            // Not acknowledged: it goes back to the peer's queue.
            return;
        }
        let Some(store) = self.client.status().store_name else {
            refuse(m);
            return;
        };
        let message = pulled_message(&m, &store)
            .filter(|n| fits(&p.want, &n.destination) && forwards(&n.destination));
        let Some(message) = message else {
            tracing::warn!(
                "network link to {}: duplex: message {} is not a forwarded record for {}; refused",
                self.settings.uri,
                m.id(),
                p.want.destination
            );
            refuse(m);
            return;
        };
        let sent = self.settings.broker.send(self.conn, message, None);
        let duplex = self.duplex.as_mut().expect("duplex");
        match sent {
            Ok(seq) => {
                duplex.pulls.get_mut(&id).expect("present").pending += 1;
                duplex.publishing.push_back((seq, id, m));
            }
            // Room may come (consumers here drain, the store recovers).
            Err(e @ (BrokerError::Limit(_) | BrokerError::Store(_))) if !matches!(e, BrokerError::Store(ref s) if !s.is_fatal()) =>
            {
                if duplex.retry.is_empty() {
                    tracing::warn!(
                        "network link to {}: duplex: message {} not taken here yet: {e}",
                        self.settings.uri,
                        m.id()
                    );
                }
                duplex.retry.push_back((id, m));
            }
            // Never: the peer redelivers it, and dead-letters it in the end.
            Err(e) => {
                tracing::warn!(
                    "network link to {}: duplex: message {} refused here: {e}",
                    self.settings.uri,
                    m.id()
                );
                refuse(m);
            }
        }
    }

    /// Tries again what this broker could not take, in order.
    pub(super) fn retry_pulled(&mut self) {
        let Some(duplex) = self.duplex.as_mut() else {
            return;
        };
        let again: Vec<(u64, Message)> = duplex.retry.drain(..).collect();
        for (id, m) in again {
            self.on_pull_event(PullEvent::Message(id, m));
        }
    }

    /// Acknowledges on the peer what is now on this broker's disk.
    pub(super) fn settle_pulled(&mut self, durable: Seq) {
        let Some(duplex) = self.duplex.as_mut() else {
            return;
        };
        let mut idle = Vec::new();
        while duplex
            .publishing
            .front()
            .is_some_and(|(seq, _, _)| *seq <= durable)
        {
            let (_, id, m) = duplex.publishing.pop_front().expect("checked");
            // Lost with a broken link, the peer sends it again and this
            // broker drops the repeat and acknowledges it.
            let _ = m.ack_nowait();
            self.settings
                .stats
                .pulled
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if let Some(p) = duplex.pulls.get_mut(&id) {
                p.pending -= 1;
                if p.retiring && p.pending == 0 {
                    idle.push(id);
                }
            }
        }
        for id in idle {
            self.retire_pull_if_idle(id);
        }
    }

    /// Nothing stranded on the peer: for each queue whose consumers here
    /// are this broker's own, a rescue pull while the peer has no consumer
    /// of its own there (they moved here), none otherwise. It takes the
    /// messages that passed this broker too (forwarded to the peer before
    /// the consumers moved); [`MAX_TTL`](super::MAX_TTL) hops bound that.
    pub(super) fn rescue_pulls(&mut self) {
        let Some(duplex) = self.duplex.as_ref() else {
            return;
        };
        // The peer's own consumers, from its advisories.
        let peer_consumes = |d: &Destination| {
            self.demand
                .values()
                .any(|(w, own)| *own && w.destination == *d)
        };
        let own_here = |w: &Want| {
            duplex
                .active
                .get(w)
                .and_then(|id| duplex.pulls.get(id))
                .is_some_and(|p| p.own > 0)
        };
        let mut open = Vec::new();
        let mut close = Vec::new();
        for want in duplex.active.keys() {
            if want.destination.is_topic() {
                continue;
            }
            if want.rescue {
                let base = Want {
                    rescue: false,
                    ..want.clone()
                };
                if !own_here(&base) || peer_consumes(&want.destination) {
                    close.push(want.clone());
                }
            } else if own_here(want) && !peer_consumes(&want.destination) {
                let rescue = Want {
                    rescue: true,
                    ..want.clone()
                };
                if !duplex.active.contains_key(&rescue) {
                    open.push(rescue);
                }
            }
        }
        for want in open {
            tracing::info!(
                "network link to {}: duplex: nothing consumes {} on the peer; its messages come here",
                self.settings.uri,
                want.destination
            );
            let local = Arc::clone(&self.settings.local);
            self.pull(want, &local);
        }
        for want in close {
            self.unpull(&want, true);
        }
    }

    /// A new connection to the peer (perhaps another broker of a pair):
    /// the pulls the client subscribes again are closed, and what this
    /// broker's consumers want is pulled afresh from the peer of now.
    pub(super) fn duplex_new_view(&mut self) {
        let Some(duplex) = self.duplex.as_mut() else {
            return;
        };
        // Acknowledgements of the old connection's messages would be
        // dropped by the client: the peer sends those again.
        duplex.publishing.clear();
        duplex.retry.clear();
        for (_, p) in duplex.pulls.drain() {
            p.stop.cancel();
        }
        duplex.active.clear();
        let demand: Vec<(Want, String)> = duplex.demand.values().cloned().collect();
        for (want, path) in demand {
            self.pull(want, &path);
        }
    }
}

/// Hands a message back to the peer as not taken (it redelivers it, and
/// dead-letters it after its redeliveries).
fn refuse(m: Message) {
    tokio::spawn(async move {
        let _ = m.nack().await;
    });
}

/// The engine's message for a pulled MESSAGE: the record whole, under the
/// producer of its message-id block in the peer's store `store`.
fn pulled_message(m: &Message, store: &str) -> Option<NewMessage> {
    if m.header(FORWARD_HEADER) != Some("1") {
        return None;
    }
    let ops = decode_record(&m.body).ok()?;
    let [StoreOp::Enqueue { message, .. }] = <[_; 1]>::try_from(ops).ok()? else {
        return None;
    };
    let id = message.id;
    Some(NewMessage {
        producer: Some(ProducerRef {
            id: Arc::from(format!("{store}#{}", id / BLOCK_IDS)),
            seq: id % BLOCK_IDS + 1,
        }),
        ..message.into_new()
    })
}
