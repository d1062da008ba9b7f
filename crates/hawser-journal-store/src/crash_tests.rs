//! Crash consistency of the broker's store (`JournalStore`) on the simulated disk, with
//! the harness of `crash_tests`: sends, acknowledgements, redeliveries, dead-letter moves
//! and producer marks, reclaiming (deleting dead segments, copying live records forward)
//! in between, then a random crash and the real store recovery, from the
//! store's checkpoint when it wrote one (reclaiming and closing do).
//!
//! The checker keeps a model of the store's state after each record the test appended.
//! Records are recovered as a prefix (reclaiming only copies and deletes, which change no
//! state), so the recovered state must be the model's state after some record at or
//! past the last confirmed one: the last synced record the watermark passed (the store's
//! own records, copies and barriers, are all synced). A message a producer was told is
//! safe is therefore never lost, whatever the reclaimer deleted.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use hawser_broker::message::AsMessageData;
use hawser_broker::{
    Destination, MemoryUsage, Message, MessageData, ProducerKey, Recovered, SeqWindow, Store,
    StoreKey, StoreOp,
};

use crate::{JournalStore, JournalStoreError};
use hawser_journal::crash_harness::{end_phase, run_cases, Coverage, Ending};
use hawser_journal::sim_disk::{Rng, SimDisk};
use hawser_journal::{JournalConfig, OpenError, StorageHandle};

const QUEUES: [&str; 3] = ["a", "b", "DLQ"];
const PRODUCERS: [&str; 2] = ["p1", "p2"];

fn config(disk: &SimDisk, segment_bytes: u64) -> JournalConfig {
    JournalConfig {
        segment_bytes,
        storage: StorageHandle::new(disk.clone()),
        ..JournalConfig::new(Path::new("/store"))
    }
}

fn key(name: &str) -> StoreKey {
    StoreKey::Queue(Arc::from(name))
}

fn data(id: u64) -> MessageData {
    MessageData {
        id,
        destination: Destination::queue("a"),
        fields: hawser_broker::MessageFields {
            properties: vec![(
                std::sync::Arc::from("id"),
                hawser_broker::PropertyValue::Long(id as i64),
            )],
            ..Default::default()
        },
        body_kind: hawser_broker::BodyKind::Bytes,
        body: Bytes::from(vec![(id % 251) as u8; 40 + (id as usize * 37) % 260]),
        persistent: true,
        priority: (id % 10) as u8,
        expires_ms: None,
        timestamp_ms: id,
    }
}

fn enqueue(id: u64, targets: Vec<StoreKey>) -> StoreOp {
    StoreOp::Enqueue {
        message: Arc::new(Message::new(data(id), &MemoryUsage::new(u64::MAX))),
        targets,
    }
}

/// The store's state as the checker compares it: messages (with redelivery counts) per
/// container, in order, and producer windows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct State {
    messages: BTreeMap<StoreKey, BTreeMap<u64, u32>>,
    producers: BTreeMap<ProducerKey, SeqWindow>,
}

impl State {
    /// What the store recovered, with its messages read back.
    fn from_recovered(store: &JournalStore, recovered: &Recovered) -> State {
        let mut state = State::default();
        let stored = store.stored_messages().expect("stored messages read back");
        for (key, messages) in &stored {
            let counted: u64 = recovered.pending.get(key).map_or(0, |c| c.iter().sum());
            assert_eq!(counted, messages.len() as u64, "{key:?}: messages counted");
            for (message, count) in messages {
                assert_eq!(
                    message,
                    &data(message.id),
                    "message {} recovered intact",
                    message.id
                );
                state
                    .messages
                    .entry(key.clone())
                    .or_default()
                    .insert(message.id, *count);
            }
        }
        state.messages.retain(|_, m| !m.is_empty());
        state.producers = recovered
            .producers
            .iter()
            .map(|(p, window)| (p.clone(), window.clone()))
            .collect();
        state
    }

    fn apply(&mut self, ops: &[StoreOp]) {
        for op in ops {
            match op {
                StoreOp::Enqueue { message, targets } => {
                    for target in targets {
                        self.messages
                            .entry(target.clone())
                            .or_default()
                            .insert(message.message_data().id, 0);
                    }
                }
                StoreOp::Dequeue { key, id } => {
                    if let Some(m) = self.messages.get_mut(key) {
                        m.remove(id);
                    }
                }
                StoreOp::Redelivered { key, id, count } => {
                    if let Some(c) = self.messages.get_mut(key).and_then(|m| m.get_mut(id)) {
                        *c = *count;
                    }
                }
                StoreOp::ProducerSeen { producer, seq } => {
                    self.producers
                        .entry(producer.clone())
                        .or_default()
                        .insert(*seq);
                }
                StoreOp::ProducerForget { producer } => {
                    self.producers.remove(producer);
                }
                _ => unreachable!("not generated"),
            }
        }
        self.messages.retain(|_, m| !m.is_empty());
    }

    /// A live message, if any: its container and id.
    fn pick(&self, rng: &mut Rng, only: Option<&str>) -> Option<(StoreKey, u64)> {
        let live: Vec<(StoreKey, u64)> = self
            .messages
            .iter()
            .filter(|(k, _)| only.is_none_or(|name| **k == key(name)))
            .flat_map(|(k, m)| m.keys().map(move |id| (k.clone(), *id)))
            .collect();
        (!live.is_empty()).then(|| live[rng.below(live.len() as u64) as usize].clone())
    }
}

/// What a phase appended: each record's seq, whether it was synced, and the state after it.
struct Phase {
    start: State,
    records: Vec<(u64, bool, State)>,
}

impl Phase {
    /// The states the store may recover after a crash in which the watermark had reached
    /// `watermark`: the state after each record from the last confirmed one on.
    fn allowed(&self, watermark: u64) -> Vec<&State> {
        let ours: BTreeMap<u64, bool> = self
            .records
            .iter()
            .map(|(s, sync, _)| (*s, *sync))
            .collect();
        // The highest synced record the watermark passed; seqs not ours are the store's
        // own copies and barriers, all synced.
        let confirmed = (1..=watermark)
            .rev()
            .find(|seq| ours.get(seq).copied().unwrap_or(true))
            .unwrap_or(0);
        let first = self
            .records
            .iter()
            .take_while(|(s, _, _)| *s <= confirmed)
            .count();
        std::iter::once(&self.start)
            .chain(self.records.iter().map(|(_, _, state)| state))
            .skip(first)
            .collect()
    }
}

/// Opens that resumed from a checkpoint (written by reclaiming, or at close).
static FROM_CHECKPOINT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn store_case(seed: u64, coverage: &Coverage) {
    let mut rng = Rng::new(seed);
    let segment_bytes = [512, 1024, 4096][rng.below(3) as usize];
    let mut disk = SimDisk::new();
    let mut next_id = 1;
    let mut allowed: Vec<State> = vec![State::default()];
    let phases = 2 + rng.below(2);
    for phase in 0..phases {
        let crash_in_recovery = phase > 0 && rng.chance(15);
        if crash_in_recovery {
            disk.stop_after(1 + rng.below(6));
        }
        let (store, recovered) = match JournalStore::open(config(&disk, segment_bytes)) {
            Ok(opened) => opened,
            Err(JournalStoreError::Open(OpenError::Io { .. })) if crash_in_recovery => {
                Coverage::add(&coverage.crashed_recoveries, 1);
                disk = end_phase(disk, Ending::PowerLoss, &mut rng, coverage);
                continue;
            }
            Err(e) => panic!("phase {phase}: open failed: {e}"),
        };
        Coverage::add(&coverage.opens, 1);
        if store.opened_from().is_some() {
            FROM_CHECKPOINT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        if crash_in_recovery {
            // The open got through; reading the messages back is the phase's work,
            // unless the stop came meanwhile (a background thread's write): then
            // the crash hit the recovery after all.
            disk.clear_stop();
            if disk.is_stopped() {
                Coverage::add(&coverage.crashed_recoveries, 1);
                drop(store);
                disk = end_phase(disk, Ending::PowerLoss, &mut rng, coverage);
                continue;
            }
        }
        let found = State::from_recovered(&store, &recovered);
        assert!(
            allowed.contains(&found),
            "phase {phase}: recovered {found:?}, which is no state between the last confirmed record and the last appended: {allowed:?}"
        );
        next_id = next_id.max(recovered.max_message_id + 1);
        let ending = Ending::pick(&mut rng);
        if !matches!(ending, Ending::Close) {
            disk.stop_after(1 + rng.below(200));
        }
        let mut run = Phase {
            start: found.clone(),
            records: Vec::new(),
        };
        let mut state = found;
        for _ in 0..1 + rng.below(80) {
            let (ops, sync) = match rng.below(100) {
                // A persistent send with a receipt.
                0..35 => {
                    let targets = match rng.below(4) {
                        0 => vec![key("a"), key("b")],
                        1 => vec![key("b")],
                        _ => vec![key("a")],
                    };
                    next_id += 1;
                    (vec![enqueue(next_id - 1, targets)], rng.chance(90))
                }
                // An acknowledgement, usually without a receipt.
                35..65 => match state.pick(&mut rng, None) {
                    Some((key, id)) => (vec![StoreOp::Dequeue { key, id }], rng.chance(20)),
                    None => continue,
                },
                // A dead-letter move: one record, not synced.
                65..75 => match state.pick(&mut rng, Some("a")) {
                    Some((from, id)) => (
                        vec![
                            StoreOp::Dequeue { key: from, id },
                            enqueue(id, vec![key(QUEUES[2])]),
                        ],
                        false,
                    ),
                    None => continue,
                },
                75..85 => match state.pick(&mut rng, None) {
                    Some((key, id)) => {
                        let count = state.messages[&key][&id] + 1;
                        (vec![StoreOp::Redelivered { key, id, count }], false)
                    }
                    None => continue,
                },
                85..92 => {
                    let producer = ProducerKey {
                        owner: None,
                        client_id: Arc::from("c"),
                        producer: Arc::from(PRODUCERS[rng.below(2) as usize]),
                    };
                    let seq = 1 + rng.below(3000);
                    let op = if rng.chance(80) {
                        StoreOp::ProducerSeen { producer, seq }
                    } else {
                        StoreOp::ProducerForget { producer }
                    };
                    (vec![op], rng.chance(50))
                }
                _ => {
                    let before = store.journal().segments().len();
                    store.reclaim_now();
                    if store.journal().segments().len() < before {
                        Coverage::add(&coverage.reclaims, 1);
                    }
                    continue;
                }
            };
            let Ok(seq) = store.append(ops.clone(), sync) else {
                break;
            };
            state.apply(&ops);
            run.records.push((seq, sync, state.clone()));
            if sync && rng.chance(50) {
                // A producer waiting for its receipt.
                let mut watch = store.durability();
                while watch.borrow_and_update().seq < seq && watch.borrow().failed.is_none() {
                    std::thread::yield_now();
                }
            }
        }
        // A stop asked for during recovery may have been reached by a journal thread
        // after `open` returned: then this phase crashed, whatever it meant to do.
        let closed = matches!(ending, Ending::Close) && !disk.is_stopped() && {
            store.close();
            !disk.is_stopped()
        };
        disk.stop_now();
        let watermark = store.durability().borrow().seq;
        drop(store);
        allowed = if closed {
            vec![state]
        } else {
            run.allowed(watermark).into_iter().cloned().collect()
        };
        disk = end_phase(disk, ending, &mut rng, coverage);
    }
    let (store, recovered) = JournalStore::open(config(&disk, segment_bytes))
        .unwrap_or_else(|e| panic!("final open failed: {e}"));
    let found = State::from_recovered(&store, &recovered);
    assert!(
        allowed.contains(&found),
        "final open: recovered {found:?}, allowed {allowed:?}"
    );
}

#[test]
fn every_confirmed_message_survives_crashes_and_reclaiming() {
    let coverage = Coverage::default();
    run_cases(0x73746f7265, |seed| store_case(seed, &coverage));
    let load =
        |counter: &std::sync::atomic::AtomicU64| counter.load(std::sync::atomic::Ordering::Relaxed);
    eprintln!(
        "store crash cases: {} opens ({} from a checkpoint), {} power losses, {} process crashes, {} crashed recoveries, {} reclaims that deleted segments",
        load(&coverage.opens),
        load(&FROM_CHECKPOINT),
        load(&coverage.power_losses),
        load(&coverage.process_crashes),
        load(&coverage.crashed_recoveries),
        load(&coverage.reclaims),
    );
    if std::env::var("HAWSER_CRASH_SEED").is_err() {
        assert!(load(&coverage.reclaims) > 0, "no case reclaimed a segment");
        assert!(
            load(&FROM_CHECKPOINT) > 0,
            "no case opened from a checkpoint"
        );
    }
}
