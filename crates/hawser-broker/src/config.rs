//! The engine's settings, with ActiveMQ's defaults where ActiveMQ has one.

use std::sync::Arc;

use crate::access::AccessPolicy;
use crate::destination::{Destination, DestinationPattern};
use crate::usage::DestinationPolicy;

/// ActiveMQ's default queue prefetch.
pub const DEFAULT_PREFETCH: u32 = 1000;
/// ActiveMQ's default `maximumRedeliveries`.
pub const DEFAULT_MAX_REDELIVERIES: u32 = 6;
/// ActiveMQ's shared dead-letter queue.
pub const DEFAULT_DEAD_LETTER_QUEUE: &str = "ActiveMQ.DLQ";
/// Memory held by pending messages before producers are held back: 512 MiB.
pub const DEFAULT_MAX_PENDING_MEMORY_BYTES: u64 = 512 << 20;
/// Bytes of non-persistent messages kept in the store beyond memory before
/// their producers are held: 8 GiB, half the store's default limit
/// (ActiveMQ's `tempUsage`, 50 GB there beside a 100 GB store).
pub const DEFAULT_MAX_TEMP_BYTES: u64 = 8 << 30;
/// Sends plus acks buffered in one transaction.
pub const DEFAULT_MAX_TRANSACTION_OPS: usize = 100_000;
/// Open transactions on one connection.
pub const DEFAULT_MAX_TRANSACTIONS_PER_CONNECTION: usize = 100;
/// Default of [`BrokerConfig::max_prepared_transactions`].
pub const DEFAULT_MAX_PREPARED_TRANSACTIONS: usize = 1000;
/// Subscriptions on one connection.
pub const DEFAULT_MAX_SUBSCRIPTIONS_PER_CONNECTION: usize = 1000;
/// Client-id scoped producers whose windows are remembered for duplicate
/// detection; beyond this the least recently used is forgotten.
pub const DEFAULT_MAX_TRACKED_PRODUCERS: usize = 10_000;
/// Distinct producer ids one connection without client id may use.
pub const DEFAULT_MAX_PRODUCERS_PER_CONNECTION: usize = 1000;
/// Temporary destinations one connection may own.
pub const DEFAULT_MAX_TEMPORARY_DESTINATIONS_PER_CONNECTION: usize = 100;
/// Largest prefetch a subscription gets, whatever it asks for (ActiveMQ's
/// prefetch limits are Java shorts).
pub const DEFAULT_MAX_PREFETCH: u32 = 32_767;

/// Settings of the engine (not of its listeners or store).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerConfig {
    /// This broker's name among its network peers (consumer advisories
    /// carry it; network paths list it).
    pub name: Arc<str>,
    /// The name of the store it serves, kept with the store (message ids
    /// are unique within one store): what network links name its messages by.
    pub store_name: Arc<str>,
    /// Redeliveries after which a message goes to the dead-letter queue.
    pub max_redeliveries: u32,
    /// Name of the dead-letter queue.
    pub dead_letter_queue: String,
    /// Bytes of messages held in memory before producer flow control starts.
    pub max_pending_memory_bytes: u64,
    /// Bytes of non-persistent queue messages the store may keep beyond
    /// memory (ActiveMQ's `tempUsage`): below it such messages spill to the
    /// store rather than hold their producer (see `paging`); at it, their
    /// producers are held as memory holds them. 0: they never spill (memory
    /// holds their producers, as for a store that does not page).
    pub max_temp_bytes: u64,
    /// Sends plus acks one transaction may buffer.
    pub max_transaction_ops: usize,
    /// Open transactions per connection.
    pub max_transactions_per_connection: usize,
    /// XA transactions prepared and not yet resolved, broker-wide: they
    /// outlive their connection, so no per-connection limit bounds them.
    pub max_prepared_transactions: usize,
    /// Subscriptions per connection.
    pub max_subscriptions_per_connection: usize,
    /// Client-id scoped producers remembered for duplicate detection.
    pub max_tracked_producers: usize,
    /// Producer ids a connection without client id may use.
    pub max_producers_per_connection: usize,
    /// Temporary destinations a connection may own.
    pub max_temporary_destinations_per_connection: usize,
    /// Prefetch is capped at this.
    pub max_prefetch: u32,
    /// Per-destination policies, first match wins; destinations matching none
    /// get [`DestinationPolicy::default`] (only the broker-wide limit).
    pub policies: Vec<PolicyEntry>,
    /// Who may read, write and create which destinations (see `access`);
    /// empty: everyone may do everything.
    pub access: AccessPolicy,
    /// Dispatch a persistent message while its store record is being written
    /// (ActiveMQ's `concurrentStoreAndDispatchQueues`, on by default there too).
    /// The producer's receipt still waits for the record to be durable; what
    /// changes is that a consumer may see a message that a crash before the
    /// fsync takes back, whose producer was never told it was safe. Off: a
    /// consumer sees only durable messages, at the cost of one fsync of latency.
    pub concurrent_store_and_dispatch: bool,
    /// With concurrent store and dispatch: confirm a send as soon as a consumer
    /// explicitly acknowledges its message, if that comes before the fsync
    /// (as ActiveMQ and RabbitMQ do). The broker then holds nothing a crash
    /// could lose; see [`crate::consumed`]. Off: every receipt waits for the disk.
    pub confirm_consumed: bool,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            name: Arc::from("hawser"),
            store_name: Arc::from("hawser"),
            max_redeliveries: DEFAULT_MAX_REDELIVERIES,
            dead_letter_queue: DEFAULT_DEAD_LETTER_QUEUE.to_owned(),
            max_pending_memory_bytes: DEFAULT_MAX_PENDING_MEMORY_BYTES,
            max_temp_bytes: DEFAULT_MAX_TEMP_BYTES,
            max_transaction_ops: DEFAULT_MAX_TRANSACTION_OPS,
            max_transactions_per_connection: DEFAULT_MAX_TRANSACTIONS_PER_CONNECTION,
            max_prepared_transactions: DEFAULT_MAX_PREPARED_TRANSACTIONS,
            max_subscriptions_per_connection: DEFAULT_MAX_SUBSCRIPTIONS_PER_CONNECTION,
            max_tracked_producers: DEFAULT_MAX_TRACKED_PRODUCERS,
            max_producers_per_connection: DEFAULT_MAX_PRODUCERS_PER_CONNECTION,
            max_temporary_destinations_per_connection:
                DEFAULT_MAX_TEMPORARY_DESTINATIONS_PER_CONNECTION,
            max_prefetch: DEFAULT_MAX_PREFETCH,
            policies: Vec::new(),
            access: AccessPolicy::default(),
            concurrent_store_and_dispatch: true,
            confirm_consumed: true,
        }
    }
}

/// A policy for the destinations a pattern matches (ActiveMQ's `policyEntry`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyEntry {
    /// Which destinations it applies to.
    pub pattern: DestinationPattern,
    /// What they get.
    pub policy: DestinationPolicy,
}

impl BrokerConfig {
    /// The policy of a destination: the first entry that matches it.
    pub fn policy_for(&self, d: &Destination) -> DestinationPolicy {
        self.policies
            .iter()
            .find(|e| e.pattern.matches(d))
            .map(|e| e.policy)
            .unwrap_or_default()
    }
}
