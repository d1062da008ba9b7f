//! Network connector URIs, as ActiveMQ writes them in `<networkConnector
//! uri="..."/>`, parsed into the links a broker makes (docs/network-plan.md).
//!
//! - `static:(tcp://b:61613,tcp://c:61613)?options`: one link per peer. Also
//!   `static://(...)`, and `static:tcp://b:61613` for one peer.
//! - `masterslave:(tcp://m:61613,tcp://s:61613)?options`: one link that
//!   follows a master/slave pair, the master first, as a failover client.
//!
//! The inner URIs are hawser-client's (`tcp://`, `ssl://`, with their
//! transport options) and name each peer's STOMP listener: Hawser brokers
//! talk STOMP to each other. The outer query holds ActiveMQ's network
//! options, under ActiveMQ's names. As in hawser-client, an unknown option
//! or one given twice is an error rather than ignored: a typo in a network
//! option shows up as stranded messages much later.

use std::fmt;

use hawser_broker::DestinationPattern;
use hawser_client::uri::{BrokerUri, ConnectUri, FailoverOptions};

/// Most peers one connector may list.
pub const MAX_PEERS: usize = 64;
/// Most destination patterns in `includedDestinations` or
/// `excludedDestinations`.
pub const MAX_DESTINATION_FILTERS: usize = 256;
/// Largest `prefetchSize`: what a link's bridge consumer may hold unacknowledged.
pub const MAX_PREFETCH: u32 = 100_000;
/// Largest TTL: hops a message or a consumer's demand may cross.
pub const MAX_TTL: u32 = 64;

/// Default `networkTTL` (ActiveMQ's): one hop.
pub const DEFAULT_NETWORK_TTL: u32 = 1;
/// Default `prefetchSize` (ActiveMQ's).
pub const DEFAULT_PREFETCH: u32 = 1000;
/// Default `name` (ActiveMQ's).
pub const DEFAULT_NAME: &str = "bridge";

/// How the listed peers are used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnectorKind {
    /// One link to each peer.
    Static,
    /// One link to the pair, following its master.
    MasterSlave,
}

/// ActiveMQ's network connector options.
#[derive(Clone, Debug, PartialEq)]
pub struct NetworkOptions {
    /// The connector's name, in the links' client ids and in `/status`.
    pub name: String,
    /// The peer forwards to this broker over the same link too.
    pub duplex: bool,
    /// Hops for both messages and demand, unless the two below say otherwise.
    pub network_ttl: u32,
    /// Onward hops a message may make.
    pub message_ttl: u32,
    /// Hops a consumer's demand is advertised across.
    pub consumer_ttl: u32,
    /// One bridge subscription per topic and selector, however many
    /// subscribers the peer has (each message crosses once).
    pub conduit_subscriptions: bool,
    /// Forward only on demand (Hawser always does; accepted for ActiveMQ's
    /// configurations, where `false` also forwards statically included
    /// destinations).
    pub dynamic_only: bool,
    /// Bridge consumers lose one priority step per hop, not only one.
    pub decrease_network_consumer_priority: bool,
    /// What a bridge consumer may hold unacknowledged.
    pub prefetch_size: u32,
    /// Only destinations matching one of these are forwarded (empty: all).
    pub included: Vec<DestinationPattern>,
    /// Destinations matching one of these are never forwarded.
    pub excluded: Vec<DestinationPattern>,
}

impl Default for NetworkOptions {
    fn default() -> Self {
        NetworkOptions {
            name: DEFAULT_NAME.to_owned(),
            duplex: false,
            network_ttl: DEFAULT_NETWORK_TTL,
            message_ttl: DEFAULT_NETWORK_TTL,
            consumer_ttl: DEFAULT_NETWORK_TTL,
            conduit_subscriptions: true,
            dynamic_only: false,
            decrease_network_consumer_priority: false,
            prefetch_size: DEFAULT_PREFETCH,
            included: Vec::new(),
            excluded: Vec::new(),
        }
    }
}

/// A parsed network connector.
#[derive(Clone, Debug, PartialEq)]
pub struct NetworkConnector {
    /// How its peers are used.
    pub kind: ConnectorKind,
    /// The peers, in the order written.
    pub peers: Vec<BrokerUri>,
    /// Its options.
    pub options: NetworkOptions,
}

impl NetworkConnector {
    /// What each link connects to: a peer each (static), or the pair as
    /// one failover list, master first and never randomized (masterslave).
    /// Both are failover lists, so that a link reconnects with back-off
    /// for as long as its peer is away.
    pub fn links(&self) -> Vec<ConnectUri> {
        match self.kind {
            ConnectorKind::Static => self
                .peers
                .iter()
                .map(|peer| ConnectUri::Failover {
                    brokers: vec![peer.clone()],
                    options: FailoverOptions::default(),
                })
                .collect(),
            ConnectorKind::MasterSlave => vec![ConnectUri::Failover {
                brokers: self.peers.clone(),
                options: FailoverOptions {
                    randomize: false,
                    ..FailoverOptions::default()
                },
            }],
        }
    }
}

/// Why a network connector URI was refused; each says the text it is about.
#[non_exhaustive]
#[derive(thiserror::Error, Debug, Clone, PartialEq)]
pub enum ConnectorError {
    /// Not `static:` or `masterslave:`.
    #[error("network connector {0:?}: expected static:(...) or masterslave:(...)")]
    Scheme(String),
    /// Parentheses that do not pair up, or text after the closing one.
    #[error("network connector {0:?}: malformed list (parentheses, or text after them)")]
    Syntax(String),
    /// No peer, or more than [`MAX_PEERS`].
    #[error("network connector {0:?}: 1 to {MAX_PEERS} peers needed")]
    PeerCount(String),
    /// `masterslave:` lists exactly two brokers.
    #[error("network connector {0:?}: masterslave:(...) needs exactly two peers")]
    NotAPair(String),
    /// A peer's URI did not parse (or is itself a failover list).
    #[error("network connector peer {uri:?}: {reason}")]
    Peer {
        /// The peer as written.
        uri: String,
        /// Why.
        reason: String,
    },
    /// An option Hawser does not know.
    #[error("network connector option {0:?} is unknown")]
    UnknownOption(String),
    /// An option given twice.
    #[error("network connector option {0:?} is given twice")]
    DuplicateOption(String),
    /// A value out of range or of the wrong form.
    #[error("network connector option {name}={value:?}: expected {expected}")]
    BadValue {
        /// The option.
        name: String,
        /// Its value.
        value: String,
        /// What it should be.
        expected: &'static str,
    },
}

/// Parses a network connector URI (see the module).
///
/// # Errors
/// The first malformed part, as a [`ConnectorError`].
pub fn parse(uri: &str) -> Result<NetworkConnector, ConnectorError> {
    let text = uri.trim();
    let (kind, rest) = if let Some(rest) = strip_scheme(text, "static:") {
        (ConnectorKind::Static, rest)
    } else if let Some(rest) = strip_scheme(text, "masterslave:") {
        (ConnectorKind::MasterSlave, rest)
    } else {
        return Err(ConnectorError::Scheme(text.to_owned()));
    };
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    let syntax = || ConnectorError::Syntax(text.to_owned());
    let (list, query) = match rest.strip_prefix('(') {
        Some(inner) => {
            let close = inner.find(')').ok_or_else(syntax)?;
            let (list, after) = (&inner[..close], &inner[close + 1..]);
            if list.contains('(') || after.contains(['(', ')']) {
                return Err(syntax());
            }
            match after.strip_prefix('?') {
                Some(query) => (list, Some(query)),
                None if after.is_empty() => (list, None),
                None => return Err(syntax()),
            }
        }
        // One peer without parentheses: its own query is the peer's.
        None if !rest.contains(['(', ')']) => (rest, None),
        None => return Err(syntax()),
    };
    let entries: Vec<&str> = list.split(',').map(str::trim).collect();
    if list.trim().is_empty() || entries.len() > MAX_PEERS {
        return Err(ConnectorError::PeerCount(text.to_owned()));
    }
    let peers = entries
        .into_iter()
        .map(parse_peer)
        .collect::<Result<Vec<_>, _>>()?;
    if kind == ConnectorKind::MasterSlave && peers.len() != 2 {
        return Err(ConnectorError::NotAPair(text.to_owned()));
    }
    let mut options = NetworkOptions::default();
    if let Some(query) = query {
        set_options(&mut options, query)?;
    }
    Ok(NetworkConnector {
        kind,
        peers,
        options,
    })
}

fn strip_scheme<'a>(text: &'a str, scheme: &str) -> Option<&'a str> {
    let head = text.get(..scheme.len())?;
    head.eq_ignore_ascii_case(scheme)
        .then(|| &text[scheme.len()..])
}

fn parse_peer(text: &str) -> Result<BrokerUri, ConnectorError> {
    let peer_error = |reason: String| ConnectorError::Peer {
        uri: text.to_owned(),
        reason,
    };
    match hawser_client::uri::parse(text) {
        Ok(ConnectUri::Direct(peer)) => Ok(peer),
        Ok(ConnectUri::Failover { .. }) => Err(peer_error(
            "a peer is one broker, not a failover list".into(),
        )),
        Err(e) => Err(peer_error(e.to_string())),
    }
}

/// Sets the options of a query (`name=value&...`), each at most once.
fn set_options(options: &mut NetworkOptions, query: &str) -> Result<(), ConnectorError> {
    let mut seen: Vec<&str> = Vec::new();
    let mut message_ttl = None;
    let mut consumer_ttl = None;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        if seen.contains(&name) {
            return Err(ConnectorError::DuplicateOption(name.to_owned()));
        }
        seen.push(name);
        let bad = |expected: &'static str| ConnectorError::BadValue {
            name: name.to_owned(),
            value: value.to_owned(),
            expected,
        };
        let flag = || match value.to_ascii_lowercase().as_str() {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err(bad("true or false")),
        };
        let ttl = || {
            value
                .parse::<u32>()
                .ok()
                .filter(|t| (1..=MAX_TTL).contains(t))
                .ok_or_else(|| bad("a hop count from 1 to 64"))
        };
        match name {
            "name" => {
                let ok = !value.is_empty()
                    && value.len() <= 64
                    && value
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
                if !ok {
                    return Err(bad("1 to 64 letters, digits, '-', '_' or '.'"));
                }
                options.name = value.to_owned();
            }
            "duplex" => options.duplex = flag()?,
            "networkTTL" => options.network_ttl = ttl()?,
            "messageTTL" => message_ttl = Some(ttl()?),
            "consumerTTL" => consumer_ttl = Some(ttl()?),
            "conduitSubscriptions" => options.conduit_subscriptions = flag()?,
            "dynamicOnly" => options.dynamic_only = flag()?,
            "decreaseNetworkConsumerPriority" => {
                options.decrease_network_consumer_priority = flag()?;
            }
            "prefetchSize" => {
                options.prefetch_size = value
                    .parse::<u32>()
                    .ok()
                    .filter(|p| (1..=MAX_PREFETCH).contains(p))
                    .ok_or_else(|| bad("a message count from 1 to 100000"))?;
            }
            "includedDestinations" => options.included = destination_filters(value, bad)?,
            "excludedDestinations" => options.excluded = destination_filters(value, bad)?,
            _ => return Err(ConnectorError::UnknownOption(name.to_owned())),
        }
    }
    // As in ActiveMQ: networkTTL is the default of both.
    options.message_ttl = message_ttl.unwrap_or(options.network_ttl);
    options.consumer_ttl = consumer_ttl.unwrap_or(options.network_ttl);
    Ok(())
}

/// `queue://a.>,topic://b.*`: ActiveMQ's wildcards, a queue when no kind
/// is written.
fn destination_filters(
    value: &str,
    bad: impl Fn(&'static str) -> ConnectorError,
) -> Result<Vec<DestinationPattern>, ConnectorError> {
    let expected = "destinations like queue://orders.> or topic://prices.*, comma-separated";
    let filters: Vec<&str> = value.split(',').map(str::trim).collect();
    if filters.len() > MAX_DESTINATION_FILTERS {
        return Err(bad(expected));
    }
    filters
        .into_iter()
        .map(|f| {
            let (topic, pattern) = if let Some(p) = f.strip_prefix("topic://") {
                (true, p)
            } else {
                (false, f.strip_prefix("queue://").unwrap_or(f))
            };
            DestinationPattern::new(topic, pattern).map_err(|_| bad(expected))
        })
        .collect()
}

impl fmt::Display for ConnectorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ConnectorKind::Static => "static",
            ConnectorKind::MasterSlave => "masterslave",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_and_masterslave_lists_with_activemqs_options() {
        let c = parse(
            "static:(tcp://b:61613,ssl://c:61614?connectionTimeout=5000)?name=east&networkTTL=3\
             &consumerTTL=1&duplex=true&prefetchSize=500&conduitSubscriptions=false\
             &decreaseNetworkConsumerPriority=true&dynamicOnly=true\
             &includedDestinations=queue://orders.>,topic://prices.*&excludedDestinations=orders.secret",
        )
        .unwrap();
        assert_eq!(c.kind, ConnectorKind::Static);
        assert_eq!(c.peers.len(), 2);
        assert_eq!(c.links().len(), 2, "one link per static peer");
        assert!(
            c.links()
                .iter()
                .all(|l| matches!(l, ConnectUri::Failover { brokers, .. } if brokers.len() == 1)),
            "each reconnects by itself"
        );
        let o = &c.options;
        assert_eq!(o.name, "east");
        assert!(o.duplex && !o.conduit_subscriptions && o.dynamic_only);
        assert!(o.decrease_network_consumer_priority);
        assert_eq!((o.network_ttl, o.message_ttl, o.consumer_ttl), (3, 3, 1));
        assert_eq!(o.prefetch_size, 500);
        assert_eq!((o.included.len(), o.excluded.len()), (2, 1));

        let pair = parse("masterslave://(tcp://m:61613,tcp://s:61613)").unwrap();
        assert_eq!(pair.kind, ConnectorKind::MasterSlave);
        let links = pair.links();
        let [ConnectUri::Failover { brokers, options }] = &links[..] else {
            panic!("one failover link: {links:?}")
        };
        assert_eq!(brokers.len(), 2);
        assert!(!options.randomize, "the master is tried first");
        assert_eq!(pair.options, NetworkOptions::default());

        let one = parse("static:tcp://b:61613?connectionTimeout=100").unwrap();
        assert_eq!(one.peers.len(), 1);
    }

    #[test]
    fn mistakes_are_refused_with_what_they_are_about() {
        let refused = |uri: &str| parse(uri).unwrap_err().to_string();
        assert!(refused("failover:(tcp://b:1)").contains("static:(...)"));
        assert!(refused("static:(tcp://b:1").contains("malformed"));
        assert!(refused("static:(tcp://b:1)x").contains("malformed"));
        assert!(refused("static:()").contains("peers needed"));
        assert!(refused("masterslave:(tcp://a:1)").contains("exactly two"));
        assert!(refused("static:(tcp://b)").contains("tcp://b"));
        assert!(refused("static:(tcp://b:1)?networkTtl=2").contains("unknown"));
        assert!(refused("static:(tcp://b:1)?duplex=true&duplex=false").contains("twice"));
        assert!(refused("static:(tcp://b:1)?networkTTL=0").contains("hop count"));
        assert!(refused("static:(tcp://b:1)?prefetchSize=-1").contains("message count"));
        assert!(refused("static:(tcp://b:1)?name=a b").contains("letters"));
        assert!(
            refused("static:(tcp://b:1)?includedDestinations=queue://a.>.b")
                .contains("destinations like")
        );
        let many = vec!["tcp://b:1"; MAX_PEERS + 1].join(",");
        assert!(refused(&format!("static:({many})")).contains("peers needed"));
    }

    proptest::proptest! {
        #[test]
        fn any_text_parses_or_is_refused(text in "(?s).{0,120}") {
            let _ = parse(&text);
        }

        #[test]
        fn option_soup_never_panics(
            pairs in proptest::collection::vec(("[a-zA-Z]{1,12}", "[a-z0-9:/.,>*-]{0,16}"), 0..6)
        ) {
            let query: Vec<String> = pairs.iter().map(|(n, v)| format!("{n}={v}")).collect();
            let _ = parse(&format!("static:(tcp://b:61613)?{}", query.join("&")));
        }
    }
}
