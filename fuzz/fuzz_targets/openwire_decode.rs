//! Fuzzes the OpenWire decoder in every mode: arbitrary bytes must never panic, every
//! command decoded must survive a re-encode (through an encoder and decoder pair whose caches
//! follow the whole stream), and a stream fed in pieces must decode as it does whole.
//!
//! The first byte picks the mode: bit 0 tight, bit 1 cache, bit 2 no size prefix, bit 3
//! stack traces, bit 4 a 4-slot cache (so slots are reused), bits 5-7 with the second byte
//! the piece size. The second byte also picks the version (1 to 12). The rest is the stream.

#![no_main]

use bytes::BytesMut;
use hawser_openwire::{Command, Decoder, Encoder, WireSettings};
use libfuzzer_sys::fuzz_target;

/// Small, so that short inputs reach the frame size checks.
const MAX_FRAME_SIZE: u64 = 4096;

fuzz_target!(|data: &[u8]| {
    let [mode, extra, stream @ ..] = data else {
        return;
    };
    let settings = WireSettings {
        version: 1 + extra % 12,
        tight_encoding: mode & 1 != 0,
        cache_enabled: mode & 2 != 0,
        cache_size: if mode & 16 != 0 { 4 } else { 1024 },
        size_prefix_disabled: mode & 4 != 0,
        stack_trace_enabled: mode & 8 != 0,
        max_frame_size: MAX_FRAME_SIZE,
    };
    let piece = 1 + usize::from((mode >> 5) ^ (extra >> 3)) % 64;

    let (whole, whole_failed) = decode_all(settings, stream, stream.len().max(1));
    let (pieces, pieces_failed) = decode_all(settings, stream, piece);
    assert_eq!(whole, pieces, "decoding in pieces of {piece} differs");
    assert_eq!(whole_failed, pieces_failed);

    // Re-encoded frames may grow (a Latin-1 string in tight ASCII form takes two bytes per
    // char re-encoded), so the mirror allows larger frames.
    let mirror = WireSettings {
        max_frame_size: 1 << 20,
        ..settings
    };
    let mut encoder = Encoder::new(mirror);
    let mut decoder = Decoder::new(mirror);
    for command in &whole {
        let mut wire = BytesMut::new();
        encoder
            .encode(command, &mut wire)
            .unwrap_or_else(|e| panic!("decoded {command:?} does not re-encode: {e}"));
        let again = decoder
            .decode(&mut wire)
            .unwrap_or_else(|e| panic!("re-encoded {command:?} does not decode: {e}"));
        assert_eq!(again.as_ref(), Some(command));
        assert!(wire.is_empty(), "re-encoded frame left {wire:?}");
    }
});

/// Every command decoded from `stream` fed `piece` bytes at a time, and whether decoding
/// stopped at an error.
fn decode_all(settings: WireSettings, stream: &[u8], piece: usize) -> (Vec<Command>, bool) {
    let mut decoder = Decoder::new(settings);
    let mut buf = BytesMut::new();
    let mut commands = Vec::new();
    for chunk in stream.chunks(piece) {
        buf.extend_from_slice(chunk);
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(command)) => commands.push(command),
                Ok(None) => break,
                Err(_) => return (commands, true),
            }
        }
        // An incomplete frame is never held beyond the maximum (plus its prefix).
        assert!(buf.len() as u64 <= MAX_FRAME_SIZE + 4);
    }
    (commands, false)
}
