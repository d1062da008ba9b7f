//! A transaction: sends and acknowledgements buffered until COMMIT or ABORT.
//!
//! A transaction's sends wait in memory until COMMIT makes them one store
//! record, so they are charged to the broker's memory (and their
//! destination's) like stored messages, and their encoded size is summed so
//! that a SEND that would make the COMMIT record too large for the store is
//! refused when it arrives, not at COMMIT.

use crate::container::ContainerKey;
use crate::message::{MessageId, NewMessage};
use crate::publish::Publisher;
use crate::usage::MemoryCharge;

/// An open transaction.
#[derive(Default)]
pub(crate) struct Transaction {
    /// Messages to publish at commit, each with its memory charge.
    pub sends: Vec<(NewMessage, MemoryCharge)>,
    /// Messages acknowledged in it, held until it ends.
    pub acks: Vec<(ContainerKey, MessageId)>,
    /// Upper bound of the commit record's encoded size so far.
    pub record_bytes: usize,
    /// Set when an XA transaction is prepared (or recovered prepared): who
    /// sent its messages, whose they stay whoever commits them (after a
    /// restart, its client id without a connection). `None` while open: the
    /// connection it is on publishes it.
    pub prepared_by: Option<Publisher>,
}

impl Transaction {
    /// Operations buffered (the per-transaction limit counts these).
    pub(crate) fn ops(&self) -> usize {
        self.sends.len() + self.acks.len()
    }
}
