//! Checkpoints against replaying: whatever the records, wherever checkpoints
//! fell among them and whatever reclaiming deleted, a store opened from its
//! checkpoint recovers exactly what one replaying the whole journal does
//! (`JournalStore::open_replaying_all`), and reads back the same messages.
//! Each case copies the directory of a running store (a crash image) and
//! opens the copy both ways.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use hawser_broker::{
    Destination, DurableSubscription, MemoryUsage, Message, MessageData, PreparedSend,
    PreparedTransaction, ProducerKey, Recovered, Store, StoreKey, StoreOp,
};
use hawser_journal::JournalConfig;
use proptest::prelude::*;

use crate::JournalStore;

#[derive(Clone, Debug)]
enum Step {
    /// A persistent send to the containers in the mask (queue a, queue b, the durable).
    Send {
        mask: u8,
        priority: u8,
        len: usize,
    },
    /// A non-persistent message spilled to queue a: no open recovers it.
    Spill {
        priority: u8,
        len: usize,
    },
    Ack(prop::sample::Index),
    Redeliver(prop::sample::Index),
    Subscribe {
        selector: bool,
    },
    Unsubscribe,
    ProducerSeen {
        producer: u8,
        seq: u64,
    },
    ProducerForget {
        producer: u8,
    },
    Prepare(prop::sample::Index),
    Resolve,
    /// An operator's purge of queue a, keeping one live entry (as if out
    /// with a consumer) when `keep` and it has one.
    Purge {
        keep: Option<prop::sample::Index>,
    },
    Checkpoint,
    Reclaim,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => (1u8..8, 0u8..10, 0usize..700).prop_map(|(mask, priority, len)| Step::Send { mask, priority, len }),
        2 => (0u8..10, 0usize..700).prop_map(|(priority, len)| Step::Spill { priority, len }),
        4 => any::<prop::sample::Index>().prop_map(Step::Ack),
        1 => any::<prop::sample::Index>().prop_map(Step::Redeliver),
        1 => any::<bool>().prop_map(|selector| Step::Subscribe { selector }),
        1 => Just(Step::Unsubscribe),
        1 => (0u8..3, 1u64..500).prop_map(|(producer, seq)| Step::ProducerSeen { producer, seq }),
        1 => (0u8..3).prop_map(|producer| Step::ProducerForget { producer }),
        1 => any::<prop::sample::Index>().prop_map(Step::Prepare),
        1 => Just(Step::Resolve),
        1 => proptest::option::of(any::<prop::sample::Index>()).prop_map(|keep| Step::Purge { keep }),
        1 => Just(Step::Checkpoint),
        1 => Just(Step::Reclaim),
    ]
}

fn durable() -> StoreKey {
    StoreKey::Durable {
        client_id: Arc::from("c"),
        name: Arc::from("d"),
    }
}

fn keys(mask: u8) -> Vec<StoreKey> {
    let all = [
        StoreKey::Queue(Arc::from("a")),
        StoreKey::Queue(Arc::from("b")),
        durable(),
    ];
    (0..3)
        .filter(|i| mask & (1 << i) != 0)
        .map(|i| all[i].clone())
        .collect()
}

fn data(id: u64, priority: u8, len: usize) -> MessageData {
    MessageData {
        id,
        destination: Destination::queue("a"),
        fields: hawser_broker::MessageFields::default(),
        body_kind: hawser_broker::BodyKind::Bytes,
        body: Bytes::from(vec![(id % 251) as u8; len]),
        persistent: true,
        priority,
        expires_ms: None,
        timestamp_ms: id,
    }
}

fn producer(n: u8) -> ProducerKey {
    ProducerKey {
        owner: None,
        client_id: Arc::from("c"),
        producer: Arc::from(format!("p{n}")),
    }
}

/// Runs `steps` on a store in `dir`; returns whether a checkpoint was written.
fn run(dir: &Path, steps: &[Step]) -> bool {
    let (store, _) = JournalStore::open(config(dir)).unwrap();
    let mut live: Vec<(StoreKey, u64)> = Vec::new();
    let mut next_id = 1;
    let mut prepared: Vec<Arc<str>> = Vec::new();
    let mut checkpointed = false;
    let mut last = 0;
    for (i, s) in steps.iter().enumerate() {
        let ops = match s {
            Step::Send {
                mask,
                priority,
                len,
            } => {
                next_id += 1;
                let targets = keys(*mask);
                live.extend(targets.iter().map(|k| (k.clone(), next_id)));
                vec![StoreOp::Enqueue {
                    message: Arc::new(Message::new(
                        data(next_id, *priority, *len),
                        &MemoryUsage::new(u64::MAX),
                    )),
                    targets,
                }]
            }
            Step::Spill { priority, len } => {
                next_id += 1;
                let key = StoreKey::Queue(Arc::from("a"));
                live.push((key.clone(), next_id));
                let mut m = data(next_id, *priority, *len);
                m.persistent = false;
                vec![StoreOp::Enqueue {
                    message: Arc::new(Message::new(m, &MemoryUsage::new(u64::MAX))),
                    targets: vec![key],
                }]
            }
            Step::Ack(pick) if !live.is_empty() => {
                let (key, id) = live.swap_remove(pick.index(live.len()));
                vec![StoreOp::Dequeue { key, id }]
            }
            Step::Redeliver(pick) if !live.is_empty() => {
                let (key, id) = live[pick.index(live.len())].clone();
                vec![StoreOp::Redelivered {
                    key,
                    id,
                    count: i as u32,
                }]
            }
            Step::Subscribe { selector } => vec![StoreOp::Subscribe(DurableSubscription {
                owner: None,
                client_id: Arc::from("c"),
                name: Arc::from("d"),
                topic: Arc::from("t"),
                selector: selector.then(|| format!("n > {i}")),
                no_local: false,
            })],
            Step::Unsubscribe => {
                live.retain(|(k, _)| *k != durable());
                vec![StoreOp::Unsubscribe {
                    client_id: Arc::from("c"),
                    name: Arc::from("d"),
                }]
            }
            Step::ProducerSeen { producer: p, seq } => vec![StoreOp::ProducerSeen {
                producer: producer(*p),
                seq: *seq,
            }],
            Step::ProducerForget { producer: p } => vec![StoreOp::ProducerForget {
                producer: producer(*p),
            }],
            Step::Prepare(pick) => {
                let xid: Arc<str> = Arc::from(format!("x{i}"));
                prepared.push(Arc::clone(&xid));
                let acks = if live.is_empty() {
                    Vec::new()
                } else {
                    vec![live[pick.index(live.len())].clone()]
                };
                vec![StoreOp::Prepare(PreparedTransaction {
                    owner: None,
                    xid,
                    client_id: Some(Arc::from("c")),
                    sends: vec![PreparedSend {
                        message: data(0, 4, 10),
                        producer: None,
                    }],
                    acks,
                })]
            }
            Step::Resolve if !prepared.is_empty() => vec![StoreOp::Resolve {
                xid: prepared.remove(0),
            }],
            Step::Purge { keep } => {
                let key = StoreKey::Queue(Arc::from("a"));
                let mine: Vec<u64> = live
                    .iter()
                    .filter(|(k, _)| *k == key)
                    .map(|(_, id)| *id)
                    .collect();
                let keep: Vec<u64> = match keep {
                    Some(pick) if !mine.is_empty() => vec![mine[pick.index(mine.len())]],
                    _ => Vec::new(),
                };
                live.retain(|(k, id)| *k != key || keep.contains(id));
                vec![StoreOp::Purge { key, keep }]
            }
            Step::Checkpoint => {
                store.checkpoint_now().unwrap();
                checkpointed = true;
                continue;
            }
            Step::Reclaim => {
                store.reclaim_now();
                continue;
            }
            _ => continue,
        };
        last = store.append(ops, i % 3 == 0).unwrap();
    }
    // Everything durable, then the image is taken as it is: a crash.
    let barrier = store.append(Vec::new(), true).unwrap().max(last);
    let mut watch = store.durability();
    while watch.borrow_and_update().seq < barrier {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    copy_dir(dir, &dir.with_extension("image"));
    drop(store);
    checkpointed
}

fn config(dir: &Path) -> JournalConfig {
    JournalConfig {
        segment_bytes: 2048,
        preallocate: false,
        ..JournalConfig::new(dir)
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

/// What a store recovered, in a comparable form, with its messages read back.
#[derive(Debug, PartialEq)]
struct Found {
    pending: BTreeMap<String, Vec<u64>>,
    held: Vec<String>,
    subscriptions: Vec<String>,
    max_message_id: u64,
    producers: BTreeMap<String, String>,
    prepared: Vec<String>,
    messages: BTreeMap<String, Vec<String>>,
    segment_holds: Vec<(u64, u64, u64)>,
}

fn found(store: &JournalStore, r: &Recovered) -> Found {
    let show = |k: &StoreKey| format!("{k:?}");
    let mut held: Vec<String> = r.held.iter().map(|h| format!("{h:?}")).collect();
    held.sort();
    let mut subscriptions: Vec<String> = r.subscriptions.iter().map(|s| format!("{s:?}")).collect();
    subscriptions.sort();
    Found {
        pending: r
            .pending
            .iter()
            .map(|(k, c)| (show(k), c.to_vec()))
            .collect(),
        held,
        subscriptions,
        max_message_id: r.max_message_id,
        producers: r
            .producers
            .iter()
            .map(|(p, w)| (format!("{p:?}"), format!("{w:?}")))
            .collect(),
        prepared: r.prepared.iter().map(|p| format!("{p:?}")).collect(),
        messages: store
            .stored_messages()
            .unwrap()
            .iter()
            .map(|(k, m)| (show(k), m.iter().map(|m| format!("{m:?}")).collect()))
            .collect(),
        segment_holds: store.segment_holds(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn opening_from_a_checkpoint_recovers_what_replaying_everything_does(
        steps in prop::collection::vec(step(), 1..150),
    ) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("store");
        let checkpointed = run(&dir, &steps);
        let image = dir.with_extension("image");
        let replayed = {
            let copy = tmp.path().join("replayed");
            copy_dir(&image, &copy);
            let (store, r) = JournalStore::open_replaying_all(config(&copy)).unwrap();
            prop_assert!(store.opened_from().is_none());
            found(&store, &r)
        };
        let (store, r) = JournalStore::open(config(&image)).unwrap();
        let on_disk = image.join(crate::checkpoint::FILE).exists();
        prop_assert!(on_disk || !checkpointed);
        prop_assert_eq!(store.opened_from().is_some(), on_disk);
        prop_assert_eq!(&found(&store, &r), &replayed);
        // No open recovers a spilled message.
        prop_assert!(store.stored_messages().unwrap().values().flatten().all(|(m, _)| m.persistent));
        prop_assert_eq!(store.spilled_bytes(), 0);
        // And once more, from the checkpoint its close wrote.
        drop(store);
        let (store, r) = JournalStore::open(config(&image)).unwrap();
        prop_assert!(store.opened_from().is_some());
        prop_assert_eq!(found(&store, &r), replayed);
    }
}

#[test]
fn a_checkpoint_larger_than_its_chunks_reads_back_whole() {
    // 300,000 messages: a checkpoint of about 1.5 MiB, written in pieces of
    // 1 MiB (`CHUNK_BYTES`), with its checksum running across them.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let config = JournalConfig {
        preallocate: false,
        ..JournalConfig::new(&dir)
    };
    let (store, _) = JournalStore::open(config.clone()).unwrap();
    let queue = StoreKey::Queue(Arc::from("big"));
    let mut id = 0;
    for _ in 0..300 {
        let ops: Vec<StoreOp> = (0..1000)
            .map(|_| {
                id += 1;
                StoreOp::Enqueue {
                    message: Arc::new(Message::new(
                        data(id, (id % 3) as u8, 16),
                        &MemoryUsage::new(u64::MAX),
                    )),
                    targets: vec![queue.clone()],
                }
            })
            .collect();
        store.append(ops, false).unwrap();
    }
    store.checkpoint_now().unwrap();
    let size = std::fs::metadata(dir.join(crate::checkpoint::FILE))
        .unwrap()
        .len();
    assert!(size > 1 << 20, "a checkpoint of {size} bytes is one chunk");
    let summary =
        crate::inspect_checkpoint(&std::fs::read(dir.join(crate::checkpoint::FILE)).unwrap())
            .unwrap();
    assert_eq!(summary.pending, 300_000);
    drop(store);
    let (store, recovered) = JournalStore::open(config).unwrap();
    assert!(store.opened_from().is_some());
    assert_eq!(recovered.pending_total(), 300_000);
    assert_eq!(recovered.max_message_id, 300_000);
    let stored = store.stored_messages().unwrap();
    let ids: Vec<u64> = stored[&queue].iter().map(|(m, _)| m.id).collect();
    assert_eq!(ids, (1..=300_000).collect::<Vec<u64>>());
}
