//! An operator's changes: purge (of a queue far beyond memory, with messages
//! out with a consumer), delete, create, move, copy and the dead-letter
//! retry, each checked in memory, in the store, and after a restart.

use std::sync::Arc;

use crate::identity::ConnectInfo;
use crate::outbox::test_support::Recorder;
use crate::test_support::{bodies, msg, page_in, restarted, spec, RecordingStore};
use crate::*;

/// Memory a destination may hold here: about ten of these messages.
fn limited() -> BrokerConfig {
    BrokerConfig {
        policies: vec![PolicyEntry {
            pattern: DestinationPattern::new(false, ">").unwrap(),
            policy: DestinationPolicy {
                memory_limit_bytes: 10 * 1024,
                producer_flow_control: None,
            },
        }],
        ..BrokerConfig::default()
    }
}

fn kib(q: &Destination, n: usize) -> NewMessage {
    msg(q.clone(), &format!("{n:<1024}"), true)
}

fn stored_bodies(store: &RecordingStore, q: &Destination) -> Vec<String> {
    store
        .stored(&StoreKey::Queue(Arc::clone(&q.name)))
        .iter()
        .map(|(m, _)| String::from_utf8_lossy(&m.body).trim_end().to_owned())
        .collect()
}

fn producer(b: &Broker) -> ConnectionId {
    b.connect(ConnectInfo::in_process(None), Recorder::new())
        .unwrap()
}

fn depth(b: &Broker, q: &Destination) -> usize {
    b.stats()
        .iter()
        .find(|s| s.name == q.to_string())
        .map_or(0, |s| s.pending)
}

#[test]
fn a_purge_drops_what_waits_in_memory_and_in_the_store_and_keeps_what_a_consumer_holds() {
    let store = RecordingStore::new();
    let b = Broker::new(limited(), store.clone(), Recovered::default());
    let q = Destination::queue("big");
    let p = producer(&b);
    for n in 0..200 {
        b.send(p, kib(&q, n), None).unwrap();
    }
    // A consumer takes two and holds them, unacknowledged.
    let rec = Recorder::new();
    let c = b
        .connect(ConnectInfo::in_process(None), rec.clone())
        .unwrap();
    let mut s = spec("s", q.clone(), AckMode::ClientIndividual);
    s.prefetch = 2;
    b.subscribe(c, s).unwrap();
    let held = rec.take();
    assert_eq!(held.len(), 2);
    assert!(!b.paged_out(&q).is_empty(), "the backlog is beyond memory");

    let (purged, _) = b.purge(&q).unwrap();
    assert_eq!(purged, 198, "everything but the two delivered");
    assert_eq!(depth(&b, &q), 0);
    assert!(b.paged_out(&q).is_empty());
    assert_eq!(
        stored_bodies(&store, &q),
        vec!["0", "1"],
        "the store keeps the two held"
    );

    // What comes after the purge is delivered, and nothing purged comes back.
    for n in 200..230 {
        b.send(p, kib(&q, n), None).unwrap();
    }
    for d in &held {
        b.ack(c, Some("s"), d.message.id, None, false).unwrap();
    }
    let mut got = Vec::new();
    for _ in 0..1000 {
        let ds = rec.take();
        if ds.is_empty() {
            page_in(&b);
            if rec.deliveries.lock().is_empty() {
                break;
            }
            continue;
        }
        for d in ds {
            got.push(
                String::from_utf8_lossy(&d.message.body)
                    .trim_end()
                    .to_owned(),
            );
            b.ack(c, Some("s"), d.message.id, None, false).unwrap();
        }
    }
    let want: Vec<String> = (200..230).map(|n| n.to_string()).collect();
    assert_eq!(got, want);
    assert!(stored_bodies(&store, &q).is_empty());
}

#[test]
fn a_purge_holds_across_a_restart() {
    let store = RecordingStore::new();
    let b = Broker::new(limited(), store.clone(), Recovered::default());
    let q = Destination::queue("big");
    let p = producer(&b);
    for n in 0..100 {
        b.send(p, kib(&q, n), None).unwrap();
    }
    b.purge(&q).unwrap();
    b.send(p, kib(&q, 100), None).unwrap();
    drop(b);
    let b = restarted(limited(), &store);
    assert_eq!(depth(&b, &q), 1);
    assert_eq!(stored_bodies(&store, &q), vec!["100"]);
}

#[test]
fn a_refused_purge_changes_nothing() {
    let store = RecordingStore::new();
    let b = Broker::new(limited(), store.clone(), Recovered::default());
    let q = Destination::queue("q");
    let p = producer(&b);
    for n in 0..5 {
        b.send(p, kib(&q, n), None).unwrap();
    }
    store
        .refuse
        .store(true, std::sync::atomic::Ordering::SeqCst);
    assert!(matches!(b.purge(&q), Err(BrokerError::Store(_))));
    assert_eq!(depth(&b, &q), 5);
    assert!(matches!(
        b.purge(&Destination::queue("none")),
        Err(BrokerError::UnknownDestination(_))
    ));
    assert!(matches!(
        b.purge(&Destination::topic("t")),
        Err(BrokerError::NotAQueue(_))
    ));
}

#[test]
fn a_queue_with_consumers_is_not_deleted_and_one_without_is_with_its_messages() {
    let store = RecordingStore::new();
    let b = Broker::new(BrokerConfig::default(), store.clone(), Recovered::default());
    let q = Destination::queue("q");
    let p = producer(&b);
    b.send(p, kib(&q, 1), None).unwrap();
    let c = b
        .connect(ConnectInfo::in_process(None), Recorder::new())
        .unwrap();
    b.subscribe(c, spec("s", q.clone(), AckMode::Client))
        .unwrap();
    assert!(matches!(
        b.delete_destination(&q),
        Err(BrokerError::DestinationInUse(_))
    ));
    b.disconnect(c);
    b.delete_destination(&q).unwrap();
    assert!(b.stats().iter().all(|s| s.name != q.to_string()));
    assert!(stored_bodies(&store, &q).is_empty());
}

#[test]
fn a_created_queue_outlives_the_idle_sweep_until_deleted() {
    let b = Broker::new(
        BrokerConfig::default(),
        RecordingStore::new(),
        Recovered::default(),
    );
    let q = Destination::queue("made");
    b.create_destination(&q).unwrap();
    b.expire();
    assert!(b.stats().iter().any(|s| s.name == q.to_string()));
    b.delete_destination(&q).unwrap();
    b.expire();
    assert!(b.stats().iter().all(|s| s.name != q.to_string()));
}

#[test]
fn a_move_is_one_record_and_a_copy_leaves_the_original() {
    let store = RecordingStore::new();
    let b = Broker::new(BrokerConfig::default(), store.clone(), Recovered::default());
    let (a, z) = (Destination::queue("a"), Destination::queue("z"));
    let p = producer(&b);
    for n in 0..3 {
        b.send(p, kib(&a, n), None).unwrap();
    }
    let ids: Vec<MessageId> = b.browse(&a, 10).iter().map(|(m, _, _)| m.id).collect();
    let records = store.records.lock().len();
    b.move_message(&a, ids[1], &z, false).unwrap();
    assert_eq!(store.records.lock().len(), records + 1, "one record");
    b.move_message(&a, ids[0], &z, true).unwrap();
    assert_eq!(stored_bodies(&store, &a), vec!["0", "2"]);
    assert_eq!(stored_bodies(&store, &z), vec!["1", "0"]);
    assert!(matches!(
        b.move_message(&a, ids[1], &z, false),
        Err(BrokerError::NotMovable(_))
    ));
    let moved = b.browse(&z, 10);
    assert_eq!(moved[0].0.fields.original_destination.as_ref(), Some(&a));
    // The store's view survives a restart.
    drop(b);
    let b = restarted(BrokerConfig::default(), &store);
    assert_eq!(depth(&b, &a), 2);
    assert_eq!(depth(&b, &z), 2);
}

#[test]
fn a_message_out_with_a_consumer_is_not_moved() {
    let b = Broker::new(
        BrokerConfig::default(),
        RecordingStore::new(),
        Recovered::default(),
    );
    let (a, z) = (Destination::queue("a"), Destination::queue("z"));
    let p = producer(&b);
    b.send(p, kib(&a, 0), None).unwrap();
    let rec = Recorder::new();
    let c = b
        .connect(ConnectInfo::in_process(None), rec.clone())
        .unwrap();
    b.subscribe(c, spec("s", a.clone(), AckMode::Client))
        .unwrap();
    let d = rec.take();
    assert!(matches!(
        b.move_message(&a, d[0].message.id, &z, false),
        Err(BrokerError::NotMovable(_))
    ));
}

#[test]
fn a_retry_sends_dead_letters_back_where_they_died() {
    let config = BrokerConfig {
        max_redeliveries: 0,
        ..BrokerConfig::default()
    };
    let store = RecordingStore::new();
    let b = Broker::new(config, store.clone(), Recovered::default());
    let (orders, bills) = (Destination::queue("orders"), Destination::queue("bills"));
    let dlq = Destination::queue("ActiveMQ.DLQ");
    let p = producer(&b);
    b.send(p, msg(orders.clone(), "o1", true), None).unwrap();
    b.send(p, msg(bills.clone(), "b1", true), None).unwrap();
    b.send(p, msg(orders.clone(), "o2", true), None).unwrap();
    // Each is delivered and handed back: with no redeliveries allowed, dead.
    for q in [&orders, &bills] {
        let rec = Recorder::new();
        let c = b
            .connect(ConnectInfo::in_process(None), rec.clone())
            .unwrap();
        b.subscribe(c, spec("s", q.clone(), AckMode::ClientIndividual))
            .unwrap();
        for d in rec.take() {
            b.nack(c, Some("s"), d.message.id).unwrap();
        }
        b.disconnect(c);
    }
    assert_eq!(depth(&b, &dlq), 3);
    let moved = b.retry_dead_letters(&dlq).unwrap();
    assert_eq!((moved.messages, moved.left), (3, 0));
    assert_eq!(depth(&b, &dlq), 0);
    let rec = Recorder::new();
    let c = b
        .connect(ConnectInfo::in_process(None), rec.clone())
        .unwrap();
    b.subscribe(c, spec("s", orders.clone(), AckMode::Auto))
        .unwrap();
    assert_eq!(bodies(&rec), vec!["o1", "o2"]);
    let m = &rec.deliveries.lock()[0].message;
    assert!(
        m.fields
            .properties
            .iter()
            .all(|(k, _)| &**k != "dlqDeliveryFailureCause"),
        "the cause goes with the retry"
    );
    assert_eq!(stored_bodies(&store, &bills), vec!["b1"]);
    assert!(stored_bodies(&store, &dlq).is_empty());
}

#[test]
fn connections_and_subscriptions_are_listed_and_closed_through_their_outbox() {
    let b = Broker::new(
        BrokerConfig::default(),
        RecordingStore::new(),
        Recovered::default(),
    );
    let q = Destination::queue("q");
    let c = b
        .connect(ConnectInfo::in_process(Some("app")), Recorder::new())
        .unwrap();
    b.subscribe(c, spec("s1", q.clone(), AckMode::Auto))
        .unwrap();
    let conns = b.connections();
    assert_eq!(conns.len(), 1);
    assert_eq!(conns[0].subscriptions, 1);
    assert_eq!(conns[0].info.client_id.as_deref(), Some("app"));
    let subs = b.subscriptions();
    assert_eq!(subs.len(), 1);
    assert_eq!(subs[0].destination, q);
    // The test's outbox cannot close; a connection's can (tests in `hawser`).
    assert!(!b.close_connection(c, "bye"));
    assert!(!b.close_connection(c + 100, "bye"));
}

#[test]
fn an_offline_durable_subscription_is_deleted_with_its_messages_and_an_active_one_is_not() {
    let store = RecordingStore::new();
    let b = Broker::new(BrokerConfig::default(), store.clone(), Recovered::default());
    let t = Destination::topic("news");
    let c = b
        .connect(ConnectInfo::in_process(Some("app")), Recorder::new())
        .unwrap();
    let mut s = spec("s", t.clone(), AckMode::Client);
    s.durable_name = Some("d".into());
    b.subscribe(c, s).unwrap();
    assert!(matches!(
        b.destroy_durable("app", "d"),
        Err(BrokerError::DurableActive(_))
    ));
    b.disconnect(c);
    let p = producer(&b);
    b.send(p, msg(t.clone(), "m", true), None).unwrap();
    let subs = b.subscriptions();
    assert_eq!(subs.len(), 1);
    assert_eq!(subs[0].connection, None, "offline");
    assert_eq!(subs[0].pending, 1);
    b.destroy_durable("app", "d").unwrap();
    assert!(b.subscriptions().is_empty());
    let key = StoreKey::Durable {
        client_id: Arc::from("app"),
        name: Arc::from("d"),
    };
    assert!(store.stored(&key).is_empty());
    assert!(matches!(
        b.destroy_durable("app", "d"),
        Err(BrokerError::UnknownSubscription(_))
    ));
}

#[test]
fn the_queues_an_operator_makes_are_bounded() {
    let b = Broker::new(
        BrokerConfig::default(),
        RecordingStore::new(),
        Recovered::default(),
    );
    for n in 0..crate::operator::MAX_DECLARED_QUEUES {
        b.create_destination(&Destination::queue(&format!("q{n}")))
            .unwrap();
    }
    assert!(matches!(
        b.create_destination(&Destination::queue("one.more")),
        Err(BrokerError::Limit(_))
    ));
    // Made again, one that exists is no new one; one deleted makes room.
    b.create_destination(&Destination::queue("q0")).unwrap();
    b.delete_destination(&Destination::queue("q1")).unwrap();
    b.create_destination(&Destination::queue("one.more"))
        .unwrap();
}
