//! What the in-process socket tests share: sessions served on loopback with
//! test settings, and a raw STOMP 1.2 peer that writes frames as text and reads
//! them with the codec.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use hawser_broker::Broker;
use hawser_stomp::{Decoder, Frame, Item, Limits, Version};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::config::FlowControl;
use crate::connection::{CoreSettings, ReadTimeouts};
use crate::disk::DiskSpace;
use crate::stomp::{serve_connection, SessionSettings};

/// Session settings for tests: short timeouts, no heart-beats, no disk check.
pub(crate) fn settings(broker: Arc<Broker>) -> SessionSettings {
    SessionSettings {
        core: Arc::new(core_settings(broker)),
        limits: Limits::default(),
        heartbeat_send_ms: 0,
        heartbeat_receive_ms: 0,
        timeouts: ReadTimeouts {
            connect_ms: 5_000,
            frame_ms: 5_000,
            idle_ms: 0,
        },
        max_browse_messages: 400,
        default_prefetch: 100,
    }
}

/// Shared connection settings for tests: blocking flow control, no disk check.
pub(crate) fn core_settings(broker: Arc<Broker>) -> CoreSettings {
    CoreSettings {
        broker,
        max_outbound_frames: 10_000,
        max_store_bytes: u64::MAX,
        flow_control: FlowControl::Block,
        disk: Arc::new(DiskSpace::unchecked()),
        cluster: watch::channel(Arc::default()).1,
        auth: Arc::new(crate::security::Authenticator::open()),
        flow_events: Default::default(),
    }
}

/// Serves STOMP with `settings` on a loopback port until `shutdown`; returns it.
pub(crate) async fn serve(settings: SessionSettings, shutdown: &CancellationToken) -> SocketAddr {
    let settings = Arc::new(settings);
    accept_on_loopback(shutdown, move |sock, stop| {
        serve_connection(
            crate::connection::Transport::tcp(sock),
            Arc::clone(&settings),
            stop,
        )
    })
    .await
}

/// Accepts connections on a loopback port until `shutdown`, each served by a
/// task `serve` makes; returns the port's address.
pub(crate) async fn accept_on_loopback<F, Fut>(shutdown: &CancellationToken, serve: F) -> SocketAddr
where
    F: Fn(TcpStream, CancellationToken) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let (sock, _) = accepted.unwrap();
                    tokio::spawn(serve(sock, stop.clone()));
                }
                _ = stop.cancelled() => break,
            }
        }
    });
    addr
}

/// A raw STOMP 1.2 client.
pub(crate) struct Peer {
    sock: TcpStream,
    decoder: Decoder,
    buf: BytesMut,
}

impl Peer {
    /// Connects and waits for CONNECTED.
    pub(crate) async fn connect(addr: SocketAddr) -> Peer {
        Peer::connect_with(addr, "").await
    }

    /// Connects with `headers` (header lines, each ending in a newline) added to
    /// the CONNECT frame, and waits for CONNECTED.
    pub(crate) async fn connect_with(addr: SocketAddr, headers: &str) -> Peer {
        let mut p = Peer {
            sock: TcpStream::connect(addr).await.unwrap(),
            decoder: Decoder::new(Limits::default()),
            buf: BytesMut::new(),
        };
        p.send(&format!(
            "CONNECT\naccept-version:1.2\nhost:localhost\n{headers}\n"
        ))
        .await;
        p.expect("CONNECTED").await;
        p.decoder.set_version(Version::V1_2);
        p
    }

    /// Sends `text` followed by the frame's NUL.
    pub(crate) async fn send(&mut self, text: &str) {
        self.sock.write_all(text.as_bytes()).await.unwrap();
        self.sock.write_all(b"\0").await.unwrap();
    }

    /// The next frame, which must arrive within 5 s and be a `command`.
    pub(crate) async fn expect(&mut self, command: &str) -> Frame {
        let frame = self.next(Duration::from_secs(5)).await;
        let frame = frame.unwrap_or_else(|| panic!("no {command} within 5 s"));
        assert_eq!(frame.command.as_str(), command, "{frame:?}");
        frame
    }

    /// The next frame, or None if none arrives within `wait` (or the peer closed).
    pub(crate) async fn next(&mut self, wait: Duration) -> Option<Frame> {
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
