//! Helpers shared by the engine's unit tests: stores that record (and refuse)
//! records, and message and subscription builders.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;

use crate::outbox::test_support::Recorder;
use crate::store::{Durability, DurabilityWatch, MemoryStore};
use crate::*;

/// A store that remembers every record, so tests can replay them as recovery
/// would; it refuses records while `refuse` is set, and above `max_record`.
#[derive(Default)]
pub(crate) struct RecordingStore {
    pub records: Mutex<Vec<(Vec<StoreOp<MessageData>>, bool)>>,
    durability: Mutex<Option<tokio::sync::watch::Sender<Durability>>>,
    /// Appends fail while set.
    pub refuse: AtomicBool,
    /// The largest record taken (0: no limit).
    pub max_record: AtomicUsize,
}

impl RecordingStore {
    pub(crate) fn new() -> Arc<RecordingStore> {
        let s = RecordingStore::default();
        *s.durability.lock() = Some(tokio::sync::watch::channel(Durability::default()).0);
        Arc::new(s)
    }

    pub(crate) fn ops(&self) -> Vec<StoreOp<MessageData>> {
        self.records
            .lock()
            .iter()
            .flat_map(|(ops, _)| ops.clone())
            .collect()
    }

    fn replay(&self) -> Replay {
        let mut replay = Replay::new();
        replay.apply(self.ops());
        replay
    }

    /// What a store would recover from these records; as a store's open,
    /// drops the spilled non-persistent messages (see `Store::pages`).
    pub(crate) fn recover(&self) -> Recovered {
        for (ops, _) in self.records.lock().iter_mut() {
            forget_spilled(ops);
        }
        self.replay().into_recovered()
    }

    /// The messages stored for `key`, in id order, with their redelivery counts.
    pub(crate) fn stored(&self, key: &StoreKey) -> Vec<StoredMessage> {
        let replay = self.replay();
        let mut all: Vec<StoredMessage> = (0..PRIORITIES as u8)
            .flat_map(|p| replay.read(key, p, 0, ReadLimit::ALL))
            .collect();
        all.sort_by_key(|(m, _)| m.id);
        all
    }

    /// Every message stored, in no particular order.
    pub(crate) fn stored_all(&self) -> Vec<StoredMessage> {
        let recovered = self.replay().into_recovered();
        recovered
            .pending
            .keys()
            .flat_map(|k| self.stored(k))
            .collect()
    }
}

/// A broker restarted on `store`: recovered from its records, with the
/// first batch of each container read back (what the pager task does in a
/// server).
pub(crate) fn restarted(config: BrokerConfig, store: &Arc<RecordingStore>) -> Broker {
    let b = Broker::new(config, store.clone(), store.recover());
    page_in(&b);
    b
}

/// Serves every read the broker asked for, until it asks for no more.
pub(crate) fn page_in(b: &Broker) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    rt.block_on(async { while b.page_in().await > 0 {} });
}

impl Store for RecordingStore {
    fn pages(&self) -> bool {
        true
    }
    fn read(&self, key: &StoreKey, priority: u8, after: MessageId, limit: ReadLimit) -> ReadFuture {
        let read = self.replay().read(key, priority, after, limit);
        Box::pin(std::future::ready(Ok(read)))
    }
    fn append(&self, ops: Vec<StoreOp>, sync: bool) -> Result<Seq, StoreError> {
        if self.refuse.load(Ordering::SeqCst) {
            return Err(StoreError::Failed("refused by the test".into()));
        }
        let mut r = self.records.lock();
        r.push((ops.iter().map(StoreOp::to_data).collect(), sync));
        Ok(r.len() as u64)
    }
    fn durability(&self) -> DurabilityWatch {
        self.durability.lock().as_ref().unwrap().subscribe()
    }
    fn disk_bytes(&self) -> u64 {
        0
    }
    fn max_record_bytes(&self) -> usize {
        match self.max_record.load(Ordering::SeqCst) {
            0 => u32::MAX as usize,
            max => max,
        }
    }
    fn close(&self) {}
}

pub(crate) fn msg(dest: Destination, body: &str, persistent: bool) -> NewMessage {
    let mut m = NewMessage::new(dest, Bytes::from(body.to_owned()));
    m.persistent = persistent;
    m
}

pub(crate) fn spec(id: &str, dest: Destination, ack_mode: AckMode) -> SubscribeSpec {
    SubscribeSpec {
        id: Arc::from(id),
        destination: dest,
        ack_mode,
        prefetch: 100,
        selector: None,
        exclusive: false,
        durable_name: None,
        no_local: false,
        priority: 0,
        network_path: None,
    }
}

pub(crate) fn bodies(rec: &Recorder) -> Vec<String> {
    rec.deliveries
        .lock()
        .iter()
        .map(|d| String::from_utf8(d.message.body.to_vec()).unwrap())
        .collect()
}

pub(crate) fn memory_broker() -> Broker {
    Broker::new(
        BrokerConfig::default(),
        Arc::new(MemoryStore::new()),
        Recovered::default(),
    )
}

pub(crate) fn from_producer(dest: Destination, body: &str, producer: &str, seq: u64) -> NewMessage {
    NewMessage {
        producer: Some(ProducerRef {
            id: Arc::from(producer),
            seq,
        }),
        ..msg(dest, body, true)
    }
}
