//! ActiveMQ's "primitive map": typed key/value pairs, the format of message properties, of
//! WireFormatInfo's options and of MapMessage and StreamMessage bodies.
//!
//! ```text
//! i32 count (-1: null map)
//! count × { u16 length + modified UTF-8 key, u8 type tag, value }
//! ```
//!
//! The format is the same in tight and loose encoding: it always travels inside a byte
//! array field. Entry order is whatever Java's `HashMap` produced; it is kept, so that a
//! decoded map encodes back to the same bytes.

use bytes::{BufMut, Bytes, BytesMut};

use crate::cursor::{Cursor, ReadError};
use crate::{modified_utf8, DecodeError, EncodeError, MAX_NESTING_DEPTH};

/// Type tags, as in `MarshallingSupport`. Note that 7 is DOUBLE and 8 is FLOAT.
mod tag {
    pub const NULL: u8 = 0;
    pub const BOOLEAN: u8 = 1;
    pub const BYTE: u8 = 2;
    pub const CHAR: u8 = 3;
    pub const SHORT: u8 = 4;
    pub const INTEGER: u8 = 5;
    pub const LONG: u8 = 6;
    pub const DOUBLE: u8 = 7;
    pub const FLOAT: u8 = 8;
    pub const STRING: u8 = 9;
    pub const BYTE_ARRAY: u8 = 10;
    pub const MAP: u8 = 11;
    pub const LIST: u8 = 12;
    pub const BIG_STRING: u8 = 13;
}

/// Java writes a string as STRING (u16 length) below this many UTF-16 units and as
/// BIG_STRING (i32 length) from it on, so that `writeUTF`'s 65,535-byte limit is never hit.
const BIG_STRING_UTF16_LEN: usize = (i16::MAX / 4) as usize;
/// `writeUTF`'s limit, which applies to keys and STRING values.
const MAX_UTF_LEN: usize = u16::MAX as usize;
/// The smallest entry on the wire: an empty key (2 bytes) and a NULL tag.
const MIN_ENTRY_LEN: usize = 3;
/// Most values (map entries and list elements, at every level) one blob may hold. A value
/// can take one byte on the wire but 40 in memory (64 for a map entry), so a frame of tiny
/// values would otherwise cost some 40 times its size; with this bound a blob's values
/// cost at most about 4 MiB. JMS properties number in the tens.
pub const MAX_PRIMITIVE_VALUES: usize = 1 << 16;

/// One typed value of a primitive map or list.
///
/// Floats compare by bit pattern, so that a NaN read from the wire equals itself and a map
/// survives a round trip through `==`.
#[derive(Debug, Clone)]
pub enum PrimitiveValue {
    /// Java `null`.
    Null,
    /// `boolean`.
    Boolean(bool),
    /// `byte`.
    Byte(i8),
    /// `char`: one UTF-16 unit, possibly half a surrogate pair.
    Char(u16),
    /// `short`.
    Short(i16),
    /// `int`.
    Int(i32),
    /// `long`.
    Long(i64),
    /// `float`.
    Float(f32),
    /// `double`.
    Double(f64),
    /// `String`, whichever of the two string tags carried it.
    String(String),
    /// `byte[]`.
    Bytes(Bytes),
    /// A nested map (allowed in MapMessage bodies and by the format, not by JMS properties).
    Map(PrimitiveMap),
    /// A nested list.
    List(Vec<PrimitiveValue>),
}

impl PartialEq for PrimitiveValue {
    fn eq(&self, other: &Self) -> bool {
        use PrimitiveValue as V;
        match (self, other) {
            (V::Null, V::Null) => true,
            (V::Boolean(a), V::Boolean(b)) => a == b,
            (V::Byte(a), V::Byte(b)) => a == b,
            (V::Char(a), V::Char(b)) => a == b,
            (V::Short(a), V::Short(b)) => a == b,
            (V::Int(a), V::Int(b)) => a == b,
            (V::Long(a), V::Long(b)) => a == b,
            (V::Float(a), V::Float(b)) => a.to_bits() == b.to_bits(),
            (V::Double(a), V::Double(b)) => a.to_bits() == b.to_bits(),
            (V::String(a), V::String(b)) => a == b,
            (V::Bytes(a), V::Bytes(b)) => a == b,
            (V::Map(a), V::Map(b)) => a == b,
            (V::List(a), V::List(b)) => a == b,
            _ => false,
        }
    }
}

// Bitwise float comparison makes equality reflexive.
impl Eq for PrimitiveValue {}

impl From<&str> for PrimitiveValue {
    fn from(text: &str) -> Self {
        PrimitiveValue::String(text.to_owned())
    }
}

/// Keys and typed values in wire order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PrimitiveMap {
    /// Entries as received or inserted. Java never sends a key twice; if a peer does, both
    /// entries are kept and [`PrimitiveMap::get`] sees the last, as Java's reader would.
    entries: Vec<(String, PrimitiveValue)>,
}

impl PrimitiveMap {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&PrimitiveValue> {
        self.entries
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    /// Sets `key`, replacing its value in place if it is there (so the order of the other
    /// entries does not change) or appending it. Returns the old value.
    pub fn insert(
        &mut self,
        key: impl Into<String>,
        value: PrimitiveValue,
    ) -> Option<PrimitiveValue> {
        let key = key.into();
        match self.entries.iter_mut().rev().find(|(k, _)| *k == key) {
            Some((_, old)) => Some(std::mem::replace(old, value)),
            None => {
                self.entries.push((key, value));
                None
            }
        }
    }

    /// Removes every entry of `key`, returning the value [`PrimitiveMap::get`] saw.
    pub fn remove(&mut self, key: &str) -> Option<PrimitiveValue> {
        let mut removed = None;
        self.entries.retain_mut(|(k, v)| {
            if k == key {
                removed = Some(std::mem::replace(v, PrimitiveValue::Null));
                false
            } else {
                true
            }
        });
        removed
    }

    /// Entries in wire order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &PrimitiveValue)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Decodes a whole blob (a `marshalledProperties` field, a MapMessage body). A null map
    /// (count -1) reads as empty; bytes after the map are an error.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        Self::decode_bounded(bytes, usize::MAX)
    }

    /// [`PrimitiveMap::decode`] refusing more than `max_entries` entries.
    pub(crate) fn decode_bounded(bytes: &[u8], max_entries: usize) -> Result<Self, DecodeError> {
        let mut cursor = Cursor::new(bytes, 0);
        let mut values_left = MAX_PRIMITIVE_VALUES;
        let map = read_map(&mut cursor, max_entries, 0, &mut values_left)
            .map_err(ReadError::within_complete_data)?
            .unwrap_or_default();
        if cursor.remaining() != 0 {
            return Err(DecodeError::TrailingBytes {
                declared: bytes.len(),
                consumed: cursor.position(),
            });
        }
        Ok(map)
    }

    /// Appends the map's encoding.
    pub fn encode(&self, out: &mut BytesMut) -> Result<(), EncodeError> {
        write_map(self, out, 0)
    }
}

impl FromIterator<(String, PrimitiveValue)> for PrimitiveMap {
    fn from_iter<I: IntoIterator<Item = (String, PrimitiveValue)>>(entries: I) -> Self {
        let mut map = PrimitiveMap::new();
        for (k, v) in entries {
            map.insert(k, v);
        }
        map
    }
}

/// Takes one value from the blob's budget.
fn count_value(values_left: &mut usize) -> Result<(), DecodeError> {
    *values_left = values_left
        .checked_sub(1)
        .ok_or(DecodeError::TooManyValues(MAX_PRIMITIVE_VALUES))?;
    Ok(())
}

/// Reads a map; `None` for Java's null map. `values_left` is what the blob's budget of values
/// has left.
fn read_map(
    c: &mut Cursor<'_>,
    max_entries: usize,
    depth: usize,
    values_left: &mut usize,
) -> Result<Option<PrimitiveMap>, ReadError> {
    if depth > MAX_NESTING_DEPTH {
        return Err(DecodeError::TooDeep(MAX_NESTING_DEPTH).into());
    }
    let count = c.i32()?;
    let Ok(len) = usize::try_from(count) else {
        return Ok(None);
    };
    if len > max_entries {
        return Err(DecodeError::TooManyEntries {
            count,
            max: max_entries,
        }
        .into());
    }
    let mut entries = Vec::with_capacity(len.min(c.remaining() / MIN_ENTRY_LEN).min(*values_left));
    for _ in 0..len {
        count_value(values_left)?;
        let key_len = usize::from(c.u16()?);
        let key = modified_utf8::decode(c.take(key_len)?)?;
        let value = read_value(c, depth, values_left)?;
        entries.push((key, value));
    }
    Ok(Some(PrimitiveMap { entries }))
}

fn read_value(
    c: &mut Cursor<'_>,
    depth: usize,
    values_left: &mut usize,
) -> Result<PrimitiveValue, ReadError> {
    use PrimitiveValue as V;
    Ok(match c.u8()? {
        tag::NULL => V::Null,
        tag::BOOLEAN => V::Boolean(c.u8()? != 0),
        tag::BYTE => V::Byte(c.i8()?),
        tag::CHAR => V::Char(c.u16()?),
        tag::SHORT => V::Short(c.i16()?),
        tag::INTEGER => V::Int(c.i32()?),
        tag::LONG => V::Long(c.i64()?),
        tag::DOUBLE => V::Double(f64::from_bits(c.i64()? as u64)),
        tag::FLOAT => V::Float(f32::from_bits(c.i32()? as u32)),
        tag::STRING => {
            let len = usize::from(c.u16()?);
            V::String(modified_utf8::decode(c.take(len)?)?)
        }
        tag::BIG_STRING => match c.i32()? {
            // Java's writer uses -1 for a null string here.
            -1 => V::Null,
            length => {
                let len = usize::try_from(length).map_err(|_| DecodeError::NegativeLength {
                    field: "primitive BIG_STRING",
                    length,
                })?;
                V::String(modified_utf8::decode(c.take(len)?)?)
            }
        },
        tag::BYTE_ARRAY => {
            let len = c.length_i32("primitive BYTE_ARRAY")?;
            V::Bytes(Bytes::copy_from_slice(c.take(len)?))
        }
        tag::MAP => match read_map(c, usize::MAX, depth + 1, values_left)? {
            Some(map) => V::Map(map),
            None => V::Null,
        },
        tag::LIST => {
            if depth + 1 > MAX_NESTING_DEPTH {
                return Err(DecodeError::TooDeep(MAX_NESTING_DEPTH).into());
            }
            let len = c.length_i32("primitive LIST")?;
            // Every element takes at least its tag byte.
            let mut items = Vec::with_capacity(len.min(c.remaining()).min(*values_left));
            for _ in 0..len {
                count_value(values_left)?;
                items.push(read_value(c, depth + 1, values_left)?);
            }
            V::List(items)
        }
        other => return Err(DecodeError::UnknownPrimitiveType(other).into()),
    })
}

fn write_map(map: &PrimitiveMap, out: &mut BytesMut, depth: usize) -> Result<(), EncodeError> {
    if depth > MAX_NESTING_DEPTH {
        return Err(EncodeError::TooDeep(MAX_NESTING_DEPTH));
    }
    out.put_i32(count_i32(map.entries.len())?);
    for (key, value) in &map.entries {
        write_utf(key, out)?;
        write_value(value, out, depth)?;
    }
    Ok(())
}

fn write_value(
    value: &PrimitiveValue,
    out: &mut BytesMut,
    depth: usize,
) -> Result<(), EncodeError> {
    use PrimitiveValue as V;
    match value {
        V::Null => out.put_u8(tag::NULL),
        V::Boolean(b) => {
            out.put_u8(tag::BOOLEAN);
            out.put_u8(u8::from(*b));
        }
        V::Byte(b) => {
            out.put_u8(tag::BYTE);
            out.put_i8(*b);
        }
        V::Char(c) => {
            out.put_u8(tag::CHAR);
            out.put_u16(*c);
        }
        V::Short(s) => {
            out.put_u8(tag::SHORT);
            out.put_i16(*s);
        }
        V::Int(i) => {
            out.put_u8(tag::INTEGER);
            out.put_i32(*i);
        }
        V::Long(l) => {
            out.put_u8(tag::LONG);
            out.put_i64(*l);
        }
        V::Double(d) => {
            out.put_u8(tag::DOUBLE);
            out.put_u64(d.to_bits());
        }
        V::Float(f) => {
            out.put_u8(tag::FLOAT);
            out.put_u32(f.to_bits());
        }
        V::String(s) if modified_utf8::utf16_len(s) < BIG_STRING_UTF16_LEN => {
            out.put_u8(tag::STRING);
            write_utf(s, out)?;
        }
        V::String(s) => {
            out.put_u8(tag::BIG_STRING);
            out.put_i32(count_i32(modified_utf8::encoded_len(s))?);
            modified_utf8::encode(s, out);
        }
        V::Bytes(b) => {
            out.put_u8(tag::BYTE_ARRAY);
            out.put_i32(count_i32(b.len())?);
            out.put_slice(b);
        }
        V::Map(m) => {
            out.put_u8(tag::MAP);
            write_map(m, out, depth + 1)?;
        }
        V::List(items) => {
            if depth + 1 > MAX_NESTING_DEPTH {
                return Err(EncodeError::TooDeep(MAX_NESTING_DEPTH));
            }
            out.put_u8(tag::LIST);
            out.put_i32(count_i32(items.len())?);
            for item in items {
                write_value(item, out, depth + 1)?;
            }
        }
    }
    Ok(())
}

/// Java's `writeUTF`: u16 length and modified UTF-8.
fn write_utf(text: &str, out: &mut BytesMut) -> Result<(), EncodeError> {
    let len = modified_utf8::encoded_len(text);
    let len16 = u16::try_from(len).map_err(|_| EncodeError::StringTooLong {
        len,
        max: MAX_UTF_LEN,
    })?;
    out.put_u16(len16);
    modified_utf8::encode(text, out);
    Ok(())
}

fn count_i32(count: usize) -> Result<i32, EncodeError> {
    i32::try_from(count).map_err(|_| EncodeError::TooManyElements {
        count,
        max: i32::MAX as usize,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(map: &PrimitiveMap) -> Vec<u8> {
        let mut out = BytesMut::new();
        map.encode(&mut out).unwrap();
        out.to_vec()
    }

    #[test]
    fn every_tag_round_trips() {
        use PrimitiveValue as V;
        let inner: PrimitiveMap = [("x".to_owned(), V::Int(1))].into_iter().collect();
        let map: PrimitiveMap = [
            ("null", V::Null),
            ("bool", V::Boolean(true)),
            ("byte", V::Byte(-2)),
            ("char", V::Char(0xd800)),
            ("short", V::Short(-300)),
            ("int", V::Int(70000)),
            ("long", V::Long(i64::MIN)),
            ("float", V::Float(f32::NAN)),
            ("double", V::Double(-0.0)),
            ("string", V::from("v\0é😀")),
            ("big", V::String("x".repeat(9000))),
            ("bytes", V::Bytes(Bytes::from_static(b"\x00\xff"))),
            ("map", V::Map(inner)),
            ("list", V::List(vec![V::Null, V::Long(5), V::List(vec![])])),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let wire = encoded(&map);
        assert_eq!(PrimitiveMap::decode(&wire), Ok(map));
    }

    #[test]
    fn section_9_6_property_bytes() {
        let wire = [0, 0, 0, 1, 0, 1, b'k', 9, 0, 1, b'v'];
        let map = PrimitiveMap::decode(&wire).unwrap();
        assert_eq!(map.get("k"), Some(&PrimitiveValue::from("v")));
        assert_eq!(encoded(&map), wire);
    }

    #[test]
    fn long_strings_switch_to_big_string_at_java_threshold() {
        let mut map = PrimitiveMap::new();
        map.insert("s", PrimitiveValue::String("a".repeat(8190)));
        assert_eq!(encoded(&map)[7], tag::STRING);
        map.insert("s", PrimitiveValue::String("a".repeat(8191)));
        assert_eq!(encoded(&map)[7], tag::BIG_STRING);
    }

    #[test]
    fn insert_replaces_in_place_and_get_sees_the_last_duplicate() {
        let mut map = PrimitiveMap::new();
        map.insert("a", PrimitiveValue::Int(1));
        map.insert("b", PrimitiveValue::Int(2));
        assert_eq!(
            map.insert("a", PrimitiveValue::Int(3)),
            Some(PrimitiveValue::Int(1))
        );
        assert_eq!(map.iter().map(|(k, _)| k).collect::<Vec<_>>(), ["a", "b"]);
        let dup = [0, 0, 0, 2, 0, 1, b'a', 2, 1, 0, 1, b'a', 2, 2];
        let map = PrimitiveMap::decode(&dup).unwrap();
        assert_eq!(map.len(), 2);
        assert_eq!(map.get("a"), Some(&PrimitiveValue::Byte(2)));
    }

    #[test]
    fn null_maps_read_as_empty_or_null() {
        assert_eq!(PrimitiveMap::decode(&[0xff; 4]), Ok(PrimitiveMap::new()));
        let nested = [0, 0, 0, 1, 0, 1, b'm', tag::MAP, 0xff, 0xff, 0xff, 0xff];
        let map = PrimitiveMap::decode(&nested).unwrap();
        assert_eq!(map.get("m"), Some(&PrimitiveValue::Null));
    }

    #[test]
    fn malformed_maps_are_errors() {
        let cases: &[(&[u8], DecodeError)] = &[
            (&[0, 0, 0], DecodeError::Truncated),
            (&[0x7f, 0xff, 0xff, 0xff], DecodeError::Truncated),
            (
                &[0, 0, 0, 1, 0, 1, b'k', 99],
                DecodeError::UnknownPrimitiveType(99),
            ),
            (&[0, 0, 0, 1, 0, 1, 0x80, 0], DecodeError::InvalidString),
            (
                &[
                    0,
                    0,
                    0,
                    1,
                    0,
                    1,
                    b'k',
                    tag::BYTE_ARRAY,
                    0xff,
                    0xff,
                    0xff,
                    0xfe,
                ],
                DecodeError::NegativeLength {
                    field: "primitive BYTE_ARRAY",
                    length: -2,
                },
            ),
            (
                &[0, 0, 0, 0, 7],
                DecodeError::TrailingBytes {
                    declared: 5,
                    consumed: 4,
                },
            ),
        ];
        for (wire, error) in cases {
            assert_eq!(PrimitiveMap::decode(wire).as_ref(), Err(error), "{wire:x?}");
        }
        assert_eq!(
            PrimitiveMap::decode_bounded(&[0, 0, 0, 5], 4),
            Err(DecodeError::TooManyEntries { count: 5, max: 4 })
        );
    }

    #[test]
    fn values_are_bounded_in_total() {
        // One list of NULLs, one byte each, just above the budget.
        let mut wire = vec![0, 0, 0, 1, 0, 1, b'l', tag::LIST];
        wire.extend_from_slice(&(MAX_PRIMITIVE_VALUES as u32).to_be_bytes());
        wire.resize(wire.len() + MAX_PRIMITIVE_VALUES, tag::NULL);
        assert_eq!(
            PrimitiveMap::decode(&wire),
            Err(DecodeError::TooManyValues(MAX_PRIMITIVE_VALUES))
        );
        // The entry holding the list counts too: one element fewer fits.
        let mut wire = vec![0, 0, 0, 1, 0, 1, b'l', tag::LIST];
        wire.extend_from_slice(&(MAX_PRIMITIVE_VALUES as u32 - 1).to_be_bytes());
        wire.resize(wire.len() + MAX_PRIMITIVE_VALUES - 1, tag::NULL);
        assert!(PrimitiveMap::decode(&wire).is_ok());
    }

    #[test]
    fn nesting_is_bounded() {
        let mut wire = Vec::new();
        for _ in 0..=MAX_NESTING_DEPTH + 1 {
            wire.extend_from_slice(&[0, 0, 0, 1, 0, 0, tag::MAP]);
        }
        wire.extend_from_slice(&[0, 0, 0, 0]);
        assert_eq!(
            PrimitiveMap::decode(&wire),
            Err(DecodeError::TooDeep(MAX_NESTING_DEPTH))
        );
        let mut list = PrimitiveValue::Null;
        for _ in 0..=MAX_NESTING_DEPTH + 1 {
            list = PrimitiveValue::List(vec![list]);
        }
        let mut map = PrimitiveMap::new();
        map.insert("l", list);
        assert_eq!(
            map.encode(&mut BytesMut::new()),
            Err(EncodeError::TooDeep(MAX_NESTING_DEPTH))
        );
    }
}
