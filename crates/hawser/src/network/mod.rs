//! The network of brokers (docs/network-plan.md): connectors to peer
//! brokers, and the links that forward messages to where consumers are.

pub mod connector;
pub mod link;

pub use connector::{
    parse as parse_connector, ConnectorError, ConnectorKind, NetworkConnector, NetworkOptions,
};

use std::path::PathBuf;
use std::sync::Arc;

use hawser_broker::Broker;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// `[[network_connector]]`: a connector to peer brokers, with the
/// credentials its links use there.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NetworkConnectorConfig {
    /// `static:(tcp://b:61613,...)?options` or `masterslave:(m,s)?options`:
    /// ActiveMQ's forms and option names; the URIs name the peers' STOMP
    /// listeners.
    pub uri: String,
    /// The user its links log in as at the peers.
    pub user: Option<String>,
    /// A file holding that user's password (its first line).
    pub password_file: Option<PathBuf>,
}

impl NetworkConnectorConfig {
    /// The parsed connector.
    ///
    /// # Errors
    /// If its URI does not parse.
    pub fn connector(&self) -> anyhow::Result<NetworkConnector> {
        Ok(parse_connector(&self.uri)?)
    }
}

/// Starts a link for each peer of each configured connector; `local` is
/// this broker's name (`Config::broker_name`).
///
/// # Errors
/// A connector that does not parse, or a password file that cannot be read.
pub fn start(
    connectors: &[NetworkConnectorConfig],
    local: &str,
    broker: &Arc<Broker>,
    tracker: &TaskTracker,
    shutdown: &CancellationToken,
) -> anyhow::Result<Vec<(String, Arc<link::LinkStats>)>> {
    let local: Arc<str> = Arc::from(local);
    let mut links = Vec::new();
    for n in connectors {
        let connector = n.connector()?;
        let passcode = match &n.password_file {
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .map_err(|e| {
                        anyhow::anyhow!("network connector password file {}: {e}", path.display())
                    })?
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .to_owned(),
            ),
            None => None,
        };
        if connector.options.duplex {
            // The peer would have to forward over the link's own connection.
            anyhow::bail!(
                "network connector {:?}: duplex=true is not built yet; give the peer a connector of its own",
                n.uri
            );
        }
        let options = Arc::new(connector.options.clone());
        for (i, uri) in connector.links().into_iter().enumerate() {
            let uri = uri.to_string();
            let stats = Arc::new(link::LinkStats::default());
            let identity = hawser_client::Identity {
                login: n.user.clone(),
                passcode: passcode.clone(),
                // Stable across this broker's restarts: the peer keeps the
                // duplicate-detection windows of the link's forwards under it.
                client_id: Some(format!("hawser-network:{local}:{}:{i}", options.name)),
                ..hawser_client::Identity::default()
            };
            tracing::info!("network connector {}: link to {uri}", options.name);
            tracker.spawn(link::run(
                link::LinkSettings {
                    broker: Arc::clone(broker),
                    local: Arc::clone(&local),
                    uri: uri.clone(),
                    identity,
                    options: Arc::clone(&options),
                    stats: Arc::clone(&stats),
                },
                shutdown.clone(),
            ));
            links.push((uri, stats));
        }
    }
    Ok(links)
}
