//! The decoder's view of the old layer. The patch was made against two
//! virtual files — the old skeleton (the old tar with every regular file's
//! contents cut out) and each old file's contents — and the device must
//! read them without building either in memory. So the old tar is indexed
//! once ([`tar_index`], files only, no paths: 16 bytes per file) and each
//! virtual file is a list of ranges of the old layer, read through one
//! [`OldReader`] (a small window, positioned reads, bounds checked,
//! budgeted).

use super::steps::OldBytes;
use super::tar_index::{self, Detail, FileSource};
use crate::error::DeltaError;
use crate::input::OldLayer;
use crate::old_reader::OldReader;
use std::fs::File;

/// A piece of a virtual file: `len` bytes at `offset` of the old layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Range {
    pub offset: u64,
    pub len: u64,
}

/// Where the old layer's regular files and skeleton lie.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct OldMap {
    /// Each regular file's contents, in archive order.
    pub files: Vec<Range>,
    /// The old skeleton: the ranges between file contents, in order,
    /// with the skeleton offset each starts at.
    pub skeleton: Vec<(u64, Range)>,
    pub skeleton_len: u64,
}

impl OldMap {
    /// Indexes the (verified) old layer.
    pub(crate) fn open(old: &OldLayer) -> Result<OldMap, DeltaError> {
        let file = File::open(&old.path).map_err(DeltaError::io(&old.path))?;
        let mut src = FileSource {
            file,
            len: old.size,
            path: old.path.clone(),
        };
        let index = tar_index::index(&mut src, Detail::FilesOnly, "old")?;
        let files = index
            .files
            .iter()
            .map(|e| Range {
                offset: e.data_offset,
                len: e.size,
            })
            .collect::<Vec<_>>();
        drop(index);
        Ok(OldMap::from_files(files, old.size))
    }

    /// The map of a layer of `size` bytes whose files lie at `files`
    /// (ascending, not overlapping, as the index yields them).
    pub(crate) fn from_files(files: Vec<Range>, size: u64) -> OldMap {
        let mut skeleton = Vec::new();
        let mut at = 0u64;
        let mut skeleton_len = 0u64;
        let mut push = |offset: u64, end: u64, skeleton: &mut Vec<(u64, Range)>| {
            if end > offset {
                let len = end - offset;
                skeleton.push((skeleton_len, Range { offset, len }));
                skeleton_len += len;
            }
        };
        for f in files.iter().filter(|f| f.len > 0) {
            push(at, f.offset, &mut skeleton);
            at = f.offset + f.len;
        }
        push(at, size, &mut skeleton);
        let skeleton_len = skeleton.last().map_or(0, |(s, r)| s + r.len);
        OldMap {
            files,
            skeleton,
            skeleton_len,
        }
    }
}

/// A virtual file made of `ranges` of the old layer, read through `reader`.
pub(crate) struct View<'a> {
    reader: &'a mut OldReader,
    /// (virtual offset, range), ascending.
    ranges: &'a [(u64, Range)],
    len: u64,
    pos: u64,
    /// Index of the range holding `pos` (a hint: reads are mostly forward).
    at: usize,
}

impl<'a> View<'a> {
    pub(crate) fn new(reader: &'a mut OldReader, ranges: &'a [(u64, Range)], len: u64) -> View<'a> {
        View {
            reader,
            ranges,
            len,
            pos: 0,
            at: 0,
        }
    }

    /// The position in the virtual file.
    pub(crate) fn position(&self) -> u64 {
        self.pos
    }

    /// Moves `at` to the range holding `pos` (which is < len).
    fn locate(&mut self) {
        let (start, range) = self.ranges[self.at];
        if self.pos >= start && self.pos < start + range.len {
            return;
        }
        let next = self.at + 1;
        if next < self.ranges.len() && self.ranges[next].0 == self.pos {
            self.at = next;
            return;
        }
        self.at = self
            .ranges
            .partition_point(|(s, _)| *s <= self.pos)
            .saturating_sub(1);
    }
}

impl OldBytes for View<'_> {
    fn check_span(&self, len: u64) -> Result<(), DeltaError> {
        match self.pos.checked_add(len) {
            Some(end) if end <= self.len => Ok(()),
            _ => Err(DeltaError::Corrupt(format!(
                "control reads {len} bytes from offset {} of a {}-byte old piece",
                self.pos, self.len
            ))),
        }
    }

    fn read(&mut self, mut buf: &mut [u8]) -> Result<(), DeltaError> {
        self.check_span(buf.len() as u64)?;
        while !buf.is_empty() {
            self.locate();
            let (start, range) = self.ranges[self.at];
            let within = self.pos - start;
            let n = usize::try_from(range.len - within).map_or(buf.len(), |r| r.min(buf.len()));
            self.reader.seek_to(range.offset + within)?;
            let (now, rest) = buf.split_at_mut(n);
            self.reader.read_exact(now)?;
            self.pos += n as u64;
            buf = rest;
        }
        Ok(())
    }

    fn seek_by(&mut self, delta: i64) -> Result<(), DeltaError> {
        let target = i128::from(self.pos) + i128::from(delta);
        if target < 0 || target > i128::from(self.len) {
            return Err(DeltaError::Corrupt(format!(
                "control seeks to offset {target} of a {}-byte old piece",
                self.len
            )));
        }
        self.pos = target as u64;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(offset: u64, len: u64) -> Range {
        Range { offset, len }
    }

    #[test]
    fn the_skeleton_is_everything_between_file_contents() {
        let map = OldMap::from_files(vec![r(512, 10), r(1536, 0), r(2048, 600)], 4096);
        assert_eq!(
            map.skeleton,
            vec![(0, r(0, 512)), (512, r(522, 1526)), (2038, r(2648, 1448))]
        );
        assert_eq!(map.skeleton_len, 3486);
        let empty = OldMap::from_files(vec![], 0);
        assert!(empty.skeleton.is_empty());
        assert_eq!(empty.skeleton_len, 0);
    }
}
