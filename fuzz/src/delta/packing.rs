//! Streams mode: most of a patch is compressed streams, and a mutated
//! compressed stream rarely decompresses (zstd and LZMA2 are C code,
//! uninstrumented, so the fuzzer cannot learn their formats). So a patch
//! whose header says version [`STREAMS_VERSION`] carries its streams
//! uncompressed, and the harness compresses them into the method's real
//! payload layout; the decoders' own parsing (control triples, ops,
//! deflate recipes) then sees every mutation.
//!
//! Streams-mode body: each stream but the last as a u16 LE length and its
//! bytes, the last taking the rest (bsdiff+zstd: control, diff, extra;
//! tar-aware: ops, diff, extra, recipe; zstd-ref: the new layer, framed
//! without the old layer as prefix).

use petrel_delta::{Method, FORMAT_VERSION, HEADER_LEN};
use std::io::{self, Read};

/// The header version that marks a streams-mode input.
pub const STREAMS_VERSION: u16 = 0xffff;

fn stream_count(method: Method) -> usize {
    match method {
        Method::BsdiffZstd => 3,
        Method::TarAware => 4,
        _ => 1,
    }
}

/// The real patch for a streams-mode input, or `None` if `data` is not one.
pub fn pack(data: &[u8]) -> Option<Vec<u8>> {
    let header = data.get(..HEADER_LEN)?;
    if u16::from_le_bytes([header[8], header[9]]) != STREAMS_VERSION {
        return None;
    }
    let method = Method::from_id(header[10]).ok()?;
    let streams = split(&data[HEADER_LEN..], stream_count(method));
    let mut patch = header.to_vec();
    patch[8..10].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    let frames: Vec<Vec<u8>> = streams.iter().map(|s| zstd_frame(s)).collect();
    match method {
        Method::BsdiffZstd => {
            for frame in &frames {
                patch.extend_from_slice(&(frame.len() as u64).to_le_bytes());
            }
        }
        Method::TarAware => {
            for (stream, frame) in streams.iter().zip(&frames) {
                let (codec, window_log, len) = match stream.is_empty() {
                    true => (0, 0, 0),
                    false => (1, window_log(stream.len()), frame.len() as u64),
                };
                patch.extend_from_slice(&[codec, window_log]);
                write_varint(&mut patch, len);
            }
        }
        _ => {}
    }
    for (stream, frame) in streams.iter().zip(&frames) {
        if method != Method::TarAware || !stream.is_empty() {
            patch.extend_from_slice(frame);
        }
    }
    Some(patch)
}

/// The streams-mode input carrying the same streams as `patch`.
pub fn unpack(patch: &[u8], new_layer: &[u8]) -> io::Result<Vec<u8>> {
    let method = Method::from_id(patch[10]).map_err(io::Error::other)?;
    let payload = &patch[HEADER_LEN..];
    let streams = match method {
        Method::BsdiffZstd => {
            let lens: Vec<usize> = (0..3).map(|i| u64_at(payload, i * 8) as usize).collect();
            let mut at = 24;
            let mut out = Vec::new();
            for len in lens {
                out.push(zstd::decode_all(&payload[at..at + len])?);
                at += len;
            }
            out
        }
        Method::TarAware => tar_aware_streams(payload)?,
        _ => vec![new_layer.to_vec()],
    };
    let mut out = patch[..HEADER_LEN].to_vec();
    out[8..10].copy_from_slice(&STREAMS_VERSION.to_le_bytes());
    let last = streams.len() - 1;
    for (i, stream) in streams.iter().enumerate() {
        if i < last {
            let len = u16::try_from(stream.len()).map_err(io::Error::other)?;
            out.extend_from_slice(&len.to_le_bytes());
        }
        out.extend_from_slice(stream);
    }
    Ok(out)
}

fn tar_aware_streams(payload: &[u8]) -> io::Result<Vec<Vec<u8>>> {
    let mut r = payload;
    let mut rows = Vec::new();
    for _ in 0..4 {
        let (codec, log) = (r[0], r[1]);
        r = &r[2..];
        rows.push((codec, log, read_varint(&mut r) as usize));
    }
    let mut out = Vec::new();
    for (codec, log, len) in rows {
        let (frame, rest) = r.split_at(len);
        r = rest;
        out.push(match codec {
            0 => Vec::new(),
            1 => zstd::decode_all(frame)?,
            _ => lzma2(frame, log)?,
        });
    }
    Ok(out)
}

fn lzma2(frame: &[u8], log: u8) -> io::Result<Vec<u8>> {
    let mut opts = liblzma::stream::LzmaOptions::new_preset(0)?;
    opts.dict_size(1 << log);
    let mut filters = liblzma::stream::Filters::new();
    filters.lzma2(&opts);
    let raw = liblzma::stream::Stream::new_raw_decoder(&filters)?;
    let mut out = Vec::new();
    liblzma::read::XzDecoder::new_stream(frame, raw).read_to_end(&mut out)?;
    Ok(out)
}

/// `data` cut into `n` streams as the module doc says; lengths past the
/// end are cut short.
fn split(mut data: &[u8], n: usize) -> Vec<&[u8]> {
    let mut out = Vec::with_capacity(n);
    for _ in 1..n {
        let len = match data {
            [a, b, rest @ ..] => {
                data = rest;
                usize::from(u16::from_le_bytes([*a, *b])).min(rest.len())
            }
            _ => 0,
        };
        let (stream, rest) = data.split_at(len);
        out.push(stream);
        data = rest;
    }
    out.push(data);
    out
}

fn zstd_frame(data: &[u8]) -> Vec<u8> {
    zstd::bulk::compress(data, 1).expect("zstd into memory")
}

/// The tar-aware table's window log for `len` bytes (as its encoder
/// picks it: at least 2^12, at most the smallest stream cap, 2^22).
fn window_log(len: usize) -> u8 {
    let bits = usize::BITS - len.saturating_sub(1).leading_zeros();
    bits.clamp(12, 22) as u8
}

fn write_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn read_varint(r: &mut &[u8]) -> u64 {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = r[0];
        *r = &r[1..];
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            break;
        }
    }
    v
}

fn u64_at(data: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(data[at..at + 8].try_into().expect("8 bytes"))
}
