//! The store record decoder must reject damaged records without panicking, and
//! every record it accepts must re-encode to the same bytes.
#![no_main]

use bytes::Bytes;
use hawser_broker::store_codec::{decode_record, encode_record};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let record = Bytes::copy_from_slice(data);
    if let Ok(ops) = decode_record(&record) {
        let again = encode_record(&ops);
        assert_eq!(
            decode_record(&again).expect("re-encoded record decodes"),
            ops
        );
    }
});
