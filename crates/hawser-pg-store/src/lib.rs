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
//! A COMMIT whose outcome is unknown (the connection broke under it) fails
//! the store: nothing after it is confirmed, and the broker that serves the
//! store next (this one restarted, or its slave) recovers what the database
//! has. A producer is either confirmed or gets an error.
//!
//! Reads (paging a backlog larger than memory, recovery's held messages)
//! go on a connection of their own, after the records appended before them
//! are committed (rows not committed are not visible).

mod batch;
pub mod lease;
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
use parking_lot::Mutex;
use tokio::sync::{mpsc, watch};
use tokio_postgres::{Client, NoTls};

/// Records queued beyond this many bytes hold producers (`writes_behind`):
/// the database is behind.
pub const MAX_QUEUED_BYTES: u64 = 64 << 20;
/// Most records in one transaction.
pub const MAX_BATCH_RECORDS: usize = 4096;

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
}

/// PostgreSQL as the broker's store.
pub struct PgStore {
    shared: Arc<Shared>,
    reader: Arc<Client>,
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
        let mut writer = connect(&config.url).await?;
        schema::migrate(&mut writer).await?;
        let reader = connect(&config.url).await?;
        let recovery::TakenOver {
            epoch,
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
        });
        tokio::spawn(write_loop(writer, epoch, rx, Arc::clone(&shared)));
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

/// Connects, and runs the connection on the runtime.
pub(crate) async fn connect(url: &str) -> Result<Client, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!("postgres store: connection: {e}");
        }
    });
    Ok(client)
}

/// The writer: one transaction per batch of queued records.
async fn write_loop(
    mut client: Client,
    epoch: i64,
    mut rx: mpsc::UnboundedReceiver<Queued>,
    shared: Arc<Shared>,
) {
    let mut windows = batch::Windows::new();
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
        let result = write_batch(&mut client, epoch, records, &mut windows).await;
        shared.queued_bytes.fetch_sub(bytes, Ordering::Relaxed);
        match result {
            Ok(()) => {
                shared.durability.send_modify(|d| d.seq = last);
            }
            Err(e) => {
                // Committed or not, nobody knows: nothing more is confirmed
                // here, and whoever serves the store next reads what is there.
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
    #[error("write failed: {0}")]
    Database(#[from] tokio_postgres::Error),
}

async fn write_batch(
    client: &mut Client,
    epoch: i64,
    records: Vec<Vec<StoreOp<MessageData>>>,
    windows: &mut batch::Windows,
) -> Result<(), WriteError> {
    let tx = client.transaction().await?;
    // The fence: the row stays locked until this commits, so a broker
    // taking over waits for it, and this one writes nothing after that.
    let renewed = tx
        .execute(
            "UPDATE hawser_lease SET renewed = now() WHERE id = 1 AND epoch = $1",
            &[&epoch],
        )
        .await?;
    if renewed == 0 {
        return Err(WriteError::Fenced);
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
                .query(
                    "SELECT e.redeliveries, m.data FROM hawser_entries e \
                     JOIN hawser_messages m ON m.id = e.id \
                     WHERE e.container = $1 AND e.priority = $2 AND e.id > $3 \
                     ORDER BY e.id LIMIT $4",
                    &[
                        &key,
                        &i16::from(priority),
                        &(after as i64),
                        &(limit.messages.min(i64::MAX as usize) as i64),
                    ],
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
        // The writer finishes what is queued, then ends with the channel.
        self.shared.appender.lock().1 = None;
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
