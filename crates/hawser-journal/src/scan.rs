//! Parsing a whole segment file held in memory: header, then records until the data ends
//! or a record is bad; and, for the last segment, judging what follows the first bad
//! record. Pure, so recovery and the fuzzer run exactly the same code.
//!
//! The judgment ([`judge_tail`]) is what tells a torn write, which recovery cuts off,
//! from damage to durable data, which it refuses like corruption anywhere else. Let D be
//! the offset of the first bad record of the last segment:
//!
//! - only zero bytes from D on: the unused end of a preallocated segment, not a write at
//!   all ([`Tail::Unused`]);
//! - version 2: the rest of the segment is searched for a record that verifies at its
//!   own offset. If one does and its `synced` field is above D, the writer had fsynced
//!   past D before it wrote that record: the bytes at D were durable, and are now damaged
//!   ([`Tail::Corrupt`]). If none does, or every one that does has `synced` at or below
//!   D, the damage is what a crash makes of writes after the last fsync, which a disk
//!   may persist in part, torn, or out of order ([`Tail::Torn`]). A torn tail never holds
//!   a confirmed record: a record is confirmed only after an fsync that covers it, and
//!   every record framed after that fsync carries a `synced` past it.
//! - version 1 has no `synced` field: any record after D that verifies means D is not the
//!   end of what was written, so the damage is refused. Its records have no header CRC,
//!   so each candidate costs a CRC over its payload; the search gives up after
//!   [`V1_SEARCH_BUDGET_BYTES`] of checksumming and refuses too (only the last segment
//!   of a journal written before version 2, at its first open, is ever searched so).
//!
//! A bad header in the last segment, with nothing but zeros after it, is a crash while
//! the file was being created ([`Tail::TornHeader`]): the writer fsyncs a new segment's
//! header before it writes any record into it.
//!
//! The search skips runs of zeros (no record header is all zeros) and, for version 2,
//! checks a candidate's length and header CRC (28 bytes) before its payload, so judging a
//! segment costs about one pass over its damaged part.

use std::ops::Range;

use crate::format::{
    decode_record_header, decode_segment_header, verify_payload, Corruption, Framing, RecordHeader,
    SEGMENT_HEADER_BYTES,
};
use crate::position::Position;

/// Payload bytes the version 1 search may checksum before giving up (a few tens of
/// milliseconds of CRC-32C): bounds the open of a damaged version 1 segment.
pub const V1_SEARCH_BUDGET_BYTES: u64 = 256 * 1024 * 1024;

/// One good record found by [`scan_segment_bytes`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScannedRecord {
    /// Offset of the record's header in the file (its `Position::offset`).
    pub offset: u64,
    /// Where its payload lies in the scanned data.
    pub payload: Range<usize>,
}

/// What [`scan_segment_bytes`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScanResult {
    /// Segment id from the header; `None` when the header itself is bad.
    pub segment: Option<u64>,
    /// How the records are framed, from the header; `None` when the header is bad.
    pub framing: Option<Framing>,
    /// Every good record, in file order, up to the first bad one.
    pub records: Vec<ScannedRecord>,
    /// Length of the good prefix: the header and every good record. Recovery cuts a torn
    /// tail here; it is also the offset that `damage` is reported at. 0 for a bad header.
    pub valid_len: u64,
    /// Why the scan stopped before the end of the data; `None` if all of it was good.
    pub damage: Option<Corruption>,
}

/// What the bytes from a last segment's first bad record on are (see the module
/// comment).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Tail {
    /// No bad record: nothing to judge.
    Clean,
    /// Zeros only: the unused end of a preallocated segment. Cut without a warning.
    Unused,
    /// A torn write: cut at `valid_len`, the bytes kept aside.
    Torn,
    /// The header itself is torn (the file was being created): start the file over.
    TornHeader,
    /// Damage to durable data: refused, at `valid_len`, for this reason.
    Corrupt(Corruption),
}

/// Parses a segment file's bytes. Never panics on any input; a record is accepted only
/// if its framing verifies at its own position, all its bytes are present and its
/// payload CRC matches (checked right after reading it, before it is reported).
#[must_use]
pub fn scan_segment_bytes(data: &[u8], max_record_bytes: u32) -> ScanResult {
    let header = match decode_segment_header(data) {
        Ok(header) => header,
        Err(damage) => {
            return ScanResult {
                segment: None,
                framing: None,
                records: Vec::new(),
                valid_len: 0,
                damage: Some(damage),
            }
        }
    };
    let mut records = Vec::new();
    let mut offset = SEGMENT_HEADER_BYTES as usize;
    let damage = loop {
        assert!(offset <= data.len());
        if offset == data.len() {
            break None;
        }
        let at = Position {
            segment: header.segment,
            offset: offset as u64,
        };
        match record_at(header.framing, data, at, max_record_bytes) {
            Ok(record) => {
                records.push(ScannedRecord {
                    offset: at.offset,
                    payload: record.payload.clone(),
                });
                offset = record.payload.end;
            }
            Err(damage) => break Some(damage),
        }
    };
    ScanResult {
        segment: Some(header.segment),
        framing: Some(header.framing),
        records,
        valid_len: offset as u64,
        damage,
    }
}

/// Judges the bytes of the last segment from its first bad record on (`scan` is
/// `scan_segment_bytes(data, max_record_bytes)`). Never panics on any input.
#[must_use]
pub fn judge_tail(data: &[u8], scan: &ScanResult, max_record_bytes: u32) -> Tail {
    let Some(damage) = &scan.damage else {
        return Tail::Clean;
    };
    let (Some(segment), Some(framing)) = (scan.segment, scan.framing) else {
        let rest = data.get(SEGMENT_HEADER_BYTES as usize..).unwrap_or(&[]);
        return if rest.iter().all(|&b| b == 0) {
            Tail::TornHeader
        } else {
            Tail::Corrupt(damage.clone())
        };
    };
    let damaged_at = scan.valid_len;
    if data[damaged_at as usize..].iter().all(|&b| b == 0) {
        return Tail::Unused;
    }
    let corrupt = |witness, synced| {
        Tail::Corrupt(Corruption::DamagedBeforeIntactRecord {
            damage: Box::new(damage.clone()),
            witness,
            synced,
        })
    };
    match framing {
        Framing::V2 => match find_v2_witness(data, segment, damaged_at, max_record_bytes) {
            Some((witness, synced)) => corrupt(witness, Some(synced)),
            None => Tail::Torn,
        },
        Framing::V1 => match find_v1_witness(data, segment, damaged_at, max_record_bytes) {
            Ok(Some(witness)) => corrupt(witness, None),
            Ok(None) => Tail::Torn,
            Err(()) => Tail::Corrupt(Corruption::UnsearchedTail {
                damage: Box::new(damage.clone()),
                after: data.len() as u64 - damaged_at,
            }),
        },
    }
}

/// An intact record found in the data.
struct Found {
    header: RecordHeader,
    /// Where its payload lies in the data.
    payload: Range<usize>,
}

/// Checks the record at `at` in `data`: framing, presence of every byte, payload CRC.
fn record_at(
    framing: Framing,
    data: &[u8],
    at: Position,
    max_record_bytes: u32,
) -> Result<Found, Corruption> {
    let start = at.offset as usize;
    let header = decode_record_header(framing, &data[start..], at, max_record_bytes)?;
    let payload_start = start + framing.header_bytes() as usize;
    let available = (data.len() - payload_start) as u64;
    if u64::from(header.len) > available {
        return Err(Corruption::ShortPayload {
            len: header.len,
            available,
        });
    }
    let payload = payload_start..payload_start + header.len as usize;
    verify_payload(header, &data[payload.clone()])?;
    Ok(Found { header, payload })
}

/// The first offset from `from` at which a record header could start: a header is never
/// all zeros, so offsets whose `header_bytes` are all zero are skipped in one go.
fn next_candidate(data: &[u8], from: usize, header_bytes: usize) -> Option<usize> {
    let first_nonzero = from + data.get(from..)?.iter().position(|&b| b != 0)?;
    // The earliest header holding that byte starts up to `header_bytes - 1` before it.
    Some(first_nonzero.saturating_sub(header_bytes - 1).max(from))
}

/// Whether the length field at `offset` could describe a record that fits in `data`:
/// the cheap test before any CRC.
fn plausible(data: &[u8], offset: usize, header_bytes: usize, max_record_bytes: u32) -> bool {
    let Some(len) = data.get(offset..offset + 4) else {
        return false;
    };
    let len = u32::from_le_bytes(len.try_into().expect("slice of 4"));
    len <= max_record_bytes && offset + header_bytes + len as usize <= data.len()
}

/// The first record after `damaged_at` that verifies at its own offset and was framed
/// after an fsync past `damaged_at`: its offset and `synced`.
fn find_v2_witness(
    data: &[u8],
    segment: u64,
    damaged_at: u64,
    max_record_bytes: u32,
) -> Option<(u64, u32)> {
    let header_bytes = Framing::V2.header_bytes() as usize;
    let mut from = damaged_at as usize + 1;
    while let Some(offset) = next_candidate(data, from, header_bytes) {
        from = offset + 1;
        if !plausible(data, offset, header_bytes, max_record_bytes) {
            continue;
        }
        let at = Position {
            segment,
            offset: offset as u64,
        };
        let Ok(found) = record_at(Framing::V2, data, at, max_record_bytes) else {
            continue;
        };
        let synced = found
            .header
            .synced
            .expect("version 2 records say how far it was synced");
        if u64::from(synced) > damaged_at {
            return Some((at.offset, synced));
        }
        // Written before the damage was synced (a reordered write): keep looking, a
        // later batch may say more.
    }
    None
}

/// The first record after `damaged_at` that verifies (version 1 has nothing more to
/// tell); `Err` once [`V1_SEARCH_BUDGET_BYTES`] were checksummed without an answer.
fn find_v1_witness(
    data: &[u8],
    segment: u64,
    damaged_at: u64,
    max_record_bytes: u32,
) -> Result<Option<u64>, ()> {
    let header_bytes = Framing::V1.header_bytes() as usize;
    let mut budget = V1_SEARCH_BUDGET_BYTES;
    let mut from = damaged_at as usize + 1;
    while let Some(offset) = next_candidate(data, from, header_bytes) {
        from = offset + 1;
        if !plausible(data, offset, header_bytes, max_record_bytes) {
            continue;
        }
        let len = u64::from(u32::from_le_bytes(
            data[offset..offset + 4].try_into().expect("slice of 4"),
        ));
        budget = budget.checked_sub(len + 4).ok_or(())?;
        let at = Position {
            segment,
            offset: offset as u64,
        };
        if record_at(Framing::V1, data, at, max_record_bytes).is_ok() {
            return Ok(Some(at.offset));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{
        encode_record_header, encode_record_header_v1, encode_segment_header,
        encode_segment_header_as, RECORD_HEADER_BYTES,
    };

    const SEGMENT: u64 = 3;

    /// A version 2 segment of `records`, each with the `synced` given.
    fn segment(records: &[(&[u8], u32)]) -> (Vec<u8>, Vec<u64>) {
        let mut data = encode_segment_header(SEGMENT).to_vec();
        let mut offsets = Vec::new();
        for (payload, synced) in records {
            let at = Position {
                segment: SEGMENT,
                offset: data.len() as u64,
            };
            offsets.push(at.offset);
            data.extend_from_slice(&encode_record_header(at, *synced, payload));
            data.extend_from_slice(payload);
        }
        (data, offsets)
    }

    fn v1_segment(records: &[&[u8]]) -> (Vec<u8>, Vec<u64>) {
        let mut data = encode_segment_header_as(Framing::V1, SEGMENT).to_vec();
        let mut offsets = Vec::new();
        for payload in records {
            offsets.push(data.len() as u64);
            data.extend_from_slice(&encode_record_header_v1(payload));
            data.extend_from_slice(payload);
        }
        (data, offsets)
    }

    fn judge(data: &[u8]) -> (ScanResult, Tail) {
        let scan = scan_segment_bytes(data, 64);
        let tail = judge_tail(data, &scan, 64);
        (scan, tail)
    }

    #[test]
    fn scans_all_records_of_a_clean_segment() {
        let (data, offsets) = segment(&[(b"one", 20), (b"", 20), (b"three", 39)]);
        let scan = scan_segment_bytes(&data, 16);
        assert_eq!(scan.segment, Some(SEGMENT));
        assert_eq!(scan.framing, Some(Framing::V2));
        assert_eq!(scan.damage, None);
        assert_eq!(scan.valid_len, data.len() as u64);
        let payloads: Vec<&[u8]> = scan
            .records
            .iter()
            .map(|r| &data[r.payload.clone()])
            .collect();
        assert_eq!(payloads, vec![&b"one"[..], b"", b"three"]);
        assert_eq!(scan.records[0].offset, SEGMENT_HEADER_BYTES);
        assert_eq!(scan.records[1].offset, SEGMENT_HEADER_BYTES + 19);
        assert_eq!(
            scan.records.iter().map(|r| r.offset).collect::<Vec<_>>(),
            offsets
        );
        assert_eq!(judge_tail(&data, &scan, 16), Tail::Clean);
    }

    #[test]
    fn stops_at_the_first_bad_record() {
        let (mut data, offsets) = segment(&[(b"one", 20), (b"two", 20)]);
        let last = data.len() - 1;
        data[last] ^= 0x01;
        let scan = scan_segment_bytes(&data, 16);
        assert_eq!(scan.records.len(), 1);
        assert_eq!(scan.valid_len, offsets[1]);
        assert!(matches!(
            scan.damage,
            Some(Corruption::ChecksumMismatch { .. })
        ));
    }

    #[test]
    fn reports_short_records_and_oversized_lengths() {
        let (data, _) = segment(&[(b"payload", 20)]);
        let scan = scan_segment_bytes(&data[..data.len() - 1], 16);
        assert_eq!(
            scan.damage,
            Some(Corruption::ShortPayload {
                len: 7,
                available: 6
            })
        );
        let scan = scan_segment_bytes(&data[..24], 16);
        assert_eq!(
            scan.damage,
            Some(Corruption::ShortRecordHeader {
                available: 4,
                needed: RECORD_HEADER_BYTES
            })
        );
        let scan = scan_segment_bytes(&data, 6);
        assert_eq!(
            scan.damage,
            Some(Corruption::RecordTooLarge { len: 7, max: 6 })
        );
        assert_eq!(scan.valid_len, SEGMENT_HEADER_BYTES);
    }

    #[test]
    fn a_record_moved_elsewhere_does_not_verify() {
        let (data, offsets) = segment(&[(b"one", 20), (b"two", 20)]);
        // The second record copied over the first: right bytes, wrong place.
        let second = data[offsets[1] as usize..].to_vec();
        let mut moved = data[..offsets[0] as usize].to_vec();
        moved.extend_from_slice(&second);
        let scan = scan_segment_bytes(&moved, 16);
        assert!(scan.records.is_empty());
        assert!(matches!(
            scan.damage,
            Some(Corruption::HeaderChecksumMismatch { .. })
        ));
        // The same segment under another id.
        let mut renamed = data.clone();
        renamed[..20].copy_from_slice(&encode_segment_header(SEGMENT + 1));
        assert!(scan_segment_bytes(&renamed, 16).records.is_empty());
    }

    #[test]
    fn bad_header_yields_no_records() {
        let (mut data, _) = segment(&[(b"x", 20)]);
        data[1] = 0;
        let (scan, tail) = judge(&data);
        assert_eq!(scan.segment, None);
        assert!(scan.records.is_empty());
        assert_eq!(scan.valid_len, 0);
        assert!(matches!(tail, Tail::Corrupt(Corruption::BadMagic { .. })));
        // With nothing but zeros after it, it was being created.
        let mut creating = data[..20].to_vec();
        creating.extend_from_slice(&[0; 100]);
        assert_eq!(judge(&creating).1, Tail::TornHeader);
        assert_eq!(judge(b"HWSRJ").1, Tail::TornHeader);
    }

    #[test]
    fn zeros_after_the_records_are_unused_space() {
        let (mut data, _) = segment(&[(b"one", 20)]);
        data.extend_from_slice(&[0; 1000]);
        let (scan, tail) = judge(&data);
        assert_eq!(scan.records.len(), 1);
        assert_eq!(tail, Tail::Unused);
    }

    /// Records 0..=2 confirmed one by one, then 3..=5 written in one batch after the fsync
    /// that confirmed record 2.
    fn batch_after_confirmed_records() -> (Vec<u8>, Vec<u64>) {
        let (_, offsets) = segment(&[(b"r0", 0), (b"r1", 0), (b"r2", 0)]);
        let after_r2 = offsets[2] as u32 + 16 + 2;
        segment(&[
            (b"r0", 20),
            (b"r1", offsets[1] as u32),
            (b"r2", offsets[2] as u32),
            (b"r3", after_r2),
            (b"r4", after_r2),
            (b"r5", after_r2),
        ])
    }

    #[test]
    fn reordered_writes_after_the_last_fsync_are_a_torn_tail() {
        let (data, offsets) = batch_after_confirmed_records();
        // Record 3 never reached the disk (zeros), 4 and 5 did: the disk reordered the
        // unsynced writes of the last batch.
        let mut lost = data.clone();
        lost[offsets[3] as usize..offsets[4] as usize].fill(0);
        let (scan, tail) = judge(&lost);
        assert_eq!(scan.valid_len, offsets[3]);
        assert_eq!(tail, Tail::Torn);
        // Torn in the middle of record 4 instead, 5 intact.
        let mut torn = data.clone();
        torn[offsets[4] as usize + 18] ^= 0xFF;
        assert_eq!(judge(&torn).1, Tail::Torn);
    }

    #[test]
    fn damage_before_a_record_written_after_it_was_synced_is_corruption() {
        let (data, offsets) = batch_after_confirmed_records();
        // Every byte of records 0..=2: each was fsynced before record 3 was framed.
        for byte in offsets[0]..offsets[3] {
            let mut damaged = data.clone();
            damaged[byte as usize] ^= 0x20;
            let (scan, tail) = judge(&damaged);
            let Tail::Corrupt(Corruption::DamagedBeforeIntactRecord {
                witness, synced, ..
            }) = tail
            else {
                panic!("byte {byte}: {tail:?}");
            };
            assert!(witness > scan.valid_len, "byte {byte}");
            assert!(u64::from(synced.unwrap()) > scan.valid_len, "byte {byte}");
        }
        // Record 2 zeroed out: lost after its fsync, which a disk may not do.
        let mut zeroed = data.clone();
        zeroed[offsets[2] as usize..offsets[3] as usize].fill(0);
        assert!(matches!(judge(&zeroed).1, Tail::Corrupt(_)));
    }

    #[test]
    fn garbage_that_never_verifies_is_a_torn_tail() {
        let (mut data, _) = segment(&[(b"one", 20)]);
        data.extend((0..5000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8));
        assert_eq!(judge(&data).1, Tail::Torn);
    }

    #[test]
    fn v1_any_intact_record_after_the_damage_refuses() {
        let (data, offsets) = v1_segment(&[b"one", b"two", b"three"]);
        let scan = scan_segment_bytes(&data, 64);
        assert_eq!(scan.framing, Some(Framing::V1));
        assert_eq!(scan.records.len(), 3);
        let mut damaged = data.clone();
        damaged[offsets[1] as usize + 9] ^= 1;
        let (scan, tail) = judge(&damaged);
        assert_eq!(scan.valid_len, offsets[1]);
        assert!(matches!(
            tail,
            Tail::Corrupt(Corruption::DamagedBeforeIntactRecord { witness, synced: None, .. })
                if witness == offsets[2]
        ));
        // The last record damaged: nothing after it, a torn tail.
        let mut torn = data.clone();
        let last = torn.len() - 1;
        torn[last] ^= 1;
        assert_eq!(judge(&torn).1, Tail::Torn);
    }

    #[test]
    fn v1_search_gives_up_on_a_tail_too_costly_to_search() {
        let (mut data, offsets) = v1_segment(&[b"one", b"two"]);
        data[offsets[1] as usize + 9] ^= 1;
        // Candidates that each claim a large record: the budget runs out first.
        let claim = 60 * 1024 * 1024u32;
        let mut tail = Vec::new();
        for _ in 0..8 {
            tail.extend_from_slice(&claim.to_le_bytes());
        }
        tail.resize(claim as usize + 64, 0x11);
        data.extend_from_slice(&tail);
        let scan = scan_segment_bytes(&data, claim);
        assert!(matches!(
            judge_tail(&data, &scan, claim),
            Tail::Corrupt(Corruption::UnsearchedTail { .. })
        ));
    }
}
