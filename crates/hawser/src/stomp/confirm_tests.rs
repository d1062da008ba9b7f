//! A send's receipt over a real socket, with a store that never makes anything
//! durable: the receipt may only come from a consumer's explicit ack.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use hawser_broker::{
    Broker, BrokerConfig, Durability, DurabilityWatch, Recovered, Seq, Store, StoreError, StoreOp,
};
use hawser_stomp::{Decoder, Frame, Item, Limits, Version};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::{serve_connection, SessionSettings};
use crate::config::FlowControl;

/// Accepts every record and never reports one durable (a disk that never flushes).
struct StalledStore {
    seq: AtomicU64,
    durability: watch::Sender<Durability>,
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
    fn close(&self) {}
}

/// A broker on a stalled store, listening on loopback; returns its address.
async fn start(config: BrokerConfig, shutdown: &CancellationToken) -> std::net::SocketAddr {
    let store = Arc::new(StalledStore {
        seq: AtomicU64::new(0),
        durability: watch::channel(Durability::default()).0,
    });
    let broker = Arc::new(Broker::new(config, store, Recovered::default()));
    let settings = Arc::new(SessionSettings {
        broker,
        limits: Limits::default(),
        heartbeat_send_ms: 0,
        heartbeat_receive_ms: 0,
        connect_timeout_ms: 5_000,
        frame_timeout_ms: 5_000,
        default_prefetch: 100,
        max_store_bytes: u64::MAX,
        flow_control: FlowControl::Block,
        disk: Arc::new(crate::disk::DiskSpace::unchecked()),
        cluster: watch::channel(Arc::new(Vec::new())).1,
    });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let (sock, _) = accepted.unwrap();
                    tokio::spawn(serve_connection(sock, Arc::clone(&settings), stop.clone()));
                }
                _ = stop.cancelled() => break,
            }
        }
    });
    addr
}

/// A raw STOMP 1.2 client: writes frames as text, reads them with the codec.
struct Peer {
    sock: TcpStream,
    decoder: Decoder,
    buf: BytesMut,
}

impl Peer {
    async fn connect(addr: std::net::SocketAddr) -> Peer {
        let mut p = Peer {
            sock: TcpStream::connect(addr).await.unwrap(),
            decoder: Decoder::new(Limits::default()),
            buf: BytesMut::new(),
        };
        p.send("CONNECT\naccept-version:1.2\nhost:localhost\n\n")
            .await;
        p.expect("CONNECTED").await;
        p.decoder.set_version(Version::V1_2);
        p
    }

    /// Sends `text` followed by the frame's NUL.
    async fn send(&mut self, text: &str) {
        self.sock.write_all(text.as_bytes()).await.unwrap();
        self.sock.write_all(b"\0").await.unwrap();
    }

    /// The next frame, which must arrive within 5 s and be a `command`.
    async fn expect(&mut self, command: &str) -> Frame {
        let frame = self.next(Duration::from_secs(5)).await;
        let frame = frame.unwrap_or_else(|| panic!("no {command} within 5 s"));
        assert_eq!(frame.command.as_str(), command);
        frame
    }

    /// The next frame, or None if none arrives within `wait`.
    async fn next(&mut self, wait: Duration) -> Option<Frame> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            while let Some(item) = self.decoder.decode(&mut self.buf).unwrap() {
                if let Item::Frame(f) = item {
                    return Some(f);
                }
            }
            let read = tokio::time::timeout_at(deadline, self.sock.read_buf(&mut self.buf)).await;
            match read {
                Ok(Ok(n)) if n > 0 => {}
                _ => return None,
            }
        }
    }
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
