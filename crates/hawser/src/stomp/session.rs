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

use hawser_broker::{
    AckMode, Broker, BrokerError, ConnectionId, Delivery, Destination, DestinationKind,
    DestinationUsage, LastDelivered, Seq, SubscribeSpec,
};
use hawser_stomp::extensions::{
    BROKER_NAME_HEADER, CLUSTER_HEADER, CLUSTER_SUBSCRIPTION, CLUSTER_UPDATES_HEADER,
    FORWARD_HEADER, NETWORK_PATH_HEADER, STORE_NAME_HEADER,
};
use hawser_stomp::{Command, Decoder, Frame, Item, Limits, Version};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::mapping::{
    self, default_subscription_id, is_owned_temporary, parse_destination, parse_message_id,
};
use super::writer::{Out, StompEncoder, StompOut};
use super::SessionError;
use crate::connection::reader::{ReadTimeouts, Reader, Wake, READ_CHUNK_BYTES};
use crate::connection::{
    open, Confirm, ConnectInfo, ConnectionOutbox, CoreSettings, Outbound, Protocol, ReadHalf,
    Registration, Transport, MAX_LOGIN_FRAME_BYTES,
};

/// Name and version in CONNECTED's `server` header.
const SERVER_NAME: &str = concat!("hawser/", env!("CARGO_PKG_VERSION"));
/// Largest heart-beat interval a client may ask for or offer (one day):
/// bounds the timers derived from it.
pub const MAX_HEARTBEAT_MS: u64 = 24 * 60 * 60 * 1000;

/// What every STOMP session needs to know, shared.
pub struct SessionSettings {
    /// What connections of every protocol share (the engine among it).
    pub core: Arc<CoreSettings>,
    /// Decoder limits.
    pub limits: Limits,
    /// Heart-beat the broker offers to send (ms).
    pub heartbeat_send_ms: u64,
    /// Heart-beat the broker wants to receive (ms).
    pub heartbeat_receive_ms: u64,
    /// Deadlines for CONNECT, for a started frame, and for an idle connection
    /// without heart-beats.
    pub timeouts: ReadTimeouts,
    /// Most messages one queue browser is sent.
    pub max_browse_messages: usize,
    /// Prefetch when SUBSCRIBE gives none.
    pub default_prefetch: u32,
}

impl SessionSettings {
    fn broker(&self) -> &Arc<Broker> {
        &self.core.broker
    }
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
    /// Where the client connects from (for [`ConnectInfo`]).
    remote: Option<std::net::SocketAddr>,
    /// The verified client certificate's common name, over mutual TLS.
    certificate_name: Option<String>,
    /// Unregisters `conn` from the engine when the session goes.
    registration: Option<Registration>,
    /// The negotiated protocol version.
    version: Version,
    /// Frame decoder, switched to the negotiated version after CONNECT.
    decoder: Decoder,
    /// The `receipt` of the frame that failed, echoed in the ERROR frame.
    failed_receipt: Option<String>,
    /// The socket's reading half, its buffer and deadlines.
    reader: Reader<ReadHalf>,
    /// Ids of browsing subscriptions (they hold no consumer; UNSUBSCRIBE just forgets them).
    browsers: std::collections::HashSet<String>,
    /// Subscriptions whose messages go as whole records (a duplex link's).
    forwarding: std::collections::HashSet<Arc<str>>,
    /// The producer id of the last SEND, shared by the messages that carry it
    /// (a connection usually has one producer).
    last_producer: Option<Arc<str>>,
    /// The memory counters of the last SEND's destination (a connection
    /// usually sends to one).
    last_usage: Option<(Destination, Arc<DestinationUsage>)>,
}

/// Serves one accepted connection to the end.
pub async fn serve_connection(
    transport: Transport,
    settings: Arc<SessionSettings>,
    shutdown: CancellationToken,
) {
    let remote = transport.remote;
    let certificate_name = transport.certificate_name.clone();
    let opened = open(
        transport,
        StompEncoder::default(),
        &settings.core,
        settings.timeouts,
        shutdown,
    );
    let connect_limits = Limits {
        max_frame_bytes: settings.limits.max_frame_bytes.min(MAX_LOGIN_FRAME_BYTES),
        max_body_bytes: settings.limits.max_body_bytes.min(MAX_LOGIN_FRAME_BYTES),
        ..settings.limits
    };
    let mut session = Session {
        decoder: Decoder::new(connect_limits),
        settings,
        out: opened.out,
        outbound: opened.outbound,
        conn: None,
        remote,
        certificate_name,
        registration: None,
        last_usage: None,
        version: Version::V1_0,
        failed_receipt: None,
        last_producer: None,
        reader: opened.reader,
        browsers: Default::default(),
        forwarding: Default::default(),
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
    opened.closing.finish().await;
}

impl Session {
    async fn read_frames(&mut self) -> Result<(), SessionError> {
        loop {
            while let Some(item) = self.decoder.decode(&mut self.reader.buf)? {
                if let Item::Frame(frame) = item {
                    if self.handle(frame).await? == Flow::Stop {
                        return Ok(());
                    }
                }
            }
            match self.reader.wait().await? {
                Wake::Read => {}
                Wake::Cluster(uris) => self.send_cluster_update(uris.advertise.join(",")),
                Wake::Stop => return Ok(()),
            }
        }
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
                    self.connect(&frame).await?;
                    Ok((Flow::Continue, Confirm::now()))
                }
                other => Err(SessionError::NotConnected(SessionError::command_name(
                    other,
                ))),
            };
        };
        let broker = Arc::clone(&self.settings.core.broker);
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
                self.wait_for_room(&message, tx.is_some()).await?;
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
                let forwarding = id.as_deref().and_then(|id| self.forwarding.take(id));
                match forwarding {
                    // A duplex link's: what it had not taken goes back as it
                    // was (a link processes nothing; its unsubscribing must
                    // not count towards the dead-letter queue).
                    Some(sub) => {
                        self.send_out(Out::Frame {
                            frame: StompOut::Forwarding {
                                subscription: Arc::clone(&sub),
                                leaving: None,
                            },
                            seq: 0,
                        });
                        broker.unsubscribe_after(
                            conn,
                            Some(&*sub),
                            durable,
                            LastDelivered::Nothing,
                        )?
                    }
                    None => broker.unsubscribe(conn, id.as_deref(), durable)?,
                }
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

    async fn connect(&mut self, frame: &Frame) -> Result<(), SessionError> {
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
        let read_ms = if cx > 0 && sy > 0 { cx.max(sy) } else { 0 };
        let outbox = Arc::new(ConnectionOutbox::new(
            self.out.clone(),
            self.reader.writer_done(),
        ));
        let principal = s
            .core
            .auth
            .authenticate(
                Protocol::Stomp,
                self.remote,
                frame.header("login"),
                frame.header("passcode"),
                self.certificate_name.as_deref(),
            )
            .await?;
        let client_id = frame.header("client-id").filter(|c| !c.is_empty());
        let info =
            ConnectInfo::new(Protocol::Stomp, client_id, self.remote).with_principal(principal);
        let conn = s.broker().connect(info, outbox)?;
        self.conn = Some(conn);
        self.reader.connected(read_ms);
        self.registration = Some(Registration::new(Arc::clone(s.broker()), conn));
        self.version = version;
        self.decoder.set_limits(s.limits);
        self.decoder.set_version(version);
        let mut connected = Frame::new(Command::Connected)
            .with_header("version", version.as_str())
            .with_header("server", SERVER_NAME)
            .with_header(BROKER_NAME_HEADER, &*s.broker().config().name)
            .with_header(STORE_NAME_HEADER, &*s.broker().config().store_name)
            .with_header("session", format!("hawser-{conn}"))
            .with_header("heart-beat", format!("{sx},{sy}"));
        let mut cluster = s.core.cluster.clone();
        let uris = cluster.borrow_and_update().advertise.join(",");
        if !uris.is_empty() {
            connected.push_header(CLUSTER_HEADER, uris);
        }
        if frame.header(CLUSTER_UPDATES_HEADER) == Some("true") {
            self.reader.follow_cluster(cluster);
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
            // STOMP cannot pull: a consumer always has a window.
            None => self.settings.default_prefetch.max(1),
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
        let priority = match frame.header("activemq.priority") {
            None => 0,
            Some(p) => p
                .trim()
                .parse::<i8>()
                .map_err(|_| SessionError::BadHeader {
                    header: "activemq.priority",
                    reason: format!("{p:?} is not a number from -128 to 127"),
                })?,
        };
        let destination = parse_destination(dest_text, conn)?;
        let broker = &self.settings.core.broker;
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
        let network_path = frame.header(NETWORK_PATH_HEADER).map(Arc::from);
        // A duplex link's: its messages go whole. Said to the writer before
        // the subscription exists, so before any of its deliveries.
        let forward = frame.header(FORWARD_HEADER) == Some("1");
        if forward || self.forwarding.contains(&id) {
            let leaving = forward.then(|| Arc::clone(&broker.config().name));
            if forward {
                self.forwarding.insert(Arc::clone(&id));
            } else {
                self.forwarding.remove(&id);
            }
            self.send_out(Out::Frame {
                frame: StompOut::Forwarding {
                    subscription: Arc::clone(&id),
                    leaving,
                },
                seq: 0,
            });
        }
        let broker = &self.settings.core.broker;
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
                priority,
                network_path,
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
        let broker = &self.settings.core.broker;
        broker.open_browser(conn, &queue)?;
        self.browsers.insert(id.to_string());
        let max = self.settings.max_browse_messages;
        for (message, redelivery_count, seq) in broker.browse(&queue, max) {
            self.send_out(Out::Browse(Delivery {
                record: 0,
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
                let usage = self.settings.core.broker.destination_usage(dest);
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
        let read_limit = self.settings.limits.max_frame_bytes + READ_CHUNK_BYTES;
        Ok(self.reader.wait_for_room(&usage, pages, read_limit).await?)
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
            let conn = b
                .connect(ConnectInfo::in_process(Some("app")), Arc::new(Nowhere))
                .unwrap();
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
                    priority: 0,
                    network_path: None,
                },
            )
            .unwrap();
            panic!("a bug in a session");
        })
        .join();
        assert!(panicked.is_err());
        assert_eq!(broker.connection_count(), 0);
        assert!(broker
            .connect(ConnectInfo::in_process(Some("app")), Arc::new(Nowhere))
            .is_ok());
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
