//! Records that ask for no fsync wait a little for company (`DEFAULT_LINGER`): a
//! stream of them is written in few batches, none waits for ever, and a record
//! that asks for an fsync, or a reader, does not wait for the linger. On the
//! simulated disk, where an fsync costs nothing.

use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::config::DEFAULT_LINGER;
use crate::sim_disk::SimDisk;
use crate::storage::StorageHandle;
use crate::{Journal, JournalConfig};

/// A linger no test waits out: a round that waited for it would show.
const LONG_LINGER: Duration = Duration::from_secs(10);

fn open(linger: Duration) -> Journal {
    let config = JournalConfig {
        segment_bytes: 1 << 20,
        linger,
        storage: StorageHandle::new(SimDisk::new()),
        ..JournalConfig::new(Path::new("/journal"))
    };
    Journal::open(config).unwrap().0
}

#[test]
fn unsynced_records_appended_one_by_one_share_batches() {
    let journal = open(DEFAULT_LINGER);
    let before = journal.batch_count();
    let count = 200;
    let pending: Vec<_> = (0..count)
        .map(|i| {
            journal
                .append(Bytes::from(vec![i as u8; 40]), false)
                .unwrap()
        })
        .collect();
    for (_, durable) in pending {
        durable.wait_blocking().unwrap();
    }
    let batches = journal.batch_count() - before;
    // Without the linger a writer that keeps up takes about one record per wake;
    // with it, one batch per linger of appending (a wide margin for a loaded
    // machine: the loop above takes well under one).
    assert!(batches <= 20, "{count} records took {batches} batches");
}

#[test]
fn an_unsynced_record_alone_is_written_after_the_linger() {
    let linger = Duration::from_millis(50);
    let journal = open(linger);
    let started = Instant::now();
    let (position, durable) = journal.append(Bytes::from_static(b"ack"), false).unwrap();
    durable.wait_blocking().unwrap();
    assert!(
        started.elapsed() >= linger,
        "written before the linger ended"
    );
    assert_eq!(&journal.read(position).unwrap()[..], b"ack");
}

/// Rounds of an unsynced record followed by `then`, with a linger none of them may
/// wait out; what the rounds took (ending early once they took half a linger).
fn rounds_after_unsynced(then: impl Fn(&Journal)) -> Duration {
    let journal = open(LONG_LINGER);
    let started = Instant::now();
    for _ in 0..200 {
        let (_, unsynced) = journal.append(Bytes::from_static(b"ack"), false).unwrap();
        then(&journal);
        unsynced.wait_blocking().unwrap();
        if started.elapsed() >= LONG_LINGER / 2 {
            break;
        }
    }
    started.elapsed()
}

#[test]
fn a_synced_record_cuts_the_linger_short() {
    let took = rounds_after_unsynced(|j| {
        // The writer lingers over the ack first, mostly: wait until it does.
        for _ in 0..1000 {
            if j.shared().state.lock().lingering {
                break;
            }
            std::thread::yield_now();
        }
        let (_, synced) = j.append(Bytes::from_static(b"send"), true).unwrap();
        synced.wait_blocking().unwrap();
    });
    assert!(
        took < LONG_LINGER / 2,
        "a send waited for the linger: {took:?}"
    );
}

#[test]
fn a_reader_cuts_the_linger_short() {
    let took = rounds_after_unsynced(|j| {
        let (position, _) = j.append(Bytes::from_static(b"read me"), false).unwrap();
        assert_eq!(&j.read(position).unwrap()[..], b"read me");
    });
    assert!(
        took < LONG_LINGER / 2,
        "a read waited for the linger: {took:?}"
    );
}
