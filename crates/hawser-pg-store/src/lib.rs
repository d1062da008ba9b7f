//! The broker's store in PostgreSQL (`[store] kind = "postgres"`).
//!
//! The engine appends records in the order it decides; a writer task takes
//! every record queued meanwhile into one transaction (group commit across
//! producers and consumers, `batch`), and the durability watermark passes
//! them only once that transaction committed. Each transaction first
//! renews this broker's epoch in `hawser_lease`: once another broker took
//! the store over (a higher epoch), nothing more is written, confirmed or
//! acknowledged here. A fence, not only a lock.
//!
//! Following the database's failover: when the writer's connection breaks
//! (the primary died), nothing is confirmed while the writer reconnects
//! through the host list to whichever server now takes writes (a promoted
//! standby). There, in one transaction, it checks the lease row: still
//! this broker's epoch (else another broker took over: the store stops),
//! and the number of the last committed batch, which every write
//! transaction sets (`hawser_lease.batch`). That number says whether the
//! batch in flight committed before the break (then it is confirmed) or not
//! (then it is written again); a number further behind means the database
//! lost transactions it had committed (a standby promoted behind its
//! primary, asynchronous replication), and the store stops rather than go
//! on from a state the engine does not have. A producer is either
//! confirmed or gets an error, never confirmed and lost by this broker.
//!
//! Reads (paging a backlog larger than memory, recovery's held messages)
//! go on a connection of their own, after the records appended before them
//! are committed (rows not committed are not visible), and to a standby
//! that has replayed them if the URL says `prefer-standby` (`reader`).

mod batch;
pub mod lease;
mod reader;
mod recovery;
pub mod schema;

pub use lease::{PgElection, PgLeaseSettings, PgMastership};

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use hawser_broker::message::estimate_bytes;
use hawser_broker::store_codec::decode_record;
use hawser_broker::{
    store::{ReadFuture, ReadLimit, StoredMessage},
    Durability, DurabilityWatch, MessageData, MessageId, Recovered, Seq, Store, StoreError,
    StoreKey, StoreOp,
};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::{mpsc, watch};
use tokio_postgres::config::TargetSessionAttrs;
use tokio_postgres::{Client, Config, NoTls};
use tokio_util::sync::CancellationToken;

/// Records queued beyond this many bytes hold producers (`writes_behind`):
/// the database is behind.
pub const MAX_QUEUED_BYTES: u64 = 64 << 20;
/// Most records in one transaction.
pub const MAX_BATCH_RECORDS: usize = 4096;
/// Longest wait between attempts to reach a read-write database after the
/// writer's connection broke (it starts at a tenth of a second and doubles).
pub const MAX_RECONNECT_DELAY: Duration = Duration::from_secs(1);
/// How long one connection attempt to one host may take, unless the
/// connection string says (`connect_timeout`): a host that does not answer
/// must not hold up the next one in the list.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A check before each confirmation that does not come from a COMMIT
/// (a mastership's fence): `Err(reason)` once this broker is not master.
pub type ConfirmCheck = Arc<dyn Fn() -> Result<(), String> + Send + Sync>;

/// How to reach the database.
#[derive(Clone)]
pub struct PgStoreConfig {
    /// A libpq connection string or URL; several hosts as libpq lists them
    /// (`host=a,b port=5432,5433 target_session_attrs=read-write`).
    pub url: String,
    /// This broker's name in the lease row.
    pub node: String,
    /// The epoch this broker holds the lease in ([`PgElection`]); `None`:
    /// a broker alone takes the store over with the next epoch.
    pub epoch: Option<i64>,
    /// The mastership's fence, asked by `check_confirmable`.
    pub confirm_check: Option<ConfirmCheck>,
}

/// Why the store could not open.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// Connecting or a statement failed.
    #[error("postgres: {0}")]
    Database(#[from] tokio_postgres::Error),
    /// The schema could not be made.
    #[error("postgres schema: {0}")]
    Schema(#[from] schema::SchemaError),
    /// A stored row did not decode.
    #[error("postgres store: {0}")]
    Corrupt(String),
    /// Another broker took the lease meanwhile.
    #[error("postgres store: another broker holds the lease (epoch {0})")]
    Fenced(i64),
}

/// The connection string as the store uses it: the server wanted is
/// `attrs`, whatever the string says (so that a host list finds the primary,
/// or a standby), and each host gets a connect timeout.
pub(crate) fn target(
    url: &str,
    attrs: TargetSessionAttrs,
) -> Result<Config, tokio_postgres::Error> {
    let mut config: Config = reader::split_prefer_standby(url).0.parse()?;
    config.target_session_attrs(attrs);
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(DEFAULT_CONNECT_TIMEOUT);
    }
    Ok(config)
}

/// The connection string for writes: a read-write server.
pub(crate) fn read_write(url: &str) -> Result<Config, tokio_postgres::Error> {
    target(url, TargetSessionAttrs::ReadWrite)
}

/// Whether an error means the connection (or its server) went, rather than
/// that a statement was wrong: the writer then reconnects through the host
/// list. A closed connection or a socket error; or the server's SQLSTATE:
/// class 08 is a connection exception, 57P0x a server shutting down or
/// starting, 25006 a server that takes no writes (a primary turned
/// standby), 53300 too many connections. Anything else (a statement the
/// server refused, a value that would not encode) is not cured by another
/// server.
fn connection_lost(e: &tokio_postgres::Error) -> bool {
    use std::error::Error as _;
    match e.as_db_error() {
        None => {
            e.is_closed()
                || e.source()
                    .is_some_and(|s| s.downcast_ref::<std::io::Error>().is_some())
        }
        Some(db) => {
            let code = db.code().code();
            code.starts_with("08") || code.starts_with("57P") || code == "25006" || code == "53300"
        }
    }
}

/// A record queued for the writer.
struct Queued {
    seq: Seq,
    ops: Vec<StoreOp<MessageData>>,
    bytes: u64,
}

struct Shared {
    durability: watch::Sender<Durability>,
    /// Appended so far (the last sequence handed out), and the queue.
    appender: Mutex<(Seq, Option<mpsc::UnboundedSender<Queued>>)>,
    queued_bytes: AtomicU64,
    /// Bytes of messages written, less those deleted (an estimate).
    live_bytes: AtomicU64,
    fenced: AtomicBool,
    confirm_check: Option<ConfirmCheck>,
    /// Cancelled by `close`: a writer waiting for the database gives up.
    closed: CancellationToken,
}

/// PostgreSQL as the broker's store.
pub struct PgStore {
    shared: Arc<Shared>,
    reader: Arc<reader::Reader>,
    /// The store's name, kept in the database.
    name: String,
}

impl PgStore {
    /// Connects, makes the schema, takes the store over (a new epoch:
    /// whoever wrote before is fenced), drops what was spilled there, and
    /// recovers the engine's state. Must run inside a Tokio runtime.
    ///
    /// # Errors
    /// If the database cannot be reached or holds what this build cannot read.
    pub async fn open(config: PgStoreConfig) -> Result<(PgStore, Recovered), OpenError> {
        let target = read_write(&config.url)?;
        let mut writer = connect(&target).await?;
        schema::migrate(&mut writer).await?;
        let reader = reader::Reader::new(&config.url, connect(&target).await?)?;
        let recovery::TakenOver {
            epoch,
            batch,
            recovered,
            live_bytes: live,
            name,
        } = recovery::take_over(&mut writer, &config.node, config.epoch).await?;
        tracing::info!(
            epoch,
            pending = recovered.pending_total(),
            "postgres store: taken over"
        );
        let (durability, _) = watch::channel(Durability::default());
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            durability,
            appender: Mutex::new((0, Some(tx))),
            queued_bytes: AtomicU64::new(0),
            live_bytes: AtomicU64::new(live),
            fenced: AtomicBool::new(false),
            confirm_check: config.confirm_check.clone(),
            closed: CancellationToken::new(),
        });
        let writer = Writer {
            target,
            client: Some(writer),
            epoch,
            batch,
            windows: batch::Windows::new(),
        };
        tokio::spawn(write_loop(writer, rx, Arc::clone(&shared)));
        Ok((
            PgStore {
                shared,
                reader: Arc::new(reader),
                name,
            },
            recovered,
        ))
    }
}

/// Connects (the first host of the list that suits), and runs the
/// connection on the runtime.
pub(crate) async fn connect(target: &Config) -> Result<Client, tokio_postgres::Error> {
    let (client, connection) = target.connect(NoTls).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!("postgres store: connection: {e}");
        }
    });
    Ok(client)
}

/// Connects to the server of `url`'s host list that takes writes.
pub(crate) async fn connect_read_write(url: &str) -> Result<Client, tokio_postgres::Error> {
    connect(&read_write(url)?).await
}

/// The writer task's connection and what it knows of the database.
struct Writer {
    target: Config,
    /// `None` while the database cannot be reached.
    client: Option<Client>,
    epoch: i64,
    /// The number of the last batch known committed (`hawser_lease.batch`).
    batch: i64,
    windows: batch::Windows,
}

/// The writer: one transaction per batch of queued records.
async fn write_loop(
    mut writer: Writer,
    mut rx: mpsc::UnboundedReceiver<Queued>,
    shared: Arc<Shared>,
) {
    while let Some(first) = rx.recv().await {
        let mut last = first.seq;
        let mut bytes = first.bytes;
        let mut records = vec![first.ops];
        while records.len() < MAX_BATCH_RECORDS {
            match rx.try_recv() {
                Ok(q) => {
                    last = q.seq;
                    bytes += q.bytes;
                    records.push(q.ops);
                }
                Err(_) => break,
            }
        }
        let result = writer.commit(&records, &shared.closed).await;
        shared.queued_bytes.fetch_sub(bytes, Ordering::Relaxed);
        match result {
            Ok(()) => {
                shared.durability.send_modify(|d| d.seq = last);
            }
            Err(e) => {
                // Nothing more is confirmed here, and whoever serves the
                // store next reads what the database has.
                if matches!(e, WriteError::Fenced) {
                    shared.fenced.store(true, Ordering::SeqCst);
                }
                tracing::error!("postgres store: {e}; the store stops");
                // Refuses appends before anyone hears of the failure.
                shared.appender.lock().1 = None;
                shared
                    .durability
                    .send_modify(|d| d.failed = Some(Arc::from(e.to_string())));
                return;
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum WriteError {
    #[error("another broker took the store over (a higher epoch in hawser_lease)")]
    Fenced,
    #[error(
        "the database lost {} committed transaction(s) of this store (its last is batch {found}, \
         this broker committed up to {committed}): a standby was promoted behind its primary \
         (asynchronous replication), and messages confirmed in them are lost",
        committed - found
    )]
    Lost { found: i64, committed: i64 },
    #[error("the store closed while the database could not be reached")]
    Closed,
    #[error("write failed: {0}")]
    Database(#[from] tokio_postgres::Error),
}

/// Whether the batch in flight when the connection broke committed.
enum InFlight {
    Committed,
    NotCommitted,
}

impl Writer {
    /// Commits one batch, through as many database failovers as it takes:
    /// `Ok` only once it is known committed.
    async fn commit(
        &mut self,
        records: &[Vec<StoreOp<MessageData>>],
        closed: &CancellationToken,
    ) -> Result<(), WriteError> {
        let number = self.batch + 1;
        loop {
            if let Some(client) = &mut self.client {
                match write_batch(client, self.epoch, number, records, &mut self.windows).await {
                    Ok(()) => {
                        self.batch = number;
                        return Ok(());
                    }
                    Err(WriteError::Database(e)) if connection_lost(&e) => {
                        tracing::warn!(
                            "postgres store: the connection broke ({e}); reconnecting through \
                             the host list, confirming nothing meanwhile"
                        );
                        self.client = None;
                    }
                    Err(e) => return Err(e),
                }
            }
            let broke = Instant::now();
            match self.reconnect(number, closed).await? {
                InFlight::Committed => {
                    tracing::info!(
                        outage_ms = broke.elapsed().as_millis() as u64,
                        "postgres store: back on a read-write server; batch {number} had committed"
                    );
                    self.batch = number;
                    return Ok(());
                }
                InFlight::NotCommitted => {
                    tracing::info!(
                        outage_ms = broke.elapsed().as_millis() as u64,
                        "postgres store: back on a read-write server; batch {number} had not \
                         committed and is written again"
                    );
                }
            }
        }
    }

    /// Connects to whichever host takes writes now, and finds out there
    /// whether batch `number` committed, renewing the lease on that server.
    async fn reconnect(
        &mut self,
        number: i64,
        closed: &CancellationToken,
    ) -> Result<InFlight, WriteError> {
        let mut delay = Duration::from_millis(100);
        loop {
            tokio::select! {
                _ = closed.cancelled() => return Err(WriteError::Closed),
                _ = tokio::time::sleep(delay) => {}
            }
            delay = (delay * 2).min(MAX_RECONNECT_DELAY);
            let mut client = match connect(&self.target).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::debug!("postgres store: no read-write server yet: {e}");
                    continue;
                }
            };
            match resolve(&mut client, self.epoch, number).await {
                Ok(found) => {
                    self.client = Some(client);
                    return Ok(found);
                }
                Err(WriteError::Database(e)) if connection_lost(&e) => {
                    tracing::debug!("postgres store: lost the server again: {e}");
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// In one transaction on a fresh connection: the lease row still in
/// `epoch` (renewed on this server), and where its batch number stands
/// against batch `number`, the one in flight.
async fn resolve(client: &mut Client, epoch: i64, number: i64) -> Result<InFlight, WriteError> {
    let tx = client.transaction().await?;
    let row = tx
        .query_opt(
            "SELECT epoch, batch FROM hawser_lease WHERE id = 1 FOR UPDATE",
            &[],
        )
        .await?;
    let Some(row) = row else {
        return Err(WriteError::Fenced);
    };
    let (now, found): (i64, i64) = (row.get(0), row.get(1));
    if now != epoch {
        return Err(WriteError::Fenced);
    }
    let outcome = match number - found {
        0 => InFlight::Committed,
        1 => InFlight::NotCommitted,
        _ => {
            return Err(WriteError::Lost {
                found,
                committed: number - 1,
            })
        }
    };
    tx.execute("UPDATE hawser_lease SET renewed = now() WHERE id = 1", &[])
        .await?;
    tx.commit().await?;
    Ok(outcome)
}

async fn write_batch(
    client: &mut Client,
    epoch: i64,
    number: i64,
    records: &[Vec<StoreOp<MessageData>>],
    windows: &mut batch::Windows,
) -> Result<(), WriteError> {
    let tx = client.transaction().await?;
    // The fence: the row stays locked until this commits, so a broker
    // taking over waits for it, and this one writes nothing after that.
    // The batch number chains the transactions: each follows the last one
    // this broker committed, or finds that the database lost it.
    let renewed = tx
        .execute(
            "UPDATE hawser_lease SET renewed = now(), batch = $2 \
             WHERE id = 1 AND epoch = $1 AND batch = $3",
            &[&epoch, &number, &(number - 1)],
        )
        .await?;
    if renewed == 0 {
        let row = tx
            .query_opt("SELECT epoch, batch FROM hawser_lease WHERE id = 1", &[])
            .await?;
        return Err(
            match row.map(|r| (r.get::<_, i64>(0), r.get::<_, i64>(1))) {
                Some((now, found)) if now == epoch => WriteError::Lost {
                    found,
                    committed: number - 1,
                },
                _ => WriteError::Fenced,
            },
        );
    }
    batch::write(&tx, records, windows).await?;
    tx.commit().await?;
    Ok(())
}

impl PgStore {
    /// The store's name, made once and kept in the database: message ids
    /// are unique within it.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Store for PgStore {
    fn append(&self, ops: Vec<StoreOp>, _sync: bool) -> Result<Seq, StoreError> {
        let ops: Vec<StoreOp<MessageData>> = ops.iter().map(StoreOp::to_data).collect();
        // Message bodies (the store's size), and those with a rough cost
        // per record (what the queue to the writer holds).
        let bodies: u64 = ops
            .iter()
            .map(|op| match op {
                StoreOp::Enqueue { message, .. } => message.body.len() as u64,
                _ => 0,
            })
            .sum();
        let bytes = bodies + 64 * ops.len() as u64;
        let mut appender = self.shared.appender.lock();
        let Some(tx) = &appender.1 else {
            return Err(match &self.shared.durability.borrow().failed {
                Some(reason) => StoreError::Failed(reason.to_string()),
                None => StoreError::Closed,
            });
        };
        let seq = appender.0 + 1;
        self.shared.live_bytes.fetch_add(bodies, Ordering::Relaxed);
        self.shared.queued_bytes.fetch_add(bytes, Ordering::Relaxed);
        if tx.send(Queued { seq, ops, bytes }).is_err() {
            return Err(StoreError::Closed);
        }
        appender.0 = seq;
        Ok(seq)
    }

    fn durability(&self) -> DurabilityWatch {
        self.shared.durability.subscribe()
    }

    fn disk_bytes(&self) -> u64 {
        self.shared.live_bytes.load(Ordering::Relaxed)
    }

    fn writes_behind(&self) -> bool {
        self.shared.queued_bytes.load(Ordering::Relaxed) > MAX_QUEUED_BYTES
    }

    fn check_confirmable(&self) -> Result<(), StoreError> {
        if let Some(check) = &self.shared.confirm_check {
            check().map_err(StoreError::Failed)?;
        }
        if self.shared.fenced.load(Ordering::SeqCst) {
            return Err(StoreError::Failed(
                "fenced: another broker took the store over".into(),
            ));
        }
        match &self.shared.durability.borrow().failed {
            Some(reason) => Err(StoreError::Failed(reason.to_string())),
            None => Ok(()),
        }
    }

    fn pages(&self) -> bool {
        true
    }

    fn read(&self, key: &StoreKey, priority: u8, after: MessageId, limit: ReadLimit) -> ReadFuture {
        let appended = self.shared.appender.lock().0;
        let mut durable = self.shared.durability.subscribe();
        let reader = Arc::clone(&self.reader);
        let key = batch::key_bytes(key);
        Box::pin(async move {
            // What was appended before this read is committed first.
            hawser_broker::store::wait_durable(&mut durable, appended).await?;
            let rows = reader
                .page(
                    &key,
                    i16::from(priority),
                    after as i64,
                    limit.messages.min(i64::MAX as usize) as i64,
                )
                .await
                .map_err(|e| StoreError::Failed(format!("postgres read: {e}")))?;
            let mut out: Vec<StoredMessage> = Vec::with_capacity(rows.len());
            let mut bytes = 0u64;
            for row in rows {
                if !out.is_empty() && bytes >= limit.bytes {
                    break;
                }
                let redeliveries: i32 = row.get(0);
                let data: &[u8] = row.get(1);
                let message = decode_message(data).map_err(StoreError::Failed)?;
                bytes += estimate_bytes(&message.fields, &message.body);
                out.push((message, redeliveries.max(0) as u32));
            }
            Ok(out)
        })
    }

    fn close(&self) {
        // The writer finishes what is queued, then ends with the channel
        // (or at once, if it is waiting for the database).
        self.shared.appender.lock().1 = None;
        self.shared.closed.cancel();
        let standby = self.reader.standby_reads();
        if standby > 0 {
            tracing::info!("postgres store: {standby} reads served by a standby");
        }
    }
}

/// A message row's bytes: one `Enqueue` in the record format.
fn decode_message(data: &[u8]) -> Result<MessageData, String> {
    let ops = decode_record(&bytes::Bytes::copy_from_slice(data))
        .map_err(|e| format!("a stored message does not decode: {e}"))?;
    match <[_; 1]>::try_from(ops) {
        Ok([StoreOp::Enqueue { message, .. }]) => Ok(message),
        _ => Err("a stored message row is not one message".into()),
    }
}
