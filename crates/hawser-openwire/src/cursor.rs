//! A bounds-checked cursor over received bytes: every read checks what remains before it
//! takes (or allocates) anything, so no length from the wire is trusted.

use crate::DecodeError;

/// Why a read stopped.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// The bytes ran out; the read needed them up to this offset (exclusive). Whether that
    /// means "wait for more" or "a length lies" depends on whether the frame's end is known,
    /// which only the caller knows.
    Short {
        /// Offset, from the cursor's start, that the read would have reached.
        needed: usize,
    },
    /// The bytes are there but wrong.
    Invalid(DecodeError),
}

impl From<DecodeError> for ReadError {
    fn from(error: DecodeError) -> Self {
        ReadError::Invalid(error)
    }
}

impl ReadError {
    /// The error for bytes known to be complete (a frame delimited by its size prefix, a
    /// properties blob): running out means a length or count lied.
    pub(crate) fn within_complete_data(self) -> DecodeError {
        match self {
            ReadError::Short { .. } => DecodeError::Truncated,
            ReadError::Invalid(error) => error,
        }
    }
}

/// Big-endian reads over a byte slice.
#[derive(Debug, Clone)]
pub(crate) struct Cursor<'a> {
    /// Everything readable; the cursor never reads past its end.
    data: &'a [u8],
    /// Next byte to read.
    pos: usize,
}

impl<'a> Cursor<'a> {
    /// A cursor at `start` of `data`.
    pub(crate) fn new(data: &'a [u8], start: usize) -> Self {
        Cursor { data, pos: start }
    }

    /// Offset of the next byte.
    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    /// Bytes left.
    pub(crate) fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    /// The next `n` bytes; nothing is consumed if they are not all there.
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], ReadError> {
        let end = self.pos.saturating_add(n);
        let Some(taken) = self.data.get(self.pos..end) else {
            return Err(ReadError::Short { needed: end });
        };
        self.pos = end;
        Ok(taken)
    }

    /// The next `N` bytes as an array.
    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N], ReadError> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, ReadError> {
        Ok(self.array::<1>()?[0])
    }

    pub(crate) fn i8(&mut self) -> Result<i8, ReadError> {
        Ok(i8::from_be_bytes(self.array()?))
    }

    pub(crate) fn i16(&mut self) -> Result<i16, ReadError> {
        Ok(i16::from_be_bytes(self.array()?))
    }

    pub(crate) fn u16(&mut self) -> Result<u16, ReadError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    pub(crate) fn i32(&mut self) -> Result<i32, ReadError> {
        Ok(i32::from_be_bytes(self.array()?))
    }

    pub(crate) fn i64(&mut self) -> Result<i64, ReadError> {
        Ok(i64::from_be_bytes(self.array()?))
    }

    /// A length written as a Java `int`: negative is an error, not a huge number.
    pub(crate) fn length_i32(&mut self, field: &'static str) -> Result<usize, ReadError> {
        let length = self.i32()?;
        usize::try_from(length).map_err(|_| DecodeError::NegativeLength { field, length }.into())
    }

    /// A count written as a Java `short`.
    pub(crate) fn length_i16(&mut self, field: &'static str) -> Result<usize, ReadError> {
        let length = self.i16()?;
        usize::try_from(length).map_err(|_| {
            DecodeError::NegativeLength {
                field,
                length: i32::from(length),
            }
            .into()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_reads_consume_nothing_and_say_how_far_they_reached() {
        let mut c = Cursor::new(&[0, 1, 2], 1);
        assert!(matches!(c.i32(), Err(ReadError::Short { needed: 5 })));
        assert_eq!(c.position(), 1);
        assert_eq!(c.i16().ok(), Some(0x0102));
        assert_eq!(c.remaining(), 0);
    }

    #[test]
    fn negative_lengths_are_errors() {
        let mut c = Cursor::new(&[0xff, 0xff, 0xff, 0xff], 0);
        assert!(matches!(
            c.length_i32("x"),
            Err(ReadError::Invalid(DecodeError::NegativeLength {
                length: -1,
                ..
            }))
        ));
    }
}
