//! Traffic for the failover tests: a producer that keeps a window of confirmed
//! sends in flight, a consumer that acknowledges every message it processes, and
//! the outage the producer saw around each kill.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hawser_client::{AckMode, Client, Headers, Identity, SubscribeOptions, Subscription};
use parking_lot::Mutex;
use tokio::task::JoinHandle;

/// A small seeded generator, so a failing schedule can be replayed.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// `HAWSER_FAILOVER_SEED`, or `default`; printed so a failure can be replayed.
pub fn seed(default: u64) -> u64 {
    let seed = std::env::var("HAWSER_FAILOVER_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default);
    eprintln!("seed {seed} (set HAWSER_FAILOVER_SEED to replay)");
    seed
}

/// `HAWSER_FAILOVER_KILLS`, or `default`.
pub fn kills(default: usize) -> usize {
    std::env::var("HAWSER_FAILOVER_KILLS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// The message numbers the consumer processed, in order.
pub type Processed = Arc<Mutex<Vec<u64>>>;

/// Processes (records) each message, then acknowledges it and waits for the receipt.
pub fn consume_acking(mut sub: Subscription) -> (Processed, JoinHandle<()>) {
    let processed = Processed::default();
    let task = {
        let processed = Arc::clone(&processed);
        tokio::spawn(async move {
            while let Some(m) = sub.recv().await {
                let n: u64 = m.text().unwrap().parse().unwrap();
                processed.lock().push(n);
                let _ = m.ack().await;
            }
        })
    };
    (processed, task)
}

/// A running producer: set `stop`, then await `task`.
pub struct Producing {
    /// Each confirmed message and when its confirmation arrived.
    pub confirmations: Arc<Mutex<Vec<(u64, Instant)>>>,
    pub stop: Arc<AtomicBool>,
    pub task: JoinHandle<()>,
}

/// Sends 0, 1, 2... (persistent) one per `interval`, with at most `window` awaiting
/// confirmation; every send must eventually be confirmed, across failovers.
pub fn produce_windowed(
    producer: Arc<Client>,
    queue: &'static str,
    window: usize,
    interval: Duration,
) -> Producing {
    let stop = Arc::new(AtomicBool::new(false));
    let confirmations = Arc::new(Mutex::new(Vec::<(u64, Instant)>::new()));
    let task = {
        let (stop, confirmations) = (Arc::clone(&stop), Arc::clone(&confirmations));
        tokio::spawn(async move {
            let persistent: Headers = [("persistent", "true")].into_iter().collect();
            let mut in_flight = VecDeque::new();
            let mut seq = 0u64;
            let mut pace = tokio::time::interval(interval);
            pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            while !stop.load(Ordering::SeqCst) {
                pace.tick().await;
                let c = producer.send(queue, seq.to_string(), persistent.clone());
                in_flight.push_back((seq, c));
                seq += 1;
                if in_flight.len() >= window {
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
    Producing {
        confirmations,
        stop,
        task,
    }
}

/// Per kill, the longest gap between two confirmations from just before the
/// kill until `after` it; sorted. A kill with no such gap is left out.
pub fn outages(
    kill_times: &[Instant],
    confirmations: &[(u64, Instant)],
    after: Duration,
) -> Vec<Duration> {
    let mut times: Vec<Instant> = confirmations.iter().map(|(_, t)| *t).collect();
    times.sort();
    let mut outages: Vec<Duration> = kill_times
        .iter()
        .filter_map(|k| {
            let from = k.checked_sub(Duration::from_millis(20)).unwrap_or(*k);
            let around: Vec<&Instant> = times
                .iter()
                .filter(|t| **t >= from && **t <= *k + after)
                .collect();
            around.windows(2).map(|w| w[1].duration_since(*w[0])).max()
        })
        .collect();
    outages.sort();
    outages
}

/// The longest gap between any two confirmations.
pub fn longest_pause(confirmations: &[(u64, Instant)]) -> Duration {
    let mut times: Vec<Instant> = confirmations.iter().map(|(_, t)| *t).collect();
    times.sort();
    times
        .windows(2)
        .map(|w| w[1].duration_since(w[0]))
        .max()
        .unwrap_or_default()
}

/// A producer and an acknowledging consumer on one URI, both running.
pub struct Traffic {
    pub producer: Arc<Client>,
    pub consumer: Client,
    pub processed: Processed,
    pub consuming: JoinHandle<()>,
    pub producing: Producing,
}

/// Connects a producer and a consumer (client-individual acks, prefetch 50) to
/// `uri` and starts [`produce_windowed`] and [`consume_acking`] on `queue`.
pub async fn start(uri: &str, queue: &'static str, window: usize, interval: Duration) -> Traffic {
    let producer = Arc::new(Client::connect(uri, Identity::default()).await.unwrap());
    let consumer = Client::connect(uri, Identity::default()).await.unwrap();
    let sub = consumer
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
    let (processed, consuming) = consume_acking(sub);
    let producing = produce_windowed(Arc::clone(&producer), queue, window, interval);
    Traffic {
        producer,
        consumer,
        processed,
        consuming,
        producing,
    }
}
