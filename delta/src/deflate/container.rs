//! Finding the deflate stream inside a compressed file: a gzip member
//! (RFC 1952), a zlib stream (RFC 1950) or bare deflate (RFC 1951), tried
//! in that order, and inflating it under a size cap. `analyze` and
//! `inflate` both go through [`parse`], so the encoder and the device
//! always agree on what a file's plain bytes are.

use crate::DeltaError;
use flate2::{Decompress, FlushDecompress, Status};

/// The wrapper around the deflate stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Container {
    Raw,
    Gzip,
    Zlib,
}

impl Container {
    pub(super) fn id(self) -> u8 {
        match self {
            Container::Raw => 0,
            Container::Gzip => 1,
            Container::Zlib => 2,
        }
    }

    pub(super) fn from_id(id: u8) -> Option<Container> {
        match id {
            0 => Some(Container::Raw),
            1 => Some(Container::Gzip),
            2 => Some(Container::Zlib),
            _ => None,
        }
    }

    /// The trailer a conforming writer puts after the deflate stream.
    pub(super) fn standard_trailer(self, plain: &[u8]) -> Vec<u8> {
        match self {
            Container::Raw => Vec::new(),
            Container::Gzip => {
                let mut crc = flate2::Crc::new();
                crc.update(plain);
                let mut t = crc.sum().to_le_bytes().to_vec();
                t.extend_from_slice(&(plain.len() as u32).to_le_bytes());
                t
            }
            Container::Zlib => adler32(plain).to_be_bytes().to_vec(),
        }
    }
}

/// A compressed file split into its parts.
pub(super) struct Parsed {
    pub(super) container: Container,
    /// Bytes before the deflate stream (the gzip or zlib header).
    pub(super) header_len: usize,
    /// Where the deflate stream ends.
    pub(super) body_end: usize,
    pub(super) plain: Vec<u8>,
}

/// Detects the container and inflates its (first) deflate stream,
/// refusing more than `max_plain` plain bytes.
pub(super) fn parse(data: &[u8], max_plain: usize) -> Result<Parsed, DeltaError> {
    let (container, header_len) = if let Some(h) = gzip_header_len(data)? {
        (Container::Gzip, h)
    } else if is_zlib_header(data) {
        (Container::Zlib, 2)
    } else {
        (Container::Raw, 0)
    };
    let body = &data[header_len..];
    let (plain, used) = inflate_raw(body, max_plain)?;
    if container == Container::Raw && used != body.len() {
        return Err(DeltaError::Corrupt(
            "not a gzip, zlib or bare deflate file".into(),
        ));
    }
    Ok(Parsed {
        container,
        header_len,
        body_end: header_len + used,
        plain,
    })
}

/// The gzip header's length, `None` if `data` does not start like gzip.
fn gzip_header_len(data: &[u8]) -> Result<Option<usize>, DeltaError> {
    if data.len() < 3 || data[..3] != [0x1f, 0x8b, 8] {
        return Ok(None);
    }
    let bad = || DeltaError::Corrupt("gzip header is truncated or malformed".into());
    let flags = *data.get(3).ok_or_else(bad)?;
    if flags & 0xe0 != 0 {
        return Err(bad());
    }
    let mut pos = 10;
    if pos > data.len() {
        return Err(bad());
    }
    if flags & 4 != 0 {
        let x = data.get(pos..pos + 2).ok_or_else(bad)?;
        pos += 2 + usize::from(u16::from_le_bytes([x[0], x[1]]));
    }
    for bit in [8u8, 16] {
        if flags & bit != 0 {
            let rest = data.get(pos..).ok_or_else(bad)?;
            let nul = rest.iter().position(|&b| b == 0).ok_or_else(bad)?;
            pos += nul + 1;
        }
    }
    if flags & 2 != 0 {
        pos += 2;
    }
    if pos > data.len() {
        return Err(bad());
    }
    Ok(Some(pos))
}

fn is_zlib_header(data: &[u8]) -> bool {
    match data {
        [cmf, flg, ..] => {
            cmf & 0x0f == 8
                && cmf >> 4 <= 7
                && flg & 0x20 == 0
                && (u16::from(*cmf) * 256 + u16::from(*flg)) % 31 == 0
        }
        _ => false,
    }
}

/// Inflates one raw deflate stream; returns the plain bytes and how many
/// input bytes the stream took.
fn inflate_raw(data: &[u8], max_plain: usize) -> Result<(Vec<u8>, usize), DeltaError> {
    let mut d = Decompress::new(false);
    let mut plain = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let (in0, out0) = (d.total_in(), d.total_out());
        let rest = data.get(in0 as usize..).unwrap_or(&[]);
        let status = d
            .decompress(rest, &mut buf, FlushDecompress::None)
            .map_err(|e| DeltaError::Corrupt(format!("bad deflate data: {e}")))?;
        let produced = (d.total_out() - out0) as usize;
        if plain.len() + produced > max_plain {
            return Err(DeltaError::TooLarge {
                what: "decompressed file",
                size: (plain.len() + produced) as u64,
                limit: max_plain as u64,
            });
        }
        plain.extend_from_slice(&buf[..produced]);
        match status {
            Status::StreamEnd => return Ok((plain, d.total_in() as usize)),
            _ if produced == 0 && d.total_in() == in0 => {
                return Err(DeltaError::Corrupt("deflate data is truncated".into()))
            }
            _ => {}
        }
    }
}

fn adler32(data: &[u8]) -> u32 {
    const MOD: u32 = 65521;
    let (mut a, mut b) = (1u32, 0u32);
    for chunk in data.chunks(5552) {
        for &x in chunk {
            a += u32::from(x);
            b += a;
        }
        a %= MOD;
        b %= MOD;
    }
    (b << 16) | a
}
