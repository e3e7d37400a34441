//! The output side of the emulated encoder: an LSB-first bit writer that
//! refuses to grow past a byte limit and can compare what it writes with
//! an expected stream, so that `analyze` abandons a wrong parameter guess
//! at the first differing byte instead of compressing the whole file.

use super::Stop;

/// Bits to bytes, least significant bit first, as deflate packs them.
pub(super) struct BitWriter<'e> {
    out: Vec<u8>,
    /// Bytes that were in `out` before the deflate stream (a header).
    base: usize,
    buf: u64,
    nbits: u32,
    limit: usize,
    expect: Option<&'e [u8]>,
    stop: Option<Stop>,
}

impl<'e> BitWriter<'e> {
    /// A writer appending to `out` that stops (with [`Stop::TooLong`]) when
    /// `out` would pass `limit` bytes and, given `expect`, (with
    /// [`Stop::Differs`]) at the first byte that is not the expected one.
    pub(super) fn new(out: Vec<u8>, limit: usize, expect: Option<&'e [u8]>) -> BitWriter<'e> {
        BitWriter {
            base: out.len(),
            out,
            buf: 0,
            nbits: 0,
            limit,
            expect,
            stop: None,
        }
    }

    fn put(&mut self, b: u8) {
        if self.stop.is_some() {
            return;
        }
        let at = self.out.len();
        if at >= self.limit {
            self.stop = Some(Stop::TooLong);
            return;
        }
        if let Some(e) = self.expect {
            if e.get(at - self.base) != Some(&b) {
                self.stop = Some(Stop::Differs);
                return;
            }
        }
        self.out.push(b);
    }

    /// Appends the low `len` bits of `value`.
    pub(super) fn send_bits(&mut self, value: u32, len: u32) {
        let len = len.min(16);
        let v = u64::from(value) & ((1u64 << len) - 1);
        self.buf |= v << self.nbits;
        self.nbits += len;
        while self.nbits >= 8 {
            self.put(self.buf as u8);
            self.buf >>= 8;
            self.nbits -= 8;
        }
    }

    /// Pads with zero bits to a byte boundary.
    pub(super) fn windup(&mut self) {
        if self.nbits > 0 {
            self.put(self.buf as u8);
        }
        self.buf = 0;
        self.nbits = 0;
    }

    /// Appends a 16-bit little-endian value (only on a byte boundary).
    pub(super) fn put_short(&mut self, w: u16) {
        self.put(w as u8);
        self.put((w >> 8) as u8);
    }

    pub(super) fn put_bytes(&mut self, data: &[u8]) {
        for &b in data {
            if self.stop.is_some() {
                return;
            }
            self.put(b);
        }
    }

    /// `Err` once the writer has stopped.
    pub(super) fn check(&self) -> Result<(), Stop> {
        match self.stop {
            Some(s) => Err(s),
            None => Ok(()),
        }
    }

    /// The bytes written; `Err` if the writer stopped or, with an expected
    /// stream, if fewer bytes than expected were written.
    pub(super) fn finish(self) -> Result<Vec<u8>, Stop> {
        self.check()?;
        if let Some(e) = self.expect {
            if e.len() != self.out.len() - self.base {
                return Err(Stop::Differs);
            }
        }
        Ok(self.out)
    }
}
