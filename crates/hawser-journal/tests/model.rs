//! Property test: random appends (sizes including 0) and deletions of old segments, with
//! reopens in between, always recover exactly the model: every record appended, minus
//! those in deleted segments, in append order.

mod common;

use std::collections::BTreeSet;

use bytes::Bytes;
use common::*;
use hawser_journal::{Position, MIN_SEGMENT_BYTES};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    Append {
        len: usize,
        sync: bool,
    },
    /// Deletes the `pick % n`-th of the n segments older than the current one, if any.
    DeleteOld {
        pick: usize,
    },
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (prop_oneof![Just(0usize), 0usize..40, 0usize..300], any::<bool>())
            .prop_map(|(len, sync)| Op::Append { len, sync }),
        2 => any::<usize>().prop_map(|pick| Op::DeleteOld { pick }),
        1 => Just(Op::Reopen),
    ]
}

fn check(segment_bytes: u64, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), segment_bytes);
    let mut model: Vec<(Position, Bytes)> = Vec::new();
    let mut deleted = BTreeSet::new();
    let (mut journal, _) = open(&config);
    let mut pending = Vec::new();
    for (i, op) in ops.into_iter().enumerate() {
        match op {
            Op::Append { len, sync } => {
                let record = Bytes::from(vec![(i % 256) as u8; len]);
                let (position, durable) = journal.append(record.clone(), sync).unwrap();
                if let Some((last, _)) = model.last() {
                    prop_assert!(position > *last);
                }
                model.push((position, record));
                pending.push(durable);
            }
            Op::DeleteOld { pick } => {
                let current = journal.current_segment();
                let old: Vec<u64> = journal
                    .segments()
                    .into_iter()
                    .filter(|&s| s < current)
                    .collect();
                if !old.is_empty() {
                    let victim = old[pick % old.len()];
                    journal.delete_segment(victim).unwrap();
                    deleted.insert(victim);
                }
            }
            Op::Reopen => {
                for durable in pending.drain(..) {
                    durable.wait_blocking().unwrap();
                }
                drop(journal);
                let (reopened, recovered) = open(&config);
                journal = reopened;
                prop_assert_eq!(recovered.truncated, None);
                let expected: Vec<_> = model
                    .iter()
                    .filter(|(p, _)| !deleted.contains(&p.segment))
                    .cloned()
                    .collect();
                prop_assert_eq!(recovered.records, expected);
            }
        }
    }
    for durable in pending.drain(..) {
        durable.wait_blocking().unwrap();
    }
    let segments = journal.segments();
    drop(journal);
    prop_assert_eq!(segments, segment_files(dir.path()));
    let (_, recovered) = open(&config);
    let expected: Vec<_> = model
        .into_iter()
        .filter(|(p, _)| !deleted.contains(&p.segment))
        .collect();
    prop_assert_eq!(recovered.records, expected);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn reopen_recovers_the_model(segment_bytes in MIN_SEGMENT_BYTES..600, ops in proptest::collection::vec(op(), 0..120)) {
        check(segment_bytes, ops)?;
    }
}
