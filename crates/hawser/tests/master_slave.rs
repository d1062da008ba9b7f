//! Master/slave on a shared store, with real broker processes: one master serves,
//! standbys hold no STOMP listener, a standby takes over when the master is
//! killed, and a master paused past its lease confirms nothing once it wakes.

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hawser_client::{Client, Headers, Identity, SubscribeOptions};

use common::traffic::{self, Rng};
use common::{free_port, mkdir, Broker};

/// Kills of the master in the long test.
const KILLS: usize = 20;
/// Sends awaiting confirmation at once.
const WINDOW: usize = 16;
/// One send per this interval.
const SEND_INTERVAL: Duration = Duration::from_micros(700);
/// A standby polls this often in these tests.
const POLL: &str = "20";
/// Time allowed for a takeover in assertions (generous: CI machines are slow).
const TAKEOVER: Duration = Duration::from_secs(10);

fn persistent() -> Headers {
    [("persistent", "true")].into_iter().collect()
}

fn shared(tmp: &std::path::Path, n: usize, args: &[&str]) -> Vec<Broker> {
    let data = tmp.join("store");
    (0..n)
        .map(|i| {
            let b = Broker::start_shared(
                &mkdir(tmp.join(format!("node{i}"))),
                &data,
                free_port(),
                args,
            );
            if i == 0 {
                // The first one started becomes master; the others then wait.
                b.wait_for_role("master", TAKEOVER);
            }
            b
        })
        .collect()
}

fn failover_uri(brokers: &[Broker]) -> String {
    let list: Vec<String> = brokers.iter().map(Broker::uri).collect();
    format!(
        "failover:({})?randomize=false&initialReconnectDelay=10&maxReconnectDelay=50",
        list.join(",")
    )
}

/// The index of the broker that says it is master, waiting for one.
fn master(brokers: &[Broker]) -> usize {
    let deadline = Instant::now() + TAKEOVER;
    loop {
        for (i, b) in brokers.iter().enumerate() {
            if b.role().is_some_and(|(r, _)| r == "master") {
                return i;
            }
        }
        assert!(Instant::now() < deadline, "no master within {TAKEOVER:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn one_master_serves_and_a_standby_takes_over_with_a_higher_epoch() {
    let tmp = tempfile::tempdir().unwrap();
    let mut brokers = shared(tmp.path(), 3, &["--ha-poll-ms", POLL]);
    let m = master(&brokers);
    let (_, epoch) = brokers[m].role().unwrap();
    for (i, b) in brokers.iter().enumerate() {
        let listening = std::net::TcpStream::connect(("127.0.0.1", b.port)).is_ok();
        if i == m {
            assert!(listening, "the master serves STOMP");
        } else {
            assert_eq!(b.role().unwrap(), ("slave".to_owned(), epoch));
            assert!(!listening, "a standby holds no STOMP listener");
        }
    }
    // The store itself says who is master.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hawser"))
        .args(["stat", "--data-dir"])
        .arg(&brokers[0].data)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&format!("epoch: {epoch}")), "{text}");
    assert!(text.contains(&format!(":{}", brokers[m].port)), "{text}");

    brokers[m].kill();
    let next = master(&brokers);
    assert_ne!(next, m);
    let (_, new_epoch) = brokers[next].role().unwrap();
    assert!(
        new_epoch > epoch,
        "epochs only grow: {epoch} then {new_epoch}"
    );
    brokers[m].restart();
    assert_eq!(brokers[m].wait_for_role("slave", TAKEOVER), new_epoch);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confirmed_messages_survive_repeated_master_kills_without_duplicates() {
    let seed = traffic::seed(0x5eed_2026_1201_u64);
    let tmp = tempfile::tempdir().unwrap();
    let mut brokers = shared(tmp.path(), 3, &["--ha-poll-ms", POLL]);
    let uri = failover_uri(&brokers);
    let queue = "/queue/master.slave";
    let traffic::Traffic {
        producer: _producer,
        consumer: _consumer,
        processed,
        consuming,
        producing,
    } = traffic::start(&uri, queue, WINDOW, SEND_INTERVAL).await;
    let confirmations = Arc::clone(&producing.confirmations);

    let mut rng = Rng(seed);
    let mut kill_times = Vec::new();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let kills = traffic::kills(KILLS);
    for _ in 0..kills {
        tokio::time::sleep(Duration::from_millis(200 + rng.next() % 300)).await;
        let victim = tokio::task::block_in_place(|| master(&brokers));
        kill_times.push(Instant::now());
        brokers[victim].kill();
        // Back as a standby; one of the others is taking over meanwhile.
        tokio::task::block_in_place(|| brokers[victim].restart());
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    producing.stop.store(true, Ordering::SeqCst);
    tokio::time::timeout(Duration::from_secs(60), producing.task)
        .await
        .expect("producer finished")
        .unwrap();
    let confirmed: BTreeSet<u64> = confirmations.lock().iter().map(|(n, _)| *n).collect();
    assert!(
        confirmed.len() > 1000,
        "too little traffic: {}",
        confirmed.len()
    );

    // Every confirmed message arrives: they all live in the one store.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got: BTreeSet<u64> = processed.lock().iter().copied().collect();
        if confirmed.is_subset(&got) {
            break;
        }
        if Instant::now() > deadline {
            let missing: Vec<u64> = confirmed.difference(&got).copied().collect();
            for b in &brokers {
                let log = b.log();
                let lines: Vec<&str> = log.lines().filter(|l| !l.contains("INFO")).collect();
                eprintln!(
                    "broker {}:\n{}",
                    b.port,
                    lines[lines.len().saturating_sub(20)..].join("\n")
                );
            }
            panic!(
                "{} confirmed messages never arrived, e.g. {:?}",
                missing.len(),
                &missing[..missing.len().min(10)]
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let all = processed.lock().clone();
    let unique: BTreeSet<u64> = all.iter().copied().collect();
    let duplicates = all.len() - unique.len();

    // Outage per kill: the longest gap between confirmations from just before the
    // kill until well after it.
    let outages = traffic::outages(&kill_times, &confirmations.lock(), Duration::from_secs(3));
    eprintln!(
        "master/slave: {} kills, {} confirmed, {} processed, {} duplicates; outage median {:?}, worst {:?}",
        kill_times.len(),
        confirmed.len(),
        all.len(),
        duplicates,
        outages.get(outages.len() / 2).copied().unwrap_or_default(),
        outages.last().copied().unwrap_or_default(),
    );
    assert_eq!(duplicates, 0, "a message was processed twice");
    assert_eq!(
        outages.len(),
        kills,
        "the producer resumed after every kill"
    );
    consuming.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_paused_past_its_lease_confirms_nothing_and_steps_down() {
    let tmp = tempfile::tempdir().unwrap();
    let lease = [
        "--ha-lock",
        "lease",
        "--lease-ms",
        "1000",
        "--lease-renew-ms",
        "200",
        "--clock-skew-ms",
        "200",
        "--ha-poll-ms",
        POLL,
    ];
    let mut brokers = shared(tmp.path(), 2, &lease);
    let (old, standby) = (0, 1);
    let queue = "/queue/paused";
    // A producer on the old master alone: it cannot fail over, so whatever it is
    // told comes from the old master.
    let producer = Client::connect(&brokers[old].uri(), Identity::default())
        .await
        .unwrap();
    for i in 0..5 {
        producer
            .send(queue, format!("before-{i}"), persistent())
            .await
            .expect("confirmed while master");
    }

    brokers[old].signal("STOP");
    let paused = Instant::now();
    let new_epoch =
        tokio::task::block_in_place(|| brokers[standby].wait_for_role("master", TAKEOVER));
    let took_over_after = paused.elapsed();
    // Sent to the old master while it sleeps: they wait in its socket.
    let late: Vec<_> = (0..5)
        .map(|i| producer.send(queue, format!("during-{i}"), persistent()))
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    brokers[old].signal("CONT");
    for c in late {
        let outcome = tokio::time::timeout(Duration::from_secs(10), c)
            .await
            .expect("an answer or a closed connection");
        assert!(outcome.is_err(), "a superseded master confirmed a send");
    }
    let old_role = tokio::task::block_in_place(|| brokers[old].wait_for_role("slave", TAKEOVER));
    assert_eq!(
        old_role, new_epoch,
        "the old master stepped down to standby"
    );
    let log = brokers[old].log();
    assert!(log.contains("mastership lost"), "{log}");
    eprintln!("standby took over {took_over_after:?} after the pause");

    // The store is intact: killed and taken over again, it holds exactly what was confirmed.
    brokers[standby].kill();
    tokio::task::block_in_place(|| brokers[old].wait_for_role("master", TAKEOVER));
    let consumer = Client::connect(&brokers[old].uri(), Identity::default())
        .await
        .unwrap();
    let mut sub = consumer
        .subscribe(queue, SubscribeOptions::default())
        .await
        .unwrap();
    let mut got = Vec::new();
    while let Ok(Some(m)) = tokio::time::timeout(Duration::from_secs(2), sub.recv()).await {
        got.push(m.text().unwrap().to_owned());
    }
    let expected: Vec<String> = (0..5).map(|i| format!("before-{i}")).collect();
    assert_eq!(got, expected);
    let log = brokers[old].log();
    assert!(!log.contains("corrupt"), "{log}");
}
