//! Journals frozen on disk by an earlier version of the code, and the known content they
//! were written with.
//!
//! A fixture is made once, by `write_fixtures` in `legacy_v1.rs` run against the code of
//! its day, and committed under `tests/fixtures/`. Later versions must go on reading it:
//! the tests open a copy and compare what they recover with what is listed here. So the
//! lists below must never change for an existing fixture; a new mix needs a new fixture.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use hawser_broker::{
    BodyKind, Destination, DurableSubscription, MemoryUsage, Message, MessageData, MessageFields,
    ProducerKey, PropertyValue, Recovered, Store, StoreKey, StoreOp,
};
use hawser_journal::{JournalConfig, JournalStore};

/// The segment size the store fixtures were written with: small, so that the mix spans
/// several segments.
pub const STORE_SEGMENT_BYTES: u64 = 2048;

/// The segment size of the plain-journal fixtures.
pub const JOURNAL_SEGMENT_BYTES: u64 = 256;

/// Records in the plain-journal fixtures: `common::records(JOURNAL_RECORDS)`.
pub const JOURNAL_RECORDS: usize = 40;

/// Where the committed fixture `name` lives.
pub fn fixture_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// Copies the segment files of fixture `name` into a fresh directory.
pub fn copy_fixture(name: &str) -> tempfile::TempDir {
    let from = fixture_dir(name);
    let to = tempfile::tempdir().unwrap();
    let mut copied = 0;
    for entry in std::fs::read_dir(&from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.path().join(entry.file_name())).unwrap();
        copied += 1;
    }
    assert!(copied > 0, "fixture {} is empty", from.display());
    to
}

pub fn store_config(dir: &Path) -> JournalConfig {
    JournalConfig {
        segment_bytes: STORE_SEGMENT_BYTES,
        // Deterministic segment boundaries: no early switch to a prepared segment.
        preallocate: false,
        ..JournalConfig::new(dir)
    }
}

pub fn orders() -> StoreKey {
    StoreKey::Queue(Arc::from("orders"))
}

pub fn audit() -> StoreKey {
    StoreKey::Queue(Arc::from("audit"))
}

pub fn dead_letters() -> StoreKey {
    StoreKey::Queue(Arc::from("DLQ.orders"))
}

pub fn subscription() -> DurableSubscription {
    DurableSubscription {
        client_id: Arc::from("app"),
        name: Arc::from("daily"),
        topic: Arc::from("news"),
        selector: Some("kind = 'x' AND n > 3".into()),
        no_local: true,
    }
}

/// Message `id` of the mix. Ids 1..=12 went to `orders`, 13..=20 to `audit`, 21 to the
/// durable subscription on topic `news`, 22 to both queues in one record; ids from 100
/// on are appended to `orders` by the tests after the mix.
pub fn message_data(id: u64) -> MessageData {
    let destination = match id {
        1..=12 | 100.. => Destination::queue("orders"),
        21 => Destination::topic("news"),
        _ => Destination::queue("audit"),
    };
    let body: Vec<u8> = (0..(150 + id as usize * 17))
        .map(|i| (i as u64 * 31 + id) as u8)
        .collect();
    // Written as text headers (the enqueue op of their day): they come back
    // as text properties of a bytes message.
    let text = |s: String| PropertyValue::String(Arc::from(s.as_str()));
    MessageData {
        id,
        destination,
        fields: MessageFields {
            properties: vec![
                (Arc::from("n"), text(id.to_string())),
                (
                    Arc::from("kind"),
                    text(if id.is_multiple_of(2) { "x" } else { "y" }.into()),
                ),
                (
                    Arc::from("note"),
                    text(format!("message {id} of the v1 fixture, é ✓")),
                ),
            ],
            ..MessageFields::default()
        },
        body_kind: BodyKind::Bytes,
        body: Bytes::from(body),
        persistent: true,
        priority: (id % 10) as u8,
        expires_ms: id.is_multiple_of(3).then_some(4_102_444_800_000 + id),
        timestamp_ms: 1_765_000_000_000 + id * 1000,
    }
}

fn message(id: u64) -> Arc<Message> {
    Arc::new(Message::new(message_data(id), &MemoryUsage::new(u64::MAX)))
}

fn enqueue(id: u64, targets: Vec<StoreKey>) -> StoreOp {
    StoreOp::Enqueue {
        message: message(id),
        targets,
    }
}

/// Every record of the store mix, in order, with whether it asked for an fsync.
pub fn store_records() -> Vec<(Vec<StoreOp>, bool)> {
    let mut records = Vec::new();
    records.push((vec![StoreOp::Subscribe(subscription())], true));
    for id in 1..=12 {
        records.push((vec![enqueue(id, vec![orders()])], true));
    }
    for id in 13..=20 {
        records.push((vec![enqueue(id, vec![audit()])], true));
    }
    records.push((vec![enqueue(21, vec![subscription().key()])], true));
    records.push((vec![enqueue(22, vec![orders(), audit()])], true));
    for (key, id) in [(orders(), 2), (orders(), 5), (audit(), 14), (audit(), 22)] {
        records.push((vec![StoreOp::Dequeue { key, id }], false));
    }
    records.push((
        vec![StoreOp::Redelivered {
            key: orders(),
            id: 3,
            count: 2,
        }],
        false,
    ));
    records.push((
        vec![StoreOp::Redelivered {
            key: audit(),
            id: 15,
            count: 1,
        }],
        false,
    ));
    // A dead-letter move: one record takes message 7 out of `orders` into the DLQ.
    records.push((
        vec![
            StoreOp::Dequeue {
                key: orders(),
                id: 7,
            },
            enqueue(7, vec![dead_letters()]),
        ],
        false,
    ));
    // The frozen fixtures hold the unscoped producer marks of their day (op tags
    // 6 and 7), which are now read and ignored; a fixture written by this
    // generator today holds scoped ones instead, and `assert_store_state` would
    // need to expect them.
    for (producer, seq) in [("p1", 41), ("p2", 7), ("p1", 42)] {
        records.push((
            vec![StoreOp::ProducerSeen {
                producer: producer_key(producer),
                seq,
            }],
            true,
        ));
    }
    records.push((
        vec![StoreOp::ProducerForget {
            producer: producer_key("p2"),
        }],
        true,
    ));
    records
}

fn producer_key(producer: &str) -> ProducerKey {
    ProducerKey {
        client_id: Arc::from("app"),
        producer: Arc::from(producer),
    }
}

/// Writes the store mix into `dir` with the code of the day and closes the store.
pub fn write_store_fixture(dir: &Path) {
    let (store, recovered) = JournalStore::open(store_config(dir)).expect("open store");
    assert!(
        recovered.messages.is_empty(),
        "{} is not empty",
        dir.display()
    );
    let mut last = 0;
    for (ops, sync) in store_records() {
        last = store.append(ops, sync).expect("append");
    }
    let mut watch = store.durability();
    while watch.borrow_and_update().seq < last {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    store.close();
}

/// Queue contents the store mix leaves: ids with their redelivery counts, in order.
pub fn expected_store_messages() -> Vec<(StoreKey, Vec<(u64, u32)>)> {
    vec![
        (
            orders(),
            vec![
                (1, 0),
                (3, 2),
                (4, 0),
                (6, 0),
                (8, 0),
                (9, 0),
                (10, 0),
                (11, 0),
                (12, 0),
                (22, 0),
            ],
        ),
        (
            audit(),
            vec![
                (13, 0),
                (15, 1),
                (16, 0),
                (17, 0),
                (18, 0),
                (19, 0),
                (20, 0),
            ],
        ),
        (subscription().key(), vec![(21, 0)]),
        (dead_letters(), vec![(7, 0)]),
    ]
}

/// Asserts that `recovered` is exactly the state the store mix leaves, plus the messages
/// `extra` (ids, each enqueued to `orders` after the mix).
pub fn assert_store_state(recovered: &Recovered, extra: &[u64]) {
    let mut expected = expected_store_messages();
    expected[0].1.extend(extra.iter().map(|&id| (id, 0)));
    assert_eq!(
        recovered.messages.len(),
        expected.len(),
        "containers: {:?}",
        recovered.messages.keys().collect::<Vec<_>>()
    );
    for (key, messages) in expected {
        let found = recovered
            .messages
            .get(&key)
            .unwrap_or_else(|| panic!("no messages recovered for {key:?}"));
        let ids: Vec<(u64, u32)> = found.iter().map(|(m, count)| (m.id, *count)).collect();
        assert_eq!(ids, messages, "{key:?}");
        for (data, _) in found {
            assert_eq!(data, &message_data(data.id), "{key:?}: message {}", data.id);
        }
    }
    assert_eq!(recovered.subscriptions, vec![subscription()]);
    assert_eq!(
        recovered.max_message_id,
        extra.iter().copied().max().unwrap_or(22).max(22)
    );
    // Unscoped marks of earlier versions are ignored (docs/failover.md): a
    // resend right after the upgrade may be stored twice, never dropped.
    assert!(recovered.producers.is_empty(), "{:?}", recovered.producers);
}

/// Appends `ids` to `orders`, synced, and waits for them.
pub fn append_more(store: &JournalStore, ids: &[u64]) {
    let mut last = 0;
    for &id in ids {
        last = store
            .append(vec![enqueue(id, vec![orders()])], true)
            .expect("append");
    }
    let mut watch = store.durability();
    while watch.borrow_and_update().seq < last {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}
