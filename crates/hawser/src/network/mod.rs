//! The network of brokers (docs/network-plan.md): connectors to peer
//! brokers, and the links that forward messages to where consumers are.

pub mod connector;
pub mod link;
pub mod path;

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

/// The file in the data directory naming the store to the network.
const STORE_NAME_FILE: &str = "network-store-name";

/// The name of the store in `data_dir` among network peers: made once, at
/// random, and kept with the store. Forwards are named by it (with the
/// message id), so the broker that serves the store next (a restart, or
/// the slave of a shared-store pair, whose `[ha] node` differs) sends a
/// repeated forward under the same name and the peer drops it.
///
/// # Errors
/// If the file cannot be read or written.
pub fn store_name(data_dir: &std::path::Path) -> anyhow::Result<String> {
    let path = data_dir.join(STORE_NAME_FILE);
    match std::fs::read_to_string(&path) {
        Ok(name) if !name.trim().is_empty() => return Ok(name.trim().to_owned()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => anyhow::bail!("{}: {e}", path.display()),
    }
    let name = format!("store-{}", crate::token::random_hex());
    // Written whole or not at all: a crash leaves no half name.
    let tmp = data_dir.join(format!("{STORE_NAME_FILE}.tmp"));
    let write = || -> std::io::Result<()> {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(name.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        std::fs::File::open(data_dir)?.sync_all()
    };
    write().map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok(name)
}

/// Starts a link for each peer of each configured connector; `local` is
/// this broker's name (`Config::broker_name`), `store` its store's
/// ([`store_name`]).
///
/// # Errors
/// A connector that does not parse, or a password file that cannot be read.
pub fn start(
    connectors: &[NetworkConnectorConfig],
    local: &str,
    store: &str,
    broker: &Arc<Broker>,
    tracker: &TaskTracker,
    shutdown: &CancellationToken,
) -> anyhow::Result<Vec<(String, Arc<link::LinkStats>)>> {
    let local: Arc<str> = Arc::from(local);
    let store: Arc<str> = Arc::from(store);
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
        let options = Arc::new(connector.options.clone());
        for (i, uri) in connector.links().into_iter().enumerate() {
            let uri = uri.to_string();
            let stats = Arc::new(link::LinkStats::default());
            let identity = hawser_client::Identity {
                login: n.user.clone(),
                passcode: passcode.clone(),
                // The store's, not the node's: stable across restarts and
                // across a shared-store pair's failover, for the peer keeps
                // the duplicate-detection windows of the link's forwards
                // under it. (While the peer still holds a dead master's
                // connection, the slave's is refused, and retried.)
                client_id: Some(format!("hawser-network:{store}:{}:{i}", options.name)),
                ..hawser_client::Identity::default()
            };
            tracing::info!("network connector {}: link to {uri}", options.name);
            tracker.spawn(link::run(
                link::LinkSettings {
                    broker: Arc::clone(broker),
                    local: Arc::clone(&local),
                    store: Arc::clone(&store),
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

#[cfg(test)]
mod tests {
    #[test]
    fn a_store_keeps_its_name() {
        let dir = tempfile::tempdir().unwrap();
        let first = super::store_name(dir.path()).unwrap();
        assert!(first.starts_with("store-"), "{first}");
        assert_eq!(super::store_name(dir.path()).unwrap(), first);
        let other = tempfile::tempdir().unwrap();
        assert_ne!(super::store_name(other.path()).unwrap(), first);
    }
}
