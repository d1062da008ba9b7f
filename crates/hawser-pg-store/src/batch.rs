//! One write transaction: the records of many producers and consumers,
//! turned into a few set-based statements.
//!
//! The engine's records come in order; within a run of message records
//! (enqueue, dequeue, redelivered, producer windows) order does not matter
//! once each entry's fate is known, so a run becomes: insert messages,
//! insert entries, update redelivery counts, delete entries, delete the
//! messages no entry holds any more, write producer windows. A message
//! enqueued and acknowledged within one batch (a consumer keeping up)
//! never touches a table. The rarer records (durable subscriptions, XA)
//! end a run and are written in their place.

use std::collections::{HashMap, HashSet};

use bytes::BytesMut;
use hawser_broker::store_codec::{encode_record, encode_store_key};
use hawser_broker::{MessageData, MessageId, ProducerKey, SeqWindow, StoreKey, StoreOp};
use tokio_postgres::types::ToSql;
use tokio_postgres::Transaction;

/// Deletes the messages among ids `$1` that no entry holds any more (after
/// their entries went: statements run in the order sent).
const DELETE_ORPHANS: &str = "DELETE FROM hawser_messages m WHERE m.id = ANY($1) \
     AND NOT EXISTS (SELECT 1 FROM hawser_entries e WHERE e.id = m.id)";

/// A container's key as the tables hold it (the record format's encoding).
pub fn key_bytes(key: &StoreKey) -> Vec<u8> {
    let mut buf = BytesMut::new();
    encode_store_key(key, &mut buf);
    buf.to_vec()
}

/// A producer's key as the tables hold it.
pub fn producer_bytes(producer: &ProducerKey) -> Vec<u8> {
    encode_record::<MessageData>(&[StoreOp::ProducerForget {
        producer: producer.clone(),
    }])
    .to_vec()
}

/// The windows of the producers a batch touched: kept by the writer across
/// batches (a record says one sequence number; the table holds the window).
pub type Windows = HashMap<ProducerKey, SeqWindow>;

/// A run of message records, reduced to what the tables must see.
#[derive(Default)]
struct Run<'a> {
    /// Messages to insert, with the entries of this run that hold them.
    messages: Vec<&'a MessageData>,
    /// (container, id) -> (priority, redeliveries) entries inserted by this run.
    fresh: HashMap<(StoreKey, MessageId), (u8, u32)>,
    /// Earlier entries to update.
    redelivered: HashMap<(StoreKey, MessageId), u32>,
    /// Earlier entries to delete.
    gone: Vec<(StoreKey, MessageId)>,
    /// Producers whose windows changed, or went (`None`).
    producers: HashMap<ProducerKey, Option<SeqWindow>>,
}

impl<'a> Run<'a> {
    fn is_empty(&self) -> bool {
        self.messages.is_empty()
            && self.gone.is_empty()
            && self.redelivered.is_empty()
            && self.producers.is_empty()
    }

    fn add(&mut self, op: &'a StoreOp<MessageData>, windows: &mut Windows) {
        match op {
            StoreOp::Enqueue { message, targets } => {
                for key in targets {
                    self.fresh
                        .insert((key.clone(), message.id), (message.priority, 0));
                }
                self.messages.push(message);
            }
            StoreOp::Dequeue { key, id } => {
                let k = (key.clone(), *id);
                if self.fresh.remove(&k).is_none() {
                    self.redelivered.remove(&k);
                    self.gone.push(k);
                }
            }
            StoreOp::Redelivered { key, id, count } => {
                let k = (key.clone(), *id);
                match self.fresh.get_mut(&k) {
                    Some(e) => e.1 = *count,
                    None => {
                        self.redelivered.insert(k, *count);
                    }
                }
            }
            StoreOp::ProducerSeen { producer, seq } => {
                let w = windows.entry(producer.clone()).or_default();
                w.insert(*seq);
                self.producers.insert(producer.clone(), Some(w.clone()));
            }
            StoreOp::ProducerWindow { producer, window } => {
                windows.insert(producer.clone(), window.clone());
                self.producers
                    .insert(producer.clone(), Some(window.clone()));
            }
            StoreOp::ProducerForget { producer } => {
                windows.remove(producer);
                self.producers.insert(producer.clone(), None);
            }
            _ => unreachable!("not a message record"),
        }
    }

    async fn write(self, tx: &Transaction<'_>) -> Result<(), tokio_postgres::Error> {
        // Only messages some entry of this run still holds.
        let held: HashSet<MessageId> = self.fresh.keys().map(|(_, id)| *id).collect();
        let mut ids = Vec::new();
        let mut persistent = Vec::new();
        let mut data = Vec::new();
        for &m in &self.messages {
            if held.contains(&m.id) {
                ids.push(m.id as i64);
                persistent.push(m.persistent);
                data.push(
                    encode_record(&[StoreOp::Enqueue {
                        message: m.clone(),
                        targets: Vec::new(),
                    }])
                    .to_vec(),
                );
            }
        }
        let (mut e_ids, mut e_keys, mut e_prio, mut e_red) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for ((key, id), (priority, redeliveries)) in &self.fresh {
            e_ids.push(*id as i64);
            e_keys.push(key_bytes(key));
            e_prio.push(i16::from(*priority));
            e_red.push(*redeliveries as i32);
        }
        let (mut r_ids, mut r_keys, mut r_counts) = (Vec::new(), Vec::new(), Vec::new());
        for ((key, id), count) in &self.redelivered {
            r_ids.push(*id as i64);
            r_keys.push(key_bytes(key));
            r_counts.push(*count as i32);
        }
        let (mut g_ids, mut g_keys) = (Vec::new(), Vec::new());
        for (key, id) in &self.gone {
            g_ids.push(*id as i64);
            g_keys.push(key_bytes(key));
        }
        let (mut p_keys, mut p_data, mut p_gone) = (Vec::new(), Vec::new(), Vec::new());
        for (producer, window) in &self.producers {
            match window {
                Some(w) => {
                    p_keys.push(producer_bytes(producer));
                    p_data.push(
                        encode_record::<MessageData>(&[StoreOp::ProducerWindow {
                            producer: producer.clone(),
                            window: w.clone(),
                        }])
                        .to_vec(),
                    );
                }
                None => p_gone.push(producer_bytes(producer)),
            }
        }
        let max_id = self.messages.iter().map(|m| m.id).max().unwrap_or(0) as i64;
        let messages: [&(dyn ToSql + Sync); 3] = [&ids, &persistent, &data];
        let entries: [&(dyn ToSql + Sync); 4] = [&e_ids, &e_keys, &e_prio, &e_red];
        let redelivered: [&(dyn ToSql + Sync); 3] = [&r_ids, &r_keys, &r_counts];
        let gone: [&(dyn ToSql + Sync); 2] = [&g_ids, &g_keys];
        let gone_ids: [&(dyn ToSql + Sync); 1] = [&g_ids];
        let producers: [&(dyn ToSql + Sync); 2] = [&p_keys, &p_data];
        let producers_gone: [&(dyn ToSql + Sync); 1] = [&p_gone];
        let max: [&(dyn ToSql + Sync); 1] = [&max_id];
        // Sent together (the connection pipelines them) and run in order.
        let mut steps = Vec::new();
        if !ids.is_empty() {
            steps.push(tx.execute(
                "INSERT INTO hawser_messages (id, persistent, data) \
                 SELECT * FROM unnest($1::int8[], $2::bool[], $3::bytea[]) ON CONFLICT (id) DO NOTHING",
                &messages,
            ));
        }
        if !e_ids.is_empty() {
            steps.push(tx.execute(
                "INSERT INTO hawser_entries (id, container, priority, redeliveries) \
                 SELECT * FROM unnest($1::int8[], $2::bytea[], $3::int2[], $4::int4[]) \
                 ON CONFLICT (id, container) DO NOTHING",
                &entries,
            ));
        }
        if !r_ids.is_empty() {
            steps.push(tx.execute(
                "UPDATE hawser_entries e SET redeliveries = u.r \
                 FROM unnest($1::int8[], $2::bytea[], $3::int4[]) AS u(i, c, r) \
                 WHERE e.id = u.i AND e.container = u.c",
                &redelivered,
            ));
        }
        if !g_ids.is_empty() {
            steps.push(tx.execute(
                "DELETE FROM hawser_entries e USING unnest($1::int8[], $2::bytea[]) AS u(i, c) \
                 WHERE e.id = u.i AND e.container = u.c",
                &gone,
            ));
            // After the entries went (statements run in the order sent).
            steps.push(tx.execute(DELETE_ORPHANS, &gone_ids));
        }
        if !p_keys.is_empty() {
            steps.push(tx.execute(
                "INSERT INTO hawser_producers (producer, data) \
                 SELECT * FROM unnest($1::bytea[], $2::bytea[]) \
                 ON CONFLICT (producer) DO UPDATE SET data = excluded.data",
                &producers,
            ));
        }
        if !p_gone.is_empty() {
            steps.push(tx.execute(
                "DELETE FROM hawser_producers WHERE producer = ANY($1)",
                &producers_gone,
            ));
        }
        if max_id > 0 {
            steps.push(tx.execute(
                "UPDATE hawser_meta SET max_message_id = GREATEST(max_message_id, $1) WHERE id = 1",
                &max,
            ));
        }
        futures_util::future::try_join_all(steps).await?;
        Ok(())
    }
}

/// Writes `records` (in order) within `tx`.
pub async fn write(
    tx: &Transaction<'_>,
    records: &[Vec<StoreOp<MessageData>>],
    windows: &mut Windows,
) -> Result<(), tokio_postgres::Error> {
    let mut run = Run::default();
    for op in records.iter().flatten() {
        match op {
            op @ (StoreOp::Enqueue { .. }
            | StoreOp::Dequeue { .. }
            | StoreOp::Redelivered { .. }
            | StoreOp::ProducerSeen { .. }
            | StoreOp::ProducerWindow { .. }
            | StoreOp::ProducerForget { .. }) => run.add(op, windows),
            other => {
                if !run.is_empty() {
                    std::mem::take(&mut run).write(tx).await?;
                }
                write_alone(tx, other).await?;
            }
        }
    }
    if !run.is_empty() {
        run.write(tx).await?;
    }
    Ok(())
}

/// A durable subscription's, an XA transaction's or a purge's record.
async fn write_alone(
    tx: &Transaction<'_>,
    op: &StoreOp<MessageData>,
) -> Result<(), tokio_postgres::Error> {
    match op {
        StoreOp::Subscribe(s) => {
            let key = key_bytes(&s.key());
            let data = encode_record(std::slice::from_ref(op)).to_vec();
            tx.execute(
                "INSERT INTO hawser_subscriptions (container, data) VALUES ($1, $2) \
                 ON CONFLICT (container) DO UPDATE SET data = excluded.data",
                &[&key, &data],
            )
            .await?;
        }
        StoreOp::Unsubscribe { client_id, name } => {
            let key = key_bytes(&StoreKey::Durable {
                client_id: client_id.clone(),
                name: name.clone(),
            });
            tx.execute(
                "DELETE FROM hawser_subscriptions WHERE container = $1",
                &[&key],
            )
            .await?;
            let ids: Vec<i64> = tx
                .query(
                    "DELETE FROM hawser_entries WHERE container = $1 RETURNING id",
                    &[&key],
                )
                .await?
                .iter()
                .map(|r| r.get(0))
                .collect();
            tx.execute(DELETE_ORPHANS, &[&ids]).await?;
        }
        StoreOp::Prepare(p) => {
            let xid = p.xid.to_string();
            let data = encode_record(std::slice::from_ref(op)).to_vec();
            tx.execute(
                "INSERT INTO hawser_prepared (xid, data) VALUES ($1, $2) \
                 ON CONFLICT (xid) DO UPDATE SET data = excluded.data",
                &[&xid, &data],
            )
            .await?;
        }
        StoreOp::Resolve { xid } => {
            tx.execute("DELETE FROM hawser_prepared WHERE xid = $1", &[&&**xid])
                .await?;
        }
        StoreOp::Purge { key, keep } => {
            let key = key_bytes(key);
            let keep: Vec<i64> = keep.iter().map(|&id| id as i64).collect();
            let ids: Vec<i64> = tx
                .query(
                    "DELETE FROM hawser_entries WHERE container = $1 AND NOT (id = ANY($2)) \
                     RETURNING id",
                    &[&key, &keep],
                )
                .await?
                .iter()
                .map(|r| r.get(0))
                .collect();
            tx.execute(DELETE_ORPHANS, &[&ids]).await?;
        }
        _ => unreachable!("a message record"),
    }
    Ok(())
}
