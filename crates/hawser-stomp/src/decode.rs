//! Streaming frame decoding: the inbound half of the codec.
//!
//! The connection appends bytes to one `BytesMut` and calls [`Decoder::decode`] until it returns
//! `Ok(None)`. Nothing is consumed until a whole item is there, so the frame being decoded
//! always starts at offset 0 of the buffer. A frame is read in three steps, each resumed where
//! the previous call stopped (see [`Partial`]) so that a frame trickling in over many reads is
//! still scanned once, not once per read:
//!
//! 1. the command line (or, before it, a heart-beat EOL);
//! 2. header lines, each scanned once (its end, first colon and any backslash found in one
//!    pass) and checked against [`Limits`] as soon as its LF arrives, until the blank line;
//! 3. the body: with `content-length` its end is computed and the body is never scanned;
//!    without it, the body runs to the first NUL.
//!
//! Once the frame is complete its header block is checked as UTF-8 in one go and its headers
//! are copied out (unescaped where the version says so).
//!
//! Every limit is checked against what is buffered so far, not only against complete frames,
//! so a peer cannot make the decoder hold more than about `max_frame_bytes` before it fails.

use bytes::{Buf, BytesMut};

use crate::error::snippet;
use crate::escape::{unescape_into, Escaping};
use crate::{Command, DecodeError, Frame, Headers, Item, Limits, Version, CONTENT_LENGTH};
use memchr::memchr;

/// Longest possible command line: the longest command, an optional CR, and the LF. A line
/// with no LF within this many bytes cannot be a command, so there is no need to wait for
/// its end.
const MAX_COMMAND_LINE_BYTES: usize = Command::MAX_LEN + 2;

/// Streaming STOMP decoder for one connection.
///
/// Contract: pass the same buffer on every call, only appending to it between calls that
/// returned `Ok(None)`. The decoder remembers how far it has read into the frame at the front
/// of the buffer; a buffer that shrank makes it start over, but one swapped for different bytes
/// of the same length would be misread.
///
/// Decoded bodies are zero-copy slices of the buffer, so a body kept alive keeps that read
/// buffer's allocation alive too; a caller that stores small bodies for a long time may want to
/// copy them.
#[derive(Debug)]
pub struct Decoder {
    /// Bounds checked on every frame; fixed for the decoder's life.
    limits: Limits,
    /// Escaping rule for headers; 1.0 until the session negotiates a version after `CONNECT`.
    version: Version,
    /// What is known about the incomplete frame at the front of the buffer. Reset after every
    /// item, every error, and every version change.
    partial: Partial,
}

/// Progress on the frame at the front of the buffer, kept across calls that return `Ok(None)`.
/// Offsets count from the start of the buffer, which is the start of the frame.
#[derive(Debug, Default)]
struct Partial {
    /// The frame's command, once its line is in.
    command: Option<Command>,
    /// Header lines complete so far, in wire order; turned into `Headers` at the blank line.
    lines: Vec<HeaderLine>,
    /// What the scan of the incomplete line at `line_start` has found so far.
    line: LineScan,
    /// Value of the first `content-length` header, once parsed.
    content_length: Option<usize>,
    /// Start of the header line not yet complete; unused once the body starts.
    line_start: usize,
    /// Everything from the current line's start (or the body's) up to here is known to hold no
    /// LF (or, in a body without `content-length`, no NUL): the next scan starts here.
    scanned: usize,
    /// Offset of the first body byte, once the blank line after the headers is in.
    body_start: Option<usize>,
}

/// Where one complete header line lies in the buffer.
#[derive(Debug, Clone, Copy)]
struct HeaderLine {
    start: usize,
    /// Its first colon, where the name ends.
    colon: usize,
    /// Its end, before the EOL (CR included in the EOL).
    end: usize,
    /// It holds a backslash: an escape to resolve, where the version has escapes.
    escaped: bool,
}

/// What scanning a header line has found so far; kept across reads of a line whose LF has
/// not arrived yet, so no byte of it is scanned twice.
#[derive(Debug, Default, Clone, Copy)]
struct LineScan {
    colon: Option<usize>,
    escaped: bool,
}

impl Partial {
    /// Forgets the frame, keeping the line list's allocation for the next one.
    fn reset(&mut self) {
        let mut lines = std::mem::take(&mut self.lines);
        lines.clear();
        *self = Partial {
            lines,
            ..Partial::default()
        };
    }
}

/// What the first bytes of an item turned out to be.
enum Start {
    /// Not enough bytes to tell.
    Incomplete,
    /// A heart-beat EOL of this many bytes.
    HeartBeat(usize),
    /// A command line; the headers start at this offset.
    Command(Command, usize),
}

impl Decoder {
    /// A decoder with 1.0 semantics (no header unescaping) until [`Decoder::set_version`].
    pub fn new(limits: Limits) -> Decoder {
        Decoder {
            limits,
            version: Version::V1_0,
            partial: Partial::default(),
        }
    }

    /// Switches the escaping rule, after `CONNECT` negotiation. A frame already partly read is
    /// read again from its start under the new rule.
    pub fn set_version(&mut self, v: Version) {
        self.version = v;
        self.partial.reset();
    }

    /// The version whose escaping rule the decoder applies.
    pub fn version(&self) -> Version {
        self.version
    }

    /// Switches the bounds (a server allows a small frame before `CONNECT` and
    /// the connection's full limits after). A frame already partly read is
    /// read again from its start under the new bounds.
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
        self.partial.reset();
    }

    /// The bounds this decoder enforces.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Consumes one item from the front of `buf` if a whole one is there.
    ///
    /// `Ok(None)` means incomplete: wait for more bytes (`buf` is untouched). `Err` means the
    /// stream is invalid or exceeds a limit, possibly before the frame is complete; the caller
    /// sends `ERROR` and closes, and must not call again with the same buffer.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Item>, DecodeError> {
        if buf.len() < self.partial.scanned {
            // Not the buffer we were reading; start over rather than index past its end.
            self.partial.reset();
        }
        let result = self.decode_item(buf);
        if !matches!(result, Ok(None)) {
            self.partial.reset();
        }
        result
    }

    fn decode_item(&mut self, buf: &mut BytesMut) -> Result<Option<Item>, DecodeError> {
        let command = match self.partial.command {
            Some(command) => command,
            None => match self.start(buf)? {
                Start::Incomplete => return Ok(None),
                Start::HeartBeat(len) => {
                    buf.advance(len);
                    return Ok(Some(Item::HeartBeat));
                }
                Start::Command(command, headers_start) => {
                    self.partial.command = Some(command);
                    self.partial.line_start = headers_start;
                    self.partial.scanned = headers_start;
                    command
                }
            },
        };
        let body_start = match self.partial.body_start {
            Some(start) => start,
            None => match self.header_lines(buf)? {
                Some(start) => start,
                None => return Ok(None),
            },
        };
        let Some(nul) = self.body_end(buf, body_start)? else {
            return Ok(None);
        };
        // Only a complete frame gets its headers taken (and checked as text): a frame
        // that never completes costs no copies.
        let headers = self.take_headers(buf, command)?;
        let bytes = buf.split_to(nul + 1).freeze();
        let frame = Frame {
            command,
            headers,
            body: bytes.slice(body_start..nul),
        };
        Ok(Some(Item::Frame(frame)))
    }

    /// Reads a heart-beat or the command line at the front of `buf`.
    fn start(&self, buf: &[u8]) -> Result<Start, DecodeError> {
        match (buf.first(), buf.get(1)) {
            (None, _) | (Some(b'\r'), None) => return Ok(Start::Incomplete),
            (Some(b'\n'), _) => return Ok(Start::HeartBeat(1)),
            (Some(b'\r'), Some(b'\n')) => return Ok(Start::HeartBeat(2)),
            _ => {}
        }
        let window = &buf[..buf.len().min(MAX_COMMAND_LINE_BYTES)];
        let Some(lf) = window.iter().position(|&b| b == b'\n') else {
            if buf.len() >= MAX_COMMAND_LINE_BYTES {
                return Err(DecodeError::UnknownCommand(snippet(window)));
            }
            return Ok(Start::Incomplete);
        };
        let line = strip_cr(&buf[..lf]);
        let command =
            Command::parse(line).ok_or_else(|| DecodeError::UnknownCommand(snippet(line)))?;
        // The frame still needs at least a blank line and its NUL.
        self.check_frame_len(lf + 1 + 2)?;
        Ok(Start::Command(command, lf + 1))
    }

    /// Scans the header lines that have arrived and checks each against the limits. Returns
    /// where the body starts once the blank line is in, `None` while it is not.
    fn header_lines(&mut self, buf: &[u8]) -> Result<Option<usize>, DecodeError> {
        loop {
            let Some(lf) = scan_line(buf, self.partial.scanned, &mut self.partial.line)
                .map_err(|()| self.invalid_line(buf))?
            else {
                self.partial.scanned = buf.len();
                self.check_incomplete_line(buf)?;
                return Ok(None);
            };
            let next = lf + 1;
            let start = self.partial.line_start;
            let end = start + strip_cr(&buf[start..lf]).len();
            let scan = std::mem::take(&mut self.partial.line);

            if end == start {
                let min_frame_len = match self.partial.content_length {
                    Some(len) => next.saturating_add(len).saturating_add(1),
                    None => next + 1,
                };
                self.check_frame_len(min_frame_len)?;
                self.partial.body_start = Some(next);
                self.partial.scanned = next;
                return Ok(Some(next));
            }

            if end - start > self.limits.max_header_bytes {
                return Err(DecodeError::HeaderTooLong {
                    limit: self.limits.max_header_bytes,
                });
            }
            if self.partial.lines.len() >= self.limits.max_headers {
                return Err(DecodeError::TooManyHeaders {
                    limit: self.limits.max_headers,
                });
            }
            // At least the blank line and the NUL are still to come.
            self.check_frame_len(next + 2)?;

            // A colon is ASCII, so it cannot be the CR the line's end left out.
            let colon = match scan.colon {
                Some(colon) if colon > start && colon < end => colon,
                _ => return Err(self.invalid_line(buf)),
            };
            let line = HeaderLine {
                start,
                colon,
                end,
                escaped: scan.escaped,
            };
            // Digits have no escapes (a backslash is refused as not a digit), so the
            // length is read from the raw bytes.
            if &buf[start..colon] == CONTENT_LENGTH.as_bytes()
                && self.partial.content_length.is_none()
            {
                let len = parse_content_length(&buf[colon + 1..end])?;
                if len > self.limits.max_body_bytes {
                    return Err(DecodeError::BodyTooLarge {
                        limit: self.limits.max_body_bytes,
                    });
                }
                self.partial.content_length = Some(len);
            }
            self.partial.lines.push(line);
            self.partial.line_start = next;
            self.partial.scanned = next;
        }
    }

    /// The error for the header line starting at `line_start`.
    fn invalid_line(&self, buf: &[u8]) -> DecodeError {
        let rest = &buf[self.partial.line_start..];
        let line = memchr(b'\n', rest).map_or(rest, |lf| strip_cr(&rest[..lf]));
        DecodeError::InvalidHeaderLine(snippet(line))
    }

    /// The complete frame's headers, unescaped as its command and the version say. The
    /// header block is checked as UTF-8 in one go; its lines were split at ASCII bytes,
    /// so each part of each line is then valid text too.
    fn take_headers(&mut self, buf: &[u8], command: Command) -> Result<Headers, DecodeError> {
        let lines = &self.partial.lines;
        let (Some(first), Some(last)) = (lines.first(), lines.last()) else {
            return Ok(Headers::new());
        };
        let base = first.start;
        let block =
            std::str::from_utf8(&buf[base..last.end]).map_err(|_| DecodeError::InvalidUtf8)?;
        let escaping = Escaping::for_frame(self.version, command);
        // The text needs at most the block's bytes: unescaping only shortens.
        let mut headers = Headers::with_capacity(lines.len(), block.len());
        for line in lines {
            let name = &block[line.start - base..line.colon - base];
            let value = &block[line.colon + 1 - base..line.end - base];
            if line.escaped && escaping != Escaping::None {
                headers.push_with(
                    |out| unescape_into(name, escaping, out),
                    |out| unescape_into(value, escaping, out),
                )?;
            } else {
                headers.push(name, value);
            }
        }
        Ok(headers)
    }

    /// Fails if the header line still missing its LF already breaks a limit.
    fn check_incomplete_line(&self, buf: &[u8]) -> Result<(), DecodeError> {
        let partial = &buf[self.partial.line_start..];
        // A trailing CR may turn out to be half of a CRLF, so it does not count yet.
        let line = partial.strip_suffix(b"\r").unwrap_or(partial);
        if line.len() > self.limits.max_header_bytes {
            return Err(DecodeError::HeaderTooLong {
                limit: self.limits.max_header_bytes,
            });
        }
        if !line.is_empty() && self.partial.lines.len() >= self.limits.max_headers {
            // A non-empty line cannot be the blank line, so it is one header too many.
            return Err(DecodeError::TooManyHeaders {
                limit: self.limits.max_headers,
            });
        }
        // This line's LF and the frame's NUL are still to come.
        self.check_frame_len(buf.len() + 2)
    }

    /// Finds the body's terminating NUL. `None` while it has not arrived.
    fn body_end(&mut self, buf: &[u8], body_start: usize) -> Result<Option<usize>, DecodeError> {
        if let Some(len) = self.partial.content_length {
            // The frame-length check at the blank line bounds this, so it cannot saturate in
            // practice; saturating keeps absurd limits from overflowing.
            let nul = body_start.saturating_add(len);
            return match buf.get(nul) {
                None => Ok(None),
                Some(0) => Ok(Some(nul)),
                Some(_) => Err(DecodeError::MissingNul),
            };
        }
        // `scanned` was set to the body start when the blank line arrived.
        let from = self.partial.scanned;
        match memchr(0, &buf[from..]) {
            Some(offset) => {
                let nul = from + offset;
                self.check_body_len(nul - body_start)?;
                self.check_frame_len(nul + 1)?;
                Ok(Some(nul))
            }
            None => {
                self.partial.scanned = buf.len();
                self.check_body_len(buf.len() - body_start)?;
                self.check_frame_len(buf.len() + 1)?;
                Ok(None)
            }
        }
    }

    /// Fails if the body is, or will be, at least `min_len` bytes and that is over the limit.
    fn check_body_len(&self, min_len: usize) -> Result<(), DecodeError> {
        if min_len > self.limits.max_body_bytes {
            return Err(DecodeError::BodyTooLarge {
                limit: self.limits.max_body_bytes,
            });
        }
        Ok(())
    }

    /// Fails if the frame is, or will be, at least `min_len` bytes and that is over the limit.
    fn check_frame_len(&self, min_len: usize) -> Result<(), DecodeError> {
        if min_len > self.limits.max_frame_bytes {
            return Err(DecodeError::FrameTooLarge {
                limit: self.limits.max_frame_bytes,
            });
        }
        Ok(())
    }
}

impl Default for Decoder {
    fn default() -> Decoder {
        Decoder::new(Limits::default())
    }
}

/// A line without its EOL's optional CR (STOMP 1.2 allows CRLF; older peers get the same
/// leniency).
fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Scans `buf[from..]` for the LF that ends the current header line, noting in `line` the
/// line's first colon and whether it holds a backslash. `Err` if a NUL comes first: a NUL
/// ends a frame on the wire, and passed on inside a header it would cut the frame in two
/// for every peer that reads it. `None` if no LF has arrived yet.
///
/// Eight bytes at a time (a word compared against each byte sought at once), the last few
/// one by one: header lines are short, too short for vector searches to pay for their
/// start-up, and one pass finds everything the line's parse needs.
fn scan_line(buf: &[u8], from: usize, line: &mut LineScan) -> Result<Option<usize>, ()> {
    let rest = &buf[from..];
    let mut words = rest.chunks_exact(8);
    let mut at = from;
    for word in &mut words {
        let word = u64::from_le_bytes(word.try_into().expect("chunks of 8"));
        let lfs = zero_bytes(word ^ splat(b'\n'));
        // Only bytes before the line's LF belong to it. The lowest marked byte of each
        // mask is exact, which is all that is compared.
        let end_bit = if lfs == 0 { 64 } else { lfs.trailing_zeros() };
        let first = |mask: u64| (mask != 0 && mask.trailing_zeros() < end_bit).then_some(mask);
        if first(zero_bytes(word)).is_some() {
            return Err(());
        }
        line.escaped |= first(zero_bytes(word ^ splat(b'\\'))).is_some();
        if line.colon.is_none() {
            if let Some(colons) = first(zero_bytes(word ^ splat(b':'))) {
                line.colon = Some(at + (colons.trailing_zeros() / 8) as usize);
            }
        }
        if lfs != 0 {
            return Ok(Some(at + (end_bit / 8) as usize));
        }
        at += 8;
    }
    for (i, &b) in words.remainder().iter().enumerate() {
        match b {
            b'\n' => return Ok(Some(at + i)),
            b':' => {
                line.colon.get_or_insert(at + i);
            }
            b'\\' => line.escaped = true,
            0 => return Err(()),
            _ => {}
        }
    }
    Ok(None)
}

/// `byte` in each of a word's eight bytes.
const fn splat(byte: u8) -> u64 {
    u64::from_le_bytes([byte; 8])
}

/// A word whose lowest set bit is the high bit of its lowest zero byte, and zero if
/// it has none. (Bytes above the lowest zero may be marked falsely, so only
/// "is there one" and "where is the first" can be read from it.)
fn zero_bytes(word: u64) -> u64 {
    word.wrapping_sub(splat(1)) & !word & splat(0x80)
}

/// Parses a `content-length` value: decimal digits only (no sign), fitting in `usize`.
/// Surrounding blanks are tolerated because ActiveMQ tolerates them and 1.0 clients send them.
fn parse_content_length(value: &[u8]) -> Result<usize, DecodeError> {
    let blank = |b: &u8| *b == b' ' || *b == b'\t';
    let first = value.iter().position(|b| !blank(b)).unwrap_or(value.len());
    let last = value
        .iter()
        .rposition(|b| !blank(b))
        .map_or(first, |i| i + 1);
    let digits = &value[first..last];
    let invalid = || DecodeError::InvalidContentLength(snippet(value));
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(invalid());
    }
    digits.iter().try_fold(0usize, |n, &d| {
        n.checked_mul(10)
            .and_then(|n| n.checked_add(usize::from(d - b'0')))
            .ok_or_else(invalid)
    })
}

#[cfg(test)]
mod tests;
