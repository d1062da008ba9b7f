//! XA transactions in the engine: a prepared transaction belongs to no
//! connection, holds what it acknowledged from every consumer, survives a
//! restart (replayed from the store's records), and ends only by a commit or
//! rollback, from any connection.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::identity::ConnectInfo;
use crate::outbox::test_support::Recorder;
use crate::test_support::{bodies, from_producer, msg, restarted, spec, RecordingStore};
use crate::*;

/// A broker on `store`, recovered from what the store holds (a restart).
fn started(store: &Arc<RecordingStore>, config: BrokerConfig) -> Broker {
    restarted(config, store)
}

/// A queue with "old" in it; a transaction `xid` that acknowledged "old" and
/// sent "new", prepared. Returns the broker and the preparing connection.
fn prepared(store: &Arc<RecordingStore>, xid: &str) -> (Broker, ConnectionId) {
    let b = started(store, BrokerConfig::default());
    let q = Destination::queue("xa");
    let r = Recorder::new();
    let c = b.connect(ConnectInfo::in_process(None), r.clone()).unwrap();
    b.send(c, msg(q.clone(), "old", true), None).unwrap();
    b.subscribe(c, spec("s", q.clone(), AckMode::ClientIndividual))
        .unwrap();
    let old = r.take().remove(0).message.id;
    b.begin(c, xid).unwrap();
    b.ack(c, Some("s"), old, Some(xid), false).unwrap();
    b.send(c, msg(q, "new", true), Some(xid)).unwrap();
    assert!(b.prepare(c, xid).unwrap().is_some());
    (b, c)
}

/// Two connections of their own client ids: the sender of a transaction,
/// and the transaction manager that commits it.
fn sender_and_tm(b: &Broker) -> (ConnectionId, ConnectionId) {
    let connect = |client: &str| {
        b.connect(ConnectInfo::in_process(Some(client)), Recorder::new())
            .unwrap()
    };
    (connect("sender"), connect("tm"))
}

/// `sender` sends "sent in x" to `q` from producer "p", sequence 1, in XA
/// transaction "x", and prepares it.
fn prepare_sent_in_x(b: &Broker, sender: ConnectionId, q: &Destination) {
    b.begin(sender, "x").unwrap();
    b.send(
        sender,
        from_producer(q.clone(), "sent in x", "p", 1),
        Some("x"),
    )
    .unwrap();
    b.prepare(sender, "x").unwrap();
}

/// A fresh consumer's deliveries on the queue "xa".
fn consume(b: &Broker) -> (Arc<Recorder>, ConnectionId) {
    let r = Recorder::new();
    let c = b.connect(ConnectInfo::in_process(None), r.clone()).unwrap();
    b.subscribe(c, spec("s", Destination::queue("xa"), AckMode::Client))
        .unwrap();
    (r, c)
}

#[test]
fn a_prepared_transaction_outlives_its_connection_and_holds_what_it_acknowledged() {
    let store = RecordingStore::new();
    let (b, c) = prepared(&store, "x1");
    b.disconnect(c);
    let (r, other) = consume(&b);
    assert!(
        bodies(&r).is_empty(),
        "held or not yet published: {:?}",
        bodies(&r)
    );
    assert_eq!(b.prepared_transactions(), vec![Arc::from("x1")]);
    b.commit_prepared(other, "x1").unwrap();
    assert_eq!(bodies(&r), vec!["new"]);
    assert!(b.prepared_transactions().is_empty());
}

#[test]
fn a_prepared_transaction_survives_a_restart_and_commits_after_it() {
    let store = RecordingStore::new();
    let (b, _) = prepared(&store, "x1");
    drop(b);
    let b = started(&store, BrokerConfig::default());
    assert_eq!(b.prepared_transactions(), vec![Arc::from("x1")]);
    let (r, c) = consume(&b);
    assert!(
        bodies(&r).is_empty(),
        "the acknowledged message is held: {:?}",
        bodies(&r)
    );
    b.commit_prepared(c, "x1").unwrap();
    assert_eq!(bodies(&r), vec!["new"]);
    // And the commit is what the store says after another restart.
    drop(b);
    let b = started(&store, BrokerConfig::default());
    assert!(b.prepared_transactions().is_empty());
    let (r, _) = consume(&b);
    assert_eq!(bodies(&r), vec!["new"]);
}

#[test]
fn a_prepared_transaction_rolled_back_after_a_restart_gives_back_what_it_acknowledged() {
    let store = RecordingStore::new();
    let (b, _) = prepared(&store, "x1");
    drop(b);
    let b = started(&store, BrokerConfig::default());
    let (r, _) = consume(&b);
    b.rollback_prepared("x1").unwrap();
    assert_eq!(bodies(&r), vec!["old"]);
    drop(b);
    let b = started(&store, BrokerConfig::default());
    assert!(b.prepared_transactions().is_empty());
    let (r, _) = consume(&b);
    assert_eq!(bodies(&r), vec!["old"]);
}

#[test]
fn a_transaction_that_did_nothing_votes_read_only_and_is_over() {
    let b = started(&RecordingStore::new(), BrokerConfig::default());
    let c = b
        .connect(ConnectInfo::in_process(None), Recorder::new())
        .unwrap();
    b.begin(c, "ro").unwrap();
    assert_eq!(b.prepare(c, "ro").unwrap(), None);
    assert!(b.prepared_transactions().is_empty());
    assert!(matches!(
        b.commit_prepared(c, "ro"),
        Err(BrokerError::UnknownTransaction(_))
    ));
}

#[test]
fn a_refused_prepare_leaves_the_transaction_open_on_its_connection() {
    let store = RecordingStore::new();
    let b = started(&store, BrokerConfig::default());
    let q = Destination::queue("xa");
    let c = b
        .connect(ConnectInfo::in_process(None), Recorder::new())
        .unwrap();
    b.begin(c, "x").unwrap();
    b.send(c, msg(q, "m", true), Some("x")).unwrap();
    store.refuse.store(true, Ordering::SeqCst);
    assert!(b.prepare(c, "x").is_err());
    store.refuse.store(false, Ordering::SeqCst);
    assert!(b.prepared_transactions().is_empty());
    // Still the connection's: a one-phase commit publishes it.
    b.commit(c, "x").unwrap();
    let (r, _) = consume(&b);
    assert_eq!(bodies(&r), vec!["m"]);
}

#[test]
fn prepared_transactions_are_bounded_broker_wide() {
    let config = BrokerConfig {
        max_prepared_transactions: 2,
        ..BrokerConfig::default()
    };
    let b = started(&RecordingStore::new(), config);
    let q = Destination::queue("xa");
    let c = b
        .connect(ConnectInfo::in_process(None), Recorder::new())
        .unwrap();
    for (i, xid) in ["a", "b", "c"].into_iter().enumerate() {
        b.begin(c, xid).unwrap();
        b.send(c, msg(q.clone(), xid, true), Some(xid)).unwrap();
        let prepared = b.prepare(c, xid);
        if i < 2 {
            assert!(prepared.is_ok());
        } else {
            assert!(
                matches!(prepared, Err(BrokerError::Limit(_))),
                "{prepared:?}"
            );
        }
    }
    // The refused one can still be rolled back on its connection.
    b.abort(c, "c").unwrap();
}

#[test]
fn a_commit_from_another_client_publishes_the_senders_messages_under_the_senders_producer_ids() {
    // Producer ids are scoped by the identity of the connection that sent
    // (crate::producer): the transaction manager's connection, of another
    // client id whose producer "p" stored its own message 1, must neither
    // drop the transaction's message 1 as a duplicate nor mark it as its own.
    let store = RecordingStore::new();
    let b = started(&store, BrokerConfig::default());
    let q = Destination::queue("xa");
    let (sender, tm) = sender_and_tm(&b);
    b.send(tm, from_producer(q.clone(), "the tm's own", "p", 1), None)
        .unwrap();
    prepare_sent_in_x(&b, sender, &q);
    b.commit_prepared(tm, "x").unwrap();
    let (r, _) = consume(&b);
    assert_eq!(bodies(&r), vec!["the tm's own", "sent in x"]);
    let key = |client: &str| ProducerKey {
        owner: None,
        client_id: Arc::from(client),
        producer: Arc::from("p"),
    };
    assert!(b.producer_has(&key("sender"), 1));
    // A resend of it by its sender is recognised.
    b.send(sender, from_producer(q, "sent in x", "p", 1), None)
        .unwrap();
    assert_eq!(bodies(&r), vec!["the tm's own", "sent in x"]);
}

#[test]
fn a_commit_from_another_connection_does_not_mark_that_connections_producers() {
    // Without client ids a producer's window is its connection's own: the
    // committing connection's producer "p" may use sequence 1 afterwards.
    let store = RecordingStore::new();
    let b = started(&store, BrokerConfig::default());
    let q = Destination::queue("xa");
    let sender = b
        .connect(ConnectInfo::in_process(None), Recorder::new())
        .unwrap();
    let tm = b
        .connect(ConnectInfo::in_process(None), Recorder::new())
        .unwrap();
    prepare_sent_in_x(&b, sender, &q);
    b.disconnect(sender);
    b.commit_prepared(tm, "x").unwrap();
    b.send(tm, from_producer(q, "the tm's own", "p", 1), None)
        .unwrap();
    let (r, _) = consume(&b);
    assert_eq!(bodies(&r), vec!["sent in x", "the tm's own"]);
}

#[test]
fn a_transaction_prepared_before_a_restart_commits_under_its_senders_producer_ids() {
    // The prepare record keeps the sender's client id and each send's
    // producer: committed after a restart (from the transaction manager's
    // connection, of another client id), the message marks the sender's
    // window, so the sender's resend of it after reconnecting is recognised,
    // and the transaction manager's own producer "p" is not taken for it.
    let store = RecordingStore::new();
    let b = started(&store, BrokerConfig::default());
    let q = Destination::queue("xa");
    let sender = b
        .connect(ConnectInfo::in_process(Some("sender")), Recorder::new())
        .unwrap();
    prepare_sent_in_x(&b, sender, &q);
    drop(b);

    let b = started(&store, BrokerConfig::default());
    assert_eq!(b.prepared_transactions(), vec![Arc::from("x")]);
    let (sender, tm) = sender_and_tm(&b);
    b.commit_prepared(tm, "x").unwrap();
    let key = |client: &str| ProducerKey {
        owner: None,
        client_id: Arc::from(client),
        producer: Arc::from("p"),
    };
    assert!(b.producer_has(&key("sender"), 1));
    assert!(!b.producer_has(&key("tm"), 1));
    b.send(sender, from_producer(q.clone(), "sent in x", "p", 1), None)
        .unwrap();
    b.send(tm, from_producer(q, "the tm's own", "p", 1), None)
        .unwrap();
    let (r, _) = consume(&b);
    assert_eq!(bodies(&r), vec!["sent in x", "the tm's own"]);
}
