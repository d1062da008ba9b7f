//! Many producers: order per producer, and group commit sharing fsyncs.

mod common;

use std::sync::{Arc, Barrier};
use std::thread;

use bytes::Bytes;
use common::*;
use hawser_journal::Position;

const THREADS: u32 = 8;

fn tagged(thread: u32, seq: u32, filler: usize) -> Bytes {
    let mut record = Vec::with_capacity(8 + filler);
    record.extend_from_slice(&thread.to_le_bytes());
    record.extend_from_slice(&seq.to_le_bytes());
    record.resize(8 + filler, thread as u8);
    Bytes::from(record)
}

fn untag(record: &[u8]) -> (u32, u32) {
    (
        u32::from_le_bytes(record[0..4].try_into().unwrap()),
        u32::from_le_bytes(record[4..8].try_into().unwrap()),
    )
}

#[test]
fn concurrent_appends_keep_each_producers_order() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), 4096);
    let per_thread = 500;
    let (journal, _) = open(&config);
    let journal = Arc::new(journal);
    let barrier = Arc::new(Barrier::new(THREADS as usize));
    let producers: Vec<_> = (0..THREADS)
        .map(|t| {
            let journal = Arc::clone(&journal);
            let barrier = Arc::clone(&barrier);
            thread::spawn(move || {
                barrier.wait();
                let mut appended: Vec<(Position, hawser_journal::Durable)> = Vec::new();
                for seq in 0..per_thread {
                    // Mixed: every fifth record asks for an fsync.
                    let record = tagged(t, seq, (seq as usize * 13) % 97);
                    appended.push(journal.append(record, seq % 5 == 0).unwrap());
                }
                let positions: Vec<Position> = appended
                    .into_iter()
                    .map(|(p, durable)| {
                        durable.wait_blocking().unwrap();
                        p
                    })
                    .collect();
                assert!(positions.windows(2).all(|w| w[0] < w[1]), "thread {t}");
                positions
            })
        })
        .collect();
    let mut positions: Vec<Position> = producers
        .into_iter()
        .flat_map(|p| p.join().unwrap())
        .collect();
    drop(journal);

    let (_, recovered) = open(&config);
    assert_eq!(recovered.records.len(), (THREADS * per_thread) as usize);
    // The file order is the order positions were handed out.
    positions.sort_unstable();
    let on_disk: Vec<Position> = recovered.records.iter().map(|(p, _)| *p).collect();
    assert_eq!(on_disk, positions);
    let mut next_seq = vec![0u32; THREADS as usize];
    for (_, record) in &recovered.records {
        let (t, seq) = untag(record);
        assert_eq!(seq, next_seq[t as usize], "thread {t} out of order");
        assert_eq!(record, &tagged(t, seq, (seq as usize * 13) % 97));
        next_seq[t as usize] += 1;
    }
    assert!(next_seq.iter().all(|&n| n == per_thread));
}

#[test]
fn concurrent_sync_appends_share_fsyncs() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_without_preallocation(dir.path(), 1 << 20);
    let per_thread = 8;
    let (journal, _) = open(&config);
    let journal = Arc::new(journal);
    let barrier = Arc::new(Barrier::new(THREADS as usize));
    let before = journal.sync_count();
    let producers: Vec<_> = (0..THREADS)
        .map(|t| {
            let journal = Arc::clone(&journal);
            let barrier = Arc::clone(&barrier);
            thread::spawn(move || {
                barrier.wait();
                // Each producer waits for its record before sending the next, as a
                // broker acknowledging one message at a time would.
                for seq in 0..per_thread {
                    let (_, durable) = journal.append(tagged(t, seq, 100), true).unwrap();
                    durable.wait_blocking().unwrap();
                }
            })
        })
        .collect();
    for producer in producers {
        producer.join().unwrap();
    }
    let records = u64::from(THREADS * per_thread);
    let syncs = journal.sync_count() - before;
    eprintln!("{records} sync appends took {syncs} fsyncs");
    assert!(syncs >= 1);
    assert!(
        syncs < records,
        "{records} sync appends took {syncs} fsyncs: no grouping"
    );
    drop(journal);
    let (_, recovered) = open(&config);
    assert_eq!(recovered.records.len() as u64, records);
}

#[test]
fn a_commit_held_for_senders_that_do_not_return_still_completes() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), 1 << 20);
    let (journal, _) = open(&config);
    for round in 0..20u32 {
        // Two sync records, usually committed together: the writer then holds its next
        // commit for two senders, of which none comes back.
        let first = journal.append(tagged(0, round, 10), true).unwrap().1;
        let second = journal.append(tagged(1, round, 10), true).unwrap().1;
        first.wait_blocking().unwrap();
        second.wait_blocking().unwrap();
        let lone = journal.append(tagged(2, round, 10), true).unwrap().1;
        let (done, waited) = std::sync::mpsc::channel();
        thread::spawn(move || done.send(lone.wait_blocking()));
        // The hold lasts at most a commit's time (1 ms at most); seconds mean it hung.
        let outcome = waited
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("a held commit never completed");
        outcome.unwrap();
    }
}
