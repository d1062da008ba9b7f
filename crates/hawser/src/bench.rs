//! `hawser bench`: a STOMP load generator that works against any STOMP broker.
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

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use bytes::{Bytes, BytesMut};
use hawser_stomp::{encode, Command, Decoder, Frame, Item, Limits, Version};
use hdrhistogram::Histogram;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

/// How long to wait for outstanding receipts and messages after sending stops.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// Consumers give up when nothing arrives for this long after producers finished.
const IDLE_TIMEOUT: Duration = Duration::from_secs(5);
/// Sends written in one syscall when the window allows.
const SEND_BATCH: usize = 64;

/// Options of `hawser bench`. Load-shape flags left out take the named
/// scenario's value (`--scenario S1`...), else the default shown.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct BenchArgs {
    /// Broker address (host:port).
    #[arg(long, default_value = "127.0.0.1:61613")]
    pub broker: String,
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
    /// Sends awaiting a receipt per producer (1: synchronous; 0: no receipts) [default: 64].
    #[arg(long)]
    pub window: Option<usize>,
    /// Consumer prefetch (activemq.prefetchSize) [default: 1000].
    #[arg(long)]
    pub prefetch: Option<u32>,
    /// Consumer ack mode: auto, client or client-individual [default: client-individual].
    #[arg(long)]
    pub ack: Option<String>,
    /// Total send rate in msg/s across producers (latency runs); unlimited if absent.
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
    /// Extra SEND/SUBSCRIBE header, `name:value` (repeatable), e.g. x-queue-type:quorum.
    #[arg(long = "header")]
    pub headers: Vec<String>,
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
    /// `confirmed[seq]` is true once the broker receipted it (all true without receipts).
    confirmed: Vec<bool>,
}

/// What one consumer saw.
struct ConsumerOutcome {
    /// Deliveries per (producer, seq).
    seen: HashMap<(u32, u64), u32>,
    latency: Histogram<u64>,
}

/// Runs the benchmark and prints the JSON result.
pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    let plan = args.plan()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let result = runtime.block_on(bench(plan))?;
    println!("{}", serde_json::to_string(&result)?);
    Ok(())
}

/// Runs the benchmark and returns its result.
pub async fn bench(args: Plan) -> anyhow::Result<BenchResult> {
    let cpu_before = process_cpu_seconds();
    let progress = Arc::new(Progress::default());
    let start = Instant::now();
    let topic = args.destination.starts_with("/topic/");

    let mut consumers = Vec::new();
    for id in 0..args.consumers {
        let conn = StompConn::connect(&args).await?;
        let mut conn = conn;
        conn.subscribe(&args, id).await?;
        let args = args.clone();
        let progress = Arc::clone(&progress);
        consumers.push(tokio::spawn(async move {
            consume(conn, args, start, progress, topic).await
        }));
    }
    let reporter = tokio::spawn(report(Arc::clone(&progress), start));
    let mut producers = Vec::new();
    let send_start = Instant::now();
    for id in 0..args.producers {
        let conn = StompConn::connect(&args).await?;
        let args = args.clone();
        let progress = Arc::clone(&progress);
        producers.push(tokio::spawn(async move {
            produce(conn, id as u32, args, start, send_start, progress).await
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
    if topic {
        for c in consumers {
            for (p, out) in producers.iter().enumerate() {
                for (seq, ok) in out.confirmed.iter().enumerate() {
                    if *ok && !c.seen.contains_key(&(p as u32, seq as u64)) {
                        lost += 1;
                    }
                }
            }
            dups += c.seen.values().map(|n| u64::from(n - 1)).sum::<u64>();
        }
    } else {
        let mut total: HashMap<(u32, u64), u32> = HashMap::new();
        for c in consumers {
            for (k, n) in &c.seen {
                *total.entry(*k).or_default() += n;
            }
        }
        for (p, out) in producers.iter().enumerate() {
            for (seq, ok) in out.confirmed.iter().enumerate() {
                if *ok && !total.contains_key(&(p as u32, seq as u64)) {
                    lost += 1;
                }
            }
        }
        dups = total.values().map(|n| u64::from(n - 1)).sum();
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

async fn produce(
    conn: StompConn,
    id: u32,
    args: Plan,
    start: Instant,
    send_start: Instant,
    progress: Arc<Progress>,
) -> anyhow::Result<ProducerOutcome> {
    let StompConn {
        mut rd,
        mut wr,
        mut buf,
        mut decoder,
    } = conn;
    let body = Bytes::from(vec![b'x'; args.size]);
    let window = Arc::new(Semaphore::new(args.window.max(1)));
    let with_receipts = args.window > 0;
    let confirmed = Arc::new(parking_lot::Mutex::new(Vec::<bool>::new()));
    let reader = {
        let window = Arc::clone(&window);
        let confirmed = Arc::clone(&confirmed);
        let progress = Arc::clone(&progress);
        tokio::spawn(async move {
            loop {
                for frame in read_frames(&mut rd, &mut buf, &mut decoder).await? {
                    match frame.command {
                        Command::Receipt => {
                            let seq: usize = frame
                                .header("receipt-id")
                                .and_then(|r| r.parse().ok())
                                .ok_or_else(|| {
                                    anyhow!("unexpected receipt {:?}", frame.header("receipt-id"))
                                })?;
                            let mut c = confirmed.lock();
                            if c.len() <= seq {
                                c.resize(seq + 1, false);
                            }
                            c[seq] = true;
                            progress.confirmed.fetch_add(1, Ordering::Relaxed);
                            window.add_permits(1);
                        }
                        Command::Error => bail!("broker error: {:?}", frame.header("message")),
                        _ => {}
                    }
                }
            }
            #[allow(unreachable_code)]
            Ok::<(), anyhow::Error>(())
        })
    };
    let per_producer_rate = args.rate.map(|r| r / args.producers as f64);
    let deadline = send_start + Duration::from_secs_f64(args.duration);
    let limit = args.count.unwrap_or(u64::MAX);
    let extra = parse_extra_headers(&args.headers)?;
    let mut out = BytesMut::with_capacity(SEND_BATCH * (args.size + 256));
    let mut seq: u64 = 0;
    while seq < limit && (args.count.is_some() || Instant::now() < deadline) {
        if let Some(rate) = per_producer_rate {
            let due = send_start + Duration::from_secs_f64(seq as f64 / rate);
            tokio::time::sleep_until(due.into()).await;
        }
        if with_receipts {
            window.acquire().await?.forget();
        }
        let mut batch = 0;
        loop {
            let mut f = Frame::new(Command::Send)
                .with_header("destination", args.destination.clone())
                .with_header("bench-p", id.to_string())
                .with_header("bench-seq", seq.to_string())
                .with_header("bench-ts", (start.elapsed().as_nanos() as u64).to_string());
            if args.persistent {
                f.push_header("persistent", "true");
            }
            if with_receipts {
                f.push_header("receipt", seq.to_string());
            }
            for (k, v) in &extra {
                f.push_header(k.clone(), v.clone());
            }
            let f = f.with_body(body.clone());
            encode(&f, Version::V1_2, &mut out);
            seq += 1;
            batch += 1;
            progress.sent.fetch_add(1, Ordering::Relaxed);
            if per_producer_rate.is_some() || batch >= SEND_BATCH || seq >= limit {
                break;
            }
            if with_receipts {
                match window.try_acquire() {
                    Ok(p) => p.forget(),
                    Err(_) => break,
                }
            }
        }
        wr.write_all(&out).await.context("send")?;
        out.clear();
    }
    // Wait for the outstanding receipts.
    if with_receipts {
        let all = window.acquire_many(args.window.max(1) as u32);
        if tokio::time::timeout(DRAIN_TIMEOUT, all).await.is_err() {
            eprintln!("producer {id}: receipts still missing after {DRAIN_TIMEOUT:?}");
        }
    }
    reader.abort();
    let mut confirmed = std::mem::take(&mut *confirmed.lock());
    if !with_receipts {
        confirmed = vec![true; seq as usize];
    }
    confirmed.resize(seq as usize, false);
    let mut bye = BytesMut::new();
    encode(&Frame::new(Command::Disconnect), Version::V1_2, &mut bye);
    let _ = wr.write_all(&bye).await;
    Ok(ProducerOutcome { confirmed })
}

async fn consume(
    conn: StompConn,
    args: Plan,
    start: Instant,
    progress: Arc<Progress>,
    topic: bool,
) -> anyhow::Result<ConsumerOutcome> {
    let StompConn {
        mut rd,
        mut wr,
        mut buf,
        mut decoder,
    } = conn;
    let mut seen: HashMap<(u32, u64), u32> = HashMap::new();
    let mut latency = Histogram::<u64>::new(3)?;
    let mut acks = BytesMut::new();
    let ack = args.ack != "auto";
    let mut mine: u64 = 0;
    loop {
        let done = progress.producers_done.load(Ordering::SeqCst);
        if done {
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
        let frames = match tokio::time::timeout(
            Duration::from_millis(100),
            read_frames(&mut rd, &mut buf, &mut decoder),
        )
        .await
        {
            Ok(frames) => frames?,
            Err(_) => {
                let last = Duration::from_nanos(progress.last_received_ns.load(Ordering::Relaxed));
                if done && start.elapsed().saturating_sub(last) > IDLE_TIMEOUT {
                    break;
                }
                continue;
            }
        };
        let now = start.elapsed().as_nanos() as u64;
        progress.last_received_ns.fetch_max(now, Ordering::Relaxed);
        for f in frames {
            match f.command {
                Command::Message => {
                    let p = f.header("bench-p").and_then(|v| v.parse().ok());
                    let s = f.header("bench-seq").and_then(|v| v.parse().ok());
                    let ts: Option<u64> = f.header("bench-ts").and_then(|v| v.parse().ok());
                    if let (Some(p), Some(s)) = (p, s) {
                        *seen.entry((p, s)).or_default() += 1;
                    }
                    if let Some(ts) = ts {
                        latency.record(now.saturating_sub(ts) / 1000)?;
                    }
                    mine += 1;
                    progress.received.fetch_add(1, Ordering::Relaxed);
                    if ack {
                        let id = f
                            .header("ack")
                            .or_else(|| f.header("message-id"))
                            .unwrap_or_default()
                            .to_owned();
                        let a = Frame::new(Command::Ack)
                            .with_header("id", id.clone())
                            .with_header("message-id", id)
                            .with_header(
                                "subscription",
                                f.header("subscription").unwrap_or_default().to_owned(),
                            );
                        encode(&a, Version::V1_2, &mut acks);
                    }
                }
                Command::Error => bail!("broker error: {:?}", f.header("message")),
                _ => {}
            }
        }
        if !acks.is_empty() {
            wr.write_all(&acks).await?;
            acks.clear();
        }
    }
    let mut bye = BytesMut::new();
    encode(&Frame::new(Command::Disconnect), Version::V1_2, &mut bye);
    let _ = wr.write_all(&bye).await;
    Ok(ConsumerOutcome { seen, latency })
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

/// A minimal STOMP 1.2 connection for the load generator.
struct StompConn {
    rd: OwnedReadHalf,
    wr: OwnedWriteHalf,
    buf: BytesMut,
    decoder: Decoder,
}

impl StompConn {
    async fn connect(args: &Plan) -> anyhow::Result<StompConn> {
        let stream = TcpStream::connect(&args.broker)
            .await
            .with_context(|| format!("cannot connect to {}", args.broker))?;
        stream.set_nodelay(true)?;
        let (rd, mut wr) = stream.into_split();
        let mut f = Frame::new(Command::Connect)
            .with_header("accept-version", "1.2")
            .with_header("host", args.vhost.clone())
            .with_header("heart-beat", "0,0");
        if let Some(l) = &args.login {
            f.push_header("login", l.clone());
        }
        if let Some(p) = &args.passcode {
            f.push_header("passcode", p.clone());
        }
        let mut out = BytesMut::new();
        encode(&f, Version::V1_2, &mut out);
        wr.write_all(&out).await?;
        let mut conn = StompConn {
            rd,
            wr,
            buf: BytesMut::with_capacity(256 * 1024),
            decoder: Decoder::new(Limits::default()),
        };
        let first = conn.next_frame().await?;
        if first.command != Command::Connected {
            bail!("broker refused connection: {:?}", first.header("message"));
        }
        conn.decoder.set_version(Version::V1_2);
        Ok(conn)
    }

    async fn subscribe(&mut self, args: &Plan, id: usize) -> anyhow::Result<()> {
        let mut f = Frame::new(Command::Subscribe)
            .with_header("destination", args.destination.clone())
            .with_header("id", format!("c{id}"))
            .with_header("ack", args.ack.clone())
            .with_header("activemq.prefetchSize", args.prefetch.to_string())
            .with_header("prefetch-count", args.prefetch.to_string())
            .with_header("receipt", "subscribed");
        for (k, v) in parse_extra_headers(&args.headers)? {
            f.push_header(k, v);
        }
        let mut out = BytesMut::new();
        encode(&f, Version::V1_2, &mut out);
        self.wr.write_all(&out).await?;
        let r = self.next_frame().await?;
        if r.command != Command::Receipt {
            bail!("subscribe failed: {:?}", r.header("message"));
        }
        Ok(())
    }

    async fn next_frame(&mut self) -> anyhow::Result<Frame> {
        loop {
            while let Some(item) = self.decoder.decode(&mut self.buf)? {
                if let Item::Frame(f) = item {
                    return Ok(f);
                }
            }
            if self.rd.read_buf(&mut self.buf).await? == 0 {
                bail!("connection closed by broker");
            }
        }
    }
}

/// Reads once and returns every whole frame now buffered.
async fn read_frames(
    rd: &mut OwnedReadHalf,
    buf: &mut BytesMut,
    decoder: &mut Decoder,
) -> anyhow::Result<Vec<Frame>> {
    loop {
        let mut frames = Vec::new();
        while let Some(item) = decoder.decode(buf)? {
            if let Item::Frame(f) = item {
                frames.push(f);
            }
        }
        if !frames.is_empty() {
            return Ok(frames);
        }
        if buf.capacity() - buf.len() < 64 * 1024 {
            buf.reserve(256 * 1024);
        }
        if rd.read_buf(buf).await? == 0 {
            bail!("connection closed by broker");
        }
    }
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
