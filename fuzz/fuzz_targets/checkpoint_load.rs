//! The journal store's checkpoint reader must refuse damaged files without
//! panicking, and every index it accepts must be walkable to its last entry.
//! The checksum would turn away almost every input before the parser saw it,
//! so the target frames the input as a file (the format's magic in front, a
//! correct CRC32C behind) and the parser gets the bytes in between.
#![no_main]

use hawser_journal_store::inspect_checkpoint;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut file = b"HWSRCKPT".to_vec();
    file.extend_from_slice(data);
    let crc = crc32c::crc32c(&file);
    file.extend_from_slice(&crc.to_le_bytes());
    if let Ok(summary) = inspect_checkpoint(&file) {
        assert!(summary.pending <= data.len() as u64 * 8, "{summary:?}");
    }
});
