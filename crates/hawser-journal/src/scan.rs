//! Parsing a whole segment file held in memory: header, then records until the data ends
//! or a record is bad. Pure, so recovery and the fuzzer run exactly the same code.

use std::ops::Range;

use crate::format::{
    decode_record_header, decode_segment_header, verify_payload, Corruption, RECORD_HEADER_BYTES,
    SEGMENT_HEADER_BYTES,
};

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
    /// Every good record, in file order, up to the first bad one.
    pub records: Vec<ScannedRecord>,
    /// Length of the good prefix: the header and every good record. Recovery cuts a torn
    /// tail here; it is also the offset that `damage` is reported at. 0 for a bad header.
    pub valid_len: u64,
    /// Why the scan stopped before the end of the data; `None` if all of it was good.
    pub damage: Option<Corruption>,
}

/// Parses a segment file's bytes. Never panics on any input; a record is accepted only
/// if its length is within `max_record_bytes`, all its bytes are present and its CRC
/// matches (checked right after reading it, before it is reported).
#[must_use]
pub fn scan_segment_bytes(data: &[u8], max_record_bytes: u32) -> ScanResult {
    let segment = match decode_segment_header(data) {
        Ok(segment) => segment,
        Err(damage) => {
            return ScanResult {
                segment: None,
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
        match next_record(&data[offset..], max_record_bytes) {
            Ok(payload_len) => {
                let payload_start = offset + RECORD_HEADER_BYTES as usize;
                records.push(ScannedRecord {
                    offset: offset as u64,
                    payload: payload_start..payload_start + payload_len,
                });
                offset = payload_start + payload_len;
            }
            Err(damage) => break Some(damage),
        }
    };
    ScanResult {
        segment: Some(segment),
        records,
        valid_len: offset as u64,
        damage,
    }
}

/// Checks the record at the start of `rest` and returns its payload length.
fn next_record(rest: &[u8], max_record_bytes: u32) -> Result<usize, Corruption> {
    let Some((framing, after)) = rest.split_first_chunk::<{ RECORD_HEADER_BYTES as usize }>()
    else {
        return Err(Corruption::ShortRecordHeader {
            available: rest.len() as u64,
        });
    };
    let header = decode_record_header(*framing, max_record_bytes)?;
    let len = header.len as usize;
    let Some(payload) = after.get(..len) else {
        return Err(Corruption::ShortPayload {
            len: header.len,
            available: after.len() as u64,
        });
    };
    verify_payload(header, payload)?;
    Ok(len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{encode_record_header, encode_segment_header};

    fn segment(records: &[&[u8]]) -> Vec<u8> {
        let mut data = encode_segment_header(3).to_vec();
        for payload in records {
            data.extend_from_slice(&encode_record_header(payload));
            data.extend_from_slice(payload);
        }
        data
    }

    #[test]
    fn scans_all_records_of_a_clean_segment() {
        let data = segment(&[b"one", b"", b"three"]);
        let scan = scan_segment_bytes(&data, 16);
        assert_eq!(scan.segment, Some(3));
        assert_eq!(scan.damage, None);
        assert_eq!(scan.valid_len, data.len() as u64);
        let payloads: Vec<&[u8]> = scan
            .records
            .iter()
            .map(|r| &data[r.payload.clone()])
            .collect();
        assert_eq!(payloads, vec![&b"one"[..], b"", b"three"]);
        assert_eq!(scan.records[0].offset, SEGMENT_HEADER_BYTES);
        assert_eq!(scan.records[1].offset, SEGMENT_HEADER_BYTES + 11);
    }

    #[test]
    fn stops_at_the_first_bad_record() {
        let mut data = segment(&[b"one", b"two"]);
        let last = data.len() - 1;
        data[last] ^= 0x01;
        let scan = scan_segment_bytes(&data, 16);
        assert_eq!(scan.records.len(), 1);
        assert_eq!(scan.valid_len, SEGMENT_HEADER_BYTES + 11);
        assert!(matches!(
            scan.damage,
            Some(Corruption::ChecksumMismatch { .. })
        ));
    }

    #[test]
    fn reports_short_records_and_oversized_lengths() {
        let data = segment(&[b"payload"]);
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
            Some(Corruption::ShortRecordHeader { available: 4 })
        );
        let scan = scan_segment_bytes(&data, 6);
        assert_eq!(
            scan.damage,
            Some(Corruption::RecordTooLarge { len: 7, max: 6 })
        );
        assert_eq!(scan.valid_len, SEGMENT_HEADER_BYTES);
    }

    #[test]
    fn bad_header_yields_no_records() {
        let mut data = segment(&[b"x"]);
        data[1] = 0;
        let scan = scan_segment_bytes(&data, 16);
        assert_eq!(scan.segment, None);
        assert!(scan.records.is_empty());
        assert_eq!(scan.valid_len, 0);
    }
}
