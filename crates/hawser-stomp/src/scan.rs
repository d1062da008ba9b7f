//! Byte search for the decoder's hot loops: finding LF, NUL, colon and backslash.
//!
//! A plain `iter().position` compares one byte per step; this compares eight at a time with
//! word arithmetic ("SWAR"), which matters when scanning a multi-megabyte body for its NUL.
//! It is safe code with no dependency, in the spirit of the `memchr` crate's fallback.

/// `0x01` in every byte of a word.
const LO: u64 = u64::from_ne_bytes([0x01; 8]);
/// `0x80` in every byte of a word.
const HI: u64 = u64::from_ne_bytes([0x80; 8]);
/// Bytes compared per step.
const WORD: usize = 8;

/// Offset of the first `needle` in `haystack`.
pub(crate) fn find_byte(needle: u8, haystack: &[u8]) -> Option<usize> {
    let pattern = LO * u64::from(needle);
    let mut chunks = haystack.chunks_exact(WORD);
    let mut offset = 0;
    for chunk in &mut chunks {
        let mut word = [0; WORD];
        word.copy_from_slice(chunk);
        // Bytes equal to `needle` become zero; `(x - LO) & !x & HI` flags zero bytes. Borrows
        // can only flag bytes above a real zero, so the lowest flag is always a real match.
        let x = u64::from_le_bytes(word) ^ pattern;
        let zeros = x.wrapping_sub(LO) & !x & HI;
        if zeros != 0 {
            return Some(offset + zeros.trailing_zeros() as usize / 8);
        }
        offset += WORD;
    }
    chunks
        .remainder()
        .iter()
        .position(|&b| b == needle)
        .map(|i| offset + i)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn finds_first_match_at_every_position() {
        for len in 0..40 {
            for at in 0..len {
                let mut haystack = vec![b'a'; len];
                haystack[at] = b'\n';
                if at + 1 < len {
                    haystack[at + 1] = b'\n';
                }
                assert_eq!(find_byte(b'\n', &haystack), Some(at), "len {len} at {at}");
            }
            assert_eq!(find_byte(b'\n', &vec![b'a'; len]), None);
        }
    }

    #[test]
    fn borrows_do_not_make_false_matches() {
        // 0x01 right above a match is where the zero-byte trick can misfire.
        assert_eq!(find_byte(0, &[1, 0, 1, 1, 1, 1, 1, 1, 0]), Some(1));
        assert_eq!(
            find_byte(b':', &[b';', b':', 0x3b, 0xba, 0, 0, 0, 0]),
            Some(1)
        );
        assert_eq!(find_byte(0x80, &[0; 8]), None);
        assert_eq!(find_byte(0, &[0x80; 16]), None);
    }

    proptest! {
        #[test]
        fn agrees_with_position(
            needle in prop_oneof![Just(0u8), Just(b'\n'), Just(0x80), Just(0xff), any::<u8>()],
            haystack in proptest::collection::vec(
                prop_oneof![any::<u8>(), Just(0u8), Just(1u8), Just(b'\n'), Just(0x80)],
                0..100,
            ),
        ) {
            prop_assert_eq!(
                find_byte(needle, &haystack),
                haystack.iter().position(|&b| b == needle)
            );
        }
    }
}
