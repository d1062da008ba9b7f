//! Reading records back: one ([`Journal::read`], for copying live records
//! forward) or many at once ([`Journal::read_many`], for a store serving a
//! batch of stored messages to consumers).
//!
//! A read of many reads each run of nearby records of one segment with one
//! `pread` (and one more for the last record's payload), instead of opening
//! the segment file and reading three times per record: paged-out messages
//! are read back by the hundred, mostly from consecutive records.

use std::io;
use std::path::Path;

use bytes::{Bytes, BytesMut};

use crate::error::ReadError;
use crate::format::{
    decode_record_header, decode_segment_header, verify_payload, Corruption, Framing,
    RECORD_HEADER_BYTES, SEGMENT_HEADER_BYTES,
};
use crate::journal::Journal;
use crate::position::Position;

/// Records of one segment this close (in bytes, from one's start to the
/// next's) are read with one `pread`: the bytes between them are read too.
const SPAN_GAP_BYTES: u64 = 256 * 1024;

impl Journal {
    /// Reads back a record appended earlier, verifying its CRC. A record still queued is
    /// waited for.
    ///
    /// # Errors
    /// `NoSuchSegment` for a deleted segment; `NotAppended` for a position past the end;
    /// `Corrupt` if the bytes there are not a record with a matching CRC; `Io`.
    pub fn read(&self, position: Position) -> Result<Bytes, ReadError> {
        Ok(self.read_many(&[position])?.remove(0))
    }

    /// Reads back the records at `positions`, in that order, each verified as
    /// [`Journal::read`] does; records still queued are waited for.
    ///
    /// # Errors
    /// As [`Journal::read`], for the first position that fails.
    pub fn read_many(&self, positions: &[Position]) -> Result<Vec<Bytes>, ReadError> {
        let mut out = Vec::with_capacity(positions.len());
        let mut i = 0;
        while i < positions.len() {
            // A run: the same segment, offsets rising, gaps small.
            let mut j = i + 1;
            while j < positions.len()
                && positions[j].segment == positions[i].segment
                && positions[j].offset > positions[j - 1].offset
                && positions[j].offset - positions[j - 1].offset <= SPAN_GAP_BYTES
            {
                j += 1;
            }
            out.extend(self.read_run(&positions[i..j])?);
            i = j;
        }
        Ok(out)
    }

    /// Reads a run of records of one segment, offsets rising.
    fn read_run(&self, run: &[Position]) -> Result<Vec<Bytes>, ReadError> {
        let first = run[0];
        let last = run[run.len() - 1];
        {
            let mut state = self.shared.state.lock();
            if !state.segments.contains(&first.segment) {
                return Err(ReadError::NoSuchSegment {
                    segment: first.segment,
                });
            }
            for &position in run {
                if position >= state.next || position.offset < SEGMENT_HEADER_BYTES {
                    return Err(ReadError::NotAppended { position });
                }
            }
            while !state.is_written(last) && state.writer_can_progress() {
                self.shared.hurry(&mut state);
                self.shared.progress.wait(&mut state);
            }
        }
        let file = self.shared.segment_path(first.segment);
        let storage = &*self.shared.config.storage;
        let io_error = |source: io::Error| {
            if source.kind() == io::ErrorKind::NotFound {
                ReadError::NoSuchSegment {
                    segment: first.segment,
                }
            } else {
                ReadError::Io {
                    file: file.clone(),
                    source,
                }
            }
        };
        // The segment's header says how its records are framed (older segments may be
        // of an older format).
        let mut segment_header = [0u8; SEGMENT_HEADER_BYTES as usize];
        let read = storage
            .read_at(&file, 0, &mut segment_header)
            .map_err(io_error)?;
        let framing = decode_segment_header(&segment_header[..read])
            .map_err(|reason| ReadError::Corrupt {
                file: file.clone(),
                offset: 0,
                reason,
            })?
            .framing;
        // Everything up to the last record's header, then its payload.
        let header_bytes = framing.header_bytes();
        let mut span = vec![0u8; (last.offset - first.offset + header_bytes) as usize];
        let read = storage
            .read_at(&file, first.offset, &mut span)
            .map_err(io_error)?;
        span.truncate(read);
        let last_header = self.record_header(framing, &span, first, last, &file)?;
        let end = (last.offset - first.offset + header_bytes) as usize;
        if span.len() == end {
            span.resize(end + last_header.len as usize, 0);
            let read = storage
                .read_at(&file, last.offset + header_bytes, &mut span[end..])
                .map_err(io_error)?;
            span.truncate(end + read);
        }
        let span = BytesMut::from(&span[..]).freeze();
        run.iter()
            .map(|&position| {
                let header = self.record_header(framing, &span, first, position, &file)?;
                let start = (position.offset - first.offset + header_bytes) as usize;
                let available = span.len().saturating_sub(start);
                if available < header.len as usize {
                    return Err(ReadError::Corrupt {
                        file: file.clone(),
                        offset: position.offset,
                        reason: Corruption::ShortPayload {
                            len: header.len,
                            available: available as u64,
                        },
                    });
                }
                let payload = span.slice(start..start + header.len as usize);
                verify_payload(header, &payload).map_err(|reason| ReadError::Corrupt {
                    file: file.clone(),
                    offset: position.offset,
                    reason,
                })?;
                Ok(payload)
            })
            .collect()
    }

    /// The header of the record at `position`, from `span` (read from `first`).
    fn record_header(
        &self,
        framing: Framing,
        span: &[u8],
        first: Position,
        position: Position,
        file: &Path,
    ) -> Result<crate::format::RecordHeader, ReadError> {
        let start = (position.offset - first.offset) as usize;
        let end = (start + framing.header_bytes() as usize).min(span.len());
        let bytes = span.get(start..end).unwrap_or_default();
        debug_assert!(framing.header_bytes() <= RECORD_HEADER_BYTES);
        decode_record_header(
            framing,
            bytes,
            position,
            self.shared.config.max_record_bytes,
        )
        .map_err(|reason| ReadError::Corrupt {
            file: file.to_owned(),
            offset: position.offset,
            reason,
        })
    }
}
