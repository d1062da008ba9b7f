//! What every connection of a broker shares, whatever its protocol.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use hawser_broker::Broker;

use crate::config::FlowControl;
use crate::disk::DiskSpace;

/// What flow control can hold producers for, as `/metrics` names them.
pub const FLOW_RESOURCES: [&str; 6] = [
    "memory",
    "destination memory",
    "store",
    "disk",
    "temporary store",
    "writes behind",
];

/// Sends held or refused by flow control since the broker started, by
/// resource ([`FLOW_RESOURCES`]), for `/metrics`.
#[derive(Debug, Default)]
pub struct FlowEvents {
    held: [AtomicU64; FLOW_RESOURCES.len()],
    refused: [AtomicU64; FLOW_RESOURCES.len()],
}

impl FlowEvents {
    fn slot(resource: &str) -> Option<usize> {
        FLOW_RESOURCES.iter().position(|r| *r == resource)
    }

    /// A send waits for `resource`.
    pub fn held(&self, resource: &str) {
        if let Some(i) = Self::slot(resource) {
            self.held[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A send is refused for `resource` (`producer_flow_control` off).
    pub fn refused(&self, resource: &str) {
        if let Some(i) = Self::slot(resource) {
            self.refused[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// (resource, held, refused) for each resource.
    pub fn counts(&self) -> impl Iterator<Item = (&'static str, u64, u64)> + '_ {
        FLOW_RESOURCES.iter().enumerate().map(|(i, r)| {
            (
                *r,
                self.held[i].load(Ordering::Relaxed),
                self.refused[i].load(Ordering::Relaxed),
            )
        })
    }
}

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
    /// Sends flow control held or refused.
    pub flow_events: FlowEvents,
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
