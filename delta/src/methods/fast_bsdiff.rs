//! Our bsdiff-format differ, for the per-file diffs of the tar-aware
//! method: it writes the same patch stream as the `bsdiff` crate (a
//! 24-byte step header of three sign-magnitude integers — diff length,
//! extra length, old seek — then the diff bytes, then the extra bytes), so
//! the existing splitter and streaming applier take it unchanged.
//!
//! Why not the crate: its suffix sort (qsufsort in two `isize` arrays, 16
//! bytes per old byte) was most of the method's encode time. Here the
//! suffix array comes from `divsufsort` (one `i32` array, 4 bytes per old
//! byte, several times faster), and the matcher is ours, following
//! Percival's published idea ("Naïve differences of executable code",
//! 2003): find exact matches through the suffix array, switch alignment
//! only when an exact match beats the current alignment by a margin, and
//! grow each aligned region forward and backward while at least half its
//! bytes agree, so that shifted code becomes mostly-zero diff bytes.

use super::gram_filter::GramFilter;
use std::io::{self, Write};

/// An exact match must beat the current alignment by this many agreeing
/// bytes before the alignment switches to it (Percival's margin).
const SWITCH_MARGIN: usize = 8;
// Skipping searches where no gram matches is exact only if a switch needs
// a match at least one gram long.
const _: () = assert!(super::gram_filter::GRAM <= SWITCH_MARGIN);

/// Writes a bsdiff patch stream of `old` → `new` to `out`.
///
/// An old input above [`WINDOWED_ABOVE`] is diffed in windows (see
/// [`Windows`]), so the encoder's memory stays bounded whatever the layer.
pub(crate) fn diff(old: &[u8], new: &[u8], out: &mut impl Write) -> io::Result<()> {
    diff_in(old, new, out, Windows::DEFAULT)
}

/// Old inputs above this are diffed in windows.
pub(crate) const WINDOWED_ABOVE: usize = 32 << 20;

/// How a large pair is cut: each stretch of `new_len` new bytes is diffed
/// against the old bytes around where it sits in proportion (`margin`
/// before and after), so the suffix array (4 bytes per old byte) and the
/// gram filter cover `new_len + 2 × margin` old bytes, not the whole old
/// input. A 100 MB pair encoded whole peaked at 867 MB; content that
/// moved further than the margin is sent as new bytes instead.
#[derive(Debug, Clone, Copy)]
struct Windows {
    above: usize,
    new_len: usize,
    margin: usize,
}

impl Windows {
    const DEFAULT: Windows = Windows {
        above: WINDOWED_ABOVE,
        new_len: 16 << 20,
        margin: 8 << 20,
    };
}

fn diff_in(old: &[u8], new: &[u8], out: &mut impl Write, w: Windows) -> io::Result<()> {
    if new.is_empty() {
        // nothing to find in old: one empty step, no index
        return put_step(out, 0, 0, 0);
    }
    if old.len() <= w.above {
        if i32::try_from(old.len()).is_err() {
            return bsdiff::diff(old, new, out);
        }
        return diff_from(old, new, 0, out).map(drop);
    }
    // the old position the stream's steps have reached
    let mut cursor = 0usize;
    let mut start = 0usize;
    while start < new.len() {
        let end = (start + w.new_len).min(new.len());
        let centre = (start as u128 * old.len() as u128 / new.len() as u128) as usize;
        let from = centre.saturating_sub(w.margin);
        let to = (centre + (end - start) + w.margin).min(old.len());
        // a step of no bytes moves the old position to the window
        put_step(out, 0, 0, centre as i64 - cursor as i64)?;
        let reached = diff_from(&old[from..to], &new[start..end], centre - from, out)?;
        cursor = from + reached;
        start = end;
    }
    Ok(())
}

/// Diffs `new` against `old`, aligned at first with `old[start..]`;
/// returns the old position the last step reached.
fn diff_from(old: &[u8], new: &[u8], start: usize, out: &mut impl Write) -> io::Result<usize> {
    let index = SuffixIndex::new(old);
    let mut region = Region { new: 0, old: start };
    let mut from = 0;
    while let Some(m) = next_switch(&index, new, from, region.offset()) {
        region = emit_until(old, new, region, Some(m), out)?;
        from = m.new + m.len;
    }
    emit_until(old, new, region, None, out).map(|r| r.old)
}

/// One step's header: diff length, extra length, old seek.
fn put_step(out: &mut impl Write, diff: usize, extra: usize, seek: i64) -> io::Result<()> {
    let mut header = [0u8; 24];
    put_int(&mut header[0..8], diff as i64);
    put_int(&mut header[8..16], extra as i64);
    put_int(&mut header[16..24], seek);
    out.write_all(&header)
}

/// Where the current alignment starts: new[new..] is diffed against
/// old[old..] until the next switch.
#[derive(Debug, Clone, Copy)]
struct Region {
    new: usize,
    old: usize,
}

impl Region {
    fn offset(self) -> isize {
        self.old as isize - self.new as isize
    }
}

/// An exact match: new[new..new + len] == old[old..old + len].
#[derive(Debug, Clone, Copy)]
struct Match {
    new: usize,
    old: usize,
    len: usize,
}

/// The sorted suffixes of the old bytes, and which 8-byte strings occur.
struct SuffixIndex<'a> {
    old: &'a [u8],
    sa: Vec<i32>,
    grams: GramFilter,
}

impl<'a> SuffixIndex<'a> {
    fn new(old: &'a [u8]) -> SuffixIndex<'a> {
        let mut sa = vec![0i32; old.len()];
        divsufsort::sort_in_place(old, &mut sa);
        let grams = GramFilter::new(old);
        SuffixIndex { old, sa, grams }
    }

    /// The longest prefix of `needle` found in old: (position, length).
    fn longest(&self, needle: &[u8]) -> (usize, usize) {
        if self.sa.is_empty() || needle.is_empty() {
            return (0, 0);
        }
        // The suffixes sharing the longest prefix with `needle` sit next
        // to where it would be inserted.
        let at = self
            .sa
            .partition_point(|&s| &self.old[s as usize..] < needle);
        let candidates = [at.checked_sub(1), (at < self.sa.len()).then_some(at)];
        candidates
            .into_iter()
            .flatten()
            .map(|i| {
                let pos = self.sa[i] as usize;
                (pos, common_prefix(&self.old[pos..], needle))
            })
            .max_by_key(|&(_, len)| len)
            .unwrap_or((0, 0))
    }
}

fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// Whether new[i] agrees with old under `offset`.
fn agrees(old: &[u8], new: &[u8], i: usize, offset: isize) -> bool {
    let j = i as isize + offset;
    j >= 0 && (j as usize) < old.len() && old[j as usize] == new[i]
}

/// The next exact match, at or after `from`, worth switching the alignment
/// to; `None` when the current alignment should run to the end.
///
/// The agreement of the current alignment over the match's span is kept in
/// a sliding window (`agree` counts agreeing bytes in `start..end`), so
/// each new byte is compared once however the matches overlap.
fn next_switch(index: &SuffixIndex, new: &[u8], from: usize, offset: isize) -> Option<Match> {
    let old = index.old;
    let (mut start, mut end, mut agree) = (from, from, 0usize);
    while start < new.len() {
        // No 8-byte match can switch the alignment (the margin is 8):
        // skip the search where the old layer has no such 8 bytes.
        let (pos, len) = if index.grams.may_contain(&new[start..]) {
            index.longest(&new[start..])
        } else {
            (0, 0)
        };
        while end < start + len {
            agree += usize::from(agrees(old, new, end, offset));
            end += 1;
        }
        if len > 0 && agree == len {
            // The current alignment already matches all of it: jump past.
            let next = start + len;
            (start, end, agree) = (next, next, 0);
            continue;
        }
        if len >= agree + SWITCH_MARGIN {
            return Some(Match {
                new: start,
                old: pos,
                len,
            });
        }
        if end > start {
            agree -= usize::from(agrees(old, new, start, offset));
        } else {
            end = start + 1;
        }
        start += 1;
    }
    None
}

/// Emits the step covering `region` up to the switch `to` (or the end of
/// `new`), and returns the region the switch starts.
fn emit_until(
    old: &[u8],
    new: &[u8],
    region: Region,
    to: Option<Match>,
    out: &mut impl Write,
) -> io::Result<Region> {
    let stop = to.map_or(new.len(), |m| m.new);
    let mut fwd = grow_forward(old, new, region, stop);
    let mut back = to.map_or(0, |m| grow_backward(old, new, region.new, m));
    if region.new + fwd > stop - back {
        let overlap = region.new + fwd - (stop - back);
        let keep = split_overlap(old, new, region, fwd, to, back, overlap);
        fwd = fwd - overlap + keep;
        back -= keep;
    }
    let next = match to {
        Some(m) => Region {
            new: m.new - back,
            old: m.old - back,
        },
        None => Region {
            new: new.len(),
            old: region.old + fwd,
        },
    };
    let extra = &new[region.new + fwd..next.new];
    let seek = next.old as i64 - (region.old + fwd) as i64;
    put_step(out, fwd, extra.len(), seek)?;
    let diff: Vec<u8> = new[region.new..region.new + fwd]
        .iter()
        .zip(&old[region.old..region.old + fwd])
        .map(|(n, o)| n.wrapping_sub(*o))
        .collect();
    out.write_all(&diff)?;
    out.write_all(extra)?;
    Ok(next)
}

/// How far the alignment of `region` is worth extending towards `stop`:
/// the length whose prefix has the best (agreeing × 2 − length) score.
fn grow_forward(old: &[u8], new: &[u8], region: Region, stop: usize) -> usize {
    let room = (stop - region.new).min(old.len().saturating_sub(region.old));
    let (mut score, mut best, mut best_len) = (0i64, 0i64, 0usize);
    for i in 0..room {
        score += if old[region.old + i] == new[region.new + i] {
            1
        } else {
            -1
        };
        if score > best {
            (best, best_len) = (score, i + 1);
        }
    }
    best_len
}

/// How far the match `m` is worth extending backwards (not before
/// `floor` in new, nor before the start of old), scored the same way.
fn grow_backward(old: &[u8], new: &[u8], floor: usize, m: Match) -> usize {
    let room = (m.new - floor).min(m.old);
    let (mut score, mut best, mut best_len) = (0i64, 0i64, 0usize);
    for i in 1..=room {
        score += if old[m.old - i] == new[m.new - i] {
            1
        } else {
            -1
        };
        if score > best {
            (best, best_len) = (score, i);
        }
    }
    best_len
}

/// When the forward and backward extensions overlap, the number of the
/// overlapping bytes the forward one keeps: the split where the forward
/// alignment agrees most and the backward one least.
fn split_overlap(
    old: &[u8],
    new: &[u8],
    region: Region,
    fwd: usize,
    to: Option<Match>,
    back: usize,
    overlap: usize,
) -> usize {
    let Some(m) = to else {
        return overlap;
    };
    let first = region.new + fwd - overlap;
    let (mut score, mut best, mut keep) = (0i64, 0i64, 0usize);
    for i in 0..overlap {
        let n = first + i;
        let fwd_old = region.old + (n - region.new);
        let back_old = m.old - back + (n - (m.new - back));
        score += i64::from(new[n] == old[fwd_old]) - i64::from(new[n] == old[back_old]);
        if score > best {
            (best, keep) = (score, i + 1);
        }
    }
    keep
}

/// bsdiff's integer encoding: magnitude little-endian, sign in the top bit.
fn put_int(buf: &mut [u8], x: i64) {
    let v = x.unsigned_abs() | if x < 0 { 1 << 63 } else { 0 };
    buf.copy_from_slice(&v.to_le_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata::{edited, layer};

    fn round_trip(old: &[u8], new: &[u8]) -> usize {
        let mut patch = Vec::new();
        diff(old, new, &mut patch).unwrap();
        let mut out = Vec::new();
        bsdiff::patch(old, &mut patch.as_slice(), &mut out).unwrap();
        assert!(out == new, "{} → {} bytes", old.len(), new.len());
        patch.len()
    }

    #[test]
    fn a_large_pair_diffed_in_windows_applies_and_stays_small() {
        let w = Windows {
            above: 64 << 10,
            new_len: 32 << 10,
            margin: 16 << 10,
        };
        let old = layer(11, 300_000);
        let mut shifted = old[..1000].to_vec();
        shifted.extend_from_slice(b"an insertion that shifts what follows");
        shifted.extend_from_slice(&old[1000..]);
        let cases = [
            edited(&old, 12, 30),
            edited(&shifted, 13, 30),
            old[..100_000].to_vec(),
            [old.clone(), old[..50_000].to_vec()].concat(),
            layer(14, 200_000),
        ];
        for new in cases {
            let mut patch = Vec::new();
            diff_in(&old, &new, &mut patch, w).unwrap();
            let mut out = Vec::new();
            bsdiff::patch(&old, &mut patch.as_slice(), &mut out).unwrap();
            assert!(out == new, "{} → {} bytes", old.len(), new.len());
        }
        let new = edited(&old, 15, 30);
        let (mut whole, mut windowed) = (Vec::new(), Vec::new());
        diff(&old, &new, &mut whole).unwrap();
        diff_in(&old, &new, &mut windowed, w).unwrap();
        let packed = |p: &[u8]| zstd::bulk::compress(p, 3).unwrap().len();
        assert!(
            packed(&windowed) < packed(&whole) + 2_000,
            "windows cost little on sparse edits: {} vs {}",
            packed(&windowed),
            packed(&whole)
        );
    }

    #[test]
    fn patches_apply_with_the_bsdiff_crates_own_patcher() {
        let old = layer(5, 200_000);
        let pairs = [
            (old.clone(), edited(&old, 6, 40)),
            (old.clone(), old.clone()),
            (Vec::new(), b"new".to_vec()),
            (b"old".to_vec(), Vec::new()),
            (b"abababababab".to_vec(), b"babababa".to_vec()),
            (layer(7, 3000), layer(8, 5000)),
        ];
        for (old, new) in pairs {
            round_trip(&old, &new);
        }
    }

    #[test]
    fn shifted_content_with_sparse_edits_costs_little_once_compressed() {
        let old = layer(9, 300_000);
        let mut new = b"inserted header ".to_vec();
        new.extend_from_slice(&edited(&old, 10, 30));
        let mut ours = Vec::new();
        diff(&old, &new, &mut ours).unwrap();
        let mut crates = Vec::new();
        bsdiff::diff(&old, &new, &mut crates).unwrap();
        let size = |p: &[u8]| zstd::encode_all(p, 19).unwrap().len();
        let (ours, crates) = (size(&ours), size(&crates));
        assert!(ours <= crates + crates / 10, "ours {ours}, crate {crates}");
        round_trip(&old, &new);
    }
}
