//! Authorization in the engine: every operation is checked against the
//! connection's principal once, whatever the protocol, and a refusal changes
//! nothing (no record, no delivery).

use std::sync::Arc;

use crate::identity::ConnectInfo;
use crate::outbox::test_support::Recorder;
use crate::test_support::{msg, spec, RecordingStore};
use crate::*;

fn names(list: &str) -> Vec<Arc<str>> {
    list.split(',').map(Arc::from).collect()
}

fn entry(target: AccessTarget, read: &str, write: &str, admin: &str) -> AccessEntry {
    AccessEntry {
        target,
        read: names(read),
        write: names(write),
        admin: names(admin),
    }
}

fn pattern(topic: bool, p: &str) -> AccessTarget {
    AccessTarget::Pattern(DestinationPattern::new(topic, p).unwrap())
}

fn broker() -> (Broker, Arc<RecordingStore>) {
    let config = BrokerConfig {
        access: AccessPolicy::new(vec![
            entry(
                pattern(false, ">"),
                "admins,readers",
                "admins,writers",
                "admins",
            ),
            entry(pattern(true, ">"), "admins,readers", "admins", "admins"),
            entry(
                AccessTarget::Temporary,
                "admins,writers",
                "admins,writers",
                "admins",
            ),
        ]),
        ..BrokerConfig::default()
    };
    let store = RecordingStore::new();
    (
        Broker::new(config, store.clone(), Recovered::default()),
        store,
    )
}

fn as_user(b: &Broker, name: &str, groups: &str) -> (ConnectionId, Arc<Recorder>) {
    let rec = Recorder::new();
    let info = ConnectInfo::in_process(None).with_principal(Principal::User {
        name: Arc::from(name),
        groups: names(groups).into(),
    });
    (b.connect(info, rec.clone()).unwrap(), rec)
}

fn refused(r: Result<impl std::fmt::Debug, BrokerError>, op: &str) -> bool {
    matches!(r, Err(BrokerError::NotAuthorized { operation, .. }) if operation == op)
}

#[test]
fn each_operation_is_checked_against_the_connections_user() {
    let (b, store) = broker();
    let (admin, _) = as_user(&b, "root", "admins");
    let (writer, _) = as_user(&b, "wendy", "writers");
    let (reader, reader_rec) = as_user(&b, "rita", "readers");
    let (anon, _) = (
        b.connect(ConnectInfo::in_process(None), Recorder::new())
            .unwrap(),
        (),
    );
    let orders = Destination::queue("orders");
    let fresh = Destination::queue("fresh");
    // Creating a queue (using it first) needs admin; then writers may send.
    assert!(refused(
        b.send(writer, msg(orders.clone(), "w", true), None),
        "create"
    ));
    let records = store.records.lock().len();
    assert_eq!(records, 0, "a refused send writes nothing");
    b.subscribe(admin, spec("a", orders.clone(), AckMode::Auto))
        .unwrap();
    b.unsubscribe(admin, Some("a"), None).unwrap();
    b.send(writer, msg(orders.clone(), "w", true), None)
        .unwrap();
    assert!(refused(
        b.send(reader, msg(orders.clone(), "r", true), None),
        "write to"
    ));
    assert!(refused(
        b.send(anon, msg(orders.clone(), "x", true), None),
        "write to"
    ));
    assert!(refused(
        b.send(writer, msg(fresh.clone(), "w", true), None),
        "create"
    ));
    // In a transaction the send is refused when it is made, not at the commit.
    b.begin(reader, "t").unwrap();
    assert!(refused(
        b.send(reader, msg(orders.clone(), "r", true), Some("t")),
        "write to"
    ));
    // Readers consume and browse; writers may not.
    assert!(refused(
        b.subscribe(writer, spec("w", orders.clone(), AckMode::Auto)),
        "read from"
    ));
    assert!(refused(b.open_browser(writer, &orders), "read from"));
    b.open_browser(reader, &orders).unwrap();
    b.subscribe(reader, spec("r", orders.clone(), AckMode::Auto))
        .unwrap();
    assert_eq!(
        reader_rec.take().len(),
        1,
        "the writer's message reached the reader"
    );
    // Topics: admins publish, readers subscribe (a topic is not created).
    let news = Destination::topic("news");
    assert!(refused(
        b.send(writer, msg(news.clone(), "n", false), None),
        "write to"
    ));
    b.subscribe(reader, spec("n", news.clone(), AckMode::Auto))
        .unwrap();
    b.send(admin, msg(news.clone(), "n", false), None).unwrap();
    assert_eq!(reader_rec.take().len(), 1);
    // A composite destination needs every part.
    assert!(refused(
        b.send(
            writer,
            msg(Destination::queue("orders,fresh"), "c", true),
            None
        ),
        "create"
    ));
}

#[test]
fn temporary_destinations_are_created_by_admins_and_read_by_their_creator_alone() {
    let (b, _) = broker();
    let (admin, admin_rec) = as_user(&b, "root", "admins");
    let (other_admin, _) = as_user(&b, "toor", "admins");
    let (writer, _) = as_user(&b, "wendy", "writers");
    let temp = Destination::new(DestinationKind::TempQueue, "ID:root-1").unwrap();
    let theirs = Destination::new(DestinationKind::TempQueue, "ID:wendy-1").unwrap();
    assert!(refused(b.register_temporary(writer, &theirs), "create"));
    b.register_temporary(admin, &temp).unwrap();
    b.subscribe(admin, spec("t", temp.clone(), AckMode::Auto))
        .unwrap();
    assert!(
        refused(
            b.subscribe(other_admin, spec("t", temp.clone(), AckMode::Auto)),
            "read from"
        ),
        "another connection may not read it, even an admin's"
    );
    assert!(refused(b.open_browser(other_admin, &temp), "read from"));
    // Anyone the temporary entry lets write may reply to it.
    b.send(writer, msg(temp.clone(), "reply", false), None)
        .unwrap();
    assert_eq!(admin_rec.take().len(), 1);
}

#[test]
fn without_entries_everything_is_allowed_as_before() {
    let b = Broker::new(
        BrokerConfig::default(),
        RecordingStore::new(),
        Recovered::default(),
    );
    let c = b
        .connect(ConnectInfo::in_process(None), Recorder::new())
        .unwrap();
    let q = Destination::queue("anything");
    b.send(c, msg(q.clone(), "x", true), None).unwrap();
    b.subscribe(c, spec("s", q, AckMode::Auto)).unwrap();
}
