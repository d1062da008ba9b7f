//! Segment rotation and deletion.

mod common;

use std::sync::Arc;
use std::thread;

use bytes::Bytes;
use common::*;
use hawser_journal::{DeleteError, ReadError, RECORD_HEADER_BYTES, SEGMENT_HEADER_BYTES};

#[test]
fn rotation_spreads_records_over_many_segments() {
    let dir = tempfile::tempdir().unwrap();
    let segment_bytes = 200;
    // Without preallocation, whose early switch to a prepared segment would make where
    // a segment ends depend on timing.
    let config = config_without_preallocation(dir.path(), segment_bytes);
    let written = records(300);
    let positions = {
        let (journal, _) = open(&config);
        let positions = append_all(&journal, &written);
        assert_eq!(journal.segments(), segment_files(dir.path()));
        assert_eq!(
            journal.current_segment(),
            *journal.segments().last().unwrap()
        );
        positions
    };
    let segments = segment_files(dir.path());
    assert!(segments.len() > 20, "only {} segments", segments.len());
    assert_eq!(segments, (1..=segments.len() as u64).collect::<Vec<_>>());
    for &segment in &segments {
        assert!(file_len(&segment_path(dir.path(), segment)) <= segment_bytes);
    }
    // Each segment starts its records right after the header, and a record only moves
    // to a new segment when it would not fit in the old one.
    for (i, pair) in positions.windows(2).enumerate() {
        let (a, b) = (pair[0], pair[1]);
        if a.segment == b.segment {
            assert_eq!(
                b.offset,
                a.offset + RECORD_HEADER_BYTES + written[i].len() as u64
            );
        } else {
            assert_eq!(b.segment, a.segment + 1);
            assert_eq!(b.offset, SEGMENT_HEADER_BYTES);
            assert!(
                a.offset
                    + RECORD_HEADER_BYTES
                    + written[i].len() as u64
                    + RECORD_HEADER_BYTES
                    + written[i + 1].len() as u64
                    > segment_bytes
            );
        }
    }
    let (_, recovered) = open(&config);
    assert_eq!(payloads(&recovered), written);
    let recovered_positions: Vec<_> = recovered.records.iter().map(|(p, _)| *p).collect();
    assert_eq!(recovered_positions, positions);
}

#[test]
fn a_record_larger_than_a_segment_gets_a_segment_of_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), 100);
    let big = Bytes::from(vec![7u8; 500]);
    let written = vec![
        Bytes::from_static(b"small"),
        big.clone(),
        Bytes::from_static(b"after"),
    ];
    let positions = {
        let (journal, _) = open(&config);
        append_all(&journal, &written)
    };
    assert_eq!(positions[0].segment, 1);
    assert_eq!(positions[1].segment, 2);
    assert_eq!(positions[1].offset, SEGMENT_HEADER_BYTES);
    assert_eq!(positions[2].segment, 3);
    assert_eq!(
        file_len(&segment_path(dir.path(), 2)),
        SEGMENT_HEADER_BYTES + RECORD_HEADER_BYTES + 500
    );
    let (_, recovered) = open(&config);
    assert_eq!(payloads(&recovered), written);
}

#[test]
fn deleted_segments_stay_deleted_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), 200);
    let written = records(100);
    let (journal, _) = open(&config);
    let positions = append_all(&journal, &written);
    let before = journal.disk_bytes();
    let victims = [1, 2, 5];
    let mut freed = 0;
    for victim in victims {
        freed += file_len(&segment_path(dir.path(), victim));
        journal.delete_segment(victim).unwrap();
    }
    assert_eq!(journal.disk_bytes(), before - freed);
    assert!(!journal.segments().iter().any(|s| victims.contains(s)));
    assert_eq!(journal.segments(), segment_files(dir.path()));
    let victim_position = positions.iter().find(|p| p.segment == 5).unwrap();
    assert!(matches!(
        journal.read(*victim_position),
        Err(ReadError::NoSuchSegment { segment: 5 })
    ));
    assert!(matches!(
        journal.delete_segment(5),
        Err(DeleteError::NoSuchSegment { segment: 5 })
    ));
    drop(journal);

    let expected: Vec<Bytes> = positions
        .iter()
        .zip(&written)
        .filter(|(p, _)| !victims.contains(&p.segment))
        .map(|(_, r)| r.clone())
        .collect();
    let (journal, recovered) = open(&config);
    assert_eq!(payloads(&recovered), expected);
    // Appending still works after deletions.
    append_all(&journal, &[Bytes::from_static(b"tail")]);
}

#[test]
fn the_current_segment_cannot_be_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), 200);
    let (journal, _) = open(&config);
    append_all(&journal, &records(30));
    let current = journal.current_segment();
    assert!(current > 1);
    assert!(matches!(
        journal.delete_segment(current),
        Err(DeleteError::Active { segment, current: c }) if segment == current && c == current
    ));
    assert!(matches!(
        journal.delete_segment(current + 3),
        Err(DeleteError::Active { .. })
    ));
    assert!(segment_path(dir.path(), current).exists());
}

#[test]
fn deleting_old_segments_while_appending() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), 256);
    let (journal, _) = open(&config);
    let journal = Arc::new(journal);
    let appender = {
        let journal = Arc::clone(&journal);
        thread::spawn(move || {
            let written = records(2000);
            let mut last = None;
            for record in &written {
                let (position, durable) = journal.append(record.clone(), false).unwrap();
                last = Some((position, durable));
            }
            let (_, durable) = last.unwrap();
            durable.wait_blocking().unwrap();
        })
    };
    let mut deleted = Vec::new();
    while !appender.is_finished() || deleted.is_empty() {
        let current = journal.current_segment();
        for segment in journal.segments() {
            if segment + 2 < current {
                journal.delete_segment(segment).unwrap();
                deleted.push(segment);
            }
        }
        thread::yield_now();
    }
    appender.join().unwrap();
    assert!(!deleted.is_empty());
    let segments = journal.segments();
    drop(journal);
    assert_eq!(segments, segment_files(dir.path()));
    let (_, recovered) = open(&config);
    assert!(recovered
        .records
        .iter()
        .all(|(p, _)| !deleted.contains(&p.segment)));
    // Everything in the surviving segments is the tail of what was appended, in order.
    let written = records(2000);
    let tail = &written[written.len() - recovered.records.len()..];
    assert_eq!(payloads(&recovered), tail);
}
