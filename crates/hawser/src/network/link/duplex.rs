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
//! on this broker's disk. Nothing lost, nothing doubled here.
//!
//! One window is left, as in ActiveMQ's duplex bridges: if the link breaks
//! after a message is stored here and before the peer hears the
//! acknowledgement, the peer puts it back, and a consumer on the peer may
//! get it too (marked redelivered). A connector on each side has no such
//! window (the sending side keeps the message until the other has it).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use hawser_broker::message::AsMessageData;
use hawser_broker::store_codec::decode_record;
use hawser_broker::{
    AckMode, Delivery, Destination, NewMessage, ProducerRef, PropertyValue, Seq, StoreOp,
    SubscribeSpec,
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

/// A message the peer sent to pull `.0`.
pub(super) type Pulled = (u64, Message);

/// What the duplex direction keeps.
pub(super) struct Duplex {
    /// Consumers here, by advisory id: what each wants, and the path its
    /// demand has (ending with this broker).
    demand: HashMap<String, (Want, String)>,
    /// The subscriptions on the peer, by what they serve.
    pulls: HashMap<Want, Pull>,
    /// Pull ids to what they serve.
    by_id: HashMap<u64, Want>,
    next: u64,
    tx: mpsc::UnboundedSender<Pulled>,
    /// Published here, waiting for the store before the peer's ack.
    publishing: VecDeque<(Seq, u64, Message)>,
    /// Refused here for now (a limit): tried again on the next tick.
    retry: VecDeque<Pulled>,
    /// The producer-id prefix of the peer's messages here: the link's own
    /// (its peer URI's), so a failed-over peer's messages keep their ids.
    producer_prefix: String,
}

/// One subscription on the peer.
struct Pull {
    id: u64,
    /// Consumers here it serves.
    consumers: usize,
    /// Of those, this broker's own (not its other links'): what a rescue
    /// serves.
    own: usize,
    /// Published here, not yet acknowledged on the peer.
    pending: usize,
    /// No demand left: takes nothing more, and goes once `pending` is 0.
    draining: bool,
    stop: CancellationToken,
}

impl Duplex {
    pub(super) fn new(uri: &str) -> (Duplex, mpsc::UnboundedReceiver<Pulled>) {
        let (tx, rx) = mpsc::unbounded_channel();
        // FNV-1a: stable across runs and builds, unlike std's hasher.
        let hash = uri.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        let duplex = Duplex {
            demand: HashMap::new(),
            pulls: HashMap::new(),
            by_id: HashMap::new(),
            next: 1,
            tx,
            publishing: VecDeque::new(),
            retry: VecDeque::new(),
            producer_prefix: format!("duplex-{hash:016x}"),
        };
        (duplex, rx)
    }

    /// Whether a store record is awaited before acknowledging on the peer.
    pub(super) fn waits_for_store(&self) -> bool {
        !self.publishing.is_empty()
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
        if self.duplex.is_none() {
            return;
        }
        if !a.added {
            let gone = self.duplex.as_mut().expect("duplex").demand.remove(&a.id);
            if let Some((want, path)) = gone {
                self.unpull(&want, !path.contains(','));
            }
            return;
        }
        // Demand that came from the peer is not served from the peer.
        let Some(peer) = self.client.status().broker_name else {
            return;
        };
        let Some(destination) = a.servable(&peer, self.settings.options.consumer_ttl) else {
            return;
        };
        if !self.forwards(destination) {
            return;
        }
        let duplex = self.duplex.as_mut().expect("duplex");
        if duplex.demand.len() >= super::MAX_LINK_DEMANDS {
            return;
        }
        let want = Want {
            destination: destination.clone(),
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

    /// Serves one more consumer of `want` (with demand path `path`) from the peer.
    fn pull(&mut self, want: Want, path: &str) {
        let own = usize::from(!path.contains(','));
        let priority = self.priority(path);
        let selector = network_selector(
            &want,
            &self.settings.local,
            self.settings.options.message_ttl,
        );
        let prefetch = self.settings.options.prefetch_size;
        let duplex = self.duplex.as_mut().expect("duplex");
        if let Some(p) = duplex.pulls.get_mut(&want) {
            p.consumers += 1;
            p.own += own;
            // Wanted again while it was going: it serves on (what it
            // skipped meanwhile the peer gives again once it notices).
            p.draining = false;
            return;
        }
        let id = duplex.next;
        duplex.next += 1;
        let stop = CancellationToken::new();
        duplex.pulls.insert(
            want.clone(),
            Pull {
                id,
                consumers: 1,
                own,
                pending: 0,
                draining: false,
                stop: stop.clone(),
            },
        );
        duplex.by_id.insert(id, want.clone());
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
                            if tx.send((id, m)).is_err() {
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
        let Some(p) = duplex.pulls.get_mut(want) else {
            return;
        };
        p.consumers = p.consumers.saturating_sub(1);
        p.own = p.own.saturating_sub(usize::from(own));
        if p.consumers == 0 {
            p.draining = true;
            self.retire_pull_if_idle(want);
        }
    }

    /// Unsubscribes a draining pull once every message it brought is
    /// acknowledged on the peer: those are acknowledged before the
    /// UNSUBSCRIBE on the same connection, and the rest go back there.
    fn retire_pull_if_idle(&mut self, want: &Want) {
        let duplex = self.duplex.as_mut().expect("duplex");
        let Some(p) = duplex.pulls.get(want) else {
            return;
        };
        if !p.draining || p.pending > 0 {
            return;
        }
        let p = duplex.pulls.remove(want).expect("present");
        duplex.by_id.remove(&p.id);
        duplex.retry.retain(|(id, _)| *id != p.id);
        p.stop.cancel();
    }

    /// A message from the peer: published here.
    pub(super) fn on_pulled(&mut self, id: u64, m: Message) {
        let duplex = self.duplex.as_mut().expect("duplex");
        let Some(p) = duplex.by_id.get(&id).and_then(|w| duplex.pulls.get_mut(w)) else {
            return;
        };
        if p.draining {
            // Not acknowledged: it goes back to the peer's queue.
            return;
        }
        let Some(message) = pulled_message(&m, &duplex.producer_prefix) else {
            tracing::warn!(
                "network link to {}: duplex: message {} is not a forwarded record; left on the peer",
                self.settings.uri,
                m.id()
            );
            return;
        };
        match self.settings.broker.send(self.conn, message, None) {
            Ok(seq) => {
                p.pending += 1;
                duplex.publishing.push_back((seq, id, m));
            }
            Err(e) => {
                if duplex.retry.is_empty() {
                    tracing::warn!(
                        "network link to {}: duplex: message {} not taken here yet: {e}",
                        self.settings.uri,
                        m.id()
                    );
                }
                duplex.retry.push_back((id, m));
            }
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
        let mut open = Vec::new();
        let mut close = Vec::new();
        for (want, p) in &duplex.pulls {
            if p.draining || want.destination.is_topic() {
                continue;
            }
            if want.rescue {
                let base = Want {
                    rescue: false,
                    ..want.clone()
                };
                let wanted = duplex
                    .pulls
                    .get(&base)
                    .is_some_and(|b| !b.draining && b.own > 0);
                if !wanted || peer_consumes(&want.destination) {
                    close.push(want.clone());
                }
            } else if p.own > 0 && !peer_consumes(&want.destination) {
                let rescue = Want {
                    rescue: true,
                    ..want.clone()
                };
                if !duplex.pulls.contains_key(&rescue) {
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

    /// Tries again what this broker refused (its limits), in order.
    pub(super) fn retry_pulled(&mut self) {
        let Some(duplex) = self.duplex.as_mut() else {
            return;
        };
        let again: Vec<Pulled> = duplex.retry.drain(..).collect();
        for (id, m) in again {
            self.on_pulled(id, m);
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
            if let Some(want) = duplex.by_id.get(&id) {
                let p = duplex.pulls.get_mut(want).expect("indexed");
                p.pending -= 1;
                if p.draining && p.pending == 0 {
                    idle.push(want.clone());
                }
            }
        }
        for want in idle {
            self.retire_pull_if_idle(&want);
        }
    }

    /// A new connection to the peer (perhaps another broker of a pair):
    /// the pulls are subscribed again by the client, and served again
    /// from scratch as the peer sees them now; this broker's demand is
    /// what it was.
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
        duplex.by_id.clear();
        let demand: Vec<(String, (Want, String))> = duplex.demand.drain().collect();
        let Some(peer) = self.client.status().broker_name else {
            return;
        };
        let duplex = self.duplex.as_mut().expect("duplex");
        for (id, (want, path)) in demand {
            if path.split(',').any(|b| b == peer) {
                continue;
            }
            duplex.demand.insert(id, (want.clone(), path.clone()));
        }
        let wants: Vec<(Want, String)> = duplex.demand.values().cloned().collect();
        for (want, path) in wants {
            self.pull(want, &path);
        }
    }
}

/// The engine's message for a pulled MESSAGE: the record whole, under the
/// producer of its message-id block at the peer.
fn pulled_message(m: &Message, producer_prefix: &str) -> Option<NewMessage> {
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
            id: Arc::from(format!("{producer_prefix}#{}", id / BLOCK_IDS)),
            seq: id % BLOCK_IDS + 1,
        }),
        ..message.into_new()
    })
}
