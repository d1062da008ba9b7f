//! Why bytes are not a valid OpenWire frame, and why a command cannot be encoded.

/// Why the bytes at the front of the buffer are not a valid OpenWire frame.
///
/// Every variant is fatal for the connection: with caching on, every frame updates the
/// decoder's cache, and without a size prefix the next frame's start is unknown, so the
/// session answers (an `ExceptionResponse` where a command id is known, or a
/// `ConnectionError`) and closes. The decoder's state after an error is unspecified.
#[non_exhaustive]
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// The size prefix, or the bytes an unprefixed frame already needs, exceed the negotiated
    /// maximum frame size. Found before the frame's body is read or allocated.
    #[error("frame of at least {size} bytes exceeds the maximum frame size of {max} bytes")]
    FrameTooLarge {
        /// Declared size, or how far the frame is known to extend.
        size: u64,
        /// The decoder's limit.
        max: u64,
    },
    /// The size prefix is negative (Java's `int` is signed).
    #[error("negative frame size {0}")]
    NegativeFrameSize(i32),
    /// A field runs past the end of the frame its size prefix delimits: a length or count lies.
    #[error("frame ends inside a field: a length or count runs past its end")]
    Truncated,
    /// The frame's fields end before the size prefix says the frame does.
    #[error("frame declares {declared} bytes but its fields end after {consumed}")]
    TrailingBytes {
        /// Size from the prefix (or length of a properties blob).
        declared: usize,
        /// Bytes the fields took.
        consumed: usize,
    },
    /// The type byte names no data structure ActiveMQ defines.
    #[error("unknown data structure type {0}")]
    UnknownType(u8),
    /// A data structure ActiveMQ defines but only brokers exchange among themselves
    /// (network bridges, journal records, discovery), which this codec does not decode.
    #[error("data structure type {0} is not supported (broker-to-broker or store only)")]
    UnsupportedType(u8),
    /// The type exists only in later versions of the protocol than the negotiated one.
    #[error("data structure type {type_id} does not exist in OpenWire version {version}")]
    TypeNotInVersion {
        /// The type byte.
        type_id: u8,
        /// The negotiated version.
        version: u8,
    },
    /// A frame's top-level object is a value (an id, a destination), not a command.
    #[error("a frame holds a command, not data structure type {0}")]
    NotACommand(u8),
    /// A nested or cached field holds a data structure of a type the field cannot hold.
    #[error("{field} holds data structure type {found}, expected {expected}")]
    UnexpectedType {
        /// The field, as `Type.field`.
        field: &'static str,
        /// What the field holds.
        expected: &'static str,
        /// The type byte found.
        found: u8,
    },
    /// A field that names something (an id's value, a destination's name) is null.
    #[error("{0} is null")]
    NullField(&'static str),
    /// An array holds a null element.
    #[error("{0} holds a null element")]
    NullElement(&'static str),
    /// A length or count read from the wire is negative.
    #[error("negative length {length} for {field}")]
    NegativeLength {
        /// What the length measures.
        field: &'static str,
        /// The value read.
        length: i32,
    },
    /// The boolean stream's header is not one of the three forms Java writes.
    #[error("invalid boolean stream header")]
    InvalidBooleanStream,
    /// The fields need more booleans than the frame's boolean stream holds.
    #[error("the frame's fields need more bits than its boolean stream holds")]
    BooleanStreamExhausted,
    /// A string is not (modified) UTF-8, or holds a lone UTF-16 surrogate, which a Rust
    /// string cannot.
    #[error("string is not valid modified UTF-8")]
    InvalidString,
    /// A cache index outside the negotiated cache size.
    #[error("cache index {index} outside the cache's {size} slots")]
    CacheIndexOutOfRange {
        /// The index read.
        index: i16,
        /// The negotiated cache size.
        size: usize,
    },
    /// A cache reference to a slot the peer never filled.
    #[error("cache slot {0} was never filled")]
    CacheSlotEmpty(i16),
    /// A WireFormatInfo whose magic is not `ActiveMQ`.
    #[error("wire format magic is not \"ActiveMQ\"")]
    BadMagic,
    /// A value in a primitive map (properties) has an unknown type tag.
    #[error("unknown primitive type tag {0}")]
    UnknownPrimitiveType(u8),
    /// A primitive map declares more entries than allowed (WireFormatInfo's properties).
    #[error("primitive map declares {count} entries, more than {max}")]
    TooManyEntries {
        /// The declared count.
        count: i32,
        /// The limit.
        max: usize,
    },
    /// A primitive map (properties) holds more values, at all levels, than
    /// [`crate::MAX_PRIMITIVE_VALUES`].
    #[error("primitive map holds more than {0} values")]
    TooManyValues(usize),
    /// Objects or property maps nested deeper than [`crate::MAX_NESTING_DEPTH`], or an
    /// exception chain longer than [`crate::MAX_EXCEPTION_DEPTH`].
    #[error("data nested more than {0} levels deep")]
    TooDeep(usize),
    /// A nested message in Java's pre-marshalled form (its marshal-aware bit set), which no
    /// Java writer produces.
    #[error("nested object in pre-marshalled form is not supported")]
    MarshalledForm,
}

/// Why a command cannot be written with the current settings. Nothing is written and the
/// encoder's cache is left as it was, so the connection can go on with other commands.
#[non_exhaustive]
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum EncodeError {
    /// A string longer than the encoding allows: 32,766 bytes of modified UTF-8 in tight
    /// encoding, 65,535 in loose encoding and in property maps' keys.
    #[error("string of {len} encoded bytes exceeds the {max}-byte limit")]
    StringTooLong {
        /// Its modified UTF-8 length.
        len: usize,
        /// The limit that applies.
        max: usize,
    },
    /// An array or map with more elements than its count field holds.
    #[error("{count} elements exceed the limit of {max}")]
    TooManyElements {
        /// Elements given.
        count: usize,
        /// The count field's maximum.
        max: usize,
    },
    /// The encoded frame is larger than the maximum frame size (or than a Java `int`).
    #[error("frame of {size} bytes exceeds the maximum frame size of {max} bytes")]
    FrameTooLarge {
        /// The encoded size, after the prefix.
        size: u64,
        /// The encoder's limit.
        max: u64,
    },
    /// The command's type does not exist in the negotiated version.
    #[error("data structure type {type_id} does not exist in OpenWire version {version}")]
    TypeNotInVersion {
        /// The type byte.
        type_id: u8,
        /// The negotiated version.
        version: u8,
    },
    /// Objects or property maps nested deeper than [`crate::MAX_NESTING_DEPTH`], or an
    /// exception chain longer than [`crate::MAX_EXCEPTION_DEPTH`].
    #[error("data nested more than {0} levels deep")]
    TooDeep(usize),
}
