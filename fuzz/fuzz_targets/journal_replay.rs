//! Journal recovery on arbitrary bytes: must never panic, only report records or a
//! typed error; and the torn-vs-corrupt judgment of a last segment must match a naive
//! one (every offset after the damage tried, no shortcuts).
//!
//! The first input byte picks the setup; the rest describes the segment file:
//! - bits 0-1: how the rest becomes a file. 0, raw: the rest is the whole file (header
//!   parsing is exercised); 1: a version 1 segment header, then the rest (the version 1
//!   record parser); 2: a version 2 segment header, then the rest (the version 2 record
//!   parser); 3, built: the rest is a small program that writes valid version 2 records
//!   (each with a `synced` the writer could have framed, or not) and then damages the
//!   file (flipped bytes, zeroed ranges, a cut). This is what reaches the judgment of
//!   intact records after damage, which random bytes almost never do.
//! - bit 2 set: the file is an older segment, followed by a clean last one (damage must
//!   be refused as corruption); clear: it is the last segment (judged).
//!
//! Each input runs through the pure `scan_segment_bytes` and `judge_tail`, through the
//! naive judgment, and through `Journal::open` on a real directory: all must agree.
#![no_main]

use std::fs;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use hawser_journal::{
    decode_record_header, encode_record_header, encode_segment_header, encode_segment_header_as,
    header_checksum, judge_tail, record_checksum, scan_segment_bytes, segment_file_name, Framing,
    Journal, JournalConfig, OpenError, Position, ScanResult, Tail, SEGMENT_HEADER_BYTES,
};
use libfuzzer_sys::fuzz_target;

/// Small, so random lengths are usually rejected instead of read.
const MAX_RECORD_BYTES: u32 = 64 * 1024;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, content)) = data.split_first() else {
        return;
    };
    let file = match mode & 3 {
        0 => content.to_vec(),
        1 => [&encode_segment_header_as(Framing::V1, 1)[..], content].concat(),
        2 => [&encode_segment_header(1)[..], content].concat(),
        _ => build(content),
    };
    let older_segment = mode & 4 != 0;

    let scan = scan_segment_bytes(&file, MAX_RECORD_BYTES);
    check_scan(&file, &scan);
    let tail = judge_tail(&file, &scan, MAX_RECORD_BYTES);
    assert_eq!(
        tail,
        naive_judgment(&file, &scan),
        "judgment differs from the naive one"
    );

    let dir = TempDir::new();
    fs::write(dir.0.join(segment_file_name(1)), &file).expect("write segment");
    if older_segment {
        fs::write(dir.0.join(segment_file_name(2)), encode_segment_header(2))
            .expect("write segment");
    }
    let config = JournalConfig {
        segment_bytes: 1 << 20,
        max_record_bytes: MAX_RECORD_BYTES,
        preallocate: false,
        ..JournalConfig::new(&dir.0)
    };
    let header_matches = scan.segment.is_none_or(|id| id == 1);
    match Journal::open(config) {
        Ok((_journal, recovered)) => {
            assert!(header_matches, "a segment id mismatch was accepted");
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
            } else {
                assert!(
                    !matches!(tail, Tail::Corrupt(_)),
                    "damage proved durable was cut"
                );
            }
        }
        Err(OpenError::Corrupt { .. }) => assert!(
            !header_matches
                || (older_segment && scan.damage.is_some())
                || matches!(tail, Tail::Corrupt(_)),
            "refused a segment the judgment calls {tail:?}"
        ),
        Err(other) => panic!("unexpected error kind: {other}"),
    }
});

/// The scan's records lie back to back from the header to `valid_len`.
fn check_scan(file: &[u8], scan: &ScanResult) {
    assert!(scan.valid_len <= file.len() as u64);
    match (&scan.damage, scan.segment) {
        (None, _) => assert_eq!(scan.valid_len, file.len() as u64),
        // A bad record always leaves bytes after the good prefix.
        (Some(_), Some(_)) => assert!(scan.valid_len < file.len() as u64),
        (Some(_), None) => assert_eq!(scan.valid_len, 0),
    }
    let header_bytes = scan.framing.map_or(0, |f| f.header_bytes());
    let mut end = if scan.segment.is_some() {
        SEGMENT_HEADER_BYTES
    } else {
        0
    };
    for record in &scan.records {
        assert_eq!(record.offset, end);
        assert_eq!(record.payload.start as u64, end + header_bytes);
        assert!(record.payload.end <= file.len());
        end = record.payload.end as u64;
    }
    assert_eq!(end, scan.valid_len);
}

/// The rule of `scan::judge_tail`, the slow way: every offset after the damage tried.
fn naive_judgment(file: &[u8], scan: &ScanResult) -> Tail {
    let Some(damage) = &scan.damage else {
        return Tail::Clean;
    };
    let (Some(segment), Some(framing)) = (scan.segment, scan.framing) else {
        let rest = file.get(SEGMENT_HEADER_BYTES as usize..).unwrap_or(&[]);
        return if rest.iter().all(|&b| b == 0) {
            Tail::TornHeader
        } else {
            Tail::Corrupt(damage.clone())
        };
    };
    let damaged_at = scan.valid_len;
    if file[damaged_at as usize..].iter().all(|&b| b == 0) {
        return Tail::Unused;
    }
    let mut offset = damaged_at as usize + 1;
    while offset < file.len() {
        let at = Position {
            segment,
            offset: offset as u64,
        };
        if let Ok(header) = decode_record_header(framing, &file[offset..], at, MAX_RECORD_BYTES) {
            let start = offset + framing.header_bytes() as usize;
            let intact = file
                .get(start..start + header.len as usize)
                .is_some_and(|payload| record_checksum(payload) == header.checksum);
            if intact {
                match header.synced {
                    // Written before the damage was synced: look on.
                    Some(synced) if u64::from(synced) <= damaged_at => {}
                    synced => {
                        return Tail::Corrupt(
                            hawser_journal::Corruption::DamagedBeforeIntactRecord {
                                damage: Box::new(damage.clone()),
                                witness: at.offset,
                                synced,
                            },
                        )
                    }
                }
            }
        }
        offset += 1;
    }
    Tail::Torn
}

/// A version 2 segment written by a small program: records, then damage.
///
/// Each record takes three bytes: its length (mod 64), how its `synced` is chosen (the
/// writer's rules: the header's end, or the end of a record before it, as if an fsync
/// had followed that record; or, rarely, past the record, which a writer never frames),
/// and its fill byte. A zero length byte followed by 0xFF ends the records; what follows
/// is damage, three bytes per step: an offset (two bytes, modulo the file's length) and
/// a kind (flip a byte, zero 1-16 bytes, or cut the file there).
fn build(program: &[u8]) -> Vec<u8> {
    let mut file = encode_segment_header(1).to_vec();
    let mut ends = vec![SEGMENT_HEADER_BYTES];
    let mut bytes = program.chunks_exact(3);
    for step in bytes.by_ref() {
        let [len, synced, fill] = [step[0], step[1], step[2]];
        if len == 0 && synced == 0xFF {
            break;
        }
        let at = Position {
            segment: 1,
            offset: file.len() as u64,
        };
        let synced = match synced {
            0xFE => at.offset + 1,
            n => ends[usize::from(n) % ends.len()],
        };
        let synced = u32::try_from(synced).expect("built files are small");
        let payload = vec![fill; usize::from(len % 64)];
        let header = if u64::from(synced) <= at.offset {
            encode_record_header(at, synced, &payload)
        } else {
            // Forged: the framing verifies but claims a sync past the record, which no
            // writer frames.
            let len = payload.len() as u32;
            let checksum = record_checksum(&payload);
            let mut header = [0u8; 16];
            header[0..4].copy_from_slice(&len.to_le_bytes());
            header[4..8].copy_from_slice(&synced.to_le_bytes());
            header[8..12].copy_from_slice(&checksum.to_le_bytes());
            let covered = header_checksum(at, len, synced, checksum);
            header[12..16].copy_from_slice(&covered.to_le_bytes());
            header
        };
        file.extend_from_slice(&header);
        file.extend_from_slice(&payload);
        ends.push(file.len() as u64);
    }
    for step in bytes {
        let at = usize::from(u16::from_le_bytes([step[0], step[1]])) % file.len();
        match step[2] % 4 {
            0 | 1 => file[at] ^= step[2] | 1,
            2 => {
                let end = (at + 1 + usize::from(step[2] >> 4)).min(file.len());
                file[at..end].fill(0);
            }
            _ => file.truncate(at),
        }
        if file.is_empty() {
            break;
        }
    }
    file
}

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
