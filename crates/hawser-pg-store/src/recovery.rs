//! Taking the store over when a broker opens it: a new epoch in the lease
//! row (fencing whoever wrote before), spilled messages dropped, and what
//! the engine resumes from read back, all in one transaction.

use bytes::Bytes;
use hawser_broker::store::PRIORITIES;
use hawser_broker::store_codec::{decode_record, decode_store_key, Names};
use hawser_broker::{MessageData, Recovered, StoreKey, StoreOp};
use tokio_postgres::Client;

use crate::{batch, decode_message, OpenError};

/// What taking the store over found.
pub struct TakenOver {
    /// This broker's epoch in the lease row.
    pub epoch: i64,
    /// The number of the store's last committed write transaction
    /// (`hawser_lease.batch`): the writer's next one is this plus one.
    pub batch: i64,
    pub recovered: Recovered,
    /// Bytes of the stored messages.
    pub live_bytes: u64,
    /// The store's name (`hawser_meta`).
    pub name: String,
}

/// Takes the store over as `node`: in `epoch` if this broker holds the
/// lease in it (master/slave), else with the next epoch.
pub async fn take_over(
    client: &mut Client,
    node: &str,
    epoch: Option<i64>,
) -> Result<TakenOver, OpenError> {
    let tx = client.transaction().await?;
    let epoch = match epoch {
        Some(mine) => {
            let now: Option<i64> = tx
                .query_opt(
                    "SELECT epoch FROM hawser_lease WHERE id = 1 FOR UPDATE",
                    &[],
                )
                .await?
                .map(|r| r.get(0));
            if now != Some(mine) {
                return Err(OpenError::Fenced(now.unwrap_or(0)));
            }
            mine
        }
        None => take_next(&tx, node).await?,
    };
    let batch: i64 = tx
        .query_one("SELECT batch FROM hawser_lease WHERE id = 1", &[])
        .await?
        .get(0);
    // Non-persistent messages paged out (ActiveMQ's temporary store) do not
    // outlive the broker that spilled them.
    tx.execute(
        "DELETE FROM hawser_entries e USING hawser_messages m \
         WHERE m.id = e.id AND NOT m.persistent",
        &[],
    )
    .await?;
    tx.execute("DELETE FROM hawser_messages WHERE NOT persistent", &[])
        .await?;

    let mut r = Recovered::default();
    let meta = tx
        .query_one(
            "SELECT max_message_id, store_name FROM hawser_meta WHERE id = 1",
            &[],
        )
        .await?;
    let max: i64 = meta.get(0);
    let name: String = meta.get(1);
    r.max_message_id = max.max(0) as u64;
    let mut names = Names::default();
    for row in tx
        .query(
            "SELECT container, priority, count(*) FROM hawser_entries GROUP BY container, priority",
            &[],
        )
        .await?
    {
        let key = decode_key(row.get(0), &mut names)?;
        let priority: i16 = row.get(1);
        let count: i64 = row.get(2);
        let p = (priority.max(0) as usize).min(PRIORITIES - 1);
        r.pending.entry(key).or_default()[p] += count.max(0) as u64;
    }
    for row in tx
        .query("SELECT data FROM hawser_subscriptions", &[])
        .await?
    {
        match one_op(row.get(0))? {
            StoreOp::Subscribe(s) => r.subscriptions.push(s),
            _ => return Err(corrupt("a subscription row holds another record")),
        }
    }
    for row in tx.query("SELECT data FROM hawser_producers", &[]).await? {
        match one_op(row.get(0))? {
            StoreOp::ProducerWindow { producer, window } => {
                r.producers.insert(producer, window);
            }
            _ => return Err(corrupt("a producer row holds another record")),
        }
    }
    for row in tx
        .query("SELECT data FROM hawser_prepared ORDER BY seq", &[])
        .await?
    {
        match one_op(row.get(0))? {
            StoreOp::Prepare(p) => r.prepared.push(p),
            _ => return Err(corrupt("a prepared row holds another record")),
        }
    }
    // The messages prepared transactions acknowledged: held for them from
    // the start.
    for p in &r.prepared {
        for (key, id) in &p.acks {
            let row = tx
                .query_opt(
                    "SELECT e.redeliveries, m.data FROM hawser_entries e \
                     JOIN hawser_messages m ON m.id = e.id \
                     WHERE e.container = $1 AND e.id = $2",
                    &[&batch::key_bytes(key), &(*id as i64)],
                )
                .await?;
            if let Some(row) = row {
                let redeliveries: i32 = row.get(0);
                let message = decode_message(row.get(1)).map_err(OpenError::Corrupt)?;
                r.held
                    .push((key.clone(), (message, redeliveries.max(0) as u32)));
            }
        }
    }
    let live: i64 = tx
        .query_one(
            "SELECT coalesce(sum(length(data)), 0)::int8 FROM hawser_messages",
            &[],
        )
        .await?
        .get(0);
    tx.commit().await?;
    Ok(TakenOver {
        epoch,
        batch,
        recovered: r,
        live_bytes: live.max(0) as u64,
        name,
    })
}

/// A broker alone: the next epoch, whoever held the lease. Waits for a
/// transaction of the broker before (it holds the row) and then outnumbers
/// it: that broker's next write finds another epoch and stops.
async fn take_next(tx: &tokio_postgres::Transaction<'_>, node: &str) -> Result<i64, OpenError> {
    Ok(tx
        .query_one(
            "INSERT INTO hawser_lease (id, holder, epoch, renewed) VALUES (1, $1, 1, now()) \
             ON CONFLICT (id) DO UPDATE \
             SET holder = excluded.holder, epoch = hawser_lease.epoch + 1, renewed = now() \
             RETURNING epoch",
            &[&node],
        )
        .await?
        .get(0))
}

fn corrupt(what: &str) -> OpenError {
    OpenError::Corrupt(what.to_owned())
}

fn decode_key(data: &[u8], names: &mut Names) -> Result<StoreKey, OpenError> {
    let bytes = Bytes::copy_from_slice(data);
    let mut at = 0;
    decode_store_key(&bytes, &mut at, names)
        .map_err(|e| OpenError::Corrupt(format!("a container key does not decode: {e}")))
}

fn one_op(data: &[u8]) -> Result<StoreOp<MessageData>, OpenError> {
    let ops = decode_record(&Bytes::copy_from_slice(data))
        .map_err(|e| OpenError::Corrupt(format!("a stored record does not decode: {e}")))?;
    <[_; 1]>::try_from(ops)
        .map(|[op]| op)
        .map_err(|_| corrupt("a row holds more than one record"))
}
