//! The reading half of a STOMP connection: frames in, engine calls out.
//!
//! A session buffers bytes until the codec yields a frame, checks the frame
//! against the protocol state (CONNECT first, then anything but CONNECT),
//! translates it into a call on the engine and queues the reply (RECEIPT, with
//! the store record it must wait for) for the writer. Any error ends the
//! session: the client gets an ERROR frame with a `message` header and the
//! connection closes; nothing else in the broker is affected.

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use hawser_broker::{
    AckMode, Broker, BrokerError, ConnectionId, Delivery, Destination, DestinationKind,
    DestinationUsage, Seq, SubscribeSpec,
};
use hawser_stomp::extensions::{CLUSTER_HEADER, CLUSTER_SUBSCRIPTION, CLUSTER_UPDATES_HEADER};
use hawser_stomp::{Command, Decoder, Frame, Item, Limits, Version};
use tokio::io::AsyncReadExt;
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::mapping::{
    self, default_subscription_id, is_owned_temporary, parse_destination, parse_message_id,
};
use super::writer::{Out, StompEncoder, StompOut};
use super::SessionError;
use crate::config::FlowControl;
use crate::connection::{run_writer, Confirm, ConnectionOutbox, Outbound, Registration};

/// Name and version in CONNECTED's `server` header.
const SERVER_NAME: &str = concat!("hawser/", env!("CARGO_PKG_VERSION"));
/// Spare capacity kept in the read buffer before each read.
const READ_CHUNK_BYTES: usize = 64 * 1024;
/// How long a closing connection may take to flush what it owes the client.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// The same during a server shutdown, so a client that does not read cannot delay it.
const SHUTDOWN_DRAIN_TIMEOUT: Duration = Duration::from_secs(2);
/// Clients may be this much later than their heart-beat interval (ActiveMQ allows 1.5x).
const HEARTBEAT_GRACE_NUM: u64 = 3;
const HEARTBEAT_GRACE_DEN: u64 = 2;
/// How often a producer held by a full store or disk checks again.
const STORE_FULL_POLL: Duration = Duration::from_millis(100);
/// Largest frame accepted before CONNECT: a CONNECT frame is a few headers, and
/// an unauthenticated peer must not make the broker buffer megabytes.
pub const MAX_CONNECT_FRAME_BYTES: usize = 64 * 1024;
/// Largest heart-beat interval a client may ask for or offer (one day):
/// bounds the timers derived from it.
pub const MAX_HEARTBEAT_MS: u64 = 24 * 60 * 60 * 1000;

/// What every STOMP session needs to know, shared.
pub struct SessionSettings {
    /// The engine.
    pub broker: Arc<Broker>,
    /// Decoder limits.
    pub limits: Limits,
    /// Heart-beat the broker offers to send (ms).
    pub heartbeat_send_ms: u64,
    /// Heart-beat the broker wants to receive (ms).
    pub heartbeat_receive_ms: u64,
    /// Deadline for CONNECT (ms).
    pub connect_timeout_ms: u64,
    /// Deadline for a started frame (ms).
    pub frame_timeout_ms: u64,
    /// A connection without heart-beats from its client is closed after this
    /// long without receiving anything (ms; 0: never).
    pub idle_timeout_ms: u64,
    /// Frames queued for a connection's writer above which its client's frames
    /// are no longer read, until the client has read enough of its own.
    pub max_outbound_frames: usize,
    /// Most messages one queue browser is sent.
    pub max_browse_messages: usize,
    /// Prefetch when SUBSCRIBE gives none.
    pub default_prefetch: u32,
    /// Journal size that triggers flow control.
    pub max_store_bytes: u64,
    /// What a full broker does to producers.
    pub flow_control: FlowControl,
    /// Free space on the journal's file system (producers wait while it is low).
    pub disk: Arc<crate::disk::DiskSpace>,
    /// Broker URIs advertised to clients (ActiveMQ's updateClusterClients).
    pub cluster: tokio::sync::watch::Receiver<Arc<Vec<String>>>,
}

/// What to do after a frame.
#[derive(PartialEq, Eq)]
enum Flow {
    Continue,
    /// The client said DISCONNECT.
    Stop,
}

struct Session {
    /// Shared settings and the engine.
    settings: Arc<SessionSettings>,
    /// Queue to the writer.
    out: mpsc::UnboundedSender<Out>,
    /// What the writer still has to send, shared with it and the engine's outbox.
    outbound: Arc<Outbound>,
    /// The engine's id for this connection, once CONNECT succeeded.
    conn: Option<ConnectionId>,
    /// Unregisters `conn` from the engine when the session goes.
    registration: Option<Registration>,
    /// The negotiated protocol version.
    version: Version,
    /// Expect a frame or heart-beat at least this often (ms; 0: no expectation).
    read_heartbeat_ms: u64,
    /// Frame decoder, switched to the negotiated version after CONNECT.
    decoder: Decoder,
    /// The `receipt` of the frame that failed, echoed in the ERROR frame.
    failed_receipt: Option<String>,
    /// The socket's reading half.
    rd: OwnedReadHalf,
    /// Bytes read and not yet decoded.
    buf: BytesMut,
    /// When the client last sent anything (heart-beat enforcement).
    last_read: Instant,
    /// Cancelled when the server shuts down.
    shutdown: CancellationToken,
    /// Cancelled when the writer has stopped (the socket is gone).
    writer_done: CancellationToken,
    /// Ids of browsing subscriptions (they hold no consumer; UNSUBSCRIBE just forgets them).
    browsers: std::collections::HashSet<String>,
    /// Set when the client asked for cluster updates.
    cluster_updates: Option<tokio::sync::watch::Receiver<Arc<Vec<String>>>>,
    /// The producer id of the last SEND, shared by the messages that carry it
    /// (a connection usually has one producer).
    last_producer: Option<Arc<str>>,
    /// The memory counters of the last SEND's destination (a connection
    /// usually sends to one).
    last_usage: Option<(Destination, Arc<DestinationUsage>)>,
}

/// Serves one accepted connection to the end.
pub async fn serve_connection(
    stream: TcpStream,
    settings: Arc<SessionSettings>,
    shutdown: CancellationToken,
) {
    let _ = stream.set_nodelay(true);
    let (rd, wr) = stream.into_split();
    let (tx, rx) = mpsc::unbounded_channel();
    let done = CancellationToken::new();
    let outbound = Arc::new(Outbound::default());
    let writer = tokio::spawn(run_writer(
        wr,
        StompEncoder::default(),
        rx,
        Arc::clone(&outbound),
        settings.broker.store().durability(),
        Arc::clone(&settings.broker),
        done.clone(),
    ));
    let connect_limits = Limits {
        max_frame_bytes: settings.limits.max_frame_bytes.min(MAX_CONNECT_FRAME_BYTES),
        max_body_bytes: settings.limits.max_body_bytes.min(MAX_CONNECT_FRAME_BYTES),
        ..settings.limits
    };
    let mut session = Session {
        decoder: Decoder::new(connect_limits),
        settings,
        out: tx,
        outbound,
        conn: None,
        registration: None,
        last_usage: None,
        version: Version::V1_0,
        read_heartbeat_ms: 0,
        failed_receipt: None,
        last_producer: None,
        rd,
        buf: BytesMut::with_capacity(READ_CHUNK_BYTES),
        last_read: Instant::now(),
        shutdown: shutdown.clone(),
        writer_done: done.clone(),
        browsers: Default::default(),
        cluster_updates: None,
    };
    let result = session.read_frames().await;
    match result {
        Ok(()) | Err(SessionError::Closed) => {
            session.send_out(Out::Close { frame: None });
        }
        Err(e) => {
            tracing::debug!("closing STOMP connection: {e}");
            let mut f = Frame::new(Command::Error).with_header("message", e.client_message());
            if let Some(r) = session.failed_receipt.take() {
                f.push_header("receipt-id", r);
            }
            session.send_out(Out::Close {
                frame: Some(StompOut::Frame(f)),
            });
        }
    }
    session.conn = None;
    drop(session.registration.take());
    drop(session);
    // A client that does not read must not hold up a shutdown for long.
    let drain = if shutdown.is_cancelled() {
        SHUTDOWN_DRAIN_TIMEOUT
    } else {
        DRAIN_TIMEOUT
    };
    let mut writer = writer;
    if tokio::time::timeout(drain, &mut writer).await.is_err() {
        done.cancel();
        let _ = writer.await;
    }
}

impl Session {
    async fn read_frames(&mut self) -> Result<(), SessionError> {
        let accepted = Instant::now();
        let mut partial_since: Option<Instant> = None;
        loop {
            // A client that does not read what it is sent is not read from
            // either: its frames wait in the socket, not in the broker.
            self.wait_for_outbound().await?;
            while let Some(item) = self.decoder.decode(&mut self.buf)? {
                if let Item::Frame(frame) = item {
                    if self.handle(frame).await? == Flow::Stop {
                        return Ok(());
                    }
                }
            }
            partial_since = if self.buf.is_empty() {
                None
            } else {
                partial_since.or(Some(Instant::now()))
            };
            let (deadline, timeout) = self.read_deadline(accepted, partial_since);
            let (shutdown, writer_done) = (self.shutdown.clone(), self.writer_done.clone());
            let mut cluster = self.cluster_updates.take();
            let cluster_changed = async {
                match cluster.as_mut() {
                    Some(rx) => rx.changed().await.is_ok(),
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                changed = cluster_changed => {
                    if changed {
                        if let Some(rx) = cluster.as_mut() {
                            let uris = rx.borrow_and_update().join(",");
                            self.send_cluster_update(uris);
                        }
                    } else {
                        cluster = None;
                    }
                }
                read = self.read_more() => read?,
                _ = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {
                    return Err(timeout.expect("set with deadline"));
                }
                _ = shutdown.cancelled() => return Ok(()),
                _ = writer_done.cancelled() => return Ok(()),
            }
            self.cluster_updates = cluster;
        }
    }

    /// Waits while the writer holds more than `max_outbound_frames` for the
    /// client. Nothing is read meanwhile, so the client's heart-beats are not
    /// expected; shutdown and a closed socket still end the session.
    async fn wait_for_outbound(&mut self) -> Result<(), SessionError> {
        let limit = self.settings.max_outbound_frames;
        while self.outbound.queued() > limit {
            let drained = self.outbound.drained();
            tokio::select! {
                _ = drained => {}
                _ = self.shutdown.cancelled() => return Err(SessionError::Closed),
                _ = self.writer_done.cancelled() => return Err(SessionError::Closed),
            }
            // Waiting on our own account is not the client being late.
            self.last_read = Instant::now();
        }
        Ok(())
    }

    /// Queues an item for the writer, counted against `max_outbound_frames`.
    fn send_out(&self, item: Out) {
        self.outbound.push(&self.out, item);
    }

    /// Tells a client that asked for it the new list of broker URIs.
    fn send_cluster_update(&self, uris: String) {
        let frame = Frame::new(Command::Message)
            .with_header("subscription", CLUSTER_SUBSCRIPTION)
            .with_header("message-id", CLUSTER_SUBSCRIPTION)
            .with_header("destination", "/topic/hawser.cluster")
            .with_header(CLUSTER_HEADER, uris);
        self.send_out(Out::Frame {
            frame: StompOut::Frame(frame),
            seq: 0,
        });
    }

    /// Reads whatever the client sent next into the buffer; `Closed` at end of stream.
    async fn read_more(&mut self) -> Result<(), SessionError> {
        if self.buf.capacity() - self.buf.len() < READ_CHUNK_BYTES / 4 {
            self.buf.reserve(READ_CHUNK_BYTES);
        }
        match self.rd.read_buf(&mut self.buf).await {
            Ok(0) | Err(_) => Err(SessionError::Closed),
            Ok(_) => {
                self.last_read = Instant::now();
                Ok(())
            }
        }
    }

    /// The earliest moment the client must have sent something, and the error if it has not.
    fn read_deadline(
        &self,
        accepted: Instant,
        partial_since: Option<Instant>,
    ) -> (Option<Instant>, Option<SessionError>) {
        let s = &self.settings;
        let mut best: (Option<Instant>, Option<SessionError>) = (None, None);
        let mut consider = |at: Instant, err: SessionError| {
            if best.0.is_none_or(|b| at < b) {
                best = (Some(at), Some(err));
            }
        };
        if self.conn.is_none() {
            consider(
                accepted + Duration::from_millis(s.connect_timeout_ms),
                SessionError::ConnectTimeout(s.connect_timeout_ms),
            );
        }
        if let Some(p) = partial_since {
            consider(
                p + Duration::from_millis(s.frame_timeout_ms),
                SessionError::FrameTimeout(s.frame_timeout_ms),
            );
        }
        if self.read_heartbeat_ms > 0 {
            let grace = self.read_heartbeat_ms * HEARTBEAT_GRACE_NUM / HEARTBEAT_GRACE_DEN;
            consider(
                self.last_read + Duration::from_millis(grace),
                SessionError::HeartBeatTimeout(self.read_heartbeat_ms),
            );
        } else if self.conn.is_some() && s.idle_timeout_ms > 0 {
            consider(
                self.last_read + Duration::from_millis(s.idle_timeout_ms),
                SessionError::IdleTimeout(s.idle_timeout_ms),
            );
        }
        best
    }

    async fn handle(&mut self, frame: Frame) -> Result<Flow, SessionError> {
        let receipt = frame.header("receipt").map(str::to_owned);
        let command = frame.command;
        let result = self.apply(frame).await;
        let (flow, until) = match result {
            Ok(r) => r,
            Err(e) => {
                self.failed_receipt = receipt;
                return Err(e);
            }
        };
        if flow == Flow::Stop {
            self.send_out(Out::Close {
                frame: receipt.map(StompOut::Receipt),
            });
        } else if let Some(id) = receipt {
            // CONNECT's receipt header has no meaning; everything else gets one.
            if command != Command::Connect && command != Command::Stomp {
                self.send_out(Out::Confirm {
                    frame: StompOut::Receipt(id),
                    until,
                });
            }
        }
        Ok(flow)
    }

    /// Performs one frame; returns what its receipt must wait for.
    async fn apply(&mut self, frame: Frame) -> Result<(Flow, Confirm), SessionError> {
        let Some(conn) = self.conn else {
            return match frame.command {
                Command::Connect | Command::Stomp => {
                    self.connect(&frame)?;
                    Ok((Flow::Continue, Confirm::now()))
                }
                other => Err(SessionError::NotConnected(SessionError::command_name(
                    other,
                ))),
            };
        };
        let broker = Arc::clone(&self.settings.broker);
        let tx = frame.header("transaction").map(str::to_owned);
        let seq = match frame.command {
            Command::Connect | Command::Stomp => return Err(SessionError::AlreadyConnected),
            Command::Send => {
                let owned = frame.header("destination").is_some_and(is_owned_temporary);
                let reply_to_owned = frame.header("reply-to").is_some_and(is_owned_temporary);
                // Only a producer waiting for a receipt needs to hear of a consumer's ack.
                let waits = frame.header("receipt").is_some();
                let reply_to = match frame.header("reply-to") {
                    Some(r) if reply_to_owned => Some(parse_destination(r, conn)?),
                    _ => None,
                };
                let message = mapping::new_message(frame, conn, &mut self.last_producer)?;
                self.wait_for_room(&message.destination).await?;
                if owned {
                    broker.register_temporary(conn, &message.destination)?;
                }
                // Naming its own temporary queue as the reply address creates it,
                // as ActiveMQ's STOMP does, so that a reply finds it.
                if let Some(reply_to) = reply_to {
                    broker.register_temporary(conn, &reply_to)?;
                }
                if !waits {
                    return Ok((
                        Flow::Continue,
                        Confirm::after(broker.send(conn, message, tx.as_deref())?),
                    ));
                }
                let (seq, consumed) = broker.send_confirmable(conn, message, tx.as_deref())?;
                return Ok((Flow::Continue, Confirm { seq, consumed }));
            }
            Command::Subscribe => self.subscribe(conn, &frame)?,
            Command::Unsubscribe => {
                let id = frame
                    .header("id")
                    .or_else(|| match self.version {
                        Version::V1_0 => frame.header("destination"),
                        _ => None,
                    })
                    .map(str::to_owned);
                let durable = frame.header("activemq.subscriptionName");
                if id.is_none() && durable.is_none() {
                    return Err(SessionError::MissingHeader("id"));
                }
                if id.as_ref().is_some_and(|id| self.browsers.remove(id)) {
                    broker.close_browser(conn);
                    return Ok((Flow::Continue, Confirm::now()));
                }
                broker.unsubscribe(conn, id.as_deref(), durable)?
            }
            Command::Ack | Command::Nack => {
                let id_text = frame
                    .header("id")
                    .or_else(|| frame.header("message-id"))
                    .ok_or(SessionError::MissingHeader(match self.version {
                        Version::V1_2 => "id",
                        _ => "message-id",
                    }))?;
                let id = parse_message_id(id_text)?;
                let sub = frame.header("subscription");
                if frame.command == Command::Ack {
                    let sync = frame.header("receipt").is_some();
                    broker.ack(conn, sub, id, tx.as_deref(), sync)?
                } else {
                    broker.nack(conn, sub, id)?;
                    0
                }
            }
            Command::Begin => {
                broker.begin(
                    conn,
                    tx.as_deref()
                        .ok_or(SessionError::MissingHeader("transaction"))?,
                )?;
                0
            }
            Command::Commit => broker.commit(
                conn,
                tx.as_deref()
                    .ok_or(SessionError::MissingHeader("transaction"))?,
            )?,
            Command::Abort => {
                broker.abort(
                    conn,
                    tx.as_deref()
                        .ok_or(SessionError::MissingHeader("transaction"))?,
                )?;
                0
            }
            Command::Disconnect => return Ok((Flow::Stop, Confirm::now())),
            other @ (Command::Connected | Command::Message | Command::Receipt | Command::Error) => {
                return Err(SessionError::UnexpectedCommand(SessionError::command_name(
                    other,
                )))
            }
        };
        Ok((Flow::Continue, Confirm::after(seq)))
    }

    fn connect(&mut self, frame: &Frame) -> Result<(), SessionError> {
        let version = match frame.header("accept-version") {
            None => Version::V1_0,
            Some(v) => Version::negotiate(v)
                .ok_or_else(|| SessionError::UnsupportedVersion(v.to_owned()))?,
        };
        let (cx, cy) = match frame.header("heart-beat") {
            None => (0, 0),
            Some(hb) => parse_heartbeat(hb)?,
        };
        let s = &self.settings;
        let (sx, sy) = (s.heartbeat_send_ms, s.heartbeat_receive_ms);
        let send_ms = if sx > 0 && cy > 0 { sx.max(cy) } else { 0 };
        self.read_heartbeat_ms = if cx > 0 && sy > 0 { cx.max(sy) } else { 0 };
        let outbox = Arc::new(ConnectionOutbox(self.out.clone()));
        let conn = s
            .broker
            .connect(frame.header("client-id").filter(|c| !c.is_empty()), outbox)?;
        self.conn = Some(conn);
        self.registration = Some(Registration::new(Arc::clone(&s.broker), conn));
        self.version = version;
        self.decoder.set_limits(s.limits);
        self.decoder.set_version(version);
        let mut connected = Frame::new(Command::Connected)
            .with_header("version", version.as_str())
            .with_header("server", SERVER_NAME)
            .with_header("session", format!("hawser-{conn}"))
            .with_header("heart-beat", format!("{sx},{sy}"));
        let mut cluster = s.cluster.clone();
        let uris = cluster.borrow_and_update().join(",");
        if !uris.is_empty() {
            connected.push_header(CLUSTER_HEADER, uris);
        }
        if frame.header(CLUSTER_UPDATES_HEADER) == Some("true") {
            self.cluster_updates = Some(cluster);
        }
        self.send_out(Out::Setup {
            frame: StompOut::Frame(connected),
            setup: version,
            keep_alive: (send_ms > 0).then(|| Duration::from_millis(send_ms)),
        });
        Ok(())
    }

    fn subscribe(&mut self, conn: ConnectionId, frame: &Frame) -> Result<Seq, SessionError> {
        let dest_text = frame
            .header("destination")
            .ok_or(SessionError::MissingHeader("destination"))?;
        let id = match frame.header("id") {
            Some(id) => Arc::from(id),
            None if self.version == Version::V1_0 => default_subscription_id(dest_text),
            None => return Err(SessionError::MissingHeader("id")),
        };
        let ack_mode = match frame.header("ack") {
            None | Some("auto") => AckMode::Auto,
            Some("client") => AckMode::Client,
            Some("client-individual") => AckMode::ClientIndividual,
            Some(other) => {
                return Err(SessionError::BadHeader {
                    header: "ack",
                    reason: format!("{other:?} is not auto, client or client-individual"),
                })
            }
        };
        let prefetch = match frame.header("activemq.prefetchSize") {
            None => self.settings.default_prefetch,
            Some(p) => p
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| SessionError::BadHeader {
                    header: "activemq.prefetchSize",
                    reason: format!("{p:?} is not a positive number"),
                })?,
        };
        let destination = parse_destination(dest_text, conn)?;
        let broker = &self.settings.broker;
        if frame.header("browser") == Some("true") {
            return self.browse(conn, id, destination);
        }
        if is_owned_temporary(dest_text) {
            broker.register_temporary(conn, &destination)?;
        }
        let durable_name = frame
            .header("activemq.subscriptionName")
            .filter(|n| !n.is_empty())
            .map(str::to_owned);
        if durable_name.is_some() && destination.kind != DestinationKind::Topic {
            return Err(SessionError::BadHeader {
                header: "activemq.subscriptionName",
                reason: "durable subscriptions are for topics".into(),
            });
        }
        Ok(broker.subscribe(
            conn,
            SubscribeSpec {
                id,
                destination,
                ack_mode,
                prefetch,
                selector: frame.header("selector").map(str::to_owned),
                exclusive: frame.header("activemq.exclusive") == Some("true"),
                durable_name,
                no_local: frame.header("activemq.noLocal") == Some("true"),
            },
        )?)
    }

    /// ActiveMQ's queue browsing: SUBSCRIBE with `browser:true` receives every
    /// waiting message once, unconsumed, then a MESSAGE with `browser:end`.
    fn browse(
        &mut self,
        conn: ConnectionId,
        id: Arc<str>,
        queue: Destination,
    ) -> Result<Seq, SessionError> {
        if queue.is_topic() {
            return Err(SessionError::BadHeader {
                header: "browser",
                reason: "only queues can be browsed".into(),
            });
        }
        if self.browsers.contains(&*id) {
            return Err(SessionError::Broker(BrokerError::DuplicateSubscription(
                id.to_string(),
            )));
        }
        let broker = &self.settings.broker;
        broker.open_browser(conn)?;
        self.browsers.insert(id.to_string());
        let max = self.settings.max_browse_messages;
        for (message, redelivery_count, seq) in broker.browse(&queue, max) {
            self.send_out(Out::Browse(Delivery {
                consumer: 0,
                subscription: Arc::clone(&id),
                message,
                redelivery_count,
                seq,
                auto_ack: false,
            }));
        }
        let end = Frame::new(Command::Message)
            .with_header("subscription", &id)
            .with_header("destination", mapping::destination_name(&queue))
            .with_header("message-id", "browser-end")
            .with_header("browser", "end");
        self.send_out(Out::Frame {
            frame: StompOut::Frame(end),
            seq: 0,
        });
        Ok(0)
    }

    /// The memory counters of `dest`, kept for the next SEND to the same place.
    fn usage_for(&mut self, dest: &Destination) -> Arc<DestinationUsage> {
        match &self.last_usage {
            Some((d, usage)) if d == dest => Arc::clone(usage),
            _ => {
                let usage = self.settings.broker.destination_usage(dest);
                self.last_usage = Some((dest.clone(), Arc::clone(&usage)));
                usage
            }
        }
    }

    /// Producer flow control: hold or refuse a send to `dest` while there is no
    /// room: its destination's memory limit, the broker's (for destinations
    /// holding their share of it, see `hawser_broker::usage`), the store's, or
    /// the disk's free space.
    /// Only this producer waits; other connections, and this one's producers
    /// of other destinations on other connections, go on.
    ///
    /// While a producer is held, its socket is still read (up to one frame's
    /// worth) so that its heart-beats count and a producer that goes away frees
    /// its connection; the frames themselves wait.
    async fn wait_for_room(&mut self, dest: &Destination) -> Result<(), SessionError> {
        let settings = Arc::clone(&self.settings);
        let usage = self.usage_for(dest);
        let read_limit = settings.limits.max_frame_bytes + READ_CHUNK_BYTES;
        loop {
            // `Some(full)`: memory, signalled when it frees; `None`: the store's
            // size or the disk's space, sampled.
            let (which, memory) = match usage.room() {
                Err(full) => (full.as_str(), Some(full)),
                Ok(()) if settings.broker.store().disk_bytes() >= settings.max_store_bytes => {
                    ("store", None)
                }
                Ok(()) if settings.disk.is_low(settings.broker.store().disk_bytes()) => {
                    ("disk", None)
                }
                Ok(()) => return Ok(()),
            };
            let block = usage
                .policy()
                .producer_flow_control
                .unwrap_or(settings.flow_control == FlowControl::Block);
            if !block {
                return Err(SessionError::ResourceFull(which));
            }
            let (deadline, timeout) = self.read_deadline(Instant::now(), None);
            let room = async {
                match memory {
                    Some(_) => usage.wait_for_room().await,
                    None => tokio::time::sleep(STORE_FULL_POLL).await,
                }
            };
            let can_read = self.buf.len() < read_limit;
            let (shutdown, writer_done) = (self.shutdown.clone(), self.writer_done.clone());
            tokio::select! {
                _ = room => {}
                read = self.read_more(), if can_read => read?,
                _ = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() && self.conn.is_some() => {
                    return Err(timeout.expect("set with deadline"));
                }
                _ = shutdown.cancelled() => return Err(SessionError::Closed),
                _ = writer_done.cancelled() => return Err(SessionError::Closed),
            }
        }
    }
}

/// Parses `heart-beat:cx,cy`; each at most [`MAX_HEARTBEAT_MS`].
fn parse_heartbeat(value: &str) -> Result<(u64, u64), SessionError> {
    let bad = |reason: String| SessionError::BadHeader {
        header: "heart-beat",
        reason,
    };
    let (a, b) = value
        .split_once(',')
        .ok_or_else(|| bad(format!("{value:?} is not two comma-separated numbers")))?;
    let parse = |x: &str| -> Result<u64, SessionError> {
        let ms: u64 = x
            .trim()
            .parse()
            .map_err(|_| bad(format!("{value:?} is not two comma-separated numbers")))?;
        if ms > MAX_HEARTBEAT_MS {
            return Err(bad(format!(
                "{ms} ms is longer than the broker's limit of {MAX_HEARTBEAT_MS} ms"
            )));
        }
        Ok(ms)
    };
    Ok((parse(a)?, parse(b)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Nowhere;

    impl hawser_broker::Outbox for Nowhere {
        fn deliver(&self, _: Delivery) {}
    }

    #[test]
    fn a_panicking_session_still_gives_back_its_client_id_and_messages() {
        let broker = Arc::new(Broker::new(
            hawser_broker::BrokerConfig::default(),
            Arc::new(hawser_broker::MemoryStore::new()),
            hawser_broker::Recovered::default(),
        ));
        let q = Destination::queue("held");
        let b = Arc::clone(&broker);
        let q2 = q.clone();
        let panicked = std::thread::spawn(move || {
            let conn = b.connect(Some("app"), Arc::new(Nowhere)).unwrap();
            let _registration = Registration::new(Arc::clone(&b), conn);
            b.send(
                conn,
                hawser_broker::NewMessage::new(q2.clone(), bytes::Bytes::from_static(b"m")),
                None,
            )
            .unwrap();
            b.subscribe(
                conn,
                SubscribeSpec {
                    id: Arc::from("s"),
                    destination: q2,
                    ack_mode: AckMode::Client,
                    prefetch: 10,
                    selector: None,
                    exclusive: false,
                    durable_name: None,
                    no_local: false,
                },
            )
            .unwrap();
            panic!("a bug in a session");
        })
        .join();
        assert!(panicked.is_err());
        assert_eq!(broker.connection_count(), 0);
        assert!(broker.connect(Some("app"), Arc::new(Nowhere)).is_ok());
        let held = broker.stats();
        assert_eq!((held[0].pending, held[0].inflight), (1, 0), "{held:?}");
    }

    #[test]
    fn heartbeat_header() {
        assert_eq!(parse_heartbeat("0,0").unwrap(), (0, 0));
        assert_eq!(parse_heartbeat("1000, 2000").unwrap(), (1000, 2000));
        assert!(parse_heartbeat("1000").is_err());
        assert!(parse_heartbeat("-1,0").is_err());
        assert!(parse_heartbeat("18446744073709551615,0").is_err());
        assert!(parse_heartbeat(&format!("0,{}", MAX_HEARTBEAT_MS + 1)).is_err());
        assert_eq!(
            parse_heartbeat(&format!("{MAX_HEARTBEAT_MS},0")).unwrap(),
            (MAX_HEARTBEAT_MS, 0)
        );
    }
}
