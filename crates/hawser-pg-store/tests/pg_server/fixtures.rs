//! What the store's tests share: messages, queues, a database per test,
//! the store's configuration, appending until durable.

#![allow(dead_code)]

use std::sync::Arc;

use bytes::Bytes;
use hawser_broker::{Destination, MemoryUsage, Message, MessageData, Store, StoreKey, StoreOp};
use hawser_pg_store::{PgStore, PgStoreConfig};

use super::PgServer;

pub fn message(id: u64, priority: u8, persistent: bool) -> Arc<Message> {
    Arc::new(Message::new(
        MessageData {
            id,
            destination: Destination::queue("q"),
            fields: hawser_broker::MessageFields::default(),
            body_kind: hawser_broker::BodyKind::Bytes,
            body: Bytes::from(format!("body of {id}")),
            persistent,
            priority,
            expires_ms: None,
            timestamp_ms: 1,
        },
        &MemoryUsage::new(u64::MAX),
    ))
}

pub fn queue(n: u8) -> StoreKey {
    StoreKey::Queue(Arc::from(format!("q{n}")))
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A fresh database on `server` for one case.
pub async fn database(server: &PgServer, name: &str) -> String {
    let (client, conn) = tokio_postgres::connect(&server.url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    server
        .url()
        .replace("dbname=postgres", &format!("dbname={name}"))
}

pub fn config(url: &str, node: &str) -> PgStoreConfig {
    PgStoreConfig {
        url: url.to_owned(),
        node: node.to_owned(),
        epoch: None,
        confirm_check: None,
    }
}

pub async fn append_all(store: &PgStore, records: Vec<Vec<StoreOp>>) {
    let mut last = 0;
    for r in records {
        last = store.append(r, true).unwrap();
    }
    let mut durable = store.durability();
    hawser_broker::store::wait_durable(&mut durable, last)
        .await
        .unwrap();
}
