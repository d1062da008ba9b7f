//! The Rust client against real brokers: what survives a failover and what
//! does not, advertised peers, send timeouts, and plain `tcp://` URIs.

mod common;

use std::time::{Duration, Instant};

use hawser_client::{AckMode, Client, ClientError, Headers, Identity, SubscribeOptions};

use common::{free_port, mkdir, Broker};

async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn persistent() -> Headers {
    [("persistent", "true")].into_iter().collect()
}

#[tokio::test]
async fn client_learns_advertised_peers_and_fails_over_to_them() {
    let tmp = tempfile::tempdir().unwrap();
    let b = Broker::start(&mkdir(tmp.path().join("b")), free_port());
    let b_uri = b.uri();
    let mut a = Broker::start_with(
        &mkdir(tmp.path().join("a")),
        free_port(),
        &["--advertise", &b_uri],
    );
    // The client is only told about A.
    let uri = format!(
        "failover:({})?randomize=false&maxReconnectDelay=50",
        a.uri()
    );
    let client = Client::connect(&uri, Identity::default()).await.unwrap();
    assert!(
        client.status().brokers.contains(&b_uri),
        "{:?}",
        client.status()
    );
    a.kill();
    client
        .send("/queue/peers", "after", persistent())
        .await
        .expect("confirmed by the advertised peer");
    assert_eq!(
        client.status().connected_to.as_deref(),
        Some(b_uri.as_str())
    );
}

#[tokio::test]
async fn advertised_peers_are_ignored_without_update_uris_supported() {
    let tmp = tempfile::tempdir().unwrap();
    let b = Broker::start(&mkdir(tmp.path().join("b")), free_port());
    let a = Broker::start_with(
        &mkdir(tmp.path().join("a")),
        free_port(),
        &["--advertise", &b.uri()],
    );
    let uri = format!("failover:({})?updateURIsSupported=false", a.uri());
    let client = Client::connect(&uri, Identity::default()).await.unwrap();
    assert!(
        !client.status().brokers.contains(&b.uri()),
        "{:?}",
        client.status()
    );
}

#[tokio::test]
async fn an_open_transaction_fails_as_rolled_back_after_a_failover() {
    let tmp = tempfile::tempdir().unwrap();
    let mut a = Broker::start(&mkdir(tmp.path().join("a")), free_port());
    let b = Broker::start(&mkdir(tmp.path().join("b")), free_port());
    let uri = format!("failover:({},{})?randomize=false", a.uri(), b.uri());
    let client = Client::connect(&uri, Identity::default()).await.unwrap();
    let tx = client.begin().await.unwrap();
    tx.send("/queue/tx", "in tx", persistent()).await.unwrap();
    a.kill();
    wait_for("failover to B", || {
        client.status().connected_to.as_deref() == Some(&b.uri())
    })
    .await;
    let err = tx.commit().await.unwrap_err();
    assert!(
        matches!(err, ClientError::TransactionRolledBack(_)),
        "{err}"
    );

    // Nothing of the transaction reached B; a new transaction works.
    let tx = client.begin().await.unwrap();
    tx.send("/queue/tx", "second", persistent()).await.unwrap();
    tx.commit().await.unwrap();
    let mut sub = client
        .subscribe("/queue/tx", SubscribeOptions::default())
        .await
        .unwrap();
    let m = tokio::time::timeout(Duration::from_secs(5), sub.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(m.text(), Some("second"));
}

#[tokio::test]
async fn sends_fail_after_the_timeout_option_while_no_broker_is_up() {
    let tmp = tempfile::tempdir().unwrap();
    let mut a = Broker::start(&mkdir(tmp.path().join("a")), free_port());
    let uri = format!("failover:({})?timeout=300&maxReconnectDelay=50", a.uri());
    let client = Client::connect(&uri, Identity::default()).await.unwrap();
    a.kill();
    wait_for("the client to notice", || {
        client.status().connected_to.is_none()
    })
    .await;
    let started = Instant::now();
    let err = client
        .send("/queue/t", "x", Headers::new())
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::SendTimeout(_)), "{err}");
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "{:?}",
        started.elapsed()
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );

    // Without a timeout a send waits for the broker to return.
    let client = {
        let uri = format!("failover:({})?maxReconnectDelay=50", a.uri());
        a.restart();
        Client::connect(&uri, Identity::default()).await.unwrap()
    };
    a.kill();
    wait_for("the client to notice", || {
        client.status().connected_to.is_none()
    })
    .await;
    let pending = client.send("/queue/t", "waits", persistent());
    tokio::time::sleep(Duration::from_millis(300)).await;
    a.restart();
    tokio::time::timeout(Duration::from_secs(10), pending)
        .await
        .expect("confirmed once the broker is back")
        .unwrap();
}

#[tokio::test]
async fn a_plain_tcp_uri_does_not_reconnect() {
    let tmp = tempfile::tempdir().unwrap();
    let mut a = Broker::start(&mkdir(tmp.path().join("a")), free_port());
    let client = Client::connect(&a.uri(), Identity::default())
        .await
        .unwrap();
    a.kill();
    wait_for("the client to notice", || {
        client.status().connected_to.is_none()
    })
    .await;
    a.restart();
    let err = tokio::time::timeout(
        Duration::from_secs(5),
        client.send("/queue/x", "x", Headers::new()),
    )
    .await
    .expect("fails rather than waits")
    .unwrap_err();
    assert!(
        matches!(err, ClientError::Unreachable(_) | ClientError::Closed),
        "{err}"
    );
}

#[tokio::test]
async fn unknown_options_and_unreachable_brokers_are_clear_errors() {
    let err = Client::connect(
        "failover:(tcp://127.0.0.1:1)?randomise=false",
        Identity::default(),
    )
    .await
    .err()
    .unwrap();
    assert!(err.to_string().contains("randomise"), "{err}");
    let port = free_port();
    let err = Client::connect(
        &format!(
            "failover:(tcp://127.0.0.1:{port})?maxReconnectAttempts=2&initialReconnectDelay=1"
        ),
        Identity::default(),
    )
    .await
    .err()
    .unwrap();
    assert!(matches!(err, ClientError::Unreachable(_)), "{err}");
    assert!(err.to_string().contains(&port.to_string()), "{err}");
}

#[tokio::test]
async fn subscriptions_are_restored_with_their_durable_names() {
    let tmp = tempfile::tempdir().unwrap();
    let mut a = Broker::start(&mkdir(tmp.path().join("a")), free_port());
    let uri = format!("failover:({})?maxReconnectDelay=50", a.uri());
    let who = Identity {
        client_id: Some("reader".into()),
        ..Identity::default()
    };
    let client = Client::connect(&uri, who).await.unwrap();
    let mut sub = client
        .subscribe(
            "/topic/news",
            SubscribeOptions {
                durable_name: Some("daily".into()),
                ack: AckMode::ClientIndividual,
                ..SubscribeOptions::default()
            },
        )
        .await
        .unwrap();
    a.kill();
    a.restart();
    let publisher = Client::connect(&a.uri(), Identity::default())
        .await
        .unwrap();
    // The durable subscription exists on the restarted broker (it was stored) and
    // the client re-attached to it: a message published now reaches it.
    wait_for("reconnect", || client.status().connections >= 2).await;
    publisher
        .send("/topic/news", "extra", persistent())
        .await
        .unwrap();
    let m = tokio::time::timeout(Duration::from_secs(5), sub.recv())
        .await
        .expect("delivered after the reconnect")
        .unwrap();
    assert_eq!(m.text(), Some("extra"));
    m.ack().await.unwrap();
}

#[tokio::test]
async fn backup_keeps_a_warm_connection_and_takes_over_with_it() {
    let tmp = tempfile::tempdir().unwrap();
    let mut a = Broker::start(&mkdir(tmp.path().join("a")), free_port());
    // B takes a single connection: while the client's spare holds it, nobody else gets in.
    let b = Broker::start_with(
        &mkdir(tmp.path().join("b")),
        free_port(),
        &["--max-connections", "1"],
    );
    let uri = format!(
        "failover:({},{})?randomize=false&backup=true",
        a.uri(),
        b.uri()
    );
    let client = Client::connect(&uri, Identity::default()).await.unwrap();
    let mut spare_held = false;
    for _ in 0..100 {
        if Client::connect(&b.uri(), Identity::default())
            .await
            .is_err()
        {
            spare_held = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(spare_held, "no warm spare connection to B appeared");
    a.kill();
    client
        .send("/queue/backup", "via the spare", persistent())
        .await
        .unwrap();
    assert_eq!(
        client.status().connected_to.as_deref(),
        Some(b.uri().as_str())
    );
}
