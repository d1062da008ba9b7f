//! The reading half of an OpenWire connection: commands in, engine calls out.
//!
//! The broker writes its WireFormatInfo as soon as the socket is accepted and
//! reads the client's; both then speak the negotiated format, and the broker
//! introduces itself with a BrokerInfo. Every command that asks for a reply
//! gets one, in order: a Response once what the command did is durable (a
//! persistent send, an acknowledgement), or an ExceptionResponse naming what
//! was wrong, after which the connection goes on. A frame that cannot be
//! decoded closes the connection; nothing else in the broker is affected.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use hawser_broker::{
    AckMode, Broker, BrokerError, ConnectionId, Destination, DestinationUsage, LastDelivered,
    RolledBackAcks, SubscribeSpec,
};
use hawser_openwire::{
    self as ow, negotiate, AckType, BrokerId, BrokerInfo, Command, ConnectionError,
    DataArrayResponse, DataStructure, Decoder, ExceptionResponse, IntegerResponse, KeepAliveInfo,
    Response, TransactionId, TransactionType, WireFormatInfo, WireFormatOptions, WireSettings,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::encoder::{exception, OpenWireEncoder, Out};
use super::mapping::{self, subscription_id};
use super::transaction::{transaction_name, xa_id, Reply, XA_OK, XA_RDONLY};
use super::SessionError;
use crate::config::ClusterConfig;
use crate::connection::reader::{ReadTimeouts, Reader, Wake, READ_CHUNK_BYTES};
use crate::connection::{
    open, Confirm, ConnectInfo, ConnectionOutbox, CoreSettings, Outbound, Protocol, ReadHalf,
    Registration, Transport, MAX_LOGIN_FRAME_BYTES,
};

mod consumer;
use consumer::last_delivered;
mod producer;

/// The inactivity a connection may show before it is dropped, offered to
/// clients (ActiveMQ's default): each side sends a keep-alive after a third
/// of it without writing.
const MAX_INACTIVITY_MS: i64 = 30_000;

/// [`MAX_LOGIN_FRAME_BYTES`] as OpenWire's frame sizes count.
const LOGIN_FRAME_BYTES: u64 = MAX_LOGIN_FRAME_BYTES as u64;

/// What every OpenWire session needs to know, shared.
pub struct OpenWireSettings {
    /// What connections of every protocol share (the engine among it).
    pub core: Arc<CoreSettings>,
    /// Deadlines for the client's WireFormatInfo, for a started frame, and
    /// for an idle connection without keep-alives.
    pub timeouts: ReadTimeouts,
    /// With users configured, the deadline for its ConnectionInfo (ms from
    /// the accept; 0: none).
    pub login_timeout_ms: u64,
    /// The largest frame accepted, checked before a frame is read.
    pub max_frame_bytes: u64,
    /// This broker's id in BrokerInfo: stable, so that XA clients can tell
    /// whether two connections reach the same resource manager.
    pub broker_id: String,
    /// Its name in BrokerInfo.
    pub broker_name: String,
    /// Most messages one queue browser is sent.
    pub max_browse_messages: usize,
    /// Turns of the advertised list in rebalancing ConnectionControls (see
    /// `send_cluster`).
    pub rebalance_turn: std::sync::atomic::AtomicUsize,
}

/// What to do after a command.
#[derive(PartialEq, Eq)]
enum Flow {
    Continue,
    /// The client said it is going (ShutdownInfo, or its connection removed).
    Stop,
}

struct Session {
    settings: Arc<OpenWireSettings>,
    /// Queue to the writer.
    out: mpsc::UnboundedSender<Out>,
    /// What the writer still has to send.
    outbound: Arc<Outbound>,
    decoder: Decoder,
    /// The broker's WireFormatInfo.
    ours: WireFormatInfo,
    /// Set once the client's WireFormatInfo has been read.
    negotiated: bool,
    /// The largest frame negotiated, accepted once ConnectionInfo succeeded
    /// (before it, [`MAX_LOGIN_FRAME_BYTES`]).
    max_frame_bytes: u64,
    /// The engine's id for this connection, once ConnectionInfo succeeded.
    conn: Option<ConnectionId>,
    /// Where the client connects from (for [`ConnectInfo`]).
    remote: Option<std::net::SocketAddr>,
    /// The verified client certificate's common name, over mutual TLS.
    certificate_name: Option<String>,
    registration: Option<Registration>,
    reader: Reader<ReadHalf>,
    /// Consumers by session, to close with it.
    consumers: HashMap<i64, HashSet<Arc<str>>>,
    /// Queue browsers open (their acks are ignored, as ActiveMQ does).
    browsers: HashSet<Arc<str>>,
    /// Consumers with prefetch 0, which pull each message.
    pullers: HashSet<Arc<str>>,
    /// The timer of each puller's pull that waits (one at a time per consumer).
    pull_timers: HashMap<Arc<str>, tokio::task::AbortHandle>,
    /// A reply other than a plain Response for the command being performed
    /// (XA's prepare and recover), set by it for [`Session::handle`].
    reply: Option<Reply>,
    /// Producers with a window, which get a ProducerAck per asynchronous send
    /// (at most `max_producers_per_connection`).
    windowed_producers: HashSet<ow::ProducerId>,
    /// Every producer announced (ProducerInfo), the engine's too; bounded by
    /// the engine's `max_producers_per_connection`.
    producers: HashSet<ow::ProducerId>,
    /// The memory counters of the last send's destination.
    last_usage: Option<(Destination, Arc<DestinationUsage>)>,
}

/// Serves one accepted connection to the end.
pub async fn serve_connection(
    transport: Transport,
    settings: Arc<OpenWireSettings>,
    shutdown: CancellationToken,
) {
    // Until ConnectionInfo: see MAX_LOGIN_FRAME_BYTES.
    let initial = WireSettings::initial(settings.max_frame_bytes.min(LOGIN_FRAME_BYTES));
    let remote = transport.remote;
    let certificate_name = transport.certificate_name.clone();
    let opened = open(
        transport,
        OpenWireEncoder::new(initial),
        &settings.core,
        settings.timeouts,
        shutdown,
    );
    let ours = WireFormatOptions {
        max_inactivity_duration_ms: MAX_INACTIVITY_MS,
        max_frame_size: i64::try_from(settings.max_frame_bytes).unwrap_or(i64::MAX),
        ..WireFormatOptions::default()
    }
    .to_info();
    let mut session = Session {
        settings,
        out: opened.out,
        outbound: opened.outbound,
        decoder: Decoder::new(initial),
        ours: ours.clone(),
        negotiated: false,
        max_frame_bytes: 0,
        conn: None,
        remote,
        certificate_name,
        registration: None,
        reader: opened.reader,
        consumers: HashMap::new(),
        browsers: HashSet::new(),
        pullers: HashSet::new(),
        pull_timers: HashMap::new(),
        last_usage: None,
        windowed_producers: HashSet::new(),
        producers: HashSet::new(),
        reply: None,
    };
    // The client sends nothing else until it has the broker's format.
    session.send_out(Out::Frame {
        frame: Command::WireFormatInfo(ours),
        seq: 0,
    });
    let result = session.run().await;
    let last = match result {
        Ok(()) | Err(SessionError::Read(crate::connection::ReadError::Closed)) => None,
        Err(e) => {
            tracing::debug!("closing OpenWire connection: {e}");
            Some(connection_error(&e))
        }
    };
    session.send_out(Out::Close { frame: last });
    for timer in session.pull_timers.values() {
        timer.abort();
    }
    session.conn = None;
    drop(session.registration.take());
    drop(session);
    opened.closing.finish().await;
}

/// The ConnectionError telling the client of `e`.
fn connection_error(e: &SessionError) -> Command {
    Command::ConnectionError(ConnectionError {
        exception: Some(exception(e.java_class(), e.client_message())),
        ..ConnectionError::default()
    })
}

impl Session {
    fn broker(&self) -> &Arc<Broker> {
        &self.settings.core.broker
    }

    async fn run(&mut self) -> Result<(), SessionError> {
        loop {
            while let Some(command) = self.decoder.decode(&mut self.reader.buf)? {
                if self.handle(command).await? == Flow::Stop {
                    return Ok(());
                }
            }
            match self.reader.wait().await? {
                Wake::Read => {}
                Wake::Cluster(cluster) => self.send_cluster(&cluster, cluster.rebalance_clients),
                Wake::Stop => return Ok(()),
            }
        }
    }

    /// Queues an item for the writer, counted against `max_outbound_frames`.
    fn send_out(&self, item: Out) {
        self.outbound.push(&self.out, item);
    }

    /// Performs a command and replies if it asked for a reply. A failed command
    /// is answered with an ExceptionResponse and the connection goes on; if it
    /// asked for no reply, the failure closes the connection, since the client
    /// would never hear of it otherwise.
    async fn handle(&mut self, command: Command) -> Result<Flow, SessionError> {
        let id = command.command_id().unwrap_or(0);
        let wants_reply = command.response_required();
        let type_id = command.type_id();
        match self.apply(command).await {
            Ok((flow, until)) => {
                let reply = self.reply.take();
                if wants_reply {
                    let frame = match reply {
                        None => Command::Response(Response {
                            correlation_id: id,
                            ..Response::default()
                        }),
                        Some(Reply::Integer(result)) => Command::IntegerResponse(IntegerResponse {
                            correlation_id: id,
                            result,
                            ..IntegerResponse::default()
                        }),
                        Some(Reply::Data(data)) => Command::DataArrayResponse(DataArrayResponse {
                            correlation_id: id,
                            data: Some(data),
                            ..DataArrayResponse::default()
                        }),
                    };
                    if flow == Flow::Stop {
                        self.send_out(Out::Close { frame: Some(frame) });
                    } else {
                        self.send_out(Out::Confirm { frame, until });
                    }
                }
                Ok(flow)
            }
            Err(e @ (SessionError::Decode(_) | SessionError::Read(_))) => Err(e),
            Err(e) if wants_reply => {
                self.reply = None;
                tracing::debug!("OpenWire command refused: {e}");
                let frame = Command::ExceptionResponse(ExceptionResponse {
                    correlation_id: id,
                    exception: Some(exception(e.java_class(), e.client_message())),
                    ..ExceptionResponse::default()
                });
                if matches!(e, SessionError::Auth(_)) {
                    // Nothing more is served to a client that did not
                    // authenticate: told why, it is closed.
                    self.send_out(Out::Close { frame: Some(frame) });
                    return Ok(Flow::Stop);
                }
                self.send_out(Out::Frame { frame, seq: 0 });
                Ok(Flow::Continue)
            }
            Err(e) if e.is_refusal() => {
                // Nobody waits for this command's reply: the client hears of the
                // refusal as ActiveMQ's do, through a ConnectionError its
                // connection hands to the exception listener, and goes on.
                tracing::debug!("OpenWire command of type {type_id} refused without a reply: {e}");
                self.send_out(Out::Frame {
                    frame: connection_error(&e),
                    seq: 0,
                });
                Ok(Flow::Continue)
            }
            Err(e) => {
                tracing::debug!("OpenWire command of type {type_id} failed without a reply: {e}");
                Err(e)
            }
        }
    }

    /// Performs one command; returns what its reply must wait for.
    async fn apply(&mut self, command: Command) -> Result<(Flow, Confirm), SessionError> {
        if !self.negotiated {
            let Command::WireFormatInfo(theirs) = command else {
                return Err(SessionError::NotNegotiated);
            };
            return self.negotiate(&theirs);
        }
        let done = Ok((Flow::Continue, Confirm::now()));
        match command {
            Command::WireFormatInfo(_) => Err(SessionError::Unsupported("a second WireFormatInfo")),
            Command::ConnectionInfo(info) => {
                self.connect(&info).await?;
                done
            }
            Command::KeepAliveInfo(k) => {
                if k.response_required {
                    // Answered in kind, not with a Response (as ActiveMQ does).
                    self.send_out(Out::Frame {
                        frame: Command::KeepAliveInfo(KeepAliveInfo::default()),
                        seq: 0,
                    });
                }
                Ok((Flow::Continue, Confirm::now()))
            }
            Command::ShutdownInfo(_) => Ok((Flow::Stop, Confirm::now())),
            Command::ProducerInfo(p) => {
                self.add_producer(&p)?;
                done
            }
            Command::SessionInfo(_) | Command::FlushCommand(_) => done,
            Command::Message(m) => self.send(&m).await,
            Command::ConsumerInfo(c) => self.subscribe(&c),
            Command::MessageAck(a) => self.ack(&a),
            Command::RemoveInfo(r) => self.remove(&r),
            Command::RemoveSubscriptionInfo(r) => {
                let conn = self.conn()?;
                let name = r
                    .subscription_name
                    .as_deref()
                    .ok_or(SessionError::Invalid {
                        what: "RemoveSubscriptionInfo",
                        reason: "no subscription name".into(),
                    })?;
                let seq = self.broker().unsubscribe(conn, None, Some(name))?;
                Ok((Flow::Continue, Confirm::after(seq)))
            }
            Command::TransactionInfo(t) => self.transaction(&t),
            Command::DestinationInfo(d) => self.destination(&d),
            Command::MessagePull(p) => self.pull(&p),
            Command::ConsumerControl(c) => self.consumer_control(&c),
            // A failover client says it is one, first thing on every reconnect,
            // before its ConnectionInfo; nothing in it asks anything of the broker.
            Command::ConnectionControl(_) | Command::ControlCommand(_) => done,
            _ => Err(SessionError::Unsupported("this command from a client")),
        }
    }

    fn conn(&self) -> Result<ConnectionId, SessionError> {
        self.conn.ok_or(SessionError::NotConnected)
    }

    /// Takes the client's WireFormatInfo: both sides speak the negotiated
    /// format from now on, and the broker introduces itself.
    fn negotiate(&mut self, theirs: &WireFormatInfo) -> Result<(Flow, Confirm), SessionError> {
        let n = negotiate(&self.ours, theirs)?;
        self.decoder.set_settings(n.wire);
        self.max_frame_bytes = n.wire.max_frame_size;
        self.decoder
            .set_max_frame_size(n.wire.max_frame_size.min(LOGIN_FRAME_BYTES));
        self.negotiated = true;
        let s = &self.settings;
        let info = BrokerInfo {
            broker_id: Some(BrokerId::new(s.broker_id.clone())),
            broker_name: Some(s.broker_name.clone()),
            ..BrokerInfo::default()
        };
        self.send_out(Out::Setup {
            frame: Command::BrokerInfo(info),
            setup: n.wire,
            keep_alive: n.write_check_interval_ms().map(Duration::from_millis),
        });
        // From here the client's keep-alives count, not the connect deadline:
        // a JMS client sends its ConnectionInfo only with its first session,
        // which may be long after it opened the connection.
        self.reader
            .connected(n.read_check_interval_ms().unwrap_or(0));
        // But with users configured, keep-alives alone do not hold a
        // connection that never says who it is.
        if s.core.auth.required() && s.login_timeout_ms > 0 {
            self.reader.expect_login(s.login_timeout_ms);
        }
        Ok((Flow::Continue, Confirm::now()))
    }
}

impl Session {
    /// ConnectionInfo: registers the connection with the engine under its client id.
    async fn connect(&mut self, info: &ow::ConnectionInfo) -> Result<(), SessionError> {
        if self.conn.is_some() {
            return Err(SessionError::Unsupported("a second ConnectionInfo"));
        }
        let principal = self
            .settings
            .core
            .auth
            .authenticate(
                Protocol::OpenWire,
                self.remote,
                info.user_name.as_deref(),
                info.password.as_deref(),
                self.certificate_name.as_deref(),
            )
            .await?;
        let outbox = Arc::new(ConnectionOutbox::new(
            self.out.clone(),
            self.reader.writer_done(),
        ));
        let client_id = info.client_id.as_deref().filter(|c| !c.is_empty());
        let failover_reconnect = info.failover_reconnect;
        let info =
            ConnectInfo::new(Protocol::OpenWire, client_id, self.remote).with_principal(principal);
        let conn = self.broker().connect(info, outbox)?;
        self.reader.logged_in();
        self.decoder.set_max_frame_size(self.max_frame_bytes);
        self.conn = Some(conn);
        self.registration = Some(Registration::new(Arc::clone(self.broker()), conn));
        // As ActiveMQ's updateClusterClients: the client's failover transport
        // learns every broker now, and again whenever the list changes.
        let mut cluster = self.settings.core.cluster.clone();
        let current = Arc::clone(&cluster.borrow_and_update());
        // Not a client that was just moved (or failed over) here: sent on
        // again by a broker whose list differs, it would never settle.
        self.send_cluster(&current, current.rebalance_clients && !failover_reconnect);
        self.reader.follow_cluster(cluster);
        Ok(())
    }

    /// A ConnectionControl naming the advertised OpenWire brokers (none: an
    /// empty list, which the client ignores), asking for a rebalance if
    /// `rebalance` (only with `rebalance_clients`): otherwise the client stays
    /// where it is unless it loses this broker. A rebalancing client goes to
    /// the first broker of the list unless it randomizes, so each rebalancing
    /// ConnectionControl turns the list by one, as ActiveMQ does: clients of
    /// `randomize=false` spread too.
    fn send_cluster(&self, cluster: &ClusterConfig, rebalance: bool) {
        let list = &cluster.advertise_openwire;
        let rebalance = rebalance && !list.is_empty();
        let connected_brokers = if rebalance {
            let turn = self
                .settings
                .rebalance_turn
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                % list.len();
            list[turn..]
                .iter()
                .chain(&list[..turn])
                .map(String::as_str)
                .collect::<Vec<_>>()
                .join(",")
        } else {
            list.join(",")
        };
        self.send_out(Out::Frame {
            frame: Command::ConnectionControl(ow::ConnectionControl {
                connected_brokers: Some(connected_brokers),
                rebalance_connection: rebalance,
                ..ow::ConnectionControl::default()
            }),
            seq: 0,
        });
    }

    /// RemoveInfo: closes a consumer, a session (its consumers), or the
    /// connection (what it held goes back to the engine). What its consumers
    /// held beyond the last message the client says it delivered to the
    /// application was only prefetched: it goes back as it was, not as a
    /// redelivery (for a session or connection the client names the last of
    /// all its consumers, as ActiveMQ does).
    fn remove(&mut self, r: &ow::RemoveInfo) -> Result<(Flow, Confirm), SessionError> {
        let Some(conn) = self.conn else {
            return Ok((Flow::Continue, Confirm::now()));
        };
        let last = last_delivered(r.last_delivered_sequence_id);
        match &r.object_id {
            Some(DataStructure::ConsumerId(c)) => {
                let id = subscription_id(c);
                if self.browsers.remove(&id) {
                    self.broker().close_browser(conn);
                    return Ok((Flow::Continue, Confirm::now()));
                }
                self.forget_puller(&id);
                if let Some(set) = self.consumers.get_mut(&c.session_id) {
                    set.remove(&id);
                }
                self.broker()
                    .unsubscribe_after(conn, Some(&id), None, last)?;
            }
            Some(DataStructure::ProducerId(p)) => {
                self.remove_producers(|x| x == p);
            }
            Some(DataStructure::SessionId(s)) => {
                self.remove_producers(|p| {
                    p.session_id == s.value && p.connection_id == s.connection_id
                });
                for id in self.consumers.remove(&s.value).unwrap_or_default() {
                    self.forget_puller(&id);
                    self.broker()
                        .unsubscribe_after(conn, Some(&id), None, last)?;
                }
            }
            Some(DataStructure::ConnectionId(_)) => {
                for (_, ids) in std::mem::take(&mut self.consumers) {
                    for id in ids {
                        self.forget_puller(&id);
                        // The connection goes anyway; what is left goes with it.
                        if let Err(e) = self.broker().unsubscribe_after(conn, Some(&id), None, last)
                        {
                            tracing::debug!("closing consumer {id} with its connection: {e}");
                        }
                    }
                }
                self.conn = None;
                drop(self.registration.take());
            }
            _ => {}
        }
        Ok((Flow::Continue, Confirm::now()))
    }

    /// DestinationInfo: creates or deletes a temporary destination of this
    /// connection (other destinations need no creating).
    fn destination(&mut self, d: &ow::DestinationInfo) -> Result<(Flow, Confirm), SessionError> {
        let conn = self.conn()?;
        let dest = mapping::destination(d.destination.as_ref().ok_or(SessionError::Invalid {
            what: "DestinationInfo",
            reason: "no destination".into(),
        })?)?;
        if dest.kind.is_temporary() {
            match d.operation {
                ow::DestinationOperation::Add => self.broker().register_temporary(conn, &dest)?,
                ow::DestinationOperation::Remove => {
                    self.broker().delete_temporary_destination(conn, &dest)?
                }
                ow::DestinationOperation::Other(_) => {
                    return Err(SessionError::Unsupported("this destination operation"))
                }
            }
        }
        Ok((Flow::Continue, Confirm::now()))
    }

    /// TransactionInfo: a local transaction's begin, commit and rollback, and
    /// XA's whole protocol. A prepared XA transaction is the broker's, not the
    /// connection's: any connection may commit or roll it back, after a
    /// restart too, and `recover` lists them.
    fn transaction(&mut self, t: &ow::TransactionInfo) -> Result<(Flow, Confirm), SessionError> {
        let conn = self.conn()?;
        let broker = Arc::clone(self.broker());
        if t.kind == TransactionType::Recover {
            let xids = broker
                .prepared_transactions()
                .iter()
                .filter_map(|name| xa_id(name))
                .map(|x| DataStructure::TransactionId(TransactionId::Xa(x)))
                .collect();
            self.reply = Some(Reply::Data(xids));
            return Ok((Flow::Continue, Confirm::now()));
        }
        let name = transaction_name(t.transaction_id.as_ref().ok_or(SessionError::Invalid {
            what: "TransactionInfo",
            reason: "no transaction id".into(),
        })?)?;
        let seq = match t.kind {
            TransactionType::Begin => {
                broker.begin(conn, &name)?;
                0
            }
            TransactionType::Prepare => {
                let (vote, seq) = match broker.prepare(conn, &name)? {
                    Some(seq) => (XA_OK, seq),
                    None => (XA_RDONLY, 0),
                };
                self.reply = Some(Reply::Integer(vote));
                seq
            }
            TransactionType::CommitOnePhase => broker.commit(conn, &name)?,
            TransactionType::CommitTwoPhase => broker.commit_prepared(conn, &name)?,
            // ActiveMQ's client redelivers what it rolled back by itself:
            // its consumers keep holding it.
            TransactionType::Rollback => {
                match broker.abort_with(conn, &name, RolledBackAcks::BackToConsumers) {
                    Ok(()) => 0,
                    Err(BrokerError::UnknownTransaction(_)) => {
                        broker.rollback_prepared_with(&name, RolledBackAcks::BackToConsumers)?
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            // End only ends the association with the connection; a
            // transaction is forgotten once resolved (no heuristic outcomes).
            TransactionType::End | TransactionType::Forget => 0,
            TransactionType::Recover | TransactionType::Other(_) => {
                return Err(SessionError::Unsupported("this transaction operation"))
            }
        };
        Ok((Flow::Continue, Confirm::after(seq)))
    }

    /// The memory counters of `dest`, kept for the next send to the same place.
    fn usage_for(&mut self, dest: &Destination) -> Arc<DestinationUsage> {
        match &self.last_usage {
            Some((d, usage)) if d == dest => Arc::clone(usage),
            _ => {
                let usage = self.broker().destination_usage(dest);
                self.last_usage = Some((dest.clone(), Arc::clone(&usage)));
                usage
            }
        }
    }

    /// Producer flow control for a send of `message` (see [`Reader::wait_for_room`]).
    async fn wait_for_room(
        &mut self,
        message: &hawser_broker::NewMessage,
        transactional: bool,
    ) -> Result<(), SessionError> {
        let usage = self.usage_for(&message.destination);
        let pages = self.settings.core.broker.pages(message, transactional);
        let read_limit = usize::try_from(self.settings.max_frame_bytes)
            .unwrap_or(usize::MAX)
            .saturating_add(READ_CHUNK_BYTES);
        Ok(self.reader.wait_for_room(&usage, pages, read_limit).await?)
    }
}
