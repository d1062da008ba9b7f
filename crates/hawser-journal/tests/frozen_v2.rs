//! Journals written by version 2 of the format, frozen under `tests/fixtures/v2-*` by
//! `write_fixtures` (see `legacy_v1.rs`) when version 2 was new: every later build must
//! recover them exactly and go on appending to them.

mod common;

use bytes::Bytes;
use common::fixture::*;
use common::*;
use hawser_journal::{RECORD_HEADER_BYTES, SEGMENT_HEADER_BYTES};

#[test]
fn a_v2_journal_recovers_every_record_and_appends_to_its_last_segment() {
    let dir = copy_fixture("v2-journal");
    let config = config(dir.path(), JOURNAL_SEGMENT_BYTES);
    let written = records(JOURNAL_RECORDS);
    let more: Vec<Bytes> = records(JOURNAL_RECORDS + 3).split_off(JOURNAL_RECORDS);
    {
        let (journal, recovered) = open(&config);
        assert_eq!(recovered.truncated, None);
        assert_eq!(payloads(&recovered), written);
        for pair in recovered.records.windows(2) {
            let ((a, record), (b, _)) = (&pair[0], &pair[1]);
            if a.segment == b.segment {
                assert_eq!(
                    b.offset,
                    a.offset + RECORD_HEADER_BYTES + record.len() as u64
                );
            } else {
                assert_eq!((b.segment, b.offset), (a.segment + 1, SEGMENT_HEADER_BYTES));
            }
        }
        let last = recovered.records.last().unwrap().0.segment;
        assert_eq!(journal.current_segment(), last, "a v2 segment takes more");
        append_all(&journal, &more);
    }
    let (_journal, recovered) = open(&config);
    assert_eq!(payloads(&recovered), [written, more].concat());
}
