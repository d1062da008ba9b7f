//! Master/slave through the database: the lease row `hawser_lease`
//! (holder, epoch, renewed), judged by the database's clock.
//!
//! A standby polls: it takes the row when its lease ran out by the
//! database's `now()` (no broker's clock is trusted), or when it names
//! this broker (a restart of the holder), with the next epoch. The master
//! renews it on a timer; a renewal that finds another epoch, or none that
//! succeeds within the lease by this broker's own monotonic clock, loses
//! mastership. Losing it is not what keeps the data safe: every write
//! transaction of the store checks the epoch first (the fence), so a master
//! paused past its lease and resumed writes and confirms nothing.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hawser_ha::{Acquired, Election, Fence, Mastership, Role};
use parking_lot::Mutex;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use tokio_postgres::Client;

use crate::{connect_read_write, schema};

/// How a broker competes for the store.
#[derive(Clone, Debug)]
pub struct PgLeaseSettings {
    /// The database (libpq's connection string).
    pub url: String,
    /// This broker's name in the lease row.
    pub node: String,
    /// How long a renewal holds.
    pub lease: Duration,
    /// How often the master renews.
    pub renew: Duration,
    /// How often a standby looks.
    pub poll: Duration,
}

/// Becoming master of a PostgreSQL store.
pub struct PgElection {
    settings: PgLeaseSettings,
}

impl PgElection {
    /// An election among the brokers of one database.
    pub fn new(settings: PgLeaseSettings) -> PgElection {
        PgElection { settings }
    }
}

/// Takes the lease if it is free, ran out, or is this broker's: the new
/// epoch, or the holder's epoch if not. The connection is kept for the
/// next poll (and dropped after an error).
async fn try_take(
    s: &PgLeaseSettings,
    client: &mut Option<Client>,
) -> Result<Result<i64, i64>, String> {
    if client.is_none() {
        let mut c = connect_read_write(&s.url)
            .await
            .map_err(|e| e.to_string())?;
        schema::migrate(&mut c).await.map_err(|e| e.to_string())?;
        *client = Some(c);
    }
    let c = client.as_ref().expect("connected");
    let lease_s = s.lease.as_secs_f64();
    let result = async {
        let taken = c
            .query_opt(
                "INSERT INTO hawser_lease (id, holder, epoch, renewed) VALUES (1, $1, 1, now()) \
                 ON CONFLICT (id) DO UPDATE \
                 SET holder = excluded.holder, epoch = hawser_lease.epoch + 1, renewed = now() \
                 WHERE hawser_lease.renewed < now() - make_interval(secs => $2) \
                    OR hawser_lease.holder = $1 \
                 RETURNING epoch",
                &[&s.node, &lease_s],
            )
            .await?;
        if let Some(row) = taken {
            return Ok(Ok(row.get(0)));
        }
        let epoch: i64 = c
            .query_one("SELECT epoch FROM hawser_lease WHERE id = 1", &[])
            .await?
            .get(0);
        Ok(Err(epoch))
    }
    .await;
    result.map_err(|e: tokio_postgres::Error| {
        *client = None;
        e.to_string()
    })
}

impl Election for PgElection {
    fn acquire<'a>(
        &'a self,
        role: &'a watch::Sender<Role>,
        shutdown: &'a CancellationToken,
    ) -> Acquired<'a> {
        Box::pin(async move {
            let mut logged = false;
            let mut client = None;
            loop {
                match try_take(&self.settings, &mut client).await {
                    Ok(Ok(epoch)) => {
                        tracing::info!(epoch, node = %self.settings.node, "postgres lease taken: master");
                        return Ok(Some(
                            Box::new(PgMastership::start(self.settings.clone(), epoch))
                                as Box<dyn Mastership>,
                        ));
                    }
                    Ok(Err(epoch)) => {
                        role.send_replace(Role::Slave {
                            epoch: epoch.max(0) as u64,
                        });
                    }
                    Err(e) => {
                        if !logged {
                            tracing::warn!("postgres lease: {e}; trying again");
                            logged = true;
                        }
                    }
                }
                tokio::select! {
                    _ = shutdown.cancelled() => return Ok(None),
                    _ = tokio::time::sleep(self.settings.poll) => {}
                }
            }
        })
    }
}

/// Being master of one epoch of the database's lease.
pub struct PgMastership {
    settings: PgLeaseSettings,
    epoch: i64,
    lost: CancellationToken,
    fenced: Arc<AtomicBool>,
    reason: Arc<Mutex<Option<String>>>,
    stop: CancellationToken,
}

impl PgMastership {
    fn start(settings: PgLeaseSettings, epoch: i64) -> PgMastership {
        let m = PgMastership {
            settings: settings.clone(),
            epoch,
            lost: CancellationToken::new(),
            fenced: Arc::new(AtomicBool::new(false)),
            reason: Arc::new(Mutex::new(None)),
            stop: CancellationToken::new(),
        };
        let (lost, fenced, reason, stop) = (
            m.lost.clone(),
            Arc::clone(&m.fenced),
            Arc::clone(&m.reason),
            m.stop.clone(),
        );
        tokio::spawn(async move {
            let lose = |why: String| {
                tracing::error!("postgres lease lost: {why}");
                *reason.lock() = Some(why);
                fenced.store(true, Ordering::SeqCst);
                lost.cancel();
            };
            let mut renewed_at = Instant::now();
            let mut client = None;
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(settings.renew) => {}
                }
                if client.is_none() {
                    client = connect_read_write(&settings.url).await.ok();
                }
                let result = match &client {
                    Some(c) => c
                        .execute(
                            "UPDATE hawser_lease SET renewed = now() WHERE id = 1 AND epoch = $1",
                            &[&epoch],
                        )
                        .await
                        .map_err(|e| e.to_string()),
                    None => Err("cannot reach the database".into()),
                };
                match result {
                    Ok(1) => renewed_at = Instant::now(),
                    Ok(_) => {
                        return lose(format!(
                            "another broker holds the lease (after epoch {epoch})"
                        ))
                    }
                    Err(e) => {
                        client = None;
                        // Its own clock, which may only run late: by then
                        // a standby may have taken the lease.
                        if renewed_at.elapsed() >= settings.lease {
                            return lose(format!("not renewed within the lease: {e}"));
                        }
                    }
                }
            }
        });
        m
    }
}

impl Mastership for PgMastership {
    fn epoch(&self) -> u64 {
        self.epoch.max(0) as u64
    }

    fn fence(&self) -> Fence {
        let fenced = Arc::clone(&self.fenced);
        Fence::new(move || {
            if fenced.load(Ordering::SeqCst) {
                Err("the postgres lease was lost".into())
            } else {
                Ok(())
            }
        })
    }

    fn watch(&self) -> CancellationToken {
        self.lost.clone()
    }

    fn lost_reason(&self) -> Option<String> {
        self.reason.lock().clone()
    }

    /// Lets the lease run out now, so that a standby takes over at once.
    fn step_down(self: Box<Self>) {
        self.stop.cancel();
        let (url, epoch) = (self.settings.url.clone(), self.epoch);
        tokio::spawn(async move {
            if let Ok(c) = connect_read_write(&url).await {
                let _ = c
                    .execute(
                        "UPDATE hawser_lease SET renewed = '-infinity' WHERE id = 1 AND epoch = $1",
                        &[&epoch],
                    )
                    .await;
            }
        });
    }
}

impl Drop for PgMastership {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}
