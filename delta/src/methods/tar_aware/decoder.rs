//! The device side of tar-aware: runs the op program ([`super::ops`]),
//! writing the new tar to the sink piece by piece — skeleton bytes made by
//! controls against the old skeleton, old files copied or patched, gzip
//! members rebuilt — reading old bytes by offset from the old layer.
//!
//! Memory: the four stream windows (capped by the table, see
//! [`Stream::max_window_log`]), two 64 KiB buffers, 16 bytes per old file
//! for the index, and while a `Gz` op runs its members, each capped at
//! [`super::GZ_MAX`]. Nothing is sized by an untrusted length before that
//! length is checked against a cap.

use super::gz;
use super::old_view::{OldMap, Range, View};
use super::ops::{Op, OpReader};
use super::steps::{self, Budget, Buffers, Inputs, OldBytes, Output};
use super::streams::{self, Reader, Stream, Table};
use super::zero_runs::Expand;
use crate::error::DeltaError;
use crate::input::{OldLayer, PatchFile};
use crate::old_reader::{OldReader, OldReads};
use crate::sink::Sink;
use std::io::{BufReader, Write};

/// Buffer of the ops stream, read a varint byte at a time.
const OPS_BUF: usize = 4 * 1024;

/// The open streams of a payload.
pub(crate) struct Streams {
    pub ops: BufReader<Reader>,
    pub diff: Expand<BufReader<Reader>>,
    pub extra: Reader,
    pub recipe: Reader,
}

impl Streams {
    fn open(patch: &PatchFile, table: &Table) -> Result<Streams, DeltaError> {
        Ok(Streams {
            ops: BufReader::with_capacity(OPS_BUF, streams::open(patch, table, Stream::Ops)?),
            diff: Expand::new(BufReader::with_capacity(
                OPS_BUF,
                streams::open(patch, table, Stream::Diff)?,
            )),
            extra: streams::open(patch, table, Stream::Extra)?,
            recipe: streams::open(patch, table, Stream::Recipe)?,
        })
    }

    pub(crate) fn inputs(
        &mut self,
    ) -> Inputs<'_, BufReader<Reader>, Expand<BufReader<Reader>>, Reader> {
        Inputs {
            controls: &mut self.ops,
            diff: &mut self.diff,
            extra: &mut self.extra,
        }
    }
}

/// Caps that no honest patch for this output reaches.
pub(crate) struct Caps {
    pub steps: Budget,
    /// Bytes `Gz` ops may still inflate and rebuild (see [`gz::budget`]).
    pub gz_left: u64,
}

/// Applies a tar-aware payload to the old layer, streaming into `sink`.
pub(crate) fn apply<W: Write>(
    old: &OldLayer,
    patch: &PatchFile,
    sink: &mut Sink<W>,
) -> Result<OldReads, DeltaError> {
    let table = Table::read(patch)?;
    let map = OldMap::open(old)?;
    let mut streams = Streams::open(patch, &table)?;
    let mut reader = OldReader::open(old, sink.limit())?;
    let gz_left = gz::budget(sink.limit());
    let mut caps = Caps {
        steps: Budget::new(sink.limit().saturating_mul(2).saturating_add(16)),
        gz_left,
    };
    let mut bufs = Buffers::default();
    let mut ops = OpReader::new(map.files.len() as u64);
    let mut skeleton_pos = 0u64;
    loop {
        let op = ops.read(&mut streams.ops)?;
        if let Some(len) = output_len(&op, &map)? {
            sink.reserve(len)?;
        }
        match op {
            Op::End => break,
            Op::Skeleton { len } => {
                let mut view = View::new(&mut reader, &map.skeleton, map.skeleton_len);
                view.seek_by(skeleton_pos as i64)?;
                steps::run(
                    len,
                    &mut streams.inputs(),
                    &mut view,
                    sink,
                    &mut caps.steps,
                    &mut bufs,
                )?;
                skeleton_pos = view.position();
            }
            Op::Same { old } => {
                let range = map.files[old as usize];
                let ranges = [(0, range)];
                let mut view = View::new(&mut reader, &ranges, range.len);
                copy_old(&mut view, range.len, sink, &mut bufs)?;
            }
            Op::Bsdiff { old, new_len } => {
                let range = map.files[old as usize];
                let ranges = [(0, range)];
                let mut view = View::new(&mut reader, &ranges, range.len);
                steps::run(
                    new_len,
                    &mut streams.inputs(),
                    &mut view,
                    sink,
                    &mut caps.steps,
                    &mut bufs,
                )?;
            }
            Op::Gz { old, .. } => {
                let base = read_file(&mut reader, map.files[old as usize])?;
                let member = gz::decode(&op, base, &mut streams, &mut caps, &mut bufs)?;
                sink.put(&member)?;
            }
        }
    }
    streams::expect_end(&mut streams.ops, Stream::Ops)?;
    streams::expect_end(&mut streams.diff, Stream::Diff)?;
    streams::expect_end(&mut streams.extra, Stream::Extra)?;
    streams::expect_end(&mut streams.recipe, Stream::Recipe)?;
    Ok(reader.reads())
}

/// Bytes `op` writes, checked before it runs; every op but `End` writes at
/// least one, so the sink's cap also bounds the number of ops.
fn output_len(op: &Op, map: &OldMap) -> Result<Option<u64>, DeltaError> {
    let len = match *op {
        Op::End => return Ok(None),
        Op::Skeleton { len } => len,
        Op::Same { old } => map.files[old as usize].len,
        Op::Bsdiff { new_len, .. } | Op::Gz { new_len, .. } => new_len,
    };
    if len == 0 {
        return Err(DeltaError::Corrupt(format!("{op:?} writes nothing")));
    }
    Ok(Some(len))
}

/// Copies `len` bytes of `old` to the sink.
fn copy_old<W: Write>(
    old: &mut View<'_>,
    mut len: u64,
    sink: &mut Sink<W>,
    bufs: &mut Buffers,
) -> Result<(), DeltaError> {
    let buf = bufs.old_buf();
    while len > 0 {
        let n = steps::chunk_len(len);
        old.read(&mut buf[..n])?;
        sink.put(&buf[..n])?;
        len -= n as u64;
    }
    Ok(())
}

/// The whole contents of one old file, if within the gzip cap. Not charged
/// to the old-layer read budget: the gzip budget ([`gz::budget`]) charges
/// every `Gz` op for its old member as read.
fn read_file(reader: &mut OldReader, range: Range) -> Result<Vec<u8>, DeltaError> {
    if range.len > super::GZ_MAX {
        return Err(DeltaError::TooLarge {
            what: "old gzip member of a Gz op",
            size: range.len,
            limit: super::GZ_MAX,
        });
    }
    let mut out = vec![0u8; range.len as usize];
    reader.read_uncharged(range.offset, &mut out)?;
    Ok(out)
}
