//! `hawser stat`: what a broker is (asked over its status endpoint), or who is
//! master of a shared store (read from the store's `ha/` directory).
//! `hawser dstat`: every destination's depth and counts, as ActiveMQ's
//! `activemq dstat` prints them (asked over the admin endpoint).
//!
//! Exit codes as the other client commands: 0 answered; 1 bad arguments;
//! 3 the broker's status endpoint could not be reached.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hawser_ha::{Epochs, LeaseFile};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::cli::{Failure, EXIT_UNREACHABLE};
use base64::Engine;

use crate::status::{DestinationRow, Status};

/// How long `stat` waits for a status endpoint.
const STAT_TIMEOUT: Duration = Duration::from_secs(3);
/// Largest answer read (a destination list of the registry's 10,000
/// destinations at about 200 bytes each fits).
const MAX_STATUS_BYTES: u64 = 4 << 20;

/// `hawser stat`.
#[derive(clap::Args, Clone, Debug)]
pub struct StatArgs {
    /// A broker's status endpoint (its `--status` address).
    #[arg(long, value_name = "HOST:PORT", required_unless_present = "data_dir")]
    pub status: Option<String>,
    /// A shared store's data directory: report its master and epoch instead.
    #[arg(long, value_name = "DIR", conflicts_with = "status")]
    pub data_dir: Option<PathBuf>,
    #[command(flatten)]
    pub ask: AskArgs,
}

/// How `stat` and `dstat` ask an admin endpoint, and print.
#[derive(clap::Args, Clone, Debug)]
pub struct AskArgs {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// User to authenticate as, on a broker with users; the password is
    /// taken from the HAWSER_PASSWORD environment variable (never the
    /// command line, which other users of the machine can read).
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,
    /// CA certificates (PEM) of an endpoint served over HTTPS
    /// (`--admin-tls`): the endpoint is then asked over TLS, its
    /// certificate checked against them and the host name.
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
}

/// `hawser dstat`.
#[derive(clap::Args, Clone, Debug)]
pub struct DstatArgs {
    /// `queues` or `topics` only, as ActiveMQ's `dstat` takes them.
    #[arg(value_parser = ["all", "queues", "topics"], default_value = "all")]
    pub kind: String,
    /// The broker's admin endpoint (its `--admin` address).
    #[arg(long, visible_alias = "status", value_name = "HOST:PORT",
          default_value = crate::config::DEFAULT_ADMIN_ADDR)]
    pub admin: String,
    #[command(flatten)]
    pub ask: AskArgs,
}

/// HTTP Basic credentials of `user`, the password from HAWSER_PASSWORD.
pub(crate) fn credentials(user: Option<&String>) -> Option<String> {
    user.map(|user| {
        let password = std::env::var("HAWSER_PASSWORD").unwrap_or_default();
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    })
}

/// The TLS settings to ask an endpoint with, given its CA file.
pub(crate) fn endpoint_tls(
    ca_file: Option<&PathBuf>,
) -> Result<Option<std::sync::Arc<rustls::ClientConfig>>, Failure> {
    ca_file
        .map(|ca| {
            hawser_client::tls_config(ca, None).map_err(|e| Failure {
                code: 1,
                message: e.to_string(),
            })
        })
        .transpose()
}

/// Runs `hawser dstat`.
pub async fn dstat(args: DstatArgs) -> Result<(), Failure> {
    let tls = endpoint_tls(args.ask.ca_file.as_ref())?;
    let mut rows: Vec<DestinationRow> = fetch(
        &args.admin,
        "/api/destinations",
        credentials(args.ask.user.as_ref()).as_deref(),
        tls,
        STAT_TIMEOUT,
    )
    .await?;
    rows.retain(|r| match args.kind.as_str() {
        "queues" => r.destination.starts_with("queue://"),
        "topics" => r.destination.starts_with("topic://"),
        _ => true,
    });
    if args.ask.json {
        println!("{}", serde_json::to_string(&rows).unwrap_or_default());
        return Ok(());
    }
    let width = rows
        .iter()
        .map(|r| r.destination.len())
        .max()
        .unwrap_or(0)
        .max("Name".len());
    println!(
        "{:<width$}  {:>10}  {:>9}  {:>10}  {:>10}  {:>10}  {:>8}  {:>8}",
        "Name",
        "Queue Size",
        "In Flight",
        "Consumer #",
        "Enqueue #",
        "Dequeue #",
        "Expired",
        "DLQ #"
    );
    for r in &rows {
        println!(
            "{:<width$}  {:>10}  {:>9}  {:>10}  {:>10}  {:>10}  {:>8}  {:>8}",
            r.destination,
            r.depth,
            r.inflight,
            r.consumers,
            r.enqueued,
            r.dequeued,
            r.expired,
            r.dead_lettered
        );
    }
    Ok(())
}

/// Runs `hawser stat`.
pub async fn stat(args: StatArgs) -> Result<(), Failure> {
    match (&args.status, &args.data_dir) {
        (Some(addr), _) => {
            let tls = endpoint_tls(args.ask.ca_file.as_ref())?;
            let status: Status = fetch(
                addr,
                "/status",
                credentials(args.ask.user.as_ref()).as_deref(),
                tls,
                STAT_TIMEOUT,
            )
            .await?;
            if args.ask.json {
                println!("{}", serde_json::to_string(&status).unwrap_or_default());
            } else {
                println!("role: {}", status.role);
                println!("epoch: {}", status.epoch);
                if let Some(node) = &status.node {
                    println!("node: {node}");
                }
                println!("stomp: {}", status.stomp);
                println!("data_dir: {}", status.data_dir.display());
                println!("pid: {}", status.pid);
                println!("since_ms: {}", status.since_ms);
                if let Some(reason) = &status.failed {
                    println!("failed: {reason}");
                }
                if let Some(free) = status.disk_free_bytes {
                    println!("disk_free_bytes: {free}");
                }
                for (protocol, n) in &status.connections {
                    println!("connections {protocol}: {n}");
                }
                for l in &status.network {
                    println!(
                        "network link {}: {}, {} demand(s), {} forwarded, {} pulled, {} connection(s)",
                        l.peer,
                        if l.up { "up" } else { "down" },
                        l.demands,
                        l.forwarded,
                        l.pulled,
                        l.connections
                    );
                }
                if !status.producers_held_by.is_empty() {
                    println!("producers held by: {}", status.producers_held_by.join(", "));
                }
            }
            Ok(())
        }
        (None, Some(dir)) => store_stat(dir, args.ask.json),
        (None, None) => Err(Failure {
            code: 1,
            message: "give --status HOST:PORT or --data-dir DIR".into(),
        }),
    }
}

/// `GET path` of a broker's admin endpoint, as JSON, waiting at most `timeout`.
pub(crate) async fn fetch<T: serde::de::DeserializeOwned>(
    addr: &str,
    path: &str,
    credentials: Option<&str>,
    tls: Option<std::sync::Arc<rustls::ClientConfig>>,
    timeout: Duration,
) -> Result<T, Failure> {
    let ask = Ask {
        addr,
        credentials,
        tls,
        timeout,
    };
    ask.request("GET", path, &[], None).await
}

/// Where and how to ask an admin endpoint.
pub(crate) struct Ask<'a> {
    pub addr: &'a str,
    /// HTTP Basic credentials, base64.
    pub credentials: Option<&'a str>,
    pub tls: Option<std::sync::Arc<rustls::ClientConfig>>,
    pub timeout: Duration,
}

impl Ask<'_> {
    /// `method path` with `headers` and a JSON `body`; the answer's JSON.
    /// An answer other than 2xx fails with its first line and text.
    pub(crate) async fn request<T: serde::de::DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> Result<T, Failure> {
        let addr = self.addr;
        let unreachable = |why: String| Failure {
            code: EXIT_UNREACHABLE,
            message: format!("admin endpoint {addr}: {why}"),
        };
        let mut head = String::new();
        if let Some(c) = self.credentials {
            head.push_str(&format!("Authorization: Basic {c}\r\n"));
        }
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        let body = body.unwrap_or_default();
        if !body.is_empty() || method != "GET" {
            head.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                body.len()
            ));
        }
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{head}Connection: close\r\n\r\n{body}"
        );
        let tls = self.tls.clone();
        let exchange = async {
            let stream = TcpStream::connect(addr).await?;
            match tls {
                None => exchange(stream, &request).await,
                Some(config) => {
                    let host = addr
                        .rsplit_once(':')
                        .map_or(addr, |(h, _)| h)
                        .trim_matches(['[', ']']);
                    let name = rustls::pki_types::ServerName::try_from(host.to_owned())
                        .map_err(std::io::Error::other)?;
                    let stream = tokio_rustls::TlsConnector::from(config)
                        .connect(name, stream)
                        .await?;
                    exchange(stream, &request).await
                }
            }
        };
        let answer = tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| unreachable("no answer".into()))?
            .map_err(|e| unreachable(e.to_string()))?;
        let text = String::from_utf8_lossy(&answer);
        let (head, body) = text
            .split_once("\r\n\r\n")
            .ok_or_else(|| unreachable("not an HTTP answer".into()))?;
        let line = head.lines().next().unwrap_or_default();
        if !line.starts_with("HTTP/1.1 2") {
            // Refused (4xx) is the operator's to fix, not an unreachable broker.
            let code = if line.starts_with("HTTP/1.1 4") {
                crate::cli::EXIT_REFUSED
            } else {
                EXIT_UNREACHABLE
            };
            return Err(Failure {
                code,
                message: format!("{method} {path}: {line}: {}", body.trim()),
            });
        }
        serde_json::from_str(body).map_err(|e| unreachable(format!("bad answer to {path}: {e}")))
    }
}

/// Sends `request` and reads the whole answer (at most [`MAX_STATUS_BYTES`]).
async fn exchange<S>(mut stream: S, request: &str) -> std::io::Result<Vec<u8>>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    stream.write_all(request.as_bytes()).await?;
    let mut answer = Vec::new();
    stream
        .take(MAX_STATUS_BYTES)
        .read_to_end(&mut answer)
        .await?;
    Ok(answer)
}

/// The shared store's own record: the current epoch, its owner and the lease.
fn store_stat(dir: &std::path::Path, json: bool) -> Result<(), Failure> {
    let ha = dir.join("ha");
    if !ha.is_dir() {
        return Err(Failure {
            code: 1,
            message: format!("{} is not a shared store (no ha/ directory)", dir.display()),
        });
    }
    let fail = |e: std::io::Error| Failure {
        code: 1,
        message: format!("cannot read {}: {e}", ha.display()),
    };
    let epochs = Epochs::open(&ha).map_err(fail)?;
    let epoch = epochs.current().map_err(fail)?;
    let owner = epochs.owner(epoch);
    let lease = LeaseFile::new(&ha).read().map_err(fail)?;
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let lease_left_ms = lease.as_ref().map(|l| {
        i64::try_from(l.renewed_ms + l.lease_ms).unwrap_or(i64::MAX)
            - i64::try_from(now_ms).unwrap_or(0)
    });
    if json {
        let v = serde_json::json!({
            "epoch": epoch,
            "master": owner,
            "lease": lease.as_ref().map(|l| serde_json::json!({
                "epoch": l.epoch,
                "owner": l.owner,
                "renewed_ms": l.renewed_ms,
                "lease_ms": l.lease_ms,
                "left_ms": lease_left_ms,
            })),
        });
        println!("{v}");
    } else {
        println!("epoch: {epoch}");
        println!("master: {}", owner.as_deref().unwrap_or("none yet"));
        match (&lease, lease_left_ms) {
            (Some(l), Some(left)) => println!(
                "lease: epoch {} held by {}, {} ({left} ms left)",
                l.epoch,
                l.owner,
                if left >= 0 { "valid" } else { "expired" }
            ),
            _ => println!("lease: none (file-lock mode)"),
        }
    }
    Ok(())
}
