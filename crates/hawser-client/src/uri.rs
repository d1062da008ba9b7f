//! Connection URIs as ActiveMQ writes them, parsed into values the client can act on.
//!
//! A user hands the client one string; [`parse`] turns it into a [`ConnectUri`]: either one
//! broker ([`ConnectUri::Direct`]) or a failover list with its reconnect policy
//! ([`ConnectUri::Failover`]), which [`crate::reconnect::Reconnector`] then drives. Nothing here
//! resolves names or opens sockets.
//!
//! ```
//! use hawser_client::uri::{parse, ConnectUri};
//!
//! let uri = parse("failover:(tcp://a:61613,tcp://b:61613)?randomize=false&nested.keepAlive=true")?;
//! let ConnectUri::Failover { brokers, options } = &uri else { unreachable!() };
//! assert!(!options.randomize);
//! assert!(brokers.iter().all(|b| b.options.keep_alive));
//! // Display gives a form that parses back to the same value.
//! assert_eq!(uri.to_string(), "failover:(tcp://a:61613?keepAlive=true,tcp://b:61613?keepAlive=true)?randomize=false");
//! # Ok::<(), hawser_client::uri::UriError>(())
//! ```
//!
//! # Forms
//!
//! - `tcp://host:port` and `stomp://host:port` both mean STOMP over TCP. The host is a name, an
//!   IPv4 address or a bracketed IPv6 address (`[::1]`); the port is required, as in ActiveMQ,
//!   and must be 1 to 65535. Transport options follow as `?name=value&name=value`.
//! - `failover:(uri,uri,...)?options`, also written `failover://(...)`: the inner URIs may carry
//!   their own transport options; the outer query holds [`FailoverOptions`] and `nested.X=v`
//!   pairs, which set transport option `X` on every inner URI. **An inner URI's own value wins
//!   over a nested one**: the nested pair is a default for the list, the inner pair is specific.
//!   (ActiveMQ appends the nested pairs to each inner query, where the later, nested value
//!   would win; we find the specific-beats-general rule less surprising.)
//! - `failover:uri,uri`: no parentheses and so no failover options; a `?` belongs to the inner
//!   URI it follows.
//! - One broker inside `failover:(...)` is a valid list.
//!
//! Whitespace around the whole string and around list commas is ignored. Schemes are matched
//! without regard to case; host names are stored in lower case and IPv4/IPv6 addresses in
//! their canonical text, so that two spellings of one address compare equal. Option names are
//! case-sensitive, as in ActiveMQ; booleans are `true`/`false` in any case.
//!
//! A query is split on `&` only, never on commas, so that `priorityURIs=tcp://a:1,tcp://b:2`
//! reads as one option. Because of that, the entries of `priorityURIs` cannot carry options of
//! their own (their `&` would end the value): they name brokers by scheme, host and port only.
//!
//! # Strictness, and where it departs from ActiveMQ
//!
//! ActiveMQ ignores or logs much of what it cannot use; Hawser rejects it, because a typo in a
//! reconnect option otherwise shows up only during an outage. So: unknown options (outer,
//! inner or nested), including ActiveMQ options Hawser does not implement (`trackMessages`,
//! `maxCacheSize`, `warnAfterReconnectAttempts`, ...), are [`UriError::UnknownOption`]; a name
//! given twice in one query is [`UriError::DuplicateOption`]; values out of range are
//! [`UriError::BadOptionValue`]: negative delays, attempt counts or `timeout` below -1,
//! `reconnectDelayExponent` below 1.0 (it would shrink the delay), and `backupPoolSize=0`
//! (say `backup=false` instead). Values are taken literally: there is no percent-decoding.
//! Every error carries the text it is about.

use std::fmt::{self, Write as _};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// Default `connectionTimeout`: how long one TCP connect plus STOMP handshake may take, in ms.
pub const DEFAULT_CONNECTION_TIMEOUT_MS: u64 = 30_000;
/// Default `tcpNoDelay`: small frames go out at once rather than waiting for Nagle.
pub const DEFAULT_TCP_NO_DELAY: bool = true;
/// Default `keepAlive` (TCP keep-alive probes); STOMP heart-beats already detect dead peers.
pub const DEFAULT_KEEP_ALIVE: bool = false;
/// Default `wireFormat.maxInactivityDuration`, used as the STOMP heart-beat interval in ms.
pub const DEFAULT_HEART_BEAT_MS: u64 = 30_000;

/// Default `initialReconnectDelay` in ms (ActiveMQ's).
pub const DEFAULT_INITIAL_RECONNECT_DELAY_MS: u64 = 10;
/// Default `maxReconnectDelay` in ms (ActiveMQ's).
pub const DEFAULT_MAX_RECONNECT_DELAY_MS: u64 = 30_000;
/// Default `useExponentialBackOff`.
pub const DEFAULT_USE_EXPONENTIAL_BACK_OFF: bool = true;
/// Default `reconnectDelayExponent`: each failed pass doubles the delay.
pub const DEFAULT_RECONNECT_DELAY_EXPONENT: f64 = 2.0;
/// The value of `maxReconnectAttempts`, `startupMaxReconnectAttempts` and `timeout` that means
/// "no limit".
pub const UNLIMITED: i64 = -1;
/// Default `maxReconnectAttempts`: retry forever.
pub const DEFAULT_MAX_RECONNECT_ATTEMPTS: i64 = UNLIMITED;
/// Default `startupMaxReconnectAttempts`: defer to `maxReconnectAttempts`.
pub const DEFAULT_STARTUP_MAX_RECONNECT_ATTEMPTS: i64 = UNLIMITED;
/// Default `randomize`: spread clients over the brokers.
pub const DEFAULT_RANDOMIZE: bool = true;
/// Default `timeout`: sends block for as long as the client is disconnected.
pub const DEFAULT_TIMEOUT_MS: i64 = UNLIMITED;
/// Default `backup`: no warm spare connection.
pub const DEFAULT_BACKUP: bool = false;
/// Default `backupPoolSize`.
pub const DEFAULT_BACKUP_POOL_SIZE: u32 = 1;
/// Default `priorityBackup`.
pub const DEFAULT_PRIORITY_BACKUP: bool = false;
/// Default `updateURIsSupported`: accept the peer list brokers advertise.
pub const DEFAULT_UPDATE_URIS_SUPPORTED: bool = true;

/// Bound on the brokers of one failover list (and on the `priorityURIs` list). Each is tried
/// once per reconnect pass, so a longer list only lengthens outages; the bound also caps what
/// advertised peer lists can add (see [`crate::reconnect::Reconnector::update_uris`]).
pub const MAX_BROKERS: usize = 256;

/// The option names, spelled once so that parsing and printing cannot disagree.
mod name {
    pub const CONNECTION_TIMEOUT: &str = "connectionTimeout";
    pub const TCP_NO_DELAY: &str = "tcpNoDelay";
    pub const KEEP_ALIVE: &str = "keepAlive";
    pub const MAX_INACTIVITY_DURATION: &str = "wireFormat.maxInactivityDuration";

    pub const INITIAL_RECONNECT_DELAY: &str = "initialReconnectDelay";
    pub const MAX_RECONNECT_DELAY: &str = "maxReconnectDelay";
    pub const USE_EXPONENTIAL_BACK_OFF: &str = "useExponentialBackOff";
    pub const RECONNECT_DELAY_EXPONENT: &str = "reconnectDelayExponent";
    pub const MAX_RECONNECT_ATTEMPTS: &str = "maxReconnectAttempts";
    pub const STARTUP_MAX_RECONNECT_ATTEMPTS: &str = "startupMaxReconnectAttempts";
    pub const RANDOMIZE: &str = "randomize";
    pub const TIMEOUT: &str = "timeout";
    pub const BACKUP: &str = "backup";
    pub const BACKUP_POOL_SIZE: &str = "backupPoolSize";
    pub const PRIORITY_BACKUP: &str = "priorityBackup";
    pub const PRIORITY_URIS: &str = "priorityURIs";
    pub const UPDATE_URIS_SUPPORTED: &str = "updateURIsSupported";

    /// Prefix of an outer failover option that is really a transport option for every broker.
    pub const NESTED_PREFIX: &str = "nested.";
}

/// Prefix of a failover URI (matched without regard to case).
const FAILOVER_PREFIX: &str = "failover:";

/// Why a connection URI was rejected. Each variant carries the text it is about.
#[non_exhaustive]
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum UriError {
    /// The URI is empty or only whitespace.
    #[error("the connection URI is empty")]
    Empty,
    /// A broker URI's scheme is not `tcp://`, `stomp://` or `ssl://` (failover lists do
    /// not nest).
    #[error(
        "unknown scheme in {0:?}: expected tcp://host:port, stomp://host:port, ssl://host:port or failover:(...)"
    )]
    UnknownScheme(String),
    /// A broker URI has nothing between `://` and the port.
    #[error("no host in {0:?}")]
    MissingHost(String),
    /// A broker URI's host is neither a host name, an IPv4 address nor a bracketed IPv6 one.
    #[error("bad host in {0:?}: expected a name, an IPv4 address or [IPv6]")]
    BadHost(String),
    /// A broker URI has no port; ActiveMQ has no default port either.
    #[error("no port in {0:?}: write host:port")]
    MissingPort(String),
    /// A broker URI's port is not a number from 1 to 65535.
    #[error("bad port in {0:?}: expected 1 to 65535")]
    BadPort(String),
    /// A failover URI's parentheses do not pair up (or nest).
    #[error("unbalanced parentheses in {0:?}")]
    UnbalancedParentheses(String),
    /// Something other than `?options` follows a failover list's closing parenthesis.
    #[error("unexpected {text:?} after the broker list in {uri:?}")]
    TrailingText {
        /// What follows the `)`.
        text: String,
        /// The whole failover URI.
        uri: String,
    },
    /// A failover URI names no broker at all.
    #[error("no brokers in {0:?}")]
    EmptyBrokerList(String),
    /// A failover list has an empty entry, as in `(tcp://a:1,,tcp://b:1)`.
    #[error("empty entry in the broker list of {0:?}")]
    EmptyBrokerEntry(String),
    /// A failover list (or `priorityURIs`) is longer than [`MAX_BROKERS`].
    #[error("{count} brokers listed, at most {max} allowed")]
    TooManyBrokers {
        /// How many were listed.
        count: usize,
        /// [`MAX_BROKERS`].
        max: usize,
    },
    /// A query piece is not `name=value`.
    #[error("malformed option {text:?} in {uri:?}: expected name=value")]
    MalformedOption {
        /// The piece between `&`s.
        text: String,
        /// The URI whose query holds it.
        uri: String,
    },
    /// An option name this client does not know (names are case-sensitive).
    #[error("unknown option {name:?} in {uri:?}")]
    UnknownOption {
        /// The name as written, `nested.` prefix included.
        name: String,
        /// The URI whose query holds it.
        uri: String,
    },
    /// The same option twice in one query: which one was meant is anyone's guess.
    #[error("option {name:?} given twice in {uri:?}")]
    DuplicateOption {
        /// The name as written.
        name: String,
        /// The URI whose query holds it.
        uri: String,
    },
    /// An option's value is not of its type or out of its range.
    #[error("bad value {value:?} for option {name:?}: expected {expected}")]
    BadOptionValue {
        /// The name as written, `nested.` prefix included.
        name: String,
        /// The value as written.
        value: String,
        /// What the option accepts.
        expected: &'static str,
    },
}

/// How a broker endpoint is reached. `tcp://` and `stomp://` both mean STOMP over TCP:
/// `tcp://` is what ActiveMQ users write, `stomp://` says what is spoken. `ssl://` (also
/// written `stomp+ssl://`, ActiveMQ's name) is STOMP over TLS, the broker's certificate
/// checked against the client's trusted CAs and the host name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// `tcp://`
    Tcp,
    /// `stomp://`
    Stomp,
    /// `ssl://` or `stomp+ssl://`
    Ssl,
}

impl Scheme {
    /// The scheme as written in a URI, without `://`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Tcp => "tcp",
            Scheme::Stomp => "stomp",
            Scheme::Ssl => "ssl",
        }
    }

    /// Whether the connection runs over TLS.
    #[must_use]
    pub fn is_tls(self) -> bool {
        self == Scheme::Ssl
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Options of one broker endpoint, under ActiveMQ's TCP transport names.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TransportOptions {
    /// `connectionTimeout`: bound on the TCP connect plus the STOMP handshake, in ms.
    pub connection_timeout_ms: u64,
    /// `tcpNoDelay`: disable Nagle's algorithm on the socket.
    pub tcp_no_delay: bool,
    /// `keepAlive`: enable TCP keep-alive probes on the socket.
    pub keep_alive: bool,
    /// `wireFormat.maxInactivityDuration`: the STOMP heart-beat interval asked for, in ms;
    /// 0 disables heart-beats.
    pub heart_beat_ms: u64,
}

impl Default for TransportOptions {
    fn default() -> TransportOptions {
        TransportOptions {
            connection_timeout_ms: DEFAULT_CONNECTION_TIMEOUT_MS,
            tcp_no_delay: DEFAULT_TCP_NO_DELAY,
            keep_alive: DEFAULT_KEEP_ALIVE,
            heart_beat_ms: DEFAULT_HEART_BEAT_MS,
        }
    }
}

impl TransportOptions {
    /// Sets option `key` from `value`. `shown` is the name as the user wrote it (with a
    /// `nested.` prefix if any) and `uri` the text holding it, both for errors.
    fn set(&mut self, key: &str, value: &str, shown: &str, uri: &str) -> Result<(), UriError> {
        match key {
            name::CONNECTION_TIMEOUT => self.connection_timeout_ms = parse_ms(shown, value)?,
            name::TCP_NO_DELAY => self.tcp_no_delay = parse_bool(shown, value)?,
            name::KEEP_ALIVE => self.keep_alive = parse_bool(shown, value)?,
            name::MAX_INACTIVITY_DURATION => self.heart_beat_ms = parse_ms(shown, value)?,
            _ => return Err(unknown_option(shown, uri)),
        }
        Ok(())
    }

    /// The options that differ from their defaults, as `(name, value)` in a fixed order.
    fn non_default(&self) -> Vec<(&'static str, String)> {
        let default = TransportOptions::default();
        let mut pairs = Vec::new();
        if self.connection_timeout_ms != default.connection_timeout_ms {
            pairs.push((
                name::CONNECTION_TIMEOUT,
                self.connection_timeout_ms.to_string(),
            ));
        }
        if self.tcp_no_delay != default.tcp_no_delay {
            pairs.push((name::TCP_NO_DELAY, self.tcp_no_delay.to_string()));
        }
        if self.keep_alive != default.keep_alive {
            pairs.push((name::KEEP_ALIVE, self.keep_alive.to_string()));
        }
        if self.heart_beat_ms != default.heart_beat_ms {
            pairs.push((
                name::MAX_INACTIVITY_DURATION,
                self.heart_beat_ms.to_string(),
            ));
        }
        pairs
    }
}

/// One broker endpoint.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct BrokerUri {
    /// How it is reached.
    pub scheme: Scheme,
    /// Host name (lower case), IPv4 address, or IPv6 address without brackets, in the form
    /// `tokio::net::TcpStream::connect((host, port))` takes.
    pub host: String,
    /// TCP port, 1 to 65535.
    pub port: u16,
    /// Its transport options.
    pub options: TransportOptions,
}

impl BrokerUri {
    /// A `tcp://` endpoint with default options.
    #[must_use]
    pub fn tcp(host: impl Into<String>, port: u16) -> BrokerUri {
        BrokerUri {
            scheme: Scheme::Tcp,
            host: host.into(),
            port,
            options: TransportOptions::default(),
        }
    }

    /// Whether both name the same host and port, whatever their scheme and options: the
    /// identity failover lists are deduplicated by. Host names compare without regard to case;
    /// names are not resolved, so `localhost` and `127.0.0.1` differ.
    #[must_use]
    pub fn same_address(&self, other: &BrokerUri) -> bool {
        self.port == other.port && self.host.eq_ignore_ascii_case(&other.host)
    }

    /// `scheme://host:port`, without options.
    fn write_address(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "{}://[{}]:{}", self.scheme, self.host, self.port)
        } else {
            write!(f, "{}://{}:{}", self.scheme, self.host, self.port)
        }
    }
}

impl fmt::Display for BrokerUri {
    /// `scheme://host:port`, then `?name=value&...` for the options that differ from their
    /// defaults.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_address(f)?;
        write_query(f, &self.options.non_default())
    }
}

impl FromStr for BrokerUri {
    type Err = UriError;

    /// Parses one `tcp://` or `stomp://` URI (not a failover list).
    fn from_str(s: &str) -> Result<BrokerUri, UriError> {
        let text = s.trim();
        if text.is_empty() {
            return Err(UriError::Empty);
        }
        parse_broker(text, &[])
    }
}

/// The reconnect policy of a failover URI, under ActiveMQ's names and with its defaults.
/// [`crate::reconnect`] says exactly how each one acts.
#[derive(Clone, Debug, PartialEq)]
pub struct FailoverOptions {
    /// `initialReconnectDelay`: the wait after the first failed pass, in ms.
    pub initial_reconnect_delay_ms: u64,
    /// `maxReconnectDelay`: the longest wait between passes, in ms.
    pub max_reconnect_delay_ms: u64,
    /// `useExponentialBackOff`: grow the wait after each failed pass.
    pub use_exponential_back_off: bool,
    /// `reconnectDelayExponent`: the factor the wait grows by; at least 1.0.
    pub reconnect_delay_exponent: f64,
    /// `maxReconnectAttempts`: failed passes allowed once connected; -1 forever, 0 never
    /// reconnect.
    pub max_reconnect_attempts: i64,
    /// `startupMaxReconnectAttempts`: failed passes allowed before the first connection;
    /// -1 defers to `maxReconnectAttempts`.
    pub startup_max_reconnect_attempts: i64,
    /// `randomize`: shuffle the list at the start of each pass.
    pub randomize: bool,
    /// `timeout`: how long a send waits for a connection, in ms; -1 (or 0, as in ActiveMQ)
    /// waits forever.
    pub timeout_ms: i64,
    /// `backup`: keep warm spare connections to other brokers.
    pub backup: bool,
    /// `backupPoolSize`: how many warm spares; at least 1.
    pub backup_pool_size: u32,
    /// `priorityBackup`: prefer the priority brokers, and return to them when they come back.
    pub priority_backup: bool,
    /// `priorityURIs`: the priority brokers; empty means the first broker of the list. Only
    /// scheme, host and port are significant (see the module docs).
    pub priority_uris: Vec<BrokerUri>,
    /// `updateURIsSupported`: add the peers brokers advertise to the list.
    pub update_uris_supported: bool,
}

impl Default for FailoverOptions {
    fn default() -> FailoverOptions {
        FailoverOptions {
            initial_reconnect_delay_ms: DEFAULT_INITIAL_RECONNECT_DELAY_MS,
            max_reconnect_delay_ms: DEFAULT_MAX_RECONNECT_DELAY_MS,
            use_exponential_back_off: DEFAULT_USE_EXPONENTIAL_BACK_OFF,
            reconnect_delay_exponent: DEFAULT_RECONNECT_DELAY_EXPONENT,
            max_reconnect_attempts: DEFAULT_MAX_RECONNECT_ATTEMPTS,
            startup_max_reconnect_attempts: DEFAULT_STARTUP_MAX_RECONNECT_ATTEMPTS,
            randomize: DEFAULT_RANDOMIZE,
            timeout_ms: DEFAULT_TIMEOUT_MS,
            backup: DEFAULT_BACKUP,
            backup_pool_size: DEFAULT_BACKUP_POOL_SIZE,
            priority_backup: DEFAULT_PRIORITY_BACKUP,
            priority_uris: Vec::new(),
            update_uris_supported: DEFAULT_UPDATE_URIS_SUPPORTED,
        }
    }
}

impl FailoverOptions {
    /// Sets option `key` from `value`; `uri` is the whole failover URI, for errors.
    fn set(&mut self, key: &str, value: &str, uri: &str) -> Result<(), UriError> {
        match key {
            name::INITIAL_RECONNECT_DELAY => {
                self.initial_reconnect_delay_ms = parse_ms(key, value)?;
            }
            name::MAX_RECONNECT_DELAY => self.max_reconnect_delay_ms = parse_ms(key, value)?,
            name::USE_EXPONENTIAL_BACK_OFF => {
                self.use_exponential_back_off = parse_bool(key, value)?;
            }
            name::RECONNECT_DELAY_EXPONENT => {
                self.reconnect_delay_exponent = parse_exponent(key, value)?;
            }
            name::MAX_RECONNECT_ATTEMPTS => {
                self.max_reconnect_attempts = parse_limit(key, value, ATTEMPTS_EXPECTED)?;
            }
            name::STARTUP_MAX_RECONNECT_ATTEMPTS => {
                self.startup_max_reconnect_attempts = parse_limit(key, value, ATTEMPTS_EXPECTED)?;
            }
            name::RANDOMIZE => self.randomize = parse_bool(key, value)?,
            name::TIMEOUT => self.timeout_ms = parse_limit(key, value, TIMEOUT_EXPECTED)?,
            name::BACKUP => self.backup = parse_bool(key, value)?,
            name::BACKUP_POOL_SIZE => self.backup_pool_size = parse_pool_size(key, value)?,
            name::PRIORITY_BACKUP => self.priority_backup = parse_bool(key, value)?,
            name::PRIORITY_URIS => self.priority_uris = parse_priority_uris(value)?,
            name::UPDATE_URIS_SUPPORTED => self.update_uris_supported = parse_bool(key, value)?,
            _ => return Err(unknown_option(key, uri)),
        }
        Ok(())
    }

    /// The options that differ from their defaults, as `(name, value)` in a fixed order.
    fn non_default(&self) -> Vec<(&'static str, String)> {
        let d = FailoverOptions::default();
        let mut pairs = Vec::new();
        let mut add = |changed: bool, key: &'static str, value: String| {
            if changed {
                pairs.push((key, value));
            }
        };
        let o = self;
        add(
            o.initial_reconnect_delay_ms != d.initial_reconnect_delay_ms,
            name::INITIAL_RECONNECT_DELAY,
            o.initial_reconnect_delay_ms.to_string(),
        );
        add(
            o.max_reconnect_delay_ms != d.max_reconnect_delay_ms,
            name::MAX_RECONNECT_DELAY,
            o.max_reconnect_delay_ms.to_string(),
        );
        add(
            o.use_exponential_back_off != d.use_exponential_back_off,
            name::USE_EXPONENTIAL_BACK_OFF,
            o.use_exponential_back_off.to_string(),
        );
        // Rust prints floats in their shortest form that reads back to the same value.
        add(
            o.reconnect_delay_exponent.to_bits() != d.reconnect_delay_exponent.to_bits(),
            name::RECONNECT_DELAY_EXPONENT,
            o.reconnect_delay_exponent.to_string(),
        );
        add(
            o.max_reconnect_attempts != d.max_reconnect_attempts,
            name::MAX_RECONNECT_ATTEMPTS,
            o.max_reconnect_attempts.to_string(),
        );
        add(
            o.startup_max_reconnect_attempts != d.startup_max_reconnect_attempts,
            name::STARTUP_MAX_RECONNECT_ATTEMPTS,
            o.startup_max_reconnect_attempts.to_string(),
        );
        add(
            o.randomize != d.randomize,
            name::RANDOMIZE,
            o.randomize.to_string(),
        );
        add(
            o.timeout_ms != d.timeout_ms,
            name::TIMEOUT,
            o.timeout_ms.to_string(),
        );
        add(o.backup != d.backup, name::BACKUP, o.backup.to_string());
        add(
            o.backup_pool_size != d.backup_pool_size,
            name::BACKUP_POOL_SIZE,
            o.backup_pool_size.to_string(),
        );
        add(
            o.priority_backup != d.priority_backup,
            name::PRIORITY_BACKUP,
            o.priority_backup.to_string(),
        );
        add(
            !o.priority_uris.is_empty(),
            name::PRIORITY_URIS,
            o.priority_uris
                .iter()
                .map(|uri| Address(uri).to_string())
                .collect::<Vec<_>>()
                .join(","),
        );
        add(
            o.update_uris_supported != d.update_uris_supported,
            name::UPDATE_URIS_SUPPORTED,
            o.update_uris_supported.to_string(),
        );
        pairs
    }
}

/// What a connection URI asks for.
#[derive(Clone, Debug, PartialEq)]
pub enum ConnectUri {
    /// One broker; a lost connection is not re-established.
    Direct(BrokerUri),
    /// A list of brokers and the policy for moving between them.
    Failover {
        /// The brokers in the order written (never empty when parsed).
        brokers: Vec<BrokerUri>,
        /// The reconnect policy.
        options: FailoverOptions,
    },
}

impl ConnectUri {
    /// The brokers it names: one for [`ConnectUri::Direct`].
    #[must_use]
    pub fn brokers(&self) -> &[BrokerUri] {
        match self {
            ConnectUri::Direct(broker) => std::slice::from_ref(broker),
            ConnectUri::Failover { brokers, .. } => brokers,
        }
    }
}

impl fmt::Display for ConnectUri {
    /// A direct URI prints as its broker; a failover URI as
    /// `failover:(broker,broker)?options`, each broker with its own non-default options and
    /// the failover options that differ from their defaults. Nested options are already part
    /// of each broker, so they print there. Parsing the result gives an equal value.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectUri::Direct(broker) => broker.fmt(f),
            ConnectUri::Failover { brokers, options } => {
                f.write_str("failover:(")?;
                for (i, broker) in brokers.iter().enumerate() {
                    if i > 0 {
                        f.write_char(',')?;
                    }
                    broker.fmt(f)?;
                }
                f.write_char(')')?;
                write_query(f, &options.non_default())
            }
        }
    }
}

impl FromStr for ConnectUri {
    type Err = UriError;

    fn from_str(s: &str) -> Result<ConnectUri, UriError> {
        parse(s)
    }
}

/// Parses a connection URI in any of the forms the module docs list.
///
/// # Errors
///
/// A [`UriError`] naming the first malformed part: syntax, an unknown scheme or option, or a
/// value out of range.
pub fn parse(s: &str) -> Result<ConnectUri, UriError> {
    let text = s.trim();
    if text.is_empty() {
        return Err(UriError::Empty);
    }
    match strip_prefix_ignore_case(text, FAILOVER_PREFIX) {
        Some(rest) => parse_failover(text, rest),
        None => parse_broker(text, &[]).map(ConnectUri::Direct),
    }
}

/// A broker's `scheme://host:port` without options, for `priorityURIs`.
struct Address<'a>(&'a BrokerUri);

impl fmt::Display for Address<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.write_address(f)
    }
}

/// One `name=value` piece of a query, as written.
#[derive(Clone, Copy, Debug)]
struct Pair<'a> {
    name: &'a str,
    value: &'a str,
}

/// Parses what follows `failover:` (`rest`); `whole` is the entire URI, for errors.
fn parse_failover(whole: &str, rest: &str) -> Result<ConnectUri, UriError> {
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    let unbalanced = || UriError::UnbalancedParentheses(whole.to_owned());

    let (list, query) = if let Some(inner) = rest.strip_prefix('(') {
        let close = inner.find(')').ok_or_else(unbalanced)?;
        let (list, after) = (&inner[..close], &inner[close + 1..]);
        // Inner URIs have no parentheses, so a second `(` or `)` anywhere is a nesting or
        // pairing mistake rather than part of a URI.
        if list.contains('(') || after.contains(['(', ')']) {
            return Err(unbalanced());
        }
        let query = match after.strip_prefix('?') {
            Some(query) => Some(query),
            None if after.is_empty() => None,
            None => {
                return Err(UriError::TrailingText {
                    text: after.to_owned(),
                    uri: whole.to_owned(),
                })
            }
        };
        (list, query)
    } else {
        if rest.contains(['(', ')']) {
            return Err(unbalanced());
        }
        (rest, None)
    };

    let mut options = FailoverOptions::default();
    let mut nested = Vec::new();
    if let Some(query) = query {
        for pair in split_query(query, whole)? {
            if let Some(key) = pair.name.strip_prefix(name::NESTED_PREFIX) {
                // Check now, so that a bad nested option is reported once, against the text
                // it was written in, rather than once per broker.
                TransportOptions::default().set(key, pair.value, pair.name, whole)?;
                nested.push(Pair {
                    name: key,
                    value: pair.value,
                });
            } else {
                options.set(pair.name, pair.value, whole)?;
            }
        }
    }

    if list.trim().is_empty() {
        return Err(UriError::EmptyBrokerList(whole.to_owned()));
    }
    let entries: Vec<&str> = list.split(',').map(str::trim).collect();
    if entries.len() > MAX_BROKERS {
        return Err(UriError::TooManyBrokers {
            count: entries.len(),
            max: MAX_BROKERS,
        });
    }
    let brokers = entries
        .into_iter()
        .map(|entry| {
            if entry.is_empty() {
                Err(UriError::EmptyBrokerEntry(whole.to_owned()))
            } else {
                parse_broker(entry, &nested)
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ConnectUri::Failover { brokers, options })
}

/// Parses one `tcp://`, `stomp://` or `ssl://` URI `text` (trimmed, non-empty). `nested` are the
/// failover list's `nested.` options, already checked; the URI's own options override them.
fn parse_broker(text: &str, nested: &[Pair<'_>]) -> Result<BrokerUri, UriError> {
    let (scheme, rest) = text
        .split_once("://")
        .ok_or_else(|| UriError::UnknownScheme(text.to_owned()))?;
    let scheme = if scheme.eq_ignore_ascii_case(Scheme::Tcp.as_str()) {
        Scheme::Tcp
    } else if scheme.eq_ignore_ascii_case(Scheme::Stomp.as_str()) {
        Scheme::Stomp
    } else if scheme.eq_ignore_ascii_case(Scheme::Ssl.as_str())
        || scheme.eq_ignore_ascii_case("stomp+ssl")
    {
        Scheme::Ssl
    } else {
        return Err(UriError::UnknownScheme(text.to_owned()));
    };
    let (authority, query) = match rest.split_once('?') {
        Some((authority, query)) => (authority, Some(query)),
        None => (rest, None),
    };
    let (host, port) = split_host_port(authority, text)?;

    let mut options = TransportOptions::default();
    let own = match query {
        Some(query) => split_query(query, text)?,
        None => Vec::new(),
    };
    // Nested pairs first, so that the URI's own pairs overwrite them.
    for pair in nested.iter().chain(&own) {
        options.set(pair.name, pair.value, pair.name, text)?;
    }
    Ok(BrokerUri {
        scheme,
        host,
        port,
        options,
    })
}

/// Splits `host:port` or `[v6]:port` and checks both; `uri` is the broker URI, for errors.
fn split_host_port(authority: &str, uri: &str) -> Result<(String, u16), UriError> {
    let bad_host = || UriError::BadHost(uri.to_owned());
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let (v6, after) = bracketed.split_once(']').ok_or_else(bad_host)?;
        let address: Ipv6Addr = v6.parse().map_err(|_| bad_host())?;
        let port = match after.strip_prefix(':') {
            Some(port) => port,
            None if after.is_empty() => return Err(UriError::MissingPort(uri.to_owned())),
            None => return Err(UriError::BadPort(uri.to_owned())),
        };
        (address.to_string(), port)
    } else {
        let Some((host, port)) = authority.split_once(':') else {
            return Err(if authority.is_empty() {
                UriError::MissingHost(uri.to_owned())
            } else {
                UriError::MissingPort(uri.to_owned())
            });
        };
        // A second colon means an IPv6 address without its brackets.
        if port.contains(':') {
            return Err(bad_host());
        }
        if host.is_empty() {
            return Err(UriError::MissingHost(uri.to_owned()));
        }
        (check_host_name(host).ok_or_else(bad_host)?, port)
    };
    if port.is_empty() {
        return Err(UriError::MissingPort(uri.to_owned()));
    }
    // `u16::from_str` accepts a leading `+`; a URI port is digits only.
    let port = Some(port)
        .filter(|p| p.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|p| p.parse::<u16>().ok())
        .filter(|&p| p != 0)
        .ok_or_else(|| UriError::BadPort(uri.to_owned()))?;
    Ok((host, port))
}

/// The canonical form of a host name or IPv4 address, or `None` if it is neither.
fn check_host_name(host: &str) -> Option<String> {
    let is_name_byte = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_');
    if !host.bytes().all(is_name_byte) {
        return None;
    }
    // All digits and dots cannot be a DNS name (top-level labels are not numeric), so it
    // must be an IPv4 address; `999.1.1.1` is a typo, not a name to look up.
    if host.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return host.parse::<Ipv4Addr>().ok().map(|a| a.to_string());
    }
    Some(host.to_ascii_lowercase())
}

/// Splits a query on `&` (only: values such as `priorityURIs` contain commas) into pairs.
/// Empty pieces (`a=1&&b=2`, a trailing `&`) are skipped, as ActiveMQ does.
fn split_query<'a>(query: &'a str, uri: &str) -> Result<Vec<Pair<'a>>, UriError> {
    let mut pairs: Vec<Pair<'a>> = Vec::new();
    for piece in query.split('&').filter(|piece| !piece.is_empty()) {
        let (name, value) = piece
            .split_once('=')
            .filter(|(name, _)| !name.is_empty())
            .ok_or_else(|| UriError::MalformedOption {
                text: piece.to_owned(),
                uri: uri.to_owned(),
            })?;
        if pairs.iter().any(|p| p.name == name) {
            return Err(UriError::DuplicateOption {
                name: name.to_owned(),
                uri: uri.to_owned(),
            });
        }
        pairs.push(Pair { name, value });
    }
    Ok(pairs)
}

/// Parses the `priorityURIs` value: comma-separated `scheme://host:port`.
fn parse_priority_uris(value: &str) -> Result<Vec<BrokerUri>, UriError> {
    const EXPECTED: &str = "comma-separated tcp://host:port URIs without options";
    let bad = || UriError::BadOptionValue {
        name: name::PRIORITY_URIS.to_owned(),
        value: value.to_owned(),
        expected: EXPECTED,
    };
    // ActiveMQ reads an empty value as an empty list; so do we.
    if value.trim().is_empty() {
        return Ok(Vec::new());
    }
    let entries: Vec<&str> = value.split(',').map(str::trim).collect();
    if entries.len() > MAX_BROKERS {
        return Err(UriError::TooManyBrokers {
            count: entries.len(),
            max: MAX_BROKERS,
        });
    }
    entries
        .into_iter()
        .map(|entry| {
            if entry.is_empty() || entry.contains('?') {
                Err(bad())
            } else {
                parse_broker(entry, &[])
            }
        })
        .collect()
}

/// What the attempt-count options accept.
const ATTEMPTS_EXPECTED: &str = "-1 (no limit), 0 or a positive number of attempts";
/// What `timeout` accepts.
const TIMEOUT_EXPECTED: &str = "-1 (no timeout) or a number of milliseconds";

fn bad_value(shown: &str, value: &str, expected: &'static str) -> UriError {
    UriError::BadOptionValue {
        name: shown.to_owned(),
        value: value.to_owned(),
        expected,
    }
}

fn unknown_option(shown: &str, uri: &str) -> UriError {
    UriError::UnknownOption {
        name: shown.to_owned(),
        uri: uri.to_owned(),
    }
}

fn parse_bool(shown: &str, value: &str) -> Result<bool, UriError> {
    if value.eq_ignore_ascii_case("true") {
        Ok(true)
    } else if value.eq_ignore_ascii_case("false") {
        Ok(false)
    } else {
        // ActiveMQ reads anything but "true" as false; `randomize=ture` would then quietly
        // mean the opposite of what was meant.
        Err(bad_value(shown, value, "true or false"))
    }
}

fn parse_ms(shown: &str, value: &str) -> Result<u64, UriError> {
    value
        .parse::<u64>()
        .ok()
        .filter(|_| !value.starts_with('+'))
        .ok_or_else(|| bad_value(shown, value, "a number of milliseconds, 0 or more"))
}

/// An `i64` of at least -1, where -1 means no limit.
fn parse_limit(shown: &str, value: &str, expected: &'static str) -> Result<i64, UriError> {
    value
        .parse::<i64>()
        .ok()
        .filter(|&n| n >= UNLIMITED && !value.starts_with('+'))
        .ok_or_else(|| bad_value(shown, value, expected))
}

fn parse_exponent(shown: &str, value: &str) -> Result<f64, UriError> {
    // Below 1.0 the "back-off" would shorten the wait after each failure; NaN and infinity
    // make no delay at all.
    value
        .parse::<f64>()
        .ok()
        .filter(|x| x.is_finite() && *x >= 1.0)
        .ok_or_else(|| bad_value(shown, value, "a number of at least 1.0"))
}

fn parse_pool_size(shown: &str, value: &str) -> Result<u32, UriError> {
    value
        .parse::<u32>()
        .ok()
        .filter(|&n| n >= 1 && !value.starts_with('+'))
        .ok_or_else(|| bad_value(shown, value, "a number of connections, 1 or more"))
}

/// Writes `?a=1&b=2`, or nothing for no pairs.
fn write_query(f: &mut fmt::Formatter<'_>, pairs: &[(&str, String)]) -> fmt::Result {
    for (i, (key, value)) in pairs.iter().enumerate() {
        f.write_char(if i == 0 { '?' } else { '&' })?;
        write!(f, "{key}={value}")?;
    }
    Ok(())
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failover(text: &str) -> (Vec<BrokerUri>, FailoverOptions) {
        match parse(text) {
            Ok(ConnectUri::Failover { brokers, options }) => (brokers, options),
            other => panic!("{text}: expected a failover URI, got {other:?}"),
        }
    }

    fn direct(text: &str) -> BrokerUri {
        match parse(text) {
            Ok(ConnectUri::Direct(broker)) => broker,
            other => panic!("{text}: expected a direct URI, got {other:?}"),
        }
    }

    fn failover_options(query: &str) -> FailoverOptions {
        failover(&format!("failover:(tcp://a:1)?{query}")).1
    }

    fn transport_options(query: &str) -> TransportOptions {
        direct(&format!("tcp://a:1?{query}")).options
    }

    #[test]
    fn transport_defaults_are_activemqs() {
        let o = TransportOptions::default();
        assert_eq!(o.connection_timeout_ms, 30_000);
        assert!(o.tcp_no_delay);
        assert!(!o.keep_alive);
        assert_eq!(o.heart_beat_ms, 30_000);
        assert_eq!(direct("tcp://a:1").options, o);
    }

    #[test]
    fn failover_defaults_are_activemqs() {
        let o = FailoverOptions::default();
        assert_eq!(o.initial_reconnect_delay_ms, 10);
        assert_eq!(o.max_reconnect_delay_ms, 30_000);
        assert!(o.use_exponential_back_off);
        assert_eq!(o.reconnect_delay_exponent, 2.0);
        assert_eq!(o.max_reconnect_attempts, -1);
        assert_eq!(o.startup_max_reconnect_attempts, -1);
        assert!(o.randomize);
        assert_eq!(o.timeout_ms, -1);
        assert!(!o.backup);
        assert_eq!(o.backup_pool_size, 1);
        assert!(!o.priority_backup);
        assert!(o.priority_uris.is_empty());
        assert!(o.update_uris_supported);
        assert_eq!(failover("failover:(tcp://a:1)").1, o);
    }

    #[test]
    fn each_transport_option_sets_its_field() {
        assert_eq!(
            transport_options("connectionTimeout=5").connection_timeout_ms,
            5
        );
        assert!(!transport_options("tcpNoDelay=false").tcp_no_delay);
        assert!(transport_options("keepAlive=TRUE").keep_alive);
        assert_eq!(
            transport_options("wireFormat.maxInactivityDuration=0").heart_beat_ms,
            0
        );
    }

    #[test]
    fn each_failover_option_sets_its_field() {
        let o = failover_options(
            "initialReconnectDelay=100&maxReconnectDelay=5000&useExponentialBackOff=false\
             &reconnectDelayExponent=1.5&maxReconnectAttempts=3&startupMaxReconnectAttempts=0\
             &randomize=false&timeout=2000&backup=true&backupPoolSize=2&priorityBackup=true\
             &priorityURIs=tcp://b:2&updateURIsSupported=false",
        );
        let expected = FailoverOptions {
            initial_reconnect_delay_ms: 100,
            max_reconnect_delay_ms: 5000,
            use_exponential_back_off: false,
            reconnect_delay_exponent: 1.5,
            max_reconnect_attempts: 3,
            startup_max_reconnect_attempts: 0,
            randomize: false,
            timeout_ms: 2000,
            backup: true,
            backup_pool_size: 2,
            priority_backup: true,
            priority_uris: vec![BrokerUri::tcp("b", 2)],
            update_uris_supported: false,
        };
        assert_eq!(o, expected);
    }

    #[test]
    fn direct_forms() {
        assert_eq!(
            direct("tcp://localhost:61613"),
            BrokerUri::tcp("localhost", 61613)
        );
        let stomp = direct("  stomp://Broker-1.Example.com:61613 ");
        assert_eq!(stomp.scheme, Scheme::Stomp);
        assert_eq!(stomp.host, "broker-1.example.com");
        assert_eq!(direct("TCP://10.0.0.1:1").host, "10.0.0.1");
        let v6 = direct("tcp://[0:0::1]:65535");
        assert_eq!((v6.host.as_str(), v6.port), ("::1", 65535));
    }

    #[test]
    fn failover_forms() {
        let (brokers, options) = failover("failover:(tcp://a:1, stomp://b:2 )?randomize=false");
        assert_eq!(brokers.len(), 2);
        assert_eq!(brokers[1].scheme, Scheme::Stomp);
        assert!(!options.randomize);

        let (single, _) = failover("failover:(tcp://a:1)");
        assert_eq!(single, vec![BrokerUri::tcp("a", 1)]);

        let (slashes, _) = failover("failover://(tcp://a:1,tcp://b:2)");
        assert_eq!(slashes.len(), 2);

        // Without parentheses a `?` belongs to the URI it follows.
        let (bare, options) = failover("failover:tcp://a:1?keepAlive=true,tcp://b:2");
        assert!(bare[0].options.keep_alive);
        assert!(!bare[1].options.keep_alive);
        assert_eq!(options, FailoverOptions::default());
    }

    #[test]
    fn nested_options_apply_to_every_broker_but_the_inner_value_wins() {
        let (brokers, _) = failover(
            "failover:(tcp://a:1?keepAlive=false,tcp://b:2)?nested.keepAlive=true\
             &nested.wireFormat.maxInactivityDuration=0",
        );
        assert!(!brokers[0].options.keep_alive, "inner value wins");
        assert!(brokers[1].options.keep_alive);
        assert!(brokers.iter().all(|b| b.options.heart_beat_ms == 0));
    }

    #[test]
    fn priority_uris_split_on_commas_inside_the_query() {
        let o = failover_options("priorityURIs=tcp://a:1, tcp://b:2&randomize=false");
        assert_eq!(
            o.priority_uris,
            vec![BrokerUri::tcp("a", 1), BrokerUri::tcp("b", 2)]
        );
        assert!(!o.randomize);
        assert!(failover_options("priorityURIs=").priority_uris.is_empty());
    }

    #[test]
    fn display_omits_defaults_and_brackets_ipv6() {
        assert_eq!(direct("tcp://a:61613").to_string(), "tcp://a:61613");
        assert_eq!(
            direct("stomp://[::1]:1?keepAlive=true&connectionTimeout=5").to_string(),
            "stomp://[::1]:1?connectionTimeout=5&keepAlive=true"
        );
        let uri = parse("failover:tcp://a:1,tcp://b:2").unwrap();
        assert_eq!(uri.to_string(), "failover:(tcp://a:1,tcp://b:2)");
        let uri = parse("failover:(tcp://a:1)?priorityBackup=true&priorityURIs=tcp://a:1,tcp://b:2&reconnectDelayExponent=1.5").unwrap();
        assert_eq!(
            uri.to_string(),
            "failover:(tcp://a:1)?reconnectDelayExponent=1.5&priorityBackup=true\
             &priorityURIs=tcp://a:1,tcp://b:2"
        );
        assert_eq!(parse(&uri.to_string()).unwrap(), uri);
    }

    #[test]
    fn errors_name_the_offending_text() {
        let cases: &[(&str, UriError)] = &[
            ("", UriError::Empty),
            ("udp://a:1", UriError::UnknownScheme("udp://a:1".into())),
            (
                "localhost:61613",
                UriError::UnknownScheme("localhost:61613".into()),
            ),
            ("tcp://a", UriError::MissingPort("tcp://a".into())),
            ("tcp://a:0", UriError::BadPort("tcp://a:0".into())),
            ("tcp://:1", UriError::MissingHost("tcp://:1".into())),
            ("tcp://::1:5", UriError::BadHost("tcp://::1:5".into())),
            (
                "failover:(tcp://a:1",
                UriError::UnbalancedParentheses("failover:(tcp://a:1".into()),
            ),
            (
                "failover:()",
                UriError::EmptyBrokerList("failover:()".into()),
            ),
            (
                "failover:(tcp://a:1)?randomize=maybe",
                UriError::BadOptionValue {
                    name: "randomize".into(),
                    value: "maybe".into(),
                    expected: "true or false",
                },
            ),
            (
                "failover:(tcp://a:1)?nested.soLinger=1",
                UriError::UnknownOption {
                    name: "nested.soLinger".into(),
                    uri: "failover:(tcp://a:1)?nested.soLinger=1".into(),
                },
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(parse(text).as_ref(), Err(expected), "{text}");
        }
    }

    #[test]
    fn ssl_and_stomp_ssl_are_tls_brokers_inside_failover_lists_too() {
        for text in ["ssl://a:61612", "stomp+ssl://a:61612", "SSL://a:61612"] {
            let ConnectUri::Direct(b) = parse(text).unwrap() else {
                panic!("{text}: not a direct URI");
            };
            assert!(b.scheme.is_tls(), "{text}");
            assert_eq!(b.to_string(), "ssl://a:61612");
        }
        let ConnectUri::Failover { brokers, .. } =
            parse("failover:(tcp://a:61613,ssl://b:61612)?randomize=false").unwrap()
        else {
            panic!("not a failover URI");
        };
        assert!(!brokers[0].scheme.is_tls() && brokers[1].scheme.is_tls());
    }

    #[test]
    fn too_many_brokers_is_refused() {
        let list = vec!["tcp://a:1"; MAX_BROKERS + 1].join(",");
        assert_eq!(
            parse(&format!("failover:({list})")),
            Err(UriError::TooManyBrokers {
                count: MAX_BROKERS + 1,
                max: MAX_BROKERS
            })
        );
        let list = vec!["tcp://a:1"; MAX_BROKERS].join(",");
        assert!(parse(&format!("failover:({list})")).is_ok());
    }

    #[test]
    fn same_address_ignores_scheme_options_and_case() {
        let a = direct("tcp://Host:1?keepAlive=true");
        let b = BrokerUri {
            scheme: Scheme::Stomp,
            host: "HOST".into(),
            ..BrokerUri::tcp("x", 1)
        };
        assert!(a.same_address(&b));
        assert!(!a.same_address(&BrokerUri::tcp("host", 2)));
    }
}
