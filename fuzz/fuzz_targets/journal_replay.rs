//! Journal recovery on arbitrary bytes: must never panic, only report records or a
//! typed error.
//!
//! The first input byte picks the setup; the rest is segment file content:
//! - bit 0 clear: a valid segment header is put before the content (so the record parser
//!   is exercised), set: the content is the whole file (header parsing is exercised);
//! - bit 1 set: the file is an older segment, followed by a clean last one (damage must
//!   be refused as corruption), clear: it is the last segment (damage is a torn tail).
//!
//! Each input runs twice: through the pure `scan_segment_bytes` and through
//! `Journal::open` on a real directory, and the two must agree.
#![no_main]

use std::fs;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use hawser_journal::{
    encode_segment_header, scan_segment_bytes, segment_file_name, Journal, JournalConfig, OpenError,
};
use libfuzzer_sys::fuzz_target;

/// Small, so random lengths are usually rejected instead of read.
const MAX_RECORD_BYTES: u32 = 64 * 1024;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, content)) = data.split_first() else {
        return;
    };
    let with_header = mode & 1 == 0;
    let older_segment = mode & 2 != 0;
    let mut file = Vec::with_capacity(content.len() + 20);
    if with_header {
        file.extend_from_slice(&encode_segment_header(1));
    }
    file.extend_from_slice(content);

    let scan = scan_segment_bytes(&file, MAX_RECORD_BYTES);
    assert!(scan.valid_len <= file.len() as u64);
    match (&scan.damage, scan.segment) {
        (None, _) => assert_eq!(scan.valid_len, file.len() as u64),
        // A bad record always leaves bytes after the good prefix.
        (Some(_), Some(_)) => assert!(scan.valid_len < file.len() as u64),
        (Some(_), None) => assert_eq!(scan.valid_len, 0),
    }
    let mut end = if scan.segment.is_some() { 20 } else { 0 };
    for record in &scan.records {
        assert_eq!(record.offset, end);
        assert!(record.payload.end <= file.len());
        end = record.payload.end as u64;
    }
    assert_eq!(end, scan.valid_len);

    let dir = TempDir::new();
    fs::write(dir.0.join(segment_file_name(1)), &file).expect("write segment");
    if older_segment {
        fs::write(dir.0.join(segment_file_name(2)), encode_segment_header(2))
            .expect("write segment");
    }
    let config = JournalConfig {
        segment_bytes: 4096,
        max_record_bytes: MAX_RECORD_BYTES,
        ..JournalConfig::new(&dir.0)
    };
    match Journal::open(config) {
        Ok((_journal, recovered)) => {
            // Whatever was recovered from segment 1 is exactly what the scan found good.
            let recovered: Vec<&[u8]> = recovered.records.iter().map(|(_, r)| &r[..]).collect();
            let scanned: Vec<&[u8]> = scan
                .records
                .iter()
                .map(|r| &file[r.payload.clone()])
                .collect();
            assert_eq!(recovered, scanned);
            if older_segment {
                assert!(
                    scan.damage.is_none(),
                    "damage in an older segment was accepted"
                );
            }
        }
        Err(OpenError::Corrupt { .. }) => assert!(scan.damage.is_some() || scan.segment != Some(1)),
        Err(other) => panic!("unexpected error kind: {other}"),
    }
});

/// A scratch directory removed on drop (the fuzz crate has no tempfile dependency).
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let path = std::env::temp_dir().join(format!(
            "hawser-journal-fuzz-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).expect("create scratch directory");
        Self(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}
