//! The skeleton diff: the new tar with the contents of its matched files
//! cut out, diffed by bsdiff against the old tar with every file's
//! contents cut out. Headers of one version look much like the other's,
//! and without the file contents both sides are small (a few hundred KB
//! for a 50 MB layer), so one bsdiff over them is cheap and finds every
//! repeated header field, link name and unmatched small file.
//!
//! The decoder interleaves the skeleton with the files' contents, so the
//! control steps are cut at each point where a file's contents go
//! ([`cut`]): a step spanning such a point becomes two, the first
//! stopping there with no seek. Each group of steps then writes exactly
//! the skeleton bytes between two files, and the old-skeleton position
//! simply carries on from one group to the next.

use super::super::bsdiff_zstd::control::Control;
use super::old_view::OldMap;
use super::tar_index::TarIndex;
use std::io;
use std::ops::Range;

/// The steps that write one stretch of new skeleton.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Group {
    /// Bytes this group writes.
    pub len: u64,
    pub controls: Vec<Control>,
    /// Its bytes of the whole skeleton diff's diff and extra streams.
    pub diff: Range<usize>,
    pub extra: Range<usize>,
}

/// The old skeleton's bytes: `old` without its files' contents, exactly as
/// the decoder's [`OldMap`] sees it.
pub(crate) fn old_skeleton(old: &[u8], index: &TarIndex) -> Vec<u8> {
    let files = index
        .files
        .iter()
        .map(|f| super::old_view::Range {
            offset: f.data_offset,
            len: f.size,
        })
        .collect();
    let map = OldMap::from_files(files, old.len() as u64);
    let mut out = Vec::with_capacity(map.skeleton_len as usize);
    for (_, r) in &map.skeleton {
        out.extend_from_slice(&old[r.offset as usize..(r.offset + r.len) as usize]);
    }
    out
}

/// The new skeleton: `new` without the `cut` ranges (ascending, disjoint);
/// also the skeleton offset where each cut range was.
pub(crate) fn new_skeleton(new: &[u8], cut: &[Range<usize>]) -> (Vec<u8>, Vec<u64>) {
    let mut out = Vec::new();
    let mut points = Vec::with_capacity(cut.len());
    let mut at = 0;
    for r in cut {
        out.extend_from_slice(&new[at..r.start]);
        points.push(out.len() as u64);
        at = r.end;
    }
    out.extend_from_slice(&new[at..]);
    (out, points)
}

/// Cuts `controls` (which write `total` bytes) into one group per stretch
/// between `points` (ascending skeleton offsets): `points.len() + 1` groups.
pub(crate) fn cut(controls: &[Control], points: &[u64], total: u64) -> io::Result<Vec<Group>> {
    let ends: Vec<u64> = points.iter().copied().chain([total]).collect();
    let mut groups = Vec::with_capacity(ends.len());
    let mut current = Vec::new();
    let mut pos = 0u64;
    let mut g = 0;
    for ctrl in controls {
        let mut c = *ctrl;
        loop {
            let end = *ends
                .get(g)
                .ok_or_else(|| invalid("controls write past the skeleton"))?;
            let room = end - pos;
            let out = c.output_len().map_err(|e| invalid(&e.to_string()))?;
            if out <= room {
                pos += out;
                current.push(c);
                break;
            }
            // The step crosses the end of group g: its first `room`
            // bytes end the group.
            let first = if c.diff_len >= room {
                c.diff_len -= room;
                piece(room, 0)
            } else {
                let extra = room - c.diff_len;
                c.extra_len -= extra;
                let p = piece(c.diff_len, extra);
                c.diff_len = 0;
                p
            };
            if first.output_len().map_err(|e| invalid(&e.to_string()))? > 0 {
                current.push(first);
            }
            pos += room;
            groups.push(std::mem::take(&mut current));
            g += 1;
        }
    }
    if pos != total {
        return Err(invalid("controls do not write the whole skeleton"));
    }
    while groups.len() < ends.len() {
        groups.push(std::mem::take(&mut current));
    }
    finish(groups, &ends)
}

fn piece(diff_len: u64, extra_len: u64) -> Control {
    Control {
        diff_len,
        extra_len,
        seek: 0,
    }
}

/// Fills in lengths and stream ranges, folding steps that write nothing
/// into their neighbours: into the previous step of the group (seeks add
/// up), or, at the start of a group, kept; a group that writes nothing
/// hands its steps to the next one.
fn finish(raw: Vec<Vec<Control>>, ends: &[u64]) -> io::Result<Vec<Group>> {
    let mut groups = Vec::with_capacity(raw.len());
    let (mut diff, mut extra, mut start) = (0usize, 0usize, 0u64);
    let mut carried: Vec<Control> = Vec::new();
    for (controls, end) in raw.into_iter().zip(ends) {
        let mut folded: Vec<Control> = std::mem::take(&mut carried);
        for c in controls {
            fold(&mut folded, c)?;
        }
        let len = end - start;
        start = *end;
        if len == 0 {
            carried = folded; // nothing to write here: seek on in the next group
            groups.push(Group {
                diff: diff..diff,
                extra: extra..extra,
                ..Group::default()
            });
            continue;
        }
        let d: u64 = folded.iter().map(|c| c.diff_len).sum();
        let e: u64 = folded.iter().map(|c| c.extra_len).sum();
        groups.push(Group {
            len,
            controls: folded,
            diff: diff..diff + d as usize,
            extra: extra..extra + e as usize,
        });
        diff += d as usize;
        extra += e as usize;
    }
    Ok(groups)
}

/// Appends `c`, folding it into the last step if it writes nothing.
pub(crate) fn fold(steps: &mut Vec<Control>, c: Control) -> io::Result<()> {
    match steps.last_mut() {
        Some(last) if c.diff_len == 0 && c.extra_len == 0 => {
            last.seek = last
                .seek
                .checked_add(c.seek)
                .ok_or_else(|| invalid("seeks overflow"))?;
        }
        _ => steps.push(c),
    }
    Ok(())
}

fn invalid(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(diff_len: u64, extra_len: u64, seek: i64) -> Control {
        Control {
            diff_len,
            extra_len,
            seek,
        }
    }

    #[test]
    fn a_step_across_a_file_is_cut_there_and_keeps_its_seek_on_the_second_piece() {
        // 10 diff + 5 extra, then 4 diff; files go at 3 and 12 and 15.
        let controls = [c(10, 5, -7), c(4, 0, 2)];
        let groups = cut(&controls, &[3, 12, 15], 19).unwrap();
        let steps: Vec<Vec<Control>> = groups.iter().map(|g| g.controls.clone()).collect();
        assert_eq!(
            steps,
            vec![
                vec![c(3, 0, 0)],
                vec![c(7, 2, 0)],
                vec![c(0, 3, -7)],
                vec![c(4, 0, 2)]
            ]
        );
        assert_eq!(
            groups.iter().map(|g| g.len).collect::<Vec<_>>(),
            [3, 9, 3, 4]
        );
        assert_eq!(groups[1].diff, 3..10);
        assert_eq!(groups[2].extra, 2..5);
        assert_eq!(groups[3].diff, 10..14);
    }

    #[test]
    fn steps_writing_nothing_fold_into_the_previous_one_or_move_on() {
        let controls = [c(0, 0, 5), c(2, 0, 1), c(0, 0, 3), c(2, 0, 0), c(0, 0, 9)];
        let groups = cut(&controls, &[2, 2], 4).unwrap();
        assert_eq!(groups.len(), 3);
        assert_eq!(groups[0].controls, vec![c(0, 0, 5), c(2, 0, 4)]);
        assert_eq!(groups[1].len, 0);
        assert!(groups[1].controls.is_empty());
        assert_eq!(groups[2].controls, vec![c(2, 0, 9)]);
    }

    #[test]
    fn controls_that_do_not_write_the_skeleton_exactly_are_refused() {
        assert!(cut(&[c(3, 0, 0)], &[], 4).is_err());
        assert!(cut(&[c(5, 0, 0)], &[], 4).is_err());
    }

    #[test]
    fn skeletons_leave_out_exactly_the_cut_ranges() {
        let (skel, points) = new_skeleton(b"aaXXbbbYc", &[2..4, 7..8]);
        assert_eq!(skel, b"aabbbc");
        assert_eq!(points, [2, 5]);
    }
}
