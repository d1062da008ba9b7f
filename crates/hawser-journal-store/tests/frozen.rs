//! Stores frozen on disk by earlier versions of the code (`tests/fixtures/v1-store`,
//! written by commit f23680a with journal format 1; `v2-store`, with format 2): every
//! later build must recover them exactly, reclaim them, and go on appending to them.
//! The fixtures were written by `write_store_fixture` below (then `/tmp/out/store`'s
//! segment files copied):
//!
//! ```text
//! HAWSER_FIXTURE_OUT=/tmp/out cargo test --release -p hawser-journal-store --test frozen \
//!     -- --ignored write_store_fixture
//! ```

mod fixture;

use std::fs;
use std::path::Path;

use fixture::*;
use hawser_broker::Store;
use hawser_journal::parse_segment_file_name;
use hawser_journal_store::JournalStore;

#[test]
#[ignore = "writes a fixture; run by hand, see the module comment"]
fn write_store_fixture() {
    let out = std::env::var_os("HAWSER_FIXTURE_OUT").expect("set HAWSER_FIXTURE_OUT");
    let store = Path::new(&out).join("store");
    write_store_mix(&store);
    for entry in fs::read_dir(&store).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        if name.to_str().and_then(parse_segment_file_name).is_none() {
            fs::remove_file(entry.path()).unwrap();
        }
    }
}

#[test]
fn a_v1_store_recovers_exactly_what_was_written_and_takes_more() {
    let dir = copy_fixture("v1-store");
    let config = store_config(dir.path());
    {
        let (store, recovered) = JournalStore::open(config.clone()).expect("open v1 store");
        assert_store_state(&store, &recovered, &[]);
        append_more(&store, &[100, 101, 102]);
        store.close();
    }
    {
        let (store, recovered) = JournalStore::open(config.clone()).expect("reopen");
        assert_store_state(&store, &recovered, &[100, 101, 102]);
        // Reclaiming may copy v1 records forward and delete v1 segments: same state.
        store.reclaim_now();
        append_more(&store, &[103]);
        store.close();
    }
    let (store, recovered) = JournalStore::open(config).expect("reopen after reclaim");
    assert_store_state(&store, &recovered, &[100, 101, 102, 103]);
}

#[test]
fn a_v2_store_recovers_exactly_what_was_written_and_takes_more() {
    let dir = copy_fixture("v2-store");
    let config = store_config(dir.path());
    {
        let (store, recovered) = JournalStore::open(config.clone()).expect("open v2 store");
        assert_store_state(&store, &recovered, &[]);
        append_more(&store, &[100, 101]);
        store.close();
    }
    let (store, recovered) = JournalStore::open(config).expect("reopen");
    assert_store_state(&store, &recovered, &[100, 101]);
}
