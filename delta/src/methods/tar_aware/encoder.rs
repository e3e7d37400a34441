//! The controller side of tar-aware: index both tars, match files
//! ([`matching`]), diff the skeletons ([`skeleton`]) and every matched
//! file on its own, then lay all of it out as the decoder will consume it
//! — one op stream with the control steps inline, and one diff, one extra
//! and one recipe stream for every piece together — and compress each
//! stream ([`pack`]).
//!
//! Memory: both layers, the raw streams (about the size of the matched
//! files' contents, mostly zeros) and one bsdiff suffix array per worker,
//! ≈ 16× the largest old file, instead of 16× the whole old layer. The
//! diffs run on every core (at most [`MAX_WORKERS`]), largest first.

use super::super::bsdiff_zstd::control::Control;
use super::super::bsdiff_zstd::split::{Parts, Splitter};
use super::matching::{self, Base};
use super::ops::{Op, OpWriter};
use super::skeleton::{self, Group};
use super::streams::{self, Codec, Stream, Table};
use super::tar_index::{self, Detail, TarIndex};
use super::{gz, zero_runs};
use crate::methods::fast_bsdiff;
use crate::DeltaError;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Most threads the diffs use.
const MAX_WORKERS: usize = 4;

/// The streams before compression, in the order the decoder reads them
/// (the diff stream in its [`zero_runs`] form).
#[derive(Debug, Default)]
pub(crate) struct Raw {
    pub ops: Vec<u8>,
    pub diff: Vec<u8>,
    pub extra: Vec<u8>,
    pub recipe: Vec<u8>,
}

impl Raw {
    pub(crate) fn get(&self, stream: Stream) -> &[u8] {
        match stream {
            Stream::Ops => &self.ops,
            Stream::Diff => &self.diff,
            Stream::Extra => &self.extra,
            Stream::Recipe => &self.recipe,
        }
    }
}

/// How one cut file is made: its op, steps and stream bytes.
pub(crate) struct FileOp {
    pub op: Op,
    /// What a `Gz` op costs the decoder's gzip budget ([`gz::budget`]).
    pub gz_cost: u64,
    pub controls: Vec<Control>,
    pub diff: Vec<u8>,
    pub extra: Vec<u8>,
    pub recipe: Vec<u8>,
}

/// Indexes both tars.
pub(crate) fn index_pair(old: &[u8], new: &[u8]) -> Result<(TarIndex, TarIndex), DeltaError> {
    let old_index = tar_index::index(&mut &old[..], Detail::Full, "old")?;
    let new_index = tar_index::index(&mut &new[..], Detail::Full, "new")?;
    Ok((old_index, new_index))
}

/// One matched new file: its contents and its base's.
struct Cut<'a> {
    new: &'a [u8],
    old: &'a [u8],
    base: u64,
    same: bool,
}

/// The raw streams of `old` → `new`.
pub(crate) fn plan(old: &[u8], new: &[u8]) -> Result<Raw, DeltaError> {
    let (old_index, new_index) = index_pair(old, new)?;
    let bases = matching::choose(&old_index, old, &new_index, new);
    let mut cuts = Vec::new();
    let mut ranges = Vec::new();
    for (file, base) in new_index.files.iter().zip(&bases) {
        let (base, same) = match *base {
            Base::None => continue,
            Base::Same(i) => (i, true),
            Base::Diff(i) => (i, false),
        };
        let new_data = matching::data(new, file);
        ranges.push(file.data_offset as usize..file.data_offset as usize + new_data.len());
        cuts.push(Cut {
            new: new_data,
            old: matching::data(old, &old_index.files[base]),
            base: base as u64,
            same,
        });
    }
    let (new_skel, points) = skeleton::new_skeleton(new, &ranges);
    let old_skel = skeleton::old_skeleton(old, &old_index);
    // Job 0 is the skeleton, job i + 1 the cut file i.
    let mut sizes: Vec<(usize, usize)> = std::iter::once(new_skel.len())
        .chain(cuts.iter().map(|c| if c.same { 0 } else { c.new.len() }))
        .enumerate()
        .collect();
    sizes.sort_by_key(|(i, size)| (std::cmp::Reverse(*size), *i));
    let order: Vec<usize> = sizes.into_iter().map(|(i, _)| i).collect();
    let skeleton_result = Mutex::new(None);
    let file_results: Mutex<Vec<Option<io::Result<FileOp>>>> =
        Mutex::new((0..cuts.len()).map(|_| None).collect());
    run_parallel(&order, |job| {
        if job == 0 {
            let done = diff_skeleton(&old_skel, &new_skel, &points);
            *lock(&skeleton_result) = Some(done);
        } else {
            let c = &cuts[job - 1];
            let done = diff_file(c, true);
            lock(&file_results)[job - 1] = Some(done);
        }
    });
    let skeleton = skeleton_result
        .into_inner()
        .unwrap_or_else(|p| p.into_inner());
    let (groups, parts) = take(skeleton).map_err(encode_error)?;
    let files = file_results
        .into_inner()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .into_iter()
        .map(take)
        .collect::<io::Result<Vec<_>>>()
        .map_err(encode_error)?;
    let files =
        within_gz_budget(files, &cuts, gz::budget(new.len() as u64)).map_err(encode_error)?;
    Ok(lay_out(&groups, &parts, files))
}

fn encode_error(source: io::Error) -> DeltaError {
    DeltaError::Encode {
        method: crate::Method::TarAware,
        error: source,
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn take<T>(slot: Option<io::Result<T>>) -> io::Result<T> {
    slot.unwrap_or_else(|| Err(invalid("a diff job did not run")))
}

/// Runs `job` for every index in `order` on up to [`MAX_WORKERS`] threads.
fn run_parallel(order: &[usize], job: impl Fn(usize) + Sync) {
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, MAX_WORKERS)
        .min(order.len().max(1));
    let next = AtomicUsize::new(0);
    let work = || loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        match order.get(i) {
            Some(j) => job(*j),
            None => break,
        }
    };
    std::thread::scope(|scope| {
        for _ in 1..workers {
            scope.spawn(work);
        }
        work();
    });
}

/// Interleaves skeleton groups and file ops into the raw streams.
fn lay_out(groups: &[Group], parts: &Parts, files: Vec<FileOp>) -> Raw {
    let mut raw = Raw::default();
    let mut writer = OpWriter::default();
    let mut files = files.into_iter();
    for group in groups {
        if group.len > 0 {
            writer.write(Op::Skeleton { len: group.len }, &mut raw.ops);
            group.controls.iter().for_each(|c| c.write_to(&mut raw.ops));
            raw.diff.extend_from_slice(&parts.diff[group.diff.clone()]);
            raw.extra
                .extend_from_slice(&parts.extra[group.extra.clone()]);
        }
        if let Some(f) = files.next() {
            writer.write(f.op, &mut raw.ops);
            f.controls.iter().for_each(|c| c.write_to(&mut raw.ops));
            raw.diff.extend_from_slice(&f.diff);
            raw.extra.extend_from_slice(&f.extra);
            raw.recipe.extend_from_slice(&f.recipe);
        }
    }
    writer.write(Op::End, &mut raw.ops);
    // One pass over the whole stream: coding each piece's diff bytes on
    // its own would split runs at every file and add a token per piece
    // (measured: +4.7% on tzdata's 1,800 pieces).
    raw.diff = zero_runs::encode(&raw.diff);
    raw
}

/// bsdiff of the skeletons, cut at the files' places.
fn diff_skeleton(old: &[u8], new: &[u8], points: &[u64]) -> io::Result<(Vec<Group>, Parts)> {
    let parts = bsdiff(old, new)?;
    let controls = controls_of(&parts)?;
    let groups = skeleton::cut(&controls, points, new.len() as u64)?;
    Ok((groups, parts))
}

/// The op for one matched file.
fn diff_file(c: &Cut<'_>, gz_allowed: bool) -> io::Result<FileOp> {
    if c.same {
        return Ok(FileOp {
            op: Op::Same { old: c.base },
            gz_cost: 0,
            controls: Vec::new(),
            diff: Vec::new(),
            extra: Vec::new(),
            recipe: Vec::new(),
        });
    }
    if gz_allowed {
        if let Some(op) = gz::encode(c.base, c.old, c.new)? {
            return Ok(op);
        }
    }
    let parts = bsdiff(c.old, c.new)?;
    Ok(FileOp {
        op: Op::Bsdiff {
            old: c.base,
            new_len: c.new.len() as u64,
        },
        gz_cost: 0,
        controls: folded(&parts)?,
        diff: parts.diff,
        extra: parts.extra,
        recipe: Vec::new(),
    })
}

/// The decoder refuses a patch whose `Gz` ops together pass its gzip
/// budget; in the (pathological) case the files would, the `Gz` ops past
/// it, in op order, become plain byte diffs. Deterministic, whatever order
/// the workers finished in.
fn within_gz_budget(files: Vec<FileOp>, cuts: &[Cut<'_>], budget: u64) -> io::Result<Vec<FileOp>> {
    let mut left = budget;
    let mut out = Vec::with_capacity(files.len());
    for (file, cut) in files.into_iter().zip(cuts) {
        match left.checked_sub(file.gz_cost) {
            Some(rest) => {
                left = rest;
                out.push(file);
            }
            None => out.push(diff_file(cut, false)?),
        }
    }
    Ok(out)
}

/// bsdiff ([`fast_bsdiff`]) split into its three parts.
pub(crate) fn bsdiff(old: &[u8], new: &[u8]) -> io::Result<Parts> {
    let mut split = Splitter::default();
    fast_bsdiff::diff(old, new, &mut split)?;
    split.finish()
}

/// The control steps of `parts`, as values.
fn controls_of(parts: &Parts) -> io::Result<Vec<Control>> {
    let mut r = &parts.control[..];
    let mut out = Vec::new();
    while let Some(c) = Control::read(&mut r).map_err(|e| invalid(&e.to_string()))? {
        out.push(c);
    }
    Ok(out)
}

/// The steps of a file's diff, those writing nothing folded away.
pub(crate) fn folded(parts: &Parts) -> io::Result<Vec<Control>> {
    let mut out = Vec::new();
    for c in controls_of(parts)? {
        skeleton::fold(&mut out, c)?;
    }
    Ok(out)
}

/// The payload: table, then each stream compressed with each of
/// `codec_for`'s codecs, keeping the smallest (every trial a job of its
/// own, largest stream first).
pub(crate) fn pack(
    raw: &Raw,
    level: i32,
    codec_for: impl Fn(Stream) -> Vec<Codec>,
) -> io::Result<Vec<u8>> {
    // A stream that will not compress is stored with zstd level 1 alone.
    let mut fast = [false; Stream::ALL.len()];
    for s in Stream::ALL {
        fast[s as usize] = super::super::incompressible::incompressible(raw.get(s))?;
    }
    let trials: Vec<(Stream, Codec)> = Stream::ALL
        .iter()
        .flat_map(|s| match fast[*s as usize] {
            true => vec![(*s, Codec::Zstd)],
            false => codec_for(*s).into_iter().map(|c| (*s, c)).collect(),
        })
        .collect();
    type Slot = Mutex<Option<io::Result<(streams::Entry, Vec<u8>)>>>;
    let slots: Vec<Slot> = trials.iter().map(|_| Mutex::new(None)).collect();
    let mut order: Vec<usize> = (0..trials.len()).collect();
    order.sort_by_key(|i| std::cmp::Reverse(raw.get(trials[*i].0).len()));
    run_parallel(&order, |i| {
        let (stream, codec) = trials[i];
        let level = if fast[stream as usize] { 1 } else { level };
        let done = streams::compress(stream, codec, raw.get(stream), level);
        *lock(&slots[i]) = Some(done);
    });
    let mut best: Vec<Option<(streams::Entry, Vec<u8>)>> =
        Stream::ALL.iter().map(|_| None).collect();
    for ((stream, _), slot) in trials.iter().zip(slots) {
        let done = take(slot.into_inner().unwrap_or_else(|p| p.into_inner()))?;
        let b = &mut best[*stream as usize];
        if !matches!(b, Some(kept) if kept.1.len() <= done.1.len()) {
            *b = Some(done);
        }
    }
    let mut entries = Vec::with_capacity(Stream::ALL.len());
    let mut payload_streams = Vec::with_capacity(Stream::ALL.len());
    for b in best {
        let (entry, body) = b.ok_or_else(|| invalid("a stream has no codec"))?;
        entries.push(entry);
        payload_streams.push(body);
    }
    let entries: [streams::Entry; 4] = entries
        .try_into()
        .map_err(|_| invalid("four streams expected"))?;
    let mut payload = Table { entries, len: 0 }.to_bytes();
    payload_streams
        .iter()
        .for_each(|b| payload.extend_from_slice(b));
    Ok(payload)
}

fn invalid(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_string())
}
