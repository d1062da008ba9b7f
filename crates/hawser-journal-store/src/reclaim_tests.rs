//! Reclaiming segments on a disk that loses power: a segment is deleted only once every
//! record that made its contents dead is durable, so that no message vanishes.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use hawser_broker::{Destination, MemoryUsage, Message, MessageData, Store, StoreKey, StoreOp};

use crate::JournalStore;
use hawser_journal::sim_disk::SimDisk;
use hawser_journal::{JournalConfig, StorageHandle};

const SEGMENT_BYTES: u64 = 1024;

fn config(disk: &SimDisk) -> JournalConfig {
    JournalConfig {
        segment_bytes: SEGMENT_BYTES,
        storage: StorageHandle::new(disk.clone()),
        ..JournalConfig::new(Path::new("/store"))
    }
}

fn message(id: u64, body_len: usize) -> Arc<Message> {
    Arc::new(Message::new(
        MessageData {
            id,
            destination: Destination::queue("q"),
            fields: hawser_broker::MessageFields::default(),
            body_kind: hawser_broker::BodyKind::Bytes,
            body: Bytes::from(vec![b'x'; body_len]),
            persistent: true,
            priority: 4,
            expires_ms: None,
            timestamp_ms: 1,
        },
        &MemoryUsage::new(u64::MAX),
    ))
}

fn queue(name: &str) -> StoreKey {
    StoreKey::Queue(Arc::from(name))
}

/// Appends and waits until the watermark passes the record.
fn append_durably(store: &JournalStore, ops: Vec<StoreOp>) {
    let seq = store.append(ops, true).unwrap();
    let mut watch = store.durability();
    while watch.borrow_and_update().seq < seq {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

fn ids(store: &JournalStore, key: &StoreKey) -> Vec<u64> {
    store
        .stored_messages()
        .expect("read back")
        .get(key)
        .map(|m| m.iter().map(|(data, _)| data.id).collect())
        .unwrap_or_default()
}

#[test]
fn a_dead_letter_move_is_durable_before_the_original_is_deleted() {
    let disk = SimDisk::new();
    let (store, _) = JournalStore::open(config(&disk)).unwrap();
    append_durably(
        &store,
        vec![StoreOp::Enqueue {
            message: message(1, 100),
            targets: vec![queue("q")],
        }],
    );
    // Traffic that fills segment 1 and moves appends on, all of it consumed, durably.
    let mut id = 2;
    while store.journal().current_segment() < 3 {
        append_durably(
            &store,
            vec![StoreOp::Enqueue {
                message: message(id, 300),
                targets: vec![queue("other")],
            }],
        );
        append_durably(
            &store,
            vec![StoreOp::Dequeue {
                key: queue("other"),
                id,
            }],
        );
        id += 1;
    }
    // Message 1 goes to the dead-letter queue: one record, not synced (the engine
    // writes dead-letter moves so); it makes the original in segment 1 dead.
    store
        .append(
            vec![
                StoreOp::Dequeue {
                    key: queue("q"),
                    id: 1,
                },
                StoreOp::Enqueue {
                    message: message(1, 100),
                    targets: vec![queue("DLQ.q")],
                },
            ],
            false,
        )
        .unwrap();
    store.reclaim_now();
    assert!(
        !store.journal().segments().contains(&1),
        "segment 1 holds nothing live and is reclaimed"
    );
    // The machine loses power: only what was synced is on the disk.
    let after = disk.power_loss_keeping_only_synced();
    drop(store);
    let (store, _) = JournalStore::open(config(&after)).unwrap();
    let found = [ids(&store, &queue("q")), ids(&store, &queue("DLQ.q"))].concat();
    assert_eq!(found, vec![1], "message 1 is in its queue or in the DLQ");
}

/// Traffic, all of it consumed, until appends are in segment `segment`.
fn traffic_until(store: &JournalStore, segment: u64, id: &mut u64) {
    while store.journal().current_segment() < segment {
        append_durably(
            store,
            vec![StoreOp::Enqueue {
                message: message(*id, 300),
                targets: vec![queue("other")],
            }],
        );
        append_durably(
            store,
            vec![StoreOp::Dequeue {
                key: queue("other"),
                id: *id,
            }],
        );
        *id += 1;
    }
}

#[test]
fn a_prepared_transaction_is_copied_forward_until_it_is_resolved() {
    let disk = SimDisk::new();
    let (store, _) = JournalStore::open(config(&disk)).unwrap();
    // Message 1 waits in "q"; a prepared transaction acknowledged it and sends one.
    append_durably(
        &store,
        vec![StoreOp::Enqueue {
            message: message(1, 50),
            targets: vec![queue("q")],
        }],
    );
    let send = MessageData {
        id: 0,
        ..hawser_broker::message::AsMessageData::message_data(&message(0, 40)).clone()
    };
    let prepared = hawser_broker::PreparedTransaction {
        owner: None,
        xid: Arc::from("xa:1"),
        client_id: Some(Arc::from("client")),
        sends: vec![hawser_broker::PreparedSend {
            message: send,
            producer: Some(hawser_broker::ProducerRef {
                id: Arc::from("p"),
                seq: 1,
            }),
        }],
        acks: vec![(queue("q"), 1)],
    };
    append_durably(&store, vec![StoreOp::Prepare(prepared.clone())]);
    let mut id = 2;
    traffic_until(&store, 4, &mut id);
    store.reclaim_now();
    assert!(
        !store.journal().segments().contains(&1),
        "segment 1 held little that was live: copied forward and reclaimed"
    );
    drop(store);
    let (store, recovered) = JournalStore::open(config(&disk)).unwrap();
    assert_eq!(recovered.prepared, vec![prepared]);
    assert_eq!(ids(&store, &queue("q")), vec![1]);
    // Committed: the acknowledged message goes, and so does the transaction.
    append_durably(
        &store,
        vec![
            StoreOp::Dequeue {
                key: queue("q"),
                id: 1,
            },
            StoreOp::Resolve {
                xid: Arc::from("xa:1"),
            },
        ],
    );
    traffic_until(&store, store.journal().current_segment() + 3, &mut id);
    store.reclaim_now();
    drop(store);
    let (store, recovered) = JournalStore::open(config(&disk)).unwrap();
    assert!(recovered.prepared.is_empty());
    assert!(ids(&store, &queue("q")).is_empty());
}
