//! The engine keeps every confirmed message: duplicate detection that cannot
//! drop what it has not stored, state that changes only after the store took
//! the record, and limits a client cannot walk around (issue 17).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;

use crate::identity::ConnectInfo;

use crate::outbox::test_support::Recorder;
use crate::test_support::*;
use crate::*;

fn recording_broker(config: BrokerConfig) -> (Broker, Arc<RecordingStore>) {
    let store = RecordingStore::new();
    let b = Broker::new(config, store.clone(), Recovered::default());
    (b, store)
}

fn in_tx(m: NewMessage) -> NewMessage {
    m
}

/// The first reproduction: a transactional send numbered before a
/// plain one of the same producer, committed after it.
#[test]
fn a_committed_send_numbered_before_a_plain_one_is_kept() {
    for client_id in [None, Some("app")] {
        let (b, _) = recording_broker(BrokerConfig::default());
        let q = Destination::queue("interleaved");
        let p = b
            .connect(ConnectInfo::in_process(client_id), Recorder::new())
            .unwrap();
        b.begin(p, "tx1").unwrap();
        b.send(
            p,
            in_tx(from_producer(q.clone(), "A", "p1", 1)),
            Some("tx1"),
        )
        .unwrap();
        b.send(p, from_producer(q.clone(), "B", "p1", 2), None)
            .unwrap();
        b.commit(p, "tx1").unwrap();
        let r = Recorder::new();
        let c = b.connect(ConnectInfo::in_process(None), r.clone()).unwrap();
        b.subscribe(c, spec("s", q, AckMode::Auto)).unwrap();
        let mut got = bodies(&r);
        got.sort();
        assert_eq!(got, vec!["A", "B"], "client id {client_id:?}");
    }
}

/// The second: another connection cannot silence a producer by using its id.
#[test]
fn another_identity_cannot_mark_a_producers_window() {
    let (b, _) = recording_broker(BrokerConfig::default());
    let q = Destination::queue("victim");
    let attacker = b
        .connect(ConnectInfo::in_process(Some("mallory")), Recorder::new())
        .unwrap();
    assert!(matches!(
        b.send(
            attacker,
            from_producer(q.clone(), "x", "victim", u64::MAX),
            None
        ),
        Err(BrokerError::InvalidProducer(_))
    ));
    assert!(matches!(
        b.send(attacker, from_producer(q.clone(), "x", "victim", 0), None),
        Err(BrokerError::InvalidProducer(_))
    ));
    b.send(attacker, from_producer(q.clone(), "x", "victim", 1), None)
        .unwrap();
    let anonymous = b
        .connect(ConnectInfo::in_process(None), Recorder::new())
        .unwrap();
    b.send(anonymous, from_producer(q.clone(), "y", "victim", 1), None)
        .unwrap();
    let victim = b
        .connect(ConnectInfo::in_process(Some("alice")), Recorder::new())
        .unwrap();
    b.send(victim, from_producer(q.clone(), "V", "victim", 1), None)
        .unwrap();
    let other_anonymous = b
        .connect(ConnectInfo::in_process(None), Recorder::new())
        .unwrap();
    b.send(
        other_anonymous,
        from_producer(q.clone(), "W", "victim", 1),
        None,
    )
    .unwrap();
    let r = Recorder::new();
    let c = b.connect(ConnectInfo::in_process(None), r.clone()).unwrap();
    b.subscribe(c, spec("s", q, AckMode::Auto)).unwrap();
    assert_eq!(bodies(&r), vec!["x", "y", "V", "W"]);
}

#[test]
fn a_resend_on_a_reconnected_client_id_is_confirmed_once() {
    let (b, store) = recording_broker(BrokerConfig::default());
    let q = Destination::queue("resend");
    let first = b
        .connect(ConnectInfo::in_process(Some("app")), Recorder::new())
        .unwrap();
    let seq = b
        .send(first, from_producer(q.clone(), "once", "p", 7), None)
        .unwrap();
    b.disconnect(first);
    let again = b
        .connect(ConnectInfo::in_process(Some("app")), Recorder::new())
        .unwrap();
    let resent = b
        .send(again, from_producer(q.clone(), "once", "p", 7), None)
        .unwrap();
    assert!(resent >= seq, "confirmed once the original is durable");
    // The same producer id on an anonymous connection is a different producer.
    let anonymous = b
        .connect(ConnectInfo::in_process(None), Recorder::new())
        .unwrap();
    b.send(anonymous, from_producer(q.clone(), "other", "p", 7), None)
        .unwrap();
    let enqueued = store
        .ops()
        .iter()
        .filter(|op| matches!(op, StoreOp::Enqueue { .. }))
        .count();
    assert_eq!(enqueued, 2);
}

#[test]
fn a_refused_send_leaves_the_producer_window_unmarked() {
    let (b, store) = recording_broker(BrokerConfig::default());
    let q = Destination::queue("refused");
    let p = b
        .connect(ConnectInfo::in_process(Some("app")), Recorder::new())
        .unwrap();
    store.refuse.store(true, Ordering::SeqCst);
    assert!(matches!(
        b.send(p, from_producer(q.clone(), "first try", "p", 1), None),
        Err(BrokerError::Store(_))
    ));
    assert_eq!(b.stats().iter().map(|s| s.pending).sum::<usize>(), 0);
    store.refuse.store(false, Ordering::SeqCst);
    b.send(p, from_producer(q.clone(), "second try", "p", 1), None)
        .unwrap();
    let r = Recorder::new();
    let c = b.connect(ConnectInfo::in_process(None), r.clone()).unwrap();
    b.subscribe(c, spec("s", q, AckMode::Auto)).unwrap();
    assert_eq!(bodies(&r), vec!["second try"]);
}

#[test]
fn a_refused_commit_changes_nothing() {
    let (b, store) = recording_broker(BrokerConfig::default());
    let q = Destination::queue("commit");
    let r = Recorder::new();
    let c = b
        .connect(ConnectInfo::in_process(Some("app")), r.clone())
        .unwrap();
    b.send(c, msg(q.clone(), "held", true), None).unwrap();
    b.subscribe(c, spec("s", q.clone(), AckMode::ClientIndividual))
        .unwrap();
    let held = r.take().remove(0).message.id;
    b.begin(c, "t").unwrap();
    b.ack(c, Some("s"), held, Some("t"), false).unwrap();
    b.send(c, from_producer(q.clone(), "new", "p", 1), Some("t"))
        .unwrap();
    store.refuse.store(true, Ordering::SeqCst);
    assert!(b.commit(c, "t").is_err());
    // Nothing was published or settled: the ack can still be rolled back.
    assert!(r.take().is_empty());
    store.refuse.store(false, Ordering::SeqCst);
    b.commit(c, "t").unwrap();
    assert_eq!(bodies(&r), vec!["new"]);
    let stored: Vec<_> = store
        .stored_all()
        .into_iter()
        .map(|(m, _)| m.body)
        .collect();
    assert_eq!(stored, vec![Bytes::from_static(b"new")]);
}

#[test]
fn a_refused_ack_keeps_the_message_held() {
    let (b, store) = recording_broker(BrokerConfig::default());
    let q = Destination::queue("ack");
    let r = Recorder::new();
    let c = b.connect(ConnectInfo::in_process(None), r.clone()).unwrap();
    b.subscribe(c, spec("s", q.clone(), AckMode::Client))
        .unwrap();
    b.send(c, msg(q.clone(), "m", true), None).unwrap();
    let id = r.take().remove(0).message.id;
    store.refuse.store(true, Ordering::SeqCst);
    assert!(b.ack(c, Some("s"), id, None, true).is_err());
    store.refuse.store(false, Ordering::SeqCst);
    b.ack(c, Some("s"), id, None, true).unwrap();
    assert!(store.stored_all().is_empty());
}

#[test]
fn a_refused_dead_letter_move_keeps_the_message_where_it_was() {
    let config = BrokerConfig {
        max_redeliveries: 0,
        ..BrokerConfig::default()
    };
    let (b, store) = recording_broker(config);
    let q = Destination::queue("poison");
    let r = Recorder::new();
    let c = b.connect(ConnectInfo::in_process(None), r.clone()).unwrap();
    b.subscribe(c, spec("s", q.clone(), AckMode::ClientIndividual))
        .unwrap();
    b.send(c, msg(q.clone(), "m", true), None).unwrap();
    let id = r.take().remove(0).message.id;
    store.refuse.store(true, Ordering::SeqCst);
    b.nack(c, Some("s"), id).unwrap();
    let pending: usize = b
        .stats()
        .iter()
        .filter(|s| s.name == "queue://poison")
        .map(|s| s.pending + s.inflight)
        .sum();
    assert_eq!(pending, 1, "still in its queue: {:?}", b.stats());
    assert!(!b
        .stats()
        .iter()
        .any(|s| s.name.contains("DLQ") && s.pending > 0));
}

#[test]
fn records_larger_than_the_store_takes_are_refused_up_front() {
    let (b, store) = recording_broker(BrokerConfig::default());
    store.max_record.store(64 * 1024, Ordering::SeqCst);
    let q = Destination::queue("big");
    let c = b
        .connect(ConnectInfo::in_process(None), Recorder::new())
        .unwrap();
    let big = NewMessage {
        body: Bytes::from(vec![b'x'; 64 * 1024]),
        ..msg(q.clone(), "", true)
    };
    assert!(matches!(
        b.send(c, big.clone(), None),
        Err(BrokerError::TooLarge { .. })
    ));
    // Non-persistent messages are not stored: no record limit.
    b.send(
        c,
        NewMessage {
            persistent: false,
            ..big
        },
        None,
    )
    .unwrap();
    // A transaction is refused at the SEND that would overflow its COMMIT record.
    b.begin(c, "t").unwrap();
    let part = NewMessage {
        body: Bytes::from(vec![b'y'; 20 * 1024]),
        ..msg(q.clone(), "", true)
    };
    let mut refused = None;
    for i in 0..4 {
        if let Err(e) = b.send(c, part.clone(), Some("t")) {
            refused = Some((i, e));
            break;
        }
    }
    let (at, e) = refused.expect("the transaction reached the limit");
    assert!(matches!(e, BrokerError::TooLarge { .. }));
    assert!(at >= 1, "some sends fit");
    b.commit(c, "t").unwrap();
    assert!(store
        .records
        .lock()
        .iter()
        .all(|(ops, _)| store_codec::encoded_len(ops) <= 64 * 1024));
}

#[test]
fn transactional_sends_are_charged_to_memory_until_the_transaction_ends() {
    let b = memory_broker();
    let q = Destination::queue("charged");
    let c = b
        .connect(ConnectInfo::in_process(None), Recorder::new())
        .unwrap();
    let before = b.memory().used();
    b.begin(c, "t").unwrap();
    b.send(
        c,
        NewMessage {
            body: Bytes::from(vec![0; 10_000]),
            ..msg(q.clone(), "", false)
        },
        Some("t"),
    )
    .unwrap();
    assert!(b.memory().used() >= before + 10_000);
    assert!(b.destination_usage(&q).used() >= 10_000);
    b.abort(c, "t").unwrap();
    assert_eq!(b.memory().used(), before);
}

#[test]
fn a_full_destination_does_not_hold_producers_of_another() {
    let config = BrokerConfig {
        max_pending_memory_bytes: 100_000,
        ..BrokerConfig::default()
    };
    // A store that keeps nothing: messages cannot page (or spill) there.
    let b = Broker::new(config, Arc::new(MemoryStore::new()), Recovered::default());
    let big = Destination::queue("big");
    let other = Destination::queue("other");
    let c = b
        .connect(ConnectInfo::in_process(None), Recorder::new())
        .unwrap();
    let usage = b.destination_usage(&big);
    for _ in 0..1000 {
        if usage.room().is_err() {
            break;
        }
        b.send(c, msg(big.clone(), &"x".repeat(1000), false), None)
            .unwrap();
    }
    assert_eq!(usage.room(), Err(Full::Broker));
    assert!(b.memory().is_full());
    assert_eq!(b.destination_usage(&other).room(), Ok(()));

    // A destination's own limit holds it before the broker's.
    let config = BrokerConfig {
        policies: vec![PolicyEntry {
            pattern: DestinationPattern::new(false, "limited.>").unwrap(),
            policy: DestinationPolicy {
                memory_limit_bytes: 10_000,
                producer_flow_control: Some(false),
            },
        }],
        ..BrokerConfig::default()
    };
    let b = Broker::new(config, Arc::new(MemoryStore::new()), Recovered::default());
    let limited = Destination::queue("limited.a");
    let c = b
        .connect(ConnectInfo::in_process(None), Recorder::new())
        .unwrap();
    let usage = b.destination_usage(&limited);
    assert_eq!(usage.policy().producer_flow_control, Some(false));
    while usage.room().is_ok() {
        b.send(c, msg(limited.clone(), &"x".repeat(1000), false), None)
            .unwrap();
    }
    assert_eq!(usage.room(), Err(Full::Destination));
    assert!(!b.memory().is_full());
    assert_eq!(b.destination_usage(&big).room(), Ok(()));
}

#[test]
fn temporary_destinations_are_bounded_and_must_exist() {
    let config = BrokerConfig {
        max_temporary_destinations_per_connection: 2,
        ..BrokerConfig::default()
    };
    let (b, _) = recording_broker(config);
    let c = b
        .connect(ConnectInfo::in_process(None), Recorder::new())
        .unwrap();
    let temp = |n: &str| Destination::new(DestinationKind::TempQueue, n).unwrap();
    b.register_temporary(c, &temp("a")).unwrap();
    b.register_temporary(c, &temp("a")).unwrap();
    b.register_temporary(c, &temp("b")).unwrap();
    assert_eq!(
        b.register_temporary(c, &temp("c")),
        Err(BrokerError::Limit("temporary destinations per connection"))
    );
    let other = b
        .connect(ConnectInfo::in_process(None), Recorder::new())
        .unwrap();
    b.send(other, msg(temp("a"), "reply", false), None).unwrap();
    assert!(matches!(
        b.send(other, msg(temp("nobody"), "lost", false), None),
        Err(BrokerError::UnknownTemporary(_))
    ));
    b.disconnect(c);
    assert!(matches!(
        b.send(other, msg(temp("a"), "late", false), None),
        Err(BrokerError::UnknownTemporary(_))
    ));
}

#[test]
fn idle_queues_and_their_counters_are_released() {
    let b = memory_broker();
    let r = Recorder::new();
    let c = b.connect(ConnectInfo::in_process(None), r.clone()).unwrap();
    for i in 0..200 {
        let q = Destination::queue(&format!("q{i}"));
        b.send(c, msg(q, "x", true), None).unwrap();
    }
    assert_eq!(b.stats().len(), 200);
    for i in 0..200 {
        let q = Destination::queue(&format!("q{i}"));
        b.subscribe(c, spec(&format!("s{i}"), q, AckMode::Auto))
            .unwrap();
    }
    let written: Vec<_> = r
        .take()
        .iter()
        .map(|d| (d.consumer, d.message.id))
        .collect();
    b.delivered(&written);
    for i in 0..200 {
        b.unsubscribe(c, Some(&format!("s{i}")), None).unwrap();
    }
    b.expire();
    assert!(b.stats().is_empty(), "{:?}", &b.stats()[..3]);
    assert_eq!(b.tracked_destinations(), 0);
}

#[test]
fn prefetch_and_browsers_are_bounded() {
    let config = BrokerConfig {
        max_prefetch: 5,
        max_subscriptions_per_connection: 2,
        ..BrokerConfig::default()
    };
    let (b, _) = recording_broker(config);
    let q = Destination::queue("p");
    let r = Recorder::new();
    let c = b.connect(ConnectInfo::in_process(None), r.clone()).unwrap();
    for i in 0..10 {
        b.send(c, msg(q.clone(), &i.to_string(), false), None)
            .unwrap();
    }
    let mut s = spec("s", q.clone(), AckMode::Client);
    s.prefetch = u32::MAX;
    b.subscribe(c, s).unwrap();
    assert_eq!(r.take().len(), 5);
    b.open_browser(c, &q).unwrap();
    assert_eq!(
        b.open_browser(c, &q),
        Err(BrokerError::Limit("subscriptions per connection"))
    );
    assert_eq!(
        b.subscribe(c, spec("t", q.clone(), AckMode::Auto)),
        Err(BrokerError::Limit("subscriptions per connection"))
    );
    b.close_browser(c);
    b.subscribe(c, spec("t", q, AckMode::Auto)).unwrap();
}
