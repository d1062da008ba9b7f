//! The HTTP status endpoint (`GET /status`): what this broker is right now, for
//! `hawser stat`, health checks and failover drills. A standby has no STOMP
//! listener, so this is how one asks it anything.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::routing::get;
use axum::{Json, Router};
use hawser_ha::Role;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

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
}

/// What the endpoint needs to answer.
#[derive(Clone)]
pub struct StatusSource {
    /// The role, as the server updates it.
    pub role: watch::Receiver<Role>,
    /// Fixed facts about the broker.
    pub node: Option<String>,
    pub stomp: String,
    pub data_dir: PathBuf,
}

/// Serves `GET /status` on `addr` until `shutdown`; returns the bound address.
///
/// # Errors
/// If the address cannot be bound.
pub async fn serve_status(
    addr: SocketAddr,
    source: StatusSource,
    shutdown: CancellationToken,
) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let since = std::sync::Arc::new(std::sync::Mutex::new(now_ms()));
    // The role's timestamp follows its changes.
    {
        let mut role = source.role.clone();
        let since = std::sync::Arc::clone(&since);
        let stop = shutdown.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    changed = role.changed() => {
                        if changed.is_err() {
                            return;
                        }
                        if let Ok(mut s) = since.lock() {
                            *s = now_ms();
                        }
                    }
                    _ = stop.cancelled() => return,
                }
            }
        });
    }
    let app = Router::new().route(
        "/status",
        get(move || {
            let source = source.clone();
            let since = std::sync::Arc::clone(&since);
            async move {
                let role = source.role.borrow().clone();
                Json(Status {
                    role: role.name().to_owned(),
                    epoch: role.epoch(),
                    node: source.node.clone(),
                    stomp: source.stomp.clone(),
                    data_dir: source.data_dir.clone(),
                    since_ms: since.lock().map(|s| *s).unwrap_or(0),
                    pid: std::process::id(),
                })
            }
        }),
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await;
    });
    Ok(bound)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
