//! Giving back what a connection held.

use std::sync::Arc;

use hawser_broker::{Broker, ConnectionId};

/// A connection registered with the engine, unregistered when dropped: a
/// session that ends in any way, a panic included, gives back its client id,
/// subscriptions, unacknowledged messages and transactions.
pub struct Registration {
    broker: Arc<Broker>,
    conn: ConnectionId,
}

impl Registration {
    /// Holds `conn` until dropped.
    pub fn new(broker: Arc<Broker>, conn: ConnectionId) -> Registration {
        Registration { broker, conn }
    }

    /// The engine's id of the connection.
    pub fn id(&self) -> ConnectionId {
        self.conn
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.broker.disconnect(self.conn);
    }
}
