//! The `hawser` command: `serve` (the default) runs a broker; `bench` drives load.
//!
//! Exit codes of `hawser serve`: 0 after a shutdown by SIGINT/SIGTERM; 1 when it
//! cannot start (bad configuration, a journal it cannot open, an address in use, a
//! shared store on a network file system in file-lock mode...); 74
//! ([`EXIT_STORE_FAILED`], sysexits.h's `EX_IOERR`) when a standalone broker's store
//! failed while serving (a journal write or fsync failed: full or failing disk).
//! The client commands' codes are in `cli.rs` and `stat.rs`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use hawser::config::{Config, FlowControl, HaLock, HaMode, Persistence};
use hawser::server::{StoreFailed, EXIT_STORE_FAILED};

/// The broker allocates per frame (headers, message records) from many threads;
/// mimalloc's per-thread free lists cost a fraction of glibc malloc's locking.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "hawser",
    version,
    about = "Hawser: a message broker that ActiveMQ clients can talk to"
)]
#[command(args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

// Parsed once at start-up: the size of the largest variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Run a broker (the default when no subcommand is given).
    Serve(ServeArgs),
    /// Drive a STOMP broker with producers and consumers and report throughput and latency.
    Bench(hawser::bench::BenchArgs),
    /// Send messages (body from --body, --file or standard input).
    Send(hawser::cli::SendArgs),
    /// Receive messages and print their bodies.
    Receive(hawser::cli::ReceiveArgs),
    /// Print the messages waiting in a queue without consuming them.
    Browse(hawser::cli::BrowseArgs),
    /// Ask a broker what it is (master, slave, epoch), or a shared store who its master is.
    Stat(hawser::stat::StatArgs),
    /// Every destination's depth and counts, as ActiveMQ's `activemq dstat`
    /// (asked over the admin endpoint).
    Dstat(hawser::stat::DstatArgs),
    /// Drop every message waiting in queues, as ActiveMQ's `activemq purge`
    /// (asked over the admin endpoint).
    Purge(hawser::control::PurgeArgs),
    /// Move (or copy) a waiting message to another queue.
    Move(hawser::control::MoveArgs),
    /// Send a dead-letter queue's messages back to the queues they died in.
    Retry(hawser::control::RetryArgs),
    /// Create or delete a queue.
    Queue(hawser::control::QueueArgs),
    /// List the client connections, or close one.
    Connections(hawser::control::ConnectionsArgs),
    /// Add or change a user in a users file (the password is read from standard input).
    Passwd(hawser::security::passwd::PasswdArgs),
}

/// Flags override the config file, which overrides the defaults.
#[derive(Args, Clone, Default)]
struct ServeArgs {
    /// TOML configuration file (see docs/configuration.md).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Directory for the journal [default: ./data].
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// STOMP listen address [default: 127.0.0.1:61613].
    #[arg(long, value_name = "HOST:PORT")]
    stomp: Option<SocketAddr>,
    /// OpenWire listen address, for ActiveMQ's Java clients [default: 127.0.0.1:61616].
    #[arg(long, value_name = "HOST:PORT")]
    openwire: Option<SocketAddr>,
    /// Where persistent messages are kept [default: journal].
    #[arg(long, value_enum, visible_alias = "store")]
    persistence: Option<Persistence>,
    /// With `--store postgres`: the database's connection string (libpq's
    /// form; several hosts to follow its failover).
    #[arg(long, value_name = "URL")]
    store_url: Option<String>,
    /// Threads serving connections [default: one per two CPUs, at least one].
    #[arg(long, value_name = "N")]
    io_threads: Option<std::num::NonZeroUsize>,
    /// Connections served at once [default: 1000].
    #[arg(long, value_name = "N")]
    max_connections: Option<usize>,
    /// Connections from one remote address served at once [default: 256].
    #[arg(long, value_name = "N")]
    max_connections_per_address: Option<usize>,
    /// Connections on one listener served at once [default: 750].
    #[arg(long, value_name = "N")]
    max_connections_per_listener: Option<usize>,
    /// Largest STOMP frame in bytes [default: 10 MiB].
    #[arg(long, value_name = "BYTES")]
    max_frame_bytes: Option<usize>,
    /// Most headers in one frame [default: 1000].
    #[arg(long, value_name = "N")]
    max_headers: Option<usize>,
    /// Longest header line in bytes [default: 10 KiB].
    #[arg(long, value_name = "BYTES")]
    max_header_bytes: Option<usize>,
    /// Memory held by pending messages before producer flow control [default: 512 MiB].
    #[arg(long, value_name = "BYTES")]
    max_pending_memory_bytes: Option<u64>,
    /// Journal size before producer flow control [default: 16 GiB].
    #[arg(long, value_name = "BYTES")]
    max_store_bytes: Option<u64>,
    /// Non-persistent queue messages kept in the journal beyond memory before
    /// their producers are held (ActiveMQ's tempUsage) [default: 8 GiB].
    #[arg(long, value_name = "BYTES")]
    max_temp_bytes: Option<u64>,
    /// Free space on the journal's file system below which producers are held;
    /// 0: off [default: 5 segments, 320 MiB with 64 MiB segments].
    #[arg(long, value_name = "BYTES")]
    min_free_disk_bytes: Option<u64>,
    /// What producers get when memory, store or disk is full [default: block].
    #[arg(long, value_enum)]
    flow_control: Option<FlowControl>,
    /// Redeliveries before a message goes to the dead-letter queue [default: 6].
    #[arg(long, value_name = "N")]
    max_redeliveries: Option<u32>,
    /// Dispatch persistent messages while their journal write is in flight, as
    /// ActiveMQ does (receipts wait for the fsync or a consumer's ack); false shows consumers
    /// only messages already on disk [default: true].
    #[arg(long, value_name = "BOOL")]
    concurrent_store_and_dispatch: Option<bool>,
    /// With concurrent dispatch, confirm a send as soon as a consumer has
    /// acknowledged its message, if that is before the fsync; false: every
    /// receipt waits for the disk [default: true].
    #[arg(long, value_name = "BOOL")]
    confirm_consumed: Option<bool>,
    /// Heart-beat interval the broker offers to send, ms [default: 10000].
    #[arg(long, value_name = "MS")]
    heartbeat_send_ms: Option<u64>,
    /// Heart-beat interval the broker asks clients for, ms [default: 10000].
    #[arg(long, value_name = "MS")]
    heartbeat_receive_ms: Option<u64>,
    /// Time a new connection has to send CONNECT, ms [default: 30000].
    #[arg(long, value_name = "MS")]
    connect_timeout_ms: Option<u64>,
    /// Time a started frame has to complete, ms [default: 30000].
    #[arg(long, value_name = "MS")]
    frame_timeout_ms: Option<u64>,
    /// Close a connection without heart-beats after this long with nothing
    /// received, ms; 0: never [default: 300000].
    #[arg(long, value_name = "MS")]
    idle_timeout_ms: Option<u64>,
    /// Frames queued for one connection before the broker stops reading from it [default: 10000].
    #[arg(long, value_name = "N")]
    max_outbound_frames: Option<usize>,
    /// Journal segment size in bytes [default: 64 MiB].
    #[arg(long, value_name = "BYTES")]
    segment_bytes: Option<u64>,
    /// Broker URI to tell clients about for failover (repeatable or comma-separated);
    /// replaces the config file's [cluster] advertise list.
    #[arg(long, value_name = "URI", value_delimiter = ',')]
    advertise: Vec<String>,
    /// OpenWire URI to tell JMS clients about for failover (repeatable or
    /// comma-separated); replaces the config file's [cluster] advertise_openwire list.
    #[arg(long, value_name = "URI", value_delimiter = ',')]
    advertise_openwire: Vec<String>,
    /// Ask JMS clients to rebalance over the advertised OpenWire brokers
    /// (ActiveMQ's rebalanceClusterClients); sets [cluster] rebalance_clients.
    #[arg(long)]
    rebalance_clients: bool,
    /// Master/slave: `shared-store` for brokers sharing one data directory [default: none].
    #[arg(long, value_enum)]
    ha: Option<HaMode>,
    /// How the master holds a shared store: `file` lock or `lease` [default: file].
    #[arg(long, value_enum)]
    ha_lock: Option<HaLock>,
    /// Pause between a standby's attempts to become master, ms [default: 50].
    #[arg(long, value_name = "MS")]
    ha_poll_ms: Option<u64>,
    /// Lease duration, ms (lease mode) [default: 3000].
    #[arg(long, value_name = "MS")]
    lease_ms: Option<u64>,
    /// Lease renewal interval, ms (lease mode) [default: 500].
    #[arg(long, value_name = "MS")]
    lease_renew_ms: Option<u64>,
    /// Allowed difference between the brokers' clocks, ms (lease mode) [default: 500].
    #[arg(long, value_name = "MS")]
    clock_skew_ms: Option<u64>,
    /// This broker's name in the shared store [default: host name and STOMP port].
    #[arg(long, value_name = "NAME")]
    node: Option<String>,
    /// Address of the HTTP admin endpoint: /status, /metrics, /health/live,
    /// /health/ready (--status is the same) [default: 127.0.0.1:8161].
    #[arg(long, visible_alias = "status", value_name = "HOST:PORT")]
    admin: Option<SocketAddr>,
    /// No admin endpoint.
    #[arg(long, conflicts_with = "admin")]
    no_admin: bool,
    /// Serve the admin endpoint over HTTPS, with the --tls-cert certificate.
    #[arg(long, visible_alias = "status-tls")]
    admin_tls: bool,
    /// Address for STOMP over TLS (stomp+ssl://) [default: off; needs --tls-cert].
    #[arg(long, value_name = "HOST:PORT")]
    stomp_ssl: Option<SocketAddr>,
    /// Address for OpenWire over TLS (ssl://) [default: off; needs --tls-cert].
    #[arg(long, value_name = "HOST:PORT")]
    openwire_ssl: Option<SocketAddr>,
    /// The TLS listeners' certificate chain (PEM).
    #[arg(long, value_name = "FILE")]
    tls_cert: Option<PathBuf>,
    /// Its private key (PEM).
    #[arg(long, value_name = "FILE")]
    tls_key: Option<PathBuf>,
    /// CA certificates (PEM) of client certificates: clients are asked for one.
    #[arg(long, value_name = "FILE")]
    tls_client_ca: Option<PathBuf>,
    /// Refuse TLS clients without a certificate signed by --tls-client-ca.
    #[arg(long)]
    tls_require_client_cert: bool,
    /// Users file (argon2 hashes; `hawser passwd` writes it): every connection
    /// must then authenticate [default: none, the broker runs open].
    #[arg(long, value_name = "FILE")]
    users_file: Option<PathBuf>,
    /// Let connections without credentials in as anonymous, and let a broker
    /// without users listen on addresses other than loopback.
    #[arg(long)]
    allow_anonymous: bool,
    /// A network connector to peer brokers, as ActiveMQ writes it:
    /// `static:(tcp://b:61613,tcp://c:61613)?networkTTL=2` or
    /// `masterslave:(tcp://m:61613,tcp://s:61613)` (repeatable; the URIs name
    /// the peers' STOMP listeners).
    #[arg(long = "network-connector", value_name = "URI")]
    network_connectors: Vec<String>,
}

impl ServeArgs {
    fn config(&self) -> anyhow::Result<Config> {
        let mut c = match &self.config {
            Some(path) => Config::load(path)?,
            None => Config::default(),
        };
        macro_rules! set {
            ($flag:ident => $($field:tt)+) => {
                if let Some(v) = self.$flag.clone() {
                    c.$($field)+ = v;
                }
            };
        }
        set!(data_dir => data_dir);
        set!(stomp => stomp.listen);
        set!(openwire => openwire.listen);
        if let Some(p) = self.persistence {
            c.persistence = p;
            c.store.kind = None;
        }
        if self.store_url.is_some() {
            c.store.url = self.store_url.clone();
        }
        if self.io_threads.is_some() {
            c.io_threads = self.io_threads;
        }
        set!(max_connections => limits.max_connections);
        set!(max_connections_per_address => limits.max_connections_per_address);
        set!(max_connections_per_listener => limits.max_connections_per_listener);
        set!(max_frame_bytes => limits.max_frame_bytes);
        set!(max_headers => limits.max_headers);
        set!(max_header_bytes => limits.max_header_bytes);
        set!(max_pending_memory_bytes => limits.max_pending_memory_bytes);
        set!(max_store_bytes => limits.max_store_bytes);
        set!(max_temp_bytes => limits.max_temp_bytes);
        if self.min_free_disk_bytes.is_some() {
            c.limits.min_free_disk_bytes = self.min_free_disk_bytes;
        }
        set!(flow_control => limits.flow_control);
        set!(max_redeliveries => broker.max_redeliveries);
        set!(concurrent_store_and_dispatch => broker.concurrent_store_and_dispatch);
        set!(confirm_consumed => broker.confirm_consumed);
        set!(heartbeat_send_ms => stomp.heartbeat_send_ms);
        set!(heartbeat_receive_ms => stomp.heartbeat_receive_ms);
        set!(connect_timeout_ms => stomp.connect_timeout_ms);
        set!(frame_timeout_ms => stomp.frame_timeout_ms);
        set!(idle_timeout_ms => stomp.idle_timeout_ms);
        set!(max_outbound_frames => limits.max_outbound_frames);
        set!(segment_bytes => journal.segment_bytes);
        set!(ha => ha.mode);
        set!(ha_lock => ha.lock);
        set!(ha_poll_ms => ha.poll_interval_ms);
        set!(lease_ms => ha.lease_ms);
        set!(lease_renew_ms => ha.renew_interval_ms);
        set!(clock_skew_ms => ha.clock_skew_ms);
        if self.node.is_some() {
            c.ha.node = self.node.clone();
        }
        if self.admin.is_some() {
            c.status.listen = self.admin;
        }
        if self.no_admin {
            c.status.enabled = false;
        }
        if self.admin_tls {
            c.status.tls = true;
        }
        if self.users_file.is_some() {
            c.security.users_file = self.users_file.clone();
        }
        if self.stomp_ssl.is_some() {
            c.stomp.ssl_listen = self.stomp_ssl;
        }
        if self.openwire_ssl.is_some() {
            c.openwire.ssl_listen = self.openwire_ssl;
        }
        if self.tls_cert.is_some() {
            c.tls.cert_file = self.tls_cert.clone();
        }
        if self.tls_key.is_some() {
            c.tls.key_file = self.tls_key.clone();
        }
        if self.tls_client_ca.is_some() {
            c.tls.client_ca_file = self.tls_client_ca.clone();
        }
        if self.tls_require_client_cert {
            c.tls.require_client_cert = true;
        }
        if self.allow_anonymous {
            c.security.allow_anonymous = true;
        }
        for uri in &self.network_connectors {
            c.network_connector
                .push(hawser::network::NetworkConnectorConfig {
                    uri: uri.clone(),
                    ..Default::default()
                });
        }
        if !self.advertise_openwire.is_empty() {
            c.cluster.advertise_openwire = self.advertise_openwire.clone();
        }
        if !self.advertise.is_empty() {
            c.cluster.advertise = self.advertise.clone();
        }
        if self.rebalance_clients {
            c.cluster.rebalance_clients = true;
        }
        Ok(c)
    }
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Send(args)) => return run_client(hawser::cli::send(args)),
        Some(Command::Receive(args)) => return run_client(hawser::cli::receive(args)),
        Some(Command::Browse(args)) => return run_client(hawser::cli::browse(args)),
        Some(Command::Stat(args)) => return run_client(hawser::stat::stat(args)),
        Some(Command::Dstat(args)) => return run_client(hawser::stat::dstat(args)),
        Some(Command::Purge(args)) => return run_client(hawser::control::purge(args)),
        Some(Command::Move(args)) => return run_client(hawser::control::move_message(args)),
        Some(Command::Retry(args)) => return run_client(hawser::control::retry(args)),
        Some(Command::Queue(args)) => return run_client(hawser::control::queue(args)),
        Some(Command::Connections(args)) => return run_client(hawser::control::connections(args)),
        Some(Command::Bench(args)) => hawser::bench::run(args),
        Some(Command::Passwd(args)) => hawser::security::passwd::run(&args),
        Some(Command::Serve(args)) => run_serve(&args),
        None => run_serve(&cli.serve),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hawser: {e:#}");
            if e.downcast_ref::<StoreFailed>().is_some() {
                std::process::ExitCode::from(EXIT_STORE_FAILED)
            } else {
                std::process::ExitCode::FAILURE
            }
        }
    }
}

/// Runs a client command and maps its failure to its exit code.
fn run_client(
    command: impl std::future::Future<Output = Result<(), hawser::cli::Failure>>,
) -> std::process::ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("hawser: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(command) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("hawser: {}", f.message);
            std::process::ExitCode::from(f.code)
        }
    }
}

fn run_serve(args: &ServeArgs) -> anyhow::Result<()> {
    let config = args.config()?;
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    let io_threads = config
        .io_threads
        .unwrap_or_else(hawser::config::default_io_threads);
    runtime.worker_threads(io_threads.get());
    let runtime = runtime.enable_all().thread_name("hawser").build()?;
    runtime.block_on(async {
        let shutdown = CancellationToken::new();
        let signal = shutdown.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            signal.cancel();
        });
        let args = args.clone();
        hawser::server::serve(config, shutdown, move |running| {
            tokio::spawn(reload_on_sighup(
                args,
                running.cluster.clone(),
                std::sync::Arc::clone(&running.auth),
                running.tls.clone(),
            ));
        })
        .await
    })
}

/// SIGHUP re-reads the configuration and tells clients about a changed
/// cluster, and re-reads the users file and the TLS certificate (a file that
/// does not load leaves the one before in force).
async fn reload_on_sighup(
    args: ServeArgs,
    cluster: hawser::server::ClusterView,
    auth: std::sync::Arc<hawser::security::Authenticator>,
    tls: Option<std::sync::Arc<hawser::security::tls::Tls>>,
) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        return;
    };
    while hup.recv().await.is_some() {
        if let Some(tls) = &tls {
            match tls.reload() {
                Ok(()) => tracing::info!(target: "audit", "SIGHUP: TLS certificate re-read"),
                Err(e) => {
                    tracing::warn!(target: "audit", "SIGHUP: TLS certificate not reloaded: {e}")
                }
            }
        }
        if auth.required() {
            match auth.reload() {
                Ok(n) => tracing::info!(target: "audit", users = n, "SIGHUP: users file re-read"),
                Err(e) => tracing::warn!(target: "audit", "SIGHUP: users file not reloaded: {e}"),
            }
        }
        match args.config().and_then(|c| c.cluster.validate().map(|()| c)) {
            Ok(c) => {
                tracing::info!(target: "audit", cluster = ?c.cluster, "SIGHUP: configuration re-read");
                cluster.send_if_modified(|current| {
                    let changed = **current != c.cluster;
                    if changed {
                        *current = std::sync::Arc::new(c.cluster.clone());
                    }
                    changed
                });
            }
            Err(e) => tracing::warn!("SIGHUP: configuration not reloaded: {e:#}"),
        }
    }
}

/// Resolves on SIGINT or SIGTERM.
async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("install SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
