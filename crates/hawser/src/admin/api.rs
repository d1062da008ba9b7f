//! The REST admin API (`/api/...`): what the console and the `hawser`
//! commands read and change. Reading needs [`Access::Read`]; a change needs
//! [`Access::Admin`] and the session token ([`may_change`]), is written to
//! the audit log with its user, and is answered once its store record is
//! durable.
//!
//! - `GET /api/session`: who the caller is, what it may do, the token.
//! - `GET /api/destinations`: every destination's gauges and counts.
//! - `PUT /api/queues/{name}`, `DELETE /api/queues/{name}` (and topics).
//! - `POST /api/queues/{name}/purge`, `POST /api/queues/{name}/retry`.
//! - `GET /api/queues/{name}/messages?max=N`: browse.
//! - `POST /api/queues/{name}/messages/{id}/move` (or `/copy`), body
//!   `{"to": "other"}`.
//! - `GET /api/connections`, `DELETE /api/connections/{id}`.
//! - `GET /api/subscriptions`, `DELETE /api/subscriptions/{client_id}/{name}`
//!   (an offline durable subscription).
//! - `GET /api/cluster`: this broker, its role changes, and its peers.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Extension, Json, Router};
use hawser_broker::{
    wait_durable, Broker, BrokerError, Destination, DestinationKind, Message, Seq,
};
use serde::{Deserialize, Serialize};

use super::access::Remote;
use super::access::{may_change, Access, Caller, Refused};
use crate::status::{Endpoint, RoleEvent, Status};

type Shared = State<Arc<Endpoint>>;

/// How long a change waits for its record to be durable before it answers
/// 503 (the change stands; whether it survives a crash is not known yet).
const DURABLE_TIMEOUT: Duration = Duration::from_secs(10);

/// Messages a browse returns at most.
pub const MAX_BROWSE: usize = 1000;

/// Bytes of each body a browse shows at most (the rest is cut, and said so):
/// a thousand 10 MiB messages are not copied into one answer.
pub const MAX_BROWSE_BODY: usize = 64 * 1024;

/// How long the cluster view waits for each peer.
const PEER_TIMEOUT: Duration = Duration::from_secs(2);

/// The API's routes (behind the credentials layer).
pub(crate) fn routes() -> Router<Arc<Endpoint>> {
    Router::new()
        .route("/api/session", get(session))
        .route(
            "/api/queues/{name}",
            put(create_at::<false>).delete(delete_at::<false>),
        )
        .route(
            "/api/topics/{name}",
            put(create_at::<true>).delete(delete_at::<true>),
        )
        .route("/api/queues/{name}/purge", post(purge))
        .route("/api/queues/{name}/retry", post(retry))
        .route("/api/queues/{name}/messages", get(browse))
        .route("/api/queues/{name}/messages/{id}/{how}", post(move_message))
        .route("/api/connections", get(connections))
        .route("/api/connections/{id}", delete(close_connection))
        .route("/api/subscriptions", get(subscriptions))
        .route(
            "/api/subscriptions/{client_id}/{name}",
            delete(destroy_durable),
        )
        .route("/api/cluster", get(cluster))
}

/// `GET /api/session`.
#[derive(Serialize, Deserialize)]
pub struct Session {
    pub user: String,
    pub access: String,
    /// What a change must carry in the `x-hawser-token` header.
    pub token: String,
}

async fn session(State(endpoint): Shared, Extension(caller): Extension<Caller>) -> Response {
    Json(Session {
        user: caller.user.clone(),
        access: match caller.access {
            Access::Admin => "admin",
            Access::Read => "read",
        }
        .to_owned(),
        token: endpoint.token.clone(),
    })
    .into_response()
}

/// The engine being served, or 503.
fn broker(endpoint: &Endpoint) -> Result<Arc<Broker>, Refused> {
    match endpoint.source.health.serving() {
        Some(s) => Ok(Arc::clone(&s.broker)),
        None => Err(Refused::new(StatusCode::SERVICE_UNAVAILABLE, "not serving")),
    }
}

/// One destination named in a path: not a composite nor a pattern (those
/// name several, and an operator's change is to one).
fn destination(kind: DestinationKind, name: &str) -> Result<Destination, Refused> {
    let d = Destination::new(kind, name)
        .map_err(|e| Refused::new(StatusCode::BAD_REQUEST, e.to_string()))?;
    if d.composite_parts().is_some() || d.is_wildcard() {
        return Err(Refused::new(
            StatusCode::BAD_REQUEST,
            format!("{d} names several destinations; name one"),
        ));
    }
    Ok(d)
}

/// The engine's refusal as an HTTP answer.
fn refused(e: &BrokerError) -> Refused {
    let code = match e {
        BrokerError::UnknownDestination(_)
        | BrokerError::UnknownSubscription(_)
        | BrokerError::NotMovable(_) => StatusCode::NOT_FOUND,
        BrokerError::DestinationInUse(_) | BrokerError::DurableActive(_) => StatusCode::CONFLICT,
        BrokerError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::BAD_REQUEST,
    };
    Refused::new(code, e.to_string())
}

/// Answers a change once record `seq` is durable, with `body`.
async fn durable<T: Serialize>(broker: &Broker, seq: Seq, body: T) -> Result<Response, Refused> {
    let mut watch = broker.store().durability();
    match tokio::time::timeout(DURABLE_TIMEOUT, wait_durable(&mut watch, seq)).await {
        Ok(Ok(())) => Ok(Json(body).into_response()),
        Ok(Err(e)) => Err(Refused::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the store failed: {e}"),
        )),
        Err(_) => Err(Refused::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "made, but not yet durable",
        )),
    }
}

/// The common prologue of a change: allowed, and the engine.
fn change(
    endpoint: &Endpoint,
    caller: &Caller,
    headers: &HeaderMap,
) -> Result<Arc<Broker>, Refused> {
    may_change(caller, headers, &endpoint.token)?;
    broker(endpoint)
}

fn audit(caller: &Caller, remote: SocketAddr, what: &str) {
    tracing::info!(target: "audit", user = %caller, remote = %remote, "admin: {what}");
}

/// What a change did.
#[derive(Serialize, Deserialize, Default)]
pub struct Done {
    /// Messages purged, moved or retried.
    #[serde(default)]
    pub messages: u64,
    /// Messages a retry left in place.
    #[serde(default)]
    pub left: u64,
}

async fn create(
    endpoint: Arc<Endpoint>,
    caller: Caller,
    remote: SocketAddr,
    headers: HeaderMap,
    kind: DestinationKind,
    name: String,
) -> Result<Response, Refused> {
    let b = change(&endpoint, &caller, &headers)?;
    let d = destination(kind, &name)?;
    match b.create_destination(&d) {
        Ok(()) => {
            audit(&caller, remote, &format!("created {d}"));
            Ok((StatusCode::CREATED, Json(Done::default())).into_response())
        }
        Err(e) => Err(refused(&e)),
    }
}

async fn remove(
    endpoint: Arc<Endpoint>,
    caller: Caller,
    remote: SocketAddr,
    headers: HeaderMap,
    kind: DestinationKind,
    name: String,
) -> Result<Response, Refused> {
    let b = change(&endpoint, &caller, &headers)?;
    let d = destination(kind, &name)?;
    match b.delete_destination(&d) {
        Ok(seq) => {
            audit(&caller, remote, &format!("deleted {d}"));
            durable(&b, seq, Done::default()).await
        }
        Err(e) => Err(refused(&e)),
    }
}

/// `PUT /api/queues/{name}` (`TOPIC`: `/api/topics/{name}`).
async fn create_at<const TOPIC: bool>(
    State(e): Shared,
    Extension(c): Extension<Caller>,
    ConnectInfo(Remote(r)): ConnectInfo<Remote>,
    h: HeaderMap,
    Path(name): Path<String>,
) -> Result<Response, Refused> {
    create(e, c, r, h, kind(TOPIC), name).await
}

/// `DELETE /api/queues/{name}` (`TOPIC`: `/api/topics/{name}`).
async fn delete_at<const TOPIC: bool>(
    State(e): Shared,
    Extension(c): Extension<Caller>,
    ConnectInfo(Remote(r)): ConnectInfo<Remote>,
    h: HeaderMap,
    Path(name): Path<String>,
) -> Result<Response, Refused> {
    remove(e, c, r, h, kind(TOPIC), name).await
}

fn kind(topic: bool) -> DestinationKind {
    if topic {
        DestinationKind::Topic
    } else {
        DestinationKind::Queue
    }
}

/// `POST /api/queues/{name}/purge`.
async fn purge(
    State(endpoint): Shared,
    Extension(caller): Extension<Caller>,
    ConnectInfo(Remote(remote)): ConnectInfo<Remote>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Response, Refused> {
    let b = change(&endpoint, &caller, &headers)?;
    let d = destination(DestinationKind::Queue, &name)?;
    match b.purge(&d) {
        Ok((messages, seq)) => {
            audit(
                &caller,
                remote,
                &format!("purged {messages} messages of {d}"),
            );
            durable(&b, seq, Done { messages, left: 0 }).await
        }
        Err(e) => Err(refused(&e)),
    }
}

/// `POST /api/queues/{name}/retry`: the dead letters back where they died.
async fn retry(
    State(endpoint): Shared,
    Extension(caller): Extension<Caller>,
    ConnectInfo(Remote(remote)): ConnectInfo<Remote>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Response, Refused> {
    let b = change(&endpoint, &caller, &headers)?;
    let d = destination(DestinationKind::Queue, &name)?;
    match b.retry_dead_letters(&d) {
        Ok(m) => {
            audit(
                &caller,
                remote,
                &format!("retried {} messages of {d}, {} left", m.messages, m.left),
            );
            durable(
                &b,
                m.seq,
                Done {
                    messages: m.messages,
                    left: m.left,
                },
            )
            .await
        }
        Err(e) => Err(refused(&e)),
    }
}

/// The body of a move or copy.
#[derive(Deserialize)]
struct MoveTo {
    /// The queue it goes to.
    to: String,
}

/// `POST /api/queues/{name}/messages/{id}/move` (or `copy`).
async fn move_message(
    State(endpoint): Shared,
    Extension(caller): Extension<Caller>,
    ConnectInfo(Remote(remote)): ConnectInfo<Remote>,
    headers: HeaderMap,
    Path((name, id, how)): Path<(String, u64, String)>,
    Json(body): Json<MoveTo>,
) -> Result<Response, Refused> {
    let b = change(&endpoint, &caller, &headers)?;
    let from = destination(DestinationKind::Queue, &name)?;
    let to = destination(DestinationKind::Queue, &body.to)?;
    let copy = match how.as_str() {
        "move" => false,
        "copy" => true,
        _ => return Err(Refused::new(StatusCode::NOT_FOUND, "move or copy")),
    };
    match b.move_message(&from, id, &to, copy) {
        Ok(m) => {
            audit(
                &caller,
                remote,
                &format!("{how} message {id} from {from} to {to}"),
            );
            durable(
                &b,
                m.seq,
                Done {
                    messages: m.messages,
                    left: 0,
                },
            )
            .await
        }
        Err(e) => Err(refused(&e)),
    }
}

#[derive(Deserialize)]
struct BrowseQuery {
    max: Option<usize>,
}

/// A message as the API shows it. The body is text (invalid UTF-8
/// replaced); the console shows it as text, never as markup.
#[derive(Serialize, Deserialize)]
pub struct MessageView {
    pub id: u64,
    pub message_id: Option<String>,
    pub correlation_id: Option<String>,
    pub message_type: Option<String>,
    pub original_destination: Option<String>,
    pub priority: u8,
    pub persistent: bool,
    pub timestamp_ms: u64,
    pub expires_ms: Option<u64>,
    pub redeliveries: u32,
    pub properties: BTreeMap<String, String>,
    pub body_bytes: usize,
    /// The body as text, its first [`MAX_BROWSE_BODY`] bytes.
    pub body: String,
    /// The body was longer than what `body` shows.
    #[serde(default)]
    pub body_truncated: bool,
}

fn message_view(m: &Message, redeliveries: u32) -> MessageView {
    MessageView {
        id: m.id,
        message_id: m.fields.message_id.as_deref().map(str::to_owned),
        correlation_id: m.fields.correlation_id.as_deref().map(str::to_owned),
        message_type: m.fields.message_type.as_deref().map(str::to_owned),
        original_destination: m
            .fields
            .original_destination
            .as_ref()
            .map(|d| d.to_string()),
        priority: m.priority,
        persistent: m.persistent,
        timestamp_ms: m.timestamp_ms,
        expires_ms: m.expires_ms,
        redeliveries,
        properties: m
            .fields
            .properties
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        body_bytes: m.body.len(),
        body: String::from_utf8_lossy(&m.body[..m.body.len().min(MAX_BROWSE_BODY)]).into_owned(),
        body_truncated: m.body.len() > MAX_BROWSE_BODY,
    }
}

/// `GET /api/queues/{name}/messages?max=N`: the messages waiting in memory,
/// in dispatch order.
async fn browse(
    State(endpoint): Shared,
    Path(name): Path<String>,
    Query(q): Query<BrowseQuery>,
) -> Result<Response, Refused> {
    let b = broker(&endpoint)?;
    let d = destination(DestinationKind::Queue, &name)?;
    let max = q.max.unwrap_or(100).min(MAX_BROWSE);
    let rows: Vec<MessageView> = b
        .browse(&d, max)
        .iter()
        .map(|(m, redeliveries, _)| message_view(m, *redeliveries))
        .collect();
    Ok(Json(rows).into_response())
}

/// A connection as the API shows it.
#[derive(Serialize, Deserialize)]
pub struct ConnectionRow {
    pub id: u64,
    pub protocol: String,
    pub remote: Option<String>,
    pub client_id: Option<String>,
    pub user: Option<String>,
    pub subscriptions: usize,
    pub transactions: usize,
    pub temporaries: usize,
}

/// `GET /api/connections`.
async fn connections(State(endpoint): Shared) -> Result<Response, Refused> {
    let b = broker(&endpoint)?;
    let rows: Vec<ConnectionRow> = b
        .connections()
        .into_iter()
        .map(|c| ConnectionRow {
            id: c.id,
            protocol: c.info.protocol.to_string(),
            remote: c.info.remote.map(|r| r.to_string()),
            client_id: c.info.client_id.as_deref().map(str::to_owned),
            user: c.info.principal.user().map(|u| u.to_string()),
            subscriptions: c.subscriptions,
            transactions: c.transactions,
            temporaries: c.temporaries,
        })
        .collect();
    Ok(Json(rows).into_response())
}

/// `DELETE /api/connections/{id}`.
async fn close_connection(
    State(endpoint): Shared,
    Extension(caller): Extension<Caller>,
    ConnectInfo(Remote(remote)): ConnectInfo<Remote>,
    headers: HeaderMap,
    Path(id): Path<u64>,
) -> Result<Response, Refused> {
    let b = change(&endpoint, &caller, &headers)?;
    if b.close_connection(id, "closed by an administrator") {
        audit(&caller, remote, &format!("closed connection {id}"));
        Ok(Json(Done::default()).into_response())
    } else {
        Err(Refused::new(
            StatusCode::NOT_FOUND,
            "no such client connection (a network link's is stopped with its connector)",
        ))
    }
}

/// A subscription as the API shows it.
#[derive(Serialize, Deserialize)]
pub struct SubscriptionRow {
    /// `None`: an offline durable subscription.
    pub connection: Option<u64>,
    pub client_id: Option<String>,
    pub id: Option<String>,
    pub destination: String,
    pub durable_name: Option<String>,
    pub selector: Option<String>,
    pub pending: u64,
    pub inflight: u64,
    pub dispatched: u64,
    pub enqueued: u64,
    pub dequeued: u64,
    pub network: bool,
}

/// `GET /api/subscriptions`.
async fn subscriptions(State(endpoint): Shared) -> Result<Response, Refused> {
    let b = broker(&endpoint)?;
    Ok(Json(subscription_rows(&b)).into_response())
}

/// Every subscription, as rows.
pub fn subscription_rows(b: &Broker) -> Vec<SubscriptionRow> {
    b.subscriptions()
        .into_iter()
        .map(|s| SubscriptionRow {
            connection: s.connection,
            client_id: s.client_id.as_deref().map(str::to_owned),
            id: s.id.as_deref().map(str::to_owned),
            destination: s.destination.to_string(),
            durable_name: s.durable_name.as_deref().map(str::to_owned),
            selector: s.selector.as_deref().map(str::to_owned),
            pending: s.pending,
            inflight: s.inflight,
            dispatched: s.dispatched,
            enqueued: s.enqueued,
            dequeued: s.dequeued,
            network: s.network,
        })
        .collect()
}

/// `DELETE /api/subscriptions/{client_id}/{name}`.
async fn destroy_durable(
    State(endpoint): Shared,
    Extension(caller): Extension<Caller>,
    ConnectInfo(Remote(remote)): ConnectInfo<Remote>,
    headers: HeaderMap,
    Path((client_id, name)): Path<(String, String)>,
) -> Result<Response, Refused> {
    let b = change(&endpoint, &caller, &headers)?;
    match b.destroy_durable(&client_id, &name) {
        Ok(seq) => {
            audit(
                &caller,
                remote,
                &format!("deleted durable subscription {name:?} of client id {client_id:?}"),
            );
            durable(&b, seq, Done::default()).await
        }
        Err(e) => Err(refused(&e)),
    }
}

/// `GET /api/cluster`.
#[derive(Serialize, Deserialize)]
pub struct Cluster {
    /// This broker.
    pub this: Status,
    /// Its role changes, oldest first (the last [`crate::status::MAX_ROLE_EVENTS`]).
    pub events: Vec<RoleEvent>,
    /// Each configured peer (`[admin] peers`): its status, or why not.
    pub peers: Vec<Peer>,
}

/// A peer's answer.
#[derive(Serialize, Deserialize)]
pub struct Peer {
    pub admin: String,
    pub status: Option<Status>,
    pub error: Option<String>,
}

async fn cluster(State(endpoint): Shared, headers: HeaderMap) -> Response {
    // The caller's credentials go on to the peers (a cluster shares its
    // users); nothing else of the request does.
    let credentials = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .map(str::to_owned);
    if endpoint.tls && !endpoint.peers.is_empty() {
        // Peers are asked over plain HTTP, which would carry the caller's
        // credentials in clear: an HTTPS endpoint does not ask them.
        let peers = endpoint
            .peers
            .iter()
            .map(|addr| Peer {
                admin: addr.clone(),
                status: None,
                error: Some(
                    "not asked: peers are asked over plain HTTP, and this endpoint serves HTTPS"
                        .into(),
                ),
            })
            .collect();
        return Json(Cluster {
            this: endpoint.status(),
            events: endpoint.events.lock().iter().cloned().collect(),
            peers,
        })
        .into_response();
    }
    let asks: Vec<_> = endpoint
        .peers
        .iter()
        .map(|addr| {
            let (credentials, addr) = (credentials.clone(), addr.clone());
            tokio::spawn(async move {
                let answer = crate::stat::fetch::<Status>(
                    &addr,
                    "/status",
                    credentials.as_deref(),
                    None,
                    PEER_TIMEOUT,
                )
                .await;
                match answer {
                    Ok(status) => Peer {
                        admin: addr.clone(),
                        status: Some(status),
                        error: None,
                    },
                    Err(e) => Peer {
                        admin: addr.clone(),
                        status: None,
                        error: Some(e.message),
                    },
                }
            })
        })
        .collect();
    let mut peers = Vec::with_capacity(asks.len());
    for ask in asks {
        if let Ok(peer) = ask.await {
            peers.push(peer);
        }
    }
    Json(Cluster {
        this: endpoint.status(),
        events: endpoint.events.lock().iter().cloned().collect(),
        peers,
    })
    .into_response()
}
