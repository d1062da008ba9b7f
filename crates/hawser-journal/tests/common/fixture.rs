//! Journals frozen on disk by an earlier version of the code, and the known content they
//! were written with.
//!
//! A fixture is made once, by `write_fixtures` in `legacy_v1.rs` run against the code of
//! its day, and committed under `tests/fixtures/`. Later versions must go on reading it:
//! the tests open a copy and compare what they recover with what is listed here. So the
//! lists below must never change for an existing fixture; a new mix needs a new fixture.
//! The store's fixtures (`v1-store`, `v2-store`) are the journal store's
//! (`hawser-journal-store/tests/fixture`).

use std::path::{Path, PathBuf};

/// The segment size of the plain-journal fixtures.
pub const JOURNAL_SEGMENT_BYTES: u64 = 256;

/// Records in the plain-journal fixtures: `common::records(JOURNAL_RECORDS)`.
pub const JOURNAL_RECORDS: usize = 40;

/// Where the committed fixture `name` lives.
pub fn fixture_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// Copies the segment files of fixture `name` into a fresh directory.
pub fn copy_fixture(name: &str) -> tempfile::TempDir {
    let from = fixture_dir(name);
    let to = tempfile::tempdir().unwrap();
    let mut copied = 0;
    for entry in std::fs::read_dir(&from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.path().join(entry.file_name())).unwrap();
        copied += 1;
    }
    assert!(copied > 0, "fixture {} is empty", from.display());
    to
}
