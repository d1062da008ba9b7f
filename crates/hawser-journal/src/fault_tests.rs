//! Write and fsync failures, injected into the writer: every affected `Durable` resolves
//! to `Err`, the journal refuses further appends, and nothing panics.

use std::sync::atomic::Ordering;

use bytes::Bytes;

use crate::{AppendError, Journal, JournalConfig, WriteError};

fn open(dir: &std::path::Path) -> Journal {
    let config = JournalConfig {
        segment_bytes: 256,
        ..JournalConfig::new(dir)
    };
    Journal::open(config).unwrap().0
}

fn assert_io_error(outcome: Result<(), WriteError>, op: &str) {
    match outcome {
        Err(WriteError::Io {
            op: failed_op,
            source,
            ..
        }) => {
            assert_eq!(failed_op, op);
            assert_eq!(source.kind(), std::io::ErrorKind::StorageFull);
        }
        other => panic!("expected an injected {op} error, got {other:?}"),
    }
}

#[test]
fn a_failed_write_fails_the_record_and_the_journal() {
    let dir = tempfile::tempdir().unwrap();
    let journal = open(dir.path());
    let (_, durable) = journal.append(Bytes::from_static(b"kept"), true).unwrap();
    durable.wait_blocking().unwrap();

    journal
        .shared()
        .faults
        .fail_writes
        .store(true, Ordering::SeqCst);
    let (_, durable) = journal.append(Bytes::from_static(b"lost"), true).unwrap();
    assert_io_error(durable.wait_blocking(), "write");
    assert!(matches!(
        journal.append(Bytes::from_static(b"refused"), false),
        Err(AppendError::Failed {
            cause: WriteError::Io { op: "write", .. }
        })
    ));
    journal.close();
    drop(journal);

    let (_, recovered) = Journal::open(JournalConfig::new(dir.path())).unwrap();
    let payloads: Vec<_> = recovered.records.into_iter().map(|(_, r)| r).collect();
    assert_eq!(payloads, vec![Bytes::from_static(b"kept")]);
}

#[test]
fn a_failed_fsync_fails_the_journal_for_good() {
    let dir = tempfile::tempdir().unwrap();
    let journal = open(dir.path());
    journal
        .shared()
        .faults
        .fail_syncs
        .store(true, Ordering::SeqCst);
    let (_, durable) = journal.append(Bytes::from_static(b"unsure"), true).unwrap();
    assert_io_error(durable.wait_blocking(), "fsync");
    // Even with the fault gone, nothing more is written: the page cache may no longer
    // match the disk.
    journal
        .shared()
        .faults
        .fail_syncs
        .store(false, Ordering::SeqCst);
    assert!(matches!(
        journal.append(Bytes::from_static(b"later"), true),
        Err(AppendError::Failed { .. })
    ));
}

#[test]
fn records_queued_behind_a_failure_all_fail() {
    let dir = tempfile::tempdir().unwrap();
    let journal = open(dir.path());
    journal
        .shared()
        .faults
        .fail_writes
        .store(true, Ordering::SeqCst);
    let mut durables = Vec::new();
    let mut refused = 0;
    for i in 0..200u8 {
        match journal.append(Bytes::from(vec![i; 50]), i % 2 == 0) {
            Ok((_, durable)) => durables.push(durable),
            Err(AppendError::Failed { .. }) => refused += 1,
            Err(other) => panic!("unexpected {other}"),
        }
    }
    assert!(!durables.is_empty());
    for durable in durables {
        assert_io_error(durable.wait_blocking(), "write");
    }
    assert_eq!(journal.sync_count(), 0);
    let _ = refused;
}

#[test]
fn a_failure_while_rotating_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    // Without preallocation: a prepared segment ready in time would be renamed into
    // place, and the failure would come from the record's write instead.
    let config = JournalConfig {
        segment_bytes: 256,
        preallocate: false,
        ..JournalConfig::new(dir.path())
    };
    let journal = Journal::open(config).unwrap().0;
    let (_, durable) = journal.append(Bytes::from(vec![1; 200]), true).unwrap();
    durable.wait_blocking().unwrap();
    journal
        .shared()
        .faults
        .fail_writes
        .store(true, Ordering::SeqCst);
    // Does not fit in segment 1: the writer must create segment 2 and fails doing so.
    let (position, durable) = journal.append(Bytes::from(vec![2; 200]), true).unwrap();
    assert_eq!(position.segment, 2);
    assert_io_error(durable.wait_blocking(), "write segment header");
}

#[test]
fn the_progress_hook_hears_each_tag_in_order_then_the_failure() {
    use std::sync::{Arc, Mutex};
    let dir = tempfile::tempdir().unwrap();
    let journal = open(dir.path());
    let heard = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&heard);
    journal.set_progress_hook(Box::new(move |progress| {
        log.lock()
            .unwrap()
            .push(progress.map_err(|e| e.to_string()));
    }));
    let mut last = None;
    for tag in 1..=50u64 {
        // Untagged records in between are not reported.
        journal.append(Bytes::from_static(b"plain"), false).unwrap();
        last = Some(
            journal
                .append_tagged(Bytes::from(vec![tag as u8; 10]), true, Some(tag))
                .unwrap()
                .1,
        );
    }
    last.unwrap().wait_blocking().unwrap();
    let tags: Vec<u64> = heard
        .lock()
        .unwrap()
        .iter()
        .map(|p| *p.as_ref().unwrap())
        .collect();
    assert_eq!(
        tags.last(),
        Some(&50),
        "the last batch reported the last tag"
    );
    assert!(tags.windows(2).all(|w| w[0] < w[1]), "rising: {tags:?}");

    journal
        .shared()
        .faults
        .fail_syncs
        .store(true, Ordering::SeqCst);
    let (_, durable) = journal
        .append_tagged(Bytes::from_static(b"lost"), true, Some(51))
        .unwrap();
    assert!(durable.wait_blocking().is_err());
    let after = heard.lock().unwrap().clone();
    assert!(
        matches!(after.last(), Some(Err(reason)) if reason.contains("fsync")),
        "{after:?}"
    );
    assert!(
        !after.contains(&Ok(51)),
        "a failed record is never reported durable"
    );
}
