//! Producer flow control on free disk space, and what clients are told when the
//! store fails, over real loopback sockets with in-process sessions.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hawser_broker::{
    Broker, BrokerConfig, Durability, DurabilityWatch, MemoryStore, Recovered, Seq, Store,
    StoreError, StoreOp,
};
use hawser_stomp::{Frame, Limits};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::config::FlowControl;
use crate::connection::CoreSettings;
use crate::disk::DiskSpace;
use crate::stomp::SessionSettings;
use crate::test_peer::{core_settings, serve, settings, Peer};

/// A path that must never reach a client.
const SECRET_PATH: &str = "/srv/hawser-secret/journal/journal-7.log";

/// Serves STOMP on loopback with `store`, `disk` and `flow_control`; returns the address.
async fn start(
    store: Arc<dyn Store>,
    disk: Arc<DiskSpace>,
    flow_control: FlowControl,
    shutdown: &CancellationToken,
) -> std::net::SocketAddr {
    let broker = Arc::new(Broker::new(
        BrokerConfig::default(),
        store,
        Recovered::default(),
    ));
    let core = CoreSettings {
        flow_control,
        disk,
        ..core_settings(Arc::clone(&broker))
    };
    serve(
        SessionSettings {
            core: Arc::new(core),
            ..settings(broker)
        },
        shutdown,
    )
    .await
}

/// Every byte of a frame, headers and body, as text: what a client could read.
fn frame_text(f: &Frame) -> String {
    let mut text = format!("{f:?}");
    text.push_str(&String::from_utf8_lossy(&f.body));
    text
}

#[tokio::test]
async fn a_producer_waits_while_the_disk_is_low_and_resumes_by_itself() {
    let shutdown = CancellationToken::new();
    let disk = Arc::new(DiskSpace::new(1_000));
    disk.record(999, 0);
    let addr = start(
        Arc::new(MemoryStore::new()),
        Arc::clone(&disk),
        FlowControl::Block,
        &shutdown,
    )
    .await;
    let (mut producer, mut consumer) = held_send(addr, "the disk was low").await;
    // Space comes back: the held send goes through without anything else happening.
    disk.record(1_000, 0);
    released(&mut producer, &mut consumer).await;
    shutdown.cancel();
}

/// A producer's send to /queue/q held, and a consumer of the queue going on
/// meanwhile: its subscription is made and confirmed, and the producer's
/// message is not there to be delivered (held while `why`).
async fn held_send(addr: std::net::SocketAddr, why: &str) -> (Peer, Peer) {
    let mut producer = Peer::connect(addr).await;
    producer
        .send("SEND\ndestination:/queue/q\npersistent:true\nreceipt:held\n\nwaits")
        .await;
    let mut consumer = Peer::connect(addr).await;
    consumer
        .send("SUBSCRIBE\nid:s\ndestination:/queue/q\nack:auto\nreceipt:sub\n\n")
        .await;
    let first = consumer.expect("RECEIPT").await;
    assert_eq!(first.header("receipt-id"), Some("sub"));
    assert!(
        producer.next(Duration::from_millis(300)).await.is_none(),
        "the send went through while {why}"
    );
    (producer, consumer)
}

/// The held send of [`held_send`] goes through: receipt, then delivery.
async fn released(producer: &mut Peer, consumer: &mut Peer) {
    let receipt = producer.expect("RECEIPT").await;
    assert_eq!(receipt.header("receipt-id"), Some("held"));
    let msg = consumer.expect("MESSAGE").await;
    assert_eq!(&msg.body[..], b"waits");
}

#[tokio::test]
async fn a_held_producer_is_not_closed_for_keep_alives_waiting_behind_its_own_frames() {
    // A producer of asynchronous sends (ActiveMQ's Java client with useAsyncSend,
    // 30 s keep-alives) held for longer than its keep-alive interval: once the
    // broker has buffered what it may of the producer's frames it reads no more, so
    // the producer's keep-alives cannot arrive. That is not the producer being late.
    let shutdown = CancellationToken::new();
    let disk = Arc::new(DiskSpace::new(1_000));
    disk.record(999, 0);
    let broker = Arc::new(Broker::new(
        BrokerConfig::default(),
        Arc::new(MemoryStore::new()),
        Recovered::default(),
    ));
    let core = CoreSettings {
        disk: Arc::clone(&disk),
        ..core_settings(Arc::clone(&broker))
    };
    let max_frame_bytes = 4 * 1024;
    let addr = serve(
        SessionSettings {
            core: Arc::new(core),
            limits: Limits {
                max_frame_bytes,
                ..Limits::default()
            },
            heartbeat_receive_ms: 200,
            ..settings(broker)
        },
        &shutdown,
    )
    .await;
    // Keep-alives every 200 ms are expected, and none is sent from here on.
    let mut producer = Peer::connect_with(addr, "heart-beat:200,0\n").await;
    let body = "x".repeat(1024);
    let frames = 100; // more than the read limit (one frame + 64 KiB) of the broker's buffer
    assert!(frames * body.len() > max_frame_bytes + crate::connection::reader::READ_CHUNK_BYTES);
    for i in 0..frames {
        let receipt = match i {
            0 => "receipt:first\n",
            i if i == frames - 1 => "receipt:last\n",
            _ => "",
        };
        producer
            .send(&format!(
                "SEND\ndestination:/queue/q\npersistent:true\n{receipt}\n{body}"
            ))
            .await;
    }
    assert!(
        producer.next(Duration::from_millis(1_500)).await.is_none(),
        "no receipt while the disk is low"
    );
    disk.record(1_000, 0);
    assert_eq!(
        producer.expect("RECEIPT").await.header("receipt-id"),
        Some("first")
    );
    assert_eq!(
        producer.expect("RECEIPT").await.header("receipt-id"),
        Some("last"),
        "every send went through on the same connection"
    );
    shutdown.cancel();
}

#[tokio::test]
async fn with_flow_control_fail_a_send_is_refused_while_the_disk_is_low() {
    let shutdown = CancellationToken::new();
    let disk = Arc::new(DiskSpace::new(1_000));
    disk.record(0, 0);
    let addr = start(
        Arc::new(MemoryStore::new()),
        disk,
        FlowControl::Fail,
        &shutdown,
    )
    .await;
    let mut producer = Peer::connect(addr).await;
    producer
        .send("SEND\ndestination:/queue/q\npersistent:true\nreceipt:r\n\nno room")
        .await;
    let error = producer.expect("ERROR").await;
    assert_eq!(
        error.header("message"),
        Some("disk is full; message refused")
    );
    assert_eq!(error.header("receipt-id"), Some("r"));
    shutdown.cancel();
}

/// A store that fails the way a full disk fails a journal: appends are refused, or
/// accepted and then never made durable, with a reason naming a file.
struct FailingStore {
    /// Refuse appends (a journal that failed earlier).
    refuse: bool,
    seq: AtomicU64,
    durability: watch::Sender<Durability>,
}

impl FailingStore {
    fn new(refuse: bool) -> Arc<FailingStore> {
        Arc::new(FailingStore {
            refuse,
            seq: AtomicU64::new(0),
            durability: watch::channel(Durability::default()).0,
        })
    }

    fn fail(&self) {
        let reason = format!("cannot write {SECRET_PATH}: No space left on device (os error 28)");
        self.durability
            .send_modify(|d| d.failed = Some(Arc::from(reason)));
    }
}

impl Store for FailingStore {
    fn append(&self, _ops: Vec<StoreOp>, _sync: bool) -> Result<Seq, StoreError> {
        if self.refuse {
            return Err(StoreError::Failed(format!(
                "journal failed earlier: cannot write {SECRET_PATH}: No space left on device"
            )));
        }
        Ok(self.seq.fetch_add(1, Ordering::SeqCst) + 1)
    }
    fn durability(&self) -> DurabilityWatch {
        self.durability.subscribe()
    }
    fn disk_bytes(&self) -> u64 {
        0
    }
    fn close(&self) {}
}

#[tokio::test]
async fn a_send_refused_by_a_failed_store_is_told_so_without_server_paths() {
    let shutdown = CancellationToken::new();
    let store = FailingStore::new(true);
    let disk = Arc::new(DiskSpace::unchecked());
    let addr = start(store, disk, FlowControl::Block, &shutdown).await;
    let mut producer = Peer::connect(addr).await;
    producer
        .send("SEND\ndestination:/queue/q\npersistent:true\nreceipt:r\n\nx")
        .await;
    let error = producer.expect("ERROR").await;
    assert_eq!(
        error.header("message"),
        Some(crate::stomp::STORE_FAILURE_MESSAGE)
    );
    assert!(!frame_text(&error).contains("/srv"), "{error:?}");
    shutdown.cancel();
}

#[tokio::test]
async fn a_receipt_the_failed_store_cannot_give_is_an_error_without_server_paths() {
    let shutdown = CancellationToken::new();
    let store = FailingStore::new(false);
    let disk = Arc::new(DiskSpace::unchecked());
    let addr = start(store.clone(), disk, FlowControl::Block, &shutdown).await;
    let mut producer = Peer::connect(addr).await;
    producer
        .send("SEND\ndestination:/queue/q\npersistent:true\nreceipt:r\n\nx")
        .await;
    // Stored or not yet, the send waits for a durability that will not come.
    store.fail();
    let error = producer.expect("ERROR").await;
    assert_eq!(
        error.header("message"),
        Some(crate::stomp::STORE_FAILURE_MESSAGE)
    );
    assert!(!frame_text(&error).contains("/srv"), "{error:?}");
    assert!(
        producer.next(Duration::from_secs(5)).await.is_none(),
        "then closed"
    );
    shutdown.cancel();
}

/// A store whose writes can be behind (`Store::writes_behind`): appends are
/// counted and durable at once, as a memory store's.
#[derive(Default)]
struct BehindStore {
    behind: std::sync::atomic::AtomicBool,
    seq: AtomicU64,
    durability: std::sync::OnceLock<watch::Sender<Durability>>,
}

impl BehindStore {
    fn watermark(&self) -> &watch::Sender<Durability> {
        self.durability
            .get_or_init(|| watch::channel(Durability::default()).0)
    }

    /// The writes catch up: a commit moves the watermark, as a journal's does.
    fn catch_up(&self) {
        self.behind.store(false, Ordering::SeqCst);
        // (No new record: the watch is told all the same, as after a commit.)
        self.watermark().send_modify(|_| {});
    }
}

impl Store for BehindStore {
    fn append(&self, _ops: Vec<StoreOp>, _sync: bool) -> Result<Seq, StoreError> {
        let seq = self.seq.fetch_add(1, Ordering::SeqCst) + 1;
        self.watermark().send_modify(|d| d.seq = seq);
        Ok(seq)
    }
    fn durability(&self) -> DurabilityWatch {
        self.watermark().subscribe()
    }
    fn disk_bytes(&self) -> u64 {
        0
    }
    fn writes_behind(&self) -> bool {
        self.behind.load(Ordering::SeqCst)
    }
    fn close(&self) {}
}

#[tokio::test]
async fn a_producer_waits_while_the_stores_writes_are_behind_and_is_never_refused_for_it() {
    let shutdown = CancellationToken::new();
    let store = Arc::new(BehindStore::default());
    store.behind.store(true, Ordering::SeqCst);
    // Flow control that refuses rather than holds: writes behind are not a
    // limit the client could do anything about, so even then it waits.
    let addr = start(
        store.clone(),
        Arc::new(DiskSpace::unchecked()),
        FlowControl::Fail,
        &shutdown,
    )
    .await;
    let (mut producer, mut consumer) = held_send(addr, "the store's writes were behind").await;
    assert_eq!(
        store.seq.load(Ordering::SeqCst),
        0,
        "the send reached the engine (and the store) while its writes were behind"
    );
    store.catch_up();
    released(&mut producer, &mut consumer).await;
    shutdown.cancel();
}
