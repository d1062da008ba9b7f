//! Helpers shared by the integration tests.

#![allow(dead_code)]

use hawser_openwire::WireSettings;

/// Bytes from a hex dump: pairs of hex digits, whitespace ignored.
pub fn hex(dump: &str) -> Vec<u8> {
    let digits: Vec<u8> = dump.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    assert!(digits.len() % 2 == 0, "odd hex dump");
    digits
        .chunks(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap())
        .collect()
}

/// Version 12 settings with the three switches the tests vary.
pub fn settings(tight: bool, cache: bool, prefix: bool) -> WireSettings {
    WireSettings {
        version: 12,
        tight_encoding: tight,
        cache_enabled: cache,
        cache_size: 1024,
        size_prefix_disabled: !prefix,
        stack_trace_enabled: false,
        max_frame_size: 1 << 30,
    }
}

/// Every combination of tight/loose, cache on/off, size prefix on/off.
pub fn all_modes() -> Vec<WireSettings> {
    let mut modes = Vec::new();
    for tight in [false, true] {
        for cache in [false, true] {
            for prefix in [true, false] {
                modes.push(settings(tight, cache, prefix));
            }
        }
    }
    modes
}
