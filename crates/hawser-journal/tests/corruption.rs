//! Damage that cannot come from a crash is refused, naming the file and the offset.

mod common;

use std::fs;

use bytes::Bytes;
use common::*;
use hawser_journal::{
    header_checksum, Corruption, Journal, OpenError, Position, RECORD_HEADER_BYTES,
    SEGMENT_HEADER_BYTES,
};

/// Three full segments of ten records each (plus the current one); returns positions.
fn journal_of_segments(dir: &std::path::Path) -> Vec<Position> {
    let config = config(dir, 200);
    let (journal, _) = open(&config);
    let written: Vec<Bytes> = (0..40u8).map(|i| Bytes::from(vec![i; 10])).collect();
    let positions = append_all(&journal, &written);
    assert!(journal.current_segment() >= 3);
    positions
}

fn open_error(dir: &std::path::Path) -> OpenError {
    Journal::open(config(dir, 200)).expect_err("open must refuse a corrupt journal")
}

#[test]
fn a_flipped_byte_in_an_older_segment_is_corruption() {
    let pristine = tempfile::tempdir().unwrap();
    let positions = journal_of_segments(pristine.path());
    let in_segment_1: Vec<Position> = positions
        .iter()
        .copied()
        .filter(|p| p.segment == 1)
        .collect();
    let end_of_segment_1 = file_len(&segment_path(pristine.path(), 1));
    // Every byte of every record in segment 1: framing and payload alike.
    for (i, record) in in_segment_1.iter().enumerate() {
        let record_end = in_segment_1
            .get(i + 1)
            .map_or(end_of_segment_1, |p| p.offset);
        for byte in record.offset..record_end {
            let dir = copy_dir(pristine.path());
            let path = segment_path(dir.path(), 1);
            let mut data = fs::read(&path).unwrap();
            data[byte as usize] ^= 0x04;
            fs::write(&path, &data).unwrap();
            match open_error(dir.path()) {
                OpenError::Corrupt {
                    file,
                    offset,
                    reason,
                } => {
                    assert_eq!(file, path);
                    assert_eq!(offset, record.offset, "flipped byte {byte}: {reason}");
                }
                other => panic!("flipped byte {byte}: expected Corrupt, got {other}"),
            }
            // The file is left as it was: corruption is reported, never repaired.
            assert_eq!(fs::read(&path).unwrap(), data);
        }
    }
}

#[test]
fn a_payload_flip_reports_a_checksum_mismatch() {
    let dir = tempfile::tempdir().unwrap();
    let positions = journal_of_segments(dir.path());
    let victim = positions.iter().filter(|p| p.segment == 2).nth(3).unwrap();
    let path = segment_path(dir.path(), 2);
    let mut data = fs::read(&path).unwrap();
    data[(victim.offset + RECORD_HEADER_BYTES) as usize + 5] ^= 0xFF;
    fs::write(&path, data).unwrap();
    let error = open_error(dir.path());
    match &error {
        OpenError::Corrupt {
            file,
            offset,
            reason,
        } => {
            assert_eq!(file, &path);
            assert_eq!(*offset, victim.offset);
            assert!(matches!(reason, Corruption::ChecksumMismatch { .. }));
        }
        other => panic!("expected Corrupt, got {other}"),
    }
    let message = error.to_string();
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(message.contains(&victim.offset.to_string()), "{message}");
}

#[test]
fn a_truncated_older_segment_is_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let positions = journal_of_segments(dir.path());
    let last_of_1 = positions.iter().rfind(|p| p.segment == 1).unwrap();
    let path = segment_path(dir.path(), 1);
    let length = file_len(&path);
    fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(length - 1)
        .unwrap();
    assert!(matches!(
        open_error(dir.path()),
        OpenError::Corrupt { file, offset, reason: Corruption::ShortPayload { .. } }
            if file == path && offset == last_of_1.offset
    ));
}

#[test]
fn bad_file_headers_are_refused() {
    type Damage = fn(&mut Vec<u8>);
    type Expected = fn(&Corruption) -> bool;
    let cases: [(&str, Damage, Expected); 4] = [
        (
            "magic",
            |d| d[3] ^= 1,
            |r| matches!(r, Corruption::BadMagic { .. }),
        ),
        (
            "version",
            |d| d[8] = 9,
            |r| matches!(r, Corruption::UnsupportedVersion { found: 9 }),
        ),
        (
            "segment id",
            |d| d[12] ^= 0x40,
            |r| matches!(r, Corruption::SegmentIdMismatch { in_name: 2, .. }),
        ),
        (
            "short",
            |d| d.truncate(7),
            |r| matches!(r, Corruption::ShortHeader { len: 7 }),
        ),
    ];
    for (what, damage, expected) in cases {
        let dir = tempfile::tempdir().unwrap();
        journal_of_segments(dir.path());
        let path = segment_path(dir.path(), 2);
        let mut data = fs::read(&path).unwrap();
        damage(&mut data);
        fs::write(&path, data).unwrap();
        match open_error(dir.path()) {
            OpenError::Corrupt {
                file,
                offset,
                reason,
            } => {
                assert_eq!(file, path, "{what}");
                assert_eq!(offset, 0, "{what}");
                assert!(expected(&reason), "{what}: {reason}");
            }
            other => panic!("{what}: expected Corrupt, got {other}"),
        }
    }
}

#[test]
fn a_bad_header_in_the_last_segment_is_refused_too() {
    // Unlike a short or zeroed header, a wrong magic cannot come from a crash.
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), 1 << 20);
    {
        let (journal, _) = open(&config);
        append_all(&journal, &records(5));
    }
    let path = segment_path(dir.path(), 1);
    let mut data = fs::read(&path).unwrap();
    data[0] = b'X';
    fs::write(&path, data).unwrap();
    assert!(matches!(
        Journal::open(config),
        Err(OpenError::Corrupt {
            offset: 0,
            reason: Corruption::BadMagic { .. },
            ..
        })
    ));
}

#[test]
fn a_record_length_over_the_limit_in_an_older_segment_is_corruption() {
    let pristine = tempfile::tempdir().unwrap();
    journal_of_segments(pristine.path());
    let at = SEGMENT_HEADER_BYTES as usize;
    // A damaged length fails the header checksum before anything trusts it.
    let dir = copy_dir(pristine.path());
    let path = segment_path(dir.path(), 1);
    let mut data = fs::read(&path).unwrap();
    data[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    fs::write(&path, &data).unwrap();
    assert!(matches!(
        open_error(dir.path()),
        OpenError::Corrupt { offset, reason: Corruption::HeaderChecksumMismatch { .. }, .. }
            if offset == SEGMENT_HEADER_BYTES
    ));
    // A length above the limit with a header that verifies (written with a larger
    // max_record_bytes) is refused before any allocation of that size.
    let field = |i: usize| u32::from_le_bytes(data[at + i..at + i + 4].try_into().unwrap());
    let (synced, payload_checksum) = (field(4), field(8));
    let position = Position {
        segment: 1,
        offset: SEGMENT_HEADER_BYTES,
    };
    let forged = header_checksum(position, u32::MAX, synced, payload_checksum);
    data[at + 12..at + 16].copy_from_slice(&forged.to_le_bytes());
    fs::write(&path, &data).unwrap();
    assert!(matches!(
        open_error(dir.path()),
        OpenError::Corrupt { offset, reason: Corruption::RecordTooLarge { .. }, .. }
            if offset == SEGMENT_HEADER_BYTES
    ));
}

/// One segment of ten records, each appended after the one before was durable: every
/// record was written after an fsync that covered all the records before it.
fn last_segment_of_synced_records(dir: &std::path::Path) -> Vec<Position> {
    // Without preallocation, which would move appends on to a prepared segment.
    let (journal, _) = open(&config_without_preallocation(dir, 1 << 20));
    let positions: Vec<Position> = (0..10u8)
        .map(|i| append_all(&journal, &[Bytes::from(vec![i; 30])])[0])
        .collect();
    assert!(positions.iter().all(|p| p.segment == 1), "{positions:?}");
    positions
}

#[test]
fn damage_in_the_middle_of_the_last_segment_is_corruption() {
    let pristine = tempfile::tempdir().unwrap();
    let positions = last_segment_of_synced_records(pristine.path());
    let victim = positions[4];
    let next = positions[5];
    for byte in victim.offset..next.offset {
        let dir = copy_dir(pristine.path());
        let path = segment_path(dir.path(), 1);
        let mut data = fs::read(&path).unwrap();
        data[byte as usize] ^= 0x10;
        fs::write(&path, &data).unwrap();
        match Journal::open(config(dir.path(), 1 << 20)) {
            Err(OpenError::Corrupt { file, offset, .. }) => {
                assert_eq!(file, path, "flipped byte {byte}");
                assert_eq!(offset, victim.offset, "flipped byte {byte}");
            }
            Err(other) => panic!("flipped byte {byte}: expected Corrupt, got {other}"),
            Ok((_, recovered)) => panic!(
                "flipped byte {byte}: damage before durable records was cut as a torn tail, {} records left",
                recovered.records.len()
            ),
        }
        assert_eq!(fs::read(&path).unwrap(), data, "left as it was");
    }
}
