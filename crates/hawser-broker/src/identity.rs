//! Who is on the other end of a connection.
//!
//! Every protocol session hands the engine a [`ConnectInfo`] when it
//! connects, so what is decided about a client (its client id, what its
//! authenticated principal may read and write: `authorization`) is decided
//! in the engine, once, for every protocol.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

/// The protocols Hawser speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    /// STOMP 1.0-1.2.
    Stomp,
    /// ActiveMQ's OpenWire.
    OpenWire,
    /// HTTP (the status endpoint).
    Http,
    /// A caller inside the broker's own process (tests, embedded use), like
    /// ActiveMQ's `vm://` transport.
    InProcess,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Stomp => "stomp",
            Protocol::OpenWire => "openwire",
            Protocol::Http => "http",
            Protocol::InProcess => "in-process",
        })
    }
}

/// Whom a connection acts for: the user it authenticated as (with its
/// groups, which authorization entries name), or nobody.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub enum Principal {
    /// Nobody has proved who they are: a broker without users, or one that
    /// allows anonymous access.
    #[default]
    Anonymous,
    /// The broker itself: a network link's own consumers, which read what
    /// the link forwards. No client can be it; authorization lets it do
    /// everything, and it owns nothing.
    Broker,
    /// An authenticated user.
    User {
        /// The user's name.
        name: Arc<str>,
        /// The groups it belongs to.
        groups: Arc<[Arc<str>]>,
    },
}

impl Principal {
    /// The user's name; `None` when anonymous. What owns client ids, durable
    /// subscriptions and producer windows.
    pub fn user(&self) -> Option<&Arc<str>> {
        match self {
            Principal::Anonymous | Principal::Broker => None,
            Principal::User { name, .. } => Some(name),
        }
    }
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

impl ConnectInfo {
    /// An anonymous connection over `protocol` from `remote`.
    pub fn new(protocol: Protocol, client_id: Option<&str>, remote: Option<SocketAddr>) -> Self {
        ConnectInfo {
            client_id: client_id.map(Arc::from),
            protocol,
            remote,
            principal: Principal::Anonymous,
        }
    }

    /// The same, acting for `principal`.
    pub fn with_principal(self, principal: Principal) -> Self {
        ConnectInfo { principal, ..self }
    }

    /// An anonymous connection from inside the process.
    pub fn in_process(client_id: Option<&str>) -> Self {
        ConnectInfo::new(Protocol::InProcess, client_id, None)
    }
}

impl fmt::Display for ConnectInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.protocol)?;
        if let Some(remote) = self.remote {
            write!(f, " from {remote}")?;
        }
        if let Some(cid) = &self.client_id {
            write!(f, " as client id {cid:?}")?;
        }
        if let Principal::User { name, .. } = &self.principal {
            write!(f, " for user {name:?}")?;
        }
        Ok(())
    }
}
