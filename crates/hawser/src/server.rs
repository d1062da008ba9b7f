//! `hawser serve`: opens the store, starts the engine and the listeners, and
//! shuts down cleanly on SIGINT/SIGTERM (stop accepting, let sessions flush what
//! they owe, close the store).
//!
//! On a shared store (`[ha] mode = "shared-store"`) the broker first waits to
//! become master (`hawser-ha`): a standby opens no STOMP listener. The master
//! opens the journal in its epoch, fenced, and serves until it shuts down or
//! loses mastership; then it closes every connection at once and, unless shutting
//! down, goes back to waiting as a standby.
//!
//! A broker that owns its store alone cannot step down: when its store fails (a
//! journal write or fsync failed, a full or failing disk) it logs the failure at
//! error level, reports it on `GET /status`, stops accepting connections, closes
//! the ones it has (clients waiting for a receipt get an ERROR frame) and returns
//! [`StoreFailed`]; `hawser serve` then exits with [`EXIT_STORE_FAILED`]. A restart
//! recovers every confirmed message from the journal.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use hawser_broker::{Broker, MemoryStore, Recovered, Store};
use hawser_journal::{ConfirmCheck, JournalConfig};
use hawser_journal_store::JournalStore;
use hawser_pg_store::{PgElection, PgLeaseSettings, PgStore, PgStoreConfig};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::admin::serve as serve_status;
use crate::config::{ClusterConfig, Config, Persistence};
use crate::connection::admission::PerAddress;
use crate::connection::{CoreSettings, ReadTimeouts, Transport};
use crate::disk::{self, DiskSpace};
use crate::openwire::OpenWireSettings;
use crate::security::tls::Tls;
use crate::security::Authenticator;
use crate::status::{Health, StatusSource};
use crate::stomp::{serve_connection, SessionSettings};
use hawser_ha::{Election, FileElection, Mastership, Role};

/// How long sessions get to finish after a shutdown signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// How often expired messages nobody asked for are removed.
const EXPIRY_SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// The broker URIs advertised to clients; sending a new list updates every
/// client that asked for updates.
pub type ClusterView = watch::Sender<Arc<ClusterConfig>>;

/// How long a master that lost mastership gives its sessions before closing them:
/// nothing they wait for can be confirmed any more.
const STEP_DOWN_GRACE: Duration = Duration::from_millis(100);

/// Longest a start waits for the first batch of each container's stored
/// messages before it takes clients.
const WARM_UP: Duration = Duration::from_millis(500);

/// Exit code of `hawser serve` when its store failed (sysexits.h's `EX_IOERR`).
pub const EXIT_STORE_FAILED: u8 = 74;

/// A standalone broker stopped because its store failed; a restart recovers.
#[derive(Debug, thiserror::Error)]
#[error("the store failed, so the broker stopped (a restart recovers every confirmed message): {reason}")]
pub struct StoreFailed {
    /// The store's own account of the failure (files included).
    pub reason: String,
}

/// A running broker, for callers that need its address (tests, drills).
pub struct Running {
    /// Where the STOMP listener is bound.
    pub stomp_addr: SocketAddr,
    /// Where the OpenWire listener is bound.
    pub openwire_addr: SocketAddr,
    /// The advertised cluster; `send` a new list to tell clients.
    pub cluster: ClusterView,
    /// Who may connect; `reload` re-reads the users file.
    pub auth: Arc<Authenticator>,
    /// The TLS listeners' certificate, if any; `reload` re-reads its files.
    pub tls: Option<Arc<Tls>>,
}

/// Opens the configured store and returns it with the state it recovered
/// and its name (`BrokerConfig::store_name`). A master of a shared store
/// opens the journal in its epoch, behind its fence.
pub async fn open_store(
    config: &Config,
    mastership: Option<&dyn Mastership>,
) -> anyhow::Result<(Arc<dyn Store>, Recovered, String)> {
    match config.store_kind() {
        Persistence::Memory => Ok((
            Arc::new(MemoryStore::new()),
            Recovered::default(),
            // Kept nowhere, as the messages: a name for this run.
            format!("memory-{}", crate::token::random_hex()),
        )),
        Persistence::Journal => {
            let mut jc = JournalConfig::new(config.data_dir.join("journal"));
            jc.segment_bytes = config.journal.segment_bytes;
            jc.epoch = mastership.map(|m| m.epoch());
            jc.confirm_check = mastership.map(|m| {
                let fence = m.fence();
                ConfirmCheck::new(move || fence.check())
            });
            let (store, recovered) = JournalStore::open(jc)
                .with_context(|| format!("cannot open journal in {}", config.data_dir.display()))?;
            let name = crate::network::store_name(&config.data_dir)?;
            Ok((Arc::new(store), recovered, name))
        }
        Persistence::Postgres => {
            let url = config
                .store
                .url
                .clone()
                .context("[store] kind = \"postgres\" needs [store] url (--store-url)")?;
            let (store, recovered) = PgStore::open(PgStoreConfig {
                url,
                node: config.broker_name(),
                // A master of the database's lease opens in its epoch,
                // behind its fence; a broker alone takes the next one.
                epoch: mastership.map(|m| m.epoch() as i64),
                confirm_check: mastership.map(|m| {
                    let fence = m.fence();
                    Arc::new(move || fence.check()) as hawser_pg_store::ConfirmCheck
                }),
            })
            .await
            .context("cannot open the PostgreSQL store")?;
            let name = store.name().to_owned();
            Ok((Arc::new(store), recovered, name))
        }
    }
}

/// Runs the broker until `shutdown` is cancelled. `ready` is called once the
/// listeners accept connections (on a shared store: the first time this broker
/// is master).
pub async fn serve(
    config: Config,
    shutdown: CancellationToken,
    ready: impl FnOnce(&Running),
) -> anyhow::Result<()> {
    config.cluster.validate()?;
    config.ha.validate()?;
    config.check_exposure()?;
    for n in &config.network_connector {
        n.connector()?;
    }
    let auth = Arc::new(
        Authenticator::new(
            config.security.users_file.clone(),
            config.security.allow_anonymous,
        )
        .context("cannot read the users file")?,
    );
    let tls = match config.tls.files()? {
        Some(files) => Some(Arc::new(Tls::load(files)?)),
        None => None,
    };
    if auth.required() {
        tracing::info!(
            allow_anonymous = config.security.allow_anonymous,
            "connections must authenticate (users file {:?})",
            config.security.users_file
        );
    }
    let (cluster, cluster_rx) = watch::channel(Arc::new(config.cluster.clone()));
    let ha = config.ha_settings();
    let (role, role_rx) = watch::channel(Role::Standalone);
    let health = Arc::new(Health::default());
    if let Some((addr, given)) = config.status.address() {
        let source = StatusSource {
            auth: Arc::clone(&auth),
            role: role_rx,
            health: Arc::clone(&health),
            roles: crate::admin::Roles {
                admins: config.status.admins.clone(),
                readers: config.status.readers.clone(),
            },
            peers: config.status.peers.clone(),
            node: ha.as_ref().map(|h| h.node.clone()),
            stomp: config.stomp.listen.to_string(),
            data_dir: config.data_dir.clone(),
        };
        let status_tls = match (config.status.tls, &tls) {
            (false, _) => None,
            (true, Some(tls)) => Some(Arc::clone(tls)),
            (true, None) => anyhow::bail!(
                "[admin] tls needs a certificate: [tls] cert_file and key_file (--tls-cert, --tls-key)"
            ),
        };
        let scheme = if status_tls.is_some() {
            "https"
        } else {
            "http"
        };
        match serve_status(addr, source, status_tls, shutdown.clone()).await {
            Ok(bound) => tracing::info!(
                "admin endpoint on {scheme}://{bound}/ (status, metrics, health/live, health/ready)"
            ),
            // The default port taken (another broker on this host): go on
            // without; an address the operator gave must be served.
            Err(e) if !given => tracing::warn!(
                "no admin endpoint: cannot listen on {addr} ({e}); give another with --admin"
            ),
            Err(e) => {
                return Err(anyhow::Error::new(e)
                    .context(format!("cannot listen for the admin endpoint on {addr}")))
            }
        }
    }
    let Some(ha) = ha else {
        // A child token: a failed store stops the broker while /status still says why.
        return serve_store(
            &config,
            None,
            &role,
            &health,
            &cluster,
            cluster_rx,
            &auth,
            &tls,
            shutdown.child_token(),
            Some(ready),
        )
        .await;
    };
    let election: Box<dyn Election> = match config.store_kind() {
        Persistence::Journal => Box::new(FileElection::new(ha)),
        // Master/slave through the database's lease row.
        Persistence::Postgres => Box::new(PgElection::new(PgLeaseSettings {
            url: config
                .store
                .url
                .clone()
                .context("[store] kind = \"postgres\" needs [store] url (--store-url)")?,
            node: ha.node.clone(),
            lease: Duration::from_millis(config.ha.lease_ms),
            renew: Duration::from_millis(config.ha.renew_interval_ms),
            poll: Duration::from_millis(config.ha.poll_interval_ms),
        })),
        Persistence::Memory => {
            anyhow::bail!("a shared store needs persistence = \"journal\" or \"postgres\"")
        }
    };
    let mut ready = Some(ready);
    loop {
        let Some(mastership) = election.acquire(&role, &shutdown).await? else {
            return Ok(());
        };
        let stop = shutdown.child_token();
        let lost = mastership.watch();
        let stop_on_loss = stop.clone();
        let watcher = tokio::spawn(async move {
            lost.cancelled().await;
            stop_on_loss.cancel();
        });
        let served = serve_store(
            &config,
            Some(&*mastership),
            &role,
            &health,
            &cluster,
            cluster_rx.clone(),
            &auth,
            &tls,
            stop,
            ready.take(),
        )
        .await;
        watcher.abort();
        if shutdown.is_cancelled() || served.is_err() {
            mastership.step_down();
            return served;
        }
        role.send_replace(Role::Slave {
            epoch: mastership.epoch(),
        });
        mastership.step_down();
    }
}

/// Serves one store until `shutdown` is cancelled or, for a standalone broker, the
/// store fails ([`StoreFailed`]).
#[allow(clippy::too_many_arguments)]
async fn serve_store<F: FnOnce(&Running)>(
    config: &Config,
    mastership: Option<&dyn Mastership>,
    role: &watch::Sender<Role>,
    health: &Arc<Health>,
    cluster: &ClusterView,
    cluster_rx: watch::Receiver<Arc<ClusterConfig>>,
    auth: &Arc<Authenticator>,
    tls: &Option<Arc<Tls>>,
    shutdown: CancellationToken,
    ready: Option<F>,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let (store, recovered, store_name) = open_store(config, mastership).await?;
    let pending = recovered.pending_total();
    let mut broker_config = config.broker_config()?;
    broker_config.store_name = Arc::from(store_name.as_str());
    let broker = Arc::new(Broker::new(broker_config, Arc::clone(&store), recovered));
    // Each container's first batch of stored messages before the first client
    // (a browser then sees them), but never for long: the rest is the pager's.
    let _ = tokio::time::timeout(WARM_UP, async { while broker.page_in().await > 0 {} }).await;
    let listener = TcpListener::bind(config.stomp.listen)
        .await
        .with_context(|| format!("cannot listen for STOMP on {}", config.stomp.listen))?;
    let stomp_addr = listener.local_addr()?;
    let openwire_listener = TcpListener::bind(config.openwire.listen)
        .await
        .with_context(|| format!("cannot listen for OpenWire on {}", config.openwire.listen))?;
    let openwire_addr = openwire_listener.local_addr()?;
    let stomp_ssl = bind_tls(config.stomp.ssl_listen, tls, "STOMP over TLS").await?;
    let openwire_ssl = bind_tls(config.openwire.ssl_listen, tls, "OpenWire over TLS").await?;
    if let Some(m) = mastership {
        role.send_replace(Role::Master { epoch: m.epoch() });
    }
    let journal_dir = config.data_dir.join("journal");
    let disk = Arc::new(match config.store_kind() {
        Persistence::Journal => DiskSpace::new(config.min_free_disk_bytes()),
        // The database's disks are its own.
        Persistence::Memory | Persistence::Postgres => DiskSpace::unchecked(),
    });
    let journal_bytes: Arc<dyn Fn() -> u64 + Send + Sync> = {
        let store = Arc::clone(&store);
        Arc::new(move || store.disk_bytes())
    };
    disk::sample_now(&disk, &journal_dir, &*journal_bytes);
    let core = Arc::new(CoreSettings {
        broker: Arc::clone(&broker),
        max_outbound_frames: config.limits.max_outbound_frames,
        max_store_bytes: config.limits.max_store_bytes,
        flow_control: config.limits.flow_control,
        disk: Arc::clone(&disk),
        cluster: cluster_rx,
        auth: Arc::clone(auth),
        flow_events: Default::default(),
    });
    let settings = Arc::new(SessionSettings {
        core: Arc::clone(&core),
        limits: config.stomp_limits(),
        heartbeat_send_ms: config.stomp.heartbeat_send_ms,
        heartbeat_receive_ms: config.stomp.heartbeat_receive_ms,
        timeouts: ReadTimeouts {
            connect_ms: config.stomp.connect_timeout_ms,
            frame_ms: config.stomp.frame_timeout_ms,
            idle_ms: config.stomp.idle_timeout_ms,
        },
        max_browse_messages: config.limits.max_browse_messages,
        default_prefetch: config.broker.default_prefetch,
    });
    let openwire = Arc::new(OpenWireSettings {
        core: Arc::clone(&core),
        timeouts: ReadTimeouts {
            connect_ms: config.openwire.connect_timeout_ms,
            frame_ms: config.openwire.frame_timeout_ms,
            idle_ms: config.openwire.idle_timeout_ms,
        },
        login_timeout_ms: config.openwire.login_timeout_ms,
        max_frame_bytes: config.openwire.max_frame_bytes,
        // The same for every broker serving this store, master or its
        // successor: XA clients compare it to tell resource managers apart.
        broker_id: format!("ID:hawser-{}", config.data_dir.display()),
        broker_name: config
            .ha
            .node
            .clone()
            .unwrap_or_else(|| "hawser".to_owned()),
        max_browse_messages: config.limits.max_browse_messages,
        rebalance_turn: std::sync::atomic::AtomicUsize::new(0),
    });
    health.set_serving(Some(core));
    let tracker = TaskTracker::new();
    {
        // A store that failed (the fence refused, or the disk) can confirm nothing
        // more. A master steps down so that a standby, or itself in a new epoch,
        // takes the store over, rather than hold mastership it cannot use. A
        // standalone broker stops, loudly, rather than serve half alive.
        let mut durability = store.durability();
        let stop = shutdown.clone();
        let master = mastership.is_some();
        let health = Arc::clone(health);
        tracker.spawn(async move {
            loop {
                if let Some(reason) = durability.borrow_and_update().failed.clone() {
                    if master {
                        tracing::error!("store failed ({reason}): stepping down");
                    } else {
                        tracing::error!(
                            "store failed ({reason}): this broker stops: no new connections, \
                             every connection closed, exit code {EXIT_STORE_FAILED}; \
                             a restart recovers every confirmed message"
                        );
                        health.set_failed(reason.to_string());
                    }
                    stop.cancel();
                    return;
                }
                tokio::select! {
                    changed = durability.changed() => if changed.is_err() { return },
                    _ = stop.cancelled() => return,
                }
            }
        });
    }
    {
        // Reads paged-out messages back as consumers need them (broker::paging).
        let pager = broker.pager();
        let stop = shutdown.clone();
        tracker.spawn(async move {
            tokio::select! {
                () = pager => {}
                () = stop.cancelled() => {}
            }
        });
    }
    tracker.spawn(disk::sample_until(
        Arc::clone(&disk),
        journal_dir,
        journal_bytes,
        shutdown.clone(),
    ));
    let b = Arc::clone(&broker);
    let sweep_stop = shutdown.clone();
    tracker.spawn(async move {
        let mut tick = tokio::time::interval(EXPIRY_SWEEP_INTERVAL);
        loop {
            tokio::select! {
                _ = tick.tick() => b.expire(),
                _ = sweep_stop.cancelled() => return,
            }
        }
    });
    health.set_network(crate::network::start(
        &config.network_connector,
        &config.broker_name(),
        &store_name,
        &broker,
        &tracker,
        &shutdown,
    )?);
    tracing::info!(
        stomp = %stomp_addr,
        openwire = %openwire_addr,
        data_dir = %config.data_dir.display(),
        pending_messages = pending,
        startup_ms = started.elapsed().as_millis() as u64,
        role = if mastership.is_some() { "master" } else { "standalone" },
        epoch = mastership.map_or(0, |m| m.epoch()),
        "Hawser ready: accepting STOMP connections on {stomp_addr}, OpenWire on {openwire_addr}"
    );
    if let Some(ready) = ready {
        ready(&Running {
            stomp_addr,
            openwire_addr,
            cluster: cluster.clone(),
            auth: Arc::clone(auth),
            tls: tls.clone(),
        });
    }

    let connections = Arc::new(Semaphore::new(config.limits.max_connections));
    let accept = Accept {
        stomp: settings,
        openwire,
        tls: tls.clone(),
        connections,
        per_address: PerAddress::new(config.limits.max_connections_per_address),
        per_listener: std::array::from_fn(|_| {
            Arc::new(Semaphore::new(config.limits.max_connections_per_listener))
        }),
        tracker: tracker.clone(),
        shutdown: shutdown.clone(),
        limits: config.limits.clone(),
    };
    loop {
        tokio::select! {
            accepted = listener.accept() => accept.spawn(Listener::Stomp, accepted).await,
            accepted = openwire_listener.accept() => accept.spawn(Listener::OpenWire, accepted).await,
            accepted = accept_on(&stomp_ssl) => accept.spawn(Listener::StompTls, accepted).await,
            accepted = accept_on(&openwire_ssl) => accept.spawn(Listener::OpenWireTls, accepted).await,
            _ = shutdown.cancelled() => break,
        }
    }
    drop(listener);
    drop(openwire_listener);
    drop(stomp_ssl);
    drop(openwire_ssl);
    let store_failed = store.durability().borrow().failed.clone();
    let grace = if mastership.is_some_and(|m| m.watch().is_cancelled()) || store_failed.is_some() {
        tracing::warn!("nothing more can be confirmed here: closing every connection");
        STEP_DOWN_GRACE
    } else {
        tracing::info!("shutting down: no new connections; finishing in-flight work");
        SHUTDOWN_GRACE
    };
    tracker.close();
    if tokio::time::timeout(grace, tracker.wait()).await.is_err() {
        tracing::warn!("some connections did not finish within {grace:?}");
    }
    health.set_serving(None);
    health.set_network(Vec::new());
    store.close();
    tracing::info!("store flushed and closed");
    match store_failed {
        Some(reason) if mastership.is_none() => Err(StoreFailed {
            reason: reason.to_string(),
        }
        .into()),
        _ => Ok(()),
    }
}

/// Which listener a connection came in on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Listener {
    Stomp = 0,
    OpenWire,
    StompTls,
    OpenWireTls,
}

/// What serving an accepted connection needs.
struct Accept {
    stomp: Arc<SessionSettings>,
    openwire: Arc<OpenWireSettings>,
    tls: Option<Arc<Tls>>,
    connections: Arc<Semaphore>,
    per_address: Arc<PerAddress>,
    /// One per [`Listener`], indexed by its discriminant.
    per_listener: [Arc<Semaphore>; 4],
    tracker: TaskTracker,
    shutdown: CancellationToken,
    limits: crate::config::LimitsConfig,
}

impl Accept {
    /// Serves an accepted socket in a task of its own (TLS: after its
    /// handshake, within the protocol's connect timeout), within the
    /// connection limit.
    async fn spawn(&self, on: Listener, accepted: std::io::Result<(TcpStream, SocketAddr)>) {
        let (stream, remote) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and the like: back off rather than spin.
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                return;
            }
        };
        let slot = self.per_address.take(remote.ip());
        let listener = Arc::clone(&self.per_listener[on as usize])
            .try_acquire_owned()
            .ok();
        let permit = Arc::clone(&self.connections).try_acquire_owned().ok();
        let why = match (&slot, &listener, &permit) {
            (None, _, _) => Some(format!(
                "too many connections from {} (limit {} per address)",
                remote.ip(),
                self.per_address.limit()
            )),
            (_, None, _) => Some(format!(
                "too many connections on this listener (limit {})",
                self.limits.max_connections_per_listener
            )),
            (_, _, None) => Some(format!(
                "too many connections (limit {})",
                self.limits.max_connections
            )),
            _ => None,
        };
        if let Some(why) = why {
            // Past a limit: a plain STOMP client is told why; OpenWire has
            // no frame a client reads before its WireFormatInfo, and TLS
            // none before its handshake: the socket is just closed.
            tracing::debug!("connection from {remote} refused: {why}");
            if on == Listener::Stomp {
                self.tracker.spawn(refuse(stream, why));
            }
            return;
        }
        let held = (slot, listener, permit);
        let (stomp, openwire) = (Arc::clone(&self.stomp), Arc::clone(&self.openwire));
        let shutdown = self.shutdown.clone();
        let acceptor = self.tls.as_ref().map(|t| t.acceptor());
        self.tracker.spawn(async move {
            let transport = match (on, acceptor) {
                (Listener::Stomp | Listener::OpenWire, _) => Some(Transport::tcp(stream)),
                (_, Some(acceptor)) => {
                    let ms = match on {
                        Listener::StompTls => stomp.timeouts.connect_ms,
                        _ => openwire.timeouts.connect_ms,
                    };
                    handshake(acceptor, stream, Duration::from_millis(ms)).await
                }
                (_, None) => None,
            };
            match (on, transport) {
                (_, None) => {}
                (Listener::Stomp | Listener::StompTls, Some(t)) => {
                    serve_connection(t, stomp, shutdown).await;
                }
                (Listener::OpenWire | Listener::OpenWireTls, Some(t)) => {
                    crate::openwire::serve_connection(t, openwire, shutdown).await;
                }
            }
            drop(held);
        });
    }
}

/// A TLS handshake within `limit`; a failure (a client certificate from an
/// unknown CA, a plain-text client, a stall) is logged on the audit target.
async fn handshake(
    acceptor: tokio_rustls::TlsAcceptor,
    stream: TcpStream,
    limit: Duration,
) -> Option<Transport> {
    let remote = stream.peer_addr().ok();
    match tokio::time::timeout(limit, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => Some(Transport::tls(tls)),
        Ok(Err(e)) => {
            tracing::warn!(target: "audit", remote = ?remote, "TLS handshake refused: {e}");
            None
        }
        Err(_) => {
            tracing::warn!(target: "audit", remote = ?remote, "TLS handshake not finished within {limit:?}");
            None
        }
    }
}

/// Binds a TLS listener if `addr` is configured; one without a certificate
/// is refused.
async fn bind_tls(
    addr: Option<SocketAddr>,
    tls: &Option<Arc<Tls>>,
    what: &str,
) -> anyhow::Result<Option<TcpListener>> {
    let Some(addr) = addr else {
        return Ok(None);
    };
    if tls.is_none() {
        anyhow::bail!("{what} on {addr} needs a certificate: [tls] cert_file and key_file (--tls-cert, --tls-key)");
    }
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen for {what} on {addr}"))?;
    tracing::info!("{what} on {}", listener.local_addr()?);
    Ok(Some(listener))
}

/// `listener.accept()`, or never when there is no listener.
async fn accept_on(listener: &Option<TcpListener>) -> std::io::Result<(TcpStream, SocketAddr)> {
    match listener {
        Some(l) => l.accept().await,
        None => std::future::pending().await,
    }
}

/// Tells a client over a connection limit why it is turned away.
async fn refuse(mut stream: TcpStream, why: String) {
    use tokio::io::AsyncWriteExt;
    let mut buf = bytes::BytesMut::new();
    let frame = hawser_stomp::Frame::new(hawser_stomp::Command::Error).with_header("message", why);
    hawser_stomp::encode(&frame, hawser_stomp::Version::V1_0, &mut buf);
    let _ = tokio::time::timeout(Duration::from_secs(1), stream.write_all(&buf)).await;
    let _ = stream.shutdown().await;
}
