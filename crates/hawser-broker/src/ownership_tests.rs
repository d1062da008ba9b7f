//! Client ids, durable subscriptions and producer windows belong to the
//! user that made them: another user connecting with the same client id
//! while the owner is away can neither take its durable subscriptions nor
//! make the owner's genuine sends look like resends, before or after a
//! restart.

use std::sync::Arc;

use crate::identity::ConnectInfo;
use crate::outbox::test_support::Recorder;
use crate::test_support::{bodies, from_producer, msg, restarted, spec, RecordingStore};
use crate::*;

fn user(name: &str) -> Principal {
    Principal::User {
        name: Arc::from(name),
        groups: Arc::from([]),
    }
}

fn connect(
    b: &Broker,
    client_id: &str,
    who: Principal,
) -> Result<(ConnectionId, Arc<Recorder>), BrokerError> {
    let rec = Recorder::new();
    let info = ConnectInfo::in_process(Some(client_id)).with_principal(who);
    b.connect(info, rec.clone()).map(|c| (c, rec))
}

fn durable(name: &str) -> SubscribeSpec {
    let mut s = spec("s", Destination::topic("news"), AckMode::ClientIndividual);
    s.durable_name = Some(name.into());
    s
}

fn owned(r: Result<(ConnectionId, Arc<Recorder>), BrokerError>) -> bool {
    matches!(r, Err(BrokerError::ClientIdOwned(cid)) if cid == "app")
}

#[test]
fn a_client_id_with_a_users_durable_subscription_is_refused_to_anyone_else_even_after_a_restart() {
    let store = RecordingStore::new();
    let b = Broker::new(BrokerConfig::default(), store.clone(), Recovered::default());
    let (alice, _) = connect(&b, "app", user("alice")).unwrap();
    b.subscribe(alice, durable("daily")).unwrap();
    b.disconnect(alice);

    assert!(owned(connect(&b, "app", user("bob"))));
    assert!(owned(connect(&b, "app", Principal::Anonymous)));
    let before = store.ops().len();

    let b = restarted(BrokerConfig::default(), &store);
    assert!(owned(connect(&b, "app", user("bob"))));
    assert!(owned(connect(&b, "app", Principal::Anonymous)));
    assert_eq!(store.ops().len(), before, "a refusal writes nothing");

    // Its owner still gets what was published while everyone was away.
    let (p, _) = connect(&b, "publisher", user("bob")).unwrap();
    b.send(p, msg(Destination::topic("news"), "kept", true), None)
        .unwrap();
    let (alice, rec) = connect(&b, "app", user("alice")).unwrap();
    b.subscribe(alice, durable("daily")).unwrap();
    assert_eq!(bodies(&rec), vec!["kept"]);

    // Once its last durable subscription is gone, the client id is anyone's.
    b.unsubscribe(alice, Some("s"), Some("daily")).unwrap();
    b.disconnect(alice);
    assert!(connect(&b, "app", user("bob")).is_ok());
}

#[test]
fn another_users_sends_do_not_mark_the_owners_producer_windows() {
    let store = RecordingStore::new();
    let b = Broker::new(BrokerConfig::default(), store.clone(), Recovered::default());
    let q = Destination::queue("orders");
    let (alice, _) = connect(&b, "app", user("alice")).unwrap();
    b.send(alice, from_producer(q.clone(), "a1", "p", 1), None)
        .unwrap();
    b.disconnect(alice);

    // Bob takes the free client id and sends with alice's producer id and
    // the sequence numbers she will use next.
    let (bob, _) = connect(&b, "app", user("bob")).unwrap();
    for seq in 2..=3 {
        b.send(
            bob,
            from_producer(q.clone(), &format!("b{seq}"), "p", seq),
            None,
        )
        .unwrap();
    }
    b.disconnect(bob);

    let (alice, _) = connect(&b, "app", user("alice")).unwrap();
    b.send(alice, from_producer(q.clone(), "a2", "p", 2), None)
        .unwrap();
    // Her own resend of 1 is still recognised.
    b.send(alice, from_producer(q.clone(), "a1", "p", 1), None)
        .unwrap();
    b.disconnect(alice);

    // And after a restart, from the stored windows.
    let b = restarted(BrokerConfig::default(), &store);
    let (alice, _) = connect(&b, "app", user("alice")).unwrap();
    b.send(alice, from_producer(q.clone(), "a2", "p", 2), None)
        .unwrap();
    b.send(alice, from_producer(q.clone(), "a3", "p", 3), None)
        .unwrap();
    let (c, rec) = connect(&b, "reader", user("carol")).unwrap();
    b.subscribe(c, spec("s", q, AckMode::Auto)).unwrap();
    assert_eq!(bodies(&rec), vec!["a1", "b2", "b3", "a2", "a3"]);
}

#[test]
fn a_durable_subscription_made_before_users_is_claimed_by_the_first_user_with_its_messages() {
    let store = RecordingStore::new();
    let b = Broker::new(BrokerConfig::default(), store.clone(), Recovered::default());
    let (anon, _) = connect(&b, "app", Principal::Anonymous).unwrap();
    b.subscribe(anon, durable("daily")).unwrap();
    b.disconnect(anon);
    let (p, _) = connect(&b, "publisher", Principal::Anonymous).unwrap();
    b.send(p, msg(Destination::topic("news"), "kept", true), None)
        .unwrap();

    // Users are configured now; the restart reads the subscription as
    // nobody's, and the first user to use it takes it with its messages.
    let b = restarted(BrokerConfig::default(), &store);
    let (alice, rec) = connect(&b, "app", user("alice")).unwrap();
    b.subscribe(alice, durable("daily")).unwrap();
    assert_eq!(bodies(&rec), vec!["kept"]);
    b.disconnect(alice);

    let b = restarted(BrokerConfig::default(), &store);
    assert!(owned(connect(&b, "app", user("bob"))));
    assert!(owned(connect(&b, "app", Principal::Anonymous)));
    assert!(connect(&b, "app", user("alice")).is_ok());
}
