//! Crash consistency: the journal runs on a simulated disk (`sim_disk`) that stops at a
//! random operation and then loses power (unsynced writes kept, dropped, torn or
//! reordered; unsynced directory entries kept or lost) or loses only the process (the
//! page cache survives, and a later power loss may still drop it). Then the real
//! recovery opens what is left, and the checker asserts:
//!
//! - every record confirmed before the crash (its `Durable` completed `Ok` after an
//!   fsync, or it was recovered by an earlier open) is recovered, in order, at its
//!   position, with its bytes, unless it was in a segment being deleted;
//! - nothing else is recovered but records that were appended, and in the segments not
//!   being deleted they form a prefix of what was appended;
//! - no open is ever refused as corrupt: the disk only damages what was never synced,
//!   and by design that is always a torn tail (see `scan::judge_tail`).
//!
//! Several crashes follow each other in one case (a crash may also hit a recovery). Each
//! case runs from a seed, printed when it fails: `HAWSER_CRASH_SEED=<seed>` runs that
//! case alone (the journal's threads make the interleaving vary a little between runs).
//! `HAWSER_CRASH_CASES` sets how many cases run.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::Ordering;

use bytes::Bytes;

use crate::crash_harness::{end_phase, run_cases, seeds, Coverage, Ending};
use crate::sim_disk::{Rng, SimDisk};
use crate::{
    AppendError, Durable, Journal, JournalConfig, OpenError, Position, StorageHandle,
    MIN_SEGMENT_BYTES,
};

const DIR: &str = "/journal";

fn config(disk: &SimDisk, segment_bytes: u64, preallocate: bool) -> JournalConfig {
    JournalConfig {
        segment_bytes,
        max_record_bytes: 4096,
        preallocate,
        storage: StorageHandle::new(disk.clone()),
        ..JournalConfig::new(Path::new(DIR))
    }
}

/// Everything a case knows about what should be on the disk.
#[derive(Default)]
struct Expected {
    /// Every record that may be recovered, in append order: what the last open
    /// recovered, then what was appended since.
    appended: Vec<(Position, Bytes)>,
    /// How many records of `appended` are confirmed (a prefix).
    confirmed: usize,
    /// Segments a delete was asked for since the last open: their records may or may
    /// not come back.
    deleting: BTreeSet<u64>,
}

impl Expected {
    fn check(&self, recovered: &[(Position, Bytes)]) -> Result<(), String> {
        let kept = |records: &[(Position, Bytes)]| -> Vec<(Position, Bytes)> {
            records
                .iter()
                .filter(|(p, _)| !self.deleting.contains(&p.segment))
                .cloned()
                .collect()
        };
        let appended = kept(&self.appended);
        let found = kept(recovered);
        if found.len() > appended.len() || found[..] != appended[..found.len()] {
            let first_wrong = found
                .iter()
                .zip(&appended)
                .position(|(a, b)| a != b)
                .unwrap_or(appended.len());
            return Err(format!(
                "recovered records are not a prefix of those appended: {} recovered, {} appended, first difference at {first_wrong}: {:?} vs {:?}",
                found.len(),
                appended.len(),
                found.get(first_wrong).map(|r| r.0),
                appended.get(first_wrong).map(|r| r.0),
            ));
        }
        let confirmed = kept(&self.appended[..self.confirmed]);
        if found.len() < confirmed.len() {
            return Err(format!(
                "a confirmed record was lost: {} confirmed, {} recovered; first lost at {}",
                confirmed.len(),
                found.len(),
                confirmed[found.len()].0
            ));
        }
        // Records of segments being deleted must still be records that were appended.
        for record in recovered {
            if self.deleting.contains(&record.0.segment) && !self.appended.contains(record) {
                return Err(format!("record at {} was never appended", record.0));
            }
        }
        if recovered.windows(2).any(|w| w[0].0 >= w[1].0) {
            return Err("recovered records are out of order".into());
        }
        Ok(())
    }
}

/// One case: a few phases of appends, deletes and crashes on one simulated disk.
fn journal_case(seed: u64, coverage: &Coverage) {
    let mut rng = Rng::new(seed);
    let segment_bytes = [MIN_SEGMENT_BYTES + 40, 160, 512, 2048][rng.below(4) as usize];
    let preallocate = rng.chance(60);
    let mut disk = SimDisk::new();
    let mut expected = Expected::default();
    let phases = 2 + rng.below(3);
    for phase in 0..phases {
        // Sometimes the crash hits the recovery itself.
        let crash_in_recovery = phase > 0 && rng.chance(20);
        if crash_in_recovery {
            disk.stop_after(1 + rng.below(6));
        }
        let opened = Journal::open(config(&disk, segment_bytes, preallocate));
        let (journal, recovered) = match opened {
            Ok(opened) => opened,
            Err(OpenError::Io { .. }) if crash_in_recovery => {
                Coverage::add(&coverage.crashed_recoveries, 1);
                let ending = if rng.chance(50) {
                    Ending::PowerLoss
                } else {
                    Ending::ProcessCrash
                };
                disk = end_phase(disk, ending, &mut rng, coverage);
                continue;
            }
            Err(e) => panic!("phase {phase}: open failed: {e}"),
        };
        Coverage::add(&coverage.opens, 1);
        if recovered.truncated.is_some() {
            Coverage::add(&coverage.torn_cuts, 1);
        }
        if let Err(problem) = expected.check(&recovered.records) {
            panic!("phase {phase}: {problem}");
        }
        // Whatever an open recovered is durable from then on (recovery fsyncs it).
        expected = Expected {
            confirmed: recovered.records.len(),
            appended: recovered.records,
            deleting: BTreeSet::new(),
        };
        if crash_in_recovery {
            // The stop was not reached: let the phase choose its own.
            disk.clear_stop();
        }
        let ending = Ending::pick(&mut rng);
        if !matches!(ending, Ending::Close) {
            disk.stop_after(1 + rng.below(150));
        }
        run_workload(&journal, &mut expected, &mut rng, coverage);
        if matches!(ending, Ending::Close) && !disk.is_stopped() {
            journal.close();
        }
        // The process is gone: its journal does nothing more (the disk refuses it).
        disk.stop_now();
        drop(journal);
        disk = end_phase(disk, ending, &mut rng, coverage);
    }
    let (_journal, recovered) = match Journal::open(config(&disk, segment_bytes, preallocate)) {
        Ok(opened) => opened,
        Err(e) => panic!("final open failed: {e}"),
    };
    if let Err(problem) = expected.check(&recovered.records) {
        panic!("final open: {problem}");
    }
}

/// Appends bursts of records (some synced, some not), waits for them, deletes an old
/// segment now and then; until the disk stops or the workload is done.
fn run_workload(journal: &Journal, expected: &mut Expected, rng: &mut Rng, coverage: &Coverage) {
    let bursts = 1 + rng.below(40);
    for _ in 0..bursts {
        let mut pending: Vec<(usize, bool, Durable)> = Vec::new();
        for _ in 0..1 + rng.below(6) {
            let len = [0, 1, 17, 60, 300][rng.below(5) as usize];
            let fill = (expected.appended.len() % 251) as u8;
            let record = Bytes::from(vec![fill; len]);
            let sync = rng.chance(60);
            match journal.append(record.clone(), sync) {
                Ok((position, durable)) => {
                    expected.appended.push((position, record));
                    pending.push((expected.appended.len() - 1, sync, durable));
                }
                Err(AppendError::Failed { .. } | AppendError::Closed) => return,
                Err(e) => panic!("append: {e}"),
            }
        }
        let mut failed = false;
        for (index, sync, durable) in pending {
            match durable.wait_blocking() {
                // A synced record confirmed: it and everything before it are durable.
                Ok(()) if sync => {
                    Coverage::add(&coverage.confirmed, (index + 1 - expected.confirmed) as u64);
                    expected.confirmed = index + 1;
                }
                Ok(()) => {}
                Err(_) => failed = true,
            }
        }
        if failed {
            return;
        }
        if rng.chance(15) {
            let current = journal.current_segment();
            let old: Vec<u64> = journal
                .segments()
                .into_iter()
                .filter(|&s| s < current)
                .collect();
            if !old.is_empty() {
                let victim = old[rng.below(old.len() as u64) as usize];
                expected.deleting.insert(victim);
                if journal.delete_segment(victim).is_err() {
                    return;
                }
            }
        }
    }
}

#[test]
fn every_confirmed_record_survives_crashes() {
    let coverage = Coverage::default();
    run_cases(0x6a6f75726e616c, |seed| journal_case(seed, &coverage));
    let opens = coverage.opens.load(Ordering::Relaxed);
    let torn = coverage.torn_cuts.load(Ordering::Relaxed);
    eprintln!(
        "journal crash cases: {opens} opens, {torn} torn tails cut, {} power losses, {} process crashes, {} crashed recoveries, {} records confirmed",
        coverage.power_losses.load(Ordering::Relaxed),
        coverage.process_crashes.load(Ordering::Relaxed),
        coverage.crashed_recoveries.load(Ordering::Relaxed),
        coverage.confirmed.load(Ordering::Relaxed),
    );
    if std::env::var("HAWSER_CRASH_SEED").is_err() {
        assert!(torn > 0, "no case tore a tail: the test does not test much");
    }
}

/// A takeover (epoch directory, hard links, `SEALS`) that crashes at any of its steps
/// leaves either no complete epoch directory or one with every segment it names: the
/// next takeover recovers every confirmed record.
#[test]
fn a_takeover_that_crashes_at_any_step_loses_nothing() {
    let epoch_config = |disk: &SimDisk, epoch| JournalConfig {
        epoch: Some(epoch),
        ..config(disk, 160, false)
    };
    let mut crashes = 0;
    for seed in seeds(0x65706f6368).into_iter().take(40) {
        let mut rng = Rng::new(seed);
        let disk = SimDisk::new();
        let (journal, _) = Journal::open(epoch_config(&disk, 1)).unwrap();
        let written: Vec<Bytes> = (0..12u8).map(|i| Bytes::from(vec![i; 40])).collect();
        for record in &written {
            journal
                .append(record.clone(), true)
                .unwrap()
                .1
                .wait_blocking()
                .unwrap();
        }
        journal.close();
        drop(journal);
        for stop in 1.. {
            let attempt = disk.power_loss(&mut rng);
            attempt.stop_after(stop);
            match Journal::open(epoch_config(&attempt, 2)) {
                Ok((journal, recovered)) => {
                    let payloads: Vec<Bytes> = recovered.records.into_iter().map(|r| r.1).collect();
                    assert_eq!(payloads, written, "seed {seed}: no crash");
                    drop(journal);
                    break;
                }
                Err(OpenError::Io { .. }) => {}
                Err(e) => panic!("seed {seed}, stop {stop}: {e}"),
            }
            crashes += 1;
            let after = attempt.power_loss(&mut rng);
            for epoch in [2, 3] {
                let (journal, recovered) = Journal::open(epoch_config(&after, epoch))
                    .unwrap_or_else(|e| panic!("seed {seed}, stop {stop}, epoch {epoch}: {e}"));
                let payloads: Vec<Bytes> = recovered.records.into_iter().map(|r| r.1).collect();
                assert_eq!(payloads, written, "seed {seed}, stop {stop}, epoch {epoch}");
                drop(journal);
            }
        }
    }
    assert!(crashes > 40, "{crashes}");
}
