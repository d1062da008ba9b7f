//! The key of a message container: a queue, a durable subscription, or one
//! connection's non-durable topic subscription, and the store's name for it.

use std::sync::Arc;

use crate::destination::{Destination, DestinationKind};
use crate::outbox::ConnectionId;
use crate::store::StoreKey;

/// Where a container's messages come from and whether the store keeps them.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum ContainerKey {
    /// A queue or temporary queue.
    Queue(Destination),
    /// A durable topic subscription.
    Durable { client_id: Arc<str>, name: Arc<str> },
    /// A non-durable topic subscription, owned by one connection.
    TopicSub { conn: ConnectionId, sub: Arc<str> },
}

impl ContainerKey {
    /// The store's name for it, if the store keeps its persistent messages.
    pub(crate) fn store_key(&self) -> Option<StoreKey> {
        match self {
            ContainerKey::Queue(d) if d.kind == DestinationKind::Queue => {
                Some(StoreKey::Queue(Arc::clone(&d.name)))
            }
            ContainerKey::Durable { client_id, name } => Some(StoreKey::Durable {
                client_id: Arc::clone(client_id),
                name: Arc::clone(name),
            }),
            _ => None,
        }
    }

    /// Whether the store keeps its persistent messages ([`ContainerKey::store_key`] is some).
    pub(crate) fn is_stored(&self) -> bool {
        match self {
            ContainerKey::Queue(d) => d.kind == DestinationKind::Queue,
            ContainerKey::Durable { .. } => true,
            ContainerKey::TopicSub { .. } => false,
        }
    }

    /// The container of a durable subscription.
    pub(crate) fn durable(client_id: &Arc<str>, name: &Arc<str>) -> ContainerKey {
        ContainerKey::Durable {
            client_id: Arc::clone(client_id),
            name: Arc::clone(name),
        }
    }
}
