//! What a connection runs over: a TCP socket, or TLS over one. The core
//! reads and writes the two halves without knowing which (one boxed call per
//! socket read or write, not per frame).

use std::net::SocketAddr;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// The reading half of a transport.
pub type ReadHalf = Box<dyn AsyncRead + Send + Unpin>;

/// The writing half of a transport.
pub type WriteHalf = Box<dyn AsyncWrite + Send + Unpin>;

/// An accepted connection's byte stream, split for the reader and the writer.
pub struct Transport {
    /// What the session reads.
    pub read: ReadHalf,
    /// What the writer task writes.
    pub write: WriteHalf,
    /// Where the client connects from.
    pub remote: Option<SocketAddr>,
    /// Whether it is TLS.
    pub tls: bool,
}

impl Transport {
    /// Plain TCP: split without a lock, no delay for small frames.
    pub fn tcp(stream: TcpStream) -> Transport {
        let _ = stream.set_nodelay(true);
        let remote = stream.peer_addr().ok();
        let (read, write) = stream.into_split();
        Transport {
            read: Box::new(read),
            write: Box::new(write),
            remote,
            tls: false,
        }
    }

    /// TLS over an accepted socket whose handshake is done.
    pub fn tls(stream: tokio_rustls::server::TlsStream<TcpStream>) -> Transport {
        let remote = stream.get_ref().0.peer_addr().ok();
        let _ = stream.get_ref().0.set_nodelay(true);
        let (read, write) = tokio::io::split(stream);
        Transport {
            read: Box::new(read),
            write: Box::new(write),
            remote,
            tls: true,
        }
    }
}
