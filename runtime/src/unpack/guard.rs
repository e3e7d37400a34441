//! Path safety checks for tar entries and the hashing reader that computes
//! a layer's `diff_id` while it streams.

use sha2::{Digest as _, Sha256};
use std::io::{self, Read};
use std::path::{Component, Path, PathBuf};

/// `path` as a clean relative path, `None` for the root itself, or why it
/// is unsafe.
pub(super) fn relative_path(path: &Path) -> Result<Option<PathBuf>, &'static str> {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::Normal(name) => out.push(name),
            Component::CurDir => {}
            Component::ParentDir => return Err("path contains `..`"),
            Component::RootDir | Component::Prefix(_) => return Err("path is absolute"),
        }
    }
    Ok((!out.as_os_str().is_empty()).then_some(out))
}

/// Whether a relative symlink at `link` (relative to the root) points above
/// the root. Absolute targets are resolved inside the rootfs at run time.
pub(super) fn symlink_escapes(link: &Path, target: &Path) -> bool {
    if target.has_root() {
        return false;
    }
    let mut depth = link.components().count().saturating_sub(1);
    for part in target.components() {
        match part {
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::ParentDir if depth > 0 => depth -= 1,
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => return true,
        }
    }
    false
}

/// Hashes and counts what passes through; fails once past `limit` bytes.
pub(super) struct HashingReader<R> {
    inner: R,
    pub(super) hasher: Sha256,
    read: u64,
    limit: u64,
    pub(super) over_limit: bool,
}

impl<R> HashingReader<R> {
    pub(super) fn new(inner: R, limit: u64) -> Self {
        HashingReader {
            inner,
            hasher: Sha256::new(),
            read: 0,
            limit,
            over_limit: false,
        }
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        if self.read > self.limit {
            self.over_limit = true;
            return Err(io::Error::other("layer stream exceeds its size limit"));
        }
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}
