//! The fixed tables of the deflate format (RFC 1951): extra-bit counts,
//! the length and distance code maps, and the fixed ("static") Huffman
//! codes. Built once, on first use, and shared by every rebuild.

use std::sync::OnceLock;

pub(super) const LENGTH_CODES: usize = 29;
pub(super) const LITERALS: usize = 256;

pub(super) const EXTRA_LBITS: [u8; LENGTH_CODES] = [
    0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0,
];
pub(super) const EXTRA_DBITS: [u8; 30] = [
    0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13,
    13,
];
pub(super) const EXTRA_BLBITS: [u8; 19] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 3, 7];
/// The order in which the bit-length code lengths are sent.
pub(super) const BL_ORDER: [u8; 19] = [
    16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15,
];

/// Tables derived from the constants above.
pub(super) struct Tables {
    /// Match length - 3 (0..=255) to length code (0..=28).
    pub(super) length_code: [u8; 256],
    pub(super) base_length: [u16; LENGTH_CODES],
    /// Distance - 1 to distance code, see [`Tables::d_code`].
    dist_code: [u8; 512],
    pub(super) base_dist: [u16; 30],
    pub(super) static_ltree_code: [u16; LITERALS + 32],
    pub(super) static_ltree_len: [u16; LITERALS + 32],
    pub(super) static_dtree_code: [u16; 30],
    pub(super) static_dtree_len: [u16; 30],
}

impl Tables {
    /// The distance code of `dist` (distance - 1).
    pub(super) fn d_code(&self, dist: u16) -> usize {
        let i = if dist < 256 {
            usize::from(dist)
        } else {
            256 + usize::from(dist >> 7)
        };
        usize::from(self.dist_code.get(i).copied().unwrap_or(29))
    }
}

/// The shared tables.
pub(super) fn tables() -> &'static Tables {
    static TABLES: OnceLock<Tables> = OnceLock::new();
    TABLES.get_or_init(build)
}

fn build() -> Tables {
    let mut t = Tables {
        length_code: [0; 256],
        base_length: [0; LENGTH_CODES],
        dist_code: [0; 512],
        base_dist: [0; 30],
        static_ltree_code: [0; LITERALS + 32],
        static_ltree_len: [0; LITERALS + 32],
        static_dtree_code: [0; 30],
        static_dtree_len: [0; 30],
    };
    let mut length = 0usize;
    for (code, &extra) in EXTRA_LBITS.iter().enumerate().take(LENGTH_CODES - 1) {
        t.base_length[code] = length as u16;
        for _ in 0..(1usize << extra) {
            t.length_code[length] = code as u8;
            length += 1;
        }
    }
    // Length 258 has two encodings; the shorter, code 285, is used.
    t.length_code[255] = (LENGTH_CODES - 1) as u8;
    let mut dist = 0usize;
    for (code, &extra) in EXTRA_DBITS.iter().enumerate().take(16) {
        t.base_dist[code] = dist as u16;
        for _ in 0..(1usize << extra) {
            t.dist_code[dist] = code as u8;
            dist += 1;
        }
    }
    // From here on, distances are counted in units of 128.
    dist >>= 7;
    for (code, &extra) in EXTRA_DBITS.iter().enumerate().skip(16) {
        t.base_dist[code] = (dist << 7) as u16;
        for _ in 0..(1usize << (extra - 7)) {
            t.dist_code[256 + dist] = code as u8;
            dist += 1;
        }
    }
    let mut bl_count = [0u16; 16];
    for (n, len) in t.static_ltree_len.iter_mut().enumerate() {
        *len = match n {
            0..=143 => 8,
            144..=255 => 9,
            256..=279 => 7,
            _ => 8,
        };
        bl_count[usize::from(*len)] += 1;
    }
    super::huffman::gen_codes(
        &mut t.static_ltree_code,
        &t.static_ltree_len,
        LITERALS + 31,
        &bl_count,
    );
    for n in 0..30 {
        t.static_dtree_len[n] = 5;
        t.static_dtree_code[n] = super::huffman::bi_reverse(n as u16, 5);
    }
    t
}
