//! Reading stored messages back (paging a backlog larger than memory), on
//! a connection of its own, made again after it broke.
//!
//! With `target_session_attrs=prefer-standby` in the store's URL (libpq's
//! name), reads go to a standby when one is up, so the primary spends its
//! time on writes: the engine keeps its statistics (depths, counts) in
//! memory, so paging is the only read load a broker puts on the database.
//! A read must see every record appended before it. The writer's COMMIT
//! returned for those, so the primary's current WAL position covers them;
//! the standby is used once it has replayed up to that position (it shows
//! what it replayed to its readers), within [`STANDBY_CATCH_UP`]. A
//! standby further behind, or none, and the read goes to the primary.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio_postgres::config::TargetSessionAttrs;
use tokio_postgres::{Client, Config, Row};

use crate::{connect, connection_lost, read_write, target};

/// How long a read waits for a standby to replay what it must show.
pub const STANDBY_CATCH_UP: Duration = Duration::from_millis(500);
/// How long a standby that could not be reached is left alone.
const STANDBY_RETRY: Duration = Duration::from_secs(5);

const PAGE: &str = "SELECT e.redeliveries, m.data FROM hawser_entries e \
     JOIN hawser_messages m ON m.id = e.id \
     WHERE e.container = $1 AND e.priority = $2 AND e.id > $3 \
     ORDER BY e.id LIMIT $4";

/// libpq's `prefer-standby`, which tokio-postgres does not parse: taken out
/// of the URL (the writer asks for read-write whatever it says).
const PREFER_STANDBY: &str = "target_session_attrs=prefer-standby";

/// `url` without `prefer-standby`, and whether it asked for it.
pub fn split_prefer_standby(url: &str) -> (String, bool) {
    if url.contains(PREFER_STANDBY) {
        (
            url.replace(PREFER_STANDBY, "target_session_attrs=any"),
            true,
        )
    } else {
        (url.to_owned(), false)
    }
}

/// One connection, made when first wanted and again after it broke.
struct Lazy {
    target: Config,
    client: Mutex<Option<Arc<Client>>>,
}

impl Lazy {
    fn new(target: Config, client: Option<Client>) -> Lazy {
        Lazy {
            target,
            client: Mutex::new(client.map(Arc::new)),
        }
    }

    async fn get(&self) -> Result<Arc<Client>, tokio_postgres::Error> {
        if let Some(c) = self.client.lock().clone() {
            return Ok(c);
        }
        let c = Arc::new(connect(&self.target).await?);
        *self.client.lock() = Some(Arc::clone(&c));
        Ok(c)
    }

    /// Forgets a connection that broke, so the next read makes another.
    fn failed(&self, e: &tokio_postgres::Error) {
        if connection_lost(e) {
            *self.client.lock() = None;
        }
    }
}

/// Where the store's reads go.
pub struct Reader {
    primary: Lazy,
    standby: Option<Standby>,
}

struct Standby {
    conn: Lazy,
    /// Not tried again before this, after it could not be reached.
    resting_until: Mutex<Option<Instant>>,
    /// Reads it served.
    reads: AtomicU64,
}

/// Why a read did not happen on a standby.
enum NotThere {
    /// Unreachable, not a standby, or too far behind.
    Standby(String),
    /// The primary's position could not be read: the read fails.
    Primary(tokio_postgres::Error),
}

impl Reader {
    /// Reads on the primary of `url` (connected already: `client`), or on
    /// a standby first if the URL says `prefer-standby`.
    pub fn new(url: &str, client: Client) -> Result<Reader, tokio_postgres::Error> {
        let standby = if split_prefer_standby(url).1 {
            Some(Standby {
                conn: Lazy::new(target(url, TargetSessionAttrs::ReadOnly)?, None),
                resting_until: Mutex::new(None),
                reads: AtomicU64::new(0),
            })
        } else {
            None
        };
        Ok(Reader {
            primary: Lazy::new(read_write(url)?, Some(client)),
            standby,
        })
    }

    /// Reads a standby served so far.
    pub fn standby_reads(&self) -> u64 {
        self.standby
            .as_ref()
            .map_or(0, |s| s.reads.load(Ordering::Relaxed))
    }

    /// Up to `limit` entries of `container` at `priority` after id
    /// `after`: rows of (redeliveries, message record). Called once every
    /// record appended before the read is committed.
    pub async fn page(
        &self,
        container: &[u8],
        priority: i16,
        after: i64,
        limit: i64,
    ) -> Result<Vec<Row>, tokio_postgres::Error> {
        if let Some(standby) = &self.standby {
            match self
                .page_on_standby(standby, container, priority, after, limit)
                .await
            {
                Ok(rows) => return Ok(rows),
                Err(NotThere::Primary(e)) => {
                    self.primary.failed(&e);
                    return Err(e);
                }
                Err(NotThere::Standby(why)) => {
                    tracing::debug!("postgres store: reading on the primary: {why}");
                }
            }
        }
        let client = self
            .primary
            .get()
            .await
            .inspect_err(|e| self.primary.failed(e))?;
        client
            .query(PAGE, &[&container, &priority, &after, &limit])
            .await
            .inspect_err(|e| self.primary.failed(e))
    }

    async fn page_on_standby(
        &self,
        standby: &Standby,
        container: &[u8],
        priority: i16,
        after: i64,
        limit: i64,
    ) -> Result<Vec<Row>, NotThere> {
        if standby
            .resting_until
            .lock()
            .is_some_and(|t| Instant::now() < t)
        {
            return Err(NotThere::Standby("the standby is resting".into()));
        }
        let unreachable = |e: tokio_postgres::Error| {
            standby.conn.failed(&e);
            if connection_lost(&e) {
                *standby.resting_until.lock() = Some(Instant::now() + STANDBY_RETRY);
            }
            NotThere::Standby(e.to_string())
        };
        // Everything committed before now is at or before this position.
        let primary = self.primary.get().await.map_err(NotThere::Primary)?;
        let lsn: String = primary
            .query_one("SELECT pg_current_wal_lsn()::text", &[])
            .await
            .map_err(NotThere::Primary)?
            .get(0);
        let client = standby.conn.get().await.map_err(unreachable)?;
        let deadline = Instant::now() + STANDBY_CATCH_UP;
        loop {
            // NULL on a server not in recovery: not a standby.
            let replayed: Option<bool> = client
                .query_one(
                    "SELECT pg_last_wal_replay_lsn() >= $1::text::pg_lsn",
                    &[&lsn],
                )
                .await
                .map_err(unreachable)?
                .get(0);
            match replayed {
                Some(true) => break,
                None => return Err(NotThere::Standby("the server is not a standby".into())),
                Some(false) if Instant::now() >= deadline => {
                    return Err(NotThere::Standby(format!("the standby is behind {lsn}")));
                }
                Some(false) => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        }
        let rows = client
            .query(PAGE, &[&container, &priority, &after, &limit])
            .await
            .map_err(unreachable)?;
        standby.reads.fetch_add(1, Ordering::Relaxed);
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefer_standby_is_taken_out_of_both_url_forms() {
        let (kv, yes) =
            split_prefer_standby("host=a,b port=1,2 dbname=d target_session_attrs=prefer-standby");
        assert!(yes);
        assert!(kv.parse::<Config>().is_ok(), "{kv}");
        let (uri, yes) =
            split_prefer_standby("postgresql://a:1,b:2/d?target_session_attrs=prefer-standby");
        assert!(yes);
        assert!(uri.parse::<Config>().is_ok(), "{uri}");
        assert_eq!(
            split_prefer_standby("host=a dbname=d"),
            ("host=a dbname=d".to_owned(), false)
        );
    }
}
