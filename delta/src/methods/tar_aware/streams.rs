//! The tar-aware payload layout: a table, then four compressed streams that
//! the decoder reads side by side, each through its own handle on the
//! patch file ([`PatchFile::section`]) and its own decompressor.
//!
//! Table, per stream in [`Stream::ALL`] order: codec (u8: 0 empty, 1 zstd,
//! 2 raw LZMA2), window log (u8: the zstd window or LZMA2 dictionary is
//! 2^log), compressed length (LEB128). The streams follow in the same
//! order and end exactly at the end of the payload.
//!
//! The table exists so that the decoder can refuse, before it allocates
//! anything, a window over its cap ([`Stream::max_window_log`]) or lengths
//! that do not add up to the file, and so that each stream can use the
//! codec that compresses it best (see [`super::encoder`] for the choice).

use super::super::bsdiff_zstd::control::{read_varint, write_varint};
use crate::error::DeltaError;
use crate::input::PatchFile;
use std::fs::File;
use std::io::{self, BufReader, Read, Take, Write};

/// The payload's streams, in table order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stream {
    /// Ops and their control triples.
    Ops,
    /// bsdiff diff bytes (new − old), mostly zeros.
    Diff,
    /// bsdiff extra bytes: new data.
    Extra,
    /// Deflate recipes of `Gz` ops.
    Recipe,
}

impl Stream {
    pub(crate) const ALL: [Stream; 4] = [Stream::Ops, Stream::Diff, Stream::Extra, Stream::Recipe];

    /// log2 of the largest window the decoder accepts for the stream (the
    /// encoder sizes each window to its stream, up to this): 4 + 8 + 8 + 4
    /// MiB at most, the bulk of the decoder's memory bound.
    pub(crate) fn max_window_log(self) -> u32 {
        match self {
            Stream::Ops | Stream::Recipe => 22,
            Stream::Diff | Stream::Extra => 23,
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Stream::Ops => "ops",
            Stream::Diff => "diff",
            Stream::Extra => "extra",
            Stream::Recipe => "recipe",
        }
    }
}

/// The smallest window either codec uses (LZMA2's minimum dictionary).
const MIN_WINDOW_LOG: u32 = 12;
/// Longest table: per stream two bytes and a 10-byte varint.
const MAX_TABLE: u64 = 4 * 12;

/// How a stream is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Codec {
    /// No bytes at all (an empty stream costs no frame).
    Empty = 0,
    Zstd = 1,
    Lzma2 = 2,
}

impl Codec {
    fn from_byte(b: u8) -> Result<Codec, DeltaError> {
        match b {
            0 => Ok(Codec::Empty),
            1 => Ok(Codec::Zstd),
            2 => Ok(Codec::Lzma2),
            _ => Err(DeltaError::Corrupt(format!("unknown stream codec {b}"))),
        }
    }
}

/// One table row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Entry {
    pub codec: Codec,
    pub window_log: u32,
    pub len: u64,
}

/// The window log for `len` bytes of `stream`: the smallest power of two
/// holding them, within the codecs' minimum and the decoder's cap.
pub(crate) fn window_log_for(stream: Stream, len: usize) -> u32 {
    let bits = usize::BITS - len.saturating_sub(1).leading_zeros();
    bits.clamp(MIN_WINDOW_LOG, stream.max_window_log())
}

/// Compresses `data` with `codec` (`level` is zstd's; LZMA2 uses `-9e`).
pub(crate) fn compress(
    stream: Stream,
    codec: Codec,
    data: &[u8],
    level: i32,
) -> io::Result<(Entry, Vec<u8>)> {
    let window_log = window_log_for(stream, data.len());
    let bytes = match codec {
        _ if data.is_empty() => Vec::new(),
        Codec::Empty => return Err(io::Error::other("an empty codec for a non-empty stream")),
        Codec::Zstd => {
            let mut z = zstd::stream::write::Encoder::new(Vec::new(), level)?;
            z.window_log(window_log)?;
            z.long_distance_matching(true)?;
            z.set_pledged_src_size(Some(data.len() as u64))?;
            // The whole layer's sha256 is checked; zstd's own is redundant.
            z.include_checksum(false)?;
            z.write_all(data)?;
            z.finish()?
        }
        Codec::Lzma2 => {
            let filters = lzma2_filters(window_log, true)?;
            let raw = liblzma::stream::Stream::new_raw_encoder(&filters)?;
            let mut w = liblzma::write::XzEncoder::new_stream(Vec::new(), raw);
            w.write_all(data)?;
            w.finish()?
        }
    };
    let codec = if data.is_empty() { Codec::Empty } else { codec };
    let entry = Entry {
        codec,
        window_log,
        len: bytes.len() as u64,
    };
    Ok((entry, bytes))
}

/// LZMA2 with a 2^`window_log` dictionary. The encoder's other settings
/// are xz's `-9e` (the decoder does not need them): on the corpus's diff
/// streams 4–23% smaller than `-9`, mostly from its longer nice length,
/// for about twice the time.
fn lzma2_filters(window_log: u32, encoder: bool) -> io::Result<liblzma::stream::Filters> {
    let preset = if encoder {
        9 | liblzma::stream::PRESET_EXTREME
    } else {
        0
    };
    let mut opts = liblzma::stream::LzmaOptions::new_preset(preset)?;
    opts.dict_size(1 << window_log);
    let mut filters = liblzma::stream::Filters::new();
    filters.lzma2(&opts);
    Ok(filters)
}

/// The table of the four streams.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Table {
    pub entries: [Entry; 4],
    /// Bytes of the table itself.
    pub len: u64,
}

impl Table {
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for e in &self.entries {
            out.push(e.codec as u8);
            out.push(e.window_log as u8);
            write_varint(&mut out, e.len);
        }
        out
    }

    /// Reads the table and checks it before any stream is opened: known
    /// codecs, windows within the caps, lengths that end at the payload's end.
    pub(crate) fn read(patch: &PatchFile) -> Result<Table, DeltaError> {
        let mut raw = Vec::new();
        patch
            .section(0, patch.payload_len.min(MAX_TABLE))?
            .read_to_end(&mut raw)
            .map_err(DeltaError::from_patch_read)?;
        let mut r = &raw[..];
        let mut entries = [Entry {
            codec: Codec::Empty,
            window_log: 0,
            len: 0,
        }; 4];
        for (stream, entry) in Stream::ALL.into_iter().zip(entries.iter_mut()) {
            let mut two = [0u8; 2];
            r.read_exact(&mut two).map_err(|_| DeltaError::Truncated)?;
            let codec = Codec::from_byte(two[0])?;
            let window_log = u32::from(two[1]);
            let len = read_varint(&mut r)?.ok_or(DeltaError::Truncated)?;
            if window_log > stream.max_window_log() {
                return Err(DeltaError::TooLarge {
                    what: "tar-aware stream window",
                    size: 1u64 << window_log.min(63),
                    limit: 1 << stream.max_window_log(),
                });
            }
            if window_log < MIN_WINDOW_LOG && codec != Codec::Empty {
                return Err(DeltaError::Corrupt(format!(
                    "the {} stream's window log {window_log} is below {MIN_WINDOW_LOG}",
                    stream.name()
                )));
            }
            if (codec == Codec::Empty) != (len == 0) {
                return Err(DeltaError::Corrupt(format!(
                    "the {} stream's codec does not fit its length {len}",
                    stream.name()
                )));
            }
            *entry = Entry {
                codec,
                window_log,
                len,
            };
        }
        let table = Table {
            entries,
            len: (raw.len() - r.len()) as u64,
        };
        let total = table
            .entries
            .iter()
            .try_fold(table.len, |sum, e| sum.checked_add(e.len))
            .ok_or_else(|| DeltaError::Corrupt("stream lengths overflow".into()))?;
        if total > patch.payload_len {
            return Err(DeltaError::Truncated);
        }
        if total < patch.payload_len {
            return Err(DeltaError::Corrupt(format!(
                "{} bytes follow the last stream",
                patch.payload_len - total
            )));
        }
        Ok(table)
    }

    fn offset(&self, stream: Stream) -> u64 {
        // Cannot overflow: `read` summed every length.
        self.len
            + self.entries[..stream as usize]
                .iter()
                .map(|e| e.len)
                .sum::<u64>()
    }
}

/// A decompressing reader over one stream; it stays at its end once there.
pub(crate) struct Reader {
    inner: Box<dyn Read>,
    ended: bool,
}

type Section = BufReader<Take<File>>;

/// Opens `stream` with its decompressor, window capped as the table says.
pub(crate) fn open(patch: &PatchFile, table: &Table, stream: Stream) -> Result<Reader, DeltaError> {
    let entry = table.entries[stream as usize];
    let section = || -> Result<Section, DeltaError> {
        Ok(BufReader::new(
            patch.section(table.offset(stream), entry.len)?,
        ))
    };
    let inner: Box<dyn Read> = match entry.codec {
        Codec::Empty => Box::new(io::empty()),
        Codec::Zstd => {
            let mut z = zstd::stream::read::Decoder::with_buffer(section()?)
                .map_err(DeltaError::ReadPatch)?;
            z.window_log_max(entry.window_log)
                .map_err(DeltaError::ReadPatch)?;
            Box::new(z)
        }
        Codec::Lzma2 => {
            let filters = lzma2_filters(entry.window_log, false).map_err(DeltaError::ReadPatch)?;
            let raw = liblzma::stream::Stream::new_raw_decoder(&filters)
                .map_err(|e| DeltaError::ReadPatch(e.into()))?;
            Box::new(liblzma::bufread::XzDecoder::new_stream(section()?, raw))
        }
    };
    Ok(Reader {
        inner,
        ended: false,
    })
}

/// Fails unless `r`, the decoded `stream`, has nothing left: every byte
/// of every stream must be used by some op.
pub(crate) fn expect_end(r: &mut impl Read, stream: Stream) -> Result<(), DeltaError> {
    let mut probe = [0u8; 1];
    loop {
        return match r.read(&mut probe) {
            Ok(0) => Ok(()),
            Ok(_) => Err(DeltaError::Corrupt(format!(
                "the {} stream holds bytes no op uses",
                stream.name()
            ))),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => Err(DeltaError::from_patch_read(e)),
        };
    }
}

impl Read for Reader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.ended || buf.is_empty() {
            return Ok(0);
        }
        loop {
            match self.inner.read(buf) {
                Ok(0) => {
                    self.ended = true;
                    return Ok(0);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                other => return other,
            }
        }
    }
}
