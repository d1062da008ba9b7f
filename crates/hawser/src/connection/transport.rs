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
    /// The subject common name of the client's certificate, when it gave
    /// one that the handshake verified (mutual TLS): a user it may
    /// authenticate as (see `security`).
    pub certificate_name: Option<String>,
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
            certificate_name: None,
        }
    }

    /// TLS over an accepted socket whose handshake is done.
    pub fn tls(stream: tokio_rustls::server::TlsStream<TcpStream>) -> Transport {
        let remote = stream.get_ref().0.peer_addr().ok();
        let _ = stream.get_ref().0.set_nodelay(true);
        // rustls gives the chain only once its verifier accepted it.
        let certificate_name = stream
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|chain| chain.first())
            .and_then(|leaf| common_name(leaf.as_ref()));
        let (read, write) = tokio::io::split(stream);
        Transport {
            read: Box::new(read),
            write: Box::new(write),
            remote,
            tls: true,
            certificate_name,
        }
    }
}

/// The subject's common name of a DER certificate, if it has one.
fn common_name(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let cn = cert.subject().iter_common_name().next()?;
    cn.as_str().ok().map(str::to_owned)
}
