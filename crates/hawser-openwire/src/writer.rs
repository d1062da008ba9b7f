//! Writing one frame's fields, in tight or loose encoding: the mirror of [`crate::reader`].
//!
//! Java's tight marshaller walks each command twice, once to collect the booleans and size the
//! body and once to write the body. Here one walk does both: bits go to a [`BitWriter`] and
//! bytes to the body buffer, in field order, and the frame is assembled afterwards.

use bytes::{BufMut, BytesMut};

use crate::boolean_stream::BitWriter;
use crate::cache::{CacheValue, EncodeCache};
use crate::data_structure::{is_marshal_aware, DataStructure, Marshal};
use crate::exception::ExceptionInfo;
use crate::settings::Format;
use crate::{
    modified_utf8, ConnectionId, EncodeError, PrimitiveMap, MAX_EXCEPTION_DEPTH, MAX_NESTING_DEPTH,
};

/// Longest string tight encoding writes: Java refuses 32,767 bytes and up.
const MAX_TIGHT_STRING_LEN: usize = i16::MAX as usize - 1;
/// Longest string loose encoding writes (`writeUTF`'s u16 length).
const MAX_LOOSE_STRING_LEN: usize = u16::MAX as usize;

/// Writes one frame's fields.
pub(crate) struct Writer<'a> {
    /// Where body bytes go.
    body: &'a mut BytesMut,
    /// Where tight encoding's booleans go; untouched in loose encoding.
    bits: &'a mut BitWriter,
    /// Encoding, cache switch, version and stack traces, fixed for the frame.
    format: Format,
    /// The connection's encoding cache; the frame's changes are committed or rolled back by
    /// the caller.
    cache: &'a mut EncodeCache,
    /// Nested objects entered so far.
    depth: usize,
}

impl<'a> Writer<'a> {
    pub(crate) fn new(
        body: &'a mut BytesMut,
        bits: &'a mut BitWriter,
        format: Format,
        cache: &'a mut EncodeCache,
    ) -> Self {
        Writer {
            body,
            bits,
            format,
            cache,
            depth: 0,
        }
    }

    /// The negotiated protocol version, which decides which fields exist.
    pub(crate) fn version(&self) -> u8 {
        self.format.version
    }

    pub(crate) fn u8(&mut self, value: u8) {
        self.body.put_u8(value);
    }

    pub(crate) fn i8(&mut self, value: i8) {
        self.body.put_i8(value);
    }

    pub(crate) fn i32(&mut self, value: i32) {
        self.body.put_i32(value);
    }

    pub(crate) fn raw(&mut self, bytes: &[u8]) {
        self.body.put_slice(bytes);
    }

    pub(crate) fn boolean(&mut self, value: bool) {
        if self.format.tight {
            self.bits.push(value);
        } else {
            self.body.put_u8(u8::from(value));
        }
    }

    /// A Java `long`: in tight encoding the shortest of 0, 2 (unsigned), 4 (unsigned) or 8
    /// bytes, announced by two bits; every negative value takes 8.
    pub(crate) fn long(&mut self, value: i64) {
        if !self.format.tight {
            self.body.put_i64(value);
            return;
        }
        let bits = value as u64;
        if bits == 0 {
            self.bits.push(false);
            self.bits.push(false);
        } else if bits >> 16 == 0 {
            self.bits.push(false);
            self.bits.push(true);
            self.body.put_u16(bits as u16);
        } else if bits >> 32 == 0 {
            self.bits.push(true);
            self.bits.push(false);
            self.body.put_u32(bits as u32);
        } else {
            self.bits.push(true);
            self.bits.push(true);
            self.body.put_i64(value);
        }
    }

    /// BaseCommand's fields: `commandId` and `responseRequired`.
    pub(crate) fn command_header(&mut self, command_id: i32, response_required: bool) {
        self.i32(command_id);
        self.boolean(response_required);
    }

    pub(crate) fn string(&mut self, value: Option<&str>) -> Result<(), EncodeError> {
        self.boolean(value.is_some());
        let Some(text) = value else {
            return Ok(());
        };
        let len = modified_utf8::encoded_len(text);
        if self.format.tight {
            if len > MAX_TIGHT_STRING_LEN {
                return Err(EncodeError::StringTooLong {
                    len,
                    max: MAX_TIGHT_STRING_LEN,
                });
            }
            let ascii = modified_utf8::is_plain_ascii(text.as_bytes());
            self.bits.push(ascii);
            if ascii {
                // Java writes the UTF-16 length, which for ASCII is the byte length.
                self.body.put_i16(len as i16);
                self.body.put_slice(text.as_bytes());
                return Ok(());
            }
        } else if len > MAX_LOOSE_STRING_LEN {
            return Err(EncodeError::StringTooLong {
                len,
                max: MAX_LOOSE_STRING_LEN,
            });
        }
        self.body.put_u16(len as u16);
        modified_utf8::encode(text, self.body);
        Ok(())
    }

    /// A `byte[]` or `ByteSequence` field.
    pub(crate) fn bytes(&mut self, value: Option<&[u8]>) -> Result<(), EncodeError> {
        self.boolean(value.is_some());
        if let Some(bytes) = value {
            self.body.put_i32(length_i32(bytes.len())?);
            self.body.put_slice(bytes);
        }
        Ok(())
    }

    /// A byte array field holding a primitive map.
    pub(crate) fn primitive_map(
        &mut self,
        value: Option<&PrimitiveMap>,
    ) -> Result<(), EncodeError> {
        self.boolean(value.is_some());
        if let Some(map) = value {
            let at = self.body.len();
            self.body.put_i32(0);
            map.encode(self.body)?;
            let len = length_i32(self.body.len() - at - 4)?;
            self.body[at..at + 4].copy_from_slice(&len.to_be_bytes());
        }
        Ok(())
    }

    /// A nested object.
    pub(crate) fn nested<T: Marshal + ?Sized>(
        &mut self,
        value: Option<&T>,
    ) -> Result<(), EncodeError> {
        self.boolean(value.is_some());
        let Some(value) = value else {
            return Ok(());
        };
        let type_id = value.type_id();
        if self.format.tight && is_marshal_aware(type_id) {
            // "Not pre-marshalled": Java's writer never sets this bit either.
            self.bits.push(false);
        }
        self.u8(type_id);
        if self.depth >= MAX_NESTING_DEPTH {
            return Err(EncodeError::TooDeep(MAX_NESTING_DEPTH));
        }
        self.depth += 1;
        value.marshal(self)?;
        self.depth -= 1;
        Ok(())
    }

    /// A field that goes through the marshal cache when it is on: a value the peer has seen
    /// (null included) is sent as its slot index only.
    pub(crate) fn cached<T: CacheValue>(&mut self, value: Option<&T>) -> Result<(), EncodeError> {
        if !self.format.cache {
            return self.nested(value);
        }
        match self.cache.lookup(value) {
            Some(index) => {
                self.boolean(false);
                self.body.put_i16(index);
            }
            None => {
                self.boolean(true);
                // The index precedes the object on the wire, but the reader stores the
                // object only after reading it, so slots taken by cached fields inside it
                // (a LocalTransactionId's connection id) come first, as in Java.
                let at = self.body.len();
                self.body.put_i16(0);
                self.nested(value)?;
                let index = self.cache.insert(value);
                self.body[at..at + 2].copy_from_slice(&index.to_be_bytes());
            }
        }
        Ok(())
    }

    /// A cached field that may hold any data structure (RemoveInfo's object id). Ids go
    /// through the cache; anything else is sent whole with index -1, "not cached", which
    /// Java's reader also accepts.
    pub(crate) fn cached_any(&mut self, value: Option<&DataStructure>) -> Result<(), EncodeError> {
        match value {
            None => self.cached::<ConnectionId>(None),
            Some(DataStructure::ConnectionId(id)) => self.cached(Some(id)),
            Some(DataStructure::SessionId(id)) => self.cached(Some(id)),
            Some(DataStructure::ProducerId(id)) => self.cached(Some(id)),
            Some(DataStructure::ConsumerId(id)) => self.cached(Some(id)),
            Some(DataStructure::BrokerId(id)) => self.cached(Some(id)),
            Some(DataStructure::Destination(d)) => self.cached(Some(d)),
            Some(DataStructure::TransactionId(t)) => self.cached(Some(t)),
            Some(other) if self.format.cache => {
                self.boolean(true);
                self.body.put_i16(-1);
                self.nested(Some(other))
            }
            Some(other) => self.nested(Some(other)),
        }
    }

    /// An array of nested objects (never cached).
    pub(crate) fn array<T: Marshal>(&mut self, value: Option<&[T]>) -> Result<(), EncodeError> {
        self.boolean(value.is_some());
        let Some(items) = value else {
            return Ok(());
        };
        self.body.put_i16(length_i16(items.len())?);
        for item in items {
            self.nested(Some(item))?;
        }
        Ok(())
    }

    /// A Java `Throwable`; stack frames and cause only with StackTraceEnabled.
    pub(crate) fn throwable(&mut self, value: Option<&ExceptionInfo>) -> Result<(), EncodeError> {
        self.throwable_at(value, 1)
    }

    /// An exception that is the `level`th of its chain (the outermost is 1).
    fn throwable_at(
        &mut self,
        value: Option<&ExceptionInfo>,
        level: usize,
    ) -> Result<(), EncodeError> {
        self.boolean(value.is_some());
        let Some(exception) = value else {
            return Ok(());
        };
        if level > MAX_EXCEPTION_DEPTH {
            return Err(EncodeError::TooDeep(MAX_EXCEPTION_DEPTH));
        }
        self.string(exception.class_name.as_deref())?;
        self.string(exception.message.as_deref())?;
        if self.format.stack_trace {
            self.body.put_i16(length_i16(exception.stack_trace.len())?);
            for frame in &exception.stack_trace {
                self.string(frame.class_name.as_deref())?;
                self.string(frame.method_name.as_deref())?;
                self.string(frame.file_name.as_deref())?;
                self.i32(frame.line_number);
            }
            self.throwable_at(exception.cause.as_deref(), level + 1)?;
        }
        Ok(())
    }
}

fn length_i32(len: usize) -> Result<i32, EncodeError> {
    i32::try_from(len).map_err(|_| EncodeError::TooManyElements {
        count: len,
        max: i32::MAX as usize,
    })
}

fn length_i16(len: usize) -> Result<i16, EncodeError> {
    i16::try_from(len).map_err(|_| EncodeError::TooManyElements {
        count: len,
        max: i16::MAX as usize,
    })
}
