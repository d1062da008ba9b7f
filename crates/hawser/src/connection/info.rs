//! Who is on the other end of a connection.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

/// The protocols Hawser speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// STOMP 1.0-1.2.
    Stomp,
    /// ActiveMQ's OpenWire.
    OpenWire,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Stomp => "stomp",
            Protocol::OpenWire => "openwire",
        })
    }
}

/// Whom a connection acts for. Anonymous until authentication exists; then
/// the authenticated user, which authorization checks for every protocol alike.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub enum Principal {
    /// Nobody has proved who they are.
    #[default]
    Anonymous,
    /// An authenticated user.
    User(Arc<str>),
}

/// What the broker knows of a connection once it is established.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectInfo {
    /// The client id it connected with, if any (scopes durable subscriptions
    /// and producer ids).
    pub client_id: Option<Arc<str>>,
    /// What it speaks.
    pub protocol: Protocol,
    /// Where it connects from.
    pub remote: Option<SocketAddr>,
    /// Whom it acts for.
    pub principal: Principal,
}
