//! WireFormatInfo, the first frame in each direction, and the negotiation of the settings
//! every later frame uses.
//!
//! Each side sends its own preferences (it does not echo the peer's), loose and
//! size-prefixed. On receiving the peer's, each side computes the same result with
//! [`negotiate`] and switches both directions to it: a frame read after the WireFormatInfo,
//! and every frame written after it was read, uses the negotiated settings.

use crate::cursor::ReadError;
use crate::primitive_map::{PrimitiveMap, PrimitiveValue};
use crate::reader::Reader;
use crate::settings::{DEFAULT_CACHE_SIZE, MAX_CACHE_SIZE, MAX_VERSION, MIN_VERSION};
use crate::writer::Writer;
use crate::{DecodeError, EncodeError, WireSettings};

/// The 8 bytes every WireFormatInfo starts with.
pub const MAGIC: [u8; 8] = *b"ActiveMQ";
/// Most entries Java accepts in a WireFormatInfo's properties (`MAX_PROPERTY_SIZE`).
pub const MAX_WIRE_FORMAT_PROPERTIES: usize = 4096;

/// Property keys, spelled as Java spells them (`Inital` included).
mod key {
    pub const STACK_TRACE_ENABLED: &str = "StackTraceEnabled";
    pub const PLATFORM_DETAILS: &str = "PlatformDetails";
    pub const CACHE_ENABLED: &str = "CacheEnabled";
    pub const HOST: &str = "Host";
    pub const TCP_NO_DELAY_ENABLED: &str = "TcpNoDelayEnabled";
    pub const SIZE_PREFIX_DISABLED: &str = "SizePrefixDisabled";
    pub const CACHE_SIZE: &str = "CacheSize";
    pub const PROVIDER_NAME: &str = "ProviderName";
    pub const TIGHT_ENCODING_ENABLED: &str = "TightEncodingEnabled";
    pub const MAX_FRAME_SIZE: &str = "MaxFrameSize";
    pub const MAX_INACTIVITY_DURATION: &str = "MaxInactivityDuration";
    pub const MAX_INACTIVITY_DURATION_INITIAL_DELAY: &str = "MaxInactivityDurationInitalDelay";
    pub const MAX_FRAME_SIZE_ENABLED: &str = "MaxFrameSizeEnabled";
    pub const PROVIDER_VERSION: &str = "ProviderVersion";
}

/// One side's wire format preferences (type 1). Not a BaseCommand: no command id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WireFormatInfo {
    /// The newest protocol version the side speaks.
    pub version: i32,
    /// The options, as typed entries; [`WireFormatInfo::options`] reads them as Java does.
    pub properties: Option<PrimitiveMap>,
}

impl WireFormatInfo {
    pub(crate) fn unmarshal(r: &mut Reader<'_, '_>) -> Result<Self, ReadError> {
        if r.raw::<8>()? != MAGIC {
            return Err(DecodeError::BadMagic.into());
        }
        Ok(WireFormatInfo {
            version: r.i32()?,
            properties: r.primitive_map(MAX_WIRE_FORMAT_PROPERTIES)?,
        })
    }

    pub(crate) fn marshal(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.raw(&MAGIC);
        w.i32(self.version);
        w.primitive_map(self.properties.as_ref())
    }

    /// The options, read as the Java client reads them: a boolean is true only if its entry
    /// is a true BOOLEAN; a missing number is 0; a number of the wrong type is an error
    /// (Java fails the connection with a ClassCastException).
    pub fn options(&self) -> Result<WireFormatOptions, NegotiationError> {
        let empty = PrimitiveMap::new();
        let map = self.properties.as_ref().unwrap_or(&empty);
        let flag = |k: &str| matches!(map.get(k), Some(PrimitiveValue::Boolean(true)));
        let text = |k: &str| match map.get(k) {
            Some(PrimitiveValue::String(s)) => Some(s.clone()),
            _ => None,
        };
        let long = |k: &'static str| match map.get(k) {
            None | Some(PrimitiveValue::Null) => Ok(0),
            Some(PrimitiveValue::Long(v)) => Ok(*v),
            Some(_) => Err(NegotiationError::WrongType {
                key: k,
                expected: "LONG",
            }),
        };
        let cache_size = match map.get(key::CACHE_SIZE) {
            None | Some(PrimitiveValue::Null) => 0,
            Some(PrimitiveValue::Int(v)) => *v,
            Some(_) => {
                return Err(NegotiationError::WrongType {
                    key: key::CACHE_SIZE,
                    expected: "INTEGER",
                })
            }
        };
        Ok(WireFormatOptions {
            version: self.version,
            tight_encoding_enabled: flag(key::TIGHT_ENCODING_ENABLED),
            cache_enabled: flag(key::CACHE_ENABLED),
            cache_size,
            size_prefix_disabled: flag(key::SIZE_PREFIX_DISABLED),
            stack_trace_enabled: flag(key::STACK_TRACE_ENABLED),
            tcp_no_delay_enabled: flag(key::TCP_NO_DELAY_ENABLED),
            max_inactivity_duration_ms: long(key::MAX_INACTIVITY_DURATION)?,
            max_inactivity_duration_initial_delay_ms: long(
                key::MAX_INACTIVITY_DURATION_INITIAL_DELAY,
            )?,
            max_frame_size: long(key::MAX_FRAME_SIZE)?,
            max_frame_size_enabled: flag(key::MAX_FRAME_SIZE_ENABLED),
            host: text(key::HOST),
            provider_name: text(key::PROVIDER_NAME),
            provider_version: text(key::PROVIDER_VERSION),
            platform_details: text(key::PLATFORM_DETAILS),
        })
    }
}

/// One side's preferences, typed. [`WireFormatOptions::to_info`] writes them with the types
/// the Java client casts them to (CacheSize an INTEGER; the durations and MaxFrameSize LONGs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireFormatOptions {
    /// Newest protocol version spoken.
    pub version: i32,
    /// Asks for tight encoding.
    pub tight_encoding_enabled: bool,
    /// Asks for the marshal cache.
    pub cache_enabled: bool,
    /// Cache slots wanted. Always sent: a side that leaves it out makes the negotiated
    /// size 0, which Java turns into 16,383.
    pub cache_size: i32,
    /// Asks for frames without size prefix.
    pub size_prefix_disabled: bool,
    /// Asks for exceptions with stack frames and causes.
    pub stack_trace_enabled: bool,
    /// Asks for TCP_NODELAY.
    pub tcp_no_delay_enabled: bool,
    /// Silence after which the connection is considered dead, in ms (0 disables the check).
    pub max_inactivity_duration_ms: i64,
    /// Delay before the first inactivity check, in ms.
    pub max_inactivity_duration_initial_delay_ms: i64,
    /// Largest frame this side accepts (0 or less: no opinion).
    pub max_frame_size: i64,
    /// This side enforces its maximum frame size (informational, not negotiated).
    pub max_frame_size_enabled: bool,
    /// The host the client connected to (plain `tcp://` clients only).
    pub host: Option<String>,
    /// Informational.
    pub provider_name: Option<String>,
    /// Informational.
    pub provider_version: Option<String>,
    /// Informational.
    pub platform_details: Option<String>,
}

impl Default for WireFormatOptions {
    /// The defaults of activemq-client 5.17 (without its informational strings).
    fn default() -> Self {
        WireFormatOptions {
            version: i32::from(MAX_VERSION),
            tight_encoding_enabled: true,
            cache_enabled: true,
            cache_size: 1024,
            size_prefix_disabled: false,
            stack_trace_enabled: true,
            tcp_no_delay_enabled: true,
            max_inactivity_duration_ms: 30_000,
            max_inactivity_duration_initial_delay_ms: 10_000,
            max_frame_size: i64::MAX,
            max_frame_size_enabled: true,
            host: None,
            provider_name: None,
            provider_version: None,
            platform_details: None,
        }
    }
}

impl WireFormatOptions {
    /// The WireFormatInfo announcing these options, entries in the order the 5.17 client's
    /// `HashMap` writes them (absent strings are left out).
    pub fn to_info(&self) -> WireFormatInfo {
        use PrimitiveValue as V;
        let mut map = PrimitiveMap::new();
        let text = |map: &mut PrimitiveMap, k: &str, v: &Option<String>| {
            if let Some(v) = v {
                map.insert(k, V::String(v.clone()));
            }
        };
        map.insert(
            key::STACK_TRACE_ENABLED,
            V::Boolean(self.stack_trace_enabled),
        );
        text(&mut map, key::PLATFORM_DETAILS, &self.platform_details);
        map.insert(key::CACHE_ENABLED, V::Boolean(self.cache_enabled));
        text(&mut map, key::HOST, &self.host);
        map.insert(
            key::TCP_NO_DELAY_ENABLED,
            V::Boolean(self.tcp_no_delay_enabled),
        );
        map.insert(
            key::SIZE_PREFIX_DISABLED,
            V::Boolean(self.size_prefix_disabled),
        );
        map.insert(key::CACHE_SIZE, V::Int(self.cache_size));
        text(&mut map, key::PROVIDER_NAME, &self.provider_name);
        map.insert(
            key::TIGHT_ENCODING_ENABLED,
            V::Boolean(self.tight_encoding_enabled),
        );
        map.insert(key::MAX_FRAME_SIZE, V::Long(self.max_frame_size));
        map.insert(
            key::MAX_INACTIVITY_DURATION,
            V::Long(self.max_inactivity_duration_ms),
        );
        map.insert(
            key::MAX_INACTIVITY_DURATION_INITIAL_DELAY,
            V::Long(self.max_inactivity_duration_initial_delay_ms),
        );
        map.insert(
            key::MAX_FRAME_SIZE_ENABLED,
            V::Boolean(self.max_frame_size_enabled),
        );
        text(&mut map, key::PROVIDER_VERSION, &self.provider_version);
        WireFormatInfo {
            version: self.version,
            properties: Some(map),
        }
    }
}

/// Why two WireFormatInfos do not give usable settings. The connection is closed.
#[non_exhaustive]
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum NegotiationError {
    /// An option has a type the Java client would fail to cast.
    #[error("wire format option {key} is not a {expected}")]
    WrongType {
        /// The option.
        key: &'static str,
        /// The type it must have.
        expected: &'static str,
    },
    /// The peer's version is below 1 (Java's minimum).
    #[error("peer's wire format version {0} is below the minimum of 1")]
    VersionTooLow(i32),
    /// The cache is on but a side asked for a negative size (Java fails allocating it).
    #[error("negative cache size {0}")]
    NegativeCacheSize(i32),
}

/// The settings both sides use after exchanging WireFormatInfos.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Negotiated {
    /// How frames are encoded from now on, in both directions.
    pub wire: WireSettings,
    /// Both sides asked for TCP_NODELAY.
    pub tcp_no_delay: bool,
    /// Silence after which the peer is considered dead, in ms; 0 or less disables the
    /// check. The smaller of the two sides' values.
    pub max_inactivity_duration_ms: i64,
    /// Delay before the first inactivity check, in ms; the smaller of the two.
    pub max_inactivity_duration_initial_delay_ms: i64,
    /// The peer's own version (not the minimum): the Java client keeps the broker's as its
    /// `protocolVersion` for feature checks.
    pub remote_version: i32,
}

impl Negotiated {
    /// How often to check that something arrived, or `None` when inactivity checks are off.
    pub fn read_check_interval_ms(&self) -> Option<u64> {
        u64::try_from(self.max_inactivity_duration_ms)
            .ok()
            .filter(|&ms| ms > 0)
    }

    /// How often to send a KeepAliveInfo if nothing else was written: a third of the read
    /// check, as the Java client does, so a peer never waits a whole period.
    pub fn write_check_interval_ms(&self) -> Option<u64> {
        self.read_check_interval_ms()
            .map(|ms| if ms > 3 { ms / 3 } else { ms })
    }
}

/// Computes the settings from this side's WireFormatInfo and the peer's, with the Java rules:
/// version and max frame size the smaller positive value, the switches on only if both ask,
/// the cache size the smaller (0 becoming 16,383), inactivity durations the smaller.
pub fn negotiate(
    local: &WireFormatInfo,
    remote: &WireFormatInfo,
) -> Result<Negotiated, NegotiationError> {
    if remote.version < i32::from(MIN_VERSION) {
        return Err(NegotiationError::VersionTooLow(remote.version));
    }
    let ours = local.options()?;
    let theirs = remote.options()?;
    let version = positive_min(ours.version, theirs.version)
        .clamp(i32::from(MIN_VERSION), i32::from(MAX_VERSION)) as u8;
    let cache_enabled = ours.cache_enabled && theirs.cache_enabled;
    let cache_size = if cache_enabled {
        match ours.cache_size.min(theirs.cache_size) {
            0 => DEFAULT_CACHE_SIZE,
            n if n < 0 => return Err(NegotiationError::NegativeCacheSize(n)),
            n => u16::try_from(n)
                .unwrap_or(MAX_CACHE_SIZE)
                .min(MAX_CACHE_SIZE),
        }
    } else {
        0
    };
    let max_frame_size = positive_min(ours.max_frame_size, theirs.max_frame_size);
    Ok(Negotiated {
        wire: WireSettings {
            version,
            tight_encoding: ours.tight_encoding_enabled && theirs.tight_encoding_enabled,
            cache_enabled,
            cache_size,
            size_prefix_disabled: ours.size_prefix_disabled && theirs.size_prefix_disabled,
            stack_trace_enabled: ours.stack_trace_enabled && theirs.stack_trace_enabled,
            // Both at 0 or less leaves Java with a limit no frame passes; so here.
            max_frame_size: u64::try_from(max_frame_size).unwrap_or(0),
        },
        tcp_no_delay: ours.tcp_no_delay_enabled && theirs.tcp_no_delay_enabled,
        max_inactivity_duration_ms: ours
            .max_inactivity_duration_ms
            .min(theirs.max_inactivity_duration_ms),
        max_inactivity_duration_initial_delay_ms: ours
            .max_inactivity_duration_initial_delay_ms
            .min(theirs.max_inactivity_duration_initial_delay_ms),
        remote_version: remote.version,
    })
}

/// Java's `min` for version and frame size: a value of 0 or less is "no opinion" and the
/// other side's wins.
fn positive_min<T: Ord + Default + Copy>(a: T, b: T) -> T {
    let zero = T::default();
    if (a < b && a > zero) || b <= zero {
        a
    } else {
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(options: &WireFormatOptions) -> WireFormatInfo {
        options.to_info()
    }

    #[test]
    fn client_defaults_against_a_loose_broker() {
        let broker = WireFormatOptions {
            tight_encoding_enabled: false,
            cache_enabled: false,
            max_frame_size: 104_857_600,
            ..WireFormatOptions::default()
        };
        let client = WireFormatOptions::default();
        let n = negotiate(&info(&broker), &info(&client)).unwrap();
        assert_eq!(
            n.wire,
            WireSettings {
                version: 12,
                tight_encoding: false,
                cache_enabled: false,
                cache_size: 0,
                size_prefix_disabled: false,
                stack_trace_enabled: true,
                max_frame_size: 104_857_600,
            }
        );
        assert!(n.tcp_no_delay);
        assert_eq!(n.read_check_interval_ms(), Some(30_000));
        assert_eq!(n.write_check_interval_ms(), Some(10_000));
        assert_eq!(n.max_inactivity_duration_initial_delay_ms, 10_000);
    }

    #[test]
    fn both_directions_compute_the_same_settings() {
        let a = WireFormatOptions {
            version: 9,
            cache_size: 2048,
            size_prefix_disabled: true,
            max_frame_size: 0,
            max_inactivity_duration_ms: 0,
            ..WireFormatOptions::default()
        };
        let b = WireFormatOptions {
            cache_size: 512,
            max_frame_size: 4096,
            stack_trace_enabled: false,
            ..WireFormatOptions::default()
        };
        let ab = negotiate(&info(&a), &info(&b)).unwrap();
        let ba = negotiate(&info(&b), &info(&a)).unwrap();
        assert_eq!(ab.wire, ba.wire);
        assert_eq!(ab.wire.version, 9);
        assert_eq!(ab.wire.cache_size, 512);
        assert!(!ab.wire.size_prefix_disabled);
        assert!(!ab.wire.stack_trace_enabled);
        assert_eq!(ab.wire.max_frame_size, 4096);
        assert_eq!(ab.read_check_interval_ms(), None);
        assert_eq!(ab.write_check_interval_ms(), None);
    }

    #[test]
    fn a_missing_cache_size_means_java_default() {
        let mut peer = info(&WireFormatOptions::default());
        if let Some(map) = peer.properties.as_mut() {
            map.remove("CacheSize");
        }
        let n = negotiate(&info(&WireFormatOptions::default()), &peer).unwrap();
        assert_eq!(n.wire.cache_size, DEFAULT_CACHE_SIZE);
    }

    #[test]
    fn wrong_types_and_versions_are_refused() {
        let mut peer = info(&WireFormatOptions::default());
        if let Some(map) = peer.properties.as_mut() {
            map.insert("CacheSize", PrimitiveValue::Long(1024));
        }
        let ours = info(&WireFormatOptions::default());
        assert_eq!(
            negotiate(&ours, &peer),
            Err(NegotiationError::WrongType {
                key: "CacheSize",
                expected: "INTEGER"
            })
        );
        let old = WireFormatInfo {
            version: 0,
            properties: None,
        };
        assert_eq!(
            negotiate(&ours, &old),
            Err(NegotiationError::VersionTooLow(0))
        );
        let negative = info(&WireFormatOptions {
            cache_size: -1,
            ..WireFormatOptions::default()
        });
        assert_eq!(
            negotiate(&ours, &negative),
            Err(NegotiationError::NegativeCacheSize(-1))
        );
    }

    #[test]
    fn options_survive_the_map() {
        let options = WireFormatOptions {
            host: Some("localhost".into()),
            provider_name: Some("ActiveMQ".into()),
            ..WireFormatOptions::default()
        };
        assert_eq!(info(&options).options(), Ok(options));
        // Java reads a missing map as all false and zero.
        let bare = WireFormatInfo {
            version: 12,
            properties: None,
        };
        let read = bare.options().unwrap();
        assert!(!read.tight_encoding_enabled && read.cache_size == 0 && read.max_frame_size == 0);
    }

    #[test]
    fn positive_min_ignores_no_opinion() {
        assert_eq!(positive_min(5, 7), 5);
        assert_eq!(positive_min(7, 5), 5);
        assert_eq!(positive_min(0, 5), 5);
        assert_eq!(positive_min(5, 0), 5);
        assert_eq!(positive_min(-1, 5), 5);
        assert_eq!(positive_min(0, -3), 0);
    }
}
