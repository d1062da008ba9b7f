//! Reading one frame's fields, in tight or loose encoding.
//!
//! Tight and loose encodings visit a data structure's fields in the same order; they differ
//! only in how each kind of field is written (a boolean is a bit or a byte, a long takes 0 to
//! 8 bytes or always 8, a string has an ASCII form or not). So every data structure has one
//! `unmarshal` that asks a [`Reader`] for its fields in order, and the reader knows the
//! encoding. In tight encoding bits come from the frame's BooleanStream and bytes from the
//! body, each in field order, so one walk reads both.

use bytes::Bytes;

use crate::boolean_stream::BitReader;
use crate::cache::DecodeCache;
use crate::cursor::{Cursor, ReadError};
use crate::data_structure::is_marshal_aware;
use crate::data_structure::{DataStructure, FromData};
use crate::exception::{ExceptionInfo, StackFrame};
use crate::settings::Format;
use crate::{modified_utf8, DecodeError, PrimitiveMap, MAX_EXCEPTION_DEPTH, MAX_NESTING_DEPTH};

/// Reads one frame. Built per frame; the cache outlives it.
pub(crate) struct Reader<'a, 'c> {
    /// The frame's bytes (or, without a size prefix, all that is buffered) and the position.
    cursor: Cursor<'a>,
    /// The buffer the cursor reads, when it is a `Bytes`: byte fields are then zero-copy
    /// slices of it instead of copies.
    backing: Option<&'a Bytes>,
    /// The frame's BooleanStream (tight encoding only; empty until loaded).
    bits: BitReader<'a>,
    /// Encoding, cache switch, version and stack traces, fixed for the frame.
    format: Format,
    /// The connection's decoding cache; the frame's changes are committed or rolled back by
    /// the caller.
    cache: &'c mut DecodeCache,
    /// Nested objects entered so far.
    depth: usize,
}

impl<'a, 'c> Reader<'a, 'c> {
    /// A reader of `data` from offset `start`. `backing`, if given, must hold the same bytes.
    pub(crate) fn new(
        data: &'a [u8],
        start: usize,
        backing: Option<&'a Bytes>,
        format: Format,
        cache: &'c mut DecodeCache,
    ) -> Self {
        Reader {
            cursor: Cursor::new(data, start),
            backing,
            bits: BitReader::default(),
            format,
            cache,
            depth: 0,
        }
    }

    pub(crate) fn position(&self) -> usize {
        self.cursor.position()
    }

    /// The negotiated protocol version, which decides which fields exist.
    pub(crate) fn version(&self) -> u8 {
        self.format.version
    }

    /// Reads the frame's BooleanStream, right after the top-level type byte (tight only).
    pub(crate) fn load_bits(&mut self) -> Result<(), ReadError> {
        if self.format.tight {
            self.bits = BitReader::read(&mut self.cursor)?;
        }
        Ok(())
    }

    pub(crate) fn u8(&mut self) -> Result<u8, ReadError> {
        self.cursor.u8()
    }

    pub(crate) fn i8(&mut self) -> Result<i8, ReadError> {
        self.cursor.i8()
    }

    pub(crate) fn i32(&mut self) -> Result<i32, ReadError> {
        self.cursor.i32()
    }

    pub(crate) fn boolean(&mut self) -> Result<bool, ReadError> {
        if self.format.tight {
            Ok(self.bits.next()?)
        } else {
            Ok(self.cursor.u8()? != 0)
        }
    }

    /// A Java `long`. Tight encoding writes two bits and then 0, 2, 4 or 8 bytes; the 2- and
    /// 4-byte forms are unsigned.
    pub(crate) fn long(&mut self) -> Result<i64, ReadError> {
        if !self.format.tight {
            return self.cursor.i64();
        }
        Ok(match (self.bits.next()?, self.bits.next()?) {
            (false, false) => 0,
            (false, true) => i64::from(self.cursor.u16()?),
            (true, false) => i64::from(self.cursor.i32()? as u32),
            (true, true) => self.cursor.i64()?,
        })
    }

    /// BaseCommand's fields: `commandId` and `responseRequired`.
    pub(crate) fn command_header(&mut self) -> Result<(i32, bool), ReadError> {
        Ok((self.i32()?, self.boolean()?))
    }

    pub(crate) fn string(&mut self) -> Result<Option<String>, ReadError> {
        if !self.boolean()? {
            return Ok(None);
        }
        if self.format.tight && self.bits.next()? {
            // Java's one-byte-per-char form, with a signed short length.
            let len = self.cursor.length_i16("string")?;
            return Ok(Some(modified_utf8::decode_latin1(self.cursor.take(len)?)));
        }
        let len = usize::from(self.cursor.u16()?);
        Ok(Some(modified_utf8::decode(self.cursor.take(len)?)?))
    }

    /// A string that names something and so cannot be null.
    pub(crate) fn required_string(&mut self, field: &'static str) -> Result<String, ReadError> {
        self.string()?
            .ok_or_else(|| DecodeError::NullField(field).into())
    }

    /// A `byte[]` or `ByteSequence` field.
    pub(crate) fn bytes(&mut self) -> Result<Option<Bytes>, ReadError> {
        if !self.boolean()? {
            return Ok(None);
        }
        let len = self.cursor.length_i32("byte array")?;
        let start = self.cursor.position();
        let taken = self.cursor.take(len)?;
        Ok(Some(match self.backing {
            Some(backing) => backing.slice(start..start + len),
            None => Bytes::copy_from_slice(taken),
        }))
    }

    /// A byte array field holding a primitive map, refused above `max_entries` entries.
    pub(crate) fn primitive_map(
        &mut self,
        max_entries: usize,
    ) -> Result<Option<PrimitiveMap>, ReadError> {
        if !self.boolean()? {
            return Ok(None);
        }
        let len = self.cursor.length_i32("primitive map")?;
        let blob = self.cursor.take(len)?;
        Ok(Some(PrimitiveMap::decode_bounded(blob, max_entries)?))
    }

    /// Fixed-size raw bytes (WireFormatInfo's magic).
    pub(crate) fn raw<const N: usize>(&mut self) -> Result<[u8; N], ReadError> {
        self.cursor.array()
    }

    /// A nested object of any type.
    pub(crate) fn nested_any(&mut self) -> Result<Option<DataStructure>, ReadError> {
        if !self.boolean()? {
            return Ok(None);
        }
        let type_id = self.cursor.u8()?;
        // Java checks a marshal-aware object's "pre-marshalled" bit after the type byte.
        if self.format.tight && is_marshal_aware(type_id) && self.bits.next()? {
            return Err(DecodeError::MarshalledForm.into());
        }
        self.enter()?;
        let value = DataStructure::unmarshal(type_id, self)?;
        self.depth -= 1;
        Ok(Some(value))
    }

    /// A nested object that must be a `T`.
    pub(crate) fn nested<T: FromData>(
        &mut self,
        field: &'static str,
    ) -> Result<Option<T>, ReadError> {
        match self.nested_any()? {
            Some(value) => Ok(Some(expect(value, field)?)),
            None => Ok(None),
        }
    }

    /// A field that goes through the marshal cache when it is on.
    pub(crate) fn cached_any(&mut self) -> Result<Option<DataStructure>, ReadError> {
        if !self.format.cache {
            return self.nested_any();
        }
        let is_new = self.boolean()?;
        let index = self.cursor.i16()?;
        if is_new {
            let value = self.nested_any()?;
            self.cache.store(index, value.as_ref())?;
            Ok(value)
        } else {
            Ok(self.cache.load(index)?)
        }
    }

    /// A cached field that must hold a `T`.
    pub(crate) fn cached<T: FromData>(
        &mut self,
        field: &'static str,
    ) -> Result<Option<T>, ReadError> {
        match self.cached_any()? {
            Some(value) => Ok(Some(expect(value, field)?)),
            None => Ok(None),
        }
    }

    /// An array of `T` (never cached). Null elements are refused: no Java client sends them.
    pub(crate) fn array<T: FromData>(
        &mut self,
        field: &'static str,
    ) -> Result<Option<Vec<T>>, ReadError> {
        if !self.boolean()? {
            return Ok(None);
        }
        let len = self.cursor.length_i16(field)?;
        // Each element takes at least its type byte, so the frame bounds the allocation.
        let mut items = Vec::with_capacity(len.min(self.cursor.remaining()));
        for _ in 0..len {
            let item = self.nested_any()?.ok_or(DecodeError::NullElement(field))?;
            items.push(expect(item, field)?);
        }
        Ok(Some(items))
    }

    /// A Java `Throwable`, as strings only: nothing a peer names is ever instantiated. Stack
    /// frames and the cause are on the wire only when StackTraceEnabled was negotiated.
    pub(crate) fn throwable(&mut self) -> Result<Option<ExceptionInfo>, ReadError> {
        self.throwable_at(1)
    }

    /// An exception that is the `level`th of its chain (the outermost is 1).
    fn throwable_at(&mut self, level: usize) -> Result<Option<ExceptionInfo>, ReadError> {
        if !self.boolean()? {
            return Ok(None);
        }
        if level > MAX_EXCEPTION_DEPTH {
            return Err(DecodeError::TooDeep(MAX_EXCEPTION_DEPTH).into());
        }
        let class_name = self.string()?;
        let message = self.string()?;
        let mut stack_trace = Vec::new();
        let mut cause = None;
        if self.format.stack_trace {
            let len = self.cursor.length_i16("stack trace")?;
            // A frame takes at least its line number's 4 bytes.
            stack_trace.reserve(len.min(self.cursor.remaining() / 4));
            for _ in 0..len {
                stack_trace.push(StackFrame {
                    class_name: self.string()?,
                    method_name: self.string()?,
                    file_name: self.string()?,
                    line_number: self.i32()?,
                });
            }
            cause = self.throwable_at(level + 1)?.map(Box::new);
        }
        Ok(Some(ExceptionInfo {
            class_name,
            message,
            stack_trace,
            cause,
        }))
    }

    fn enter(&mut self) -> Result<(), DecodeError> {
        if self.depth >= MAX_NESTING_DEPTH {
            return Err(DecodeError::TooDeep(MAX_NESTING_DEPTH));
        }
        self.depth += 1;
        Ok(())
    }
}

/// `value` as the `T` a field holds, or the error naming what it is instead.
fn expect<T: FromData>(value: DataStructure, field: &'static str) -> Result<T, DecodeError> {
    T::from_data(value).map_err(|other| DecodeError::UnexpectedType {
        field,
        expected: T::EXPECTED,
        found: other.type_id(),
    })
}
