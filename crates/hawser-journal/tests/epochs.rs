//! Epoch directories: a new master inherits the journal sealed, and whatever the
//! master before it goes on doing (appending, rotating, deleting) never reaches
//! the new master's store. The fence stops confirmations.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use common::{append_all, config, payloads};
use hawser_journal::{epoch_dir_name, ConfirmCheck, Journal, JournalConfig, OpenError, WriteError};

fn epoch_config(base: &std::path::Path, epoch: u64, segment_bytes: u64) -> JournalConfig {
    JournalConfig {
        epoch: Some(epoch),
        ..config(base, segment_bytes)
    }
}

fn bytes(items: &[&str]) -> Vec<Bytes> {
    items.iter().map(|s| Bytes::from(s.to_string())).collect()
}

#[test]
fn what_a_superseded_master_writes_later_is_not_in_the_new_store() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path();
    let (old, found) = Journal::open(epoch_config(base, 1, 1 << 20)).unwrap();
    assert!(found.records.is_empty());
    append_all(&old, &bytes(&["a1", "a2"]));

    // A new master takes over while the old one still runs.
    let (new, found) = Journal::open(epoch_config(base, 2, 1 << 20)).unwrap();
    assert_eq!(payloads(&found), bytes(&["a1", "a2"]));

    // The old master does not know yet: it appends to the file both directories link.
    append_all(&old, &bytes(&["stale"]));
    append_all(&new, &bytes(&["b1"]));
    old.close();
    new.close();

    for reopened_epoch in [2, 3] {
        let (j, found) = Journal::open(epoch_config(base, reopened_epoch, 1 << 20)).unwrap();
        assert_eq!(
            payloads(&found),
            bytes(&["a1", "a2", "b1"]),
            "epoch {reopened_epoch} sees the takeover state plus what epoch 2 wrote"
        );
        j.close();
    }
}

#[test]
fn an_old_masters_new_segments_and_deletions_stay_in_its_own_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path();
    // Tiny segments: every record fills one.
    let (old, _) = Journal::open(epoch_config(base, 1, 64)).unwrap();
    let big = |tag: &str| Bytes::from(format!("{tag}{}", "x".repeat(40)));
    append_all(&old, &[big("a"), big("b"), big("c")]);
    let first = *old.segments().first().unwrap();

    let (new, found) = Journal::open(epoch_config(base, 2, 64)).unwrap();
    assert_eq!(found.records.len(), 3);

    // The old master rotates on and deletes its oldest segment.
    append_all(&old, &[big("stale1"), big("stale2")]);
    old.delete_segment(first).unwrap();
    old.close();
    new.close();

    let (j, found) = Journal::open(epoch_config(base, 2, 64)).unwrap();
    assert_eq!(
        payloads(&found),
        vec![big("a"), big("b"), big("c")],
        "the deleted segment is still linked, the new ones never were"
    );
    j.close();
}

#[test]
fn a_plain_journal_is_inherited_by_the_first_epoch_and_then_refuses_plain_opens() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path();
    let (plain, _) = Journal::open(config(base, 1 << 20)).unwrap();
    append_all(&plain, &bytes(&["p1"]));
    plain.close();

    let (j, found) = Journal::open(epoch_config(base, 1, 1 << 20)).unwrap();
    assert_eq!(payloads(&found), bytes(&["p1"]));
    j.close();
    assert!(base.join(epoch_dir_name(1)).join("SEALS").exists());

    match Journal::open(config(base, 1 << 20)) {
        Err(OpenError::SharedStore { .. }) => {}
        other => panic!(
            "a plain open of a shared store must fail, got {:?}",
            other.map(|_| ())
        ),
    }
}

#[test]
fn an_incomplete_takeover_is_started_over() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path();
    let (j, _) = Journal::open(epoch_config(base, 1, 1 << 20)).unwrap();
    append_all(&j, &bytes(&["kept"]));
    j.close();
    // Epoch 2 died half-way: its directory exists without SEALS.
    let half = base.join(epoch_dir_name(2));
    std::fs::create_dir_all(&half).unwrap();
    std::fs::write(half.join("junk"), b"x").unwrap();
    let (j, found) = Journal::open(epoch_config(base, 3, 1 << 20)).unwrap();
    assert_eq!(payloads(&found), bytes(&["kept"]));
    j.close();
    assert!(!half.exists(), "older epoch directories are cleaned up");
}

#[test]
fn a_refused_confirm_check_stops_confirmations_for_good() {
    let tmp = tempfile::tempdir().unwrap();
    let superseded = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&superseded);
    let config = JournalConfig {
        confirm_check: Some(ConfirmCheck::new(move || {
            if flag.load(Ordering::SeqCst) {
                Err("epoch 2 was claimed".into())
            } else {
                Ok(())
            }
        })),
        ..epoch_config(tmp.path(), 1, 1 << 20)
    };
    let (j, _) = Journal::open(config).unwrap();
    append_all(&j, &bytes(&["confirmed"]));
    superseded.store(true, Ordering::SeqCst);
    let (_, durable) = j
        .append(Bytes::from_static(b"never confirmed"), true)
        .unwrap();
    match durable.wait_blocking() {
        Err(WriteError::ConfirmRefused { reason }) => assert!(reason.contains("epoch 2")),
        other => panic!("expected ConfirmRefused, got {other:?}"),
    }
    assert!(j.append(Bytes::from_static(b"later"), true).is_err());
    j.close();
}

#[test]
fn a_takeover_refuses_damage_its_predecessor_had_synced() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path();
    let config = |epoch| JournalConfig {
        preallocate: false,
        ..epoch_config(base, epoch, 1 << 20)
    };
    let (old, _) = Journal::open(config(1)).unwrap();
    // One at a time: each record is written after the one before was fsynced.
    let positions: Vec<_> = (0..6u8)
        .map(|i| append_all(&old, &[Bytes::from(vec![i; 20])])[0])
        .collect();
    old.close();
    let victim = positions[2];
    let path = base
        .join(epoch_dir_name(1))
        .join(hawser_journal::segment_file_name(victim.segment));
    let mut data = std::fs::read(&path).unwrap();
    data[victim.offset as usize + 20] ^= 0x01;
    std::fs::write(&path, &data).unwrap();
    match Journal::open(config(2)) {
        Err(OpenError::Corrupt { file, offset, .. }) => {
            assert_eq!((file, offset), (path, victim.offset));
        }
        other => panic!("expected Corrupt, got {:?}", other.map(|_| ())),
    }
    // Nothing was sealed: a later takeover, once the damage is dealt with, starts over.
    assert!(!base.join(epoch_dir_name(2)).join("SEALS").exists());
}
