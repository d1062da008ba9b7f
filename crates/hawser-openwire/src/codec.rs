//! Frames: the size prefix, the type byte, the BooleanStream, and the state that lives from
//! frame to frame (settings and caches), for each direction.
//!
//! ```text
//! [size: i32]       unless SizePrefixDisabled; counts the bytes after itself
//! [type: u8]        0 is a null command, skipped
//! [BooleanStream]   tight encoding only
//! [fields]
//! ```
//!
//! The [`Decoder`] reads the size first and refuses a frame larger than the maximum before
//! reading or allocating its body; it decodes a frame only once all of it is buffered, then
//! takes it out of the buffer, so byte fields can be zero-copy slices of it. Without a size
//! prefix a frame is delimited only by parsing it: the decoder parses what is buffered and,
//! if it runs out, undoes the frame's cache updates and waits for more (re-parsing from the
//! start next time).

use bytes::{Buf, BufMut, BytesMut};

use crate::boolean_stream::BitWriter;
use crate::cache::{DecodeCache, EncodeCache};
use crate::command::Command;
use crate::cursor::ReadError;
use crate::data_structure::{check_type, is_command, since_version, type_id};
use crate::reader::Reader;
use crate::writer::Writer;
use crate::{DecodeError, EncodeError, WireSettings};

/// Bytes of the size prefix.
const PREFIX_LEN: usize = 4;
/// A scratch buffer that grew beyond this for one large frame is dropped afterwards rather
/// than kept for the connection's life.
const MAX_RETAINED_SCRATCH: usize = 1 << 20;

/// Decodes the frames one peer sends.
///
/// With a size prefix, byte fields (message bodies) are zero-copy slices of the frame they
/// came in, so a body kept alive keeps its whole frame's allocation alive; a caller that
/// stores small bodies for long may want to copy them. (Without one they are copies.)
#[derive(Debug)]
pub struct Decoder {
    /// How the peer encodes; switched once, after the WireFormatInfos are exchanged.
    settings: WireSettings,
    /// The slots the peer's encoder has filled.
    cache: DecodeCache,
}

/// What one attempt at the front of the buffer found.
// Moved once per frame from parser to caller; boxing the command would cost an allocation
// per frame to save a copy of a few hundred bytes.
#[allow(clippy::large_enum_variant)]
enum Outcome {
    /// Not all of the frame is buffered yet.
    Incomplete,
    /// A frame whose type byte is 0: Java's null command, which carries nothing.
    Null,
    /// A command, its frame consumed.
    Command(Command),
}

impl Decoder {
    /// A decoder reading with `settings`, with an empty cache.
    pub fn new(settings: WireSettings) -> Self {
        Decoder {
            cache: DecodeCache::new(settings.cache_slots()),
            settings,
        }
    }

    /// The settings in use.
    pub fn settings(&self) -> &WireSettings {
        &self.settings
    }

    /// Changes only the largest frame accepted from the next frame on,
    /// keeping the cache: a server accepts small frames until its peer
    /// has said who it is.
    pub fn set_max_frame_size(&mut self, max_frame_size: u64) {
        self.settings.max_frame_size = max_frame_size;
    }

    /// Switches to `settings` for the next frame and empties the cache, as after the
    /// peer's WireFormatInfo.
    pub fn set_settings(&mut self, settings: WireSettings) {
        *self = Decoder::new(settings);
    }

    /// Decodes the next command at the front of `buf`, removing its frame. `Ok(None)`: the
    /// frame is not all there yet; append what the socket gives and call again. Null frames
    /// are skipped. An error is fatal for the connection.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Command>, DecodeError> {
        loop {
            let outcome = if self.settings.size_prefix_disabled {
                self.decode_unprefixed(buf)?
            } else {
                self.decode_prefixed(buf)?
            };
            match outcome {
                Outcome::Incomplete => return Ok(None),
                Outcome::Null => continue,
                Outcome::Command(command) => return Ok(Some(command)),
            }
        }
    }

    fn decode_prefixed(&mut self, buf: &mut BytesMut) -> Result<Outcome, DecodeError> {
        let Some(prefix) = buf.get(..PREFIX_LEN) else {
            return Ok(Outcome::Incomplete);
        };
        let declared = i32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]);
        let size =
            usize::try_from(declared).map_err(|_| DecodeError::NegativeFrameSize(declared))?;
        if size as u64 > self.settings.max_frame_size {
            return Err(DecodeError::FrameTooLarge {
                size: size as u64,
                max: self.settings.max_frame_size,
            });
        }
        if buf.len() - PREFIX_LEN < size {
            return Ok(Outcome::Incomplete);
        }
        let frame = buf.split_to(PREFIX_LEN + size).freeze();
        let mut reader = Reader::new(
            &frame,
            PREFIX_LEN,
            Some(&frame),
            self.settings.format(),
            &mut self.cache,
        );
        let outcome = read_frame(&mut reader).map_err(ReadError::within_complete_data)?;
        let consumed = reader.position() - PREFIX_LEN;
        if consumed != size {
            return Err(DecodeError::TrailingBytes {
                declared: size,
                consumed,
            });
        }
        self.cache.commit();
        Ok(outcome)
    }

    fn decode_unprefixed(&mut self, buf: &mut BytesMut) -> Result<Outcome, DecodeError> {
        if buf.is_empty() {
            return Ok(Outcome::Incomplete);
        }
        let max = self.settings.max_frame_size;
        let mut reader = Reader::new(buf, 0, None, self.settings.format(), &mut self.cache);
        match read_frame(&mut reader) {
            Ok(outcome) => {
                let consumed = reader.position();
                if consumed as u64 > max {
                    return Err(DecodeError::FrameTooLarge {
                        size: consumed as u64,
                        max,
                    });
                }
                self.cache.commit();
                buf.advance(consumed);
                Ok(outcome)
            }
            Err(ReadError::Short { needed }) => {
                self.cache.rollback();
                if needed as u64 > max {
                    return Err(DecodeError::FrameTooLarge {
                        size: needed as u64,
                        max,
                    });
                }
                Ok(Outcome::Incomplete)
            }
            Err(ReadError::Invalid(error)) => Err(error),
        }
    }
}

/// Reads a frame after its size prefix.
fn read_frame(r: &mut Reader<'_, '_>) -> Result<Outcome, ReadError> {
    let type_id = r.u8()?;
    if type_id == type_id::NULL {
        return Ok(Outcome::Null);
    }
    check_type(type_id, r.version())?;
    if !is_command(type_id) {
        return Err(DecodeError::NotACommand(type_id).into());
    }
    r.load_bits()?;
    Ok(Outcome::Command(Command::unmarshal(type_id, r)?))
}

/// Encodes the frames sent to one peer.
#[derive(Debug)]
pub struct Encoder {
    /// How to encode; switched once, after the WireFormatInfos are exchanged.
    settings: WireSettings,
    /// The slots the peer's decoder holds.
    cache: EncodeCache,
    /// Tight encoding's bits, collected while the body is written (reused between frames).
    bits: BitWriter,
    /// Tight encoding's body, written before the BooleanStream that precedes it on the wire
    /// (reused between frames).
    body: BytesMut,
}

impl Encoder {
    /// An encoder writing with `settings`, with an empty cache.
    pub fn new(settings: WireSettings) -> Self {
        Encoder {
            cache: EncodeCache::new(settings.cache_slots()),
            settings,
            bits: BitWriter::default(),
            body: BytesMut::new(),
        }
    }

    /// The settings in use.
    pub fn settings(&self) -> &WireSettings {
        &self.settings
    }

    /// Switches to `settings` for the next frame and empties the cache, as after the
    /// peer's WireFormatInfo.
    pub fn set_settings(&mut self, settings: WireSettings) {
        *self = Encoder::new(settings);
    }

    /// Appends `command`'s frame to `out`. On error nothing is appended and the cache is as
    /// it was, so the connection can go on.
    pub fn encode(&mut self, command: &Command, out: &mut BytesMut) -> Result<(), EncodeError> {
        let start = out.len();
        let result = self.encode_frame(command, out);
        match result {
            Ok(()) => self.cache.commit(),
            Err(_) => {
                out.truncate(start);
                self.cache.rollback();
            }
        }
        if self.body.capacity() > MAX_RETAINED_SCRATCH {
            self.body = BytesMut::new();
        }
        result
    }

    fn encode_frame(&mut self, command: &Command, out: &mut BytesMut) -> Result<(), EncodeError> {
        let format = self.settings.format();
        let type_id = command.type_id();
        if format.version < since_version(type_id) {
            return Err(EncodeError::TypeNotInVersion {
                type_id,
                version: format.version,
            });
        }
        let prefixed = !self.settings.size_prefix_disabled;
        let frame_start = out.len();
        if format.tight {
            self.bits.clear();
            self.body.clear();
            let mut writer = Writer::new(&mut self.body, &mut self.bits, format, &mut self.cache);
            command.marshal(&mut writer)?;
            let size = 1 + self.bits.encoded_len() + self.body.len();
            let size = self.check_size(size)?;
            if prefixed {
                out.put_i32(size);
            }
            out.put_u8(type_id);
            self.bits.write_to(out)?;
            out.put_slice(&self.body);
        } else {
            if prefixed {
                out.put_i32(0);
            }
            out.put_u8(type_id);
            let mut writer = Writer::new(out, &mut self.bits, format, &mut self.cache);
            command.marshal(&mut writer)?;
            let prefix_len = if prefixed { PREFIX_LEN } else { 0 };
            let size = self.check_size(out.len() - frame_start - prefix_len)?;
            if prefixed {
                out[frame_start..frame_start + PREFIX_LEN].copy_from_slice(&size.to_be_bytes());
            }
        }
        Ok(())
    }

    /// The frame size as the prefix's `i32`, if within the maximum.
    fn check_size(&self, size: usize) -> Result<i32, EncodeError> {
        let too_large = EncodeError::FrameTooLarge {
            size: size as u64,
            max: self.settings.max_frame_size,
        };
        if size as u64 > self.settings.max_frame_size {
            return Err(too_large);
        }
        i32::try_from(size).map_err(|_| too_large)
    }
}

/// Both directions of one connection: a [`Decoder`] for what the peer sends and an
/// [`Encoder`] for what is sent to it. A session whose reading and writing run apart can take
/// them apart with [`Codec::into_parts`].
#[derive(Debug)]
pub struct Codec {
    /// What the peer sends.
    decoder: Decoder,
    /// What is sent to the peer.
    encoder: Encoder,
}

impl Codec {
    /// A codec using `settings` both ways; a new connection starts with
    /// [`WireSettings::initial`].
    pub fn new(settings: WireSettings) -> Self {
        Codec {
            decoder: Decoder::new(settings),
            encoder: Encoder::new(settings),
        }
    }

    /// The settings in use (the same both ways).
    pub fn settings(&self) -> &WireSettings {
        self.decoder.settings()
    }

    /// Switches both directions to `settings` and empties both caches: call it right after
    /// decoding the peer's WireFormatInfo, with [`crate::negotiate`]'s result, before
    /// decoding or encoding anything else.
    pub fn set_settings(&mut self, settings: WireSettings) {
        self.decoder.set_settings(settings);
        self.encoder.set_settings(settings);
    }

    /// See [`Decoder::decode`].
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Command>, DecodeError> {
        self.decoder.decode(buf)
    }

    /// See [`Encoder::encode`].
    pub fn encode(&mut self, command: &Command, out: &mut BytesMut) -> Result<(), EncodeError> {
        self.encoder.encode(command, out)
    }

    /// The two directions, to be driven separately.
    pub fn into_parts(self) -> (Decoder, Encoder) {
        (self.decoder, self.encoder)
    }
}
