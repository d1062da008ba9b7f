//! One STOMP connection to one broker: the CONNECT handshake, then a reading
//! task that decodes frames into a channel and a writing task that encodes
//! them, with heart-beats both ways. It knows nothing of failover: when the
//! socket breaks, the frame channel closes and the supervisor decides.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use hawser_stomp::extensions::CLUSTER_UPDATES_HEADER;
use hawser_stomp::{encode, encode_heartbeat, Command, Decoder, Frame, Item, Limits, Version};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::error::ClientError;
use crate::uri::BrokerUri;

/// The reading half of a connection's transport (TCP or TLS).
type ReadHalf = Box<dyn tokio::io::AsyncRead + Send + Unpin>;
/// The writing half.
type WriteHalf = Box<dyn tokio::io::AsyncWrite + Send + Unpin>;

/// Read buffer spare capacity kept before each read.
const READ_CHUNK_BYTES: usize = 64 * 1024;
/// Missing heart-beats are tolerated for this multiple of the agreed interval.
const HEARTBEAT_GRACE: f64 = 2.0;

/// Who the client is, sent on every CONNECT.
#[derive(Clone, Debug, Default)]
pub struct Identity {
    /// `login` header.
    pub login: Option<String>,
    /// `passcode` header.
    pub passcode: Option<String>,
    /// JMS client id (`client-id`), needed for durable subscriptions.
    pub client_id: Option<String>,
    /// Virtual host for the `host` header.
    pub vhost: String,
    /// How `ssl://` brokers are trusted (and the client's certificate, for
    /// mutual TLS); `None`: `ssl://` URIs are refused. See [`tls_config`].
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

/// A TLS configuration trusting the CA certificates in the PEM file
/// `ca_file`, presenting the certificate chain and key of `client` (PEM files)
/// if given.
///
/// # Errors
/// If a file cannot be read or holds nothing usable.
pub fn tls_config(
    ca_file: &Path,
    client: Option<(&Path, &Path)>,
) -> Result<Arc<rustls::ClientConfig>, ClientError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let bad = |what: &str, path: &Path, e: &dyn std::fmt::Display| {
        ClientError::Tls(format!("{what} {}: {e}", path.display()))
    };
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca_file).map_err(|e| bad("CA file", ca_file, &e))? {
        let cert = cert.map_err(|e| bad("CA file", ca_file, &e))?;
        roots.add(cert).map_err(|e| bad("CA file", ca_file, &e))?;
    }
    let builder = rustls::ClientConfig::builder_with_provider(crypto_provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| ClientError::Tls(e.to_string()))?
        .with_root_certificates(roots);
    let config = match client {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let chain = CertificateDer::pem_file_iter(cert)
                .map_err(|e| bad("certificate file", cert, &e))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| bad("certificate file", cert, &e))?;
            let key = PrivateKeyDer::from_pem_file(key).map_err(|e| bad("key file", key, &e))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| ClientError::Tls(e.to_string()))?
        }
    };
    Ok(Arc::new(config))
}

/// rustls over *ring*, as the broker (it builds with the C compiler alone).
#[allow(deprecated)]
fn crypto_provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A live connection.
pub struct Connection {
    /// The broker it is connected to.
    pub uri: BrokerUri,
    /// Frames to send; dropping it (and the task) closes the socket.
    pub out: mpsc::UnboundedSender<Frame>,
    /// Frames received (CONNECTED excluded), in batches of what one read brought;
    /// closes when the socket breaks.
    pub frames: mpsc::UnboundedReceiver<Vec<Frame>>,
    /// The broker's CONNECTED frame.
    pub connected: Frame,
}

/// Connects, sends CONNECT and waits for CONNECTED within the URI's connection timeout.
pub async fn connect(uri: &BrokerUri, who: &Identity) -> Result<Connection, ClientError> {
    let timeout = Duration::from_millis(uri.options.connection_timeout_ms.max(1));
    match tokio::time::timeout(timeout, handshake(uri, who)).await {
        Ok(result) => result,
        Err(_) => Err(ClientError::Connect {
            uri: uri.to_string(),
            reason: format!("no CONNECTED within {} ms", timeout.as_millis()),
        }),
    }
}

async fn handshake(uri: &BrokerUri, who: &Identity) -> Result<Connection, ClientError> {
    let fail = |reason: String| ClientError::Connect {
        uri: uri.to_string(),
        reason,
    };
    let stream = TcpStream::connect((uri.host.as_str(), uri.port))
        .await
        .map_err(|e| fail(e.to_string()))?;
    stream
        .set_nodelay(uri.options.tcp_no_delay)
        .map_err(|e| fail(e.to_string()))?;
    let (mut rd, mut wr): (ReadHalf, WriteHalf) = if uri.scheme.is_tls() {
        let config = who.tls.clone().ok_or_else(|| {
            fail("an ssl:// broker needs a TLS configuration (trusted CAs)".into())
        })?;
        let name = rustls::pki_types::ServerName::try_from(uri.host.clone())
            .map_err(|e| fail(format!("not a name to check a certificate against: {e}")))?;
        let tls = tokio_rustls::TlsConnector::from(config)
            .connect(name, stream)
            .await
            .map_err(|e| fail(format!("TLS: {e}")))?;
        let (rd, wr) = tokio::io::split(tls);
        (Box::new(rd), Box::new(wr))
    } else {
        let (rd, wr) = stream.into_split();
        (Box::new(rd), Box::new(wr))
    };
    let hb = uri.options.heart_beat_ms;
    let mut connect = Frame::new(Command::Connect)
        .with_header("accept-version", "1.2")
        .with_header("host", who.vhost.clone())
        .with_header("heart-beat", format!("{hb},{hb}"))
        .with_header(CLUSTER_UPDATES_HEADER, "true");
    if let Some(v) = &who.login {
        connect.push_header("login", v.clone());
    }
    if let Some(v) = &who.passcode {
        connect.push_header("passcode", v.clone());
    }
    if let Some(v) = &who.client_id {
        connect.push_header("client-id", v.clone());
    }
    let mut buf = BytesMut::new();
    encode(&connect, Version::V1_2, &mut buf);
    wr.write_all(&buf).await.map_err(|e| fail(e.to_string()))?;

    let mut decoder = Decoder::new(Limits::default());
    let mut inbuf = BytesMut::with_capacity(READ_CHUNK_BYTES);
    let connected = loop {
        match decoder
            .decode(&mut inbuf)
            .map_err(|e| fail(e.to_string()))?
        {
            Some(Item::Frame(f)) => break f,
            Some(Item::HeartBeat) => continue,
            None => {}
        }
        if rd
            .read_buf(&mut inbuf)
            .await
            .map_err(|e| fail(e.to_string()))?
            == 0
        {
            return Err(fail("connection closed during CONNECT".into()));
        }
    };
    match connected.command {
        Command::Connected => {}
        Command::Error => {
            return Err(ClientError::Refused {
                uri: uri.to_string(),
                message: connected.header("message").unwrap_or_default().to_owned(),
            })
        }
        other => return Err(fail(format!("expected CONNECTED, got {other}"))),
    }
    let version = connected
        .header("version")
        .and_then(Version::parse)
        .unwrap_or(Version::V1_0);
    decoder.set_version(version);
    // heart-beat negotiation, as the broker does it (spec section "Heart-beating").
    let (sx, sy) = connected
        .header("heart-beat")
        .and_then(|v| v.split_once(','))
        .and_then(|(a, b)| Some((a.trim().parse::<u64>().ok()?, b.trim().parse::<u64>().ok()?)))
        .unwrap_or((0, 0));
    let send_every = (hb > 0 && sy > 0).then(|| Duration::from_millis(hb.max(sy)));
    let expect_every = (hb > 0 && sx > 0)
        .then(|| Duration::from_millis((hb.max(sx) as f64 * HEARTBEAT_GRACE) as u64));

    let (out_tx, mut out_rx) = mpsc::unbounded_channel::<Frame>();
    let (in_tx, in_rx) = mpsc::unbounded_channel::<Vec<Frame>>();
    tokio::spawn(async move {
        let mut buf = BytesMut::with_capacity(READ_CHUNK_BYTES);
        let mut last_write = Instant::now();
        loop {
            let beat = send_every.map(|d| last_write + d);
            tokio::select! {
                frame = out_rx.recv() => {
                    let Some(frame) = frame else { break };
                    encode(&frame, version, &mut buf);
                    while let Ok(more) = out_rx.try_recv() {
                        encode(&more, version, &mut buf);
                        if buf.len() > 256 * 1024 {
                            break;
                        }
                    }
                }
                _ = tokio::time::sleep_until(beat.unwrap_or_else(Instant::now)), if beat.is_some() => {
                    encode_heartbeat(&mut buf);
                }
            }
            if wr.write_all(&buf).await.is_err() {
                break;
            }
            buf.clear();
            last_write = Instant::now();
        }
        let _ = wr.shutdown().await;
    });
    tokio::spawn(async move {
        let mut last_read = Instant::now();
        loop {
            // What one read brought goes over as one batch: one channel send and one
            // wake-up for dozens of frames, not one per frame.
            let mut batch = Vec::new();
            let malformed = loop {
                match decoder.decode(&mut inbuf) {
                    Ok(Some(Item::Frame(f))) => batch.push(f),
                    Ok(Some(Item::HeartBeat)) => {}
                    Ok(None) => break None,
                    Err(e) => break Some(e),
                }
            };
            if !batch.is_empty() && in_tx.send(batch).is_err() {
                return;
            }
            if let Some(e) = malformed {
                tracing::warn!("malformed frame from broker: {e}");
                return;
            }
            if inbuf.capacity() - inbuf.len() < READ_CHUNK_BYTES / 4 {
                inbuf.reserve(READ_CHUNK_BYTES);
            }
            let deadline = expect_every.map(|d| last_read + d);
            tokio::select! {
                read = rd.read_buf(&mut inbuf) => match read {
                    Ok(0) | Err(_) => return,
                    Ok(_) => last_read = Instant::now(),
                },
                _ = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {
                    tracing::warn!("broker missed its heart-beats; dropping the connection");
                    return;
                }
                _ = in_tx.closed() => return,
            }
        }
    });
    Ok(Connection {
        uri: uri.clone(),
        out: out_tx,
        frames: in_rx,
        connected,
    })
}
