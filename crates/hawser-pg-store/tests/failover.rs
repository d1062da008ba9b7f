//! The store across broken connections, through a proxy that cuts them at
//! a COMMIT (`pg_server::proxy`): the two sides of a COMMIT whose outcome
//! the broker cannot know. Whichever side it was, the batch is confirmed
//! exactly when it is in the database, and written once: a batch taken for
//! committed when it was not would be missing after a reopen, and one
//! written again after it had committed would break the chain of batch
//! numbers, which stops the store. A database that lost committed batches
//! (a standby promoted behind its primary) stops the store too.

mod pg_server;

use std::time::Duration;

use hawser_broker::{ReadLimit, Store, StoreOp};
use hawser_pg_store::PgStore;
use pg_server::fixtures::{append_all, config, database, message, queue, runtime};
use pg_server::proxy::{Cut, Proxy};
use pg_server::PgServer;

fn send(id: u64) -> Vec<StoreOp> {
    vec![StoreOp::Enqueue {
        message: message(id, 4, true),
        targets: vec![queue(0)],
    }]
}

async fn ids(store: &PgStore) -> Vec<u64> {
    store
        .read(&queue(0), 4, 0, ReadLimit::ALL)
        .await
        .unwrap()
        .into_iter()
        .map(|(m, _)| m.id)
        .collect()
}

/// A connection of the test's own to the database.
async fn connect_direct(url: &str) -> tokio_postgres::Client {
    let (c, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    c
}

/// The batch number the database holds.
async fn batch_number(url: &str) -> i64 {
    connect_direct(url)
        .await
        .query_one("SELECT batch FROM hawser_lease WHERE id = 1", &[])
        .await
        .unwrap()
        .get(0)
}

/// Takes `n` committed batches away from the database, as a standby
/// promoted behind its primary would lack them.
async fn lose_batches(url: &str, n: i64) {
    connect_direct(url)
        .await
        .execute(
            "UPDATE hawser_lease SET batch = batch - $1 WHERE id = 1",
            &[&n],
        )
        .await
        .unwrap();
}

/// Appends `record`; `Ok` once durable, the store's error if it failed.
async fn confirm(store: &PgStore, record: Vec<StoreOp>) -> Result<(), String> {
    let seq = store.append(record, true).map_err(|e| e.to_string())?;
    let mut durable = store.durability();
    tokio::time::timeout(
        Duration::from_secs(60),
        hawser_broker::store::wait_durable(&mut durable, seq),
    )
    .await
    .expect("an answer within a minute")
    .map_err(|e| e.to_string())
}

#[test]
fn a_commit_of_unknown_outcome_is_confirmed_exactly_when_it_committed() {
    if !PgServer::available() {
        return;
    }
    let server = PgServer::start();
    runtime().block_on(async {
        let direct = database(&server, "unknown").await;
        let proxy = Proxy::start(server.port).await;
        let url = proxy.url("unknown");
        let (store, _) = PgStore::open(config(&url, "b")).await.unwrap();
        append_all(&store, vec![send(1)]).await;
        let before = batch_number(&direct).await;

        // The COMMIT reaches the server; the broker never hears of it.
        proxy.arm(Cut::AfterCommit);
        confirm(&store, send(2)).await.unwrap();
        assert_eq!(proxy.cuts(), 1);
        assert_eq!(
            batch_number(&direct).await,
            before + 1,
            "batch 2 is in the database once, not written again"
        );

        // The COMMIT never reaches the server: written again, once.
        proxy.arm(Cut::BeforeCommit);
        confirm(&store, send(3)).await.unwrap();
        assert_eq!(proxy.cuts(), 2);
        assert_eq!(batch_number(&direct).await, before + 2);

        // The server gone for a while: nothing is confirmed meanwhile, and
        // everything once it is back.
        proxy.set_down(true);
        proxy.arm(Cut::BeforeCommit);
        let seq = store.append(send(4), true).unwrap();
        let mut durable = store.durability();
        let early = tokio::time::timeout(
            Duration::from_millis(1500),
            hawser_broker::store::wait_durable(&mut durable, seq),
        )
        .await;
        assert!(early.is_err(), "confirmed while the database was away");
        assert!(store.check_confirmable().is_ok(), "waiting, not failed");
        proxy.set_down(false);
        tokio::time::timeout(
            Duration::from_secs(30),
            hawser_broker::store::wait_durable(&mut durable, seq),
        )
        .await
        .unwrap()
        .unwrap();
        assert_eq!(ids(&store).await, vec![1, 2, 3, 4]);
        store.close();

        // The next broker finds each message once.
        let (next, recovered) = PgStore::open(config(&direct, "c")).await.unwrap();
        assert_eq!(recovered.pending_total(), 4);
        assert_eq!(ids(&next).await, vec![1, 2, 3, 4]);
        next.close();
    });
}

#[test]
fn a_database_that_lost_committed_batches_stops_the_store() {
    if !PgServer::available() {
        return;
    }
    let server = PgServer::start();
    runtime().block_on(async {
        let direct = database(&server, "lost").await;
        let proxy = Proxy::start(server.port).await;
        let (store, _) = PgStore::open(config(&proxy.url("lost"), "b"))
            .await
            .unwrap();
        append_all(&store, vec![send(1)]).await;
        append_all(&store, vec![send(2)]).await;
        append_all(&store, vec![send(3)]).await;
        // The connection breaks under batch 4, and the server it comes back
        // to is two committed batches behind, as a standby promoted behind
        // its primary would be.
        proxy.set_down(true);
        proxy.arm(Cut::BeforeCommit);
        let seq = store.append(send(4), true).unwrap();
        while proxy.cuts() == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        lose_batches(&direct, 2).await;
        proxy.set_down(false);
        let mut durable = store.durability();
        let err = tokio::time::timeout(
            Duration::from_secs(30),
            hawser_broker::store::wait_durable(&mut durable, seq),
        )
        .await
        .unwrap()
        .unwrap_err();
        assert!(
            err.to_string().contains("lost 2 committed transaction(s)"),
            "{err}"
        );
        assert!(store.check_confirmable().is_err());
        assert!(store.append(send(5), true).is_err());
    });
}

#[test]
fn a_chain_broken_under_a_running_store_stops_it() {
    if !PgServer::available() {
        return;
    }
    let server = PgServer::start();
    runtime().block_on(async {
        let url = database(&server, "chain").await;
        let (store, _) = PgStore::open(config(&url, "b")).await.unwrap();
        append_all(&store, vec![send(1)]).await;
        lose_batches(&url, 1).await;
        let err = confirm(&store, send(2)).await.unwrap_err();
        assert!(err.contains("lost 1 committed transaction(s)"), "{err}");
    });
}
