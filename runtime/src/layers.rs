//! The device's content-addressed layer store: one unpacked, verified tree
//! per `diff_id`, at `<root>/<hex>`.
//!
//! Presence means valid: a layer directory appears only by the rename that
//! ends a verified, synced unpack, and disappears by a rename before its
//! deletion. After a crash the store therefore holds whole layers plus stale
//! `*.tmp-*` trees, which [`LayerStore::open`] removes. The helpers for this
//! build-aside-then-rename discipline live here and are shared with
//! [`crate::unpack`] and [`crate::rootfs`].

use crate::unpack::{unpack_layer_with, UnpackError, UnpackLimits};
use petrel_protocol::Digest;
use std::ffi::OsStr;
use std::fs::{self, File, Permissions};
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Unpacked layers keyed by `diff_id`.
#[derive(Debug, Clone)]
pub struct LayerStore {
    root: PathBuf,
    limits: UnpackLimits,
}

/// Why a layer store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    #[error("layer store: i/o error on {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error(transparent)]
    Unpack(#[from] UnpackError),
}

impl LayerStore {
    /// Opens (creating if needed) the store at `root` and removes the
    /// temporary trees a crash may have left. Call once, at startup.
    pub fn open(root: impl Into<PathBuf>) -> Result<LayerStore, LayerError> {
        let root = root.into();
        let io_err = |source| LayerError::Io {
            path: root.clone(),
            source,
        };
        fs::create_dir_all(&root).map_err(io_err)?;
        let removed = remove_stale_temps(&root).map_err(io_err)?;
        if removed > 0 {
            tracing::info!(root = %root.display(), removed, "removed unfinished layer trees");
        }
        Ok(LayerStore {
            root,
            limits: UnpackLimits::default(),
        })
    }

    /// Uses `limits` instead of the defaults for later installs.
    pub fn with_limits(mut self, limits: UnpackLimits) -> LayerStore {
        self.limits = limits;
        self
    }

    /// The store's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Whether the layer is installed (and therefore verified).
    pub fn has(&self, diff_id: &Digest) -> bool {
        fs::symlink_metadata(self.path(diff_id)).is_ok_and(|m| m.is_dir())
    }

    /// Where the layer's tree is (or would be).
    pub fn path(&self, diff_id: &Digest) -> PathBuf {
        self.root.join(diff_id.hex())
    }

    /// Unpacks and verifies `blob` as layer `diff_id`, unless already
    /// installed. Returns the layer's tree.
    pub fn install(&self, blob: &Path, diff_id: &Digest) -> Result<PathBuf, LayerError> {
        let path = self.path(diff_id);
        if self.has(diff_id) {
            return Ok(path);
        }
        match unpack_layer_with(blob, diff_id, &path, self.limits) {
            Ok(stats) => {
                tracing::info!(%diff_id, entries = stats.entries, bytes = stats.bytes, devices_skipped = stats.devices_skipped, setid_stripped = stats.setid_stripped, "layer installed");
                Ok(path)
            }
            // A concurrent install of the same layer won the rename.
            Err(_) if self.has(diff_id) => Ok(path),
            Err(e) => Err(e.into()),
        }
    }

    /// Removes the layer; removing an absent layer is not an error.
    pub fn remove(&self, diff_id: &Digest) -> Result<(), LayerError> {
        let path = self.path(diff_id);
        discard_dir(&path).map_err(|source| LayerError::Io { path, source })
    }

    /// The installed layers, sorted.
    pub fn list(&self) -> Vec<Digest> {
        let Ok(dir) = fs::read_dir(&self.root) else {
            return Vec::new();
        };
        let mut layers: Vec<Digest> = dir
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .filter_map(|e| Digest::from_hex(e.file_name().to_str()?).ok())
            .collect();
        layers.sort();
        layers
    }
}

/// A fresh name beside `path`: `<name>.tmp-<pid>-<n>`.
pub(crate) fn temp_sibling(path: &Path) -> io::Result<PathBuf> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let no_name = || io::Error::new(io::ErrorKind::InvalidInput, "path has no file name");
    let mut name = path.file_name().ok_or_else(no_name)?.to_os_string();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    name.push(format!(".tmp-{}-{n}", std::process::id()));
    Ok(path.with_file_name(name))
}

/// Whether a name is one [`temp_sibling`] makes.
fn is_temp_name(name: &OsStr) -> bool {
    let name = name.to_string_lossy();
    let numbers = |tail: &str| {
        let mut parts = tail.split('-');
        let number = |p: Option<&str>| {
            p.is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        };
        number(parts.next()) && number(parts.next()) && parts.next().is_none()
    };
    name.rsplit_once(".tmp-")
        .is_some_and(|(_, tail)| numbers(tail))
}

/// Creates an empty `0o755` temporary directory beside `dest`.
pub(crate) fn create_temp_dir(dest: &Path) -> io::Result<PathBuf> {
    if let Some(parent) = dest.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent)?;
    }
    let tmp = temp_sibling(dest)?;
    // The same pid and counter can only come from a dead process: stale.
    remove_tree(&tmp)?;
    fs::create_dir(&tmp)?;
    fs::set_permissions(&tmp, Permissions::from_mode(0o755))?;
    Ok(tmp)
}

/// Makes a finished tree durable, then visible at `dest` in one rename.
pub(crate) fn commit_dir(tmp: &Path, dest: &Path) -> io::Result<()> {
    nix::unistd::syncfs(File::open(tmp)?.as_raw_fd())?;
    fs::rename(tmp, dest)?;
    sync_parent(dest)
}

/// fsyncs the directory holding `path`: an entry created, renamed or
/// removed there is durable only then.
pub(crate) fn sync_parent(path: &Path) -> io::Result<()> {
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
    File::open(parent.unwrap_or(Path::new(".")))?.sync_all()
}

/// Removes a tree, renaming it aside first so that `path` vanishes at once
/// and a crash leaves a stale temporary tree, never a partial one at `path`.
pub(crate) fn discard_dir(path: &Path) -> io::Result<()> {
    let aside = temp_sibling(path)?;
    match fs::rename(path, &aside) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
        Ok(()) => remove_tree(&aside),
    }
}

/// Removes the temporary trees in `dir`; returns how many.
pub(crate) fn remove_stale_temps(dir: &Path) -> io::Result<usize> {
    let mut removed = 0;
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if is_temp_name(&entry.file_name()) {
            remove_tree(&entry.path())?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// `remove_dir_all` (which never follows links) that also copes with
/// read-only directories when not running as root. Missing is fine.
pub(crate) fn remove_tree(path: &Path) -> io::Result<()> {
    match fs::remove_dir_all(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(_) => {
            make_dirs_writable(path);
            fs::remove_dir_all(path)
        }
        Ok(()) => Ok(()),
    }
}

fn make_dirs_writable(dir: &Path) {
    if !fs::symlink_metadata(dir).is_ok_and(|m| m.is_dir()) {
        return;
    }
    let _ = fs::set_permissions(dir, Permissions::from_mode(0o700));
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        make_dirs_writable(&entry.path());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::unpack::tests::{blob_of, file, leftovers, tar_of};
    use tempfile::TempDir;

    fn store_with_blob() -> (TempDir, LayerStore, PathBuf, Digest) {
        let dir = TempDir::new().unwrap();
        let (blob, diff_id) = blob_of(dir.path(), &tar_of(&[file("hello", b"world")]));
        let store = LayerStore::open(dir.path().join("layers")).unwrap();
        (dir, store, blob, diff_id)
    }

    #[test]
    fn install_unpacks_a_layer_once_and_lists_it() {
        let (_dir, store, blob, diff_id) = store_with_blob();
        assert!(!store.has(&diff_id));
        let path = store.install(&blob, &diff_id).unwrap();
        assert_eq!(path, store.path(&diff_id));
        assert_eq!(fs::read(path.join("hello")).unwrap(), b"world");
        fs::remove_file(&blob).unwrap();
        assert_eq!(store.install(&blob, &diff_id).unwrap(), path);
        assert_eq!(store.list(), vec![diff_id]);
    }

    #[test]
    fn a_failed_install_leaves_no_layer_and_no_temp_tree() {
        let (_dir, store, blob, _) = store_with_blob();
        let wrong = Digest::of(b"other");
        let err = store.install(&blob, &wrong).unwrap_err();
        assert!(
            matches!(err, LayerError::Unpack(UnpackError::DigestMismatch { .. })),
            "{err}"
        );
        assert!(!store.has(&wrong));
        assert_eq!(leftovers(store.root()), Vec::<String>::new());
    }

    #[test]
    fn open_removes_unfinished_trees_left_by_a_crash() {
        let (dir, store, blob, diff_id) = store_with_blob();
        store.install(&blob, &diff_id).unwrap();
        let stale = store.root().join(format!("{}.tmp-4242-7", diff_id.hex()));
        fs::create_dir_all(stale.join("half/written")).unwrap();
        let store = LayerStore::open(dir.path().join("layers")).unwrap();
        assert!(!stale.exists());
        assert_eq!(store.list(), vec![diff_id]);
        assert!(!is_temp_name(OsStr::new("image.tmp-x")));
    }

    #[test]
    fn remove_deletes_a_layer_and_tolerates_an_absent_one() {
        let (_dir, store, blob, diff_id) = store_with_blob();
        store.install(&blob, &diff_id).unwrap();
        store.remove(&diff_id).unwrap();
        assert!(!store.has(&diff_id));
        assert_eq!(store.list(), vec![]);
        assert_eq!(leftovers(store.root()), Vec::<String>::new());
        store.remove(&diff_id).unwrap();
    }
}
