//! The settings a codec encodes and decodes with, and their bounds.

/// Newest OpenWire version this codec speaks: the one activemq-client 5.17 offers and the
/// broker advertises.
pub const MAX_VERSION: u8 = 12;
/// Oldest OpenWire version this codec speaks. Field lists of every version from here on
/// are implemented (fields appear as the versions add them).
pub const MIN_VERSION: u8 = 1;
/// Default maximum frame size: what ActiveMQ's stock connectors set
/// (`wireFormat.maxFrameSize=104857600`). A larger size prefix is refused before anything
/// of the frame is read or allocated.
pub const DEFAULT_MAX_FRAME_SIZE: u64 = 100 * 1024 * 1024;
/// Cache slots when negotiation yields 0 (Java's `Short.MAX_VALUE / 2`).
pub const DEFAULT_CACHE_SIZE: u16 = 16_383;
/// Most cache slots there can be: indexes travel as Java shorts.
pub const MAX_CACHE_SIZE: u16 = i16::MAX as u16;
/// Deepest nesting of objects in objects (or of property maps in maps) a frame may have.
/// Real frames stay below 5 (a dispatch, its message, an advisory's ConsumerInfo, its id);
/// the bound keeps a hostile frame from exhausting the stack, which takes about 8 KiB per
/// level of nested messages.
pub const MAX_NESTING_DEPTH: usize = 16;
/// Longest chain of an exception and its causes a frame may carry. Java programs nest causes
/// more deeply than objects (a framework wrapping a driver wrapping an I/O error), and a
/// level costs little stack, so this bound is looser.
pub const MAX_EXCEPTION_DEPTH: usize = 64;

/// How frames are encoded in one direction of a connection, as negotiated by the two
/// WireFormatInfos (see [`crate::negotiate`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WireSettings {
    /// Protocol version, which decides which fields exist; kept within
    /// [`MIN_VERSION`]`..=`[`MAX_VERSION`].
    pub version: u8,
    /// Tight encoding (booleans as bits, compact longs and strings) instead of loose.
    pub tight_encoding: bool,
    /// Marshal cache: ids and destinations the peer has seen travel as slot indexes.
    pub cache_enabled: bool,
    /// Slots of each direction's cache, within `1..=`[`MAX_CACHE_SIZE`].
    pub cache_size: u16,
    /// Frames without the 4-byte size prefix (delimited only by parsing them).
    pub size_prefix_disabled: bool,
    /// Exceptions carry stack frames and causes.
    pub stack_trace_enabled: bool,
    /// Largest frame accepted or sent, in bytes after the size prefix.
    pub max_frame_size: u64,
}

impl WireSettings {
    /// The settings every connection starts with, in both directions, until the
    /// WireFormatInfos are exchanged: loose, no cache, size prefix, no stack traces.
    pub fn initial(max_frame_size: u64) -> Self {
        WireSettings {
            version: MAX_VERSION,
            tight_encoding: false,
            cache_enabled: false,
            cache_size: 0,
            size_prefix_disabled: false,
            stack_trace_enabled: false,
            max_frame_size,
        }
    }

    /// What the field readers and writers need, with the version and cache size brought
    /// within their bounds.
    pub(crate) fn format(&self) -> Format {
        Format {
            tight: self.tight_encoding,
            cache: self.cache_enabled,
            version: self.version.clamp(MIN_VERSION, MAX_VERSION),
            stack_trace: self.stack_trace_enabled,
        }
    }

    /// Slots each cache has (0 without the cache).
    pub(crate) fn cache_slots(&self) -> usize {
        if self.cache_enabled {
            usize::from(self.cache_size.clamp(1, MAX_CACHE_SIZE))
        } else {
            0
        }
    }
}

impl Default for WireSettings {
    /// [`WireSettings::initial`] with [`DEFAULT_MAX_FRAME_SIZE`].
    fn default() -> Self {
        WireSettings::initial(DEFAULT_MAX_FRAME_SIZE)
    }
}

/// The settings that shape fields.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Format {
    /// Tight encoding rather than loose.
    pub(crate) tight: bool,
    /// Cached fields go through the cache.
    pub(crate) cache: bool,
    /// Protocol version, within the supported range.
    pub(crate) version: u8,
    /// Exceptions carry frames and causes.
    pub(crate) stack_trace: bool,
}
