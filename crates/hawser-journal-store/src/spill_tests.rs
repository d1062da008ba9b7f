//! Non-persistent messages spilled beyond memory (see `Spilled`): read back
//! among the persistent ones in id order, counted for the temporary store's
//! limit, and dropped by every open, after which their segments go.

use std::sync::Arc;

use bytes::Bytes;
use hawser_broker::{
    Destination, MemoryUsage, Message, MessageData, ReadLimit, Store, StoreKey, StoreOp,
};
use hawser_journal::JournalConfig;

use crate::JournalStore;

fn message(id: u64, persistent: bool) -> StoreOp {
    StoreOp::Enqueue {
        message: Arc::new(Message::new(
            MessageData {
                id,
                destination: Destination::queue("q"),
                fields: hawser_broker::MessageFields::default(),
                body_kind: hawser_broker::BodyKind::Bytes,
                body: Bytes::from(vec![b'x'; 200]),
                persistent,
                priority: 4,
                expires_ms: None,
                timestamp_ms: 1,
            },
            &MemoryUsage::new(u64::MAX),
        )),
        targets: vec![queue()],
    }
}

fn queue() -> StoreKey {
    StoreKey::Queue(Arc::from("q"))
}

fn read(store: &JournalStore, after: u64, messages: usize) -> Vec<(u64, bool)> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(store.read(
        &queue(),
        4,
        after,
        ReadLimit {
            messages,
            bytes: u64::MAX,
        },
    ))
    .unwrap()
    .into_iter()
    .map(|(m, _)| (m.id, m.persistent))
    .collect()
}

fn config(dir: &std::path::Path) -> JournalConfig {
    JournalConfig {
        segment_bytes: 4096,
        preallocate: false,
        ..JournalConfig::new(dir)
    }
}

fn durable(store: &JournalStore) {
    let seq = store.append(Vec::new(), true).unwrap();
    let mut watch = store.durability();
    while watch.borrow_and_update().seq < seq {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

#[test]
fn spilled_messages_are_read_in_order_counted_and_dropped_by_the_next_open() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, _) = JournalStore::open(config(tmp.path())).unwrap();
    // Persistent and spilled messages interleaved, ids rising.
    for id in 1..=40u64 {
        store
            .append(vec![message(id, id % 2 == 0)], id % 2 == 0)
            .unwrap();
    }
    assert_eq!(
        read(&store, 0, 6),
        vec![
            (1, false),
            (2, true),
            (3, false),
            (4, true),
            (5, false),
            (6, true)
        ],
        "one read, both kinds, in id order"
    );
    assert_eq!(read(&store, 35, 100).len(), 5);
    let spilled = store.spilled_bytes();
    assert!(
        spilled >= 20 * 200,
        "the 20 spilled messages are counted: {spilled}"
    );
    // Read back, a spilled message is dequeued: it no longer counts.
    store
        .append(
            vec![StoreOp::Dequeue {
                key: queue(),
                id: 1,
            }],
            false,
        )
        .unwrap();
    assert!(store.spilled_bytes() < spilled);
    assert_eq!(read(&store, 0, 1), vec![(2, true)]);
    durable(&store);
    let segments = store.journal().segments().len();
    assert!(segments > 2, "the records span {segments} segments");
    // A crash: the next open drops every spilled message, from a full replay
    // or from a checkpoint alike.
    store.checkpoint_now().unwrap();
    for id in 41..=60u64 {
        store.append(vec![message(id, false)], false).unwrap();
    }
    durable(&store);
    let image = tmp.path().with_extension("image");
    std::fs::create_dir_all(&image).unwrap();
    for e in std::fs::read_dir(tmp.path()).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), image.join(e.file_name())).unwrap();
    }
    drop(store);
    for (dir, replay_all) in [(tmp.path(), false), (image.as_path(), true)] {
        let (store, recovered) = if replay_all {
            JournalStore::open_replaying_all(config(dir)).unwrap()
        } else {
            JournalStore::open(config(dir)).unwrap()
        };
        assert_eq!(recovered.pending_total(), 20, "replaying all: {replay_all}");
        assert_eq!(recovered.max_message_id, 60, "ids are not reused");
        let ids: Vec<u64> = read(&store, 0, 100).into_iter().map(|(id, _)| id).collect();
        assert_eq!(ids, (1..=20).map(|n| n * 2).collect::<Vec<u64>>());
        assert_eq!(store.spilled_bytes(), 0);
    }
}

#[test]
fn segments_that_held_only_spilled_messages_are_reclaimed_after_an_open() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, _) = JournalStore::open(config(tmp.path())).unwrap();
    store.append(vec![message(1, true)], true).unwrap();
    for id in 2..=200u64 {
        store.append(vec![message(id, false)], false).unwrap();
    }
    durable(&store);
    store.reclaim_now();
    let before = store.journal().segments().len();
    assert!(
        before > 5,
        "spilled messages are live: their segments stay ({before})"
    );
    drop(store);
    let (store, recovered) = JournalStore::open(config(tmp.path())).unwrap();
    assert_eq!(recovered.pending_total(), 1);
    // The persistent message's segment is copied forward; the rest go.
    for _ in 0..3 {
        store.reclaim_now();
    }
    let after = store.journal().segments().len();
    assert!(after <= 3, "{after} segments of {before} remain");
    assert_eq!(read(&store, 0, 10), vec![(1, true)]);
}
