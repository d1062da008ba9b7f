//! The files a shared store's brokers coordinate through (the lease, the seals of
//! an epoch directory) come off a disk that may be damaged: their parsers must
//! refuse garbage without panicking, and what they accept must write back the same.
#![no_main]

use hawser_ha::Lease;
use hawser_journal::{format_seals, parse_seals};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Some(lease) = Lease::decode(&text) {
        assert_eq!(Lease::decode(&lease.encode()), Some(lease));
    }
    if let Some(seals) = parse_seals(&text) {
        assert_eq!(parse_seals(&format_seals(&seals)), Some(seals));
    }
});
