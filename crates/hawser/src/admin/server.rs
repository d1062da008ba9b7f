//! The admin endpoint's HTTP server: its routes (status, metrics and probes
//! from `crate::status`, the API, the XML pages, the console), the
//! credentials layer that puts the [`Caller`] on each request, and the
//! HTTPS listener.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::connect_info::Connected;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::serve::{IncomingStream, Listener};
use axum::Router;
use base64::Engine;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use super::access::{Caller, Remote};
use crate::connection::Protocol;
use crate::security::tls::Tls;
use crate::security::Authenticator;
use crate::status::{self, Endpoint, StatusSource};

type Shared = State<Arc<Endpoint>>;

/// How long an HTTPS client has for its TLS handshake.
const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// HTTPS connections whose handshake is done, waiting for the server: at
/// most this many (handshakes run in tasks of their own, so a client that
/// stalls in its handshake holds up no other).
const MAX_READY_TLS: usize = 64;

/// HTTPS handshakes under way at once; a connection beyond them is closed
/// at once (the status endpoint is for a few monitors, not a crowd).
const MAX_STATUS_HANDSHAKES: usize = 64;

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

/// Serves the admin endpoint on `addr` until `shutdown` (over HTTPS with `tls`);
/// returns the bound address.
///
/// # Errors
/// If the address cannot be bound.
pub async fn serve(
    addr: SocketAddr,
    source: StatusSource,
    tls: Option<Arc<Tls>>,
    shutdown: CancellationToken,
) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let endpoint = Endpoint::new(source, tls.is_some());
    endpoint.follow_roles(shutdown.clone());
    // Everything but the probes asks for credentials when there are users.
    let protected = Router::new()
        .route("/status", get(status::status))
        .route("/metrics", get(status::metrics))
        .route("/api/destinations", get(status::destinations))
        .merge(super::api::routes())
        .merge(super::xml::routes())
        .route_layer(axum::middleware::from_fn_with_state(
            Arc::clone(&endpoint),
            require_credentials,
        ));
    let app = Router::new()
        .route("/health/live", get(status::live))
        .route("/health/ready", get(status::ready))
        .merge(super::console::routes())
        .merge(protected)
        .layer(axum::middleware::from_fn(super::console::security_headers))
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
    request.extensions_mut().insert(Caller { user, access });
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
