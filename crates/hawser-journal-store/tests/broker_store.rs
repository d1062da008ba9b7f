//! The broker's store on the journal: recovery by replay, the durability
//! watermark, and reclaiming segments (deleting dead ones, copying a few live
//! records forward).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hawser_broker::{
    Destination, DurableSubscription, MemoryUsage, Message, MessageData, ProducerKey, Store,
    StoreKey, StoreOp, StoredMessage,
};
use hawser_journal::JournalConfig;
use hawser_journal_store::JournalStore;

const SEGMENT_BYTES: u64 = 8 * 1024;

fn open(dir: &std::path::Path) -> (JournalStore, hawser_broker::Recovered) {
    let mut config = JournalConfig::new(dir);
    config.segment_bytes = SEGMENT_BYTES;
    JournalStore::open(config).expect("open store")
}

fn message(id: u64, body_len: usize) -> Arc<Message> {
    let usage = MemoryUsage::new(u64::MAX);
    Arc::new(Message::new(
        MessageData {
            id,
            destination: Destination::queue("q"),
            fields: hawser_broker::MessageFields {
                properties: vec![(
                    std::sync::Arc::from("n"),
                    hawser_broker::PropertyValue::Long(id as i64),
                )],
                ..Default::default()
            },
            body_kind: hawser_broker::BodyKind::Bytes,
            body: Bytes::from(vec![b'x'; body_len]),
            persistent: true,
            priority: 4,
            expires_ms: None,
            timestamp_ms: 1,
        },
        &usage,
    ))
}

fn queue() -> StoreKey {
    StoreKey::Queue(Arc::from("q"))
}

fn enqueue(store: &JournalStore, id: u64, body_len: usize) -> u64 {
    store
        .append(
            vec![StoreOp::Enqueue {
                message: message(id, body_len),
                targets: vec![queue()],
            }],
            true,
        )
        .unwrap()
}

fn dequeue(store: &JournalStore, id: u64) {
    store
        .append(vec![StoreOp::Dequeue { key: queue(), id }], false)
        .unwrap();
}

fn wait_durable(store: &JournalStore, seq: u64) {
    let watch = store.durability();
    let deadline = Instant::now() + Duration::from_secs(10);
    while watch.borrow().seq < seq {
        assert!(
            Instant::now() < deadline,
            "record {seq} never became durable"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn stored(store: &JournalStore) -> std::collections::HashMap<StoreKey, Vec<StoredMessage>> {
    store.stored_messages().expect("read back")
}

fn ids(store: &JournalStore) -> Vec<u64> {
    stored(store)
        .get(&queue())
        .map(|v| v.iter().map(|(m, _)| m.id).collect())
        .unwrap_or_default()
}

#[test]
fn recovers_pending_messages_in_order_with_redelivery_counts() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (store, recovered) = open(dir.path());
        assert!(recovered.pending.is_empty());
        for id in 1..=10 {
            enqueue(&store, id, 100);
        }
        dequeue(&store, 3);
        dequeue(&store, 7);
        let seq = store
            .append(
                vec![StoreOp::Redelivered {
                    key: queue(),
                    id: 5,
                    count: 2,
                }],
                true,
            )
            .unwrap();
        wait_durable(&store, seq);
        store.close();
    }
    let (store, recovered) = open(dir.path());
    assert_eq!(ids(&store), vec![1, 2, 4, 5, 6, 8, 9, 10]);
    assert_eq!(recovered.pending_total(), 8);
    let five = &stored(&store)[&queue()][3];
    assert_eq!((five.0.id, five.1), (5, 2));
    assert_eq!(five.0.body.len(), 100);
    assert_eq!(recovered.max_message_id, 10);
}

#[test]
fn watermark_passes_every_returned_sequence() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = open(dir.path());
    let mut last = 0;
    for id in 1..=50 {
        let seq = enqueue(&store, id, 10);
        assert!(seq > last, "sequences increase");
        last = seq;
    }
    wait_durable(&store, last);
}

#[test]
fn dead_segments_are_deleted_and_disk_follows_what_is_pending() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = open(dir.path());
    let mut last = 0;
    for id in 1..=200 {
        last = enqueue(&store, id, 500);
    }
    wait_durable(&store, last);
    let before = store.journal().segments().len();
    assert!(before > 5, "traffic spans many segments ({before})");
    for id in 1..=200 {
        dequeue(&store, id);
    }
    // Rotate once more so every segment holding messages is older than the current one.
    wait_durable(&store, enqueue(&store, 1000, 9000));
    store.reclaim_now();
    let after = store.journal().segments();
    assert!(after.len() <= 2, "dead segments remain: {after:?}");
    assert!(store.disk_bytes() < 3 * SEGMENT_BYTES);
    store.close();
    let (store, _) = open(dir.path());
    assert_eq!(ids(&store), vec![1000]);
}

#[test]
fn a_stuck_message_is_copied_forward_so_its_segment_can_go() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = open(dir.path());
    enqueue(&store, 1, 50);
    store
        .append(
            vec![StoreOp::Redelivered {
                key: queue(),
                id: 1,
                count: 3,
            }],
            false,
        )
        .unwrap();
    let mut last = 0;
    for id in 2..=200 {
        last = enqueue(&store, id, 500);
        dequeue(&store, id);
    }
    wait_durable(&store, last);
    let oldest = store.journal().segments()[0];
    store.reclaim_now();
    assert!(
        store.journal().segments()[0] > oldest,
        "the oldest segment was reclaimed despite its live message"
    );
    store.close();
    let (store, _) = open(dir.path());
    assert_eq!(ids(&store), vec![1]);
    assert_eq!(stored(&store)[&queue()][0].1, 3, "redelivery count kept");
}

#[test]
fn durable_subscriptions_survive_reclaim_and_unsubscribe_drops_their_messages() {
    let dir = tempfile::tempdir().unwrap();
    let sub = DurableSubscription {
        owner: None,
        client_id: Arc::from("app"),
        name: Arc::from("daily"),
        topic: Arc::from("news"),
        selector: Some("kind = 'x'".into()),
        no_local: false,
    };
    let gone = DurableSubscription {
        owner: None,
        name: Arc::from("gone"),
        ..sub.clone()
    };
    {
        let (store, _) = open(dir.path());
        store
            .append(
                vec![
                    StoreOp::Subscribe(sub.clone()),
                    StoreOp::Subscribe(gone.clone()),
                ],
                true,
            )
            .unwrap();
        store
            .append(
                vec![StoreOp::Enqueue {
                    message: message(1, 10),
                    targets: vec![sub.key(), gone.key()],
                }],
                true,
            )
            .unwrap();
        store
            .append(
                vec![StoreOp::Unsubscribe {
                    client_id: Arc::from("app"),
                    name: Arc::from("gone"),
                }],
                true,
            )
            .unwrap();
        let mut last = 0;
        for id in 2..=200 {
            last = enqueue(&store, id, 500);
            dequeue(&store, id);
        }
        wait_durable(&store, last);
        store.reclaim_now();
        store.close();
    }
    let (store, recovered) = open(dir.path());
    assert_eq!(recovered.subscriptions, vec![sub.clone()]);
    assert_eq!(stored(&store)[&sub.key()].len(), 1);
    assert!(!stored(&store).contains_key(&gone.key()));
    assert!(!recovered.pending.contains_key(&gone.key()));
}

#[test]
fn producer_marks_survive_reclaim_and_forget_releases_them() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (store, _) = open(dir.path());
        for (producer, seq) in [("kept", 41), ("kept", 43), ("dropped", 7)] {
            store
                .append(
                    vec![StoreOp::ProducerSeen {
                        producer: producer_key(producer),
                        seq,
                    }],
                    true,
                )
                .unwrap();
        }
        store
            .append(
                vec![StoreOp::ProducerForget {
                    producer: producer_key("dropped"),
                }],
                true,
            )
            .unwrap();
        let mut last = 0;
        for id in 2..=200 {
            last = enqueue(&store, id, 500);
            dequeue(&store, id);
        }
        wait_durable(&store, last);
        let oldest = store.journal().segments()[0];
        store.reclaim_now();
        assert!(
            store.journal().segments()[0] > oldest,
            "first segment reclaimed"
        );
        store.close();
    }
    let (_store, recovered) = open(dir.path());
    assert_eq!(recovered.producers.len(), 1);
    let kept = &recovered.producers[&producer_key("kept")];
    assert!(kept.contains(41) && kept.contains(43), "{kept:?}");
    assert!(
        !kept.contains(42),
        "a gap stays a gap across a copy forward"
    );
}

fn producer_key(producer: &str) -> ProducerKey {
    ProducerKey {
        owner: None,
        client_id: Arc::from("app"),
        producer: Arc::from(producer),
    }
}

/// Disk use follows live data over a long run: a few messages stay pending from
/// the start while thousands flow past. Reclaiming between batches (without the
/// timer's patience, which only waits an interval before calling a segment
/// stuck) deletes what is dead and copies the few live records forward, so the
/// journal stays a handful of segments instead of growing with the traffic
/// (321 segments with the copying switched off), and the pending messages
/// survive it all.
#[test]
fn disk_use_follows_live_data_while_a_few_messages_stay_pending_for_long() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = open(dir.path());
    for id in 1..=3 {
        enqueue(&store, id, 200);
    }
    let batches = 40;
    let per_batch = 100;
    let mut most_segments = 0;
    let mut id = 3;
    for _ in 0..batches {
        let mut last = 0;
        for _ in 0..per_batch {
            id += 1;
            last = store
                .append(
                    vec![StoreOp::Enqueue {
                        message: message(id, 500),
                        targets: vec![queue()],
                    }],
                    false,
                )
                .unwrap();
            dequeue(&store, id);
        }
        // A synced record after the batch: everything before it is written.
        wait_durable(&store, last.max(enqueue(&store, 1_000_000 + id, 0)));
        dequeue(&store, 1_000_000 + id);
        store.reclaim_now();
        most_segments = most_segments.max(store.journal().segments().len());
    }
    let written = (batches * per_batch) as u64 * 500;
    assert!(
        written > 200 * SEGMENT_BYTES,
        "the traffic spans hundreds of segments"
    );
    assert!(
        most_segments <= 16,
        "the journal grew with the traffic: {most_segments} segments at most"
    );
    store.close();
    let (store, _) = open(dir.path());
    assert_eq!(ids(&store), vec![1, 2, 3]);
}
