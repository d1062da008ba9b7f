//! Appending, reopening and reading back.

mod common;

use bytes::Bytes;
use common::*;
use hawser_journal::{
    AppendError, Corruption, Journal, JournalConfig, OpenError, Position, ReadError,
    DEFAULT_MAX_RECORD_BYTES, DEFAULT_SEGMENT_BYTES, MAX_SEGMENT_BYTES, SEGMENT_HEADER_BYTES,
};

#[test]
fn empty_journal_starts_with_one_segment() {
    let dir = tempfile::tempdir().unwrap();
    let config = JournalConfig::new(dir.path().join("nested/journal"));
    assert_eq!(config.segment_bytes, DEFAULT_SEGMENT_BYTES);
    assert_eq!(config.max_record_bytes, DEFAULT_MAX_RECORD_BYTES);
    let (journal, recovered) = open(&config);
    assert!(recovered.records.is_empty());
    assert_eq!(recovered.truncated, None);
    assert_eq!(journal.segments(), vec![1]);
    assert_eq!(journal.current_segment(), 1);
    assert_eq!(journal.disk_bytes(), SEGMENT_HEADER_BYTES);
    assert_eq!(
        file_len(&segment_path(&config.dir, 1)),
        SEGMENT_HEADER_BYTES
    );
}

#[test]
fn append_then_reopen_returns_the_same_records_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), 1 << 20);
    let written = records(100);
    let positions = {
        let (journal, _) = open(&config);
        append_all(&journal, &written)
    };
    assert!(positions.windows(2).all(|w| w[0] < w[1]));
    let (journal, recovered) = open(&config);
    assert_eq!(recovered.truncated, None);
    assert_eq!(payloads(&recovered), written);
    let recovered_positions: Vec<Position> = recovered.records.iter().map(|(p, _)| *p).collect();
    assert_eq!(recovered_positions, positions);

    // Appends after a reopen continue where the file ends.
    let more = vec![Bytes::from_static(b"after reopen")];
    let next = append_all(&journal, &more);
    assert!(next[0] > *positions.last().unwrap());
    drop(journal);
    let (_, recovered) = open(&config);
    assert_eq!(recovered.records.len(), 101);
    assert_eq!(recovered.records[100].1, more[0]);
}

#[test]
fn non_sync_appends_are_on_disk_after_close() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), 1 << 20);
    let written = records(50);
    {
        let (journal, _) = open(&config);
        for record in &written {
            let (_, durable) = journal.append(record.clone(), false).unwrap();
            drop(durable);
        }
        journal.close();
        assert!(matches!(
            journal.append(Bytes::new(), true),
            Err(AppendError::Closed)
        ));
    }
    let (_, recovered) = open(&config);
    assert_eq!(payloads(&recovered), written);
}

#[test]
fn disk_bytes_matches_the_files() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), 300);
    let (journal, _) = open(&config);
    append_all(&journal, &records(40));
    let on_disk: u64 = segment_files(dir.path())
        .iter()
        .map(|&s| file_len(&segment_path(dir.path(), s)))
        .sum();
    assert_eq!(journal.disk_bytes(), on_disk);
    drop(journal);
    let (journal, _) = open(&config);
    assert_eq!(journal.disk_bytes(), on_disk);
}

#[test]
fn read_round_trips_every_record() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), 500);
    let (journal, _) = open(&config);
    let written = records(60);
    let positions = append_all(&journal, &written);
    for (position, record) in positions.iter().zip(&written) {
        assert_eq!(&journal.read(*position).unwrap(), record);
    }
    // Reading a record that may still be queued waits for it.
    let (position, _durable) = journal.append(Bytes::from_static(b"fresh"), false).unwrap();
    assert_eq!(
        journal.read(position).unwrap(),
        Bytes::from_static(b"fresh")
    );
}

#[test]
fn read_detects_a_flipped_byte() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), 1 << 20);
    let (journal, _) = open(&config);
    let positions = append_all(
        &journal,
        &[Bytes::from_static(b"intact"), Bytes::from_static(b"victim")],
    );
    let path = segment_path(dir.path(), 1);
    let mut data = std::fs::read(&path).unwrap();
    let last = data.len() - 1;
    data[last] ^= 0x20;
    std::fs::write(&path, data).unwrap();
    assert_eq!(
        journal.read(positions[0]).unwrap(),
        Bytes::from_static(b"intact")
    );
    match journal.read(positions[1]) {
        Err(ReadError::Corrupt {
            file,
            offset,
            reason,
        }) => {
            assert_eq!(file, path);
            assert_eq!(offset, positions[1].offset);
            assert!(
                matches!(reason, Corruption::ChecksumMismatch { .. }),
                "{reason}"
            );
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[test]
fn read_rejects_positions_never_appended() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), 1 << 20);
    let (journal, _) = open(&config);
    let positions = append_all(&journal, &records(3));
    let beyond = Position {
        segment: 1,
        offset: positions[2].offset + 100,
    };
    assert!(matches!(
        journal.read(beyond),
        Err(ReadError::NotAppended { .. })
    ));
    let in_header = Position {
        segment: 1,
        offset: 3,
    };
    assert!(matches!(
        journal.read(in_header),
        Err(ReadError::NotAppended { .. })
    ));
    let other_segment = Position {
        segment: 9,
        offset: SEGMENT_HEADER_BYTES,
    };
    assert!(matches!(
        journal.read(other_segment),
        Err(ReadError::NoSuchSegment { segment: 9 })
    ));
}

#[test]
fn append_refuses_records_over_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path(), 1 << 20);
    config.max_record_bytes = 10;
    let (journal, _) = open(&config);
    assert!(matches!(
        journal.append(Bytes::from(vec![0; 11]), true),
        Err(AppendError::TooLarge { len: 11, max: 10 })
    ));
    let (_, durable) = journal.append(Bytes::from(vec![0; 10]), true).unwrap();
    durable.wait_blocking().unwrap();
}

#[test]
fn a_second_journal_cannot_open_the_same_directory() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), 1 << 20);
    let (journal, _) = open(&config);
    assert!(matches!(
        Journal::open(config.clone()),
        Err(OpenError::Locked { .. })
    ));
    journal.close();
    let (_reopened, _) = open(&config);
}

#[test]
fn segment_bytes_below_the_minimum_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), 10);
    assert!(matches!(
        Journal::open(config),
        Err(OpenError::SegmentTooSmall {
            segment_bytes: 10,
            ..
        })
    ));
}

#[test]
fn segment_bytes_above_the_maximum_is_refused() {
    // Record offsets are stored in 32 bits (each record says how far its segment was
    // synced), so a segment may not grow past them.
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), MAX_SEGMENT_BYTES + 1);
    assert!(matches!(
        Journal::open(config),
        Err(OpenError::SegmentTooLarge {
            max: MAX_SEGMENT_BYTES,
            ..
        })
    ));
    let (_journal, _) = open(&JournalConfig {
        segment_bytes: MAX_SEGMENT_BYTES,
        ..config_without_preallocation(dir.path(), 1)
    });
}

#[test]
fn durable_can_be_awaited() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_without_preallocation(dir.path(), 1 << 20);
    let (journal, _) = open(&config);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (_, durable) = journal.append(Bytes::from_static(b"async"), true).unwrap();
        durable.await.unwrap();
    });
    assert_eq!(journal.sync_count(), 1);
}

#[test]
fn non_sync_appends_complete_without_an_fsync_of_their_own() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_without_preallocation(dir.path(), 1 << 20);
    let (journal, _) = open(&config);
    for record in records(20) {
        let (_, durable) = journal.append(record, false).unwrap();
        durable.wait_blocking().unwrap();
    }
    assert_eq!(journal.sync_count(), 0);
    let (_, durable) = journal.append(Bytes::from_static(b"sync"), true).unwrap();
    durable.wait_blocking().unwrap();
    assert_eq!(journal.sync_count(), 1);
}
