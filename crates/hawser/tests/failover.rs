//! Failover with real broker processes: a producer and a consumer on
//! `failover:(A,B)` while the broker they use is killed with SIGKILL and
//! restarted, again and again. Every confirmed message must arrive, none twice;
//! the outages the producer saw are printed (run with `--nocapture`).

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hawser_client::{AckMode, Client, Identity, SubscribeOptions};
use parking_lot::Mutex;

use common::{free_port, mkdir, Broker};

/// Kills of the broker in use.
const KILLS: usize = 20;
/// Confirmations a producer waits for at most at once.
const WINDOW: usize = 16;
/// The producer's pace: one send per this interval, so the consumer (which waits
/// for each ack's receipt) keeps up and the drain at the end is short.
const SEND_INTERVAL: Duration = Duration::from_micros(700);

/// A small seeded generator, so a failing schedule can be replayed.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confirmed_messages_survive_repeated_kills_without_duplicates() {
    let seed = std::env::var("HAWSER_FAILOVER_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_2026_1125_u64);
    eprintln!("failover test seed {seed} (set HAWSER_FAILOVER_SEED to replay)");
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
    let producer = Arc::new(Client::connect(&uri, Identity::default()).await.unwrap());
    let consumer = Client::connect(&uri, Identity::default()).await.unwrap();
    let queue = "/queue/failover.test";
    let mut sub = consumer
        .subscribe(
            queue,
            SubscribeOptions {
                ack: AckMode::ClientIndividual,
                prefetch: Some(50),
                ..SubscribeOptions::default()
            },
        )
        .await
        .unwrap();

    // The consumer records what it processed, acknowledging each message.
    let processed = Arc::new(Mutex::new(Vec::<u64>::new()));
    let consuming = {
        let processed = Arc::clone(&processed);
        tokio::spawn(async move {
            while let Some(m) = sub.recv().await {
                let n: u64 = m.text().unwrap().parse().unwrap();
                processed.lock().push(n);
                let _ = m.ack().await;
            }
        })
    };

    // The producer keeps WINDOW sends in flight and notes when each is confirmed.
    let stop = Arc::new(AtomicBool::new(false));
    let confirmations = Arc::new(Mutex::new(Vec::<(u64, Instant)>::new()));
    let producing = {
        let stop = Arc::clone(&stop);
        let confirmations = Arc::clone(&confirmations);
        let producer = Arc::clone(&producer);
        tokio::spawn(async move {
            let mut in_flight = std::collections::VecDeque::new();
            let mut seq = 0u64;
            let mut pace = tokio::time::interval(SEND_INTERVAL);
            pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            while !stop.load(Ordering::SeqCst) {
                pace.tick().await;
                let c = producer.send(
                    queue,
                    seq.to_string(),
                    [("persistent", "true")].into_iter().collect(),
                );
                in_flight.push_back((seq, c));
                seq += 1;
                if in_flight.len() >= WINDOW {
                    let (n, c) = in_flight.pop_front().unwrap();
                    c.await.expect("a send failed");
                    confirmations.lock().push((n, Instant::now()));
                }
            }
            for (n, c) in in_flight {
                c.await.expect("a send failed");
                confirmations.lock().push((n, Instant::now()));
            }
        })
    };

    let mut rng = Rng(seed);
    let mut kill_times = Vec::new();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let kills: usize = std::env::var("HAWSER_FAILOVER_KILLS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(KILLS);
    for _ in 0..kills {
        tokio::time::sleep(Duration::from_millis(200 + rng.next() % 300)).await;
        // Kill the broker the producer uses (the consumer follows the same list).
        kill_times.push(Instant::now());
        let victim = kill_current(&mut brokers, &producer);
        tokio::time::sleep(Duration::from_millis(100)).await;
        brokers[victim].restart();
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::SeqCst);
    tokio::time::timeout(Duration::from_secs(60), producing)
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
    let times: Vec<Instant> = {
        let mut t: Vec<Instant> = confirmations.lock().iter().map(|(_, t)| *t).collect();
        t.sort();
        t
    };
    let mut outages: Vec<Duration> = kill_times
        .iter()
        .filter_map(|k| {
            let from = k.checked_sub(Duration::from_millis(20)).unwrap_or(*k);
            let around: Vec<&Instant> = times
                .iter()
                .filter(|t| **t >= from && **t <= *k + Duration::from_millis(150))
                .collect();
            around.windows(2).map(|w| w[1].duration_since(*w[0])).max()
        })
        .collect();
    outages.sort();
    let longest_pause = times
        .windows(2)
        .map(|w| w[1].duration_since(w[0]))
        .max()
        .unwrap_or_default();
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
