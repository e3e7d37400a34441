//! The matching half of the GNU gzip emulation: given the plain bytes and
//! a level (1..=9), it finds the same literals and matches, in the same
//! order, that `gzip -N` finds, and hands them to [`BlockCoder`].
//!
//! Debian compresses its changelogs and man pages with `gzip -9n`, whose
//! encoder differs from zlib's in block splitting (32K-token blocks and an
//! early cut every 4096 tokens when it looks profitable) and in how it
//! reads its window, so zlib cannot reproduce those files; this can, and
//! needs no correction data: the recipe is just the level.
//!
//! To give identical output this mirrors gzip's state machine as it is,
//! including what is observable only at the edges: the 64 KiB window that
//! is refilled in whole reads and slid by 32 KiB, the positions forgotten
//! by the slide, the match search that may look at stale window bytes
//! past the end of the input, and the lazy-match rules.
//! The memory used is fixed (about 320 KiB) plus the output.

use super::bits::BitWriter;
use super::trees::BlockCoder;
use super::Stop;

const WSIZE: usize = 0x8000;
const WMASK: usize = WSIZE - 1;
const WINDOW_SIZE: usize = 2 * WSIZE;
const HASH_BITS: u32 = 15;
const HASH_SIZE: usize = 1 << HASH_BITS;
const HASH_MASK: u32 = (1 << HASH_BITS) - 1;
const H_SHIFT: u32 = HASH_BITS.div_ceil(MIN_MATCH);
const MIN_MATCH: u32 = 3;
const MAX_MATCH: u32 = 258;
const MIN_LOOKAHEAD: u32 = MAX_MATCH + MIN_MATCH + 1;
const MAX_DIST: u32 = WSIZE as u32 - MIN_LOOKAHEAD;
const TOO_FAR: u32 = 4096;
/// Reads past the window end never happen in gzip; the slack only
/// guarantees that a mistake here could not turn into a panic.
const SLACK: usize = 2 * MAX_MATCH as usize;

/// gzip's per-level tuning: good_length, max_lazy, nice_length, max_chain.
const CONFIG: [(u32, u32, u32, u32); 10] = [
    (0, 0, 0, 0),
    (4, 4, 8, 4),
    (4, 5, 16, 8),
    (4, 6, 32, 32),
    (4, 4, 16, 16),
    (8, 16, 32, 32),
    (8, 16, 128, 128),
    (8, 32, 128, 256),
    (32, 128, 258, 1024),
    (32, 258, 258, 4096),
];

/// Hash-chain links the match search may follow per plain byte, plus a
/// fixed allowance. gzip -9 follows up to 4096 links per position; text
/// needs far fewer on average, while plain data crafted to keep every
/// chain full would make a rebuild take minutes per MiB. Measured on the
/// 60 `gzip -9n` files of the shared corpus: at most 16.3 links per byte,
/// so 64 leaves a 4x margin. `analyze` runs under the same budget, so a
/// file it accepts always rebuilds.
const WORK_PER_BYTE: u64 = 64;
const WORK_BASE: u64 = 1 << 22;

/// The match-search budget for `plain_len` bytes.
pub(super) fn work_budget(plain_len: usize) -> u64 {
    (plain_len as u64)
        .saturating_mul(WORK_PER_BYTE)
        .saturating_add(WORK_BASE)
}

/// Appends to `out` the raw deflate stream `gzip -<level>` makes of
/// `plain`. Stops early when `out` would pass `limit` bytes, or, given
/// `expect`, at the first byte that differs from it.
pub(super) fn compress(
    plain: &[u8],
    level: u8,
    out: Vec<u8>,
    limit: usize,
    expect: Option<&[u8]>,
) -> Result<Vec<u8>, Stop> {
    if !(1..=9).contains(&level) {
        return Err(Stop::BadParams);
    }
    let (good, lazy, nice, chain) = CONFIG[usize::from(level)];
    let mut d = Deflater {
        input: plain,
        in_pos: 0,
        window: vec![0; WINDOW_SIZE + SLACK],
        head: vec![0; HASH_SIZE],
        prev: vec![0; WSIZE],
        ins_h: 0,
        strstart: 0,
        match_start: 0,
        prev_length: 0,
        lookahead: 0,
        eofile: false,
        block_start: 0,
        good_match: good,
        max_lazy: lazy,
        nice_match: nice,
        max_chain: chain,
        work_left: work_budget(plain.len()),
        coder: BlockCoder::new(level, BitWriter::new(out, limit, expect)),
    };
    d.lm_init();
    if level <= 3 {
        d.deflate_fast()?;
    } else {
        d.deflate_lazy()?;
    }
    d.coder.out.finish()
}

struct Deflater<'a, 'e> {
    input: &'a [u8],
    in_pos: usize,
    window: Vec<u8>,
    head: Vec<u16>,
    prev: Vec<u16>,
    ins_h: u32,
    strstart: u32,
    match_start: u32,
    prev_length: u32,
    lookahead: u32,
    eofile: bool,
    block_start: i64,
    good_match: u32,
    max_lazy: u32,
    nice_match: u32,
    max_chain: u32,
    /// Chain links the match search may still follow.
    work_left: u64,
    coder: BlockCoder<'e>,
}

impl Deflater<'_, '_> {
    fn w(&self, i: u32) -> u8 {
        self.window.get(i as usize).copied().unwrap_or(0)
    }

    /// Reads up to `size` input bytes into the window at `at`, as gzip's
    /// whole-file `read` does.
    fn read_buf(&mut self, at: u32, size: u32) -> u32 {
        let at = at as usize;
        let room = self.window.len().saturating_sub(at);
        let n = (size as usize)
            .min(self.input.len() - self.in_pos)
            .min(room);
        self.window[at..at + n].copy_from_slice(&self.input[self.in_pos..self.in_pos + n]);
        self.in_pos += n;
        n as u32
    }

    fn update_hash(&mut self, c: u8) {
        self.ins_h = ((self.ins_h << H_SHIFT) ^ u32::from(c)) & HASH_MASK;
    }

    /// Inserts the string at `s` in the hash chains; returns the previous head.
    fn insert_string(&mut self, s: u32) -> u32 {
        self.update_hash(self.w(s + MIN_MATCH - 1));
        let h = self.ins_h as usize;
        let head = self.head[h];
        self.prev[s as usize & WMASK] = head;
        self.head[h] = s as u16;
        u32::from(head)
    }

    fn lm_init(&mut self) {
        self.lookahead = self.read_buf(0, WINDOW_SIZE as u32);
        if self.lookahead == 0 {
            self.eofile = true;
            return;
        }
        while self.lookahead < MIN_LOOKAHEAD && !self.eofile {
            self.fill_window();
        }
        self.ins_h = 0;
        for j in 0..MIN_MATCH - 1 {
            self.update_hash(self.w(j));
        }
    }

    fn fill_window(&mut self) {
        let mut more = (WINDOW_SIZE as u32)
            .wrapping_sub(self.lookahead)
            .wrapping_sub(self.strstart);
        if self.strstart >= WSIZE as u32 + MAX_DIST {
            self.window.copy_within(WSIZE..WINDOW_SIZE, 0);
            self.match_start = self.match_start.wrapping_sub(WSIZE as u32);
            self.strstart -= WSIZE as u32;
            self.block_start -= WSIZE as i64;
            for m in self.head.iter_mut().chain(self.prev.iter_mut()) {
                *m = if usize::from(*m) >= WSIZE {
                    *m - WSIZE as u16
                } else {
                    0
                };
            }
            more = more.wrapping_add(WSIZE as u32);
        }
        if !self.eofile {
            let at = self.strstart + self.lookahead;
            let n = self.read_buf(at, more);
            if n == 0 {
                self.eofile = true;
                // gzip zeroes the two bytes after the input.
                for i in at as usize..at as usize + (MIN_MATCH as usize - 1) {
                    if let Some(b) = self.window.get_mut(i) {
                        *b = 0;
                    }
                }
            } else {
                self.lookahead += n;
            }
        }
    }

    fn longest_match(&mut self, mut cur_match: u32) -> Result<u32, Stop> {
        let mut chain_length = self.max_chain;
        let scan = self.strstart as usize;
        let mut best_len = self.prev_length as usize;
        let limit = self.strstart.saturating_sub(MAX_DIST);
        let strend = scan + MAX_MATCH as usize;
        let w = &self.window;
        let at = |i: usize| w.get(i).copied().unwrap_or(0);
        let mut scan_end1 = at(scan + best_len - 1);
        let mut scan_end = at(scan + best_len);
        if self.prev_length >= self.good_match {
            chain_length >>= 2;
        }
        loop {
            self.work_left = self.work_left.checked_sub(1).ok_or(Stop::TooSlow)?;
            let m = cur_match as usize;
            if at(m + best_len) == scan_end
                && at(m + best_len - 1) == scan_end1
                && at(m) == at(scan)
                && at(m + 1) == at(scan + 1)
            {
                // Bytes 0 and 1 are equal and byte 2 follows from the hash;
                // gzip compares from byte 3 up to 258, eight at a time.
                let (mut s, mut mm) = (scan + 2, m + 2);
                'cmp: loop {
                    for _ in 0..8 {
                        s += 1;
                        mm += 1;
                        if at(s) != at(mm) {
                            break 'cmp;
                        }
                    }
                    if s >= strend {
                        break;
                    }
                }
                let len = MAX_MATCH as usize - (strend - s.min(strend));
                if len > best_len {
                    self.match_start = cur_match;
                    best_len = len;
                    if len >= self.nice_match as usize {
                        break;
                    }
                    scan_end1 = at(scan + best_len - 1);
                    scan_end = at(scan + best_len);
                }
            }
            cur_match = u32::from(self.prev[cur_match as usize & WMASK]);
            if cur_match <= limit {
                break;
            }
            chain_length = chain_length.wrapping_sub(1);
            if chain_length == 0 {
                break;
            }
        }
        Ok(best_len as u32)
    }

    /// Ends the block at `strstart`; gzip's FLUSH_BLOCK.
    fn flush_block(&mut self, eof: bool) -> Result<(), Stop> {
        let stored_len = (i64::from(self.strstart) - self.block_start) as u64;
        let buf = if self.block_start >= 0 {
            self.window.get(self.block_start as usize..)
        } else {
            None
        };
        self.coder.flush_block(buf, stored_len, eof)
    }

    fn tally(&mut self, dist: u32, lc: u32) -> bool {
        self.coder.tally(dist, lc, self.strstart, self.block_start)
    }

    /// gzip's invariants, checked so that a mistake here is an error and
    /// never an out-of-range access or an endless loop.
    fn check_state(&self) -> Result<(), Stop> {
        if self.strstart as usize > WINDOW_SIZE || self.lookahead as usize > WINDOW_SIZE {
            return Err(Stop::Internal);
        }
        Ok(())
    }

    fn can_search(&self, hash_head: u32) -> bool {
        hash_head != 0
            && self.strstart.wrapping_sub(hash_head) <= MAX_DIST
            && self.strstart <= WINDOW_SIZE as u32 - MIN_LOOKAHEAD
    }

    /// Levels 1..=3: take the longest match at once, no lazy evaluation.
    fn deflate_fast(&mut self) -> Result<(), Stop> {
        let mut match_length: u32 = 0;
        self.prev_length = MIN_MATCH - 1;
        while self.lookahead != 0 {
            self.check_state()?;
            let hash_head = self.insert_string(self.strstart);
            if self.can_search(hash_head) {
                match_length = self.longest_match(hash_head)?.min(self.lookahead);
            }
            let flush;
            if match_length >= MIN_MATCH {
                flush = self.tally(
                    self.strstart.wrapping_sub(self.match_start),
                    match_length - MIN_MATCH,
                );
                self.lookahead = self.lookahead.wrapping_sub(match_length);
                if match_length <= self.max_lazy {
                    match_length -= 1;
                    while match_length != 0 {
                        self.strstart += 1;
                        self.insert_string(self.strstart);
                        match_length -= 1;
                    }
                    self.strstart += 1;
                } else {
                    self.strstart += match_length;
                    match_length = 0;
                    self.ins_h = u32::from(self.w(self.strstart));
                    self.update_hash(self.w(self.strstart + 1));
                }
            } else {
                flush = self.tally(0, u32::from(self.w(self.strstart)));
                self.lookahead -= 1;
                self.strstart += 1;
            }
            if flush {
                self.flush_block(false)?;
                self.block_start = i64::from(self.strstart);
            }
            while self.lookahead < MIN_LOOKAHEAD && !self.eofile {
                self.fill_window();
            }
        }
        self.flush_block(true)
    }

    /// Levels 4..=9: a match is kept only if the next position does not
    /// start a longer one.
    fn deflate_lazy(&mut self) -> Result<(), Stop> {
        let mut match_available = false;
        let mut match_length: u32 = MIN_MATCH - 1;
        while self.lookahead != 0 {
            self.check_state()?;
            let hash_head = self.insert_string(self.strstart);
            self.prev_length = match_length;
            let prev_match = self.match_start;
            match_length = MIN_MATCH - 1;
            if self.prev_length < self.max_lazy && self.can_search(hash_head) {
                match_length = self.longest_match(hash_head)?.min(self.lookahead);
                if match_length == MIN_MATCH
                    && self.strstart.wrapping_sub(self.match_start) > TOO_FAR
                {
                    match_length -= 1;
                }
            }
            if self.prev_length >= MIN_MATCH && match_length <= self.prev_length {
                let dist = self.strstart.wrapping_sub(1).wrapping_sub(prev_match);
                let flush = self.tally(dist, self.prev_length - MIN_MATCH);
                self.lookahead = self.lookahead.wrapping_sub(self.prev_length - 1);
                let mut n = self.prev_length - 2;
                while n != 0 {
                    self.strstart += 1;
                    self.insert_string(self.strstart);
                    n -= 1;
                }
                match_available = false;
                match_length = MIN_MATCH - 1;
                self.strstart += 1;
                if flush {
                    self.flush_block(false)?;
                    self.block_start = i64::from(self.strstart);
                }
            } else if match_available {
                let flush = self.tally(0, u32::from(self.w(self.strstart.wrapping_sub(1))));
                if flush {
                    self.flush_block(false)?;
                    self.block_start = i64::from(self.strstart);
                }
                self.strstart += 1;
                self.lookahead -= 1;
            } else {
                match_available = true;
                self.strstart += 1;
                self.lookahead -= 1;
            }
            while self.lookahead < MIN_LOOKAHEAD && !self.eofile {
                self.fill_window();
            }
        }
        if match_available {
            self.tally(0, u32::from(self.w(self.strstart.wrapping_sub(1))));
        }
        self.flush_block(true)
    }
}
