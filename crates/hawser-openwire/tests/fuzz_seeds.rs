//! Writes a seed corpus for the `openwire_decode` fuzz target: streams of valid frames in
//! every mode, and the Java fixtures, prefixed with the two bytes the target reads its mode
//! from. Run by hand:
//!
//! ```sh
//! OPENWIRE_SEED_DIR=fuzz/corpus/openwire_decode \
//!     cargo test -p hawser-openwire --test fuzz_seeds -- --ignored
//! ```

mod common;
mod strategy;

use bytes::BytesMut;
use hawser_openwire::{Encoder, WireSettings};
use proptest::collection::vec;
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::TestRunner;

#[test]
#[ignore = "writes files; run by hand to seed the fuzzer"]
fn write_fuzz_seeds() {
    let dir = std::env::var("OPENWIRE_SEED_DIR").expect("OPENWIRE_SEED_DIR");
    std::fs::create_dir_all(&dir).unwrap();
    let mut runner = TestRunner::deterministic();
    let mut written = 0;
    for mode in 0u8..32 {
        let stack_traces = mode & 8 != 0;
        let settings = WireSettings {
            version: 12,
            tight_encoding: mode & 1 != 0,
            cache_enabled: mode & 2 != 0,
            cache_size: if mode & 16 != 0 { 4 } else { 1024 },
            size_prefix_disabled: mode & 4 != 0,
            stack_trace_enabled: stack_traces,
            max_frame_size: 4096,
        };
        for seed in 0..24 {
            let commands = vec(strategy::command(stack_traces), 1..4)
                .new_tree(&mut runner)
                .unwrap()
                .current();
            // The target's version is 1 + byte % 12.
            let mut wire = BytesMut::from(&[mode, 11][..]);
            let mut encoder = Encoder::new(settings);
            if commands
                .iter()
                .all(|c| encoder.encode(c, &mut wire).is_ok())
            {
                std::fs::write(format!("{dir}/seed-{mode:02}-{seed:02}"), &wire).unwrap();
                written += 1;
            }
        }
    }
    // ActiveMQ's own streams (tests/fixtures/java), every version.
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/java");
    for entry in std::fs::read_dir(&fixtures).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        let Some(stem) = name.strip_suffix(".bin") else {
            continue;
        };
        let parts: Vec<&str> = stem.split('-').collect();
        let version: u8 = parts[0][1..].parse().unwrap();
        let mode = u8::from(parts[1] == "tight")
            | u8::from(parts[2] == "cache") << 1
            | u8::from(parts[3] == "noprefix") << 2
            | u8::from(parts[4] == "stack") << 3;
        let mut wire = vec![mode, version - 1];
        wire.extend_from_slice(&std::fs::read(&path).unwrap());
        std::fs::write(format!("{dir}/java-{stem}"), &wire).unwrap();
        written += 1;
    }
    println!("{written} seeds in {dir}");
}
