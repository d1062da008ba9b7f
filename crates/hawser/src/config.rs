//! The server's configuration: a TOML file (`--config FILE`) overridden by flags.
//!
//! Every limit has a named default here; `hawser serve --help` and
//! `docs/configuration.md` list them.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use hawser_broker::config as broker_defaults;
use hawser_broker::BrokerConfig;
use serde::Deserialize;

/// STOMP's registered port, ActiveMQ's default.
pub const DEFAULT_STOMP_ADDR: &str = "127.0.0.1:61613";
/// Where the broker listens for OpenWire (ActiveMQ's Java clients) unless told otherwise.
pub const DEFAULT_OPENWIRE_ADDR: &str = "127.0.0.1:61616";
/// Largest OpenWire frame accepted: 10 MiB, as for STOMP. (ActiveMQ allows
/// 100 MiB, but a decoded frame of small structures takes up to about 20 times
/// its size in memory, and a held producer's connection buffers one frame.)
pub const DEFAULT_OPENWIRE_MAX_FRAME_BYTES: u64 = 10 << 20;
/// Most client connections served at once (ActiveMQ's `maximumConnections` default).
pub const DEFAULT_MAX_CONNECTIONS: usize = 1000;
/// Default of [`LimitsConfig::max_connections_per_address`].
pub const DEFAULT_MAX_CONNECTIONS_PER_ADDRESS: usize = 256;
/// Default of [`LimitsConfig::max_connections_per_listener`]: three quarters
/// of all, so a flood on one port leaves room on the others.
pub const DEFAULT_MAX_CONNECTIONS_PER_LISTENER: usize = 750;
/// A connection must send CONNECT within this many ms.
pub const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 30_000;
/// Default `[openwire] login_timeout_ms`: a minute to authenticate.
pub const DEFAULT_LOGIN_TIMEOUT_MS: u64 = 60_000;
/// A frame that has started arriving must be complete within this many ms.
pub const DEFAULT_FRAME_TIMEOUT_MS: u64 = 30_000;
/// The broker can send heart-beats this often (ms); 0 disables.
pub const DEFAULT_HEARTBEAT_SEND_MS: u64 = 10_000;
/// The broker wants heart-beats from clients this often (ms); 0 disables.
pub const DEFAULT_HEARTBEAT_RECEIVE_MS: u64 = 10_000;
/// Journal disk use above which producers are held back: 16 GiB.
pub const DEFAULT_MAX_STORE_BYTES: u64 = 16 << 30;
/// Journal segment size: 64 MiB.
pub const DEFAULT_SEGMENT_BYTES: u64 = 64 << 20;
/// A connection without heart-beats is closed after this many ms with nothing
/// received (5 minutes); clients that stay quiet longer ask for heart-beats.
pub const DEFAULT_IDLE_TIMEOUT_MS: u64 = 300_000;
/// Frames queued for one connection's writer before the broker stops reading
/// from that client.
pub const DEFAULT_MAX_OUTBOUND_FRAMES: usize = 10_000;
/// Messages one queue browser is sent (ActiveMQ's `maxBrowsePageSize`).
pub const DEFAULT_MAX_BROWSE_MESSAGES: usize = 400;
/// Free space on the journal's file system below which producers are held, in
/// segments, when `min_free_disk_bytes` is not set: one more than the journal needs
/// free to prepare its next segment ahead ([`hawser_journal::MIN_FREE_SEGMENTS`]).
/// While producers are accepted the journal can always prepare the segment it will
/// need; once they are held, what is left (at least three segments, as preparing one
/// reserves one) takes the acks, commits and compaction copies that free space, and
/// what producers wrote within one [`crate::disk::DISK_SAMPLE_INTERVAL`].
/// With 64 MiB segments: 320 MiB.
pub const DEFAULT_MIN_FREE_DISK_SEGMENTS: u64 = hawser_journal::MIN_FREE_SEGMENTS + 1;

/// What producers experience when memory or store is full.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum FlowControl {
    /// Hold the producer (no receipt, no reading) until there is room.
    Block,
    /// Refuse the send with an ERROR frame.
    Fail,
}

/// Where persistent messages are kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Persistence {
    /// The local journal in the data directory.
    Journal,
    /// Nothing is kept across restarts (tests, caches).
    Memory,
    /// A PostgreSQL database (`[store] url`).
    Postgres,
}

/// `[store]`: where messages are kept (`kind`, the same as `persistence`)
/// and, for PostgreSQL, how to reach it.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreSettings {
    /// `journal`, `memory` or `postgres`; overrides `persistence`.
    pub kind: Option<Persistence>,
    /// For `postgres`: a libpq connection string or URL. Several hosts as
    /// libpq lists them (`host=a,b port=5432,5433
    /// target_session_attrs=read-write`) to follow the database's failover.
    pub url: Option<String>,
}

/// The whole configuration, as read from TOML. Missing keys take the defaults.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Directory of the journal.
    pub data_dir: PathBuf,
    /// Where messages are kept (`[store] kind` overrides it).
    pub persistence: Persistence,
    /// The store's settings.
    pub store: StoreSettings,
    /// Threads serving connections (Tokio workers); `None`: one per two CPUs
    /// ([`default_io_threads`]). The engine's state is behind one lock, so more
    /// threads add socket work in parallel but not engine work, and the journal
    /// thread and the kernel's network work need CPUs too (see docs/benchmarks.md
    /// for one thread against two on 2 CPUs).
    pub io_threads: Option<std::num::NonZeroUsize>,
    /// STOMP listener settings.
    pub stomp: StompConfig,
    /// OpenWire listener settings.
    pub openwire: OpenWireConfig,
    /// Resource limits.
    pub limits: LimitsConfig,
    /// Broker engine settings.
    pub broker: EngineConfig,
    /// Journal settings.
    pub journal: JournalSettings,
    /// What the broker tells clients about its peers.
    pub cluster: ClusterConfig,
    /// Master/slave on a shared store.
    pub ha: HaConfig,
    /// The HTTP admin endpoint (`[admin]`; `[status]` is its earlier name).
    #[serde(alias = "admin")]
    pub status: StatusConfig,
    /// Who may connect.
    pub security: SecurityConfig,
    /// The TLS listeners' certificate.
    pub tls: TlsConfig,
    /// Who may do what with which destinations (`[[authorization]]`).
    pub authorization: Vec<AuthorizationConfig>,
    /// Per-destination policies (`[[policy]]`), first match wins.
    pub policy: Vec<PolicyConfig>,
    /// Links to peer brokers (`[[network_connector]]`, ActiveMQ's
    /// `networkConnector`): see docs/network-plan.md.
    pub network_connector: Vec<crate::network::NetworkConnectorConfig>,
}

/// `[[policy]]`: limits for the destinations a pattern matches, as ActiveMQ's
/// `policyEntry` (wildcards `*` and `>`, `.` separating path elements).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PolicyConfig {
    /// Queues it applies to (e.g. `orders.>`); give this or `topic`.
    pub queue: Option<String>,
    /// Topics it applies to.
    pub topic: Option<String>,
    /// Bytes of messages a matching destination may hold in memory before its
    /// persistent queue messages stay in the journal and its other producers
    /// are held (ActiveMQ's `memoryLimit`, also accepted under that name)
    /// [default: no own limit].
    #[serde(alias = "memoryLimit", alias = "memory_limit")]
    pub memory_limit_bytes: Option<u64>,
    /// Hold producers when there is no room (`true`), or refuse their sends
    /// with an ERROR (`false`) [default: `limits.flow_control`].
    pub producer_flow_control: Option<bool>,
}

impl PolicyConfig {
    /// The engine's policy entry.
    pub fn entry(&self) -> anyhow::Result<hawser_broker::PolicyEntry> {
        let pattern = match (&self.queue, &self.topic) {
            (Some(q), None) => hawser_broker::DestinationPattern::new(false, q),
            (None, Some(t)) => hawser_broker::DestinationPattern::new(true, t),
            _ => anyhow::bail!("a [[policy]] names exactly one of queue or topic"),
        }
        .map_err(|e| anyhow::anyhow!("[[policy]]: {e}"))?;
        Ok(hawser_broker::PolicyEntry {
            pattern,
            policy: hawser_broker::DestinationPolicy {
                memory_limit_bytes: self.memory_limit_bytes.unwrap_or(u64::MAX),
                producer_flow_control: self.producer_flow_control,
            },
        })
    }
}

/// `[[authorization]]`: who may read, write and create the destinations a
/// pattern matches (ActiveMQ's `authorizationEntry`; with `temporary = true`,
/// its `tempDestinationAuthorizationEntry`). Names are users or groups,
/// comma-separated as in ActiveMQ. Every entry that matches counts. Without
/// entries, every connection may do everything.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthorizationConfig {
    /// Queues it applies to (e.g. `orders.>`); give this, `topic` or `temporary`.
    pub queue: Option<String>,
    /// Topics it applies to.
    pub topic: Option<String>,
    /// It applies to every temporary queue and topic.
    pub temporary: bool,
    /// Who may consume and browse.
    pub read: String,
    /// Who may send.
    pub write: String,
    /// Who may create (use a queue first, make a temporary destination).
    pub admin: String,
}

impl AuthorizationConfig {
    /// The engine's entry.
    pub fn entry(&self) -> anyhow::Result<hawser_broker::AccessEntry> {
        let pattern = |topics, p: &str| {
            hawser_broker::DestinationPattern::new(topics, p)
                .map(hawser_broker::AccessTarget::Pattern)
                .map_err(|e| anyhow::anyhow!("[[authorization]]: {e}"))
        };
        let target = match (&self.queue, &self.topic, self.temporary) {
            (Some(q), None, false) => pattern(false, q)?,
            (None, Some(t), false) => pattern(true, t)?,
            (None, None, true) => hawser_broker::AccessTarget::Temporary,
            _ => anyhow::bail!(
                "an [[authorization]] entry names exactly one of queue, topic or temporary = true"
            ),
        };
        let names = |list: &str| -> Vec<std::sync::Arc<str>> {
            list.split(',')
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .map(std::sync::Arc::from)
                .collect()
        };
        Ok(hawser_broker::AccessEntry {
            target,
            read: names(&self.read),
            write: names(&self.write),
            admin: names(&self.admin),
        })
    }
}

/// Whether the broker shares its data directory with standbys.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum HaMode {
    /// The broker owns its store alone.
    None,
    /// Brokers pointed at one data directory: one master serves, the others wait.
    SharedStore,
}

/// How the master of a shared store holds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum HaLock {
    /// An exclusive file lock (local file systems, trusted network locks).
    File,
    /// A lease renewed in the store (network file systems; see docs/failover.md).
    Lease,
}

/// `[ha]`: master/slave on a shared store.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HaConfig {
    /// `none` or `shared-store`.
    pub mode: HaMode,
    /// `file` or `lease`.
    pub lock: HaLock,
    /// Pause between a standby's attempts to become master (ms).
    pub poll_interval_ms: u64,
    /// How long a lease renewal holds (ms, lease mode).
    pub lease_ms: u64,
    /// How often the master renews its lease (ms, lease mode).
    pub renew_interval_ms: u64,
    /// Largest difference allowed between the brokers' wall clocks (ms, lease mode).
    pub clock_skew_ms: u64,
    /// How this broker names itself in the store [default: host name and STOMP port].
    pub node: Option<String>,
}

impl Default for HaConfig {
    fn default() -> Self {
        HaConfig {
            mode: HaMode::None,
            lock: HaLock::File,
            poll_interval_ms: hawser_ha::DEFAULT_POLL_MS,
            lease_ms: hawser_ha::DEFAULT_LEASE_MS,
            renew_interval_ms: hawser_ha::DEFAULT_RENEW_MS,
            clock_skew_ms: hawser_ha::DEFAULT_CLOCK_SKEW_MS,
            node: None,
        }
    }
}

impl HaConfig {
    /// Checks that a lease can be renewed before it runs out.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.mode == HaMode::SharedStore
            && self.lock == HaLock::Lease
            && self.renew_interval_ms + self.clock_skew_ms >= self.lease_ms
        {
            anyhow::bail!(
                "lease_ms ({}) must exceed renew_interval_ms ({}) + clock_skew_ms ({})",
                self.lease_ms,
                self.renew_interval_ms,
                self.clock_skew_ms
            );
        }
        Ok(())
    }
}

/// Where the admin endpoint listens unless told otherwise (ActiveMQ's web
/// console port).
pub const DEFAULT_ADMIN_ADDR: &str = "127.0.0.1:8161";

/// `[admin]` (or `[status]`, its earlier name): the HTTP endpoint that says
/// what the broker is (`/status`, `/metrics`, `/health/*`; crate::status).
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StatusConfig {
    /// Address to listen on. Absent: [`DEFAULT_ADMIN_ADDR`], and a broker
    /// that cannot bind it (another broker on this host has it) goes on
    /// without, saying so; an address given must be bound.
    pub listen: Option<SocketAddr>,
    /// Off: no endpoint at all (`--no-admin`).
    pub enabled: bool,
    /// Serve HTTPS, with the `[tls]` certificate.
    pub tls: bool,
    /// Users and groups that may change things (purge, delete, move, close
    /// connections), when the broker has users; ActiveMQ's console role
    /// `admins` by default.
    pub admins: Vec<String>,
    /// Users and groups that may read (status, metrics, lists, browsing);
    /// empty: every user. Admins may always read.
    pub readers: Vec<String>,
    /// The admin endpoints of the other brokers of this cluster (standbys,
    /// network peers), `HOST:PORT`: the cluster view asks each for its
    /// status.
    pub peers: Vec<String>,
}

impl Default for StatusConfig {
    fn default() -> Self {
        StatusConfig {
            listen: None,
            enabled: true,
            tls: false,
            admins: vec!["admins".to_owned()],
            readers: Vec::new(),
            peers: Vec::new(),
        }
    }
}

impl StatusConfig {
    /// The address to serve on, and whether it was given (rather than the
    /// default); `None` when switched off.
    pub fn address(&self) -> Option<(SocketAddr, bool)> {
        if !self.enabled {
            return None;
        }
        Some(match self.listen {
            Some(a) => (a, true),
            None => (DEFAULT_ADMIN_ADDR.parse().expect("a valid address"), false),
        })
    }
}

/// `[tls]`: the certificate of the TLS listeners (see `crate::security::tls`).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// The broker's certificate chain, PEM, leaf first.
    pub cert_file: Option<PathBuf>,
    /// Its private key, PEM.
    pub key_file: Option<PathBuf>,
    /// CA certificates, PEM, that sign client certificates: set, clients
    /// are asked for one (mutual TLS).
    pub client_ca_file: Option<PathBuf>,
    /// Refuse clients without a certificate signed by `client_ca_file`.
    pub require_client_cert: bool,
}

impl TlsConfig {
    /// The files, if a certificate is configured.
    ///
    /// # Errors
    /// A certificate without a key, or the other way round.
    pub fn files(&self) -> anyhow::Result<Option<crate::security::tls::TlsFiles>> {
        match (&self.cert_file, &self.key_file) {
            (None, None) => Ok(None),
            (Some(cert), Some(key)) => Ok(Some(crate::security::tls::TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
                client_ca: self.client_ca_file.clone(),
                require_client_cert: self.require_client_cert,
            })),
            _ => anyhow::bail!("[tls] needs both cert_file and key_file"),
        }
    }
}

/// `[security]`: who may connect (see `crate::security`).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SecurityConfig {
    /// Users and groups with argon2 password hashes (`hawser passwd` writes
    /// it); set, every connection must authenticate. Relative to the
    /// working directory.
    pub users_file: Option<PathBuf>,
    /// Lets connections without credentials in as anonymous when there is a
    /// users file, and lets a broker without one listen on addresses other
    /// than loopback (ActiveMQ's `anonymousAccessAllowed`).
    pub allow_anonymous: bool,
}

/// ActiveMQ's `updateClusterClients`: the broker URIs clients should know.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// STOMP URIs (e.g. `tcp://10.0.0.2:61613`) sent to STOMP clients on
    /// CONNECT and whenever the list changes (SIGHUP re-reads it from the
    /// config file).
    pub advertise: Vec<String>,
    /// OpenWire URIs (e.g. `tcp://10.0.0.2:61616`) sent to JMS clients in a
    /// ConnectionControl after their ConnectionInfo and whenever the list
    /// changes; their failover transport then knows every broker.
    pub advertise_openwire: Vec<String>,
    /// ActiveMQ's `rebalanceClusterClients`: those ConnectionControls also ask
    /// the client to rebalance (not one that just failed over or was moved
    /// here). A JMS failover client whose list of brokers changed then moves to
    /// the first of them (`randomize=false`; the list is turned by one for each
    /// client, so they spread) or to one picked at random (the default). Only
    /// for brokers that all serve at once (a network of brokers), not a
    /// master/slave pair: a client sent to a slave finds it closed and comes back.
    pub rebalance_clients: bool,
}

/// Threads serving connections when not configured: one per two CPUs, at
/// least one. On 2 CPUs one thread ran every benchmark as fast or faster than
/// two, on 14-35 % less CPU per message (docs/benchmarks.md).
pub fn default_io_threads() -> std::num::NonZeroUsize {
    let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    std::num::NonZeroUsize::new(cpus / 2).unwrap_or(std::num::NonZeroUsize::MIN)
}

impl ClusterConfig {
    /// Checks that every URI has the `scheme://host:port` form clients can use.
    pub fn validate(&self) -> anyhow::Result<()> {
        for uri in self.advertise.iter().chain(&self.advertise_openwire) {
            let ok = uri
                .split_once("://")
                .filter(|(scheme, _)| matches!(*scheme, "tcp" | "stomp"))
                .and_then(|(_, rest)| rest.rsplit_once(':'))
                .is_some_and(|(host, port)| {
                    !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0)
                });
            if !ok || uri.contains(',') {
                anyhow::bail!("cluster advertise URI {uri:?} is not of the form tcp://host:port");
            }
        }
        Ok(())
    }
}

/// The STOMP listener.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StompConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Address to listen on for STOMP over TLS (`stomp+ssl://`, ActiveMQ's
    /// 61612); off when absent. Needs `[tls]`.
    pub ssl_listen: Option<SocketAddr>,
    /// Heart-beat interval the broker offers to send (ms; 0: none).
    pub heartbeat_send_ms: u64,
    /// Heart-beat interval the broker asks clients for (ms; 0: none).
    pub heartbeat_receive_ms: u64,
    /// Time allowed between accepting a connection and its CONNECT frame (ms).
    pub connect_timeout_ms: u64,
    /// Time allowed for a started frame to complete (ms).
    pub frame_timeout_ms: u64,
    /// A connection without heart-beats is closed after this long with nothing
    /// received (ms; 0: never).
    pub idle_timeout_ms: u64,
}

/// The OpenWire listener (ActiveMQ's Java clients).
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OpenWireConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Address to listen on for OpenWire over TLS (`ssl://`, ActiveMQ's
    /// 61617); off when absent. Needs `[tls]`.
    pub ssl_listen: Option<SocketAddr>,
    /// Time allowed between accepting a connection and the client's
    /// WireFormatInfo (ms). Its ConnectionInfo may come much later: a JMS
    /// client sends it with its first session.
    pub connect_timeout_ms: u64,
    /// With users configured, time allowed between accepting a connection
    /// and its ConnectionInfo, with the credentials (ms; 0: no limit). A JMS
    /// client sends it at `Connection.start()` or its first session; one
    /// that takes longer is closed (a failover client connects again).
    pub login_timeout_ms: u64,
    /// Time allowed for a started frame to complete (ms).
    pub frame_timeout_ms: u64,
    /// A connection whose client turned inactivity checks off is closed after
    /// this long with nothing received (ms; 0: never).
    pub idle_timeout_ms: u64,
    /// Largest frame accepted (bytes), checked before the frame is read.
    pub max_frame_bytes: u64,
}

impl Default for OpenWireConfig {
    fn default() -> Self {
        OpenWireConfig {
            listen: DEFAULT_OPENWIRE_ADDR
                .parse()
                .expect("valid default address"),
            ssl_listen: None,
            connect_timeout_ms: DEFAULT_CONNECT_TIMEOUT_MS,
            login_timeout_ms: DEFAULT_LOGIN_TIMEOUT_MS,
            frame_timeout_ms: DEFAULT_FRAME_TIMEOUT_MS,
            idle_timeout_ms: DEFAULT_IDLE_TIMEOUT_MS,
            max_frame_bytes: DEFAULT_OPENWIRE_MAX_FRAME_BYTES,
        }
    }
}

/// Limits on what clients can make the broker hold.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Connections served at once; further ones get an ERROR and are closed.
    pub max_connections: usize,
    /// Connections from one remote address served at once, before any
    /// authentication: one host cannot take every connection. Clients behind
    /// one NAT address share it.
    pub max_connections_per_address: usize,
    /// Connections served at once on one listener (STOMP, OpenWire, and each
    /// TLS port apart), counted from the accept: a flood on one port cannot
    /// take every connection. ActiveMQ's `maximumConnections` of a
    /// transport connector (also accepted under that name).
    #[serde(alias = "maximumConnections")]
    pub max_connections_per_listener: usize,
    /// Largest frame, headers and body together (bytes).
    pub max_frame_bytes: usize,
    /// Most headers in one frame.
    pub max_headers: usize,
    /// Longest header line (bytes).
    pub max_header_bytes: usize,
    /// Memory held by pending messages (bytes): beyond it persistent queue
    /// messages stay in the journal (paging), others are flow-controlled.
    /// ActiveMQ's `memoryUsage` (also accepted under that name).
    #[serde(alias = "memoryUsage", alias = "memory_usage")]
    pub max_pending_memory_bytes: u64,
    /// Journal size before flow control (bytes). ActiveMQ's `storeUsage`
    /// (also accepted under that name).
    #[serde(alias = "storeUsage", alias = "store_usage")]
    pub max_store_bytes: u64,
    /// Non-persistent queue messages kept in the journal beyond memory
    /// (bytes): below it they spill there rather than hold their producers;
    /// at it, producers are held (or refused) as memory holds them. No start
    /// recovers them. ActiveMQ's `tempUsage` (also accepted under that name).
    #[serde(alias = "tempUsage", alias = "temp_usage")]
    pub max_temp_bytes: u64,
    /// Free space on the journal's file system below which producers are held
    /// (bytes; 0: off). Unset: [`DEFAULT_MIN_FREE_DISK_SEGMENTS`] segments.
    pub min_free_disk_bytes: Option<u64>,
    /// What producers experience when memory, store or disk is full.
    pub flow_control: FlowControl,
    /// Frames queued for one connection before the broker stops reading from it.
    pub max_outbound_frames: usize,
    /// Messages one queue browser is sent.
    pub max_browse_messages: usize,
    /// Subscriptions (browsers included) on one connection.
    pub max_subscriptions_per_connection: usize,
    /// Open transactions on one connection.
    pub max_transactions_per_connection: usize,
    /// XA transactions prepared and not yet committed or rolled back, broker-wide.
    pub max_prepared_transactions: usize,
    /// Sends plus acks in one transaction.
    pub max_transaction_ops: usize,
    /// Temporary destinations one connection may own.
    pub max_temporary_destinations_per_connection: usize,
    /// Producer ids one connection without client-id may use.
    pub max_producers_per_connection: usize,
    /// Client-id scoped producers remembered for duplicate detection.
    pub max_tracked_producers: usize,
    /// Largest prefetch a subscription gets.
    pub max_prefetch: u32,
}

/// Broker engine settings.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EngineConfig {
    /// Redeliveries before a message is dead-lettered.
    pub max_redeliveries: u32,
    /// The dead-letter queue's name.
    pub dead_letter_queue: String,
    /// Prefetch for subscriptions that set none.
    pub default_prefetch: u32,
    /// Dispatch persistent messages while they are written (ActiveMQ's
    /// concurrentStoreAndDispatchQueues); receipts wait for the fsync, or for a
    /// consumer's ack with `confirm_consumed`.
    pub concurrent_store_and_dispatch: bool,
    /// With concurrent dispatch, confirm a send once a consumer has explicitly
    /// acknowledged its message, if that comes before the fsync.
    pub confirm_consumed: bool,
}

/// Journal settings.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JournalSettings {
    /// Size at which a segment file is closed and a new one started (bytes).
    pub segment_bytes: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("data"),
            persistence: Persistence::Journal,
            store: StoreSettings::default(),
            io_threads: None,
            stomp: StompConfig::default(),
            openwire: OpenWireConfig::default(),
            limits: LimitsConfig::default(),
            broker: EngineConfig::default(),
            journal: JournalSettings::default(),
            cluster: ClusterConfig::default(),
            ha: HaConfig::default(),
            status: StatusConfig::default(),
            security: SecurityConfig::default(),
            tls: TlsConfig::default(),
            authorization: Vec::new(),
            network_connector: Vec::new(),
            policy: Vec::new(),
        }
    }
}

impl Default for StompConfig {
    fn default() -> Self {
        StompConfig {
            listen: DEFAULT_STOMP_ADDR.parse().expect("valid default address"),
            ssl_listen: None,
            heartbeat_send_ms: DEFAULT_HEARTBEAT_SEND_MS,
            heartbeat_receive_ms: DEFAULT_HEARTBEAT_RECEIVE_MS,
            connect_timeout_ms: DEFAULT_CONNECT_TIMEOUT_MS,
            frame_timeout_ms: DEFAULT_FRAME_TIMEOUT_MS,
            idle_timeout_ms: DEFAULT_IDLE_TIMEOUT_MS,
        }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_connections_per_address: DEFAULT_MAX_CONNECTIONS_PER_ADDRESS,
            max_connections_per_listener: DEFAULT_MAX_CONNECTIONS_PER_LISTENER,
            max_frame_bytes: hawser_stomp::DEFAULT_MAX_FRAME_BYTES,
            max_headers: hawser_stomp::DEFAULT_MAX_HEADERS,
            max_header_bytes: hawser_stomp::DEFAULT_MAX_HEADER_BYTES,
            max_pending_memory_bytes: broker_defaults::DEFAULT_MAX_PENDING_MEMORY_BYTES,
            max_store_bytes: DEFAULT_MAX_STORE_BYTES,
            max_temp_bytes: broker_defaults::DEFAULT_MAX_TEMP_BYTES,
            min_free_disk_bytes: None,
            flow_control: FlowControl::Block,
            max_outbound_frames: DEFAULT_MAX_OUTBOUND_FRAMES,
            max_browse_messages: DEFAULT_MAX_BROWSE_MESSAGES,
            max_subscriptions_per_connection:
                broker_defaults::DEFAULT_MAX_SUBSCRIPTIONS_PER_CONNECTION,
            max_transactions_per_connection:
                broker_defaults::DEFAULT_MAX_TRANSACTIONS_PER_CONNECTION,
            max_prepared_transactions: broker_defaults::DEFAULT_MAX_PREPARED_TRANSACTIONS,
            max_transaction_ops: broker_defaults::DEFAULT_MAX_TRANSACTION_OPS,
            max_temporary_destinations_per_connection:
                broker_defaults::DEFAULT_MAX_TEMPORARY_DESTINATIONS_PER_CONNECTION,
            max_producers_per_connection: broker_defaults::DEFAULT_MAX_PRODUCERS_PER_CONNECTION,
            max_tracked_producers: broker_defaults::DEFAULT_MAX_TRACKED_PRODUCERS,
            max_prefetch: broker_defaults::DEFAULT_MAX_PREFETCH,
        }
    }
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            max_redeliveries: broker_defaults::DEFAULT_MAX_REDELIVERIES,
            dead_letter_queue: broker_defaults::DEFAULT_DEAD_LETTER_QUEUE.to_owned(),
            default_prefetch: broker_defaults::DEFAULT_PREFETCH,
            concurrent_store_and_dispatch: true,
            confirm_consumed: true,
        }
    }
}

impl Default for JournalSettings {
    fn default() -> Self {
        JournalSettings {
            segment_bytes: DEFAULT_SEGMENT_BYTES,
        }
    }
}

impl Config {
    /// Reads a TOML file; unknown keys are errors so typos do not pass silently.
    pub fn load(path: &Path) -> anyhow::Result<Config> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read config {}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| anyhow::anyhow!("invalid config {}: {e}", path.display()))
    }

    /// Free space below which producers are held (0: off): `min_free_disk_bytes`,
    /// or [`DEFAULT_MIN_FREE_DISK_SEGMENTS`] segments when it is not set.
    pub fn min_free_disk_bytes(&self) -> u64 {
        self.limits.min_free_disk_bytes.unwrap_or_else(|| {
            DEFAULT_MIN_FREE_DISK_SEGMENTS.saturating_mul(self.journal.segment_bytes)
        })
    }

    /// Where messages are kept: `[store] kind`, else `persistence`.
    pub fn store_kind(&self) -> Persistence {
        self.store.kind.unwrap_or(self.persistence)
    }

    /// This broker's name among network peers: `[ha] node` if set, else
    /// `hawser@` and the STOMP address (unique among brokers that can reach
    /// each other, which is what network paths need).
    pub fn broker_name(&self) -> String {
        self.ha
            .node
            .clone()
            .unwrap_or_else(|| format!("hawser@{}", self.stomp.listen))
    }

    /// The engine's part of the configuration.
    pub fn broker_config(&self) -> anyhow::Result<BrokerConfig> {
        let l = &self.limits;
        Ok(BrokerConfig {
            name: std::sync::Arc::from(self.broker_name()),
            // The store's, set once the store is open (server::open_store).
            store_name: std::sync::Arc::from(self.broker_name()),
            max_redeliveries: self.broker.max_redeliveries,
            dead_letter_queue: self.broker.dead_letter_queue.clone(),
            max_pending_memory_bytes: l.max_pending_memory_bytes,
            max_temp_bytes: l.max_temp_bytes,
            max_transaction_ops: l.max_transaction_ops,
            max_transactions_per_connection: l.max_transactions_per_connection,
            max_prepared_transactions: l.max_prepared_transactions,
            max_subscriptions_per_connection: l.max_subscriptions_per_connection,
            max_tracked_producers: l.max_tracked_producers,
            max_producers_per_connection: l.max_producers_per_connection,
            max_temporary_destinations_per_connection: l.max_temporary_destinations_per_connection,
            max_prefetch: l.max_prefetch.max(1),
            policies: self
                .policy
                .iter()
                .map(PolicyConfig::entry)
                .collect::<anyhow::Result<_>>()?,
            access: hawser_broker::AccessPolicy::new(
                self.authorization
                    .iter()
                    .map(AuthorizationConfig::entry)
                    .collect::<anyhow::Result<_>>()?,
            ),
            concurrent_store_and_dispatch: self.broker.concurrent_store_and_dispatch,
            confirm_consumed: self.broker.confirm_consumed,
        })
    }

    /// Refuses a broker that would serve anyone who reaches it over a
    /// network: no users file, a listener on an address other than loopback,
    /// and no `allow_anonymous`. Open on loopback is what `cargo run` gives a
    /// developer; open on a network is a choice to state.
    ///
    /// # Errors
    /// Naming the listener and how to configure users.
    pub fn check_exposure(&self) -> anyhow::Result<()> {
        if self.security.users_file.is_some() || self.security.allow_anonymous {
            return Ok(());
        }
        let listeners = [
            ("STOMP", Some(self.stomp.listen)),
            ("STOMP over TLS", self.stomp.ssl_listen),
            ("OpenWire", Some(self.openwire.listen)),
            ("OpenWire over TLS", self.openwire.ssl_listen),
            ("admin", self.status.address().map(|(a, _)| a)),
        ];
        for (name, addr) in listeners {
            if let Some(addr) = addr.filter(|a| !a.ip().is_loopback()) {
                anyhow::bail!(
                    "refusing to serve {name} on {addr} without authentication: create users with \
                     `hawser passwd --users-file FILE USER` and start with --users-file FILE \
                     ([security] users_file), listen on a loopback address, or pass \
                     --allow-anonymous to run open anyway"
                );
            }
        }
        Ok(())
    }

    /// The shared-store settings, when the broker is one of several on a store.
    pub fn ha_settings(&self) -> Option<hawser_ha::HaSettings> {
        if self.ha.mode != HaMode::SharedStore {
            return None;
        }
        let mode = match self.ha.lock {
            HaLock::File => hawser_ha::LockMode::File,
            HaLock::Lease => hawser_ha::LockMode::Lease {
                lease_ms: self.ha.lease_ms,
                renew_ms: self.ha.renew_interval_ms,
                skew_ms: self.ha.clock_skew_ms,
            },
        };
        let node = self.ha.node.clone().unwrap_or_else(|| {
            let host = std::fs::read_to_string("/etc/hostname")
                .map(|h| h.trim().to_owned())
                .unwrap_or_else(|_| "localhost".into());
            format!("{host}:{}", self.stomp.listen.port())
        });
        Some(hawser_ha::HaSettings {
            data_dir: self.data_dir.clone(),
            mode,
            poll_ms: self.ha.poll_interval_ms,
            node,
        })
    }

    /// The STOMP decoder's limits.
    pub fn stomp_limits(&self) -> hawser_stomp::Limits {
        hawser_stomp::Limits {
            max_frame_bytes: self.limits.max_frame_bytes,
            max_headers: self.limits.max_headers,
            max_header_bytes: self.limits.max_header_bytes,
            max_body_bytes: self.limits.max_frame_bytes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_toml_and_rejects_unknown_keys() {
        let c: Config = toml::from_str(
            "data_dir = \"/tmp/x\"\n[stomp]\nlisten = \"127.0.0.1:1234\"\n[limits]\nflow_control = \"fail\"\n",
        )
        .unwrap();
        assert_eq!(c.stomp.listen.port(), 1234);
        assert_eq!(c.limits.flow_control, FlowControl::Fail);
        assert_eq!(c.limits.max_connections, DEFAULT_MAX_CONNECTIONS);
        assert!(toml::from_str::<Config>("[limits]\nmax_conections = 3\n").is_err());
    }

    #[test]
    fn policies_become_engine_policy_entries() {
        let c: Config = toml::from_str(
            "[[policy]]\nqueue = \"orders.>\"\nmemory_limit_bytes = 1024\nproducer_flow_control = false\n\n[[policy]]\ntopic = \">\"\n",
        )
        .unwrap();
        let b = c.broker_config().unwrap();
        let orders = hawser_broker::Destination::queue("orders.eu");
        assert_eq!(b.policy_for(&orders).memory_limit_bytes, 1024);
        assert_eq!(b.policy_for(&orders).producer_flow_control, Some(false));
        let other = hawser_broker::Destination::queue("other");
        assert_eq!(b.policy_for(&other).memory_limit_bytes, u64::MAX);
        let both: Config = toml::from_str("[[policy]]\nqueue = \"a\"\ntopic = \"b\"\n").unwrap();
        assert!(both.broker_config().is_err());
    }

    #[test]
    fn activemqs_names_of_the_limits_are_understood() {
        let c: Config = toml::from_str(
            "[limits]\nmemoryUsage = 1048576\nstoreUsage = 2097152\ntempUsage = 3145728\n\n[[policy]]\nqueue = \">\"\nmemoryLimit = 4096\n",
        )
        .unwrap();
        assert_eq!(c.limits.max_pending_memory_bytes, 1 << 20);
        assert_eq!(c.limits.max_store_bytes, 2 << 20);
        assert_eq!(c.limits.max_temp_bytes, 3 << 20);
        let b = c.broker_config().unwrap();
        assert_eq!(b.max_temp_bytes, 3 << 20);
        let q = hawser_broker::Destination::queue("any");
        assert_eq!(b.policy_for(&q).memory_limit_bytes, 4096);
    }

    #[test]
    fn a_broker_without_users_listens_beyond_loopback_only_when_told_to() {
        let mut c = Config::default();
        assert!(c.check_exposure().is_ok(), "loopback by default");
        c.openwire.listen = "0.0.0.0:61616".parse().unwrap();
        let e = c.check_exposure().unwrap_err().to_string();
        assert!(
            e.contains("OpenWire on 0.0.0.0:61616") && e.contains("--users-file"),
            "{e}"
        );
        c.security.allow_anonymous = true;
        assert!(c.check_exposure().is_ok());
        c.security.allow_anonymous = false;
        c.security.users_file = Some(PathBuf::from("users"));
        assert!(c.check_exposure().is_ok());
        let c: Config = toml::from_str(
            "[status]\nlisten = \"10.0.0.1:8162\"\n[security]\nallow_anonymous = false\n",
        )
        .unwrap();
        assert!(c
            .check_exposure()
            .unwrap_err()
            .to_string()
            .contains("admin on 10.0.0.1:8162"));
        // [admin] is the same table.
        let c: Config = toml::from_str("[admin]\nlisten = \"10.0.0.1:8162\"\n").unwrap();
        assert!(c.check_exposure().is_err());
        let c: Config = toml::from_str("[admin]\nenabled = false\n").unwrap();
        assert!(c.check_exposure().is_ok());
    }

    #[test]
    fn min_free_disk_defaults_to_segments_and_zero_switches_it_off() {
        let c = Config::default();
        assert_eq!(c.min_free_disk_bytes(), 5 * DEFAULT_SEGMENT_BYTES);
        let c: Config = toml::from_str("[journal]\nsegment_bytes = 1048576\n").unwrap();
        assert_eq!(c.min_free_disk_bytes(), 5 << 20, "follows the segment size");
        let c: Config = toml::from_str("[limits]\nmin_free_disk_bytes = 0\n").unwrap();
        assert_eq!(c.min_free_disk_bytes(), 0);
        let c: Config = toml::from_str("[limits]\nmin_free_disk_bytes = 12345\n").unwrap();
        assert_eq!(c.min_free_disk_bytes(), 12345);
    }

    #[test]
    fn io_threads_are_unset_by_default_and_refuse_zero() {
        assert_eq!(Config::default().io_threads, None);
        let c: Config = toml::from_str("io_threads = 1\n").unwrap();
        assert_eq!(c.io_threads.map(|n| n.get()), Some(1));
        assert!(toml::from_str::<Config>("io_threads = 0\n").is_err());
    }
}
