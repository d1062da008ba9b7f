//! Random names: 48 bits from the operating system's randomness (through
//! std's `RandomState`, which is seeded from it), as 12 hex digits. Enough
//! that two brokers, or two runs of one, never pick the same.

use std::hash::{BuildHasher, Hasher};

/// A fresh random token.
pub fn random_hex() -> String {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    format!("{:012x}", h.finish() & 0xffff_ffff_ffff)
}

#[cfg(test)]
mod tests {
    #[test]
    fn tokens_differ() {
        let a = super::random_hex();
        assert_eq!(a.len(), 12);
        assert_ne!(a, super::random_hex());
    }
}
