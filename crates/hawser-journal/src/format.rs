//! The bytes of a segment file. Pure functions, no I/O.
//!
//! ```text
//! segment file := header record*
//! header       := magic "HWSRJNL1" (8) | format version u32 (4) | segment id u64 (8)
//! record       := len u32 (4) | crc u32 (4) | payload (len bytes)
//! crc          := crc32c(len as 4 bytes ++ payload)
//! ```
//!
//! Integers are little-endian. The CRC covers the length field as well as the payload:
//! CRC-32C of an empty input is 0, so with a payload-only CRC a run of zero bytes (what a
//! file system may leave at the end of a file after a crash) would read as a stream of
//! valid empty records. Covering the length also catches a flipped length bit that still
//! lands inside the file.

use thiserror::Error;

/// First bytes of every segment file.
pub const SEGMENT_MAGIC: [u8; 8] = *b"HWSRJNL1";

/// Version of the layout above, stored in every segment header.
pub const FORMAT_VERSION: u32 = 1;

/// Size of the segment header; the first record starts here.
pub const SEGMENT_HEADER_BYTES: u64 = 20;

/// Size of a record's framing (length and CRC) before its payload.
pub const RECORD_HEADER_BYTES: u64 = 8;

const SEGMENT_FILE_PREFIX: &str = "journal-";
const SEGMENT_FILE_SUFFIX: &str = ".log";
/// Digits of `u64::MAX`; zero padding to this width makes lexical order numeric order.
const SEGMENT_ID_DIGITS: usize = 20;

/// What is wrong with the bytes at some offset of a segment. In the last segment after a
/// crash this is a torn tail; anywhere else it is corruption.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum Corruption {
    #[error("file is {len} bytes, shorter than the {SEGMENT_HEADER_BYTES}-byte segment header")]
    ShortHeader { len: u64 },
    #[error("bad magic {found:02x?} in segment header")]
    BadMagic { found: [u8; 8] },
    #[error("unsupported segment format version {found} (this build reads {FORMAT_VERSION})")]
    UnsupportedVersion { found: u32 },
    #[error("segment header says segment {in_header} but the file name says {in_name}")]
    SegmentIdMismatch { in_header: u64, in_name: u64 },
    #[error(
        "only {available} bytes left, shorter than a {RECORD_HEADER_BYTES}-byte record header"
    )]
    ShortRecordHeader { available: u64 },
    #[error("record length {len} exceeds max_record_bytes {max}")]
    RecordTooLarge { len: u32, max: u32 },
    #[error("record length {len} but only {available} payload bytes left")]
    ShortPayload { len: u32, available: u64 },
    #[error("record checksum mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    ChecksumMismatch { stored: u32, computed: u32 },
    #[error("sealed at {sealed} bytes but the file has only {len}")]
    SealedTooShort { sealed: u64, len: u64 },
    #[error("the SEALS file of an epoch directory is malformed")]
    BadSeals,
}

/// The framing of one record as stored before its payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordHeader {
    /// Payload length in bytes.
    pub len: u32,
    /// Stored [`record_checksum`] of the payload.
    pub checksum: u32,
}

/// The header every segment file starts with.
#[must_use]
pub fn encode_segment_header(segment: u64) -> [u8; SEGMENT_HEADER_BYTES as usize] {
    let mut header = [0u8; SEGMENT_HEADER_BYTES as usize];
    header[0..8].copy_from_slice(&SEGMENT_MAGIC);
    header[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    header[12..20].copy_from_slice(&segment.to_le_bytes());
    header
}

/// Checks a segment header (the first bytes of `data`) and returns its segment id.
///
/// # Errors
/// `ShortHeader`, `BadMagic` or `UnsupportedVersion`.
pub fn decode_segment_header(data: &[u8]) -> Result<u64, Corruption> {
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
    if version != FORMAT_VERSION {
        return Err(Corruption::UnsupportedVersion { found: version });
    }
    Ok(u64::from_le_bytes(
        header[12..20].try_into().expect("slice of 8"),
    ))
}

/// The CRC-32C stored with a record: over the length field, then the payload.
#[must_use]
pub fn record_checksum(payload: &[u8]) -> u32 {
    let len = payload_len(payload);
    crc32c::crc32c_append(crc32c::crc32c(&len.to_le_bytes()), payload)
}

/// The framing to write before `payload`.
#[must_use]
pub fn encode_record_header(payload: &[u8]) -> [u8; RECORD_HEADER_BYTES as usize] {
    let mut header = [0u8; RECORD_HEADER_BYTES as usize];
    header[0..4].copy_from_slice(&payload_len(payload).to_le_bytes());
    header[4..8].copy_from_slice(&record_checksum(payload).to_le_bytes());
    header
}

/// Parses a record's framing and rejects lengths above `max_record_bytes` before anyone
/// allocates or reads that many bytes.
///
/// # Errors
/// `RecordTooLarge` for a length above `max_record_bytes`.
pub fn decode_record_header(
    bytes: [u8; RECORD_HEADER_BYTES as usize],
    max_record_bytes: u32,
) -> Result<RecordHeader, Corruption> {
    let len = u32::from_le_bytes(bytes[0..4].try_into().expect("slice of 4"));
    let checksum = u32::from_le_bytes(bytes[4..8].try_into().expect("slice of 4"));
    if len > max_record_bytes {
        return Err(Corruption::RecordTooLarge {
            len,
            max: max_record_bytes,
        });
    }
    Ok(RecordHeader { len, checksum })
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

fn payload_len(payload: &[u8]) -> u32 {
    u32::try_from(payload.len()).expect("record payloads are bounded by max_record_bytes: u32")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_header_round_trips() {
        let header = encode_segment_header(42);
        assert_eq!(&header[..8], b"HWSRJNL1");
        assert_eq!(decode_segment_header(&header), Ok(42));
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
        bad[8] = 2;
        assert_eq!(
            decode_segment_header(&bad),
            Err(Corruption::UnsupportedVersion { found: 2 })
        );
    }

    #[test]
    fn zero_bytes_are_not_a_valid_record() {
        let header = decode_record_header([0; 8], 1024).unwrap();
        assert_eq!(header.len, 0);
        assert!(verify_payload(header, &[]).is_err());
    }

    #[test]
    fn record_header_rejects_oversized_length() {
        let framing = encode_record_header(&[1, 2, 3]);
        assert_eq!(
            decode_record_header(framing, 2),
            Err(Corruption::RecordTooLarge { len: 3, max: 2 })
        );
        let header = decode_record_header(framing, 3).unwrap();
        assert_eq!(verify_payload(header, &[1, 2, 3]), Ok(()));
        assert!(verify_payload(header, &[1, 2, 4]).is_err());
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
    }
}
