//! Segments prepared ahead of the writer (header written, blocks allocated), and what
//! recovery makes of their unused tails.

mod common;

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use hawser_journal::{Journal, JournalConfig, RECORD_HEADER_BYTES};

const SEGMENT_BYTES: u64 = 64 * 1024;

fn prepared_files(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".prealloc"))
        .collect()
}

/// Appends (durably) until appends go to a prepared segment: one whose file is already
/// `SEGMENT_BYTES` long. Bounded in time; returns everything appended.
fn append_until_prepared(journal: &Journal, dir: &Path) -> Vec<Bytes> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut written = Vec::new();
    loop {
        let record = Bytes::from(format!("record {}", written.len()));
        append_all(journal, std::slice::from_ref(&record));
        written.push(record);
        let current = segment_path(dir, journal.current_segment());
        if file_len(&current) == SEGMENT_BYTES {
            return written;
        }
        assert!(Instant::now() < deadline, "no prepared segment was used");
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn appends_move_to_a_prepared_segment_and_close_cuts_it_to_its_records() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), SEGMENT_BYTES);
    let written = {
        let (journal, _) = open(&config);
        let mut written = append_until_prepared(&journal, dir.path());
        // The first segment, made without preallocation, was left early.
        assert!(journal.current_segment() > 1);
        let more = records(50);
        append_all(&journal, &more);
        written.extend(more);
        written
    };
    assert!(
        prepared_files(dir.path()).is_empty(),
        "close removes the spare"
    );
    let (_, recovered) = open(&config);
    assert_eq!(payloads(&recovered), written);
    // Every segment, the last too, is as long as its records.
    for segment in segment_files(dir.path()) {
        let end = recovered
            .records
            .iter()
            .filter(|(p, _)| p.segment == segment)
            .map(|(p, r)| p.offset + RECORD_HEADER_BYTES + r.len() as u64)
            .max();
        if let Some(end) = end {
            assert_eq!(file_len(&segment_path(dir.path(), segment)), end);
        }
    }
}

#[test]
fn after_a_crash_the_unused_tail_is_cut_without_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let (journal, _) = open(&config(dir.path(), SEGMENT_BYTES));
    let written = append_until_prepared(&journal, dir.path());
    let current = journal.current_segment();
    // The files as a crash would leave them: the journal is still open.
    let crashed = copy_dir(dir.path());
    drop(journal);
    let leftover = crashed
        .path()
        .join("journal-00000000000000000999.log.prealloc");
    fs::write(&leftover, b"half prepared").unwrap();
    let last = segment_path(crashed.path(), current);
    assert_eq!(file_len(&last), SEGMENT_BYTES);

    let ((journal, recovered), logs) =
        capture_logs(|| open(&config(crashed.path(), SEGMENT_BYTES)));
    assert_eq!(payloads(&recovered), written);
    assert_eq!(recovered.truncated, None, "zeros are not a torn write");
    assert!(warnings(&logs).is_empty(), "{logs:?}");
    let (position, record) = recovered.records.last().unwrap();
    assert_eq!(position.segment, current);
    assert_eq!(
        file_len(&last),
        position.offset + RECORD_HEADER_BYTES + record.len() as u64
    );
    assert!(
        !leftover.exists(),
        "a half-prepared file is removed at open"
    );
    // And appending goes on after the cut.
    append_all(&journal, &[Bytes::from_static(b"after")]);
    drop(journal);
    let (_, recovered) = open(&config(crashed.path(), SEGMENT_BYTES));
    assert_eq!(recovered.records.len(), written.len() + 1);
}

#[test]
fn without_preallocation_files_grow_with_their_records() {
    let dir = tempfile::tempdir().unwrap();
    let config = JournalConfig {
        preallocate: false,
        ..config(dir.path(), SEGMENT_BYTES)
    };
    let (journal, _) = open(&config);
    let written = records(200);
    let positions = append_all(&journal, &written);
    std::thread::sleep(Duration::from_millis(50));
    assert!(prepared_files(dir.path()).is_empty());
    let last = positions.last().unwrap();
    assert_eq!(
        file_len(&segment_path(dir.path(), last.segment)),
        last.offset + RECORD_HEADER_BYTES + written.last().unwrap().len() as u64
    );
}
