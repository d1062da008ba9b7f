//! Paging: a queue far beyond its memory limit keeps its producers going,
//! holds little in memory, and delivers exactly what a queue within its limit
//! would (order, priority, selectors, redelivery counts), across a restart;
//! and the engine never waits for the store's reads.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use crate::identity::ConnectInfo;
use crate::outbox::test_support::Recorder;
use crate::store::{DurabilityWatch, ReadFuture};
use crate::test_support::{msg, page_in, restarted, spec, RecordingStore};
use crate::*;

/// Memory a destination may hold in these tests: ten 1 KiB messages.
const LIMIT: u64 = 10 * 1024;

fn limited() -> BrokerConfig {
    BrokerConfig {
        policies: vec![PolicyEntry {
            pattern: DestinationPattern::new(false, ">").unwrap(),
            policy: DestinationPolicy {
                memory_limit_bytes: LIMIT,
                producer_flow_control: None,
            },
        }],
        ..BrokerConfig::default()
    }
}

/// A 1 KiB persistent message "<n>" at `priority`, with property `kind`.
fn numbered(q: &Destination, n: usize, priority: u8, kind: &str) -> NewMessage {
    let mut m = msg(q.clone(), &format!("{n:<1024}"), true);
    m.priority = priority;
    m.fields
        .properties
        .push((Arc::from("kind"), PropertyValue::String(Arc::from(kind))));
    m
}

fn body(d: &Delivery) -> String {
    String::from_utf8_lossy(&d.message.body)
        .trim_end()
        .to_owned()
}

/// Takes and acknowledges what `rec` received until nothing more comes,
/// serving the broker's reads in between (its pager); returns the bodies in
/// delivery order, with redelivery counts.
fn drain(b: &Broker, c: ConnectionId, sub: &str, rec: &Recorder) -> Vec<(String, u32)> {
    let mut got = Vec::new();
    for _ in 0..100_000 {
        let d = rec.take();
        if d.is_empty() {
            page_in(b);
            if rec.deliveries.lock().is_empty() {
                break;
            }
            continue;
        }
        for d in d {
            got.push((body(&d), d.redelivery_count));
            b.ack(c, Some(sub), d.message.id, None, false).unwrap();
        }
    }
    got
}

/// Which of the sends are persistent, by their number.
type Persistence = fn(usize) -> bool;

/// Every message persistent.
const PERSISTENT: Persistence = |_| true;

/// One in three non-persistent: beyond memory those spill to the store.
const MIXED: Persistence = |n| n % 3 != 1;

/// A consumer of `q` on a fresh connection: subscription `sub`, client-individual
/// acks, with `selector` and `prefetch`.
fn attach(
    b: &Broker,
    q: &Destination,
    sub: &str,
    selector: Option<&str>,
    prefetch: u32,
) -> (ConnectionId, Arc<Recorder>) {
    let rec = Recorder::new();
    let c = b
        .connect(ConnectInfo::in_process(None), rec.clone())
        .unwrap();
    let mut s = spec(sub, q.clone(), AckMode::ClientIndividual);
    s.selector = selector.map(str::to_owned);
    s.prefetch = prefetch;
    b.subscribe(c, s).unwrap();
    (c, rec)
}

/// A fresh broker with `config` on a recording store, with `sends` sent to
/// the queue "big" (message n: `numbered`, persistent as `persistent` says).
fn filled(
    config: BrokerConfig,
    sends: &[(u8, &str)],
    persistent: Persistence,
) -> (Broker, Arc<RecordingStore>, Destination) {
    let store = RecordingStore::new();
    let b = Broker::new(config, store.clone(), Recovered::default());
    let q = Destination::queue("big");
    let p = b
        .connect(ConnectInfo::in_process(None), Recorder::new())
        .unwrap();
    for (n, (priority, kind)) in sends.iter().enumerate() {
        let mut m = numbered(&q, n, *priority, kind);
        m.persistent = persistent(n);
        b.send(p, m, None).unwrap();
    }
    (b, store, q)
}

/// Sends `sends` to a fresh broker with `config`, then (optionally after a
/// restart) drains them with one consumer per selector; returns what each got.
fn run(
    config: BrokerConfig,
    sends: &[(u8, &str)],
    selectors: &[Option<&str>],
    restart: bool,
    persistent: Persistence,
) -> Vec<Vec<(String, u32)>> {
    let (mut b, store, q) = filled(config.clone(), sends, persistent);
    assert!(
        b.destination_usage(&q).used() <= LIMIT + 2048 || config.policies.is_empty(),
        "a paging queue holds about its limit in memory, not {} bytes",
        b.destination_usage(&q).used()
    );
    let stats = b.stats();
    assert_eq!(stats[0].pending, sends.len(), "paged messages are counted");
    if restart {
        drop(b);
        b = restarted(config, &store);
    }
    // Every consumer attached before any drains, as selective consumers
    // that share a queue are: what one leaves in memory, the other takes.
    let mut consumers = Vec::new();
    for (i, selector) in selectors.iter().enumerate() {
        let (c, rec) = attach(&b, &q, &format!("s{i}"), *selector, 100);
        consumers.push((c, format!("s{i}"), rec));
    }
    let mut got = vec![Vec::new(); consumers.len()];
    for _ in 0..100_000 {
        let mut any = false;
        for (i, (c, sub, rec)) in consumers.iter().enumerate() {
            for d in rec.take() {
                any = true;
                got[i].push((body(&d), d.redelivery_count));
                b.ack(*c, Some(sub), d.message.id, None, false).unwrap();
            }
        }
        if !any {
            page_in(&b);
            if consumers
                .iter()
                .all(|(_, _, r)| r.deliveries.lock().is_empty())
            {
                break;
            }
        }
    }
    assert!(store.stored_all().is_empty(), "everything was consumed");
    got
}

/// A broker with [`limited`] memory on a recording store, the queue "big",
/// and a producer's connection.
fn limited_queue() -> (Broker, Destination, ConnectionId) {
    let b = Broker::new(limited(), RecordingStore::new(), Recovered::default());
    let p = b
        .connect(ConnectInfo::in_process(None), Recorder::new())
        .unwrap();
    (b, Destination::queue("big"), p)
}

fn sends(n: usize) -> Vec<(u8, &'static str)> {
    (0..n)
        .map(|i| ((i * 7 % 10) as u8, if i % 3 == 0 { "a" } else { "b" }))
        .collect()
}

#[test]
fn a_queue_far_beyond_its_limit_delivers_what_an_unlimited_one_would() {
    let sends = sends(1500);
    let selectors = [None];
    let unlimited = run(
        BrokerConfig::default(),
        &sends,
        &selectors,
        false,
        PERSISTENT,
    );
    assert_eq!(unlimited[0].len(), 1500);
    let paged = run(limited(), &sends, &selectors, false, PERSISTENT);
    assert_eq!(paged, unlimited, "same messages, same order");
    // Non-persistent messages among them spill beyond memory and come back
    // in the same order.
    let spilled = run(limited(), &sends, &selectors, false, MIXED);
    assert_eq!(
        spilled, unlimited,
        "same messages, same order, some spilled"
    );
    // Priorities first, then send order.
    let mut expected: Vec<(u8, usize)> = sends
        .iter()
        .enumerate()
        .map(|(n, (p, _))| (*p, n))
        .collect();
    expected.sort_by_key(|(p, n)| (std::cmp::Reverse(*p), *n));
    let order: Vec<String> = expected.iter().map(|(_, n)| n.to_string()).collect();
    let got: Vec<String> = paged[0].iter().map(|(b, _)| b.clone()).collect();
    assert_eq!(got, order);
}

#[test]
fn selectors_and_a_restart_see_the_same_paged_messages() {
    let sends = sends(1200);
    let selectors = [Some("kind = 'a'"), Some("kind = 'b'")];
    for restart in [false, true] {
        let unlimited = run(
            BrokerConfig::default(),
            &sends,
            &selectors,
            restart,
            PERSISTENT,
        );
        assert_eq!(unlimited[0].len() + unlimited[1].len(), 1200);
        let paged = run(limited(), &sends, &selectors, restart, PERSISTENT);
        assert_eq!(paged, unlimited, "restart: {restart}");
        // A restart loses the non-persistent messages, spilled or in
        // memory, and only those.
        let unlimited = run(BrokerConfig::default(), &sends, &selectors, restart, MIXED);
        let spilled = run(limited(), &sends, &selectors, restart, MIXED);
        assert_eq!(spilled, unlimited, "mixed, restart: {restart}");
        let got = unlimited[0].len() + unlimited[1].len();
        assert_eq!(got, if restart { 800 } else { 1200 });
    }
}

#[test]
fn redelivery_counts_and_other_queues_are_unaffected_by_paging() {
    let store = RecordingStore::new();
    let b = Broker::new(limited(), store.clone(), Recovered::default());
    let q = Destination::queue("big");
    let small = Destination::queue("small");
    let p = b
        .connect(ConnectInfo::in_process(None), Recorder::new())
        .unwrap();
    let (c, rec) = attach(&b, &small, "small", None, 100);
    for n in 0..300 {
        b.send(p, numbered(&q, n, 4, "a"), None).unwrap();
        if n % 100 == 0 {
            // Another queue's consumer is served at once while "big" fills.
            b.send(p, numbered(&small, n, 4, "a"), None).unwrap();
            let d = rec.take();
            assert_eq!(d.len(), 1, "small is delivered while big pages");
            b.ack(c, Some("small"), d[0].message.id, None, false)
                .unwrap();
        }
    }
    // The first message goes back once: it comes back first, counted.
    let (c, rec) = attach(&b, &q, "s", None, 1);
    let first = rec.take().remove(0);
    assert_eq!(body(&first), "0");
    b.nack(c, Some("s"), first.message.id).unwrap();
    let got = drain(&b, c, "s", &rec);
    assert_eq!(got.len(), 300);
    assert_eq!(got[0], ("0".to_owned(), 1));
    let rest: Vec<String> = got[1..].iter().map(|(b, _)| b.clone()).collect();
    let expected: Vec<String> = (1..300).map(|n| n.to_string()).collect();
    assert_eq!(rest, expected);
}

/// A store whose reads wait until the test releases them, and fail while
/// `failures` lasts: the engine must go on meanwhile.
struct SlowStore {
    inner: Arc<RecordingStore>,
    /// Reads still to fail.
    failures: AtomicUsize,
    /// Reads started.
    reads: AtomicUsize,
    /// Released reads may complete.
    released: parking_lot::Mutex<bool>,
    wakers: parking_lot::Mutex<Vec<Waker>>,
}

impl SlowStore {
    /// Reads wait until released, then the first `failures` fail.
    fn new(failures: usize) -> Arc<SlowStore> {
        Arc::new(SlowStore {
            inner: RecordingStore::new(),
            failures: AtomicUsize::new(failures),
            reads: AtomicUsize::new(0),
            released: parking_lot::Mutex::new(false),
            wakers: parking_lot::Mutex::new(Vec::new()),
        })
    }

    fn release(&self) {
        *self.released.lock() = true;
        for w in self.wakers.lock().drain(..) {
            w.wake();
        }
    }
}

/// A read of [`SlowStore`].
struct SlowRead {
    store: Arc<SlowStore>,
    inner: ReadFuture,
}

impl Future for SlowRead {
    type Output = Result<Vec<StoredMessage>, StoreError>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if !*self.store.released.lock() {
            self.store.wakers.lock().push(cx.waker().clone());
            return Poll::Pending;
        }
        if self
            .store
            .failures
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Poll::Ready(Err(StoreError::Failed("injected read failure".into())));
        }
        self.inner.as_mut().poll(cx)
    }
}

/// [`SlowStore`] as the broker's store.
struct Slow(Arc<SlowStore>);

impl Store for Slow {
    fn append(&self, ops: Vec<StoreOp>, sync: bool) -> Result<Seq, StoreError> {
        self.0.inner.append(ops, sync)
    }
    fn durability(&self) -> DurabilityWatch {
        self.0.inner.durability()
    }
    fn disk_bytes(&self) -> u64 {
        0
    }
    fn pages(&self) -> bool {
        true
    }
    fn read(&self, key: &StoreKey, priority: u8, after: MessageId, limit: ReadLimit) -> ReadFuture {
        self.0.reads.fetch_add(1, Ordering::SeqCst);
        Box::pin(SlowRead {
            store: Arc::clone(&self.0),
            inner: self.0.inner.read(key, priority, after, limit),
        })
    }
    fn close(&self) {}
}

#[test]
fn the_engine_never_waits_for_a_slow_or_failing_read() {
    let slow = SlowStore::new(2);
    let b = Arc::new(Broker::new(
        limited(),
        Arc::new(Slow(Arc::clone(&slow))),
        Recovered::default(),
    ));
    let q = Destination::queue("big");
    let p = b
        .connect(ConnectInfo::in_process(None), Recorder::new())
        .unwrap();
    for n in 0..100 {
        b.send(p, numbered(&q, n, 4, "a"), None).unwrap();
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_time()
        .build()
        .unwrap();
    let pager = rt.spawn(b.pager());
    let (c, rec) = attach(&b, &q, "s", None, 100);
    let delivered_in_memory = rec.take();
    assert!(!delivered_in_memory.is_empty() && delivered_in_memory.len() < 100);
    for d in &delivered_in_memory {
        b.ack(c, Some("s"), d.message.id, None, false).unwrap();
    }
    // A read is under way and does not finish: every engine call still does.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while slow.reads.load(Ordering::SeqCst) == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "no read was asked for"
        );
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    let other = Destination::queue("other");
    let r2 = Recorder::new();
    let c2 = b
        .connect(ConnectInfo::in_process(None), r2.clone())
        .unwrap();
    b.subscribe(c2, spec("o", other.clone(), AckMode::Auto))
        .unwrap();
    b.send(p, numbered(&other, 0, 4, "a"), None).unwrap();
    assert_eq!(
        r2.take().len(),
        1,
        "another queue is served while a read waits"
    );
    b.send(p, numbered(&q, 100, 4, "a"), None).unwrap();
    assert!(
        rec.take().is_empty(),
        "nothing of big before its read completes"
    );
    // Released, the reads fail twice, are asked again, and then deliver everything.
    slow.release();
    let mut got = delivered_in_memory.len();
    while got < 101 {
        assert!(
            std::time::Instant::now() < deadline,
            "only {got} of 101 delivered"
        );
        for d in rec.take() {
            got += 1;
            b.ack(c, Some("s"), d.message.id, None, false).unwrap();
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    assert!(
        slow.reads.load(Ordering::SeqCst) >= 3,
        "failed reads were retried"
    );
    assert_eq!(slow.failures.load(Ordering::SeqCst), 0);
    pager.abort();
}

/// Deliveries of `q` to a fresh consumer with `prefetch`, drained as in [`drain`].
fn consume_all(b: &Broker, q: &Destination, prefetch: u32) -> Vec<(String, u32)> {
    let (c, rec) = attach(b, q, "all", None, prefetch);
    drain(b, c, "all", &rec)
}

#[test]
fn a_higher_priority_message_in_the_store_is_read_even_when_memory_is_full() {
    let store = RecordingStore::new();
    let b = Broker::new(limited(), store.clone(), Recovered::default());
    let q = Destination::queue("big");
    let p = b
        .connect(ConnectInfo::in_process(None), Recorder::new())
        .unwrap();
    // Non-persistent messages too large for a record of the store cannot
    // spill: they fill memory far past its limit...
    let small = numbered(&q, 40, 9, "a");
    let fits =
        crate::broker::single_record_len(&small.destination, &small.fields, small.body.len());
    store.max_record.store(fits, Ordering::SeqCst);
    for n in 0..40 {
        let mut m = numbered(&q, n, 4, "a");
        m.body = bytes::Bytes::from(format!("{n:<2048}"));
        m.persistent = false;
        b.send(p, m, None).unwrap();
    }
    assert!(b.paged_out(&q).is_empty(), "nothing spilled");
    // ...and a persistent one of a higher priority stays in the store.
    b.send(p, numbered(&q, 40, 9, "a"), None).unwrap();
    assert_eq!(
        b.paged_out(&q).len(),
        1,
        "the priority-9 message is paged out"
    );
    let got = consume_all(&b, &q, 1000);
    assert_eq!(got.len(), 41);
    assert_eq!(
        got[0].0, "40",
        "the highest priority first, though memory was full"
    );
}

#[test]
fn a_dead_letter_joins_the_dead_letter_queues_tail() {
    let config = BrokerConfig {
        max_redeliveries: 0,
        ..limited()
    };
    let store = RecordingStore::new();
    let b = Broker::new(config.clone(), store.clone(), Recovered::default());
    let dlq = Destination::queue(&config.dead_letter_queue);
    let q = Destination::queue("work");
    let p = b
        .connect(ConnectInfo::in_process(None), Recorder::new())
        .unwrap();
    for n in 0..30 {
        b.send(p, numbered(&dlq, n, 4, "a"), None).unwrap();
    }
    assert!(!b.paged_out(&dlq).is_empty(), "the DLQ pages");
    b.send(p, numbered(&q, 30, 4, "a"), None).unwrap();
    let (c, rec) = attach(&b, &q, "w", None, 100);
    let d = rec.take().remove(0);
    b.nack(c, Some("w"), d.message.id).unwrap(); // no redeliveries allowed: dead-lettered
    let got: Vec<String> = consume_all(&b, &dlq, 1000)
        .into_iter()
        .map(|(body, _)| body)
        .collect();
    let expected: Vec<String> = (0..=30).map(|n| n.to_string()).collect();
    assert_eq!(
        got, expected,
        "each once, in the order they entered the DLQ"
    );
}

#[test]
fn a_recovered_transactions_message_given_back_before_its_batch_is_read_comes_once() {
    let store = RecordingStore::new();
    let b = Broker::new(BrokerConfig::default(), store.clone(), Recovered::default());
    let q = Destination::queue("xa");
    let p = b
        .connect(ConnectInfo::in_process(None), Recorder::new())
        .unwrap();
    for n in 0..600 {
        b.send(p, numbered(&q, n, 4, "a"), None).unwrap();
    }
    let (c, rec) = attach(&b, &q, "s", None, 1000);
    let d = rec.take();
    let late = d.iter().find(|d| body(d) == "550").unwrap().message.id;
    b.begin(c, "x").unwrap();
    b.ack(c, Some("s"), late, Some("x"), false).unwrap();
    b.prepare(c, "x").unwrap();
    drop(b);
    // Restarted: the first batch (500) is read; 550 is held for "x".
    let b = restarted(BrokerConfig::default(), &store);
    b.rollback_prepared("x").unwrap();
    let got: Vec<String> = consume_all(&b, &q, 1000)
        .into_iter()
        .map(|(body, _)| body)
        .collect();
    assert_eq!(got.len(), 600, "each once: {} deliveries", got.len());
    let distinct: std::collections::BTreeSet<&String> = got.iter().collect();
    assert_eq!(distinct.len(), 600);
}

#[test]
fn large_messages_are_read_back_a_few_at_a_time_and_none_is_lost() {
    let (b, q, p) = limited_queue();
    // 100 KiB each: a read's byte budget (PAGE_BYTES) holds about 40 of them.
    for n in 0..200 {
        let mut m = msg(
            q.clone(),
            &format!("{n:<60000}{}", " ".repeat(42_400)),
            true,
        );
        m.priority = 4;
        b.send(p, m, None).unwrap();
    }
    let got: Vec<String> = consume_all(&b, &q, 1000)
        .into_iter()
        .map(|(body, _)| body)
        .collect();
    let expected: Vec<String> = (0..200).map(|n| n.to_string()).collect();
    assert_eq!(got, expected);
}

#[test]
fn a_read_cut_short_is_read_again_by_the_pager() {
    let slow = SlowStore::new(0);
    let store: Arc<dyn Store> = Arc::new(Slow(Arc::clone(&slow)));
    let q = Destination::queue("big");
    {
        let b = Broker::new(limited(), Arc::clone(&store), Recovered::default());
        let p = b
            .connect(ConnectInfo::in_process(None), Recorder::new())
            .unwrap();
        for n in 0..50 {
            b.send(p, numbered(&q, n, 4, "a"), None).unwrap();
        }
    }
    // Restarted: the first batch's read is asked for, and cut short.
    let b = Arc::new(Broker::new(
        limited(),
        Arc::clone(&store),
        slow.inner.recover(),
    ));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_time()
        .build()
        .unwrap();
    let cut = rt.block_on(async {
        tokio::time::timeout(std::time::Duration::from_millis(20), b.page_in()).await
    });
    assert!(cut.is_err(), "the read waited for the store");
    assert_eq!(b.paged_out(&q)[0].count, 50, "nothing read yet");
    // The pager reads it again by itself once the store answers: no
    // consumer, no browser asks.
    slow.release();
    let pager = rt.spawn(b.pager());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !b.paged_out(&q).is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the cut read was never read again"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    pager.abort();
    assert!(b.paged_out(&q).is_empty(), "the first batch is in memory");
}

/// Bodies a consumer received, in order, with their redelivery counts.
type Received = Vec<(String, u32)>;

/// Sends `sends` to a fresh broker with `config`; a consumer with
/// `selector` drains what it matches while alone on the queue; then a
/// consumer without one takes the rest. Returns both, and the most memory
/// the queue held while the first drained.
fn selective_then_rest(
    config: BrokerConfig,
    sends: &[(u8, &str)],
    selector: &str,
) -> (Received, Received, u64) {
    let (b, store, q) = filled(config, sends, PERSISTENT);
    let (c1, rec1) = attach(&b, &q, "rare", Some(selector), 3);
    let mut most = 0;
    let mut first = Vec::new();
    for _ in 0..100_000 {
        most = most.max(b.destination_usage(&q).used());
        let d = rec1.take();
        if d.is_empty() {
            page_in(&b);
            if rec1.deliveries.lock().is_empty() {
                break;
            }
            continue;
        }
        for d in d {
            first.push((body(&d), d.redelivery_count));
            b.ack(c1, Some("rare"), d.message.id, None, false).unwrap();
        }
    }
    let (c2, rec2) = attach(&b, &q, "rest", None, 100);
    let rest = drain(&b, c2, "rest", &rec2);
    assert!(store.stored_all().is_empty(), "everything was consumed");
    (first, rest, most)
}

#[test]
fn a_selector_matching_few_messages_far_beyond_memory_is_served_in_bounded_memory() {
    // One message in 400 matches, at all priorities; the queue holds ten
    // messages' worth of memory, so all but the first matches lie far past
    // twice its limit, behind messages nobody attached wants.
    let sends: Vec<(u8, &str)> = (0..4000)
        .map(|i| {
            (
                (i * 7 % 10) as u8,
                if i % 400 == 399 { "rare" } else { "b" },
            )
        })
        .collect();
    let selector = "kind = 'rare'";
    let (want_first, want_rest, _) = selective_then_rest(BrokerConfig::default(), &sends, selector);
    assert_eq!(want_first.len(), 10);
    let (first, rest, most) = selective_then_rest(limited(), &sends, selector);
    assert_eq!(first, want_first, "every match, in priority and send order");
    assert_eq!(
        rest, want_rest,
        "the rest once each, in order, after the scans"
    );
    // Twice the limit, and one read-ahead batch (what a queue may hold with
    // consumers before scans begin): not the 4 MiB of the whole queue.
    let bound = 2 * LIMIT + crate::queue::PAGE_BATCH as u64 * 1200;
    assert!(
        most <= bound,
        "the queue held {most} bytes while the selective consumer drained (at most {bound})"
    );
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 24, ..Default::default() })]

    /// Whatever the mix of priorities and of kinds (some rare, so that scans
    /// run past messages nobody attached wants), each selective consumer of
    /// a queue far beyond its limit gets exactly what it would within it,
    /// in the same order.
    #[test]
    fn selective_consumers_beyond_the_limit_get_what_they_would_within_it(
        sends in proptest::collection::vec(
            (0u8..10, proptest::sample::select(vec!["a", "a", "a", "a", "a", "a", "b", "b", "c"])),
            1..700,
        ),
        mixed: bool,
    ) {
        let selectors = [Some("kind = 'a'"), Some("kind = 'b'"), Some("kind = 'c'")];
        let persistence = if mixed { MIXED } else { PERSISTENT };
        let unlimited = run(BrokerConfig::default(), &sends, &selectors, false, persistence);
        let paged = run(limited(), &sends, &selectors, false, persistence);
        proptest::prop_assert_eq!(paged, unlimited);
    }
}

#[test]
fn non_persistent_messages_beyond_memory_spill_without_an_fsync_and_leave_the_store_when_read() {
    let sends: Vec<(u8, &str)> = (0..200).map(|_| (4, "a")).collect();
    let (b, store, q) = filled(limited(), &sends, |_| false);
    let used = b.destination_usage(&q).used();
    assert!(
        used <= LIMIT + 2048,
        "memory holds its limit, not {used} bytes"
    );
    let stored = store.stored(&StoreKey::Queue(Arc::from("big")));
    assert!(stored.len() >= 185, "the rest spilled: {}", stored.len());
    assert!(stored.iter().all(|(m, _)| !m.persistent));
    // Nothing in those records needs to survive a crash: no fsync.
    for (ops, sync) in store.records.lock().iter() {
        assert!(!sync, "a record of spills only is not synced: {ops:?}");
    }
    // A consumer takes a few; the batch read back leaves the store.
    let (c, rec) = attach(&b, &q, "s", None, 5);
    page_in(&b);
    let left = store.stored(&StoreKey::Queue(Arc::from("big"))).len();
    assert!(
        left < stored.len() && left + crate::queue::PAGE_BATCH >= stored.len(),
        "read back: {} of {}, left {left}",
        stored.len() - left,
        stored.len()
    );
    let got = drain(&b, c, "s", &rec);
    let bodies: Vec<String> = got.into_iter().map(|(b, _)| b).collect();
    let expected: Vec<String> = (0..200).map(|n| n.to_string()).collect();
    assert_eq!(bodies, expected, "all of them, in order");
    assert!(store.stored_all().is_empty());
    assert!(
        store.records.lock().iter().all(|(_, sync)| !sync),
        "their dequeues are not synced either"
    );
}

#[test]
fn a_later_non_persistent_message_never_passes_a_spilled_one() {
    let (b, store, q) = filled(
        limited(),
        &(0..30).map(|_| (4, "a")).collect::<Vec<_>>(),
        |_| false,
    );
    let (c, rec) = attach(&b, &q, "s", None, 1);
    // The consumer frees memory; what is sent now has room but must wait
    // behind the spilled messages of its priority.
    let mut got = Vec::new();
    for n in 30..60 {
        for d in rec.take() {
            got.push(body(&d));
            b.ack(c, Some("s"), d.message.id, None, false).unwrap();
        }
        let mut m = numbered(&q, n, 4, "a");
        m.persistent = false;
        b.send(c, m, None).unwrap();
    }
    got.extend(drain(&b, c, "s", &rec).into_iter().map(|(b, _)| b));
    let expected: Vec<String> = (0..60).map(|n| n.to_string()).collect();
    assert_eq!(got, expected);
    assert!(store.stored_all().is_empty());
}
