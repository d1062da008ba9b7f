//! The BooleanStream of tight encoding: every boolean decision of a frame (field values,
//! null flags, ASCII flags, long sizes, cache hits), nested objects included, packed into one
//! bit string written after the type byte.
//!
//! Bits are packed least significant first: bit `k` is `1 << (k % 8)` of byte `k / 8`. The
//! byte count comes first, in one of three forms: one byte below 64, `C0` and one byte below
//! 256, else `80` and a big-endian `i16`.

use bytes::{BufMut, BytesMut};

use crate::cursor::{Cursor, ReadError};
use crate::{DecodeError, EncodeError};

/// Header marking a one-byte count from 64 to 255.
const BYTE_COUNT: u8 = 0xC0;
/// Header marking a two-byte count.
const SHORT_COUNT: u8 = 0x80;
/// Counts below this fit in the header byte itself.
const INLINE_COUNT_MAX: usize = 64;
/// Java keeps the count in a `short`.
const MAX_BYTES: usize = i16::MAX as usize;

/// Collects a frame's bits while its body is written.
#[derive(Debug, Default)]
pub(crate) struct BitWriter {
    /// The packed bits; the last byte may be partly used.
    bytes: Vec<u8>,
    /// Bits written so far.
    len: usize,
}

impl BitWriter {
    /// Forgets the bits, keeping the allocation for the next frame.
    pub(crate) fn clear(&mut self) {
        self.bytes.clear();
        self.len = 0;
    }

    pub(crate) fn push(&mut self, bit: bool) {
        let offset = self.len % 8;
        if offset == 0 {
            self.bytes.push(0);
        }
        if bit {
            if let Some(last) = self.bytes.last_mut() {
                *last |= 1 << offset;
            }
        }
        self.len += 1;
    }

    /// Size of the stream on the wire, header included.
    pub(crate) fn encoded_len(&self) -> usize {
        let n = self.bytes.len();
        let header = if n < INLINE_COUNT_MAX {
            1
        } else if n <= usize::from(u8::MAX) {
            2
        } else {
            3
        };
        header + n
    }

    /// Writes header and bits.
    pub(crate) fn write_to(&self, out: &mut BytesMut) -> Result<(), EncodeError> {
        let n = self.bytes.len();
        if n < INLINE_COUNT_MAX {
            out.put_u8(n as u8);
        } else if let Ok(n) = u8::try_from(n) {
            out.put_u8(BYTE_COUNT);
            out.put_u8(n);
        } else if n <= MAX_BYTES {
            out.put_u8(SHORT_COUNT);
            out.put_i16(n as i16);
        } else {
            // About 262,000 booleans: a frame with tens of thousands of array elements.
            return Err(EncodeError::TooManyElements {
                count: self.len,
                max: MAX_BYTES * 8,
            });
        }
        out.put_slice(&self.bytes);
        Ok(())
    }
}

/// Hands out a received frame's bits in order.
#[derive(Debug, Clone, Default)]
pub(crate) struct BitReader<'a> {
    /// The stream's bytes, as its header counted them.
    bytes: &'a [u8],
    /// Next bit to hand out.
    next: usize,
}

impl<'a> BitReader<'a> {
    /// Reads the header and takes the stream's bytes from `cursor`.
    pub(crate) fn read(cursor: &mut Cursor<'a>) -> Result<Self, ReadError> {
        let n = match cursor.u8()? {
            BYTE_COUNT => usize::from(cursor.u8()?),
            SHORT_COUNT => {
                let n = cursor.i16()?;
                usize::try_from(n).map_err(|_| DecodeError::InvalidBooleanStream)?
            }
            // Java reads the header byte unsigned, so any other byte is a literal count (its
            // writer only produces 0..=63 this way).
            n => usize::from(n),
        };
        Ok(BitReader {
            bytes: cursor.take(n)?,
            next: 0,
        })
    }

    pub(crate) fn next(&mut self) -> Result<bool, DecodeError> {
        let byte = self
            .bytes
            .get(self.next / 8)
            .ok_or(DecodeError::BooleanStreamExhausted)?;
        let bit = byte >> (self.next % 8) & 1 == 1;
        self.next += 1;
        Ok(bit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(bits: &[bool]) -> Vec<u8> {
        let mut w = BitWriter::default();
        for &b in bits {
            w.push(b);
        }
        let mut out = BytesMut::new();
        w.write_to(&mut out).unwrap();
        assert_eq!(out.len(), w.encoded_len());
        out.to_vec()
    }

    fn read_back(wire: &[u8], n: usize) -> Vec<bool> {
        let mut c = Cursor::new(wire, 0);
        let mut r = BitReader::read(&mut c).unwrap();
        assert_eq!(c.remaining(), 0);
        (0..n).map(|_| r.next().unwrap()).collect()
    }

    #[test]
    fn bits_are_packed_least_significant_first() {
        // The first byte of section 9.6's MessageDispatch: 0, 1, 1, 1, 0, 1, 0, 1.
        let bits = [false, true, true, true, false, true, false, true];
        assert_eq!(written(&bits), [1, 0xae]);
        assert_eq!(read_back(&[1, 0xae], 8), bits);
        assert_eq!(written(&[]), [0]);
        assert_eq!(written(&[true; 9]), [2, 0xff, 0x01]);
    }

    #[test]
    fn header_forms_follow_the_byte_count() {
        for (count, header) in [
            (63, vec![63]),
            (64, vec![0xc0, 64]),
            (255, vec![0xc0, 255]),
            (256, vec![0x80, 1, 0]),
        ] {
            let wire = written(&vec![true; count * 8]);
            assert_eq!(wire[..header.len()], header[..], "{count} bytes");
            assert_eq!(wire.len(), header.len() + count);
            assert!(read_back(&wire, count * 8).iter().all(|&b| b));
        }
    }

    #[test]
    fn exhausted_and_malformed_streams_are_errors() {
        let mut c = Cursor::new(&[1, 0], 0);
        let mut r = BitReader::read(&mut c).unwrap();
        for _ in 0..8 {
            assert_eq!(r.next(), Ok(false));
        }
        assert_eq!(r.next(), Err(DecodeError::BooleanStreamExhausted));

        let mut c = Cursor::new(&[0x80, 0xff, 0xff], 0);
        assert!(matches!(
            BitReader::read(&mut c),
            Err(ReadError::Invalid(DecodeError::InvalidBooleanStream))
        ));
        let mut c = Cursor::new(&[5, 0, 0], 0);
        assert!(matches!(
            BitReader::read(&mut c),
            Err(ReadError::Short { needed: 6 })
        ));
    }
}
