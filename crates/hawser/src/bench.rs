//! `hawser bench`: a STOMP load generator that works against any STOMP broker,
//! built on Hawser's own client (`hawser-client`): each producer and consumer is
//! one client connection.
//!
//! Producers send messages carrying their producer id, sequence number and send
//! time in headers, keeping up to `--window` sends awaiting a RECEIPT (1 makes
//! them synchronous). Consumers check every message against what was confirmed:
//! at the end a confirmed message never received is *lost*, one received twice
//! is a *duplicate*. Latency is measured from send to receive in one process, so
//! the clock is shared. The load generator's own CPU time is reported so a reader
//! can see whether the client or the broker was the limit.
//!
//! A progress line goes to stderr every second; one JSON object goes to stdout.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use bytes::Bytes;
use hawser_client::{
    AckMode, Client, ClientError, Confirmation, Headers, Identity, SubscribeOptions, Subscription,
};
use hdrhistogram::Histogram;

/// How long to wait for outstanding receipts and messages after sending stops.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// Consumers give up when nothing arrives for this long after producers finished.
const IDLE_TIMEOUT: Duration = Duration::from_secs(5);

/// Options of `hawser bench`. Load-shape flags left out take the named
/// scenario's value (`--scenario S1`...), else the default shown.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct BenchArgs {
    /// Broker address (host:port) or a client URI (tcp://..., ssl://..., failover:(...)).
    #[arg(long, default_value = "127.0.0.1:61613")]
    pub broker: String,
    /// Where the consumers connect, if not to --broker: another broker of a
    /// network, so that every message crosses a network link.
    #[arg(long, value_name = "BROKER")]
    pub consumer_broker: Option<String>,
    /// A named scenario (S1-S6, see docs/benchmarks.md) or any name for the result.
    #[arg(long, default_value = "")]
    pub scenario: String,
    /// STOMP destination [default: /queue/hawser.bench, /topic/... for S6].
    #[arg(long)]
    pub destination: Option<String>,
    /// Producer connections [default: 4].
    #[arg(long)]
    pub producers: Option<usize>,
    /// Consumer connections [default: 4].
    #[arg(long)]
    pub consumers: Option<usize>,
    /// Body size in bytes [default: 1024].
    #[arg(long)]
    pub size: Option<usize>,
    /// Send persistent messages (S1, S2, S4, S5 do).
    #[arg(long)]
    pub persistent: bool,
    /// Send non-persistent messages even where the scenario would not.
    #[arg(long, conflicts_with = "persistent")]
    pub non_persistent: bool,
    /// Sends awaiting a receipt per producer (1: synchronous sends) [default: 64].
    #[arg(long)]
    pub window: Option<usize>,
    /// Consumer prefetch (activemq.prefetchSize) [default: 1000].
    #[arg(long)]
    pub prefetch: Option<u32>,
    /// Consumer ack mode: auto, client or client-individual [default: client-individual].
    #[arg(long)]
    pub ack: Option<String>,
    /// Total send rate in msg/s across producers, sends evenly spaced (latency runs); unlimited if absent.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Seconds to send for (ignored when --count is given).
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Messages per producer instead of a duration.
    #[arg(long)]
    pub count: Option<u64>,
    /// Login header (RabbitMQ needs one).
    #[arg(long)]
    pub login: Option<String>,
    /// Passcode header.
    #[arg(long)]
    pub passcode: Option<String>,
    /// Virtual host for the CONNECT `host` header (RabbitMQ: "/").
    #[arg(long, default_value = "localhost")]
    pub vhost: String,
    /// CA certificates (PEM) that sign the broker's certificate, for
    /// `ssl://` broker URIs.
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<std::path::PathBuf>,
    /// Extra SEND/SUBSCRIBE header, `name:value` (repeatable), e.g. x-queue-type:quorum.
    #[arg(long = "header")]
    pub headers: Vec<String>,
    /// Threads of the load generator's runtime. One by default: on a machine it
    /// shares with the broker, a second one cost more in cross-thread wake-ups than
    /// it added (S3 and S6 ran 15 % faster with one, the client using a quarter less
    /// CPU per message).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    pub threads: u16,
}

/// The load shape of a named scenario (issue 4), all with 1 KiB bodies unless stated.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Scenario {
    pub name: &'static str,
    pub producers: usize,
    pub consumers: usize,
    pub size: usize,
    pub persistent: bool,
    pub window: usize,
    pub ack: &'static str,
    pub rate: Option<f64>,
    pub topic: bool,
}

/// S1-S6.
pub const SCENARIOS: [Scenario; 6] = [
    // S1: persistent queue, 4 producers with 64 unconfirmed sends each, 4 consumers, individual acks.
    Scenario {
        name: "S1",
        producers: 4,
        consumers: 4,
        size: 1024,
        persistent: true,
        window: 64,
        ack: "client-individual",
        rate: None,
        topic: false,
    },
    // S2: the same with synchronous sends.
    Scenario {
        name: "S2",
        producers: 4,
        consumers: 4,
        size: 1024,
        persistent: true,
        window: 1,
        ack: "client-individual",
        rate: None,
        topic: false,
    },
    // S3: non-persistent queue, 4 producers, 4 consumers.
    Scenario {
        name: "S3",
        producers: 4,
        consumers: 4,
        size: 1024,
        persistent: false,
        window: 64,
        ack: "client-individual",
        rate: None,
        topic: false,
    },
    // S4: persistent latency at a fixed 2,000 msg/s, 1 producer and 1 consumer.
    Scenario {
        name: "S4",
        producers: 1,
        consumers: 1,
        size: 1024,
        persistent: true,
        window: 64,
        ack: "client-individual",
        rate: Some(2000.0),
        topic: false,
    },
    // S5: persistent 64 KiB bodies, 2 producers, 2 consumers.
    Scenario {
        name: "S5",
        producers: 2,
        consumers: 2,
        size: 64 * 1024,
        persistent: true,
        window: 16,
        ack: "client-individual",
        rate: None,
        topic: false,
    },
    // S6: topic fan-out, 1 producer, 16 subscribers, non-persistent.
    Scenario {
        name: "S6",
        producers: 1,
        consumers: 16,
        size: 1024,
        persistent: false,
        window: 64,
        ack: "auto",
        rate: None,
        topic: true,
    },
];

/// The defaults when neither a flag nor a scenario says otherwise.
const DEFAULT_SHAPE: Scenario = Scenario {
    name: "",
    producers: 4,
    consumers: 4,
    size: 1024,
    persistent: false,
    window: 64,
    ack: "client-individual",
    rate: None,
    topic: false,
};

/// Everything a run needs, resolved: flag, else scenario, else default.
#[derive(Clone, Debug)]
pub struct Plan {
    pub broker: String,
    pub consumer_broker: Option<String>,
    pub scenario: String,
    pub destination: String,
    pub producers: usize,
    pub consumers: usize,
    pub size: usize,
    pub persistent: bool,
    pub window: usize,
    pub prefetch: u32,
    pub ack: String,
    pub rate: Option<f64>,
    pub duration: f64,
    pub count: Option<u64>,
    pub login: Option<String>,
    pub passcode: Option<String>,
    pub vhost: String,
    pub ca_file: Option<std::path::PathBuf>,
    pub headers: Vec<String>,
}

impl BenchArgs {
    /// Applies the named scenario under the explicit flags.
    pub fn plan(&self) -> anyhow::Result<Plan> {
        let shape = match self.scenario.as_str() {
            "" => DEFAULT_SHAPE,
            name => SCENARIOS
                .iter()
                .find(|s| s.name.eq_ignore_ascii_case(name))
                .copied()
                .unwrap_or(DEFAULT_SHAPE),
        };
        let ack = self.ack.clone().unwrap_or_else(|| shape.ack.to_owned());
        if !matches!(ack.as_str(), "auto" | "client" | "client-individual") {
            bail!("--ack must be auto, client or client-individual");
        }
        let default_destination = if shape.topic {
            "/topic/hawser.bench"
        } else {
            "/queue/hawser.bench"
        };
        Ok(Plan {
            broker: self.broker.clone(),
            consumer_broker: self.consumer_broker.clone(),
            scenario: self.scenario.clone(),
            destination: self
                .destination
                .clone()
                .unwrap_or_else(|| default_destination.to_owned()),
            producers: self.producers.unwrap_or(shape.producers),
            consumers: self.consumers.unwrap_or(shape.consumers),
            size: self.size.unwrap_or(shape.size),
            persistent: (shape.persistent || self.persistent) && !self.non_persistent,
            window: self.window.unwrap_or(shape.window),
            prefetch: self.prefetch.unwrap_or(1000),
            ack,
            rate: self.rate.or(shape.rate),
            duration: self.duration,
            count: self.count,
            login: self.login.clone(),
            passcode: self.passcode.clone(),
            vhost: self.vhost.clone(),
            ca_file: self.ca_file.clone(),
            headers: self.headers.clone(),
        })
    }
}

/// The result printed as JSON.
#[derive(serde::Serialize, Debug)]
pub struct BenchResult {
    pub scenario: String,
    pub producers: usize,
    pub consumers: usize,
    pub size: usize,
    pub persistent: bool,
    pub window: usize,
    pub sent: u64,
    pub confirmed: u64,
    pub received: u64,
    pub elapsed_s: f64,
    pub msgs_per_sec: f64,
    pub mb_per_sec: f64,
    pub latency_us: Latency,
    pub lost: u64,
    pub duplicates: u64,
    pub client_cpu_s: f64,
}

/// Send-to-receive latency percentiles in microseconds.
#[derive(serde::Serialize, Debug, Default)]
pub struct Latency {
    pub p50: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
}

/// Counters shared by all tasks.
#[derive(Default)]
struct Progress {
    sent: AtomicU64,
    confirmed: AtomicU64,
    received: AtomicU64,
    /// Set when producers are done; consumers then stop once they have everything.
    producers_done: AtomicBool,
    /// When the last message arrived, ns since the start.
    last_received_ns: AtomicU64,
}

/// What one producer knows at the end.
struct ProducerOutcome {
    /// `confirmed[seq]` is true once the broker receipted it.
    confirmed: Vec<bool>,
}

/// What one consumer saw.
struct ConsumerOutcome {
    /// `seen[producer][seq]`: deliveries of that message (saturating).
    seen: Vec<Vec<u8>>,
    latency: Histogram<u64>,
}

impl ConsumerOutcome {
    fn count(&self, producer: usize, seq: usize) -> u8 {
        self.seen
            .get(producer)
            .and_then(|s| s.get(seq))
            .copied()
            .unwrap_or(0)
    }
}

/// Runs the benchmark and prints the JSON result.
pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    let plan = args.plan()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(usize::from(args.threads))
        .enable_all()
        .build()?;
    let result = runtime.block_on(bench(plan))?;
    println!("{}", serde_json::to_string(&result)?);
    Ok(())
}

/// The client URI for `--broker`: a URI as it is, a bare host:port as tcp://.
fn broker_uri(broker: &str) -> String {
    if broker.contains("://") || broker.starts_with("failover:") {
        broker.to_owned()
    } else {
        format!("tcp://{broker}")
    }
}

async fn connect(args: &Plan, broker: &str) -> anyhow::Result<Client> {
    let uri = broker_uri(broker);
    let identity = Identity {
        login: args.login.clone(),
        passcode: args.passcode.clone(),
        client_id: None,
        vhost: args.vhost.clone(),
        tls: args
            .ca_file
            .as_deref()
            .map(|ca| hawser_client::tls_config(ca, None))
            .transpose()?,
    };
    Client::connect(&uri, identity)
        .await
        .with_context(|| format!("cannot connect to {uri}"))
}

/// Runs the benchmark and returns its result.
pub async fn bench(args: Plan) -> anyhow::Result<BenchResult> {
    if args.window == 0 {
        bail!("--window must be at least 1 (1: synchronous sends)");
    }
    let cpu_before = process_cpu_seconds();
    let progress = Arc::new(Progress::default());
    let start = Instant::now();
    let topic = args.destination.starts_with("/topic/");
    let ack = match args.ack.as_str() {
        "auto" => AckMode::Auto,
        "client" => AckMode::Client,
        _ => AckMode::ClientIndividual,
    };

    let mut consumers = Vec::new();
    let consumer_broker = args.consumer_broker.as_deref().unwrap_or(&args.broker);
    for id in 0..args.consumers {
        let client = connect(&args, consumer_broker).await?;
        let options = SubscribeOptions {
            id: Some(format!("c{id}")),
            ack,
            prefetch: Some(args.prefetch),
            headers: parse_extra_headers(&args.headers)?
                .into_iter()
                // RabbitMQ's name for the prefetch.
                .chain([("prefetch-count".to_owned(), args.prefetch.to_string())])
                .collect(),
            // Count what the broker delivers, copies included.
            keep_duplicates: true,
            ..SubscribeOptions::default()
        };
        let sub = client
            .subscribe(&args.destination, options)
            .await
            .context("subscribe")?;
        let args = args.clone();
        let progress = Arc::clone(&progress);
        consumers.push(tokio::spawn(async move {
            consume(client, sub, args, start, progress, topic).await
        }));
    }
    let reporter = tokio::spawn(report(Arc::clone(&progress), start));
    let mut producers = Vec::new();
    let send_start = Instant::now();
    for id in 0..args.producers {
        let client = connect(&args, &args.broker).await?;
        let args = args.clone();
        let progress = Arc::clone(&progress);
        producers.push(tokio::spawn(async move {
            produce(client, id as u32, args, start, send_start, progress).await
        }));
    }
    let mut outcomes = Vec::new();
    for p in producers {
        outcomes.push(p.await.map_err(|e| anyhow!("producer task: {e}"))??);
    }
    progress.producers_done.store(true, Ordering::SeqCst);
    let mut seen_all = Vec::new();
    for c in consumers {
        seen_all.push(c.await.map_err(|e| anyhow!("consumer task: {e}"))??);
    }
    reporter.abort();
    // Throughput counts from the first send to the last delivery, not the idle tail.
    let last = Duration::from_nanos(progress.last_received_ns.load(Ordering::SeqCst));
    let elapsed = last
        .saturating_sub(send_start.duration_since(start))
        .as_secs_f64()
        .max(1e-9);

    let sent = progress.sent.load(Ordering::SeqCst);
    let confirmed = progress.confirmed.load(Ordering::SeqCst);
    let received = progress.received.load(Ordering::SeqCst);
    let mut latency = Histogram::<u64>::new(3)?;
    for c in &seen_all {
        latency.add(&c.latency)?;
    }
    let (lost, duplicates) = audit(&outcomes, &seen_all, topic);
    Ok(BenchResult {
        scenario: args.scenario.clone(),
        producers: args.producers,
        consumers: args.consumers,
        size: args.size,
        persistent: args.persistent,
        window: args.window,
        sent,
        confirmed,
        received,
        elapsed_s: elapsed,
        msgs_per_sec: received as f64 / elapsed,
        mb_per_sec: received as f64 * args.size as f64 / elapsed / 1e6,
        latency_us: Latency {
            p50: latency.value_at_quantile(0.50),
            p99: latency.value_at_quantile(0.99),
            p999: latency.value_at_quantile(0.999),
            max: latency.max(),
        },
        lost,
        duplicates,
        client_cpu_s: process_cpu_seconds() - cpu_before,
    })
}

/// Lost: confirmed but seen by nobody (queue) or missed by some subscriber (topic).
/// Duplicates: deliveries beyond the first, per consumer for topics, overall for queues.
fn audit(producers: &[ProducerOutcome], consumers: &[ConsumerOutcome], topic: bool) -> (u64, u64) {
    let mut lost = 0;
    let mut dups = 0;
    let seqs = |p: usize| {
        consumers
            .iter()
            .map(|c| c.seen.get(p).map_or(0, Vec::len))
            .chain(producers.get(p).map(|o| o.confirmed.len()))
            .max()
            .unwrap_or(0)
    };
    let max_producer = consumers
        .iter()
        .map(|c| c.seen.len())
        .chain([producers.len()])
        .max()
        .unwrap_or(0);
    for p in 0..max_producer {
        let confirmed = |seq: usize| {
            producers
                .get(p)
                .and_then(|o| o.confirmed.get(seq))
                .copied()
                .unwrap_or(false)
        };
        for seq in 0..seqs(p) {
            if topic {
                for c in consumers {
                    let n = u64::from(c.count(p, seq));
                    if n == 0 && confirmed(seq) {
                        lost += 1;
                    }
                    dups += n.saturating_sub(1);
                }
            } else {
                let n: u64 = consumers.iter().map(|c| u64::from(c.count(p, seq))).sum();
                if n == 0 && confirmed(seq) {
                    lost += 1;
                }
                dups += n.saturating_sub(1);
            }
        }
    }
    (lost, dups)
}

async fn report(progress: Arc<Progress>, start: Instant) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    let mut last = 0;
    loop {
        tick.tick().await;
        let received = progress.received.load(Ordering::Relaxed);
        eprintln!(
            "[{:>5.1}s] sent {} confirmed {} received {} ({} msg/s)",
            start.elapsed().as_secs_f64(),
            progress.sent.load(Ordering::Relaxed),
            progress.confirmed.load(Ordering::Relaxed),
            received,
            received - last
        );
        last = received;
    }
}

/// Sends until the deadline or the count, keeping up to `window` sends
/// awaiting their receipt; receipts arrive in send order on one connection, so
/// the oldest is the one to wait for when the window is full.
async fn produce(
    client: Client,
    id: u32,
    args: Plan,
    start: Instant,
    send_start: Instant,
    progress: Arc<Progress>,
) -> anyhow::Result<ProducerOutcome> {
    let body = Bytes::from(vec![b'x'; args.size]);
    let per_producer_rate = args.rate.map(|r| r / args.producers as f64);
    let deadline = send_start + Duration::from_secs_f64(args.duration);
    let limit = args.count.unwrap_or(u64::MAX);
    let extra = parse_extra_headers(&args.headers)?;
    let producer = id.to_string();
    let mut in_flight: VecDeque<(usize, Confirmation)> = VecDeque::with_capacity(args.window);
    let mut confirmed: Vec<bool> = Vec::new();
    let settle = |confirmed: &mut Vec<bool>,
                  seq: usize,
                  result: Result<(), ClientError>|
     -> anyhow::Result<()> {
        result.with_context(|| format!("producer {id}: send {seq} failed"))?;
        confirmed[seq] = true;
        progress.confirmed.fetch_add(1, Ordering::Relaxed);
        Ok(())
    };
    let mut pacer = per_producer_rate.map(|rate| pace(send_start, rate));
    let mut seq: u64 = 0;
    while seq < limit && (args.count.is_some() || Instant::now() < deadline) {
        if let Some(ticks) = &mut pacer {
            if ticks.recv().await.is_none() {
                bail!("producer {id}: pacing thread stopped");
            }
        }
        if in_flight.len() >= args.window {
            let (s, c) = in_flight.pop_front().expect("window is full");
            settle(&mut confirmed, s, c.await)?;
        }
        let mut headers = Headers::with_capacity(4 + extra.len(), 64);
        headers.push("bench-p", &producer);
        headers.push("bench-seq", itoa::Buffer::new().format(seq));
        headers.push(
            "bench-ts",
            itoa::Buffer::new().format(start.elapsed().as_nanos() as u64),
        );
        if args.persistent {
            headers.push("persistent", "true");
        }
        for (k, v) in &extra {
            headers.push(k, v);
        }
        confirmed.push(false);
        in_flight.push_back((
            seq as usize,
            client.send(&args.destination, body.clone(), headers),
        ));
        seq += 1;
        progress.sent.fetch_add(1, Ordering::Relaxed);
    }
    let drain = async {
        while let Some((s, c)) = in_flight.pop_front() {
            settle(&mut confirmed, s, c.await)?;
        }
        Ok::<(), anyhow::Error>(())
    };
    match tokio::time::timeout(DRAIN_TIMEOUT, drain).await {
        Ok(r) => r?,
        Err(_) => eprintln!("producer {id}: receipts still missing after {DRAIN_TIMEOUT:?}"),
    }
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, client.close()).await;
    Ok(ProducerOutcome { confirmed })
}

/// Ticks at `rate` per second from `start`, one per send, from a thread of its own.
///
/// Tokio's timers have a granularity of a millisecond, so at 2,000 msg/s they would wake a
/// producer once per millisecond to send two messages back to back, and the second would
/// wait behind the first on its way through the broker: latency that a steady rate does not
/// have. A thread sleeping with the operating system's high-resolution timer spaces the
/// sends as asked. A late tick is sent late, not skipped, so the average rate holds; ticks
/// a lagging producer has not taken are held up to `PACER_BACKLOG`, so that a rate beyond
/// what the producer reaches costs no memory. The thread ends when the producer drops the
/// receiver.
fn pace(start: Instant, rate: f64) -> tokio::sync::mpsc::Receiver<()> {
    const PACER_BACKLOG: usize = 1024;
    let (tx, rx) = tokio::sync::mpsc::channel(PACER_BACKLOG);
    std::thread::spawn(move || {
        for seq in 0u64.. {
            let due = start + Duration::from_secs_f64(seq as f64 / rate);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            if tx.blocking_send(()).is_err() {
                return;
            }
        }
    });
    rx
}

async fn consume(
    client: Client,
    mut sub: Subscription,
    args: Plan,
    start: Instant,
    progress: Arc<Progress>,
    topic: bool,
) -> anyhow::Result<ConsumerOutcome> {
    let mut seen: Vec<Vec<u8>> = Vec::new();
    let mut latency = Histogram::<u64>::new(3)?;
    let ack = args.ack != "auto";
    let mut mine: u64 = 0;
    // Counts kept here and added to the shared ones now and then: 16 consumers
    // bumping one shared counter per message would make its cache line the
    // busiest thing on the machine.
    let mut unpublished: u64 = 0;
    let mut last_now: u64 = 0;
    let publish = |unpublished: &mut u64, last_now: u64| {
        if *unpublished > 0 {
            progress.received.fetch_add(*unpublished, Ordering::Relaxed);
            progress
                .last_received_ns
                .fetch_max(last_now, Ordering::Relaxed);
            *unpublished = 0;
        }
    };
    loop {
        let done = progress.producers_done.load(Ordering::SeqCst);
        if done {
            publish(&mut unpublished, last_now);
            let sent = progress.sent.load(Ordering::SeqCst);
            let have = if topic {
                mine
            } else {
                progress.received.load(Ordering::SeqCst)
            };
            if have >= sent {
                break;
            }
        }
        // A timer only when nothing is waiting: one per message would cost more
        // than the message.
        let next = match sub.try_recv() {
            Some(m) => Ok(Some(m)),
            None => {
                publish(&mut unpublished, last_now);
                tokio::time::timeout(Duration::from_millis(100), sub.recv()).await
            }
        };
        let m = match next {
            Ok(Some(m)) => m,
            Ok(None) => bail!("consumer: connection to the broker lost"),
            Err(_) => {
                let last = Duration::from_nanos(progress.last_received_ns.load(Ordering::Relaxed));
                if done && start.elapsed().saturating_sub(last) > IDLE_TIMEOUT {
                    break;
                }
                continue;
            }
        };
        let now = start.elapsed().as_nanos() as u64;
        last_now = now;
        let marks = BenchHeaders::of(&m.headers);
        if let (Some(p), Some(s)) = (marks.producer, marks.seq) {
            if seen.len() <= p {
                seen.resize_with(p + 1, Vec::new);
            }
            let counts = &mut seen[p];
            if counts.len() <= s {
                counts.resize(s + 1, 0);
            }
            counts[s] = counts[s].saturating_add(1);
        }
        if let Some(ts) = marks.sent_ns {
            latency.record(now.saturating_sub(ts) / 1000)?;
        }
        mine += 1;
        unpublished += 1;
        if unpublished >= 64 {
            publish(&mut unpublished, last_now);
        }
        if ack {
            m.ack_nowait()?;
        }
    }
    publish(&mut unpublished, last_now);
    drop(sub);
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, client.close()).await;
    Ok(ConsumerOutcome { seen, latency })
}

/// What the load generator wrote into a message's headers.
#[derive(Default)]
struct BenchHeaders {
    producer: Option<usize>,
    seq: Option<usize>,
    sent_ns: Option<u64>,
}

impl BenchHeaders {
    /// Reads all three in one pass over the headers rather than one search each: the
    /// consumers run this for every message, and the load generator should cost as little
    /// of the machine it shares with the broker as it can. The first of repeated names
    /// counts, as in [`Headers::get`].
    fn of(headers: &Headers) -> BenchHeaders {
        let mut marks = BenchHeaders::default();
        let (mut p, mut s, mut t) = (false, false, false);
        for (name, value) in headers.iter() {
            match name {
                "bench-p" if !p => (p, marks.producer) = (true, value.parse().ok()),
                "bench-seq" if !s => (s, marks.seq) = (true, value.parse().ok()),
                "bench-ts" if !t => (t, marks.sent_ns) = (true, value.parse().ok()),
                _ => continue,
            }
            if p && s && t {
                break;
            }
        }
        marks
    }
}

fn parse_extra_headers(headers: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    headers
        .iter()
        .map(|h| {
            h.split_once(':')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .ok_or_else(|| anyhow!("--header {h:?} is not name:value"))
        })
        .collect()
}

/// User plus system CPU time of this process, from /proc/self/stat.
fn process_cpu_seconds() -> f64 {
    const CLOCK_TICKS_PER_SECOND: f64 = 100.0;
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the parenthesised command name; utime and stime are the 14th and 15th.
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / CLOCK_TICKS_PER_SECOND
}

#[cfg(test)]
mod tests {
    use super::*;

    fn consumer(seen: Vec<Vec<u8>>) -> ConsumerOutcome {
        ConsumerOutcome {
            seen,
            latency: Histogram::new(3).unwrap(),
        }
    }

    fn producer(confirmed: &[bool]) -> ProducerOutcome {
        ProducerOutcome {
            confirmed: confirmed.to_vec(),
        }
    }

    #[test]
    fn queue_audit_counts_lost_and_duplicated_across_consumers() {
        // Producer 0 sent 4 (the last unconfirmed), producer 1 sent 2.
        let producers = [
            producer(&[true, true, true, false]),
            producer(&[true, true]),
        ];
        let consumers = [
            consumer(vec![vec![1, 0, 0, 0], vec![0, 1]]),
            consumer(vec![vec![1, 0, 1, 0]]),
        ];
        // Lost: p0 seq 1 (confirmed, seen by nobody) and p1 seq 0. The
        // unconfirmed p0 seq 3 never arriving is not a loss. Duplicated: p0 seq 0.
        assert_eq!(audit(&producers, &consumers, false), (2, 1));
    }

    #[test]
    fn topic_audit_counts_per_subscriber() {
        let producers = [producer(&[true, true])];
        let consumers = [consumer(vec![vec![1, 1]]), consumer(vec![vec![2, 0]])];
        // The second subscriber missed seq 1 and got seq 0 twice.
        assert_eq!(audit(&producers, &consumers, true), (1, 1));
    }

    #[test]
    fn scenarios_take_flags_over_presets() {
        let args = BenchArgs {
            scenario: "s2".into(),
            window: Some(8),
            ..BenchArgs::default()
        };
        let plan = args.plan().unwrap();
        assert!(plan.persistent);
        assert_eq!(plan.window, 8);
        assert_eq!(plan.producers, 4);
        assert_eq!(broker_uri("127.0.0.1:1"), "tcp://127.0.0.1:1");
        assert_eq!(broker_uri("failover:(tcp://a:1)"), "failover:(tcp://a:1)");
    }
}
