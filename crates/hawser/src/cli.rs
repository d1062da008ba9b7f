//! `hawser send`, `hawser receive` and `hawser browse`: the habits of
//! ActiveMQ's `activemq producer/consumer/browse`, on the Rust client, with any
//! URI the client takes (`tcp://h:p`, `failover:(...)?options`).
//!
//! Exit codes: 0 done; 1 bad arguments or input; 3 no broker reachable;
//! 4 the broker refused an operation; 5 `receive` timed out before `--count`.

use std::io::Read;
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use hawser_client::{AckMode, Client, ClientError, Headers, Identity, SubscribeOptions};

/// Exit code when no broker could be reached.
pub const EXIT_UNREACHABLE: u8 = 3;
/// Exit code when the broker refused an operation.
pub const EXIT_REFUSED: u8 = 4;
/// Exit code when `receive` got fewer messages than asked before its timeout.
pub const EXIT_TIMEOUT: u8 = 5;

/// Connection options shared by the client commands.
#[derive(clap::Args, Clone, Debug)]
pub struct ConnectArgs {
    /// Broker URI: tcp://host:port, ssl://host:port or failover:(tcp://a:1,ssl://b:2)?options.
    #[arg(long, default_value = "tcp://127.0.0.1:61613")]
    pub url: String,
    /// STOMP login.
    #[arg(long)]
    pub login: Option<String>,
    /// STOMP passcode.
    #[arg(long)]
    pub passcode: Option<String>,
    /// JMS client id (needed for durable subscriptions).
    #[arg(long)]
    pub client_id: Option<String>,
    /// CA certificates (PEM) that sign the broker's certificate, for `ssl://` URIs.
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<std::path::PathBuf>,
}

/// `hawser send`.
#[derive(clap::Args, Clone, Debug)]
pub struct SendArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// Destination, e.g. /queue/orders or /topic/prices.
    #[arg(long, short)]
    pub destination: String,
    /// Messages to send (the same body each time).
    #[arg(long, short, default_value_t = 1)]
    pub count: u64,
    /// Send persistent messages (confirmed after fsync).
    #[arg(long)]
    pub persistent: bool,
    /// Header `name:value` (repeatable).
    #[arg(long = "header", short = 'H')]
    pub headers: Vec<String>,
    /// Body text; otherwise --file, otherwise standard input.
    #[arg(long, short)]
    pub body: Option<String>,
    /// Read the body from this file.
    #[arg(long, short, conflicts_with = "body")]
    pub file: Option<PathBuf>,
}

/// `hawser receive`.
#[derive(clap::Args, Clone, Debug)]
pub struct ReceiveArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// Destination to consume from.
    #[arg(long, short)]
    pub destination: String,
    /// Messages to receive before exiting.
    #[arg(long, short, default_value_t = 1)]
    pub count: u64,
    /// JMS selector.
    #[arg(long, short)]
    pub selector: Option<String>,
    /// Give up after this many ms without the messages (0: wait forever).
    #[arg(long, default_value_t = 10_000)]
    pub timeout_ms: u64,
    /// Durable subscription name (topics; needs --client-id).
    #[arg(long)]
    pub durable: Option<String>,
    /// Print headers too, as one JSON object per message.
    #[arg(long)]
    pub json: bool,
}

/// `hawser browse`.
#[derive(clap::Args, Clone, Debug)]
pub struct BrowseArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// Queue to browse.
    #[arg(long, short)]
    pub destination: String,
    /// Print at most this many messages.
    #[arg(long)]
    pub limit: Option<u64>,
    /// Print headers too, as one JSON object per message.
    #[arg(long)]
    pub json: bool,
}

/// A failure with the exit code it maps to.
pub struct Failure {
    pub code: u8,
    pub message: String,
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Failure {
        let code = match &e {
            ClientError::Unreachable(_) | ClientError::Connect { .. } => EXIT_UNREACHABLE,
            ClientError::Uri(_) => 1,
            _ => EXIT_REFUSED,
        };
        Failure {
            code,
            message: e.to_string(),
        }
    }
}

fn usage(message: String) -> Failure {
    Failure { code: 1, message }
}

async fn connect(args: &ConnectArgs) -> Result<Client, Failure> {
    let identity = Identity {
        login: args.login.clone(),
        passcode: args.passcode.clone(),
        client_id: args.client_id.clone(),
        vhost: "localhost".into(),
        tls: args
            .ca_file
            .as_deref()
            .map(|ca| hawser_client::tls_config(ca, None))
            .transpose()?,
    };
    Ok(Client::connect(&args.url, identity).await?)
}

fn parse_headers(headers: &[String]) -> Result<Headers, Failure> {
    headers
        .iter()
        .map(|h| {
            h.split_once(':')
                .ok_or_else(|| usage(format!("header {h:?} is not name:value")))
        })
        .collect()
}

/// Sends `--count` messages, all confirmed before it returns.
pub async fn send(args: SendArgs) -> Result<(), Failure> {
    let body: Bytes = match (&args.body, &args.file) {
        (Some(b), _) => Bytes::from(b.clone()),
        (None, Some(f)) => std::fs::read(f)
            .map_err(|e| usage(format!("cannot read {}: {e}", f.display())))?
            .into(),
        (None, None) => {
            let mut v = Vec::new();
            std::io::stdin()
                .read_to_end(&mut v)
                .map_err(|e| usage(format!("cannot read standard input: {e}")))?;
            v.into()
        }
    };
    let mut headers = parse_headers(&args.headers)?;
    if args.persistent {
        headers.push("persistent", "true");
    }
    let client = connect(&args.connect).await?;
    let confirmations: Vec<_> = (0..args.count)
        .map(|_| client.send(&args.destination, body.clone(), headers.clone()))
        .collect();
    for c in confirmations {
        c.await?;
    }
    client.close().await?;
    eprintln!("sent {} message(s) to {}", args.count, args.destination);
    Ok(())
}

/// Receives `--count` messages, acknowledging each after printing it.
pub async fn receive(args: ReceiveArgs) -> Result<(), Failure> {
    let client = connect(&args.connect).await?;
    let mut sub = client
        .subscribe(
            &args.destination,
            SubscribeOptions {
                ack: AckMode::ClientIndividual,
                selector: args.selector.clone(),
                durable_name: args.durable.clone(),
                prefetch: Some(u32::try_from(args.count).unwrap_or(u32::MAX).clamp(1, 1000)),
                ..SubscribeOptions::default()
            },
        )
        .await?;
    let mut got = 0;
    while got < args.count {
        let next = if args.timeout_ms == 0 {
            sub.recv().await
        } else {
            match tokio::time::timeout(Duration::from_millis(args.timeout_ms), sub.recv()).await {
                Ok(m) => m,
                Err(_) => {
                    return Err(Failure {
                        code: EXIT_TIMEOUT,
                        message: format!(
                            "received {got} of {} message(s) within {} ms",
                            args.count, args.timeout_ms
                        ),
                    })
                }
            }
        };
        let Some(m) = next else {
            return Err(Failure {
                code: EXIT_UNREACHABLE,
                message: "connection closed".into(),
            });
        };
        print_message(&m, args.json);
        m.ack().await?;
        got += 1;
    }
    client.close().await?;
    Ok(())
}

/// Prints the messages waiting in a queue without consuming them.
pub async fn browse(args: BrowseArgs) -> Result<(), Failure> {
    let client = connect(&args.connect).await?;
    let mut sub = client
        .subscribe(
            &args.destination,
            SubscribeOptions {
                browse: true,
                ..SubscribeOptions::default()
            },
        )
        .await?;
    let mut shown = 0;
    while let Some(m) = sub.recv().await {
        if m.header("browser") == Some("end") {
            break;
        }
        if args.limit.is_none_or(|l| shown < l) {
            print_message(&m, args.json);
        }
        shown += 1;
    }
    eprintln!("{shown} message(s) in {}", args.destination);
    client.close().await?;
    Ok(())
}

/// Prints a message: its body as it is, bytes included, followed by a newline;
/// with `json`, one object per line whose body is text when it is UTF-8 and
/// base64 (`body_base64`) when it is not.
fn print_message(m: &hawser_client::Message, json: bool) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if json {
        let headers: serde_json::Map<String, serde_json::Value> = m
            .headers
            .iter()
            .map(|(k, v)| (k.to_owned(), serde_json::Value::String(v.to_owned())))
            .collect();
        let line = match m.text() {
            Some(text) => serde_json::json!({ "headers": headers, "body": text }),
            None => {
                use base64::Engine;
                let encoded = base64::engine::general_purpose::STANDARD.encode(&m.body);
                serde_json::json!({ "headers": headers, "body_base64": encoded })
            }
        };
        let _ = writeln!(out, "{line}");
    } else {
        let _ = out.write_all(&m.body);
        let _ = out.write_all(b"\n");
    }
    let _ = out.flush();
}
