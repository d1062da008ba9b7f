//! The tables, made and migrated by the broker when it opens the store.
//!
//! Messages are kept once, whatever number of containers hold them; an
//! entry per container says it holds one (with its redelivery count), so
//! an acknowledgement deletes one small row, and the message goes with its
//! last entry. Everything else the engine recovers (durable subscriptions,
//! producer windows, prepared XA transactions) is a row of bytes in the
//! store's record format, as the journal keeps it: one codec for both.

use tokio_postgres::Client;

/// The schema this build writes. A database of a later version is refused
/// (its broker knows what changed; this one does not).
pub const SCHEMA_VERSION: i32 = 1;

const CREATE: &str = "
CREATE TABLE IF NOT EXISTS hawser_meta (
    id integer PRIMARY KEY CHECK (id = 1),
    schema_version integer NOT NULL,
    max_message_id bigint NOT NULL,
    store_name text NOT NULL
);
CREATE TABLE IF NOT EXISTS hawser_lease (
    id integer PRIMARY KEY CHECK (id = 1),
    holder text NOT NULL,
    epoch bigint NOT NULL,
    renewed timestamptz NOT NULL,
    batch bigint NOT NULL DEFAULT 0
);
ALTER TABLE hawser_lease ADD COLUMN IF NOT EXISTS batch bigint NOT NULL DEFAULT 0;
CREATE TABLE IF NOT EXISTS hawser_messages (
    id bigint PRIMARY KEY,
    persistent boolean NOT NULL,
    data bytea NOT NULL
);
CREATE TABLE IF NOT EXISTS hawser_entries (
    id bigint NOT NULL,
    container bytea NOT NULL,
    priority smallint NOT NULL,
    redeliveries integer NOT NULL,
    PRIMARY KEY (id, container)
);
CREATE INDEX IF NOT EXISTS hawser_entries_by_container
    ON hawser_entries (container, priority, id);
CREATE TABLE IF NOT EXISTS hawser_subscriptions (
    container bytea PRIMARY KEY,
    data bytea NOT NULL
);
CREATE TABLE IF NOT EXISTS hawser_producers (
    producer bytea PRIMARY KEY,
    data bytea NOT NULL
);
CREATE TABLE IF NOT EXISTS hawser_prepared (
    xid text PRIMARY KEY,
    seq bigserial,
    data bytea NOT NULL
);
";

/// Why the schema could not be made.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    /// The database said no.
    #[error("{0}")]
    Database(#[from] tokio_postgres::Error),
    /// Made by a later build.
    #[error("the database holds schema version {0}; this broker knows up to {SCHEMA_VERSION}")]
    Newer(i32),
}

/// Makes the tables if they are missing, in one transaction (two brokers
/// starting at once serialize on the advisory lock).
pub async fn migrate(client: &mut Client) -> Result<(), SchemaError> {
    let tx = client.transaction().await?;
    // An arbitrary constant: Hawser's schema lock.
    tx.execute("SELECT pg_advisory_xact_lock(7273)", &[])
        .await?;
    tx.batch_execute(CREATE).await?;
    let version: Option<i32> = tx
        .query_opt("SELECT schema_version FROM hawser_meta WHERE id = 1", &[])
        .await?
        .map(|r| r.get(0));
    match version {
        None => {
            // The store's name, made once: message ids are unique within it.
            tx.execute(
                "INSERT INTO hawser_meta (id, schema_version, max_message_id, store_name) \
                 VALUES (1, $1, 0, 'pg-' || md5(random()::text || clock_timestamp()::text))",
                &[&SCHEMA_VERSION],
            )
            .await?;
        }
        Some(v) if v > SCHEMA_VERSION => return Err(SchemaError::Newer(v)),
        Some(_) => {}
    }
    tx.commit().await?;
    Ok(())
}
