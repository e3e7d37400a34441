//! Choosing, for each file of the new tar, the old file to diff it
//! against. This is where the tar-aware method gains over whole-layer
//! diffs: a per-file diff sees only the right base, so it neither wastes
//! matches on unrelated files nor misses a file that moved.
//!
//! In order, for each non-empty regular file of the new tar:
//! 1. an old file with identical contents (the same path first), which
//!    then costs only a reference;
//! 2. the old file at the same path;
//! 3. an old file whose path is the same once every run of digits is
//!    replaced by `#` (`libfoo.so.1.2.3` ~ `libfoo.so.1.2.4`,
//!    `python3.11/` ~ `python3.12/`), the closest in size;
//! 4. an old file with the same file name elsewhere, closest in size;
//! 5. none: the file stays inline in the new skeleton.
//!
//! Empty old files are never bases. Ties go to the earlier old file, so
//! the choice is deterministic.

use super::tar_index::{Entry, TarIndex};
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};

/// What a new file is diffed against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Base {
    /// Nothing: the file stays inline in the new skeleton.
    None,
    /// Old file `.0` has exactly these contents.
    Same(usize),
    /// Old file `.0` is the closest match.
    Diff(usize),
}

/// One choice per file of `new` (in `new.files` order).
pub(crate) fn choose(
    old: &TarIndex,
    old_bytes: &[u8],
    new: &TarIndex,
    new_bytes: &[u8],
) -> Vec<Base> {
    let by = Lookup::new(old, old_bytes, new);
    new.files
        .iter()
        .map(|file| {
            let contents = data(new_bytes, file);
            if contents.is_empty() {
                return Base::None;
            }
            if let Some(same) = by.identical(old, old_bytes, file, contents) {
                return Base::Same(same);
            }
            let path = normalised(&file.path);
            by.path
                .get(path)
                .copied()
                .or_else(|| closest(old, by.digits.get(&digitless(path)), file.size))
                .or_else(|| closest(old, by.name.get(file_name(path)), file.size))
                .map_or(Base::None, Base::Diff)
        })
        .collect()
}

/// The old files, indexed every way [`choose`] looks them up.
struct Lookup<'a> {
    path: HashMap<&'a [u8], usize>,
    digits: HashMap<Vec<u8>, Vec<usize>>,
    name: HashMap<&'a [u8], Vec<usize>>,
    /// (size, hash of contents) → old files; only sizes some new file has.
    contents: HashMap<(u64, u64), Vec<usize>>,
}

impl<'a> Lookup<'a> {
    fn new(old: &'a TarIndex, old_bytes: &[u8], new: &TarIndex) -> Lookup<'a> {
        let new_sizes: HashSet<u64> = new.files.iter().map(|f| f.size).collect();
        let mut by = Lookup {
            path: HashMap::new(),
            digits: HashMap::new(),
            name: HashMap::new(),
            contents: HashMap::new(),
        };
        for (i, file) in old.files.iter().enumerate().filter(|(_, f)| f.size > 0) {
            let path = normalised(&file.path);
            // A later member of a tar replaces an earlier one of the same path.
            by.path.insert(path, i);
            by.digits.entry(digitless(path)).or_default().push(i);
            by.name.entry(file_name(path)).or_default().push(i);
            if new_sizes.contains(&file.size) {
                let key = (file.size, hash(data(old_bytes, file)));
                by.contents.entry(key).or_default().push(i);
            }
        }
        by
    }

    /// An old file with exactly `contents`, the one at the same path first.
    fn identical(
        &self,
        old: &TarIndex,
        old_bytes: &[u8],
        file: &Entry,
        contents: &[u8],
    ) -> Option<usize> {
        let same_path = self.path.get(normalised(&file.path)).copied();
        if let Some(i) = same_path {
            if data(old_bytes, &old.files[i]) == contents {
                return Some(i);
            }
        }
        let candidates = self.contents.get(&(file.size, hash(contents)))?;
        candidates
            .iter()
            .copied()
            .find(|i| data(old_bytes, &old.files[*i]) == contents)
    }
}

/// The candidate closest in size to `size` (the earliest on a tie).
fn closest(old: &TarIndex, candidates: Option<&Vec<usize>>, size: u64) -> Option<usize> {
    candidates?
        .iter()
        .copied()
        .min_by_key(|i| (old.files[*i].size.abs_diff(size), *i))
}

/// A file's contents (the index checked every range against the tar).
pub(crate) fn data<'b>(tar: &'b [u8], file: &Entry) -> &'b [u8] {
    let start = file.data_offset as usize;
    &tar[start..start + file.size as usize]
}

/// The path without leading `./` and `/`, so `./usr/x` and `usr/x` match.
fn normalised(mut path: &[u8]) -> &[u8] {
    loop {
        if let Some(rest) = path.strip_prefix(b"./") {
            path = rest;
        } else if let Some(rest) = path.strip_prefix(b"/") {
            path = rest;
        } else {
            return path;
        }
    }
}

/// The path with every run of ASCII digits replaced by `#`.
fn digitless(path: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(path.len());
    let mut in_run = false;
    for &b in path {
        if !b.is_ascii_digit() {
            out.push(b);
        } else if !in_run {
            out.push(b'#');
        }
        in_run = b.is_ascii_digit();
    }
    out
}

/// The last path component.
fn file_name(path: &[u8]) -> &[u8] {
    path.rsplit(|b| *b == b'/').next().unwrap_or(path)
}

fn hash(bytes: &[u8]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut h);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digit_runs_collapse_to_one_mark_and_paths_lose_their_dot_slash() {
        assert_eq!(digitless(b"libfoo.so.1.2.3"), b"libfoo.so.#.#.#");
        assert_eq!(digitless(b"python3.11/x"), b"python#.#/x");
        assert_eq!(digitless(b"a12345b"), b"a#b");
        assert_eq!(normalised(b"./usr/lib"), b"usr/lib");
        assert_eq!(normalised(b"/./usr"), b"usr");
        assert_eq!(file_name(b"usr/lib/libc.so.6"), b"libc.so.6");
        assert_eq!(file_name(b"plain"), b"plain");
    }
}
