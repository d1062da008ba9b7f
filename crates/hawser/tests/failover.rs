//! Failover with real broker processes: a producer and a consumer on
//! `failover:(A,B)` while the broker they use is killed with SIGKILL and
//! restarted, again and again. Every confirmed message must arrive, none twice;
//! the outages the producer saw are printed (run with `--nocapture`).

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hawser_client::{Client, Identity, SubscribeOptions};

use common::traffic::{self, Rng};
use common::{free_port, mkdir, Broker};

/// Kills of the broker in use.
const KILLS: usize = 20;
/// Confirmations a producer waits for at most at once.
const WINDOW: usize = 16;
/// The producer's pace: one send per this interval, so the consumer (which waits
/// for each ack's receipt) keeps up and the drain at the end is short.
const SEND_INTERVAL: Duration = Duration::from_micros(700);

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confirmed_messages_survive_repeated_kills_without_duplicates() {
    let seed = traffic::seed(0x5eed_2026_1125_u64);
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let tmp = tempfile::tempdir().unwrap();
    let mut brokers = [
        Broker::start(&mkdir(tmp.path().join("a")), free_port()),
        Broker::start(&mkdir(tmp.path().join("b")), free_port()),
    ];
    let uri = format!(
        "failover:({},{})?randomize=false&initialReconnectDelay=10&maxReconnectDelay=100",
        brokers[0].uri(),
        brokers[1].uri()
    );
    let queue = "/queue/failover.test";
    let traffic::Traffic {
        producer,
        consumer,
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
        // Kill the broker the producer uses (the consumer follows the same list).
        kill_times.push(Instant::now());
        let victim = kill_current(&mut brokers, &producer);
        tokio::time::sleep(Duration::from_millis(100)).await;
        brokers[victim].restart();
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
    eprintln!(
        "producer done: {} confirmed, {} processed so far",
        confirmed.len(),
        processed.lock().len()
    );

    // Drain: messages left on the other broker are reached by moving the consumer there.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last_count = 0;
    let mut stalled_since = Instant::now();
    loop {
        let got: BTreeSet<u64> = processed.lock().iter().copied().collect();
        if confirmed.is_subset(&got) {
            break;
        }
        if Instant::now() > deadline {
            let missing: Vec<u64> = confirmed.difference(&got).copied().collect();
            for b in brokers.iter() {
                eprintln!(
                    "broker {}: {:?}",
                    b.uri(),
                    browse_count(&b.uri(), queue).await
                );
                let log = std::fs::read_to_string(b.dir.join("broker.log")).unwrap_or_default();
                let lines: Vec<&str> = log.lines().filter(|l| !l.contains("INFO")).collect();
                eprintln!("{}", lines[lines.len().saturating_sub(20)..].join("\n"));
            }
            eprintln!("consumer status {:?}", consumer.status());
            panic!(
                "{} confirmed messages never arrived, e.g. {:?}",
                missing.len(),
                &missing[..missing.len().min(10)]
            );
        }
        let count = processed.lock().len();
        if count != last_count {
            last_count = count;
            stalled_since = Instant::now();
        } else if stalled_since.elapsed() > Duration::from_secs(2) {
            let victim = kill_current(&mut brokers, &consumer);
            tokio::time::sleep(Duration::from_millis(100)).await;
            brokers[victim].restart();
            stalled_since = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let all = processed.lock().clone();
    let unique: BTreeSet<u64> = all.iter().copied().collect();
    let duplicates = all.len() - unique.len();

    // Outage per kill: the longest gap between two confirmations the producer
    // got around that kill (from just before it to well after the restart).
    let outages = traffic::outages(
        &kill_times,
        &confirmations.lock(),
        Duration::from_millis(150),
    );
    let longest_pause = traffic::longest_pause(&confirmations.lock());
    eprintln!(
        "failover: {} kills, {} confirmed, {} processed, {} duplicates; outage median {:?}, worst {:?}; longest producer pause {:?}",
        kill_times.len(),
        confirmed.len(),
        all.len(),
        duplicates,
        percentile(&outages, 0.5),
        outages.last().copied().unwrap_or_default(),
        longest_pause
    );
    assert_eq!(duplicates, 0, "a message was processed twice");
    assert!(
        outages.len() + 1 >= kills,
        "the producer did not resume after every kill"
    );

    consuming.abort();
    drop(producer);
    drop(consumer);
}

/// How many messages wait in `queue` on one broker (for diagnostics).
async fn browse_count(uri: &str, queue: &str) -> Result<usize, hawser_client::ClientError> {
    let c = Client::connect(uri, Identity::default()).await?;
    let mut sub = c
        .subscribe(
            queue,
            SubscribeOptions {
                browse: true,
                ..SubscribeOptions::default()
            },
        )
        .await?;
    let mut n = 0;
    while let Ok(Some(m)) = tokio::time::timeout(Duration::from_secs(2), sub.recv()).await {
        if m.header("browser") == Some("end") {
            break;
        }
        n += 1;
    }
    Ok(n)
}

/// Kills whichever broker the client is connected to; returns its index.
fn kill_current(brokers: &mut [Broker; 2], client: &Client) -> usize {
    let at = client.status().connected_to.unwrap_or_default();
    let victim = if at.ends_with(&format!(":{}", brokers[1].port)) {
        1
    } else {
        0
    };
    brokers[victim].kill();
    victim
}
