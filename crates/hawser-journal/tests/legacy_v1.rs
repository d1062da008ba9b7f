//! Journals written by version 1 of the format (before record headers covered their
//! position) still open, recover exactly what was written, and take new records.
//!
//! The fixtures under `tests/fixtures/v1-*` were written by `write_fixtures` below, run
//! against the code of commit f23680a, "Journal: freeze v1 fixtures ..." (format
//! version 1):
//!
//! ```text
//! HAWSER_FIXTURE_OUT=/tmp/out cargo test --release -p hawser-journal --test legacy_v1 \
//!     -- --ignored write_fixtures
//! ```
//!
//! then `/tmp/out/journal` copied to `tests/fixtures/v1-journal` (segment files only; the
//! store's fixture of the same commit, `v1-store`, is the journal store's now). Run today, the same generator writes
//! the current format: `tests/fixtures/v2-*` were made so, and `frozen_v2.rs` reads them.

mod common;

use std::fs;
use std::path::Path;

use common::fixture::*;
use common::*;
use hawser_journal::parse_segment_file_name;

/// Keeps only the segment files of a freshly written journal directory.
fn keep_segments_only(dir: &Path) {
    for entry in fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        if name.to_str().and_then(parse_segment_file_name).is_none() {
            fs::remove_file(entry.path()).unwrap();
        }
    }
}

#[test]
#[ignore = "writes fixtures; run by hand, see the module comment"]
fn write_fixtures() {
    let out = std::env::var_os("HAWSER_FIXTURE_OUT").expect("set HAWSER_FIXTURE_OUT");
    let out = Path::new(&out);
    let journal = out.join("journal");
    {
        let (journal, _) = open(&config_without_preallocation(
            &journal,
            JOURNAL_SEGMENT_BYTES,
        ));
        append_all(&journal, &records(JOURNAL_RECORDS));
    }
    keep_segments_only(&journal);
}

#[test]
fn a_v1_journal_recovers_every_record_and_takes_more() {
    let dir = copy_fixture("v1-journal");
    let config = config(dir.path(), JOURNAL_SEGMENT_BYTES);
    let written = records(JOURNAL_RECORDS);
    let more: Vec<bytes::Bytes> = records(JOURNAL_RECORDS + 10).split_off(JOURNAL_RECORDS);
    {
        let (journal, recovered) = open(&config);
        assert_eq!(recovered.truncated, None);
        assert_eq!(payloads(&recovered), written);
        // Version 1 framed each record with 8 bytes: positions follow from the sizes.
        assert!(recovered.records.iter().all(|(p, _)| p.segment <= 7));
        for pair in recovered.records.windows(2) {
            let ((a, record), (b, _)) = (&pair[0], &pair[1]);
            if a.segment == b.segment {
                assert_eq!(b.offset, a.offset + 8 + record.len() as u64);
            } else {
                assert_eq!((b.segment, b.offset), (a.segment + 1, 20));
            }
        }
        for (position, record) in &recovered.records {
            assert_eq!(&journal.read(*position).unwrap(), record);
        }
        // Nothing is appended to a version 1 segment: new records go to a new segment
        // of the current format, and the old last segment stays as it was.
        assert_eq!(segment_files(dir.path()), (1..=8).collect::<Vec<_>>());
        assert_eq!(journal.current_segment(), 8);
        let positions = append_all(&journal, &more);
        assert!(positions.iter().all(|p| p.segment >= 8), "{positions:?}");
        for segment in 1..=7 {
            let name = hawser_journal::segment_file_name(segment);
            assert_eq!(
                fs::read(dir.path().join(&name)).unwrap(),
                fs::read(fixture_dir("v1-journal").join(&name)).unwrap(),
                "{name}"
            );
        }
    }
    let (_journal, recovered) = open(&config);
    assert_eq!(recovered.truncated, None);
    assert_eq!(payloads(&recovered), [written, more].concat());
}

#[test]
fn damage_in_the_middle_of_a_v1_last_segment_is_refused() {
    // Version 1 records do not say how far their segment was synced: any intact record
    // after the damage means the damage is not the end of what was written.
    let pristine = copy_fixture("v1-journal");
    let last = segment_path(pristine.path(), 7);
    let data = fs::read(&last).unwrap();
    let first = hawser_journal::SEGMENT_HEADER_BYTES as usize;
    for byte in [first, first + 3, first + 5, first + 9] {
        let dir = copy_dir(pristine.path());
        let path = segment_path(dir.path(), 7);
        let mut damaged = data.clone();
        damaged[byte] ^= 0x08;
        fs::write(&path, &damaged).unwrap();
        match hawser_journal::Journal::open(config(dir.path(), JOURNAL_SEGMENT_BYTES)) {
            Err(hawser_journal::OpenError::Corrupt { file, offset, .. }) => {
                assert_eq!((file, offset), (path.clone(), first as u64), "byte {byte}");
            }
            other => panic!("byte {byte}: expected Corrupt, got {:?}", other.map(|_| ())),
        }
        assert_eq!(fs::read(&path).unwrap(), damaged, "left as it was");
    }
}

#[test]
fn a_torn_v1_last_segment_is_cut_kept_aside_and_left_for_a_new_segment() {
    let dir = copy_fixture("v1-journal");
    let path = segment_path(dir.path(), 7);
    let data = fs::read(&path).unwrap();
    // The last record loses its last byte, and garbage follows.
    let mut torn = data[..data.len() - 1].to_vec();
    torn.extend_from_slice(&[0xEE; 7]);
    fs::write(&path, &torn).unwrap();
    let config = config(dir.path(), JOURNAL_SEGMENT_BYTES);
    let (journal, recovered) = open(&config);
    let written = records(JOURNAL_RECORDS);
    assert_eq!(payloads(&recovered), written[..JOURNAL_RECORDS - 1]);
    let (cut_file, cut_at) = recovered.truncated.clone().expect("cut");
    assert_eq!(cut_file, path);
    let copy = recovered.torn_tail_copy.clone().expect("kept");
    assert_eq!(fs::read(&copy).unwrap(), &torn[cut_at as usize..]);
    assert_eq!(journal.current_segment(), 8);
    append_all(&journal, &[bytes::Bytes::from_static(b"after")]);
    drop(journal);
    let (_journal, recovered) = open(&config);
    assert_eq!(recovered.records.len(), JOURNAL_RECORDS);
    assert_eq!(recovered.truncated, None);
}
