//! The PostgreSQL store against a real PostgreSQL 15 server, and against
//! the reference model every store is held to: `Replay`, which applies the
//! same records in memory. Random runs of records (messages to queues and
//! durable subscriptions at random priorities, acknowledgements,
//! redeliveries, producer windows, durable subscriptions made and removed,
//! XA prepares and resolutions), appended in random batches; then the store
//! is opened again, as after a crash, and what it recovers and reads back
//! must be what the model says.

mod pg_server;

use std::collections::BTreeMap;
use std::sync::Arc;

use hawser_broker::producer::ProducerKey;
use hawser_broker::store::{DurableSubscription, PreparedTransaction, Replay, PRIORITIES};
use hawser_broker::{ReadLimit, Recovered, Store, StoreKey, StoreOp};
use hawser_pg_store::PgStore;
use pg_server::fixtures::{append_all, config, database, message, queue, runtime};
use pg_server::PgServer;
use proptest::prelude::*;

fn durable(n: u8) -> DurableSubscription {
    DurableSubscription {
        client_id: Arc::from("c"),
        name: Arc::from(format!("d{n}")),
        topic: Arc::from("t"),
        selector: None,
        no_local: false,
        owner: None,
    }
}

fn producer(n: u8) -> ProducerKey {
    ProducerKey {
        owner: None,
        client_id: Arc::from("c"),
        producer: Arc::from(format!("p{n}")),
    }
}

/// What a run does, before it knows which entries exist.
#[derive(Clone, Debug)]
enum Act {
    /// A message to queues / durables (bit i of the mask: container i).
    Send {
        mask: u8,
        priority: u8,
        producer: Option<(u8, u64)>,
    },
    /// The `n`th live entry acknowledged.
    Ack(usize),
    /// The `n`th live entry redelivered.
    Redeliver(usize),
    Subscribe(u8),
    Unsubscribe(u8),
    /// A prepared transaction acknowledging the `n`th live entry.
    Prepare(usize),
    /// The oldest prepared transaction resolved.
    Resolve,
    ForgetProducer(u8),
    /// An operator's purge of queue `.0`, keeping its `.1`th live entry
    /// (as if out with a consumer) when it has one and `.1` is even.
    Purge(u8, usize),
    /// End of a record.
    Cut,
}

fn act() -> impl Strategy<Value = Act> {
    prop_oneof![
        5 => (1u8..16, 0u8..10, proptest::option::of((0u8..3, 1u64..5000)))
            .prop_map(|(mask, priority, producer)| Act::Send { mask, priority, producer }),
        3 => any::<usize>().prop_map(Act::Ack),
        1 => any::<usize>().prop_map(Act::Redeliver),
        1 => (0u8..2).prop_map(Act::Subscribe),
        1 => (0u8..2).prop_map(Act::Unsubscribe),
        1 => any::<usize>().prop_map(Act::Prepare),
        1 => Just(Act::Resolve),
        1 => (0u8..3).prop_map(Act::ForgetProducer),
        1 => (0u8..2, any::<usize>()).prop_map(|(q, n)| Act::Purge(q, n)),
        3 => Just(Act::Cut),
    ]
}

/// The records of a run, with the state it tracks to stay valid.
fn records(acts: &[Act]) -> Vec<Vec<StoreOp>> {
    let mut out = Vec::new();
    let mut record = Vec::new();
    let mut live: Vec<(StoreKey, u64)> = Vec::new();
    let mut durables = [false, false];
    let mut prepared: Vec<Arc<str>> = Vec::new();
    let mut next_id = 1;
    let mut redeliveries: BTreeMap<(StoreKey, u64), u32> = BTreeMap::new();
    for act in acts {
        match act {
            Act::Send {
                mask,
                priority,
                producer: p,
            } => {
                let mut targets = Vec::new();
                for i in 0..4u8 {
                    if mask & (1 << i) == 0 {
                        continue;
                    }
                    if i < 2 {
                        targets.push(queue(i));
                    } else if durables[usize::from(i - 2)] {
                        targets.push(durable(i - 2).key());
                    }
                }
                if targets.is_empty() {
                    continue;
                }
                let id = next_id;
                next_id += 1;
                for t in &targets {
                    live.push((t.clone(), id));
                }
                record.push(StoreOp::Enqueue {
                    message: message(id, *priority, true),
                    targets,
                });
                if let Some((n, seq)) = p {
                    record.push(StoreOp::ProducerSeen {
                        producer: producer(*n),
                        seq: *seq,
                    });
                }
            }
            Act::Ack(n) if !live.is_empty() => {
                let (key, id) = live.remove(n % live.len());
                record.push(StoreOp::Dequeue { key, id });
            }
            Act::Redeliver(n) if !live.is_empty() => {
                let (key, id) = live[n % live.len()].clone();
                let count = redeliveries.entry((key.clone(), id)).or_default();
                *count += 1;
                record.push(StoreOp::Redelivered {
                    key,
                    id,
                    count: *count,
                });
            }
            Act::Subscribe(n) => {
                durables[usize::from(*n)] = true;
                record.push(StoreOp::Subscribe(durable(*n)));
            }
            Act::Unsubscribe(n) if durables[usize::from(*n)] => {
                durables[usize::from(*n)] = false;
                let key = durable(*n).key();
                live.retain(|(k, _)| *k != key);
                record.push(StoreOp::Unsubscribe {
                    client_id: Arc::from("c"),
                    name: Arc::from(format!("d{n}")),
                });
            }
            Act::Prepare(n) if !live.is_empty() => {
                let (key, id) = live[n % live.len()].clone();
                let xid: Arc<str> = Arc::from(format!("xid-{}", prepared.len() + out.len()));
                prepared.push(Arc::clone(&xid));
                record.push(StoreOp::Prepare(PreparedTransaction {
                    xid,
                    client_id: Some(Arc::from("c")),
                    owner: None,
                    sends: Vec::new(),
                    acks: vec![(key, id)],
                }));
            }
            Act::Resolve if !prepared.is_empty() => {
                let xid = prepared.remove(0);
                record.push(StoreOp::Resolve { xid });
            }
            Act::ForgetProducer(n) => record.push(StoreOp::ProducerForget {
                producer: producer(*n),
            }),
            Act::Purge(q, n) => {
                let key = queue(*q);
                let mine: Vec<u64> = live
                    .iter()
                    .filter(|(k, _)| *k == key)
                    .map(|(_, id)| *id)
                    .collect();
                let keep: Vec<u64> = match mine.len() {
                    0 => Vec::new(),
                    len if n % 2 == 0 => vec![mine[n % len]],
                    _ => Vec::new(),
                };
                live.retain(|(k, id)| *k != key || keep.contains(id));
                record.push(StoreOp::Purge { key, keep });
            }
            Act::Cut if !record.is_empty() => out.push(std::mem::take(&mut record)),
            _ => {}
        }
    }
    if !record.is_empty() {
        out.push(record);
    }
    out
}

fn model(records: &[Vec<StoreOp>]) -> Replay {
    let mut replay = Replay::new();
    for r in records {
        replay.apply(r.iter().map(StoreOp::to_data).collect());
    }
    replay
}

/// Everything `Recovered` says, in a form that compares.
fn summary(r: &Recovered) -> String {
    let mut pending: Vec<_> = r.pending.iter().collect();
    pending.sort();
    let mut subs: Vec<_> = r.subscriptions.iter().map(|s| s.name.to_string()).collect();
    subs.sort();
    let mut producers: Vec<_> = r
        .producers
        .iter()
        .map(|(k, w)| {
            format!(
                "{}:{:?}",
                k.producer,
                (1..5000).filter(|s| w.contains(*s)).collect::<Vec<_>>()
            )
        })
        .collect();
    producers.sort();
    let prepared: Vec<_> = r.prepared.iter().map(|p| p.xid.to_string()).collect();
    let mut held: Vec<_> = r
        .held
        .iter()
        .map(|(k, (m, c))| format!("{k:?}/{}/{c}", m.id))
        .collect();
    held.sort();
    format!(
        "pending {pending:?}\nsubscriptions {subs:?}\nproducers {producers:?}\nprepared {prepared:?}\nheld {held:?}\nmax id {}",
        r.max_message_id
    )
}

/// The ids of what `key` holds at `priority`, as the store reads them.
async fn ids(store: &PgStore, key: &StoreKey, priority: u8) -> Vec<u64> {
    store
        .read(key, priority, 0, ReadLimit::ALL)
        .await
        .unwrap()
        .into_iter()
        .map(|(m, _)| m.id)
        .collect()
}

/// Every container's messages at every priority, as the store reads them
/// and as the model does.
async fn check_reads(store: &PgStore, replay: &Replay) {
    let keys: Vec<StoreKey> = (0..2)
        .map(queue)
        .chain((0..2).map(|n| durable(n).key()))
        .collect();
    for key in &keys {
        for priority in 0..PRIORITIES as u8 {
            let got: Vec<(u64, u32)> = store
                .read(key, priority, 0, ReadLimit::ALL)
                .await
                .unwrap()
                .into_iter()
                .map(|(m, c)| (m.id, c))
                .collect();
            let want: Vec<(u64, u32)> = replay
                .read(key, priority, 0, ReadLimit::ALL)
                .into_iter()
                .map(|(m, c)| (m.id, c))
                .collect();
            assert_eq!(got, want, "{key:?} at priority {priority}");
        }
    }
}

/// Random runs against the model, all on one server that this test starts
/// and stops (a case a database of its own).
#[test]
fn what_a_reopened_store_recovers_and_reads_is_what_the_model_says() {
    if !PgServer::available() {
        eprintln!("no PostgreSQL 15 server programs in {}", pg_server::PG_BIN);
        return;
    }
    let server = PgServer::start();
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(12);
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases,
        ..ProptestConfig::default()
    });
    let next_case = std::sync::atomic::AtomicU64::new(0);
    let result = runner.run(&proptest::collection::vec(act(), 1..120), |acts| {
        let case = next_case.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let rt = runtime();
        rt.block_on(async {
            let url = database(&server, &format!("case_{case}")).await;
            let records = records(&acts);
            let replay = model(&records);
            let (store, recovered) = PgStore::open(config(&url, "first")).await.unwrap();
            assert_eq!(recovered.pending_total(), 0);
            append_all(&store, records).await;
            // The model against the store as it runs...
            check_reads(&store, &replay).await;
            store.close();
            // ...and as the next broker finds it.
            let (next, again) = PgStore::open(config(&url, "second")).await.unwrap();
            check_reads(&next, &replay).await;
            assert_eq!(summary(&again), summary(&replay.into_recovered()));
            next.close();
        });
        Ok(())
    });
    drop(server);
    if let Err(e) = result {
        panic!("{e}");
    }
}

#[test]
fn a_broker_that_was_taken_over_writes_and_confirms_nothing_more() {
    if !PgServer::available() {
        return;
    }
    let server = PgServer::start();
    runtime().block_on(async {
        let url = database(&server, "fence").await;
        let (old, _) = PgStore::open(config(&url, "old")).await.unwrap();
        append_all(
            &old,
            vec![vec![StoreOp::Enqueue {
                message: message(1, 4, true),
                targets: vec![queue(0)],
            }]],
        )
        .await;
        // Another broker takes the store over (a higher epoch)...
        let (new, recovered) = PgStore::open(config(&url, "new")).await.unwrap();
        assert_eq!(recovered.pending_total(), 1);
        // ...and the old one's next record is refused by the fence.
        let seq = old
            .append(
                vec![StoreOp::Enqueue {
                    message: message(2, 4, true),
                    targets: vec![queue(0)],
                }],
                true,
            )
            .unwrap();
        let mut durable = old.durability();
        let err = hawser_broker::store::wait_durable(&mut durable, seq)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("took the store over"), "{err}");
        assert!(old.check_confirmable().is_err());
        assert!(
            old.append(Vec::new(), true).is_err(),
            "nothing more is taken"
        );
        // Message 2 is nowhere.
        assert_eq!(ids(&new, &queue(0), 4).await, vec![1]);
        new.close();
    });
}

#[test]
fn spilled_messages_do_not_outlive_their_broker() {
    if !PgServer::available() {
        return;
    }
    let server = PgServer::start();
    runtime().block_on(async {
        let url = database(&server, "spill").await;
        let (store, _) = PgStore::open(config(&url, "a")).await.unwrap();
        append_all(
            &store,
            vec![
                vec![StoreOp::Enqueue {
                    message: message(1, 4, true),
                    targets: vec![queue(0)],
                }],
                vec![StoreOp::Enqueue {
                    message: message(2, 4, false),
                    targets: vec![queue(0)],
                }],
            ],
        )
        .await;
        // Read back while it runs: both, in id order.
        assert_eq!(ids(&store, &queue(0), 4).await, vec![1, 2]);
        store.close();
        let (next, recovered) = PgStore::open(config(&url, "b")).await.unwrap();
        assert_eq!(recovered.pending_total(), 1);
        assert_eq!(recovered.max_message_id, 2, "ids are never reused");
        next.close();
    });
}
