//! The recipe's wire format: everything besides the plain bytes that is
//! needed to rebuild a compressed file. It comes from a patch, so the
//! reader trusts nothing: every length is checked against what is left,
//! and an unknown version, container, engine or trailing byte is refused.
//!
//! Layout (version 1):
//! `01 | container | engine | level | varint n, header[n] | trailer`
//! where `trailer` is `00` (the standard CRC/size or Adler-32 trailer,
//! recomputed) or `01 varint n, bytes[n]` (kept verbatim).

use super::container::Container;
use crate::DeltaError;

const VERSION: u8 = 1;
/// Engine id of the GNU gzip emulation ([`super::gzip_emu`]).
pub(super) const ENGINE_GZIP: u8 = 1;

/// How the bytes after the deflate stream are made.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Trailer {
    Standard,
    Verbatim(Vec<u8>),
}

#[derive(Debug, PartialEq, Eq)]
pub(super) struct Recipe {
    pub(super) container: Container,
    pub(super) engine: u8,
    pub(super) level: u8,
    pub(super) header: Vec<u8>,
    pub(super) trailer: Trailer,
}

impl Recipe {
    pub(super) fn encode(&self) -> Vec<u8> {
        let mut out = vec![VERSION, self.container.id(), self.engine, self.level];
        put_varint(&mut out, self.header.len() as u64);
        out.extend_from_slice(&self.header);
        match &self.trailer {
            Trailer::Standard => out.push(0),
            Trailer::Verbatim(t) => {
                out.push(1);
                put_varint(&mut out, t.len() as u64);
                out.extend_from_slice(t);
            }
        }
        out
    }

    pub(super) fn decode(data: &[u8]) -> Result<Recipe, DeltaError> {
        let mut r = Reader { data, pos: 0 };
        let version = r.byte()?;
        if version != VERSION {
            return Err(corrupt(format!("unknown recipe version {version}")));
        }
        let c = r.byte()?;
        let container =
            Container::from_id(c).ok_or_else(|| corrupt(format!("unknown container {c}")))?;
        let engine = r.byte()?;
        if engine != ENGINE_GZIP {
            return Err(corrupt(format!("unknown engine {engine}")));
        }
        let level = r.byte()?;
        if !(1..=9).contains(&level) {
            return Err(corrupt(format!("level {level} is not 1..=9")));
        }
        let header = r.bytes()?.to_vec();
        let trailer = match r.byte()? {
            0 => Trailer::Standard,
            1 => Trailer::Verbatim(r.bytes()?.to_vec()),
            t => return Err(corrupt(format!("unknown trailer kind {t}"))),
        };
        if r.pos != data.len() {
            return Err(corrupt(format!(
                "{} stray bytes after the recipe",
                data.len() - r.pos
            )));
        }
        Ok(Recipe {
            container,
            engine,
            level,
            header,
            trailer,
        })
    }
}

fn corrupt(what: String) -> DeltaError {
    DeltaError::Corrupt(format!("deflate recipe: {what}"))
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Result<u8, DeltaError> {
        let b = *self
            .data
            .get(self.pos)
            .ok_or_else(|| corrupt("truncated".into()))?;
        self.pos += 1;
        Ok(b)
    }

    fn varint(&mut self) -> Result<u64, DeltaError> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(corrupt("length field is too long".into()))
    }

    /// A varint length and that many bytes, which must all be present.
    fn bytes(&mut self) -> Result<&'a [u8], DeltaError> {
        let n = self.varint()?;
        let left = (self.data.len() - self.pos) as u64;
        if n > left {
            return Err(corrupt(format!(
                "a length of {n} bytes, but only {left} are left"
            )));
        }
        let s = &self.data[self.pos..self.pos + n as usize];
        self.pos += n as usize;
        Ok(s)
    }
}
