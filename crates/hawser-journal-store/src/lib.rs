//! The broker's [`Store`](hawser_broker::Store) on Hawser's own journal: the
//! default, embedded store. The journal (`hawser_journal`) knows only byte
//! records; this crate gives them the engine's meaning (`hawser_broker`'s store
//! ops), so that neither of the two depends on the other's insides.
//!
//! - `store`: [`JournalStore`]: appends, the durability watermark, recovery,
//!   and reclaiming segments nobody needs.
//! - `tracker`: which records are live, and where; `level`: the index of
//!   messages in it, a few bytes each.
//! - `checkpoint`: the tracker saved, so that opening replays only what follows.
//! - `reclaim_tests`, `crash_tests`: reclaiming, and crash consistency of the
//!   store on the journal's simulated disk (`hawser_journal`'s `sim-disk` feature).

mod checkpoint;
mod level;
mod store;
mod tracker;

#[cfg(test)]
mod checkpoint_tests;
#[cfg(test)]
mod crash_tests;
#[cfg(test)]
mod reclaim_tests;
#[cfg(test)]
mod spill_tests;

pub use checkpoint::{inspect_checkpoint, CheckpointSummary};
pub use store::{JournalStore, JournalStoreError};
