//! The admin API's operations from the command line, as ActiveMQ's
//! `activemq purge` and the console's buttons: `hawser purge`, `hawser
//! move`, `hawser retry`, `hawser queue create|delete`, `hawser
//! connections` (and `--close`). Each asks the broker's admin endpoint
//! (`--admin`), with the user of `--user` and HAWSER_PASSWORD; a change
//! first takes the session's token (`GET /api/session`).
//!
//! Exit codes as the other client commands: 0 done; 1 bad arguments;
//! 3 the endpoint could not be reached; 4 the broker refused.

use std::time::Duration;

use crate::admin::api::{ConnectionRow, Done, Session};
use crate::admin::TOKEN_HEADER;
use crate::cli::Failure;
use crate::stat::{credentials, endpoint_tls, Ask, AskArgs};

/// How long a command waits for the endpoint (a change waits for its record
/// to be durable, up to 10 s on the broker's side).
const TIMEOUT: Duration = Duration::from_secs(15);

/// Where to ask.
#[derive(clap::Args, Clone, Debug)]
pub struct Target {
    /// The broker's admin endpoint (its `--admin` address).
    #[arg(long, value_name = "HOST:PORT", default_value = crate::config::DEFAULT_ADMIN_ADDR)]
    pub admin: String,
    #[command(flatten)]
    pub ask: AskArgs,
}

/// `hawser purge`.
#[derive(clap::Args, Clone, Debug)]
pub struct PurgeArgs {
    /// Queues to purge.
    #[arg(required = true)]
    pub queues: Vec<String>,
    #[command(flatten)]
    pub target: Target,
}

/// `hawser move`.
#[derive(clap::Args, Clone, Debug)]
pub struct MoveArgs {
    /// The queue the message waits in.
    pub from: String,
    /// The message's broker id (as `/api/queues/{name}/messages` and the
    /// console show it).
    pub id: u64,
    /// The queue it goes to.
    pub to: String,
    /// Copy it; the original stays.
    #[arg(long)]
    pub copy: bool,
    #[command(flatten)]
    pub target: Target,
}

/// `hawser retry`.
#[derive(clap::Args, Clone, Debug)]
pub struct RetryArgs {
    /// The dead-letter queue.
    #[arg(default_value = "ActiveMQ.DLQ")]
    pub dlq: String,
    #[command(flatten)]
    pub target: Target,
}

/// `hawser queue`.
#[derive(clap::Args, Clone, Debug)]
pub struct QueueArgs {
    /// `create` or `delete`.
    #[arg(value_parser = ["create", "delete"])]
    pub action: String,
    /// The queue.
    pub name: String,
    #[command(flatten)]
    pub target: Target,
}

/// `hawser connections`.
#[derive(clap::Args, Clone, Debug)]
pub struct ConnectionsArgs {
    /// Close this connection instead of listing them.
    #[arg(long, value_name = "ID")]
    pub close: Option<u64>,
    #[command(flatten)]
    pub target: Target,
}

/// An open session with the endpoint.
struct Admin {
    addr: String,
    credentials: Option<String>,
    tls: Option<std::sync::Arc<rustls::ClientConfig>>,
}

impl Admin {
    fn new(target: &Target) -> Result<Admin, Failure> {
        Ok(Admin {
            addr: target.admin.clone(),
            credentials: credentials(target.ask.user.as_ref()),
            tls: endpoint_tls(target.ask.ca_file.as_ref())?,
        })
    }

    fn ask(&self) -> Ask<'_> {
        Ask {
            addr: &self.addr,
            credentials: self.credentials.as_deref(),
            tls: self.tls.clone(),
            timeout: TIMEOUT,
        }
    }

    async fn get<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T, Failure> {
        self.ask().request("GET", path, &[], None).await
    }

    /// A change: the token first, then the request.
    async fn change<T: serde::de::DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
    ) -> Result<T, Failure> {
        let session: Session = self.get("/api/session").await?;
        self.ask()
            .request(method, path, &[(TOKEN_HEADER, &session.token)], body)
            .await
    }
}

/// A queue's name as one path segment.
fn segment(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Runs `hawser purge`.
pub async fn purge(args: PurgeArgs) -> Result<(), Failure> {
    let admin = Admin::new(&args.target)?;
    for q in &args.queues {
        let done: Done = admin
            .change("POST", &format!("/api/queues/{}/purge", segment(q)), None)
            .await?;
        println!("purged {} messages of queue://{q}", done.messages);
    }
    Ok(())
}

/// Runs `hawser move`.
pub async fn move_message(args: MoveArgs) -> Result<(), Failure> {
    let admin = Admin::new(&args.target)?;
    let how = if args.copy { "copy" } else { "move" };
    let body = serde_json::json!({ "to": args.to }).to_string();
    let _: Done = admin
        .change(
            "POST",
            &format!(
                "/api/queues/{}/messages/{}/{how}",
                segment(&args.from),
                args.id
            ),
            Some(&body),
        )
        .await?;
    println!(
        "{} message {} from queue://{} to queue://{}",
        if args.copy { "copied" } else { "moved" },
        args.id,
        args.from,
        args.to
    );
    Ok(())
}

/// Runs `hawser retry`.
pub async fn retry(args: RetryArgs) -> Result<(), Failure> {
    let admin = Admin::new(&args.target)?;
    let done: Done = admin
        .change(
            "POST",
            &format!("/api/queues/{}/retry", segment(&args.dlq)),
            None,
        )
        .await?;
    println!(
        "retried {} messages of queue://{}; {} left",
        done.messages, args.dlq, done.left
    );
    Ok(())
}

/// Runs `hawser queue`.
pub async fn queue(args: QueueArgs) -> Result<(), Failure> {
    let admin = Admin::new(&args.target)?;
    let method = if args.action == "create" {
        "PUT"
    } else {
        "DELETE"
    };
    let _: Done = admin
        .change(
            method,
            &format!("/api/queues/{}", segment(&args.name)),
            None,
        )
        .await?;
    println!("{}d queue://{}", args.action, args.name);
    Ok(())
}

/// Runs `hawser connections`.
pub async fn connections(args: ConnectionsArgs) -> Result<(), Failure> {
    let admin = Admin::new(&args.target)?;
    if let Some(id) = args.close {
        let _: Done = admin
            .change("DELETE", &format!("/api/connections/{id}"), None)
            .await?;
        println!("closed connection {id}");
        return Ok(());
    }
    let rows: Vec<ConnectionRow> = admin.get("/api/connections").await?;
    if args.target.ask.json {
        println!("{}", serde_json::to_string(&rows).unwrap_or_default());
        return Ok(());
    }
    println!(
        "{:>6}  {:<9}  {:<22}  {:<20}  {:<12}  {:>9}",
        "Id", "Protocol", "From", "Client id", "User", "Consumers"
    );
    for c in rows {
        println!(
            "{:>6}  {:<9}  {:<22}  {:<20}  {:<12}  {:>9}",
            c.id,
            c.protocol,
            c.remote.unwrap_or_default(),
            c.client_id.unwrap_or_default(),
            c.user.unwrap_or_default(),
            c.subscriptions
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_queue_name_is_one_path_segment() {
        assert_eq!(super::segment("orders.eu"), "orders.eu");
        assert_eq!(super::segment("a/b c?"), "a%2Fb%20c%3F");
    }
}
