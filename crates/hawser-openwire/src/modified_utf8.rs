//! Java's "modified UTF-8" (`DataOutput.writeUTF`), the string encoding of OpenWire.
//!
//! It differs from UTF-8 in two ways: NUL is written as `C0 80`, and a character outside the
//! Basic Multilingual Plane is written as its two UTF-16 surrogates, three bytes each. Java's
//! reader also accepts overlong two- and three-byte forms; so does this one. Decoding
//! standard UTF-8 in their place would garble NULs and every emoji.

use bytes::{BufMut, BytesMut};

use crate::DecodeError;

/// Length of `text` in modified UTF-8.
pub(crate) fn encoded_len(text: &str) -> usize {
    if is_plain_ascii(text.as_bytes()) {
        return text.len();
    }
    text.chars().map(char_len).sum()
}

/// Bytes `c` takes in modified UTF-8.
fn char_len(c: char) -> usize {
    match u32::from(c) {
        0 => 2,
        1..=0x7f => 1,
        0x80..=0x7ff => 2,
        0x800..=0xffff => 3,
        _ => 6,
    }
}

/// Whether Java's tight encoding may write `text` in its one-byte-per-char form: every char
/// in `U+0001..=U+007F` (NUL is not "ASCII" there).
pub(crate) fn is_plain_ascii(bytes: &[u8]) -> bool {
    bytes.iter().all(|&b| b != 0 && b < 0x80)
}

/// Number of UTF-16 units in `text` (Java's `String.length()`).
pub(crate) fn utf16_len(text: &str) -> usize {
    text.chars().map(char::len_utf16).sum()
}

/// Appends `text` in modified UTF-8.
pub(crate) fn encode(text: &str, out: &mut BytesMut) {
    if is_plain_ascii(text.as_bytes()) {
        out.put_slice(text.as_bytes());
        return;
    }
    let mut units = [0; 2];
    for c in text.chars() {
        match u32::from(c) {
            code @ 1..=0x7f => out.put_u8(code as u8),
            code @ (0 | 0x80..=0x7ff) => {
                out.put_u8(0xc0 | (code >> 6) as u8);
                out.put_u8(0x80 | (code & 0x3f) as u8);
            }
            _ => {
                for &unit in c.encode_utf16(&mut units).iter() {
                    out.put_u8(0xe0 | (unit >> 12) as u8);
                    out.put_u8(0x80 | ((unit >> 6) & 0x3f) as u8);
                    out.put_u8(0x80 | (unit & 0x3f) as u8);
                }
            }
        }
    }
}

/// Decodes modified UTF-8. Standard four-byte sequences, which no Java writer produces, are
/// accepted too; a lone surrogate, which a Rust string cannot hold, is an error.
pub(crate) fn decode(bytes: &[u8]) -> Result<String, DecodeError> {
    if is_plain_ascii(bytes) {
        return std::str::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|_| DecodeError::InvalidString);
    }
    let mut text = String::with_capacity(bytes.len());
    let mut rest = bytes;
    let mut pending_high: Option<u16> = None;
    while let Some((&lead, tail)) = rest.split_first() {
        let (unit, used) = match lead {
            0x00..=0x7f => (u32::from(lead), 0),
            0xc0..=0xdf => ((u32::from(lead & 0x1f) << 6) | continuation(tail, 0)?, 1),
            0xe0..=0xef => (
                (u32::from(lead & 0x0f) << 12)
                    | (continuation(tail, 0)? << 6)
                    | continuation(tail, 1)?,
                2,
            ),
            0xf0..=0xf7 => (
                (u32::from(lead & 0x07) << 18)
                    | (continuation(tail, 0)? << 12)
                    | (continuation(tail, 1)? << 6)
                    | continuation(tail, 2)?,
                3,
            ),
            _ => return Err(DecodeError::InvalidString),
        };
        rest = &tail[used..];
        match (pending_high.take(), unit) {
            (None, 0xd800..=0xdbff) => pending_high = Some(unit as u16),
            (Some(high), 0xdc00..=0xdfff) => {
                let code = 0x10000 + ((u32::from(high) - 0xd800) << 10) + (unit - 0xdc00);
                text.push(char::from_u32(code).ok_or(DecodeError::InvalidString)?);
            }
            (Some(_), _) => return Err(DecodeError::InvalidString),
            (None, _) => text.push(char::from_u32(unit).ok_or(DecodeError::InvalidString)?),
        }
    }
    if pending_high.is_some() {
        return Err(DecodeError::InvalidString);
    }
    Ok(text)
}

/// The six payload bits of the `index`th continuation byte in `tail`.
fn continuation(tail: &[u8], index: usize) -> Result<u32, DecodeError> {
    match tail.get(index) {
        Some(&b) if b & 0xc0 == 0x80 => Ok(u32::from(b & 0x3f)),
        _ => Err(DecodeError::InvalidString),
    }
}

/// Decodes the one-byte-per-char form of tight strings: Java builds each char from one byte
/// as Latin-1, so any byte is valid there.
pub(crate) fn decode_latin1(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| char::from(b)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(text: &str) -> Vec<u8> {
        let mut out = BytesMut::new();
        encode(text, &mut out);
        assert_eq!(out.len(), encoded_len(text), "{text:?}");
        out.to_vec()
    }

    #[test]
    fn nul_and_supplementary_chars_use_the_java_forms() {
        assert_eq!(encoded("a\0b"), [b'a', 0xc0, 0x80, b'b']);
        assert_eq!(encoded("é"), [0xc3, 0xa9]);
        assert_eq!(encoded("€"), [0xe2, 0x82, 0xac]);
        // U+1F600 is the surrogate pair D83D DE00.
        assert_eq!(encoded("😀"), [0xed, 0xa0, 0xbd, 0xed, 0xb8, 0x80]);
        for text in [
            "",
            "plain",
            "a\0b",
            "é€😀",
            "\u{7ff}\u{800}\u{ffff}\u{10000}",
        ] {
            assert_eq!(decode(&encoded(text)).as_deref(), Ok(text));
        }
    }

    #[test]
    fn java_reader_leniencies_are_kept() {
        // A raw NUL, an overlong 'A', and a standard four-byte UTF-8 emoji.
        assert_eq!(decode(&[0]).as_deref(), Ok("\0"));
        assert_eq!(decode(&[0xc1, 0x81]).as_deref(), Ok("A"));
        assert_eq!(decode("😀".as_bytes()).as_deref(), Ok("😀"));
    }

    #[test]
    fn malformed_input_is_an_error() {
        for bad in [
            &[0x80][..],                     // stray continuation byte
            &[0xc3],                         // truncated two-byte form
            &[0xe2, 0x82],                   // truncated three-byte form
            &[0xe2, 0x02, 0xac],             // bad continuation byte
            &[0xed, 0xa0, 0xbd],             // lone high surrogate
            &[0xed, 0xb8, 0x80],             // lone low surrogate
            &[0xed, 0xa0, 0xbd, b'a'],       // high surrogate then a normal char
            &[0xf8, 0x80, 0x80, 0x80, 0x80], // five-byte form
            &[0xf4, 0x90, 0x80, 0x80],       // beyond U+10FFFF
        ] {
            assert_eq!(decode(bad), Err(DecodeError::InvalidString), "{bad:x?}");
        }
    }

    #[test]
    fn latin1_form_maps_bytes_to_chars() {
        assert_eq!(decode_latin1(b"ab"), "ab");
        assert_eq!(decode_latin1(&[0xe9, 0]), "é\0");
    }

    #[test]
    fn utf16_length_counts_surrogates() {
        assert_eq!(utf16_len("a😀"), 3);
    }
}
