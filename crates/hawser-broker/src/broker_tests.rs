//! Engine behaviour, driven without any protocol or disk.

use std::sync::Arc;

use bytes::Bytes;

use crate::identity::ConnectInfo;

use crate::outbox::test_support::Recorder;
use crate::test_support::*;
use crate::*;

#[test]
fn queue_competing_consumers_and_ack() {
    let b = memory_broker();
    let (r1, r2) = (Recorder::new(), Recorder::new());
    let c1 = b
        .connect(ConnectInfo::in_process(None), r1.clone())
        .unwrap();
    let c2 = b
        .connect(ConnectInfo::in_process(None), r2.clone())
        .unwrap();
    let q = Destination::queue("orders");
    b.subscribe(c1, spec("s", q.clone(), AckMode::ClientIndividual))
        .unwrap();
    b.subscribe(c2, spec("s", q.clone(), AckMode::ClientIndividual))
        .unwrap();
    for i in 0..4 {
        b.send(c1, msg(q.clone(), &i.to_string(), false), None)
            .unwrap();
    }
    assert_eq!(r1.ids().len() + r2.ids().len(), 4);
    assert_eq!(r1.ids().len(), 2, "round robin");
    let id = r1.ids()[0];
    b.ack(c1, Some("s"), id, None, false).unwrap();
    assert_eq!(
        b.ack(c1, Some("s"), id, None, false),
        Err(BrokerError::UnknownMessage(id))
    );
    assert_eq!(
        b.ack(c1, Some("nope"), id, None, false),
        Err(BrokerError::UnknownSubscription("nope".into()))
    );
}

#[test]
fn a_queue_serves_its_highest_priority_consumers_first() {
    let b = memory_broker();
    let q = Destination::queue("work");
    let consumer = |priority: i8, prefetch: u32, selector: Option<&str>| {
        let r = Recorder::new();
        let c = b.connect(ConnectInfo::in_process(None), r.clone()).unwrap();
        let mut s = spec("s", q.clone(), AckMode::ClientIndividual);
        s.priority = priority;
        s.prefetch = prefetch;
        s.selector = selector.map(str::to_owned);
        b.subscribe(c, s).unwrap();
        (c, r)
    };
    // A network link's consumer (below local ones), then two local ones.
    let (_, low) = consumer(-1, 100, None);
    let (hc, high) = consumer(5, 2, Some("big IS NULL"));
    let (_, normal) = consumer(0, 2, None);
    let p = b
        .connect(ConnectInfo::in_process(None), Recorder::new())
        .unwrap();
    for i in 0..6 {
        b.send(p, msg(q.clone(), &format!("m{i}"), false), None)
            .unwrap();
    }
    assert_eq!(
        bodies(&high),
        vec!["m0", "m1"],
        "the highest first, to its window"
    );
    assert_eq!(bodies(&normal), vec!["m2", "m3"], "then the next");
    assert_eq!(
        bodies(&low),
        vec!["m4", "m5"],
        "the lowest only beyond both"
    );

    // Room again at the top: it is served before the lowest, which has room.
    b.ack(hc, Some("s"), high.ids()[0], None, false).unwrap();
    b.send(p, msg(q.clone(), "m6", false), None).unwrap();
    assert_eq!(bodies(&high).last().map(String::as_str), Some("m6"));
    // What its selector refuses goes down a level at once.
    let mut big = msg(q.clone(), "big", false);
    big.fields
        .properties
        .push((Arc::from("big"), PropertyValue::Bool(true)));
    b.ack(hc, Some("s"), high.ids()[1], None, false).unwrap();
    b.send(p, big, None).unwrap();
    assert_eq!(bodies(&low).last().map(String::as_str), Some("big"));
}

#[test]
fn disconnect_redelivers_then_dead_letters_after_max_redeliveries() {
    let b = memory_broker();
    let q = Destination::queue("work");
    let p = b
        .connect(ConnectInfo::in_process(None), Recorder::new())
        .unwrap();
    b.send(p, msg(q.clone(), "poison", true), None).unwrap();
    for attempt in 0..=6 {
        let r = Recorder::new();
        let c = b.connect(ConnectInfo::in_process(None), r.clone()).unwrap();
        b.subscribe(c, spec("s", q.clone(), AckMode::Client))
            .unwrap();
        let d = r.take();
        assert_eq!(d.len(), 1, "attempt {attempt}");
        assert_eq!(d[0].redelivery_count, attempt);
        b.disconnect(c);
    }
    // Seventh failure: gone from the queue, in the DLQ with its cause.
    let r = Recorder::new();
    let c = b.connect(ConnectInfo::in_process(None), r.clone()).unwrap();
    b.subscribe(c, spec("s", q.clone(), AckMode::Client))
        .unwrap();
    assert!(r.take().is_empty());
    b.subscribe(
        c,
        spec("dlq", Destination::queue("ActiveMQ.DLQ"), AckMode::Auto),
    )
    .unwrap();
    let d = r.take();
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].message.body, Bytes::from_static(b"poison"));
    assert_eq!(
        d[0].message.fields.original_destination,
        Some(Destination::queue("work"))
    );
    assert!(d[0].message.persistent);
}

#[test]
fn nack_redelivers_immediately() {
    let b = memory_broker();
    let q = Destination::queue("n");
    let r = Recorder::new();
    let c = b.connect(ConnectInfo::in_process(None), r.clone()).unwrap();
    b.subscribe(c, spec("s", q.clone(), AckMode::ClientIndividual))
        .unwrap();
    b.send(c, msg(q.clone(), "x", false), None).unwrap();
    let first = r.take();
    b.nack(c, None, first[0].message.id).unwrap();
    let again = r.take();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].redelivery_count, 1);
}

#[test]
fn poison_dead_letters_at_once_only_what_it_names() {
    let b = memory_broker();
    let q = Destination::queue("p");
    let r = Recorder::new();
    let c = b.connect(ConnectInfo::in_process(None), r.clone()).unwrap();
    b.subscribe(c, spec("s", q.clone(), AckMode::Client))
        .unwrap();
    for body in ["1", "2", "3"] {
        b.send(c, msg(q.clone(), body, true), None).unwrap();
    }
    let held = r.take();
    assert_eq!(held.len(), 3);
    // One message refused (a duplicate the client's audit dropped): the
    // DLQ has it, the consumer keeps what came before it, nothing comes again.
    b.poison(c, Some("s"), held[1].message.id, false, "duplicate")
        .unwrap();
    assert!(r.take().is_empty(), "not redelivered");
    b.ack(c, Some("s"), held[0].message.id, None, false)
        .unwrap();
    // A range refused (past the client's redelivery limit): all of it.
    b.poison(c, Some("s"), held[2].message.id, true, "too often")
        .unwrap();
    assert_eq!(
        b.poison(c, Some("s"), held[2].message.id, false, "again"),
        Err(BrokerError::UnknownMessage(held[2].message.id))
    );
    b.subscribe(
        c,
        spec("dlq", Destination::queue("ActiveMQ.DLQ"), AckMode::Auto),
    )
    .unwrap();
    let dead = r.take();
    let bodies: Vec<&[u8]> = dead.iter().map(|d| &d.message.body[..]).collect();
    assert_eq!(bodies, [b"2", b"3"]);
    let cause = |i: usize| {
        dead[i]
            .message
            .property(crate::redelivery::DLQ_CAUSE_PROPERTY)
    };
    let text = |t: &str| PropertyValue::String(Arc::from(t));
    assert_eq!(cause(0), Some(&text("duplicate")));
    assert_eq!(cause(1), Some(&text("too often")));
}

#[test]
fn transactions_commit_and_abort() {
    let b = memory_broker();
    let q = Destination::queue("tx");
    let r = Recorder::new();
    let c = b.connect(ConnectInfo::in_process(None), r.clone()).unwrap();
    b.subscribe(c, spec("s", q.clone(), AckMode::ClientIndividual))
        .unwrap();
    b.begin(c, "t1").unwrap();
    b.send(c, msg(q.clone(), "a", false), Some("t1")).unwrap();
    assert!(r.ids().is_empty(), "nothing before commit");
    b.commit(c, "t1").unwrap();
    assert_eq!(bodies(&r), vec!["a"]);
    assert_eq!(
        b.commit(c, "t1"),
        Err(BrokerError::UnknownTransaction("t1".into()))
    );

    // Ack in a transaction, abort: the message comes back redelivered.
    let id = r.take()[0].message.id;
    b.begin(c, "t2").unwrap();
    b.send(c, msg(q.clone(), "dropped", false), Some("t2"))
        .unwrap();
    b.ack(c, None, id, Some("t2"), false).unwrap();
    b.abort(c, "t2").unwrap();
    let d = r.take();
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].message.id, id);
    assert_eq!(d[0].redelivery_count, 1);
    assert_eq!(b.begin(c, "t3"), Ok(()));
    assert_eq!(
        b.begin(c, "t3"),
        Err(BrokerError::DuplicateTransaction("t3".into()))
    );
}

#[test]
fn topic_fan_out_selectors_and_no_local() {
    let b = memory_broker();
    let t = Destination::topic("prices");
    let (r1, r2, r3) = (Recorder::new(), Recorder::new(), Recorder::new());
    let c1 = b
        .connect(ConnectInfo::in_process(None), r1.clone())
        .unwrap();
    let c2 = b
        .connect(ConnectInfo::in_process(None), r2.clone())
        .unwrap();
    let c3 = b
        .connect(ConnectInfo::in_process(None), r3.clone())
        .unwrap();
    b.subscribe(c1, spec("a", t.clone(), AckMode::Auto))
        .unwrap();
    let mut s2 = spec("b", t.clone(), AckMode::Auto);
    s2.selector = Some("symbol = 'ACME'".into());
    b.subscribe(c2, s2).unwrap();
    let mut s3 = spec("c", t.clone(), AckMode::Auto);
    s3.no_local = true;
    b.subscribe(c3, s3).unwrap();
    let mut m = msg(t.clone(), "1", false);
    m.fields.properties.push((
        Arc::from("symbol"),
        crate::PropertyValue::String(Arc::from("ACME")),
    ));
    b.send(c3, m, None).unwrap();
    b.send(c3, msg(t.clone(), "2", false), None).unwrap();
    assert_eq!(bodies(&r1), vec!["1", "2"]);
    assert_eq!(bodies(&r2), vec!["1"]);
    assert!(bodies(&r3).is_empty());
}

#[test]
fn wildcard_topic_subscriptions_get_what_matches_once() {
    let b = memory_broker();
    let (all, one, exact) = (Recorder::new(), Recorder::new(), Recorder::new());
    let c1 = b
        .connect(ConnectInfo::in_process(None), all.clone())
        .unwrap();
    let c2 = b
        .connect(ConnectInfo::in_process(None), one.clone())
        .unwrap();
    let c3 = b
        .connect(ConnectInfo::in_process(None), exact.clone())
        .unwrap();
    let sub = |c, id, name| {
        b.subscribe(c, spec(id, Destination::topic(name), AckMode::Auto))
            .unwrap()
    };
    sub(c1, "all", "PRICE.>");
    sub(c2, "one", "PRICE.*.IBM");
    sub(c3, "exact", "PRICE.STOCK.IBM");
    let p = b
        .connect(ConnectInfo::in_process(None), Recorder::new())
        .unwrap();
    for (topic, body) in [
        ("PRICE.STOCK.IBM", "1"),
        ("PRICE.BOND.IBM", "2"),
        ("PRICE.STOCK.NASDAQ.IBM", "3"),
        ("PRICE", "4"),
        ("OTHER.STOCK.IBM", "5"),
        ("PRICE.>", "6"),
    ] {
        b.send(p, msg(Destination::topic(topic), body, false), None)
            .unwrap();
    }
    assert_eq!(bodies(&all), vec!["1", "2", "3", "6"]);
    assert_eq!(bodies(&one), vec!["1", "2"]);
    assert_eq!(bodies(&exact), vec!["1"]);
    // A pattern nobody subscribes to any more is not checked any more.
    b.unsubscribe(c1, Some("all"), None).unwrap();
    b.send(p, msg(Destination::topic("PRICE.X"), "7", false), None)
        .unwrap();
    assert_eq!(bodies(&all), vec!["1", "2", "3", "6"]);
}

#[test]
fn a_composite_subscription_gets_a_message_once_even_through_two_names() {
    let b = memory_broker();
    let r = Recorder::new();
    let c = b.connect(ConnectInfo::in_process(None), r.clone()).unwrap();
    b.subscribe(
        c,
        spec(
            "s",
            Destination::topic("a.*,topic://a.b,queue://q,c"),
            AckMode::Auto,
        ),
    )
    .unwrap();
    let p = b
        .connect(ConnectInfo::in_process(None), Recorder::new())
        .unwrap();
    for (topic, body) in [("a.b", "1"), ("a.x", "2"), ("c", "3"), ("q", "4")] {
        b.send(p, msg(Destination::topic(topic), body, false), None)
            .unwrap();
    }
    assert_eq!(bodies(&r), vec!["1", "2", "3"]);
    b.unsubscribe(c, Some("s"), None).unwrap();
    b.send(p, msg(Destination::topic("c"), "5", false), None)
        .unwrap();
    assert_eq!(bodies(&r), vec!["1", "2", "3"]);
}

#[test]
fn a_send_to_a_composite_destination_puts_a_copy_in_each_part_across_a_restart() {
    let store = RecordingStore::new();
    let b = Broker::new(BrokerConfig::default(), store.clone(), Recovered::default());
    let news = Recorder::new();
    let listener = b
        .connect(ConnectInfo::in_process(None), news.clone())
        .unwrap();
    b.subscribe(
        listener,
        spec("t", Destination::topic("news"), AckMode::Auto),
    )
    .unwrap();
    let p = b
        .connect(ConnectInfo::in_process(None), Recorder::new())
        .unwrap();
    let composite = Destination::queue("a,topic://news,queue://b");
    b.send(p, msg(composite.clone(), "m", true), None).unwrap();
    let got = news.take();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].message.destination, Destination::topic("news"));
    assert_eq!(
        got[0].message.fields.original_destination,
        Some(composite.clone())
    );
    // Every part is a queue or topic of its own; no queue is named after the composite.
    assert!(b.browse(&composite, 10).is_empty());
    drop(b);
    let b = restarted(BrokerConfig::default(), &store);
    for name in ["a", "b"] {
        let held = b.browse(&Destination::queue(name), 10);
        assert_eq!(held.len(), 1, "queue {name}");
        assert_eq!(
            held[0].0.fields.original_destination,
            Some(composite.clone())
        );
    }
    let c = b
        .connect(ConnectInfo::in_process(None), Recorder::new())
        .unwrap();
    assert!(matches!(
        b.subscribe(c, spec("s", composite, AckMode::Auto)),
        Err(BrokerError::MultiQueueConsumer(_))
    ));
    assert!(matches!(
        b.subscribe(c, spec("w", Destination::queue("a.>"), AckMode::Auto)),
        Err(BrokerError::MultiQueueConsumer(_))
    ));
}

#[test]
fn a_durable_subscription_to_a_pattern_keeps_what_matches_across_a_restart() {
    let store = RecordingStore::new();
    let b = Broker::new(BrokerConfig::default(), store.clone(), Recovered::default());
    let c = b
        .connect(ConnectInfo::in_process(Some("reader")), Recorder::new())
        .unwrap();
    let mut s = spec("s", Destination::topic("news.*"), AckMode::ClientIndividual);
    s.durable_name = Some("all-news".into());
    b.subscribe(c, s.clone()).unwrap();
    b.disconnect(c);
    let p = b
        .connect(ConnectInfo::in_process(None), Recorder::new())
        .unwrap();
    b.send(p, msg(Destination::topic("news.eu"), "eu", true), None)
        .unwrap();
    b.send(p, msg(Destination::topic("sport.eu"), "no", true), None)
        .unwrap();
    let b2 = restarted(BrokerConfig::default(), &store);
    let p2 = b2
        .connect(ConnectInfo::in_process(None), Recorder::new())
        .unwrap();
    b2.send(p2, msg(Destination::topic("news.us"), "us", true), None)
        .unwrap();
    let r = Recorder::new();
    let c = b2
        .connect(ConnectInfo::in_process(Some("reader")), r.clone())
        .unwrap();
    b2.subscribe(c, s).unwrap();
    assert_eq!(bodies(&r), vec!["eu", "us"]);
}

#[test]
fn consumers_are_announced_with_their_demand_and_a_new_listener_hears_of_those_there_are() {
    use crate::advisory::*;
    use crate::property::property;
    let b = memory_broker();
    let text = |d: &Delivery, name: &str| match property(&d.message.fields.properties, name) {
        Some(PropertyValue::String(s)) => Some(s.to_string()),
        Some(PropertyValue::Bool(v)) => Some(v.to_string()),
        Some(PropertyValue::Int(v)) => Some(v.to_string()),
        _ => None,
    };
    let app = b
        .connect(ConnectInfo::in_process(None), Recorder::new())
        .unwrap();
    let mut s = spec("before", Destination::queue("orders"), AckMode::Auto);
    s.selector = Some("region = 'eu'".into());
    b.subscribe(app, s).unwrap();

    // A network link listens: it hears of the consumer that exists at once.
    let watcher = Recorder::new();
    let w = b
        .connect(ConnectInfo::in_process(None), watcher.clone())
        .unwrap();
    b.subscribe(
        w,
        spec(
            "demand",
            Destination::topic("ActiveMQ.Advisory.Consumer.>"),
            AckMode::Auto,
        ),
    )
    .unwrap();
    let replayed = watcher.take();
    assert_eq!(
        replayed.len(),
        1,
        "only the consumer there was, not the listener itself"
    );
    let d = &replayed[0];
    assert_eq!(
        &*d.message.destination.name,
        "ActiveMQ.Advisory.Consumer.Queue.orders"
    );
    assert_eq!(
        text(d, ADVISORY_DESTINATION).as_deref(),
        Some("queue://orders")
    );
    assert_eq!(text(d, ADVISORY_ADDED).as_deref(), Some("true"));
    assert_eq!(text(d, ADVISORY_SELECTOR).as_deref(), Some("region = 'eu'"));
    assert_eq!(text(d, ADVISORY_NETWORK_PATH), None);

    // A link's own consumer carries its path; a topic pattern is announced
    // on the kind's topic; removals are announced, by consumer id.
    let mut net = spec(
        "net",
        Destination::queue("orders"),
        AckMode::ClientIndividual,
    );
    net.priority = -1;
    net.network_path = Some(Arc::from("broker-b"));
    b.subscribe(app, net).unwrap();
    b.subscribe(
        app,
        spec("prices", Destination::topic("PRICE.>"), AckMode::Auto),
    )
    .unwrap();
    b.unsubscribe(app, Some("before"), None).unwrap();
    b.disconnect(app);
    let seen: Vec<(String, String, Option<String>, Option<String>)> = watcher
        .take()
        .iter()
        .map(|d| {
            (
                d.message.destination.name.to_string(),
                text(d, ADVISORY_ADDED).unwrap(),
                text(d, ADVISORY_NETWORK_PATH),
                text(d, ADVISORY_PRIORITY),
            )
        })
        .collect();
    let q = "ActiveMQ.Advisory.Consumer.Queue.orders".to_owned();
    let t = "ActiveMQ.Advisory.Consumer.Topic".to_owned();
    let (yes, no) = ("true".to_owned(), "false".to_owned());
    let (net_path, zero, minus) = (
        Some("broker-b".to_owned()),
        Some("0".to_owned()),
        Some("-1".to_owned()),
    );
    assert_eq!(
        seen[0],
        (q.clone(), yes.clone(), net_path.clone(), minus.clone())
    );
    assert_eq!(seen[1], (t.clone(), yes, None, zero.clone()));
    assert_eq!(seen[2], (q.clone(), no.clone(), None, zero.clone()));
    // The disconnect removes the other two, in no promised order.
    let mut rest = seen[3..].to_vec();
    rest.sort();
    assert_eq!(
        rest,
        vec![(q, no.clone(), net_path, minus), (t, no, None, zero)]
    );
}

#[test]
fn temporary_destinations_are_announced_on_the_advisory_topics() {
    use crate::advisory::read_advisory;
    let b = memory_broker();
    let watcher = Recorder::new();
    let w = b
        .connect(ConnectInfo::in_process(None), watcher.clone())
        .unwrap();
    // As ActiveMQ's client subscribes: one composite of both advisory topics.
    b.subscribe(
        w,
        spec(
            "advisories",
            Destination::topic("ActiveMQ.Advisory.TempQueue,ActiveMQ.Advisory.TempTopic"),
            AckMode::Auto,
        ),
    )
    .unwrap();
    let owner = b
        .connect(ConnectInfo::in_process(None), Recorder::new())
        .unwrap();
    let q = Destination::new(DestinationKind::TempQueue, "ID:c-1:1:1").unwrap();
    let t = Destination::new(DestinationKind::TempTopic, "ID:c-1:1:2").unwrap();
    b.register_temporary(owner, &q).unwrap();
    b.register_temporary(owner, &t).unwrap();
    b.delete_temporary_destination(owner, &q).unwrap();
    assert!(matches!(
        b.delete_temporary_destination(w, &t),
        Err(BrokerError::UnknownTemporary(_))
    ));
    b.disconnect(owner);
    let seen: Vec<(Destination, bool)> = watcher
        .take()
        .iter()
        .map(|d| read_advisory(&d.message.fields).expect("an advisory"))
        .collect();
    assert_eq!(
        seen,
        vec![(q.clone(), true), (t.clone(), true), (q, false), (t, false)]
    );
}

#[test]
fn a_new_advisory_subscriber_is_told_of_the_temporary_destinations_that_exist() {
    use crate::advisory::read_advisory;
    let b = memory_broker();
    let owner = b
        .connect(ConnectInfo::in_process(None), Recorder::new())
        .unwrap();
    let q = Destination::new(DestinationKind::TempQueue, "ID:c-1:1:1").unwrap();
    let t = Destination::new(DestinationKind::TempTopic, "ID:c-1:1:2").unwrap();
    b.register_temporary(owner, &q).unwrap();
    b.register_temporary(owner, &t).unwrap();
    // Subscribed by pattern, after both exist: told of the queue only, and
    // only this subscriber (an earlier one heard of them when they were made).
    let early = Recorder::new();
    let e = b
        .connect(ConnectInfo::in_process(None), early.clone())
        .unwrap();
    early.take();
    let late = Recorder::new();
    let l = b
        .connect(ConnectInfo::in_process(None), late.clone())
        .unwrap();
    b.subscribe(
        e,
        spec(
            "all",
            Destination::topic("ActiveMQ.Advisory.>"),
            AckMode::Auto,
        ),
    )
    .unwrap();
    early.take();
    b.subscribe(
        l,
        spec(
            "queues",
            Destination::topic("ActiveMQ.Advisory.TempQueue"),
            AckMode::Auto,
        ),
    )
    .unwrap();
    let seen: Vec<(Destination, bool)> = late
        .take()
        .iter()
        .map(|d| read_advisory(&d.message.fields).expect("an advisory"))
        .collect();
    assert_eq!(seen, vec![(q, true)]);
    assert!(
        early.take().is_empty(),
        "the other subscriber is told nothing again"
    );
    // A plain topic subscriber is told nothing.
    let plain = Recorder::new();
    let p = b
        .connect(ConnectInfo::in_process(None), plain.clone())
        .unwrap();
    b.subscribe(p, spec("news", Destination::topic("news"), AckMode::Auto))
        .unwrap();
    assert!(plain.take().is_empty());
}

#[test]
fn invalid_selector_is_refused() {
    let b = memory_broker();
    let c = b
        .connect(ConnectInfo::in_process(None), Recorder::new())
        .unwrap();
    let mut s = spec("s", Destination::queue("q"), AckMode::Auto);
    s.selector = Some("a = ".into());
    assert!(matches!(
        b.subscribe(c, s),
        Err(BrokerError::InvalidSelector { .. })
    ));
}

#[test]
fn client_id_is_exclusive() {
    let b = memory_broker();
    let c = b
        .connect(ConnectInfo::in_process(Some("app")), Recorder::new())
        .unwrap();
    assert_eq!(
        b.connect(ConnectInfo::in_process(Some("app")), Recorder::new()),
        Err(BrokerError::ClientIdInUse("app".into()))
    );
    b.disconnect(c);
    assert!(b
        .connect(ConnectInfo::in_process(Some("app")), Recorder::new())
        .is_ok());
}

#[test]
fn durable_subscription_survives_absence_and_restart() {
    let store = RecordingStore::new();
    let b = Broker::new(BrokerConfig::default(), store.clone(), Recovered::default());
    let t = Destination::topic("news");
    let r = Recorder::new();
    let c = b
        .connect(ConnectInfo::in_process(Some("reader")), r.clone())
        .unwrap();
    let mut s = spec("s", t.clone(), AckMode::ClientIndividual);
    s.durable_name = Some("daily".into());
    assert!(
        b.subscribe(c, s.clone()).unwrap() > 0,
        "subscription is stored"
    );
    b.disconnect(c);

    let p = b
        .connect(ConnectInfo::in_process(None), Recorder::new())
        .unwrap();
    b.send(p, msg(t.clone(), "kept", true), None).unwrap();
    b.send(p, msg(t.clone(), "volatile", false), None).unwrap();

    // Restart from what the store holds: only the persistent message survives.
    let b2 = restarted(BrokerConfig::default(), &store);
    let r = Recorder::new();
    let c = b2
        .connect(ConnectInfo::in_process(Some("reader")), r.clone())
        .unwrap();
    b2.subscribe(c, s.clone()).unwrap();
    assert_eq!(bodies(&r), vec!["kept"]);
    let id = r.ids()[0];
    b2.ack(c, Some("s"), id, None, true).unwrap();
    assert!(store
        .ops()
        .iter()
        .any(|op| matches!(op, StoreOp::Dequeue { id: i, .. } if *i == id)));

    // Unsubscribing by name deletes it for good.
    b2.unsubscribe(c, Some("s"), Some("daily")).unwrap();
    assert!(store.recover().subscriptions.is_empty());
}

#[test]
fn durable_needs_client_id_and_single_subscriber() {
    let b = memory_broker();
    let t = Destination::topic("x");
    let mut s = spec("s", t.clone(), AckMode::Auto);
    s.durable_name = Some("d".into());
    let anon = b
        .connect(ConnectInfo::in_process(None), Recorder::new())
        .unwrap();
    assert_eq!(
        b.subscribe(anon, s.clone()),
        Err(BrokerError::DurableNeedsClientId)
    );
    let c = b
        .connect(ConnectInfo::in_process(Some("me")), Recorder::new())
        .unwrap();
    b.subscribe(c, s.clone()).unwrap();
    let mut s2 = s.clone();
    s2.id = Arc::from("other");
    assert_eq!(
        b.subscribe(c, s2),
        Err(BrokerError::DurableActive("d".into()))
    );
}

#[test]
fn persistent_deliveries_wait_for_their_record_only_without_concurrent_dispatch() {
    for concurrent in [false, true] {
        let config = BrokerConfig {
            concurrent_store_and_dispatch: concurrent,
            ..BrokerConfig::default()
        };
        let store = RecordingStore::new();
        let b = Broker::new(config, store.clone(), Recovered::default());
        let q = Destination::queue("jobs");
        let r = Recorder::new();
        let c = b.connect(ConnectInfo::in_process(None), r.clone()).unwrap();
        b.subscribe(c, spec("s", q.clone(), AckMode::ClientIndividual))
            .unwrap();
        b.send(c, msg(q.clone(), "live", true), None).unwrap();
        b.send(c, msg(q.clone(), "mem", false), None).unwrap();
        let d = r.take();
        assert_eq!(d.len(), 2);
        if concurrent {
            assert_eq!(d[0].seq, 0, "dispatched while its record is written");
        } else {
            assert!(d[0].seq > 0, "persistent delivery waits for its record");
        }
        assert_eq!(d[1].seq, 0, "non-persistent never waits");
        // Whatever the mode, the ack's record comes after the message's, so a
        // durable ack implies a durable message.
        let ack_seq = b.ack(c, None, d[0].message.id, None, true).unwrap();
        let ops = store.ops();
        let enqueue_at = ops
            .iter()
            .position(|op| matches!(op, StoreOp::Enqueue { .. }))
            .expect("the message was written");
        let dequeue_at = ops
            .iter()
            .position(|op| matches!(op, StoreOp::Dequeue { .. }))
            .expect("the ack was written");
        assert!(enqueue_at < dequeue_at);
        assert!(ack_seq > 0);
    }
}

#[test]
fn persistent_queue_messages_are_written_and_recovered_with_redelivery_counts() {
    let store = RecordingStore::new();
    let config = BrokerConfig {
        concurrent_store_and_dispatch: false,
        ..BrokerConfig::default()
    };
    let b = Broker::new(config, store.clone(), Recovered::default());
    let q = Destination::queue("jobs");
    let r = Recorder::new();
    let c = b.connect(ConnectInfo::in_process(None), r.clone()).unwrap();
    b.send(c, msg(q.clone(), "one", true), None).unwrap();
    b.send(c, msg(q.clone(), "two", true), None).unwrap();
    b.send(c, msg(q.clone(), "mem", false), None).unwrap();
    b.subscribe(c, spec("s", q.clone(), AckMode::ClientIndividual))
        .unwrap();
    let d = r.take();
    assert!(d[0].seq > 0, "persistent delivery waits for its record");
    assert_eq!(d[2].seq, 0, "non-persistent never waits");
    b.ack(c, None, d[0].message.id, None, false).unwrap();
    b.disconnect(c); // "two" goes back with a redelivery count of 1
    let jobs = store.stored(&StoreKey::Queue(Arc::from("jobs")));
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].0.body, Bytes::from_static(b"two"));
    assert_eq!(jobs[0].1, 1);
    let b2 = restarted(BrokerConfig::default(), &store);
    let r = Recorder::new();
    let c = b2
        .connect(ConnectInfo::in_process(None), r.clone())
        .unwrap();
    b2.subscribe(c, spec("s", q.clone(), AckMode::Auto))
        .unwrap();
    let d = r.take();
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].redelivery_count, 1);
}

#[test]
fn auto_ack_settles_when_written() {
    let store = RecordingStore::new();
    let b = Broker::new(BrokerConfig::default(), store.clone(), Recovered::default());
    let q = Destination::queue("auto");
    let r = Recorder::new();
    let c = b.connect(ConnectInfo::in_process(None), r.clone()).unwrap();
    let mut s = spec("s", q.clone(), AckMode::Auto);
    s.prefetch = 1;
    b.subscribe(c, s).unwrap();
    b.send(c, msg(q.clone(), "1", true), None).unwrap();
    b.send(c, msg(q.clone(), "2", true), None).unwrap();
    let d = r.take();
    assert_eq!(d.len(), 1, "prefetch 1 holds the second back");
    b.delivered(&[(d[0].consumer, d[0].message.id)]);
    assert_eq!(r.take().len(), 1);
    assert!(store
        .ops()
        .iter()
        .any(|op| matches!(op, StoreOp::Dequeue { id, .. } if *id == d[0].message.id)));
}

#[test]
fn a_window_widened_later_dispatches_what_waited() {
    // A failover client restores its consumer with prefetch 0, then widens it.
    let b = memory_broker();
    let q = Destination::queue("widened");
    let r = Recorder::new();
    let c = b.connect(ConnectInfo::in_process(None), r.clone()).unwrap();
    let mut s = spec("s", q.clone(), AckMode::Client);
    s.prefetch = 0;
    b.subscribe(c, s).unwrap();
    for i in 0..3 {
        b.send(c, msg(q.clone(), &i.to_string(), true), None)
            .unwrap();
    }
    assert!(r.take().is_empty(), "prefetch 0: nothing unasked");
    b.set_prefetch(c, "s", 2).unwrap();
    let d = r.take();
    assert_eq!(d.len(), 2, "the new window");
    // Narrowed: what it holds stays, nothing more comes until it acks below the window.
    b.set_prefetch(c, "s", 1).unwrap();
    b.ack(c, Some("s"), d[0].message.id, None, false).unwrap();
    assert!(r.take().is_empty(), "still one held, at the window");
    b.ack(c, Some("s"), d[1].message.id, None, false).unwrap();
    assert_eq!(bodies(&r), vec!["2"]);
    assert_eq!(
        b.set_prefetch(c, "nope", 5),
        Err(BrokerError::UnknownSubscription("nope".into()))
    );
}

#[test]
fn expired_messages_are_not_delivered() {
    let b = memory_broker();
    let q = Destination::queue("exp");
    let r = Recorder::new();
    let c = b.connect(ConnectInfo::in_process(None), r.clone()).unwrap();
    let mut m = msg(q.clone(), "old", true);
    m.expires_ms = Some(1);
    b.send(c, m, None).unwrap();
    b.send(c, msg(q.clone(), "new", false), None).unwrap();
    b.subscribe(c, spec("s", q.clone(), AckMode::Auto)).unwrap();
    assert_eq!(bodies(&r), vec!["new"]);
    // Persistent and expired: dead-lettered, as ActiveMQ does.
    b.subscribe(
        c,
        spec("d", Destination::queue("ActiveMQ.DLQ"), AckMode::Auto),
    )
    .unwrap();
    assert_eq!(bodies(&r), vec!["new", "old"]);
}

#[test]
fn resends_from_a_producer_are_confirmed_but_not_stored_twice_even_after_restart() {
    let store = RecordingStore::new();
    let b = Broker::new(BrokerConfig::default(), store.clone(), Recovered::default());
    let q = Destination::queue("dedup");
    let p = b
        .connect(ConnectInfo::in_process(Some("app")), Recorder::new())
        .unwrap();
    let s1 = b
        .send(p, from_producer(q.clone(), "1", "prod-a", 1), None)
        .unwrap();
    b.send(p, from_producer(q.clone(), "2", "prod-a", 2), None)
        .unwrap();
    // A resend of 1 (its receipt was lost): confirmed, waiting for what was appended.
    let again = b
        .send(p, from_producer(q.clone(), "1", "prod-a", 1), None)
        .unwrap();
    assert!(again >= s1, "a duplicate's receipt waits for the original");
    // Another producer's seq 1 is its own.
    b.send(p, from_producer(q.clone(), "b1", "prod-b", 1), None)
        .unwrap();

    // After a restart the window is still known to the same client id.
    let b2 = restarted(BrokerConfig::default(), &store);
    let p2 = b2
        .connect(ConnectInfo::in_process(Some("app")), Recorder::new())
        .unwrap();
    b2.send(p2, from_producer(q.clone(), "2", "prod-a", 2), None)
        .unwrap();
    b2.send(p2, from_producer(q.clone(), "3", "prod-a", 3), None)
        .unwrap();
    let r = Recorder::new();
    let c = b2
        .connect(ConnectInfo::in_process(None), r.clone())
        .unwrap();
    b2.subscribe(c, spec("s", q.clone(), AckMode::Auto))
        .unwrap();
    assert_eq!(bodies(&r), vec!["1", "2", "b1", "3"]);
}

#[test]
fn producer_window_is_bounded_and_evictions_are_recorded() {
    let store = RecordingStore::new();
    let config = BrokerConfig {
        max_tracked_producers: 2,
        ..BrokerConfig::default()
    };
    let b = Broker::new(config, store.clone(), Recovered::default());
    let q = Destination::queue("bounded");
    let p = b
        .connect(ConnectInfo::in_process(Some("app")), Recorder::new())
        .unwrap();
    for name in ["a", "b", "c"] {
        b.send(p, from_producer(q.clone(), name, name, 1), None)
            .unwrap();
    }
    let rec = store.recover();
    assert_eq!(rec.producers.len(), 2);
    assert!(
        !rec.producers.contains_key(&ProducerKey {
            owner: None,
            client_id: Arc::from("app"),
            producer: Arc::from("a")
        }),
        "least recently used is forgotten"
    );
    assert_eq!(b.tracked_producers(), 2);
}

/// A default broker on a recording store with one consumer on "jobs" holding
/// one persistent message sent as confirmable; returns its consumed flag and the delivery.
fn one_confirmable_delivery(
    mode: AckMode,
) -> (
    Broker,
    Arc<RecordingStore>,
    ConnectionId,
    Arc<Consumed>,
    Delivery,
) {
    let store = RecordingStore::new();
    let b = Broker::new(BrokerConfig::default(), store.clone(), Recovered::default());
    let q = Destination::queue("jobs");
    let r = Recorder::new();
    let c = b.connect(ConnectInfo::in_process(None), r.clone()).unwrap();
    b.subscribe(c, spec("s", q.clone(), mode)).unwrap();
    let (seq, consumed) = b.send_confirmable(c, msg(q, "one", true), None).unwrap();
    let consumed = consumed.expect("a persistent queue send is confirmable");
    assert!(seq > 0, "its record is still written");
    assert!(!consumed.is_set(), "not consumed before the ack");
    let mut d = r.take();
    assert_eq!(d.len(), 1);
    (b, store, c, consumed, d.remove(0))
}

#[test]
fn an_explicit_ack_marks_a_confirmable_send_consumed_before_its_record_is_durable() {
    let (b, store, c, consumed, d) = one_confirmable_delivery(AckMode::ClientIndividual);
    // A nack hands it back; that is no settlement.
    b.nack(c, None, d.message.id).unwrap();
    assert!(!consumed.is_set());
    // Redelivered to the same consumer (the recorder of that connection).
    b.ack(c, None, d.message.id, None, false).unwrap();
    assert!(consumed.is_set(), "settled by the consumer's ack");
    assert!(
        store
            .ops()
            .iter()
            .any(|op| matches!(op, StoreOp::Dequeue { .. })),
        "the ack is recorded, so a durable message record is not redelivered"
    );
}

#[test]
fn only_explicit_non_transactional_acks_of_queue_messages_confirm_early() {
    let q = Destination::queue("jobs");
    // Non-persistent, topic, transactional sends, and the options off: no flag.
    let b = Broker::new(
        BrokerConfig::default(),
        RecordingStore::new(),
        Recovered::default(),
    );
    let c = b
        .connect(ConnectInfo::in_process(None), Recorder::new())
        .unwrap();
    assert!(b
        .send_confirmable(c, msg(q.clone(), "mem", false), None)
        .unwrap()
        .1
        .is_none());
    let t = Destination::topic("news");
    b.subscribe(c, spec("t", t.clone(), AckMode::ClientIndividual))
        .unwrap();
    assert!(b
        .send_confirmable(c, msg(t, "news", true), None)
        .unwrap()
        .1
        .is_none());
    b.begin(c, "tx").unwrap();
    assert!(b
        .send_confirmable(c, msg(q.clone(), "in-tx", true), Some("tx"))
        .unwrap()
        .1
        .is_none());
    for config in [
        BrokerConfig {
            confirm_consumed: false,
            ..BrokerConfig::default()
        },
        BrokerConfig {
            concurrent_store_and_dispatch: false,
            ..BrokerConfig::default()
        },
    ] {
        let b = Broker::new(config, RecordingStore::new(), Recovered::default());
        let c = b
            .connect(ConnectInfo::in_process(None), Recorder::new())
            .unwrap();
        assert!(b
            .send_confirmable(c, msg(q.clone(), "strict", true), None)
            .unwrap()
            .1
            .is_none());
    }

    // An auto-acknowledged delivery has only reached a socket: not consumed.
    let (b, _, _, consumed, d) = one_confirmable_delivery(AckMode::Auto);
    b.delivered(&[(d.consumer, d.message.id)]);
    assert!(!consumed.is_set());

    // A transactional ack settles nothing until (and here not even at) commit.
    let (b, _, c, consumed, d) = one_confirmable_delivery(AckMode::ClientIndividual);
    b.begin(c, "tx").unwrap();
    b.ack(c, None, d.message.id, Some("tx"), false).unwrap();
    b.commit(c, "tx").unwrap();
    assert!(!consumed.is_set(), "a commit's receipt waits for the disk");
}

/// Bodies and redelivery counts of what a recorder was given since the last take.
fn counted(r: &Recorder) -> Vec<(String, u32)> {
    r.take()
        .iter()
        .map(|d| {
            (
                String::from_utf8(d.message.body.to_vec()).unwrap(),
                d.redelivery_count,
            )
        })
        .collect()
}

#[test]
fn a_closing_consumer_gives_back_what_it_only_prefetched_as_it_was() {
    let b = memory_broker();
    let q = Destination::queue("prefetched");
    let p = b
        .connect(ConnectInfo::in_process(None), Recorder::new())
        .unwrap();
    for body in ["a", "b", "c", "d", "e"] {
        b.send(p, msg(q.clone(), body, true), None).unwrap();
    }
    let r = Recorder::new();
    let c = b.connect(ConnectInfo::in_process(None), r.clone()).unwrap();
    b.subscribe(c, spec("s", q.clone(), AckMode::Client))
        .unwrap();
    let ids = r.ids();
    assert_eq!(ids.len(), 5, "all prefetched");
    r.take();
    // Its application got a, b (acknowledged) and c (not), then it closed:
    // c is a redelivery, d and e come as they were.
    b.ack(c, Some("s"), ids[1], None, false).unwrap();
    b.unsubscribe_after(c, Some("s"), None, LastDelivered::Message(ids[2]))
        .unwrap();
    b.subscribe(c, spec("s2", q.clone(), AckMode::Client))
        .unwrap();
    assert_eq!(
        counted(&r),
        [("c".into(), 1), ("d".into(), 0), ("e".into(), 0)]
    );
    // Nothing delivered: nothing counts.
    b.unsubscribe_after(c, Some("s2"), None, LastDelivered::Nothing)
        .unwrap();
    b.subscribe(c, spec("s3", q.clone(), AckMode::Client))
        .unwrap();
    assert_eq!(
        counted(&r),
        [("c".into(), 1), ("d".into(), 0), ("e".into(), 0)]
    );
    // Nothing known (a dropped connection): everything counts.
    b.unsubscribe_after(c, Some("s3"), None, LastDelivered::Unknown)
        .unwrap();
    b.subscribe(c, spec("s4", q.clone(), AckMode::Client))
        .unwrap();
    assert_eq!(
        counted(&r),
        [("c".into(), 2), ("d".into(), 1), ("e".into(), 1)]
    );
}

#[test]
fn what_was_delivered_follows_delivery_order_not_message_ids() {
    let b = memory_broker();
    let q = Destination::queue("by-priority");
    let p = b
        .connect(ConnectInfo::in_process(None), Recorder::new())
        .unwrap();
    // Sent low, low, high: delivered high first.
    for (body, priority) in [("low-1", 1), ("low-2", 1), ("high", 9)] {
        let mut m = msg(q.clone(), body, true);
        m.priority = priority;
        b.send(p, m, None).unwrap();
    }
    let r = Recorder::new();
    let c = b.connect(ConnectInfo::in_process(None), r.clone()).unwrap();
    b.subscribe(c, spec("s", q.clone(), AckMode::Client))
        .unwrap();
    let d = r.take();
    let bodies: Vec<_> = d.iter().map(|d| d.message.body.clone()).collect();
    assert_eq!(bodies, ["high", "low-1", "low-2"]);
    // The application got "high" only and acknowledged it: the low ones,
    // though sent (and numbered) before it, were only prefetched.
    b.ack_as(c, Some("s"), d[0].message.id, None, false, Some(false))
        .unwrap();
    b.unsubscribe_after(c, Some("s"), None, LastDelivered::Message(d[0].message.id))
        .unwrap();
    b.subscribe(c, spec("s2", q.clone(), AckMode::Client))
        .unwrap();
    let d = r.take();
    assert_eq!(
        d.iter().map(|d| d.redelivery_count).collect::<Vec<_>>(),
        [0, 0]
    );
    // Individually acknowledged out of order: the application got low-1 and
    // low-2 and acknowledged only the last; low-1 was delivered.
    b.ack_as(c, Some("s2"), d[1].message.id, None, false, Some(false))
        .unwrap();
    b.unsubscribe_after(c, Some("s2"), None, LastDelivered::Message(d[1].message.id))
        .unwrap();
    b.subscribe(c, spec("s3", q.clone(), AckMode::Client))
        .unwrap();
    assert_eq!(counted(&r), [("low-1".into(), 1)]);
}

#[test]
fn a_rollback_back_to_consumers_leaves_what_it_acknowledged_with_them() {
    let b = memory_broker();
    let q = Destination::queue("tx-held");
    let p = b
        .connect(ConnectInfo::in_process(None), Recorder::new())
        .unwrap();
    for body in ["m1", "m2", "m3"] {
        b.send(p, msg(q.clone(), body, true), None).unwrap();
    }
    let r = Recorder::new();
    let c = b.connect(ConnectInfo::in_process(None), r.clone()).unwrap();
    b.subscribe(c, spec("s", q.clone(), AckMode::Client))
        .unwrap();
    let ids = r.ids();
    r.take();
    // A second consumer, which must get nothing of what the first holds.
    let other = Recorder::new();
    let c2 = b
        .connect(ConnectInfo::in_process(None), other.clone())
        .unwrap();
    b.subscribe(c2, spec("s", q.clone(), AckMode::Client))
        .unwrap();

    b.begin(c, "t1").unwrap();
    b.ack(c, Some("s"), ids[1], Some("t1"), false).unwrap();
    b.abort_with(c, "t1", RolledBackAcks::BackToConsumers)
        .unwrap();
    assert!(r.take().is_empty(), "the client redelivers by itself");
    assert!(other.take().is_empty(), "nobody else gets them");
    // Back in their places: a cumulative ack of m1 covers m1 only.
    b.ack(c, Some("s"), ids[0], None, false).unwrap();
    b.disconnect(c);
    let ids = other.ids();
    assert_eq!(counted(&other), [("m2".into(), 1), ("m3".into(), 1)]);

    // A consumer gone before the rollback: its queue redelivers.
    b.begin(c2, "t2").unwrap();
    b.ack(c2, Some("s"), ids[1], Some("t2"), false).unwrap();
    b.unsubscribe(c2, Some("s"), None).unwrap();
    let r3 = Recorder::new();
    let c3 = b
        .connect(ConnectInfo::in_process(None), r3.clone())
        .unwrap();
    b.subscribe(c3, spec("s", q.clone(), AckMode::Client))
        .unwrap();
    assert!(r3.take().is_empty(), "held by the open transaction");
    b.abort_with(c2, "t2", RolledBackAcks::BackToConsumers)
        .unwrap();
    assert_eq!(counted(&r3), [("m2".into(), 2), ("m3".into(), 2)]);
}

#[test]
fn metrics_count_what_happened_and_sample_the_gauges_each_sweep() {
    let b = memory_broker();
    let r = Recorder::new();
    let c = b.connect(ConnectInfo::in_process(None), r.clone()).unwrap();
    let (q, t) = (Destination::queue("m"), Destination::topic("t"));
    for i in 0..3 {
        b.send(c, msg(q.clone(), &i.to_string(), true), None)
            .unwrap();
    }
    let mut old = msg(q.clone(), "old", false);
    old.expires_ms = Some(1);
    b.send(c, old, None).unwrap();
    b.subscribe(c, spec("ts", t.clone(), AckMode::Client))
        .unwrap();
    b.send(c, msg(t.clone(), "x", false), None).unwrap();
    b.send(c, msg(t.clone(), "y", false), None).unwrap();
    b.subscribe(c, spec("s", q.clone(), AckMode::ClientIndividual))
        .unwrap();
    let got: Vec<_> = r
        .take()
        .into_iter()
        .filter(|d| d.message.destination == q)
        .collect();
    assert_eq!(got.len(), 3, "the expired one is not delivered");
    b.ack(c, Some("s"), got[0].message.id, None, false).unwrap();
    // Nothing is visible before the sweep samples.
    assert!(b.metrics().sample().destinations.is_empty());
    b.expire();
    let s = b.metrics().sample();
    let m = s.destinations[&q];
    assert_eq!(
        m.counts,
        metrics::Counts {
            enqueued: 4,
            dequeued: 1,
            expired: 1,
            dead_lettered: 0
        }
    );
    assert_eq!(
        m.gauges,
        metrics::Gauges {
            depth: 0,
            paged: 0,
            inflight: 2,
            consumers: 1,
            producers: 0
        }
    );
    let topic = s.destinations[&t];
    assert_eq!(topic.counts.enqueued, 2);
    assert_eq!(topic.gauges.consumers, 1);
    assert_eq!(topic.gauges.inflight, 2);
    assert_eq!(s.connections[&Protocol::InProcess], 1);
    // The counts go on from there; the gauges are of the last sample.
    b.ack(c, Some("s"), got[1].message.id, None, false).unwrap();
    b.disconnect(c);
    b.expire();
    let s = b.metrics().sample();
    assert_eq!(s.destinations[&q].counts.dequeued, 2);
    assert_eq!(s.destinations[&q].gauges.consumers, 0);
    assert!(s.connections.is_empty());
}
