//! Crash recovery: a damaged end of the last segment is cut off, logged, and appending
//! resumes after it.

mod common;

use std::fs::{self, OpenOptions};
use std::io::Write;

use bytes::Bytes;
use common::*;
use hawser_journal::{
    encode_record_header, encode_segment_header, torn_tail_file_name, Position,
    RECORD_HEADER_BYTES, SEGMENT_HEADER_BYTES,
};

/// What a recovery keeps of a torn tail: its bytes without trailing zeros, or nothing.
fn kept(bytes: &[u8]) -> Option<Vec<u8>> {
    let end = bytes.len() - bytes.iter().rev().take_while(|&&b| b == 0).count();
    (end > 0).then(|| bytes[..end].to_vec())
}

/// Asserts that the torn tail cut from `segment` at `offset` was kept as `expected`.
fn assert_kept(
    dir: &std::path::Path,
    recovered_copy: &Option<std::path::PathBuf>,
    segment: u64,
    offset: u64,
    expected: Option<Vec<u8>>,
) {
    let path = dir.join(torn_tail_file_name(segment, offset));
    match expected {
        Some(bytes) => {
            assert_eq!(recovered_copy.as_ref(), Some(&path));
            assert_eq!(fs::read(&path).unwrap(), bytes);
        }
        None => {
            assert_eq!(recovered_copy, &None);
            assert!(!path.exists());
        }
    }
}

/// Builds a journal of two segments whose last one holds three records; returns the
/// records and the offset of the last record in the last segment.
fn journal_with_last_record(dir: &std::path::Path) -> (Vec<Bytes>, u64, u64) {
    let config = config(dir, 120);
    let written: Vec<Bytes> = vec![
        Bytes::from(vec![1u8; 80]),
        Bytes::from(vec![2u8; 10]),
        Bytes::from(vec![3u8; 10]),
        Bytes::from(vec![4u8; 20]),
    ];
    let (journal, _) = open(&config);
    let positions = append_all(&journal, &written);
    assert_eq!(positions[0].segment, 1);
    assert!(
        positions[1..].iter().all(|p| p.segment == 2),
        "{positions:?}"
    );
    let last = positions[3];
    (written, last.segment, last.offset)
}

#[test]
fn truncation_at_every_byte_of_the_last_record_is_recovered() {
    let original = tempfile::tempdir().unwrap();
    let (written, segment, last_offset) = journal_with_last_record(original.path());
    let end = last_offset + RECORD_HEADER_BYTES + written[3].len() as u64;
    assert_eq!(file_len(&segment_path(original.path(), segment)), end);

    let original_bytes = fs::read(segment_path(original.path(), segment)).unwrap();
    for cut_at in last_offset..end {
        let dir = copy_dir(original.path());
        let path = segment_path(dir.path(), segment);
        OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(cut_at)
            .unwrap();
        let config = config(dir.path(), 120);

        let ((journal, recovered), logs) = capture_logs(|| open(&config));
        assert_eq!(payloads(&recovered), written[..3], "cut at {cut_at}");
        let expected_truncation = (cut_at > last_offset).then(|| (path.clone(), last_offset));
        assert_eq!(recovered.truncated, expected_truncation, "cut at {cut_at}");
        let warned = warnings(&logs);
        if cut_at > last_offset {
            assert_eq!(warned.len(), 1, "cut at {cut_at}: {logs:?}");
            assert!(
                warned[0].fields.contains(&path.display().to_string()),
                "{:?}",
                warned[0]
            );
            assert!(
                warned[0].fields.contains(&format!("offset={last_offset}")),
                "{:?}",
                warned[0]
            );
        } else {
            assert!(warned.is_empty(), "{logs:?}");
        }
        assert_eq!(
            file_len(&path),
            last_offset,
            "file cut at the last good record"
        );
        let cut_bytes = &original_bytes[last_offset as usize..cut_at as usize];
        assert_kept(
            dir.path(),
            &recovered.torn_tail_copy,
            segment,
            last_offset,
            kept(cut_bytes),
        );
        if let Some(copy) = &recovered.torn_tail_copy {
            assert!(
                warned[0].fields.contains(&copy.display().to_string()),
                "the warning names the copy: {:?}",
                warned[0]
            );
        }

        let fresh = Bytes::from_static(b"appended after recovery");
        let positions = append_all(&journal, std::slice::from_ref(&fresh));
        assert_eq!(positions[0].offset, last_offset);
        drop(journal);
        let (_, recovered) = open(&config);
        assert_eq!(recovered.truncated, None);
        let mut expected = written[..3].to_vec();
        expected.push(fresh);
        assert_eq!(payloads(&recovered), expected);
    }
}

#[test]
fn garbage_after_the_last_record_is_cut() {
    for garbage in [
        vec![0xAB; 37],
        vec![0xFF; 3],
        vec![0; 64],
        [vec![0; 20], vec![1]].concat(),
        b"\x05\0\0\0not a record".to_vec(),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let (written, segment, last_offset) = journal_with_last_record(dir.path());
        let path = segment_path(dir.path(), segment);
        let end = last_offset + RECORD_HEADER_BYTES + written[3].len() as u64;
        OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(&garbage)
            .unwrap();

        let ((journal, recovered), logs) = capture_logs(|| open(&config(dir.path(), 120)));
        assert_eq!(payloads(&recovered), written, "garbage {garbage:?}");
        if garbage.iter().all(|&b| b == 0) {
            // The unused end of a preallocated segment: cut, but nothing was torn.
            assert_eq!(recovered.truncated, None);
            assert_eq!(warnings(&logs).len(), 0);
        } else {
            assert_eq!(recovered.truncated, Some((path.clone(), end)));
            assert_eq!(warnings(&logs).len(), 1);
        }
        assert_kept(
            dir.path(),
            &recovered.torn_tail_copy,
            segment,
            end,
            kept(&garbage),
        );
        assert_eq!(file_len(&path), end);
        append_all(&journal, &[Bytes::from_static(b"more")]);
        drop(journal);
        // The copy is not a segment: kept, and ignored by later opens.
        let (_, recovered) = open(&config(dir.path(), 120));
        assert_eq!(recovered.records.len(), written.len() + 1);
        assert_eq!(recovered.truncated, None);
        assert_eq!(recovered.torn_tail_copy, None);
        let copy = dir.path().join(torn_tail_file_name(segment, end));
        assert_eq!(fs::read(&copy).ok(), kept(&garbage));
    }
}

#[test]
fn a_torn_segment_header_is_rewritten() {
    // A crash while the writer created the next segment leaves it short or zeroed.
    for torn in [Vec::new(), b"HWSRJ".to_vec(), vec![0; 19], vec![0; 300]] {
        let dir = tempfile::tempdir().unwrap();
        let (written, segment, _) = journal_with_last_record(dir.path());
        let next = segment_path(dir.path(), segment + 1);
        fs::write(&next, &torn).unwrap();

        let ((journal, recovered), logs) = capture_logs(|| open(&config(dir.path(), 120)));
        assert_eq!(payloads(&recovered), written);
        assert_eq!(recovered.truncated, Some((next.clone(), 0)));
        assert_eq!(warnings(&logs).len(), 1, "{logs:?}");
        assert_kept(
            dir.path(),
            &recovered.torn_tail_copy,
            segment + 1,
            0,
            kept(&torn),
        );
        assert_eq!(file_len(&next), SEGMENT_HEADER_BYTES);
        assert_eq!(journal.current_segment(), segment + 1);
        let positions = append_all(&journal, &[Bytes::from_static(b"x")]);
        assert_eq!(positions[0].segment, segment + 1);
        drop(journal);
        let (_, recovered) = open(&config(dir.path(), 120));
        assert_eq!(recovered.records.len(), written.len() + 1);
    }
}

#[test]
fn intact_records_after_the_damage_that_were_written_before_it_was_synced_are_cut() {
    // Segment 1 as the writer leaves it: two records confirmed one at a time, then a batch
    // of three written after the second one's fsync, not yet synced itself.
    let dir = tempfile::tempdir().unwrap();
    let mut data = encode_segment_header(1).to_vec();
    let mut offsets = Vec::new();
    let mut synced = SEGMENT_HEADER_BYTES as u32;
    for (i, batch_start) in [(0u8, true), (1, true), (2, true), (3, false), (4, false)] {
        let at = Position {
            segment: 1,
            offset: data.len() as u64,
        };
        if batch_start {
            synced = at.offset as u32;
        }
        offsets.push(at.offset);
        let payload = vec![i; 25];
        data.extend_from_slice(&encode_record_header(at, synced, &payload));
        data.extend_from_slice(&payload);
    }
    // The crash: the batch's first record never reached the disk, the other two did.
    let mut crashed = data.clone();
    crashed[offsets[2] as usize..offsets[3] as usize].fill(0);
    let path = segment_path(dir.path(), 1);
    fs::write(&path, &crashed).unwrap();

    let ((_journal, recovered), logs) = capture_logs(|| open(&config(dir.path(), 1 << 20)));
    assert_eq!(
        payloads(&recovered),
        vec![Bytes::from(vec![0; 25]), Bytes::from(vec![1; 25])]
    );
    assert_eq!(recovered.truncated, Some((path.clone(), offsets[2])));
    assert_eq!(warnings(&logs).len(), 1, "{logs:?}");
    assert_kept(
        dir.path(),
        &recovered.torn_tail_copy,
        1,
        offsets[2],
        kept(&crashed[offsets[2] as usize..]),
    );
}
