//! The broker's HTTP endpoint (`--admin`, or `--status` as before): what
//! this broker is right now, for `hawser stat`, monitoring, probes and
//! failover drills. A standby has no STOMP listener, so this is how one
//! asks it anything.
//!
//! - `GET /status`: JSON: the role, whether the store failed, which
//!   resources hold producers back ([`Health`]), connections, links.
//! - `GET /metrics`: Prometheus's text format ([`crate::metrics`]).
//! - `GET /health/live`, `GET /health/ready`: probes; ready means serving
//!   clients, which a standby is not.
//!
//! These handlers and the [`Endpoint`] they share; `crate::admin` serves
//! them with the rest of the admin endpoint.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use hawser_ha::Role;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::connection::CoreSettings;
pub use crate::network::link::LinkStatus;
use crate::security::Authenticator;

/// The answer to `GET /status`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// `standalone`, `slave` or `master`.
    pub role: String,
    /// The master's epoch (this broker's, when it is the master); 0 when standalone.
    pub epoch: u64,
    /// This broker's name in the shared store, if it is in one.
    pub node: Option<String>,
    /// Where it serves STOMP (when master or standalone).
    pub stomp: String,
    /// Its data directory.
    pub data_dir: PathBuf,
    /// When it took its current role, ms since the Unix epoch.
    pub since_ms: u64,
    /// The process id.
    pub pid: u32,
    /// Why the store failed, once it has (with the files concerned). A standalone
    /// broker is then stopping: it accepts nothing more and exits with code 74.
    #[serde(default)]
    pub failed: Option<String>,
    /// What holds producers back now (flow control): `memory` (pending messages),
    /// `store` (journal size), `disk` (free space); empty when nothing does.
    #[serde(default)]
    pub producers_held_by: Vec<String>,
    /// Free bytes on the journal's file system at the last sample, when sampled
    /// (journal persistence with `min_free_disk_bytes` above 0).
    #[serde(default)]
    pub disk_free_bytes: Option<u64>,
    /// Open client connections by protocol (`stomp`, `openwire`); empty on a
    /// standby.
    #[serde(default)]
    pub connections: BTreeMap<String, usize>,
    /// Its network links, one per peer of each network connector.
    #[serde(default)]
    pub network: Vec<LinkStatus>,
}

/// One destination as `/api/destinations` gives it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DestinationRow {
    /// `queue://name`, `topic://name`...
    pub destination: String,
    pub depth: u64,
    pub paged: u64,
    pub inflight: u64,
    pub consumers: u64,
    #[serde(default)]
    pub producers: u64,
    pub enqueued: u64,
    pub dequeued: u64,
    pub expired: u64,
    pub dead_lettered: u64,
}

/// What the broker reports beyond its role, kept up to date by the server.
#[derive(Default)]
pub struct Health {
    /// Why the store failed, once it has.
    failed: Mutex<Option<String>>,
    /// The settings of the connections of the store being served, while one
    /// is: the flow-control conditions are read from them.
    serving: Mutex<Option<Arc<CoreSettings>>>,
    /// The network links of the store being served.
    network: Mutex<Vec<(String, Arc<crate::network::link::LinkStats>)>>,
}

impl Health {
    /// Records that the store failed, and why.
    pub fn set_failed(&self, reason: String) {
        self.failed.lock().get_or_insert(reason);
    }

    /// Why the store failed, if it has.
    pub fn failed(&self) -> Option<String> {
        self.failed.lock().clone()
    }

    /// Sets (or with `None` clears) the store being served.
    pub fn set_serving(&self, settings: Option<Arc<CoreSettings>>) {
        *self.serving.lock() = settings;
    }

    /// The settings of the connections of the store being served, if one is.
    pub fn serving(&self) -> Option<Arc<CoreSettings>> {
        self.serving.lock().clone()
    }

    /// The resources that hold producers back now; the same conditions as the
    /// connections' flow control (`Reader::wait_for_room`).
    pub fn producers_held_by(&self) -> Vec<&'static str> {
        let Some(s) = self.serving.lock().clone() else {
            return Vec::new();
        };
        let mut held = Vec::new();
        if s.broker.memory().is_full() {
            held.push("memory");
        }
        if let Err(which) = s.store_room() {
            held.push(which);
        }
        held
    }

    /// Open connections by protocol, while a store is served.
    pub fn connections(&self) -> BTreeMap<String, usize> {
        let Some(s) = self.serving.lock().clone() else {
            return BTreeMap::new();
        };
        s.broker
            .connections_by_protocol()
            .into_iter()
            .map(|(p, n)| (p.to_string(), n))
            .collect()
    }

    /// Sets the network links being run (none when nothing is served).
    pub fn set_network(&self, links: Vec<(String, Arc<crate::network::link::LinkStats>)>) {
        *self.network.lock() = links;
    }

    /// The network links and their counters.
    pub fn network(&self) -> Vec<LinkStatus> {
        self.network
            .lock()
            .iter()
            .map(|(peer, s)| s.snapshot(peer))
            .collect()
    }

    /// Free bytes on the journal's file system: the last sample, less what the
    /// journal wrote since.
    pub fn disk_free_bytes(&self) -> Option<u64> {
        let s = self.serving.lock().clone()?;
        s.disk.free_bytes()?;
        Some(s.disk.free_now(s.broker.store().disk_bytes()))
    }
}

/// A change of this broker's role, for the cluster view's timeline.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RoleEvent {
    /// When, ms since the Unix epoch.
    pub at_ms: u64,
    /// `standalone`, `slave` or `master`.
    pub role: String,
    /// The master's epoch then.
    pub epoch: u64,
}

/// Role changes the endpoint remembers (the oldest go first).
pub const MAX_ROLE_EVENTS: usize = 100;

/// What the endpoint needs to answer.
#[derive(Clone)]
pub struct StatusSource {
    /// The role, as the server updates it.
    pub role: watch::Receiver<Role>,
    /// Failure and flow control, as the server updates them.
    pub health: Arc<Health>,
    /// Who may ask: with users, every request authenticates (HTTP Basic).
    pub auth: Arc<Authenticator>,
    /// Who may read and who may change (`[admin] admins`, `readers`).
    pub roles: crate::admin::Roles,
    /// The other brokers' admin endpoints (`[admin] peers`).
    pub peers: Vec<String>,
    /// Fixed facts about the broker.
    pub node: Option<String>,
    pub stomp: String,
    pub data_dir: PathBuf,
}

/// What the endpoint's handlers share.
pub(crate) struct Endpoint {
    pub(crate) source: StatusSource,
    /// When the broker took its current role, ms since the Unix epoch.
    since: Mutex<u64>,
    /// Times it became master.
    takeovers: AtomicU64,
    /// What every change must carry (see `admin::access`).
    pub(crate) token: String,
    /// The other brokers' admin endpoints.
    pub(crate) peers: Vec<String>,
    /// Served over HTTPS.
    pub(crate) tls: bool,
    /// This broker's role changes, at most [`MAX_ROLE_EVENTS`].
    pub(crate) events: Mutex<std::collections::VecDeque<RoleEvent>>,
}

type Shared = State<Arc<Endpoint>>;

impl Endpoint {
    /// The endpoint's shared state for `source` (served over HTTPS with `tls`).
    pub(crate) fn new(source: StatusSource, tls: bool) -> Arc<Endpoint> {
        let (master_now, first) = {
            let role = source.role.borrow();
            (
                role.name() == "master",
                RoleEvent {
                    at_ms: now_ms(),
                    role: role.name().to_owned(),
                    epoch: role.epoch(),
                },
            )
        };
        Arc::new(Endpoint {
            since: Mutex::new(now_ms()),
            takeovers: AtomicU64::new(u64::from(master_now)),
            token: crate::admin::new_token(),
            peers: source.peers.clone(),
            tls,
            events: Mutex::new(std::collections::VecDeque::from([first])),
            source,
        })
    }

    /// Follows the role until `stop`: its timestamp, the takeovers, the
    /// timeline.
    pub(crate) fn follow_roles(self: &Arc<Self>, stop: CancellationToken) {
        let endpoint = Arc::clone(self);
        let mut role = endpoint.source.role.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    changed = role.changed() => {
                        if changed.is_err() {
                            return;
                        }
                        endpoint.role_changed(&role.borrow_and_update());
                    }
                    _ = stop.cancelled() => return,
                }
            }
        });
    }

    /// The role watch said `role`. A standby's poll may send the role it had
    /// again: only a change is one.
    fn role_changed(&self, role: &Role) {
        let (name, epoch) = (role.name().to_owned(), role.epoch());
        let mut events = self.events.lock();
        if events
            .back()
            .is_some_and(|e| e.role == name && e.epoch == epoch)
        {
            return;
        }
        let now = now_ms();
        *self.since.lock() = now;
        if name == "master" {
            self.takeovers.fetch_add(1, Ordering::Relaxed);
        }
        if events.len() >= MAX_ROLE_EVENTS {
            events.pop_front();
        }
        events.push_back(RoleEvent {
            at_ms: now,
            role: name,
            epoch,
        });
    }
}

/// `GET /status`: the broker as JSON (`hawser stat`).
pub(crate) async fn status(State(endpoint): Shared) -> Response {
    Json(endpoint.status()).into_response()
}

impl Endpoint {
    /// What `/status` says.
    pub(crate) fn status(&self) -> Status {
        let endpoint = self;
        let source = &self.source;
        let role = source.role.borrow().clone();
        Status {
            role: role.name().to_owned(),
            epoch: role.epoch(),
            node: source.node.clone(),
            stomp: source.stomp.clone(),
            data_dir: source.data_dir.clone(),
            since_ms: *endpoint.since.lock(),
            pid: std::process::id(),
            failed: source.health.failed(),
            disk_free_bytes: source.health.disk_free_bytes(),
            connections: source.health.connections(),
            network: source.health.network(),
            producers_held_by: source
                .health
                .producers_held_by()
                .into_iter()
                .map(str::to_owned)
                .collect(),
        }
    }
}

/// `GET /metrics`: Prometheus's text format (see [`crate::metrics`]).
pub(crate) async fn metrics(State(endpoint): Shared) -> Response {
    let source = &endpoint.source;
    let role = source.role.borrow().clone();
    let network = source.health.network();
    let health = &source.health;
    let body = crate::metrics::render(&crate::metrics::Scrape {
        role: &role,
        since_ms: *endpoint.since.lock(),
        takeovers: endpoint.takeovers.load(Ordering::Relaxed),
        failed: health.failed().is_some(),
        serving: health.serving(),
        held: health.producers_held_by(),
        disk_free: health.disk_free_bytes(),
        network: &network,
    });
    ([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], body).into_response()
}

/// `GET /api/destinations`: every destination's gauges and counts, as
/// `/metrics` has them (`hawser dstat`); 503 while no store is served.
pub(crate) async fn destinations(State(endpoint): Shared) -> Response {
    let source = &endpoint.source;
    let Some(serving) = source.health.serving() else {
        return (StatusCode::SERVICE_UNAVAILABLE, "not serving\n").into_response();
    };
    let sample = serving.broker.metrics().sample();
    let rows: Vec<DestinationRow> = sample
        .destinations
        .iter()
        .map(|(d, s)| DestinationRow {
            destination: d.to_string(),
            depth: s.gauges.depth,
            paged: s.gauges.paged,
            inflight: s.gauges.inflight,
            consumers: s.gauges.consumers,
            producers: s.gauges.producers,
            enqueued: s.counts.enqueued,
            dequeued: s.counts.dequeued,
            expired: s.counts.expired,
            dead_lettered: s.counts.dead_lettered,
        })
        .collect();
    Json(rows).into_response()
}

/// `GET /health/live`: the process answers (a standby too). Open without
/// credentials, as probes ask it; it says nothing else.
pub(crate) async fn live() -> &'static str {
    "live\n"
}

/// `GET /health/ready`: 200 while the broker serves clients (master or
/// standalone, its store open and not failed); 503 otherwise, a standby
/// included, with the role. Open without credentials, as probes ask it.
pub(crate) async fn ready(State(endpoint): Shared) -> Response {
    let source = &endpoint.source;
    let role = source.role.borrow().name().to_owned();
    let serving = source.health.serving().is_some();
    match source.health.failed() {
        None if serving => (StatusCode::OK, format!("ready: {role}\n")).into_response(),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {role}\n"),
        )
            .into_response(),
        Some(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {role}, the store failed\n"),
        )
            .into_response(),
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
