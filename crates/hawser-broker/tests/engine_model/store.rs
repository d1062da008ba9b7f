//! The store of the model: records in memory, durable up to a watermark,
//! refusing on demand.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use hawser_broker::{
    Durability, DurabilityWatch, MessageData, MessageId, ReadFuture, ReadLimit, Recovered, Replay,
    Seq, Store, StoreError, StoreKey, StoreOp,
};
use parking_lot::Mutex;

#[derive(Default)]
pub(crate) struct ModelStore {
    /// Every record appended, with its sequence.
    pub(crate) records: Mutex<Vec<(Seq, Vec<StoreOp<MessageData>>)>>,
    /// Records up to here survive a crash.
    pub(crate) durable: Mutex<Seq>,
    /// Appends fail while set (a failed disk; cleared by a restart).
    pub(crate) failed: AtomicBool,
    /// The last sequence handed out.
    pub(crate) last: Mutex<Seq>,
    pub(crate) durability: Mutex<Option<tokio::sync::watch::Sender<Durability>>>,
}

impl ModelStore {
    pub(crate) fn new() -> Arc<ModelStore> {
        let s = ModelStore::default();
        *s.durability.lock() = Some(tokio::sync::watch::channel(Durability::default()).0);
        Arc::new(s)
    }

    pub(crate) fn flush(&self) -> Seq {
        let last = *self.last.lock();
        *self.durable.lock() = last;
        last
    }

    pub(crate) fn durable(&self) -> Seq {
        *self.durable.lock()
    }

    /// Drops what is not durable, as a crash does.
    pub(crate) fn crash(&self) {
        let durable = self.durable();
        self.records.lock().retain(|(s, _)| *s <= durable);
        self.failed.store(false, Ordering::SeqCst);
    }

    fn replay(&self) -> Replay {
        let mut replay = Replay::new();
        for (_, ops) in self.records.lock().iter() {
            replay.apply(ops.clone());
        }
        replay
    }

    /// [`Store::read`], at once.
    pub(crate) fn read_now(
        &self,
        key: &StoreKey,
        priority: u8,
        after: MessageId,
        limit: ReadLimit,
    ) -> Vec<hawser_broker::StoredMessage> {
        self.replay().read(key, priority, after, limit)
    }

    /// What the journal's replay recovers from the records; as the
    /// journal's open, drops the spilled non-persistent messages.
    pub(crate) fn recover(&self) -> Recovered {
        for (_, ops) in self.records.lock().iter_mut() {
            hawser_broker::forget_spilled(ops);
        }
        self.replay().into_recovered()
    }
}

impl Store for ModelStore {
    fn pages(&self) -> bool {
        true
    }
    fn read(&self, key: &StoreKey, priority: u8, after: MessageId, limit: ReadLimit) -> ReadFuture {
        let read = self.read_now(key, priority, after, limit);
        Box::pin(std::future::ready(Ok(read)))
    }
    fn append(&self, ops: Vec<StoreOp>, _sync: bool) -> Result<Seq, StoreError> {
        if self.failed.load(Ordering::SeqCst) {
            return Err(StoreError::Failed("the model's disk failed".into()));
        }
        let mut last = self.last.lock();
        *last += 1;
        self.records
            .lock()
            .push((*last, ops.iter().map(StoreOp::to_data).collect()));
        Ok(*last)
    }
    fn durability(&self) -> DurabilityWatch {
        self.durability.lock().as_ref().unwrap().subscribe()
    }
    fn disk_bytes(&self) -> u64 {
        0
    }
    fn close(&self) {}
}
