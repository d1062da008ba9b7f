//! The failover client: one supervisor task per client keeps a connection to
//! some broker of the URI's list, as the reconnect policy says, and hides the
//! changes from the application.
//!
//! What survives a reconnect:
//! - subscriptions are sent again with the same ids and durable names;
//! - every send not yet confirmed by a RECEIPT is sent again, with the same
//!   producer id and sequence number, so a broker that already stored it
//!   confirms it without storing it twice;
//! - a transaction that was open fails with `TransactionRolledBack`;
//! - messages delivered and not acknowledged come again (redelivered); a
//!   per-subscription audit of what the application acknowledged drops the
//!   copies of those, so an acknowledging consumer sees each message once.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hawser_stomp::extensions::{
    BROKER_NAME_HEADER, CLUSTER_HEADER, CLUSTER_SUBSCRIPTION, PRODUCER_HEADER, PRODUCER_SEQ_HEADER,
    STORE_NAME_HEADER,
};

use crate::audit::{Audit, ProducerKey};
use hawser_stomp::{Command as StompCommand, Frame, Headers};
use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::connection::{connect, Connection, Identity};
use crate::error::ClientError;
use crate::message::Message;
use crate::reconnect::{Reconnector, Step};
use crate::uri::{BrokerUri, ConnectUri};

/// How often a connected client looks at backup and priority connections.
const MAINTENANCE_TICK: Duration = Duration::from_millis(100);
/// Frames or commands handled per wake-up before the others get a turn.
const DRAIN_BATCH: usize = 256;
/// How long `close` waits for the broker's receipt of DISCONNECT.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

type Reply = oneshot::Sender<Result<(), ClientError>>;

/// What the application asks of the supervisor.
pub(crate) enum Command {
    Send {
        frame: Frame,
        tx: Option<String>,
        /// The producer id and sequence number to send under, instead of
        /// the client's own (see [`Client::send_as`]).
        producer: Option<(Arc<str>, u64)>,
        done: Reply,
        queued_at: Instant,
    },
    Subscribe {
        id: Arc<str>,
        headers: Headers,
        auto: bool,
        audit: bool,
        deliver: mpsc::UnboundedSender<Vec<Message>>,
        done: Reply,
    },
    Unsubscribe {
        id: Arc<str>,
        durable: Option<String>,
        done: Reply,
    },
    Ack {
        ack: bool,
        generation: u64,
        subscription: Arc<str>,
        id: String,
        key: Option<ProducerKey>,
        tx: Option<String>,
        /// Where the broker's receipt is reported; `None` sends the ack without one.
        done: Option<Reply>,
    },
    Begin {
        tx: String,
        done: Reply,
    },
    Commit {
        tx: String,
        done: Reply,
    },
    Abort {
        tx: String,
        done: Reply,
    },
    Close {
        done: Reply,
    },
}

/// How a subscription acknowledges.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum AckMode {
    /// The broker settles a message once it has sent it.
    #[default]
    Auto,
    /// One ack settles everything received before it.
    Client,
    /// One ack settles one message.
    ClientIndividual,
}

/// What a subscription asks for.
#[derive(Clone, Debug, Default)]
pub struct SubscribeOptions {
    /// Subscription id; generated if absent.
    pub id: Option<String>,
    /// Acknowledgement mode.
    pub ack: AckMode,
    /// JMS selector.
    pub selector: Option<String>,
    /// `activemq.prefetchSize`.
    pub prefetch: Option<u32>,
    /// Durable topic subscription name (needs a client id).
    pub durable_name: Option<String>,
    /// Browse a queue instead of consuming it.
    pub browse: bool,
    /// Further SUBSCRIBE headers.
    pub headers: Vec<(String, String)>,
    /// Hand the application copies of messages it already acknowledged instead
    /// of dropping them (ActiveMQ's `checkForDuplicates=false`): for tools that
    /// count exactly what the broker sends.
    pub keep_duplicates: bool,
}

/// Where the client is, for the application and for tests.
#[derive(Clone, Debug, Default)]
pub struct Status {
    /// The broker of the live connection.
    pub connected_to: Option<String>,
    /// The brokers the client knows, including advertised ones.
    pub brokers: Vec<String>,
    /// Connections established so far (1 + reconnects).
    pub connections: u64,
    /// The name the broker of the latest connection gave (a Hawser broker's
    /// CONNECTED says it; others do not).
    pub broker_name: Option<String>,
    /// The name of the store that broker serves (a Hawser broker's CONNECTED
    /// says it).
    pub store_name: Option<String>,
}

struct Shared {
    /// Bumped on every new connection; deliveries from older ones are dropped.
    generation: AtomicU64,
    status: Mutex<Status>,
}

/// A client connected to one broker or failing over between several.
pub struct Client {
    commands: mpsc::UnboundedSender<Command>,
    shared: Arc<Shared>,
    next_sub: AtomicU64,
    next_tx: AtomicU64,
    /// The client id was made up by the client (none was given): good for
    /// recognising resends, useless for a durable subscription, which must be
    /// found again under the same id by a later client.
    made_up_client_id: bool,
}

/// A send's confirmation: resolves when the broker's RECEIPT arrives (after a
/// persistent message is on disk), across reconnects.
pub struct Confirmation(oneshot::Receiver<Result<(), ClientError>>);

impl Future for Confirmation {
    type Output = Result<(), ClientError>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0)
            .poll(cx)
            .map(|r| r.unwrap_or(Err(ClientError::Closed)))
    }
}

/// Messages of one subscription.
pub struct Subscription {
    id: Arc<str>,
    rx: mpsc::UnboundedReceiver<Vec<Message>>,
    /// The rest of the last batch taken from `rx`, in order.
    ready: std::collections::VecDeque<Message>,
    shared: Arc<Shared>,
    commands: mpsc::UnboundedSender<Command>,
}

impl Subscription {
    /// The subscription id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The next message; `None` once the client is closed. Messages that
    /// arrived on a connection that has since failed are skipped: they were
    /// not acknowledged, so the broker delivers them again.
    pub async fn recv(&mut self) -> Option<Message> {
        loop {
            if let Some(m) = self.next_ready() {
                return Some(m);
            }
            let batch = self.rx.recv().await?;
            self.ready.extend(batch);
        }
    }

    /// The next message if one is already here, without waiting.
    pub fn try_recv(&mut self) -> Option<Message> {
        loop {
            if let Some(m) = self.next_ready() {
                return Some(m);
            }
            let batch = self.rx.try_recv().ok()?;
            self.ready.extend(batch);
        }
    }

    /// The first current message of the batch at hand, skipping stale ones.
    fn next_ready(&mut self) -> Option<Message> {
        while let Some(m) = self.ready.pop_front() {
            if self.is_current(&m) {
                return Some(m);
            }
        }
        None
    }

    /// False for a message that arrived on a connection that has since failed.
    fn is_current(&self, m: &Message) -> bool {
        m.generation == self.shared.generation.load(Ordering::SeqCst)
    }

    /// Ends the subscription (and with `durable`, deletes the durable subscription of that name).
    pub async fn close(self, durable: Option<&str>) -> Result<(), ClientError> {
        let (done, wait) = oneshot::channel();
        self.commands
            .send(Command::Unsubscribe {
                id: Arc::clone(&self.id),
                durable: durable.map(str::to_owned),
                done,
            })
            .map_err(|_| ClientError::Closed)?;
        wait.await.map_err(|_| ClientError::Closed)?
    }
}

/// A transaction on a client.
pub struct Transaction<'a> {
    client: &'a Client,
    id: String,
}

impl Transaction<'_> {
    /// Its id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Sends inside the transaction; delivered only at commit.
    pub async fn send(
        &self,
        destination: &str,
        body: impl Into<Bytes>,
        headers: Headers,
    ) -> Result<(), ClientError> {
        self.client
            .send_frame(destination, body.into(), headers, Some(self.id.clone()))
            .await
    }

    /// Commits. Fails with `TransactionRolledBack` if the connection failed over meanwhile.
    pub async fn commit(self) -> Result<(), ClientError> {
        let tx = self.id.clone();
        self.client.call(|done| Command::Commit { tx, done }).await
    }

    /// Rolls back.
    pub async fn abort(self) -> Result<(), ClientError> {
        let tx = self.id.clone();
        self.client.call(|done| Command::Abort { tx, done }).await
    }
}

/// 64 bits from the process's randomly keyed hasher (keyed by the OS's
/// randomness), mixed with the clock: distinct across clients and processes.
fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1);
    h.write_u64(now);
    h.write_u32(std::process::id());
    h.finish()
}

impl Client {
    /// Connects by URI (`tcp://h:p`, `failover:(tcp://a:1,tcp://b:2)?opts`).
    /// Returns once connected, or with an error when the startup attempts are spent.
    ///
    /// Without a client id in `identity` the client makes one up, as a JMS
    /// connection does: the broker recognises a resend after a failover only
    /// from the same client id (producer ids are scoped by it), so every
    /// reconnect presents the same one.
    pub async fn connect(uri: &str, mut identity: Identity) -> Result<Client, ClientError> {
        let parsed: ConnectUri = uri.parse()?;
        let seed = random_u64();
        let made_up_client_id = identity.client_id.is_none();
        if made_up_client_id {
            identity.client_id = Some(format!("hawser-{:016x}{:016x}", seed, random_u64()));
        }
        let reconnector = Reconnector::for_uri(parsed, seed);
        let shared = Arc::new(Shared {
            generation: AtomicU64::new(0),
            status: Mutex::new(Status::default()),
        });
        let (commands, rx) = mpsc::unbounded_channel();
        let (started, startup) = oneshot::channel();
        let supervisor = Supervisor {
            reconnector,
            identity,
            commands: rx,
            shared: Arc::clone(&shared),
            conn: None,
            generation: 0,
            subs: BTreeMap::new(),
            unconfirmed: VecDeque::new(),
            waiting: HashMap::new(),
            txs: HashMap::new(),
            queued: VecDeque::new(),
            producer_id: format!("hawser-{:x}-{:x}", std::process::id(), seed),
            next_seq: 1,
            next_receipt: 1,
            backups: Vec::new(),
            clock: Instant::now(),
            down_since: 0,
            last_error: None,
            started: Some(started),
            ack_sender: commands.downgrade(),
        };
        tokio::spawn(supervisor.run());
        startup.await.map_err(|_| ClientError::Closed)??;
        Ok(Client {
            commands,
            shared,
            next_sub: AtomicU64::new(1),
            next_tx: AtomicU64::new(1),
            made_up_client_id,
        })
    }

    /// Where the client is connected and which brokers it knows.
    pub fn status(&self) -> Status {
        self.shared.status.lock().clone()
    }

    /// Sends a message; the returned confirmation resolves on the broker's
    /// RECEIPT. Dropping it does not cancel the send.
    pub fn send(
        &self,
        destination: &str,
        body: impl Into<Bytes>,
        headers: Headers,
    ) -> Confirmation {
        self.send_under(destination, body.into(), headers, None)
    }

    /// [`Client::send`] under a producer id and sequence number the caller
    /// numbers, rather than the client's own: for a sender that must give a
    /// resend the same identity across its own restarts (a network link
    /// forwarding stored messages numbers them by their ids at its broker).
    pub fn send_as(
        &self,
        destination: &str,
        body: impl Into<Bytes>,
        headers: Headers,
        producer: (Arc<str>, u64),
    ) -> Confirmation {
        self.send_under(destination, body.into(), headers, Some(producer))
    }

    fn send_under(
        &self,
        destination: &str,
        body: Bytes,
        headers: Headers,
        producer: Option<(Arc<str>, u64)>,
    ) -> Confirmation {
        let (done, wait) = oneshot::channel();
        let _ = self.commands.send(Command::Send {
            frame: send_frame(destination, body, headers),
            tx: None,
            producer,
            done,
            queued_at: Instant::now(),
        });
        Confirmation(wait)
    }

    async fn send_frame(
        &self,
        destination: &str,
        body: Bytes,
        headers: Headers,
        tx: Option<String>,
    ) -> Result<(), ClientError> {
        let frame = send_frame(destination, body, headers);
        self.call(|done| Command::Send {
            frame,
            tx,
            producer: None,
            done,
            queued_at: Instant::now(),
        })
        .await
    }

    /// Subscribes; returns once the broker confirmed the subscription.
    pub async fn subscribe(
        &self,
        destination: &str,
        options: SubscribeOptions,
    ) -> Result<Subscription, ClientError> {
        let id: Arc<str> =
            Arc::from(options.id.clone().unwrap_or_else(|| {
                format!("sub-{}", self.next_sub.fetch_add(1, Ordering::SeqCst))
            }));
        let mut headers = Headers::new();
        headers.push("destination", destination);
        headers.push("id", &id);
        headers.push(
            "ack",
            match options.ack {
                AckMode::Auto => "auto",
                AckMode::Client => "client",
                AckMode::ClientIndividual => "client-individual",
            },
        );
        if let Some(s) = &options.selector {
            headers.push("selector", s);
        }
        if let Some(p) = options.prefetch {
            headers.push("activemq.prefetchSize", &p.to_string());
        }
        if let Some(d) = &options.durable_name {
            if self.made_up_client_id {
                return Err(ClientError::Broker(
                    "a durable subscription needs a client-id on the connection".into(),
                ));
            }
            headers.push("activemq.subscriptionName", d);
        }
        if options.browse {
            headers.push("browser", "true");
        }
        headers.extend(options.headers.iter().map(|(k, v)| (k, v)));
        let (deliver, rx) = mpsc::unbounded_channel();
        let auto = options.ack == AckMode::Auto;
        let audit = !options.keep_duplicates;
        let sub_id = Arc::clone(&id);
        self.call(|done| Command::Subscribe {
            id: sub_id,
            headers,
            auto,
            audit,
            deliver,
            done,
        })
        .await?;
        Ok(Subscription {
            id,
            rx,
            ready: std::collections::VecDeque::new(),
            shared: Arc::clone(&self.shared),
            commands: self.commands.clone(),
        })
    }

    /// Begins a transaction.
    pub async fn begin(&self) -> Result<Transaction<'_>, ClientError> {
        let id = format!("tx-{}", self.next_tx.fetch_add(1, Ordering::SeqCst));
        let tx = id.clone();
        self.call(|done| Command::Begin { tx, done }).await?;
        Ok(Transaction { client: self, id })
    }

    /// Disconnects cleanly after the broker confirmed everything sent before.
    pub async fn close(self) -> Result<(), ClientError> {
        self.call(|done| Command::Close { done }).await
    }

    async fn call(&self, make: impl FnOnce(Reply) -> Command) -> Result<(), ClientError> {
        let (done, wait) = oneshot::channel();
        self.commands
            .send(make(done))
            .map_err(|_| ClientError::Closed)?;
        wait.await.map_err(|_| ClientError::Closed)?
    }
}

/// Bytes the supervisor may add to a SEND's headers: transaction, producer id and
/// sequence, receipt. Reserved up front so that adding them never reallocates.
const ADDED_SEND_HEADER_BYTES: usize = 128;

fn send_frame(destination: &str, body: Bytes, headers: Headers) -> Frame {
    let mut all = Headers::with_capacity(
        headers.len() + 5,
        "destination".len() + destination.len() + headers.text_len() + ADDED_SEND_HEADER_BYTES,
    );
    all.push("destination", destination);
    all.extend(&headers);
    let mut frame = Frame::new(StompCommand::Send).with_body(body);
    frame.headers = all;
    frame
}

/// The receipt of a send outside a transaction is this prefix and a number.
const SEND_RECEIPT_PREFIX: &str = "send-";

/// A send written but not yet confirmed: resent after a reconnect.
struct Unconfirmed {
    /// Its receipt's number (after [`SEND_RECEIPT_PREFIX`]).
    receipt: u64,
    frame: Frame,
    done: Reply,
}

/// Something waiting for a RECEIPT other than a send.
enum Waiter {
    Subscribe(Arc<str>, Reply),
    Commit(Reply),
    Other(Reply),
}

/// A subscription as the supervisor keeps it.
struct Sub {
    headers: Headers,
    auto: bool,
    /// Whether copies of acknowledged messages are dropped.
    check_duplicates: bool,
    deliver: mpsc::UnboundedSender<Vec<Message>>,
    /// Messages handled but not yet sent on `deliver` (see `flush_deliveries`).
    gathered: Vec<Message>,
    audit: Audit,
}

struct Supervisor {
    reconnector: Reconnector,
    identity: Identity,
    commands: mpsc::UnboundedReceiver<Command>,
    shared: Arc<Shared>,
    conn: Option<Connection>,
    generation: u64,
    subs: BTreeMap<Arc<str>, Sub>,
    unconfirmed: VecDeque<Unconfirmed>,
    waiting: HashMap<String, Waiter>,
    /// Open transactions and the connection generation they began on.
    txs: HashMap<String, u64>,
    /// Commands that arrived while disconnected.
    queued: VecDeque<Command>,
    producer_id: String,
    next_seq: u64,
    next_receipt: u64,
    /// Warm spare connections (the `backup` option).
    backups: Vec<Connection>,
    clock: Instant,
    /// When the connection was lost (ms on `clock`).
    down_since: u64,
    last_error: Option<ClientError>,
    started: Option<oneshot::Sender<Result<(), ClientError>>>,
    /// Lets delivered messages send their acks here without keeping the
    /// command channel open after the application dropped the client.
    ack_sender: mpsc::WeakUnboundedSender<Command>,
}

impl Supervisor {
    fn now_ms(&self) -> u64 {
        self.clock.elapsed().as_millis() as u64
    }

    async fn run(mut self) {
        // One timer for the client's life: a fresh one per loop would cost a
        // timer-wheel entry per frame.
        let mut tick = tokio::time::interval(MAINTENANCE_TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            if self.conn.is_none() {
                if !self.reconnect_step().await {
                    return;
                }
                if self.conn.is_some() {
                    self.maintain().await;
                }
                continue;
            }
            let conn = self.conn.as_mut().expect("connected");
            tokio::select! {
                frames = conn.frames.recv() => match frames {
                    Some(batch) => {
                        self.on_frames(batch);
                        self.drain_frames();
                        self.flush_deliveries();
                    }
                    None => self.lost(),
                },
                cmd = self.commands.recv() => {
                    let mut next = cmd;
                    let mut budget = DRAIN_BATCH;
                    loop {
                        match next {
                            Some(Command::Close { done }) => {
                                self.close(done).await;
                                return;
                            }
                            Some(c) => self.on_command(c),
                            None => {
                                self.close_quietly().await;
                                return;
                            }
                        }
                        budget -= 1;
                        if budget == 0 || self.conn.is_none() {
                            break;
                        }
                        match self.commands.try_recv() {
                            Ok(c) => next = Some(c),
                            Err(mpsc::error::TryRecvError::Empty) => break,
                            Err(mpsc::error::TryRecvError::Disconnected) => next = None,
                        }
                    }
                }
                _ = tick.tick() => self.maintain().await,
            }
        }
    }

    /// Handles the frames that are already waiting, up to a batch, so one
    /// wake-up serves many.
    fn drain_frames(&mut self) {
        for _ in 1..DRAIN_BATCH {
            let Some(conn) = self.conn.as_mut() else {
                return;
            };
            match conn.frames.try_recv() {
                Ok(batch) => self.on_frames(batch),
                Err(mpsc::error::TryRecvError::Empty) => return,
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    self.lost();
                    return;
                }
            }
        }
    }

    /// One step of getting connected. False when the client is finished.
    async fn reconnect_step(&mut self) -> bool {
        if let Some(c) = self.take_backup() {
            let now = self.now_ms();
            self.reconnector.connect_succeeded(&c.uri, now);
            self.established(c);
            return true;
        }
        let now = self.now_ms();
        match self.reconnector.poll(now) {
            Step::Connect(uri) => {
                match connect(&uri, &self.identity).await {
                    Ok(c) => {
                        self.reconnector.connect_succeeded(&uri, self.now_ms());
                        self.established(c);
                    }
                    Err(e) => {
                        tracing::debug!("{e}");
                        self.reconnector.connect_failed(&uri, self.now_ms());
                        self.last_error = Some(e);
                    }
                }
                true
            }
            Step::WaitUntil(at) => {
                let deadline = self.clock + Duration::from_millis(at);
                let send_deadline = self.next_send_deadline();
                tokio::select! {
                    _ = tokio::time::sleep_until(deadline) => {}
                    _ = tokio::time::sleep_until(send_deadline.unwrap_or(deadline)), if send_deadline.is_some() => {
                        self.expire_queued_sends();
                    }
                    cmd = self.commands.recv() => match cmd {
                        Some(Command::Close { done }) => {
                            self.fail_all(ClientError::Closed);
                            let _ = done.send(Ok(()));
                            return false;
                        }
                        Some(c) => self.on_command(c),
                        None => return false,
                    },
                }
                true
            }
            // Only reported while an attempt is out; this loop awaits each one.
            Step::Idle => true,
            Step::GiveUp(reason) => {
                let err = ClientError::Unreachable(match &self.last_error {
                    Some(e) => format!("{reason}; last error: {e}"),
                    None => reason.to_string(),
                });
                self.fail_all(err);
                false
            }
        }
    }

    /// Backup connections and the return to a priority broker.
    async fn maintain(&mut self) {
        let now = self.now_ms();
        if let Some(uri) = self.reconnector.priority_probe(now) {
            match connect(&uri, &self.identity).await {
                Ok(c) => {
                    self.reconnector.connect_succeeded(&uri, self.now_ms());
                    tracing::info!("back on priority broker {uri}");
                    // Dropping the old connection returns its unacked messages there.
                    self.conn = None;
                    self.established(c);
                }
                Err(_) => self.reconnector.connect_failed(&uri, self.now_ms()),
            }
        }
        self.backups.retain(|b| !b.out.is_closed());
        for uri in self.reconnector.backups_wanted() {
            if self.backups.iter().any(|b| b.uri == uri) {
                continue;
            }
            if let Ok(c) = connect(&uri, &self.identity).await {
                self.backups.push(c);
            }
        }
    }

    fn take_backup(&mut self) -> Option<Connection> {
        while let Some(b) = self.backups.pop() {
            if !b.out.is_closed() {
                return Some(b);
            }
        }
        None
    }

    fn established(&mut self, conn: Connection) {
        self.generation += 1;
        self.shared
            .generation
            .store(self.generation, Ordering::SeqCst);
        let advertised = conn
            .connected
            .header(CLUSTER_HEADER)
            .unwrap_or_default()
            .to_owned();
        self.update_brokers(&advertised);
        {
            let mut st = self.shared.status.lock();
            st.connected_to = Some(conn.uri.to_string());
            st.connections += 1;
            st.broker_name = conn.connected.header(BROKER_NAME_HEADER).map(str::to_owned);
            st.store_name = conn.connected.header(STORE_NAME_HEADER).map(str::to_owned);
        }
        for sub in self.subs.values() {
            let mut f = Frame::new(StompCommand::Subscribe);
            f.headers = sub.headers.clone();
            let _ = conn.out.send(f);
        }
        for u in &self.unconfirmed {
            let _ = conn.out.send(u.frame.clone());
        }
        self.conn = Some(conn);
        if let Some(started) = self.started.take() {
            let _ = started.send(Ok(()));
        }
        while let Some(c) = self.queued.pop_front() {
            self.on_command(c);
            if self.conn.is_none() {
                break;
            }
        }
    }

    fn lost(&mut self) {
        tracing::info!("connection lost; failing over");
        self.conn = None;
        self.shared.status.lock().connected_to = None;
        let now = self.now_ms();
        self.reconnector.disconnected(now);
        self.down_since = now;
        for (_, w) in self.waiting.drain() {
            match w {
                // Restored (subscriptions) or moot (acks: the audit drops the redelivery).
                Waiter::Subscribe(_, done) | Waiter::Other(done) => {
                    let _ = done.send(Ok(()));
                }
                Waiter::Commit(done) => {
                    let _ = done.send(Err(ClientError::Broker(
                        "connection lost while committing: outcome unknown".into(),
                    )));
                }
            }
        }
    }

    fn update_brokers(&mut self, list: &str) {
        let uris: Vec<BrokerUri> = list
            .split(',')
            .filter_map(|u| u.trim().parse().ok())
            .collect();
        if !uris.is_empty() {
            self.reconnector.update_uris(uris);
        }
        self.shared.status.lock().brokers = self
            .reconnector
            .brokers()
            .iter()
            .map(ToString::to_string)
            .collect();
    }

    fn write(&mut self, frame: Frame) {
        if let Some(c) = &self.conn {
            let _ = c.out.send(frame);
        }
    }

    fn receipt(&mut self, prefix: &str) -> String {
        self.next_receipt += 1;
        format!("{prefix}-{}", self.next_receipt)
    }

    fn on_command(&mut self, cmd: Command) {
        if self.conn.is_none() {
            if let Command::Send {
                done, queued_at, ..
            } = &cmd
            {
                let waited = queued_at.elapsed().as_millis() as u64;
                if self
                    .reconnector
                    .send_deadline(0)
                    .is_some_and(|d| waited >= d)
                {
                    if let Command::Send { done, .. } = cmd {
                        let _ = done.send(Err(ClientError::SendTimeout(waited)));
                    }
                    return;
                }
                let _ = done;
            }
            self.queued.push_back(cmd);
            return;
        }
        match cmd {
            Command::Send {
                mut frame,
                tx,
                producer,
                done,
                ..
            } => {
                if let Some(tx) = &tx {
                    if self.txs.get(tx) != Some(&self.generation) {
                        let _ = done.send(Err(ClientError::TransactionRolledBack(tx.clone())));
                        return;
                    }
                    frame.push_header("transaction", tx.clone());
                }
                let (producer_id, seq) = match &producer {
                    Some((id, seq)) => (&**id, *seq),
                    None => {
                        self.next_seq += 1;
                        (self.producer_id.as_str(), self.next_seq - 1)
                    }
                };
                frame.push_header(PRODUCER_HEADER, producer_id);
                frame.push_header(PRODUCER_SEQ_HEADER, itoa::Buffer::new().format(seq));
                if tx.is_some() {
                    let receipt = self.receipt("send");
                    frame.push_header("receipt", &receipt);
                    self.write(frame);
                    self.waiting.insert(receipt, Waiter::Other(done));
                } else {
                    // Numbered: matched on every RECEIPT by its number, not by a string
                    // kept for it.
                    self.next_receipt += 1;
                    let receipt = self.next_receipt;
                    frame.push_header("receipt", format!("{SEND_RECEIPT_PREFIX}{receipt}"));
                    self.write(frame.clone());
                    self.unconfirmed.push_back(Unconfirmed {
                        receipt,
                        frame,
                        done,
                    });
                }
            }
            Command::Subscribe {
                id,
                headers,
                auto,
                audit,
                deliver,
                done,
            } => {
                let receipt = self.receipt("sub");
                let mut f = Frame::new(StompCommand::Subscribe);
                f.headers = headers.clone();
                f.push_header("receipt", receipt.clone());
                self.subs.insert(
                    Arc::clone(&id),
                    Sub {
                        headers,
                        auto,
                        check_duplicates: audit,
                        deliver,
                        gathered: Vec::new(),
                        audit: Audit::default(),
                    },
                );
                self.write(f);
                self.waiting.insert(receipt, Waiter::Subscribe(id, done));
            }
            Command::Unsubscribe { id, durable, done } => {
                self.subs.remove(&id);
                let receipt = self.receipt("unsub");
                let mut f = Frame::new(StompCommand::Unsubscribe)
                    .with_header("id", &id)
                    .with_header("receipt", receipt.clone());
                if let Some(d) = durable {
                    f.push_header("activemq.subscriptionName", d);
                }
                self.write(f);
                self.waiting.insert(receipt, Waiter::Other(done));
            }
            Command::Ack {
                ack,
                generation,
                subscription,
                id,
                key,
                tx,
                done,
            } => {
                if let (true, Some(key), Some(sub)) = (ack, key, self.subs.get_mut(&subscription)) {
                    if sub.check_duplicates {
                        sub.audit.insert(key);
                    }
                }
                if generation != self.generation {
                    // Delivered on a connection that failed: the broker will
                    // deliver it again, and the audit drops that copy.
                    if let Some(done) = done {
                        let _ = done.send(Ok(()));
                    }
                    return;
                }
                let mut f = Frame::new(if ack {
                    StompCommand::Ack
                } else {
                    StompCommand::Nack
                });
                // One of these per message consumed: sized once, never regrown.
                f.headers = Headers::with_capacity(5, 2 * id.len() + subscription.len() + 96);
                f.push_header("id", &id);
                f.push_header("message-id", &id);
                f.push_header("subscription", &subscription);
                if let Some(tx) = tx {
                    f.push_header("transaction", tx);
                }
                if let Some(done) = done {
                    let receipt = self.receipt("ack");
                    f.push_header("receipt", &receipt);
                    self.waiting.insert(receipt, Waiter::Other(done));
                }
                self.write(f);
            }
            Command::Begin { tx, done } => {
                self.txs.insert(tx.clone(), self.generation);
                let receipt = self.receipt("begin");
                self.write(
                    Frame::new(StompCommand::Begin)
                        .with_header("transaction", tx)
                        .with_header("receipt", receipt.clone()),
                );
                self.waiting.insert(receipt, Waiter::Other(done));
            }
            Command::Commit { tx, done } | Command::Abort { tx, done }
                if self.txs.get(&tx) != Some(&self.generation) =>
            {
                self.txs.remove(&tx);
                let _ = done.send(Err(ClientError::TransactionRolledBack(tx)));
            }
            Command::Commit { tx, done } => {
                self.txs.remove(&tx);
                let receipt = self.receipt("commit");
                self.write(
                    Frame::new(StompCommand::Commit)
                        .with_header("transaction", tx)
                        .with_header("receipt", receipt.clone()),
                );
                self.waiting.insert(receipt, Waiter::Commit(done));
            }
            Command::Abort { tx, done } => {
                self.txs.remove(&tx);
                let receipt = self.receipt("abort");
                self.write(
                    Frame::new(StompCommand::Abort)
                        .with_header("transaction", tx)
                        .with_header("receipt", receipt.clone()),
                );
                self.waiting.insert(receipt, Waiter::Other(done));
            }
            Command::Close { done } => {
                // Handled by the loop; reaching here means a queued close.
                let _ = done.send(Ok(()));
            }
        }
    }

    /// Handles one read's frames in order; the rest of a batch is dropped if one of
    /// them ended the connection (an ERROR), as the socket's later bytes would be.
    fn on_frames(&mut self, batch: Vec<Frame>) {
        for frame in batch {
            if self.conn.is_none() {
                return;
            }
            self.on_frame(frame);
        }
    }

    /// Hands every subscription the messages gathered for it since the last flush, in
    /// one channel send each.
    fn flush_deliveries(&mut self) {
        for sub in self.subs.values_mut() {
            if !sub.gathered.is_empty() {
                let _ = sub.deliver.send(std::mem::take(&mut sub.gathered));
            }
        }
    }

    fn on_frame(&mut self, frame: Frame) {
        match frame.command {
            StompCommand::Receipt => {
                let Some(id) = frame.header("receipt-id") else {
                    return;
                };
                if let Some(pos) = self.unconfirmed_index(id) {
                    let u = self.unconfirmed.remove(pos).expect("position found");
                    let _ = u.done.send(Ok(()));
                } else if let Some(w) = self.waiting.remove(id) {
                    match w {
                        Waiter::Subscribe(_, done) | Waiter::Commit(done) | Waiter::Other(done) => {
                            let _ = done.send(Ok(()));
                        }
                    }
                }
            }
            StompCommand::Message => self.on_message(frame),
            StompCommand::Error => {
                let message = frame.header("message").unwrap_or("ERROR").to_owned();
                tracing::warn!("broker error: {message}");
                let err = ClientError::Broker(message);
                if let Some(id) = frame.header("receipt-id") {
                    if let Some(pos) = self.unconfirmed_index(id) {
                        // Refused for good: resending would only be refused again.
                        let u = self.unconfirmed.remove(pos).expect("position found");
                        let _ = u.done.send(Err(err));
                    } else if let Some(w) = self.waiting.remove(id) {
                        match w {
                            Waiter::Subscribe(sub, done) => {
                                self.subs.remove(&sub);
                                let _ = done.send(Err(err));
                            }
                            Waiter::Commit(done) | Waiter::Other(done) => {
                                let _ = done.send(Err(err));
                            }
                        }
                    }
                }
                // The broker closes the connection after an ERROR.
                self.conn = None;
                self.lost();
            }
            _ => {}
        }
    }

    fn on_message(&mut self, frame: Frame) {
        let Some(sub_id) = frame.header("subscription") else {
            return;
        };
        if sub_id == CLUSTER_SUBSCRIPTION {
            if let Some(list) = frame.header(CLUSTER_HEADER) {
                let list = list.to_owned();
                self.update_brokers(&list);
            }
            return;
        }
        let Some((id, _)) = self.subs.get_key_value(sub_id) else {
            return;
        };
        let id = Arc::clone(id);
        let commands = self.command_sender();
        let generation = self.generation;
        let sub = self.subs.get_mut(&id).expect("just found");
        let key = if sub.check_duplicates {
            sub.audit.key_of(&frame.headers)
        } else {
            None
        };
        if let Some(k) = &key {
            if sub.audit.contains(k) {
                // A copy of a message the application already acknowledged.
                if !sub.auto {
                    let ack_id = frame
                        .header("ack")
                        .or(frame.header("message-id"))
                        .unwrap_or_default();
                    let f = Frame::new(StompCommand::Ack)
                        .with_header("id", ack_id)
                        .with_header("message-id", ack_id)
                        .with_header("subscription", &id);
                    if let Some(c) = &self.conn {
                        let _ = c.out.send(f);
                    }
                }
                return;
            }
            if sub.auto {
                sub.audit.insert(k.clone());
            }
        }
        let Some(commands) = commands else {
            return;
        };
        // Sent on by `flush_deliveries` once the frames at hand are handled.
        sub.gathered.push(Message {
            headers: frame.headers,
            body: frame.body,
            key,
            generation,
            commands,
            subscription: id,
        });
    }

    async fn close(&mut self, done: Reply) {
        let receipt = self.receipt("bye");
        self.write(Frame::new(StompCommand::Disconnect).with_header("receipt", receipt.clone()));
        let deadline = Instant::now() + CLOSE_TIMEOUT;
        if let Some(conn) = self.conn.as_mut() {
            'wait: while let Ok(Some(batch)) =
                tokio::time::timeout_at(deadline, conn.frames.recv()).await
            {
                for f in batch {
                    if f.command == StompCommand::Receipt
                        && f.header("receipt-id") == Some(&receipt)
                    {
                        break 'wait;
                    }
                }
            }
        }
        self.fail_all(ClientError::Closed);
        let _ = done.send(Ok(()));
    }

    async fn close_quietly(&mut self) {
        self.write(Frame::new(StompCommand::Disconnect));
        self.fail_all(ClientError::Closed);
    }

    fn fail_all(&mut self, err: ClientError) {
        if let Some(started) = self.started.take() {
            let _ = started.send(Err(err.clone()));
        }
        for u in self.unconfirmed.drain(..) {
            let _ = u.done.send(Err(err.clone()));
        }
        for (_, w) in self.waiting.drain() {
            match w {
                Waiter::Subscribe(_, done) | Waiter::Commit(done) | Waiter::Other(done) => {
                    let _ = done.send(Err(err.clone()));
                }
            }
        }
        for c in self.queued.drain(..) {
            reply_err(c, err.clone());
        }
        self.subs.clear();
        self.conn = None;
    }

    fn next_send_deadline(&self) -> Option<Instant> {
        let timeout = self.reconnector.send_deadline(0)?;
        self.queued
            .iter()
            .filter_map(|c| match c {
                Command::Send { queued_at, .. } => {
                    Some(*queued_at + Duration::from_millis(timeout))
                }
                _ => None,
            })
            .min()
    }

    fn expire_queued_sends(&mut self) {
        let Some(timeout) = self.reconnector.send_deadline(0) else {
            return;
        };
        let mut keep = VecDeque::new();
        for c in self.queued.drain(..) {
            match c {
                Command::Send {
                    done, queued_at, ..
                } if queued_at.elapsed() >= Duration::from_millis(timeout) => {
                    let _ = done.send(Err(ClientError::SendTimeout(timeout)));
                }
                other => keep.push_back(other),
            }
        }
        self.queued = keep;
    }

    /// Where the send a receipt id confirms is among the unconfirmed ones. Receipts
    /// come back in send order, so it is nearly always the first.
    fn unconfirmed_index(&self, receipt_id: &str) -> Option<usize> {
        let n: u64 = receipt_id.strip_prefix(SEND_RECEIPT_PREFIX)?.parse().ok()?;
        if self.unconfirmed.front().is_some_and(|u| u.receipt == n) {
            return Some(0);
        }
        self.unconfirmed.iter().position(|u| u.receipt == n)
    }

    /// The channel messages use to send acks back, while the client lives.
    fn command_sender(&self) -> Option<mpsc::UnboundedSender<Command>> {
        self.ack_sender.upgrade()
    }
}

fn reply_err(c: Command, err: ClientError) {
    let done = match c {
        Command::Ack { done: None, .. } => return,
        Command::Ack {
            done: Some(done), ..
        }
        | Command::Send { done, .. }
        | Command::Subscribe { done, .. }
        | Command::Unsubscribe { done, .. }
        | Command::Begin { done, .. }
        | Command::Commit { done, .. }
        | Command::Abort { done, .. }
        | Command::Close { done } => done,
    };
    let _ = done.send(Err(err));
}
