//! A send's receipt over a real socket, with a store that never makes anything
//! durable: the receipt may only come from a consumer's explicit ack.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hawser_broker::{
    Broker, BrokerConfig, Durability, DurabilityWatch, Recovered, Seq, Store, StoreError, StoreOp,
};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::test_peer::{serve, settings, Peer};

/// Accepts every record and never reports one durable (a disk that never flushes).
struct StalledStore {
    seq: AtomicU64,
    durability: Arc<watch::Sender<Durability>>,
    /// Set: the store has been superseded (a newer master) and confirms nothing.
    fenced: AtomicBool,
    /// Set: each `check_confirmable` also has another thread report progress
    /// on the watermark, as the journal's writer thread does at any moment.
    probe: AtomicBool,
    /// Set by a probe that could not report within a second: the caller held
    /// the watermark while asking the store, which deadlocks a real journal.
    progress_blocked: AtomicBool,
    /// Probes done.
    probes: AtomicU64,
}

impl Store for StalledStore {
    fn append(&self, _ops: Vec<StoreOp>, _sync: bool) -> Result<Seq, StoreError> {
        Ok(self.seq.fetch_add(1, Ordering::SeqCst) + 1)
    }
    fn durability(&self) -> DurabilityWatch {
        self.durability.subscribe()
    }
    fn disk_bytes(&self) -> u64 {
        0
    }
    fn check_confirmable(&self) -> Result<(), StoreError> {
        // One blocked probe is enough to know (and each costs a second).
        if self.probe.load(Ordering::SeqCst) && !self.progress_blocked.load(Ordering::SeqCst) {
            let (done, reported) = std::sync::mpsc::channel();
            let durability = Arc::clone(&self.durability);
            std::thread::spawn(move || {
                durability.send_modify(|_| {});
                let _ = done.send(());
            });
            if reported.recv_timeout(Duration::from_secs(1)).is_err() {
                self.progress_blocked.store(true, Ordering::SeqCst);
            }
            self.probes.fetch_add(1, Ordering::SeqCst);
        }
        if self.fenced.load(Ordering::SeqCst) {
            return Err(StoreError::Failed(
                "fenced by epoch 2 in /var/lib/hawser/ha".into(),
            ));
        }
        Ok(())
    }
    fn close(&self) {}
}

/// A broker on a stalled store, listening on loopback; returns its address.
async fn start(config: BrokerConfig, shutdown: &CancellationToken) -> std::net::SocketAddr {
    start_on(config, shutdown).await.0
}

/// [`start`], also returning the store.
async fn start_on(
    config: BrokerConfig,
    shutdown: &CancellationToken,
) -> (std::net::SocketAddr, Arc<StalledStore>) {
    let store = Arc::new(StalledStore {
        seq: AtomicU64::new(0),
        durability: Arc::new(watch::channel(Durability::default()).0),
        fenced: AtomicBool::new(false),
        probe: AtomicBool::new(false),
        progress_blocked: AtomicBool::new(false),
        probes: AtomicU64::new(0),
    });
    let broker = Arc::new(Broker::new(config, store.clone(), Recovered::default()));
    let addr = serve(settings(broker), shutdown).await;
    (addr, store)
}

/// Subscribes a client-individual consumer, sends one persistent message with
/// a receipt; returns the producer, the consumer and the delivered message's ack id.
async fn send_one_to_a_consumer(addr: std::net::SocketAddr) -> (Peer, Peer, String) {
    let mut consumer = Peer::connect(addr).await;
    consumer
        .send("SUBSCRIBE\nid:s\ndestination:/queue/jobs\nack:client-individual\nreceipt:sub\n\n")
        .await;
    consumer.expect("RECEIPT").await;
    let mut producer = Peer::connect(addr).await;
    producer
        .send("SEND\ndestination:/queue/jobs\npersistent:true\nreceipt:r1\n\nhello")
        .await;
    let msg = consumer.expect("MESSAGE").await;
    let ack = msg.header("ack").expect("ack header").to_owned();
    (producer, consumer, ack)
}

#[tokio::test]
async fn a_send_is_confirmed_once_its_message_is_acknowledged_even_before_the_disk() {
    let shutdown = CancellationToken::new();
    let addr = start(BrokerConfig::default(), &shutdown).await;
    let (mut producer, mut consumer, ack) = send_one_to_a_consumer(addr).await;
    assert!(
        producer.next(Duration::from_millis(300)).await.is_none(),
        "no receipt while the message is neither durable nor consumed"
    );
    consumer.send(&format!("ACK\nid:{ack}\n\n")).await;
    // The consumer's ack confirms the send.
    let receipt = producer.expect("RECEIPT").await;
    assert_eq!(receipt.header("receipt-id"), Some("r1"));
    shutdown.cancel();
}

/// A broker froze under load on a slow disk this way: the connection's writer
/// held the watermark while asking the store whether it may confirm, the
/// journal's writer thread waited for the watermark, an append waited for the
/// journal's writer holding the engine lock, and every connection waited for
/// that lock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_is_asked_without_holding_its_watermark() {
    let shutdown = CancellationToken::new();
    let (addr, store) = start_on(BrokerConfig::default(), &shutdown).await;
    let (mut producer, mut consumer, ack) = send_one_to_a_consumer(addr).await;
    // Fenced, the store keeps saying no: the producer's writer asks it again
    // each time it looks at the receipt its consumer released.
    store.fenced.store(true, Ordering::SeqCst);
    store.probe.store(true, Ordering::SeqCst);
    consumer.send(&format!("ACK\nid:{ack}\n\n")).await;
    let mut waited = 0;
    while store.probes.load(Ordering::SeqCst) < 4 && waited < 100 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        waited += 1;
    }
    assert!(
        !store.progress_blocked.load(Ordering::SeqCst),
        "the store's progress report waited for a connection's writer"
    );
    assert!(
        store.probes.load(Ordering::SeqCst) >= 4,
        "the writer never asked the store"
    );
    assert!(
        producer.next(Duration::ZERO).await.is_none(),
        "a fenced store confirmed"
    );
    shutdown.cancel();
}

#[tokio::test]
async fn with_confirm_consumed_off_only_the_disk_confirms() {
    let shutdown = CancellationToken::new();
    let config = BrokerConfig {
        confirm_consumed: false,
        ..BrokerConfig::default()
    };
    let addr = start(config, &shutdown).await;
    let (mut producer, mut consumer, ack) = send_one_to_a_consumer(addr).await;
    consumer.send(&format!("ACK\nid:{ack}\n\n")).await;
    assert!(
        producer.next(Duration::from_millis(500)).await.is_none(),
        "a receipt came without the record being durable"
    );
    shutdown.cancel();
}

#[tokio::test]
async fn a_superseded_store_confirms_nothing_even_through_a_consumers_ack() {
    let shutdown = CancellationToken::new();
    let (addr, store) = start_on(BrokerConfig::default(), &shutdown).await;
    let (mut producer, mut consumer, ack) = send_one_to_a_consumer(addr).await;
    store.fenced.store(true, Ordering::SeqCst);
    consumer
        .send(&format!("ACK\nid:{ack}\nreceipt:acked\n\n"))
        .await;
    // The store then fails (as the journal does at its next fence check): the
    // producer's next frame is an ERROR, never the receipt the ack would have
    // released, and it names no server path.
    store
        .durability
        .send_modify(|d| d.failed = Some(Arc::from("fenced by epoch 2 in /var/lib/hawser/ha")));
    let error = producer.expect("ERROR").await;
    let message = error.header("message").unwrap_or_default().to_owned();
    assert!(message.contains("store failure"), "{message}");
    assert!(!message.contains('/') && error.body.is_empty(), "{error:?}");
    shutdown.cancel();
}
