//! Opening from a position (`Journal::open_from`): exactly the records from it
//! on are visited, whatever segment it is in; the journal appends where a full
//! open would; a position that is not a record's is refused, not guessed at;
//! and an epoch's layout names where its segments were inherited from.

mod common;

use bytes::Bytes;
use common::*;
use hawser_journal::{epoch_dir_name, Journal, JournalConfig, OpenError, Position};

/// Every record visited by an open resuming at whatever `choose` returns.
fn visited(
    config: &JournalConfig,
    choose: impl Fn(&[u64]) -> Option<Position>,
) -> Result<(Journal, Vec<(Position, Bytes)>), OpenError> {
    let mut seen = Vec::new();
    let (journal, _) = Journal::open_from(
        config.clone(),
        &mut |layout| choose(layout.segments),
        &mut |pos, payload| {
            seen.push((pos, Bytes::copy_from_slice(payload)));
            Ok(())
        },
    )?;
    Ok((journal, seen))
}

/// A closed journal of `count` records of 300 bytes in segments of 4 KiB.
fn written(count: u8) -> (tempfile::TempDir, JournalConfig, Vec<Bytes>, Vec<Position>) {
    let dir = tempfile::tempdir().unwrap();
    let config = config_without_preallocation(dir.path(), 4096);
    let (journal, _) = open(&config);
    let records: Vec<Bytes> = (0..count).map(|i| Bytes::from(vec![i; 300])).collect();
    let positions = append_all(&journal, &records);
    journal.close();
    (dir, config, records, positions)
}

#[test]
fn only_the_records_from_the_position_on_are_visited() {
    let (dir, config, records, positions) = written(60);
    assert!(positions.last().unwrap().segment >= positions[0].segment + 3);
    let disk_bytes = {
        let (journal, _) = open(&config);
        let n = journal.disk_bytes();
        journal.close();
        n
    };
    for from in [0, 1, 17, 30, 59] {
        let (journal, seen) = visited(&config, |_| Some(positions[from])).unwrap();
        let expected: Vec<(Position, Bytes)> = positions[from..]
            .iter()
            .copied()
            .zip(records[from..].iter().cloned())
            .collect();
        assert_eq!(seen, expected, "resuming at record {from}");
        assert_eq!(journal.disk_bytes(), disk_bytes, "segments skipped count");
        // It appends after the last record, as a full open does.
        let (next, durable) = journal.append(Bytes::from_static(b"next"), true).unwrap();
        durable.wait_blocking().unwrap();
        assert!(next > *positions.last().unwrap());
        journal.close();
        let (journal, seen) = visited(&config, |_| Some(next)).unwrap();
        assert_eq!(seen, vec![(next, Bytes::from_static(b"next"))]);
        journal.close();
        // Back to the sixty records, for the next round.
        std::fs::OpenOptions::new()
            .write(true)
            .open(segment_path(dir.path(), next.segment))
            .unwrap()
            .set_len(next.offset)
            .unwrap();
    }
}

#[test]
fn the_end_of_a_segments_records_resumes_with_the_next_segment() {
    let (dir, config, records, positions) = written(30);
    let first_of_next = positions
        .iter()
        .position(|p| p.segment > positions[0].segment)
        .unwrap();
    let end = Position {
        segment: positions[0].segment,
        offset: file_len(&segment_path(dir.path(), positions[0].segment)),
    };
    let (journal, seen) = visited(&config, |_| Some(end)).unwrap();
    assert_eq!(seen.len(), records.len() - first_of_next);
    assert_eq!(seen[0].0, positions[first_of_next]);
    journal.close();
}

#[test]
fn a_position_that_is_not_a_records_is_refused() {
    let (_dir, config, records, positions) = written(30);
    let inside = Position {
        offset: positions[3].offset + 1,
        ..positions[3]
    };
    let missing = Position {
        segment: positions.last().unwrap().segment + 5,
        offset: positions[0].offset,
    };
    for at in [inside, missing] {
        match visited(&config, |_| Some(at)) {
            Err(OpenError::NoResume { at: refused }) => assert_eq!(refused, at),
            Err(e) => panic!("resuming at {at}: {e}"),
            Ok(_) => panic!("resuming at {at} was accepted"),
        }
    }
    // Refusing changed nothing: a full open finds every record.
    let (journal, found) = open(&config);
    assert_eq!(payloads(&found), records);
    journal.close();
}

#[test]
fn a_new_epoch_shows_where_it_inherited_its_segments_from() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path();
    let epoch = |n| JournalConfig {
        epoch: Some(n),
        ..config(base, 4096)
    };
    let (first, _) = Journal::open(epoch(1)).unwrap();
    let positions = append_all(
        &first,
        &[Bytes::from_static(b"a"), Bytes::from_static(b"b")],
    );
    first.close();
    let mut shown = None;
    let (second, _) = Journal::open_from(
        epoch(2),
        &mut |layout| {
            shown = Some((
                layout.dir.to_path_buf(),
                layout.epoch,
                layout.inherited_from.map(|p| p.to_path_buf()),
                layout.seals.contains_key(&positions[0].segment),
            ));
            Some(positions[1])
        },
        &mut |_, payload| {
            assert_eq!(payload, b"b");
            Ok(())
        },
    )
    .unwrap();
    second.close();
    assert_eq!(
        shown,
        Some((
            base.join(epoch_dir_name(2)),
            Some(2),
            Some(base.join(epoch_dir_name(1))),
            true
        ))
    );
}
