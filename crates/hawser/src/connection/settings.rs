//! What every connection of a broker shares, whatever its protocol.

use std::sync::Arc;

use hawser_broker::Broker;

use crate::config::FlowControl;
use crate::disk::DiskSpace;

/// Settings and shared state of every connection of one broker.
pub struct CoreSettings {
    /// The engine.
    pub broker: Arc<Broker>,
    /// Items queued for a connection's writer above which its client is no
    /// longer read, until it has read enough of its own.
    pub max_outbound_frames: usize,
    /// Journal size that triggers flow control.
    pub max_store_bytes: u64,
    /// What a full broker does to producers.
    pub flow_control: FlowControl,
    /// Free space on the journal's file system (producers wait while it is low).
    pub disk: Arc<DiskSpace>,
    /// Broker URIs advertised to clients (ActiveMQ's updateClusterClients).
    pub cluster: tokio::sync::watch::Receiver<Arc<crate::config::ClusterConfig>>,
    /// Who may connect (every protocol asks it at its handshake).
    pub auth: Arc<crate::security::Authenticator>,
}

impl CoreSettings {
    /// `Err` with the resource's name while the store has grown to its limit or
    /// the disk's free space is low: producers are held (or refused) then.
    pub fn store_room(&self) -> Result<(), &'static str> {
        let written = self.broker.store().disk_bytes();
        if written >= self.max_store_bytes {
            Err("store")
        } else if self.disk.is_low(written) {
            Err("disk")
        } else {
            Ok(())
        }
    }
}
