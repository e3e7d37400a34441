//! The block half of the GNU gzip emulation: it collects the literal and
//! match tokens of one deflate block, decides when a block ends, builds
//! the Huffman trees and writes the block, making every choice the way
//! GNU gzip's encoder makes it (when to cut a block, stored / fixed /
//! dynamic, how ties between equal frequencies break, how over-long
//! codes are shortened). A different but equally valid choice anywhere
//! would produce a different byte stream, so nothing here may be
//! "improved". The tree building follows the classic deflate design
//! that zlib documents; the frequency fields are 16 bits wide and the
//! cost counters wrap, as in the original.

use super::bits::BitWriter;
use super::huffman::{build_tree, scan_tree, send_tree, Desc, Scratch, Tree, HEAP_SIZE, MAX_BITS};
use super::tables::{
    tables, BL_ORDER, EXTRA_BLBITS, EXTRA_DBITS, EXTRA_LBITS, LENGTH_CODES, LITERALS,
};
use super::Stop;

pub(super) const L_CODES: usize = LITERALS + 1 + LENGTH_CODES;
pub(super) const D_CODES: usize = 30;
const BL_CODES: usize = 19;
const MAX_BL_BITS: usize = 7;
const END_BLOCK: usize = 256;
/// Tokens per block before gzip must flush (its `LIT_BUFSIZE`).
const LIT_BUFSIZE: usize = 0x8000;
/// Matches per block before gzip must flush (its `DIST_BUFSIZE`).
const DIST_BUFSIZE: usize = 0x8000;

/// A literal (`dist == 0`, `lc` the byte) or a match (`dist` its distance,
/// `lc` its length minus 3).
#[derive(Clone, Copy)]
struct Token {
    lc: u8,
    is_match: bool,
    /// Match distance - 1.
    dist: u16,
}

/// Collects one block's tokens and writes finished blocks to `out`.
pub(super) struct BlockCoder<'e> {
    ltree: Tree,
    dtree: Tree,
    bltree: Tree,
    s: Scratch,
    tokens: Vec<Token>,
    last_dist: usize,
    level: u8,
    pub(super) out: BitWriter<'e>,
}

impl<'e> BlockCoder<'e> {
    pub(super) fn new(level: u8, out: BitWriter<'e>) -> BlockCoder<'e> {
        let mut c = BlockCoder {
            ltree: Tree::new(HEAP_SIZE),
            dtree: Tree::new(2 * D_CODES + 1),
            bltree: Tree::new(2 * BL_CODES + 1),
            s: Scratch {
                heap: [0; HEAP_SIZE],
                heap_len: 0,
                heap_max: 0,
                depth: [0; HEAP_SIZE],
                bl_count: [0; MAX_BITS + 1],
                opt_len: 0,
                static_len: 0,
            },
            tokens: Vec::with_capacity(LIT_BUFSIZE),
            last_dist: 0,
            level,
            out,
        };
        c.init_block();
        c
    }

    fn init_block(&mut self) {
        self.ltree.fc[..L_CODES].fill(0);
        self.dtree.fc[..D_CODES].fill(0);
        self.bltree.fc[..BL_CODES].fill(0);
        self.ltree.fc[END_BLOCK] = 1;
        self.s.opt_len = 0;
        self.s.static_len = 0;
        self.tokens.clear();
        self.last_dist = 0;
    }

    /// Records a literal (`dist == 0`) or a match and says whether gzip
    /// would end the block here. `strstart` and `block_start` are the
    /// window positions the encoder has at this moment.
    pub(super) fn tally(&mut self, dist: u32, lc: u32, strstart: u32, block_start: i64) -> bool {
        let t = tables();
        let lc8 = (lc & 0xff) as u8;
        if dist == 0 {
            bump(&mut self.ltree.fc[usize::from(lc8)]);
            self.tokens.push(Token {
                lc: lc8,
                is_match: false,
                dist: 0,
            });
        } else {
            let d = dist.wrapping_sub(1) as u16;
            bump(&mut self.ltree.fc[usize::from(t.length_code[usize::from(lc8)]) + LITERALS + 1]);
            bump(&mut self.dtree.fc[t.d_code(d)]);
            self.tokens.push(Token {
                lc: lc8,
                is_match: true,
                dist: d,
            });
            self.last_dist += 1;
        }
        let last_lit = self.tokens.len();
        if self.level > 2 && last_lit & 0xfff == 0 {
            // gzip's guess that ending the block here pays off.
            let mut out_length = (last_lit as u64) * 8;
            let in_length = (i64::from(strstart) - block_start) as u64;
            for (dcode, extra) in EXTRA_DBITS.iter().enumerate() {
                out_length = out_length
                    .wrapping_add(u64::from(self.dtree.fc[dcode]) * (5 + u64::from(*extra)));
            }
            out_length >>= 3;
            if self.last_dist < last_lit / 2 && out_length < in_length / 2 {
                return true;
            }
        }
        last_lit == LIT_BUFSIZE - 1 || self.last_dist == DIST_BUFSIZE
    }

    /// Ends the current block: `buf` is its input if still in the window
    /// (a stored block is only possible then), `stored_len` its length.
    pub(super) fn flush_block(
        &mut self,
        buf: Option<&[u8]>,
        stored_len: u64,
        eof: bool,
    ) -> Result<(), Stop> {
        let t = tables();
        let ldesc = Desc {
            elems: L_CODES,
            extra: &EXTRA_LBITS,
            extra_base: LITERALS + 1,
            max_length: MAX_BITS,
            static_len: Some(&t.static_ltree_len),
        };
        let ddesc = Desc {
            elems: D_CODES,
            extra: &EXTRA_DBITS,
            extra_base: 0,
            max_length: MAX_BITS,
            static_len: Some(&t.static_dtree_len),
        };
        let bldesc = Desc {
            elems: BL_CODES,
            extra: &EXTRA_BLBITS,
            extra_base: 0,
            max_length: MAX_BL_BITS,
            static_len: None,
        };
        build_tree(&mut self.ltree, &ldesc, &mut self.s);
        build_tree(&mut self.dtree, &ddesc, &mut self.s);
        // The bit-length tree over both trees' code lengths.
        scan_tree(&mut self.ltree, &mut self.bltree);
        scan_tree(&mut self.dtree, &mut self.bltree);
        build_tree(&mut self.bltree, &bldesc, &mut self.s);
        let mut max_blindex = BL_CODES - 1;
        while max_blindex >= 3 && self.bltree.dl[usize::from(BL_ORDER[max_blindex])] == 0 {
            max_blindex -= 1;
        }
        self.s.opt_len = self
            .s
            .opt_len
            .wrapping_add(3 * (max_blindex as u64 + 1) + 5 + 5 + 4);

        let mut opt_lenb = self.s.opt_len.wrapping_add(3 + 7) >> 3;
        let static_lenb = self.s.static_len.wrapping_add(3 + 7) >> 3;
        if static_lenb <= opt_lenb {
            opt_lenb = static_lenb;
        }
        let eofbit = u32::from(eof);
        match buf {
            Some(data) if stored_len.wrapping_add(4) <= opt_lenb => {
                self.out.send_bits(eofbit, 3);
                self.out.windup();
                // gzip writes a 16-bit length and then all the bytes.
                let len = stored_len as u16;
                self.out.put_short(len);
                self.out.put_short(!len);
                let n = usize::try_from(stored_len)
                    .unwrap_or(usize::MAX)
                    .min(data.len());
                self.out.put_bytes(&data[..n]);
            }
            _ if static_lenb == opt_lenb => {
                self.out.send_bits(2 + eofbit, 3);
                compress_block(
                    &mut self.out,
                    &self.tokens,
                    &t.static_ltree_code,
                    &t.static_ltree_len,
                    &t.static_dtree_code,
                    &t.static_dtree_len,
                );
            }
            _ => {
                self.out.send_bits(4 + eofbit, 3);
                self.send_all_trees(max_blindex + 1);
                compress_block(
                    &mut self.out,
                    &self.tokens,
                    &self.ltree.fc,
                    &self.ltree.dl,
                    &self.dtree.fc,
                    &self.dtree.dl,
                );
            }
        }
        self.init_block();
        if eof {
            self.out.windup();
        }
        self.out.check()
    }

    fn send_all_trees(&mut self, blcodes: usize) {
        let lcodes = self.ltree.max_code + 1;
        let dcodes = self.dtree.max_code + 1;
        self.out.send_bits((lcodes as u32).wrapping_sub(257), 5);
        self.out.send_bits((dcodes as u32).wrapping_sub(1), 5);
        self.out.send_bits((blcodes as u32).wrapping_sub(4), 4);
        for &rank in &BL_ORDER[..blcodes] {
            self.out
                .send_bits(u32::from(self.bltree.dl[usize::from(rank)]), 3);
        }
        send_tree(&mut self.out, &self.ltree, lcodes - 1, &self.bltree);
        send_tree(&mut self.out, &self.dtree, dcodes - 1, &self.bltree);
    }
}

fn bump(f: &mut u16) {
    *f = f.wrapping_add(1);
}

fn compress_block(
    out: &mut BitWriter,
    tokens: &[Token],
    lcode: &[u16],
    llen: &[u16],
    dcode: &[u16],
    dlen: &[u16],
) {
    let t = tables();
    for tok in tokens {
        let lc = usize::from(tok.lc);
        if !tok.is_match {
            out.send_bits(u32::from(lcode[lc]), u32::from(llen[lc]));
            continue;
        }
        let code = usize::from(t.length_code[lc]);
        let sym = code + LITERALS + 1;
        out.send_bits(u32::from(lcode[sym]), u32::from(llen[sym]));
        let extra = u32::from(EXTRA_LBITS[code]);
        if extra != 0 {
            out.send_bits(lc as u32 - u32::from(t.base_length[code]), extra);
        }
        let dist = tok.dist;
        let dc = t.d_code(dist);
        out.send_bits(u32::from(dcode[dc]), u32::from(dlen[dc]));
        let extra = u32::from(EXTRA_DBITS[dc]);
        if extra != 0 {
            out.send_bits(u32::from(dist) - u32::from(t.base_dist[dc]), extra);
        }
    }
    out.send_bits(u32::from(lcode[END_BLOCK]), u32::from(llen[END_BLOCK]));
}
