//! Reading many records at once returns exactly what reading each one does:
//! runs of nearby records of a segment, gaps, several segments, positions out
//! of order and repeated, records still queued, and records far apart.

mod common;

use bytes::Bytes;
use common::*;
use hawser_journal::{Position, ReadError};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn read_many_is_read_of_each(
        sizes in prop::collection::vec(0usize..3000, 1..120),
        picks in prop::collection::vec(any::<prop::sample::Index>(), 1..60),
        segment_bytes in prop::sample::select(vec![4096u64, 16_384, 1 << 20]),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let (journal, _) = open(&config(dir.path(), segment_bytes));
        let records: Vec<Bytes> = sizes
            .iter()
            .enumerate()
            .map(|(i, &n)| Bytes::from(vec![(i % 251) as u8; n]))
            .collect();
        let positions = append_all(&journal, &records);
        let mut wanted: Vec<Position> = picks.iter().map(|i| positions[i.index(positions.len())]).collect();
        // Mostly in order, as a store reads a batch of a queue's messages.
        if !wanted.len().is_multiple_of(3) {
            wanted.sort();
        }
        let many = journal.read_many(&wanted).unwrap();
        prop_assert_eq!(many.len(), wanted.len());
        for (pos, bytes) in wanted.iter().zip(&many) {
            prop_assert_eq!(bytes, &journal.read(*pos).unwrap());
            let i = positions.iter().position(|p| p == pos).unwrap();
            prop_assert_eq!(bytes, &records[i]);
        }
        journal.close();
    }
}

#[test]
fn a_deleted_segment_or_a_position_past_the_end_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (journal, _) = open(&config_without_preallocation(dir.path(), 4096));
    let records: Vec<Bytes> = (0..40).map(|i| Bytes::from(vec![i as u8; 500])).collect();
    let positions = append_all(&journal, &records);
    let first = positions[0];
    assert!(positions.last().unwrap().segment > first.segment);
    let past = Position {
        segment: positions.last().unwrap().segment,
        offset: positions.last().unwrap().offset + 10_000,
    };
    assert!(matches!(
        journal.read_many(&[positions[1], past]),
        Err(ReadError::NotAppended { .. })
    ));
    journal.delete_segment(first.segment).unwrap();
    assert!(matches!(
        journal.read_many(&[first]),
        Err(ReadError::NoSuchSegment { .. })
    ));
    journal.close();
}
