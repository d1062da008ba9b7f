//! A TCP proxy between the store and its server that breaks connections
//! where a test asks: the fault-injecting layer of the failover tests. It
//! watches what the client sends for the simple query `COMMIT` (how
//! tokio-postgres ends a transaction) and, once armed, cuts the connection
//! just before that message reaches the server (the transaction rolls
//! back) or just after (it commits, but the client never hears so): the two
//! sides of a COMMIT whose outcome is unknown.

use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// `Q`, its length (4 + "COMMIT\0"), the query: one protocol message.
const COMMIT: &[u8] = b"Q\0\0\0\x0bCOMMIT\0";

/// What the next COMMIT meets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Cut {
    /// Passed through.
    None = 0,
    /// The connection is closed before the server reads the COMMIT.
    BeforeCommit = 1,
    /// The COMMIT reaches the server; its answer never reaches the client.
    AfterCommit = 2,
}

#[derive(Default)]
struct Faults {
    cut: AtomicU8,
    /// New connections are refused (the server is "down").
    down: AtomicBool,
    cuts: AtomicUsize,
}

/// A running proxy; it lives as long as the runtime that started it.
#[derive(Clone)]
pub struct Proxy {
    pub port: u16,
    faults: Arc<Faults>,
}

impl Proxy {
    /// Listens on a loopback port and forwards to `server_port`.
    pub async fn start(server_port: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let faults = Arc::new(Faults::default());
        let f = Arc::clone(&faults);
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if f.down.load(Ordering::SeqCst) {
                    continue; // dropped: the client sees the connection close
                }
                let Ok(server) = TcpStream::connect(("127.0.0.1", server_port)).await else {
                    continue;
                };
                tokio::spawn(forward(client, server, Arc::clone(&f)));
            }
        });
        Proxy { port, faults }
    }

    /// The next COMMIT (of any connection) meets `cut`; later ones pass.
    pub fn arm(&self, cut: Cut) {
        self.faults.cut.store(cut as u8, Ordering::SeqCst);
    }

    /// Refuses new connections while `down`.
    pub fn set_down(&self, down: bool) {
        self.faults.down.store(down, Ordering::SeqCst);
    }

    /// Connections cut so far.
    pub fn cuts(&self) -> usize {
        self.faults.cuts.load(Ordering::SeqCst)
    }

    /// The store's connection string through the proxy.
    pub fn url(&self, dbname: &str) -> String {
        format!(
            "host=127.0.0.1 port={} user=hawser dbname={dbname} connect_timeout=5",
            self.port
        )
    }
}

async fn forward(client: TcpStream, server: TcpStream, faults: Arc<Faults>) {
    let (mut client_r, mut client_w) = client.into_split();
    let (mut server_r, mut server_w) = server.into_split();
    let back = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut server_r, &mut client_w).await;
    });
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match client_r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let chunk = &buf[..n];
        let at = chunk.windows(COMMIT.len()).position(|w| w == COMMIT);
        let cut = at.and_then(|_| {
            let c = faults.cut.swap(Cut::None as u8, Ordering::SeqCst);
            (c != Cut::None as u8).then_some(c)
        });
        match (at, cut) {
            (Some(at), Some(c)) => {
                let upto = if c == Cut::AfterCommit as u8 {
                    at + COMMIT.len()
                } else {
                    at
                };
                let _ = server_w.write_all(&chunk[..upto]).await;
                let _ = server_w.flush().await;
                // The answer must not reach the client: stop the way back
                // before the server can write it, then close both ways.
                back.abort();
                faults.cuts.fetch_add(1, Ordering::SeqCst);
                if c == Cut::AfterCommit as u8 {
                    // Give the server the moment it takes to read the COMMIT
                    // before the end of its input arrives.
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                }
                return;
            }
            _ => {
                if server_w.write_all(chunk).await.is_err() {
                    break;
                }
            }
        }
    }
    back.abort();
}
