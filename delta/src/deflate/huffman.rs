//! Huffman trees as GNU gzip builds them: a heap of symbols ordered by
//! frequency with ties broken by subtree depth, code lengths capped by
//! moving leaves down, canonical codes, and the run-length coding of the
//! code lengths in a dynamic block header. Any of these done differently
//! (even optimally) would change the bytes of a rebuilt file.

use super::bits::BitWriter;

pub(super) const HEAP_SIZE: usize = 2 * super::trees::L_CODES + 1;
pub(super) const MAX_BITS: usize = 15;
const REP_3_6: usize = 16;
const REPZ_3_10: usize = 17;
const REPZ_11_138: usize = 18;

/// One Huffman tree. As in the original, `fc` holds a frequency until the
/// codes are made and then the code; `dl` holds the parent while the tree
/// is built and then the code length. The sharing is observable (the
/// guard written by `scan_tree`), so it is kept.
pub(super) struct Tree {
    pub(super) fc: Vec<u16>,
    pub(super) dl: Vec<u16>,
    pub(super) max_code: usize,
}

impl Tree {
    pub(super) fn new(size: usize) -> Tree {
        Tree {
            fc: vec![0; size],
            dl: vec![0; size],
            max_code: 0,
        }
    }
}

/// What differs between the three trees.
pub(super) struct Desc {
    pub(super) elems: usize,
    pub(super) extra: &'static [u8],
    pub(super) extra_base: usize,
    pub(super) max_length: usize,
    /// Code lengths of the fixed tree, for the fixed-block cost estimate.
    pub(super) static_len: Option<&'static [u16]>,
}

/// Heap and counters shared by the tree builders.
pub(super) struct Scratch {
    pub(super) heap: [usize; HEAP_SIZE],
    pub(super) heap_len: usize,
    pub(super) heap_max: usize,
    pub(super) depth: [u8; HEAP_SIZE],
    pub(super) bl_count: [u16; MAX_BITS + 1],
    pub(super) opt_len: u64,
    pub(super) static_len: u64,
}

/// Is node `n` "smaller" than `m`: less frequent, or as frequent and not deeper.
fn smaller(tree: &Tree, depth: &[u8], n: usize, m: usize) -> bool {
    tree.fc[n] < tree.fc[m] || (tree.fc[n] == tree.fc[m] && depth[n] <= depth[m])
}

fn pqdownheap(tree: &Tree, s: &mut Scratch, mut k: usize) {
    let v = s.heap[k];
    let mut j = k << 1;
    while j <= s.heap_len {
        if j < s.heap_len && smaller(tree, &s.depth, s.heap[j + 1], s.heap[j]) {
            j += 1;
        }
        if smaller(tree, &s.depth, v, s.heap[j]) {
            break;
        }
        s.heap[k] = s.heap[j];
        k = j;
        j <<= 1;
    }
    s.heap[k] = v;
}

pub(super) fn build_tree(tree: &mut Tree, desc: &Desc, s: &mut Scratch) {
    let elems = desc.elems;
    let mut max_code: isize = -1;
    let mut node = elems;
    s.heap_len = 0;
    s.heap_max = HEAP_SIZE;
    for n in 0..elems {
        if tree.fc[n] != 0 {
            s.heap_len += 1;
            s.heap[s.heap_len] = n;
            max_code = n as isize;
            s.depth[n] = 0;
        } else {
            tree.dl[n] = 0;
        }
    }
    // Deflate needs at least two codes in every tree.
    while s.heap_len < 2 {
        let new = if max_code < 2 {
            max_code += 1;
            max_code as usize
        } else {
            0
        };
        s.heap_len += 1;
        s.heap[s.heap_len] = new;
        tree.fc[new] = 1;
        s.depth[new] = 0;
        s.opt_len = s.opt_len.wrapping_sub(1);
        if let Some(st) = desc.static_len {
            s.static_len = s.static_len.wrapping_sub(u64::from(st[new]));
        }
    }
    tree.max_code = max_code.max(0) as usize;
    for n in (1..=s.heap_len / 2).rev() {
        pqdownheap(tree, s, n);
    }
    loop {
        let n = s.heap[1];
        s.heap[1] = s.heap[s.heap_len];
        s.heap_len -= 1;
        pqdownheap(tree, s, 1);
        let m = s.heap[1];
        s.heap_max -= 1;
        s.heap[s.heap_max] = n;
        s.heap_max -= 1;
        s.heap[s.heap_max] = m;
        tree.fc[node] = tree.fc[n].wrapping_add(tree.fc[m]);
        s.depth[node] = s.depth[n].max(s.depth[m]).wrapping_add(1);
        tree.dl[n] = node as u16;
        tree.dl[m] = node as u16;
        s.heap[1] = node;
        node += 1;
        pqdownheap(tree, s, 1);
        if s.heap_len < 2 {
            break;
        }
    }
    s.heap_max -= 1;
    s.heap[s.heap_max] = s.heap[1];
    gen_bitlen(tree, desc, s);
    gen_codes(&mut tree.fc, &tree.dl, tree.max_code, &s.bl_count);
}

fn gen_bitlen(tree: &mut Tree, desc: &Desc, s: &mut Scratch) {
    let max_code = tree.max_code;
    let max_length = desc.max_length;
    s.bl_count.fill(0);
    tree.dl[s.heap[s.heap_max]] = 0;
    let mut overflow: i32 = 0;
    for h in s.heap_max + 1..HEAP_SIZE {
        let n = s.heap[h];
        let mut bits = usize::from(tree.dl[usize::from(tree.dl[n])]) + 1;
        if bits > max_length {
            bits = max_length;
            overflow += 1;
        }
        tree.dl[n] = bits as u16;
        if n > max_code {
            continue;
        }
        s.bl_count[bits] = s.bl_count[bits].wrapping_add(1);
        let xbits = if n >= desc.extra_base {
            u64::from(desc.extra[n - desc.extra_base])
        } else {
            0
        };
        let f = u64::from(tree.fc[n]);
        s.opt_len = s.opt_len.wrapping_add(f * (bits as u64 + xbits));
        if let Some(st) = desc.static_len {
            s.static_len = s.static_len.wrapping_add(f * (u64::from(st[n]) + xbits));
        }
    }
    if overflow == 0 {
        return;
    }
    // Move leaves down until no code is longer than max_length.
    loop {
        let mut bits = max_length - 1;
        while bits > 0 && s.bl_count[bits] == 0 {
            bits -= 1;
        }
        s.bl_count[bits] = s.bl_count[bits].wrapping_sub(1);
        s.bl_count[bits + 1] = s.bl_count[bits + 1].wrapping_add(2);
        s.bl_count[max_length] = s.bl_count[max_length].wrapping_sub(1);
        overflow -= 2;
        if overflow <= 0 {
            break;
        }
    }
    // Reassign the lengths, scanning in order of increasing frequency.
    let mut h = HEAP_SIZE;
    for bits in (1..=max_length).rev() {
        let mut n = s.bl_count[bits];
        while n != 0 && h > 0 {
            h -= 1;
            let m = s.heap[h];
            if m > max_code {
                continue;
            }
            if usize::from(tree.dl[m]) != bits {
                let delta = (bits as i64 - i64::from(tree.dl[m])) * i64::from(tree.fc[m]);
                s.opt_len = s.opt_len.wrapping_add(delta as u64);
                tree.dl[m] = bits as u16;
            }
            n -= 1;
        }
    }
}

/// Canonical codes (bit-reversed for LSB-first output) from the lengths.
pub(super) fn gen_codes(
    code_out: &mut [u16],
    lens: &[u16],
    max_code: usize,
    bl_count: &[u16; MAX_BITS + 1],
) {
    let mut next_code = [0u16; MAX_BITS + 1];
    let mut code: u16 = 0;
    for bits in 1..=MAX_BITS {
        code = code.wrapping_add(bl_count[bits - 1]) << 1;
        next_code[bits] = code;
    }
    for n in 0..=max_code.min(lens.len().saturating_sub(1)) {
        let len = usize::from(lens[n]);
        if len == 0 || len > MAX_BITS {
            continue;
        }
        code_out[n] = bi_reverse(next_code[len], len);
        next_code[len] = next_code[len].wrapping_add(1);
    }
}

pub(super) fn bi_reverse(code: u16, len: usize) -> u16 {
    code.reverse_bits() >> (16 - len)
}

/// Visits the run-length encoding of `tree`'s code lengths, as both
/// `scan_tree` (counting) and `send_tree` (writing) must walk it alike.
/// `emit(symbol, extra_bits_value, extra_bits_count)`.
fn walk_lengths(lens: &[u16], max_code: usize, mut emit: impl FnMut(usize, u32, u32)) {
    let mut prevlen: i32 = -1;
    let mut nextlen = i32::from(lens[0]);
    let mut count: u32 = 0;
    let (mut max_count, mut min_count) = if nextlen == 0 { (138, 3) } else { (7, 4) };
    for n in 0..=max_code {
        let curlen = nextlen;
        // The element past max_code is the guard scan_tree wrote (0xffff).
        nextlen = if n < max_code {
            i32::from(lens[n + 1])
        } else {
            0xffff
        };
        count += 1;
        if count < max_count && curlen == nextlen {
            continue;
        } else if count < min_count {
            for _ in 0..count {
                emit(curlen as usize, 0, 0);
            }
        } else if curlen != 0 {
            if curlen != prevlen {
                emit(curlen as usize, 0, 0);
                count -= 1;
            }
            emit(REP_3_6, count.wrapping_sub(3), 2);
        } else if count <= 10 {
            emit(REPZ_3_10, count - 3, 3);
        } else {
            emit(REPZ_11_138, count - 11, 7);
        }
        count = 0;
        prevlen = curlen;
        (max_count, min_count) = if nextlen == 0 {
            (138, 3)
        } else if curlen == nextlen {
            (6, 3)
        } else {
            (7, 4)
        };
    }
}

pub(super) fn scan_tree(tree: &mut Tree, bl: &mut Tree) {
    let max_code = tree.max_code;
    walk_lengths(&tree.dl, max_code, |sym, _, _| {
        if let Some(f) = bl.fc.get_mut(sym) {
            *f = f.wrapping_add(1);
        }
    });
    if let Some(guard) = tree.dl.get_mut(max_code + 1) {
        *guard = 0xffff;
    }
}

pub(super) fn send_tree(out: &mut BitWriter, tree: &Tree, max_code: usize, bl: &Tree) {
    walk_lengths(&tree.dl, max_code, |sym, extra, nbits| {
        let code = bl.fc.get(sym).copied().unwrap_or(0);
        let len = bl.dl.get(sym).copied().unwrap_or(0);
        out.send_bits(u32::from(code), u32::from(len));
        if nbits > 0 {
            out.send_bits(extra, nbits);
        }
    });
}
