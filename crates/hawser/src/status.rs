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

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::connect_info::Connected;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::serve::{IncomingStream, Listener};
use axum::{Json, Router};
use base64::Engine;
use hawser_ha::Role;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::connection::{CoreSettings, Protocol};
pub use crate::network::link::LinkStatus;
use crate::security::tls::Tls;
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

/// How long an HTTPS client has for its TLS handshake.
const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// HTTPS connections whose handshake is done, waiting for the server: at
/// most this many (handshakes run in tasks of their own, so a client that
/// stalls in its handshake holds up no other).
const MAX_READY_TLS: usize = 64;

/// HTTPS handshakes under way at once; a connection beyond them is closed
/// at once (the status endpoint is for a few monitors, not a crowd).
const MAX_STATUS_HANDSHAKES: usize = 64;

/// Where a request came from (axum's connection info, for plain and TLS
/// listeners alike).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Remote(pub(crate) SocketAddr);

impl Connected<IncomingStream<'_, TcpListener>> for Remote {
    fn connect_info(stream: IncomingStream<'_, TcpListener>) -> Self {
        Remote(*stream.remote_addr())
    }
}

impl Connected<IncomingStream<'_, TlsListener>> for Remote {
    fn connect_info(stream: IncomingStream<'_, TlsListener>) -> Self {
        Remote(*stream.remote_addr())
    }
}

/// The status endpoint's HTTPS listener: handshakes done, in order of completion.
struct TlsListener {
    ready: tokio::sync::mpsc::Receiver<(tokio_rustls::server::TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(ready) => ready,
            // The acceptor stopped (shutdown): nothing more comes.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.local)
    }
}

/// Accepts on `listener` and hands connections whose TLS handshake is done
/// to the returned listener, until `shutdown`.
fn tls_listener(
    listener: TcpListener,
    tls: Arc<Tls>,
    shutdown: CancellationToken,
) -> std::io::Result<TlsListener> {
    let local = listener.local_addr()?;
    let (tx, rx) = tokio::sync::mpsc::channel(MAX_READY_TLS);
    let handshakes = Arc::new(tokio::sync::Semaphore::new(MAX_STATUS_HANDSHAKES));
    tokio::spawn(async move {
        loop {
            let (stream, remote) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(_) => {
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                },
                _ = shutdown.cancelled() => return,
            };
            let Ok(permit) = Arc::clone(&handshakes).try_acquire_owned() else {
                tracing::warn!(target: "audit", remote = %remote, "status: too many TLS handshakes at once; closed");
                continue;
            };
            let (acceptor, tx) = (tls.acceptor(), tx.clone());
            tokio::spawn(async move {
                let _permit = permit;
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                    Ok(Ok(stream)) => {
                        let _ = tx.send((stream, remote)).await;
                    }
                    Ok(Err(e)) => {
                        tracing::warn!(target: "audit", remote = %remote, "status: TLS handshake refused: {e}");
                    }
                    Err(_) => {
                        tracing::warn!(target: "audit", remote = %remote, "status: TLS handshake not finished in time");
                    }
                }
            });
        }
    });
    Ok(TlsListener { ready: rx, local })
}

/// Serves `GET /status` on `addr` until `shutdown` (over HTTPS with `tls`);
/// returns the bound address.
///
/// # Errors
/// If the address cannot be bound.
pub async fn serve_status(
    addr: SocketAddr,
    source: StatusSource,
    tls: Option<Arc<Tls>>,
    shutdown: CancellationToken,
) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let master_now = source.role.borrow().name() == "master";
    let first = {
        let role = source.role.borrow();
        RoleEvent {
            at_ms: now_ms(),
            role: role.name().to_owned(),
            epoch: role.epoch(),
        }
    };
    let endpoint = Arc::new(Endpoint {
        since: Mutex::new(now_ms()),
        takeovers: AtomicU64::new(u64::from(master_now)),
        token: crate::admin::new_token(),
        peers: source.peers.clone(),
        tls: tls.is_some(),
        events: Mutex::new(std::collections::VecDeque::from([first])),
        source,
    });
    // The role's timestamp follows its changes, and becoming master counts.
    {
        let endpoint = Arc::clone(&endpoint);
        let mut role = endpoint.source.role.clone();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    changed = role.changed() => {
                        if changed.is_err() {
                            return;
                        }
                        let (name, epoch) = {
                            let r = role.borrow_and_update();
                            (r.name().to_owned(), r.epoch())
                        };
                        // A standby's poll may send the role it had again:
                        // only a change is one.
                        let mut events = endpoint.events.lock();
                        if events.back().is_some_and(|e| e.role == name && e.epoch == epoch) {
                            continue;
                        }
                        let now = now_ms();
                        *endpoint.since.lock() = now;
                        if name == "master" {
                            endpoint.takeovers.fetch_add(1, Ordering::Relaxed);
                        }
                        if events.len() >= MAX_ROLE_EVENTS {
                            events.pop_front();
                        }
                        events.push_back(RoleEvent { at_ms: now, role: name, epoch });
                    }
                    _ = stop.cancelled() => return,
                }
            }
        });
    }
    // Everything but the probes asks for credentials when there are users.
    let protected = Router::new()
        .route("/status", get(status))
        .route("/metrics", get(metrics))
        .route("/api/destinations", get(destinations))
        .merge(crate::admin::api::routes())
        .merge(crate::admin::xml::routes())
        .route_layer(axum::middleware::from_fn_with_state(
            Arc::clone(&endpoint),
            require_credentials,
        ));
    let app = Router::new()
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
        .merge(crate::admin::console::routes())
        .merge(protected)
        .layer(axum::middleware::from_fn(
            crate::admin::console::security_headers,
        ))
        .with_state(endpoint);
    let app = app.into_make_service_with_connect_info::<Remote>();
    match tls {
        None => {
            tokio::spawn(async move {
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(async move { shutdown.cancelled().await })
                    .await;
            });
        }
        Some(tls) => {
            let listener = tls_listener(listener, tls, shutdown.clone())?;
            tokio::spawn(async move {
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(async move { shutdown.cancelled().await })
                    .await;
            });
        }
    }
    Ok(bound)
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

/// `GET /status`: the broker as JSON (`hawser stat`).
async fn status(State(endpoint): Shared) -> Response {
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
async fn metrics(State(endpoint): Shared) -> Response {
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
async fn destinations(State(endpoint): Shared) -> Response {
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
async fn live() -> &'static str {
    "live\n"
}

/// `GET /health/ready`: 200 while the broker serves clients (master or
/// standalone, its store open and not failed); 503 otherwise, a standby
/// included, with the role. Open without credentials, as probes ask it.
async fn ready(State(endpoint): Shared) -> Response {
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

/// The layer of the routes that need credentials (see [`authenticate`]).
async fn require_credentials(
    State(endpoint): Shared,
    ConnectInfo(Remote(remote)): ConnectInfo<Remote>,
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let auth = &endpoint.source.auth;
    let principal = match authenticate(auth, remote, request.headers()).await {
        Ok(p) => p,
        Err(refused) => return refused,
    };
    let user = principal
        .user()
        .map_or_else(|| "anonymous".to_owned(), |u| u.to_string());
    let loopback = remote.ip().is_loopback();
    let Some(access) = endpoint
        .source
        .roles
        .access(&principal, auth.required(), loopback)
    else {
        tracing::warn!(target: "audit", user = %user, remote = %remote, "admin endpoint refused: no role");
        return (
            StatusCode::FORBIDDEN,
            format!("user {user} has no role on the admin endpoint\n"),
        )
            .into_response();
    };
    request
        .extensions_mut()
        .insert(crate::admin::Caller { user, access });
    next.run(request).await
}

/// With users configured, a request must carry HTTP Basic credentials of
/// one (any user may read the status); a refusal is a 401 after the
/// authenticator's delay, as for the other protocols.
async fn authenticate(
    auth: &Authenticator,
    remote: SocketAddr,
    headers: &HeaderMap,
) -> Result<hawser_broker::Principal, Response> {
    if !auth.required() {
        return Ok(hawser_broker::Principal::Anonymous);
    }
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b64| {
            base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .ok()
        })
        .and_then(|raw| String::from_utf8(raw).ok());
    let (user, password) = match basic.as_deref().and_then(|b| b.split_once(':')) {
        Some((u, p)) => (Some(u), Some(p)),
        None => (None, None),
    };
    match auth
        .authenticate(Protocol::Http, Some(remote), user, password, None)
        .await
    {
        Ok(p) => Ok(p),
        // The console asks its own credentials: a challenge would make the
        // browser open its login dialog over it.
        Err(e) if headers.contains_key("x-requested-with") => {
            Err((StatusCode::UNAUTHORIZED, e.to_string()).into_response())
        }
        Err(e) => Err((
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Basic realm=\"hawser\"")],
            e.to_string(),
        )
            .into_response()),
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
