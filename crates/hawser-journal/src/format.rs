//! The bytes of a segment file. Pure functions, no I/O.
//!
//! ```text
//! segment file := header record*
//! header       := magic "HWSRJNL1" (8) | format version u32 (4) | segment id u64 (8)
//!
//! version 2, written by this build:
//! record       := len u32 | synced u32 | payload_crc u32 | header_crc u32 | payload
//! payload_crc  := crc32c(len ++ payload)
//! header_crc   := crc32c(segment u64 ++ offset u64 ++ len ++ synced ++ payload_crc)
//!
//! version 1, still read (never written):
//! record       := len u32 | crc u32 | payload
//! crc          := crc32c(len ++ payload)
//! ```
//!
//! Integers are little-endian. `segment` and `offset` are where the record belongs: its
//! segment's id and the offset of its first byte in the file. They are not stored, only
//! checksummed, so a record copied or written to the wrong place (another offset, another
//! segment) fails its header check. The header check costs a CRC over 28 bytes whatever
//! the payload's size, which is what lets recovery look for intact records in the bytes
//! after a damaged one (see `scan::judge_tail`): only a candidate whose header verifies
//! gets its payload checksummed.
//!
//! `synced` is how far the writer knew the segment to be on disk (the end of its last
//! fsync, at least the header's end once the header was fsynced) when it framed the
//! record; never more than the record's own offset. It is what tells a torn write from
//! damage to durable data: damage at an offset below the `synced` of an intact later
//! record hit bytes that were fsynced before that record was even written.
//!
//! Both CRCs cover the length: CRC-32C of an empty input is 0, so with a payload-only CRC
//! a run of zero bytes (what a file system may leave at the end of a file after a crash,
//! or the unused end of a preallocated segment) would read as a valid empty record. With
//! the length covered, an all-zero header never verifies: its payload CRC would have to
//! be `crc32c([0; 4])`, which is not 0.

use thiserror::Error;

use crate::position::Position;

/// First bytes of every segment file.
pub const SEGMENT_MAGIC: [u8; 8] = *b"HWSRJNL1";

/// Version of the layout this build writes, stored in every segment header.
pub const FORMAT_VERSION: u32 = 2;

/// Size of the segment header; the first record starts here.
pub const SEGMENT_HEADER_BYTES: u64 = 20;

/// Size of a record's framing (length, synced, two CRCs) before its payload, in the
/// format this build writes.
pub const RECORD_HEADER_BYTES: u64 = 16;

/// Size of a record's framing (length and CRC) in a version 1 segment.
pub const V1_RECORD_HEADER_BYTES: u64 = 8;

/// Largest `segment_bytes`: record offsets are stored in 32 bits (`synced`).
pub const MAX_SEGMENT_BYTES: u64 = u32::MAX as u64;

const SEGMENT_FILE_PREFIX: &str = "journal-";
const SEGMENT_FILE_SUFFIX: &str = ".log";
/// Between a segment's file name and an offset: the name of the bytes a recovery cut off
/// that segment's end, kept for an operator to look at.
const TORN_TAIL_INFIX: &str = ".torn-";
/// Digits of `u64::MAX`; zero padding to this width makes lexical order numeric order.
const SEGMENT_ID_DIGITS: usize = 20;

/// How the records of a segment are framed, from its header's version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// Version 1: length and one CRC. Read only.
    V1,
    /// Version 2: length, synced offset, payload CRC, header CRC over the position.
    V2,
}

impl Framing {
    /// The framing this build writes.
    pub const CURRENT: Framing = Framing::V2;

    /// The framing of a segment header's version number.
    #[must_use]
    pub fn from_version(version: u32) -> Option<Framing> {
        match version {
            1 => Some(Framing::V1),
            2 => Some(Framing::V2),
            _ => None,
        }
    }

    /// The version number stored in the segment header.
    #[must_use]
    pub fn version(self) -> u32 {
        match self {
            Framing::V1 => 1,
            Framing::V2 => 2,
        }
    }

    /// Bytes of framing before each payload.
    #[must_use]
    pub fn header_bytes(self) -> u64 {
        match self {
            Framing::V1 => V1_RECORD_HEADER_BYTES,
            Framing::V2 => RECORD_HEADER_BYTES,
        }
    }
}

/// What is wrong with the bytes at some offset of a segment. In the last segment after a
/// crash this may be a torn tail (see `scan::judge_tail`); anywhere else it is corruption.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum Corruption {
    #[error("file is {len} bytes, shorter than the {SEGMENT_HEADER_BYTES}-byte segment header")]
    ShortHeader { len: u64 },
    #[error("bad magic {found:02x?} in segment header")]
    BadMagic { found: [u8; 8] },
    #[error(
        "unsupported segment format version {found} (this build reads 1 and {FORMAT_VERSION})"
    )]
    UnsupportedVersion { found: u32 },
    #[error("segment header says segment {in_header} but the file name says {in_name}")]
    SegmentIdMismatch { in_header: u64, in_name: u64 },
    #[error("only {available} bytes left, shorter than a {needed}-byte record header")]
    ShortRecordHeader { available: u64, needed: u64 },
    #[error("record header checksum mismatch (a damaged header, or a record that belongs elsewhere): stored {stored:#010x}, computed {computed:#010x}")]
    HeaderChecksumMismatch { stored: u32, computed: u32 },
    #[error("record length {len} exceeds max_record_bytes {max}")]
    RecordTooLarge { len: u32, max: u32 },
    #[error("record says its segment was synced to offset {synced}, beyond the record itself")]
    SyncedBeyondRecord { synced: u32 },
    #[error("record length {len} but only {available} payload bytes left")]
    ShortPayload { len: u32, available: u64 },
    #[error("record checksum mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    ChecksumMismatch { stored: u32, computed: u32 },
    /// Damage in the last segment followed by an intact record that proves the damaged
    /// bytes were durable before (see `scan::judge_tail`): not a torn write.
    #[error("{damage}; not a torn write: the intact record at offset {witness} {}", witness_says(*.synced))]
    DamagedBeforeIntactRecord {
        damage: Box<Corruption>,
        witness: u64,
        synced: Option<u32>,
    },
    /// Damage in a version 1 last segment whose rest was too costly to search for intact
    /// records (see `scan::V1_SEARCH_BUDGET_BYTES`): refused rather than cut.
    #[error("{damage}; the {after} bytes after it could not all be searched for intact records (version 1 segment), so it is not known to be a torn write")]
    UnsearchedTail { damage: Box<Corruption>, after: u64 },
    #[error("sealed at {sealed} bytes but the file has only {len}")]
    SealedTooShort { sealed: u64, len: u64 },
    #[error("the SEALS file of an epoch directory is malformed")]
    BadSeals,
}

fn witness_says(synced: Option<u32>) -> String {
    match synced {
        Some(synced) => format!(
            "was written after the segment was fsynced up to offset {synced}, past the damage"
        ),
        None => "follows it (a version 1 segment says no more)".to_owned(),
    }
}

/// A segment file's header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentHeader {
    /// The id the segment was created with.
    pub segment: u64,
    /// How its records are framed.
    pub framing: Framing,
}

/// The framing of one record as stored before its payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordHeader {
    /// Payload length in bytes.
    pub len: u32,
    /// How far the segment was fsynced when the record was framed; `None` in version 1.
    pub synced: Option<u32>,
    /// Stored [`record_checksum`] of the payload.
    pub checksum: u32,
}

/// The header every segment file starts with, in the format this build writes.
#[must_use]
pub fn encode_segment_header(segment: u64) -> [u8; SEGMENT_HEADER_BYTES as usize] {
    encode_segment_header_as(Framing::CURRENT, segment)
}

/// A segment header of any readable format, for tests and tools that make old segments.
#[must_use]
pub fn encode_segment_header_as(
    framing: Framing,
    segment: u64,
) -> [u8; SEGMENT_HEADER_BYTES as usize] {
    let mut header = [0u8; SEGMENT_HEADER_BYTES as usize];
    header[0..8].copy_from_slice(&SEGMENT_MAGIC);
    header[8..12].copy_from_slice(&framing.version().to_le_bytes());
    header[12..20].copy_from_slice(&segment.to_le_bytes());
    header
}

/// Checks a segment header (the first bytes of `data`).
///
/// # Errors
/// `ShortHeader`, `BadMagic` or `UnsupportedVersion`.
pub fn decode_segment_header(data: &[u8]) -> Result<SegmentHeader, Corruption> {
    let Some(header) = data.get(..SEGMENT_HEADER_BYTES as usize) else {
        return Err(Corruption::ShortHeader {
            len: data.len() as u64,
        });
    };
    let magic: [u8; 8] = header[0..8].try_into().expect("slice of 8");
    if magic != SEGMENT_MAGIC {
        return Err(Corruption::BadMagic { found: magic });
    }
    let version = u32::from_le_bytes(header[8..12].try_into().expect("slice of 4"));
    let framing =
        Framing::from_version(version).ok_or(Corruption::UnsupportedVersion { found: version })?;
    Ok(SegmentHeader {
        segment: u64::from_le_bytes(header[12..20].try_into().expect("slice of 8")),
        framing,
    })
}

/// The payload CRC-32C stored with a record: over the length field, then the payload.
#[must_use]
pub fn record_checksum(payload: &[u8]) -> u32 {
    let len = payload_len(payload);
    crc32c::crc32c_append(crc32c::crc32c(&len.to_le_bytes()), payload)
}

/// The header CRC-32C of a version 2 record: over where it belongs and its other fields.
#[must_use]
pub fn header_checksum(at: Position, len: u32, synced: u32, payload_checksum: u32) -> u32 {
    let mut covered = [0u8; 28];
    covered[0..8].copy_from_slice(&at.segment.to_le_bytes());
    covered[8..16].copy_from_slice(&at.offset.to_le_bytes());
    covered[16..20].copy_from_slice(&len.to_le_bytes());
    covered[20..24].copy_from_slice(&synced.to_le_bytes());
    covered[24..28].copy_from_slice(&payload_checksum.to_le_bytes());
    crc32c::crc32c(&covered)
}

/// The framing to write before `payload` at `at`, the segment having been fsynced up to
/// `synced` (at most `at.offset`).
#[must_use]
pub fn encode_record_header(
    at: Position,
    synced: u32,
    payload: &[u8],
) -> [u8; RECORD_HEADER_BYTES as usize] {
    debug_assert!(u64::from(synced) <= at.offset, "synced past the record");
    let len = payload_len(payload);
    let checksum = record_checksum(payload);
    let mut header = [0u8; RECORD_HEADER_BYTES as usize];
    header[0..4].copy_from_slice(&len.to_le_bytes());
    header[4..8].copy_from_slice(&synced.to_le_bytes());
    header[8..12].copy_from_slice(&checksum.to_le_bytes());
    header[12..16].copy_from_slice(&header_checksum(at, len, synced, checksum).to_le_bytes());
    header
}

/// The framing of a version 1 record, for tests and tools that make old segments.
#[must_use]
pub fn encode_record_header_v1(payload: &[u8]) -> [u8; V1_RECORD_HEADER_BYTES as usize] {
    let mut header = [0u8; V1_RECORD_HEADER_BYTES as usize];
    header[0..4].copy_from_slice(&payload_len(payload).to_le_bytes());
    header[4..8].copy_from_slice(&record_checksum(payload).to_le_bytes());
    header
}

/// Parses the framing at the start of `bytes` (at least `framing.header_bytes()` long) of
/// a record at `at`. Version 2: the header CRC is checked first, so a damaged length is
/// reported as what it is; then lengths above `max_record_bytes` are refused before
/// anyone allocates or reads that many bytes.
///
/// # Errors
/// `ShortRecordHeader`, `HeaderChecksumMismatch`, `RecordTooLarge`, `SyncedBeyondRecord`.
pub fn decode_record_header(
    framing: Framing,
    bytes: &[u8],
    at: Position,
    max_record_bytes: u32,
) -> Result<RecordHeader, Corruption> {
    let needed = framing.header_bytes();
    if (bytes.len() as u64) < needed {
        return Err(Corruption::ShortRecordHeader {
            available: bytes.len() as u64,
            needed,
        });
    }
    let field = |i: usize| u32::from_le_bytes(bytes[i..i + 4].try_into().expect("slice of 4"));
    let header = match framing {
        Framing::V1 => RecordHeader {
            len: field(0),
            synced: None,
            checksum: field(4),
        },
        Framing::V2 => {
            let (len, synced, checksum, stored) = (field(0), field(4), field(8), field(12));
            let computed = header_checksum(at, len, synced, checksum);
            if computed != stored {
                return Err(Corruption::HeaderChecksumMismatch { stored, computed });
            }
            if u64::from(synced) > at.offset {
                return Err(Corruption::SyncedBeyondRecord { synced });
            }
            RecordHeader {
                len,
                synced: Some(synced),
                checksum,
            }
        }
    };
    if header.len > max_record_bytes {
        return Err(Corruption::RecordTooLarge {
            len: header.len,
            max: max_record_bytes,
        });
    }
    Ok(header)
}

/// Checks a payload against the framing it was read with.
pub(crate) fn verify_payload(header: RecordHeader, payload: &[u8]) -> Result<(), Corruption> {
    assert_eq!(payload.len() as u64, u64::from(header.len));
    let computed = record_checksum(payload);
    if computed != header.checksum {
        return Err(Corruption::ChecksumMismatch {
            stored: header.checksum,
            computed,
        });
    }
    Ok(())
}

/// File name of a segment, e.g. `journal-00000000000000000001.log`.
#[must_use]
pub fn segment_file_name(segment: u64) -> String {
    format!(
        "{SEGMENT_FILE_PREFIX}{segment:0width$}{SEGMENT_FILE_SUFFIX}",
        width = SEGMENT_ID_DIGITS
    )
}

/// The segment id in a segment file name, or `None` for any other file name.
#[must_use]
pub fn parse_segment_file_name(name: &str) -> Option<u64> {
    let digits = name
        .strip_prefix(SEGMENT_FILE_PREFIX)?
        .strip_suffix(SEGMENT_FILE_SUFFIX)?;
    if digits.len() != SEGMENT_ID_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Name of the file that keeps the bytes a recovery cut off segment `segment` at
/// `offset`, e.g. `journal-00000000000000000001.log.torn-4096`. Not a segment name: the
/// journal lists, reads and deletes only segments, so this file stays until an operator
/// removes it.
#[must_use]
pub fn torn_tail_file_name(segment: u64, offset: u64) -> String {
    format!("{}{TORN_TAIL_INFIX}{offset}", segment_file_name(segment))
}

fn payload_len(payload: &[u8]) -> u32 {
    u32::try_from(payload.len()).expect("record payloads are bounded by max_record_bytes: u32")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(segment: u64, offset: u64) -> Position {
        Position { segment, offset }
    }

    #[test]
    fn segment_header_round_trips() {
        let header = encode_segment_header(42);
        assert_eq!(&header[..8], b"HWSRJNL1");
        assert_eq!(
            decode_segment_header(&header),
            Ok(SegmentHeader {
                segment: 42,
                framing: Framing::V2
            })
        );
        let old = encode_segment_header_as(Framing::V1, 7);
        assert_eq!(decode_segment_header(&old).unwrap().framing, Framing::V1);
    }

    #[test]
    fn segment_header_rejects_short_magic_and_version() {
        let header = encode_segment_header(7);
        assert_eq!(
            decode_segment_header(&header[..19]),
            Err(Corruption::ShortHeader { len: 19 })
        );
        let mut bad = header;
        bad[0] = b'X';
        assert!(matches!(
            decode_segment_header(&bad),
            Err(Corruption::BadMagic { .. })
        ));
        let mut bad = header;
        bad[8] = 3;
        assert_eq!(
            decode_segment_header(&bad),
            Err(Corruption::UnsupportedVersion { found: 3 })
        );
    }

    #[test]
    fn zero_bytes_are_not_a_valid_record() {
        // Whatever the position: a zero header fails its payload CRC even in the unlikely
        // case that its header CRC matched.
        assert_ne!(record_checksum(&[]), 0);
        for framing in [Framing::V1, Framing::V2] {
            for offset in [20, 21, 4096, u64::from(u32::MAX)] {
                match decode_record_header(framing, &[0; 16], at(1, offset), 1024) {
                    Err(_) => {}
                    Ok(header) => assert!(verify_payload(header, &[]).is_err()),
                }
            }
        }
    }

    #[test]
    fn a_record_verifies_only_where_it_was_written() {
        let payload = b"payload";
        let header = encode_record_header(at(3, 100), 60, payload);
        let decoded = decode_record_header(Framing::V2, &header, at(3, 100), 64).unwrap();
        assert_eq!(
            decoded,
            RecordHeader {
                len: 7,
                synced: Some(60),
                checksum: record_checksum(payload)
            }
        );
        assert_eq!(verify_payload(decoded, payload), Ok(()));
        for elsewhere in [at(3, 101), at(3, 36), at(4, 100), at(2, 100)] {
            assert!(
                matches!(
                    decode_record_header(Framing::V2, &header, elsewhere, 64),
                    Err(Corruption::HeaderChecksumMismatch { .. })
                ),
                "{elsewhere}"
            );
        }
    }

    #[test]
    fn every_flipped_header_bit_is_caught() {
        let header = encode_record_header(at(3, 100), 60, b"payload");
        for bit in 0..header.len() * 8 {
            let mut damaged = header;
            damaged[bit / 8] ^= 1 << (bit % 8);
            let outcome = decode_record_header(Framing::V2, &damaged, at(3, 100), 64);
            assert!(outcome.is_err(), "bit {bit}: {outcome:?}");
        }
    }

    #[test]
    fn record_header_rejects_oversized_length_and_synced_past_the_record() {
        let header = encode_record_header(at(1, 20), 20, &[1, 2, 3]);
        assert_eq!(
            decode_record_header(Framing::V2, &header, at(1, 20), 2),
            Err(Corruption::RecordTooLarge { len: 3, max: 2 })
        );
        let decoded = decode_record_header(Framing::V2, &header, at(1, 20), 3).unwrap();
        assert!(verify_payload(decoded, &[1, 2, 4]).is_err());
        // A writer never frames a record synced past itself; one that says so is damaged
        // (or forged), even with a matching CRC.
        let mut forged = [0u8; 16];
        forged[0..4].copy_from_slice(&0u32.to_le_bytes());
        forged[4..8].copy_from_slice(&30u32.to_le_bytes());
        let checksum = record_checksum(&[]);
        forged[8..12].copy_from_slice(&checksum.to_le_bytes());
        forged[12..16].copy_from_slice(&header_checksum(at(1, 20), 0, 30, checksum).to_le_bytes());
        assert_eq!(
            decode_record_header(Framing::V2, &forged, at(1, 20), 3),
            Err(Corruption::SyncedBeyondRecord { synced: 30 })
        );
    }

    #[test]
    fn v1_records_still_decode() {
        let framing = encode_record_header_v1(&[1, 2, 3]);
        let header = decode_record_header(Framing::V1, &framing, at(1, 20), 3).unwrap();
        assert_eq!(header.synced, None);
        assert_eq!(verify_payload(header, &[1, 2, 3]), Ok(()));
        assert_eq!(
            decode_record_header(Framing::V1, &framing, at(1, 20), 2),
            Err(Corruption::RecordTooLarge { len: 3, max: 2 })
        );
    }

    #[test]
    fn file_names_sort_numerically_and_parse_back() {
        assert_eq!(segment_file_name(1), "journal-00000000000000000001.log");
        assert_eq!(
            parse_segment_file_name(&segment_file_name(u64::MAX)),
            Some(u64::MAX)
        );
        assert!(segment_file_name(9) < segment_file_name(10));
        assert_eq!(parse_segment_file_name("journal-1.log"), None);
        assert_eq!(
            parse_segment_file_name("journal-0000000000000000000x.log"),
            None
        );
        assert_eq!(parse_segment_file_name("journal.lock"), None);
        // 20 digits but above u64::MAX.
        assert_eq!(
            parse_segment_file_name("journal-99999999999999999999.log"),
            None
        );
        // The bytes cut off a torn tail are not a segment.
        assert_eq!(
            torn_tail_file_name(1, 4096),
            "journal-00000000000000000001.log.torn-4096"
        );
        assert_eq!(parse_segment_file_name(&torn_tail_file_name(1, 4096)), None);
    }
}
