//! A one-sided test of "does this 8-byte string occur in the old layer?",
//! for the bsdiff matcher ([`super::fast_bsdiff`]): a bitmap with one bit
//! set per old position, at a hash of the 8 bytes starting there.
//!
//! Why: the matcher searches the suffix array at every new position where
//! no alignment holds, and each search is ~log2(old) probes at random
//! places of two large arrays. On new content (a layer gaining 16 MB of
//! fresh data) that was 60 of a 78 s encode. A switch of alignment needs an
//! exact match of at least 8 bytes, so where the bitmap says "absent" (no
//! false negatives) the search can be skipped: it could not find a match
//! worth switching to.
//!
//! Size: half a byte per old byte (4 bits per position, a 22% false
//! positive rate, which costs only a search), between 8 KiB and 256 MiB.

/// Bytes a gram covers: the matcher's switch margin.
pub(crate) const GRAM: usize = 8;

/// The bitmap of the old layer's 8-byte grams.
pub(crate) struct GramFilter {
    bits: Vec<u64>,
    /// 64 − log2(number of bits): hash >> shift is the bit index.
    shift: u32,
}

impl GramFilter {
    pub(crate) fn new(old: &[u8]) -> GramFilter {
        let wanted = (old.len() as u64 * 4).clamp(1 << 16, 1 << 31);
        let log2 = 64 - (wanted - 1).leading_zeros();
        let mut filter = GramFilter {
            bits: vec![0; 1 << (log2 - 6)],
            shift: 64 - log2,
        };
        for gram in old.windows(GRAM) {
            let bit = filter.bit(gram);
            filter.bits[bit >> 6] |= 1 << (bit & 63);
        }
        filter
    }

    /// `false` only if `needle` (at least [`GRAM`] bytes) has no 8-byte
    /// prefix in the old layer; shorter needles are always "maybe".
    pub(crate) fn may_contain(&self, needle: &[u8]) -> bool {
        let Some(gram) = needle.get(..GRAM) else {
            return true;
        };
        let bit = self.bit(gram);
        self.bits[bit >> 6] & (1 << (bit & 63)) != 0
    }

    fn bit(&self, gram: &[u8]) -> usize {
        let mut word = [0u8; GRAM];
        word.copy_from_slice(gram);
        let hash = u64::from_le_bytes(word).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        (hash >> self.shift) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata::layer;

    #[test]
    fn every_gram_of_the_old_layer_may_be_contained() {
        let old = layer(3, 100_000);
        let filter = GramFilter::new(&old);
        assert!(old.windows(GRAM).all(|g| filter.may_contain(g)));
        assert!(filter.may_contain(b"short"));
    }

    #[test]
    fn most_absent_grams_are_ruled_out() {
        let old = layer(3, 100_000);
        let filter = GramFilter::new(&old);
        let other = layer(4, 100_000);
        let absent = other
            .windows(GRAM)
            .filter(|g| !old.windows(GRAM).any(|o| o == *g))
            .take(2_000);
        let (mut n, mut ruled_out) = (0, 0);
        for g in absent {
            n += 1;
            ruled_out += usize::from(!filter.may_contain(g));
        }
        assert!(n > 1_000 && ruled_out * 10 > n * 6, "{ruled_out} of {n}");
    }
}
