//! Root filesystem assembly: an image's layers, base first, merged into one
//! directory tree for its services to run in.
//!
//! As root, the tree is an overlayfs mount of the layer store's directories
//! ([`overlay`]): nothing is copied and writes land in a per-image upper
//! directory. Without root, or where the mount fails (no overlayfs in the
//! kernel, a filesystem it cannot stack on, too many layers for one mount),
//! the layers are copied into a plain directory as follows, with the same
//! result as seen from inside.
//!
//! Files are copied, never hard-linked: a running service may write to its
//! rootfs, and those writes must never reach the layer store. Symlinks are
//! recreated as symlinks and never followed, and an entry is always removed
//! before its replacement is created, so a link in a layer cannot make
//! assembly write outside the tree. OCI whiteouts are honoured: `.wh.NAME`
//! deletes NAME from the lower layers and `.wh..wh..opq` empties its directory
//! of lower content; neither is copied. A layer's whiteouts apply only to
//! lower layers, so in each directory they run before the layer's own entries
//! are copied.
//!
//! The tree is built beside `dest` and renamed into place, so `dest` is
//! either absent or complete. The caller keys `dest` by image id, which is
//! why an existing `dest` is kept as it is.

mod overlay;
mod sweep;

use crate::layers::{commit_dir, create_temp_dir, discard_dir, remove_stale_temps, remove_tree};
use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::fs::{self, File, Metadata, OpenOptions, Permissions};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{
    lchown, symlink, DirBuilderExt, FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt,
};
use std::path::{Path, PathBuf};

const WHITEOUT: &[u8] = b".wh.";
const OPAQUE: &str = ".wh..wh..opq";

/// Why a root filesystem could not be assembled or removed.
#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    #[error("layer {0} is missing or not a directory")]
    MissingLayer(PathBuf),
    #[error("rootfs: i/o error on {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("rootfs: {0} has a file type layers may not hold")]
    Unsupported(PathBuf),
}

/// How a rootfs was assembled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// An overlayfs mount over the layer store.
    Overlay,
    /// A copy of the layers' files.
    Copy,
}

/// Builds `dest` from `layers` (base first), unless `dest` exists already
/// (an overlay rootfs is then mounted again if a reboot unmounted it).
/// Uses overlayfs when running as root and the mount works, else copies.
pub fn assemble(layers: &[PathBuf], dest: &Path) -> Result<Backend, RootfsError> {
    let prefer = if nix::unistd::geteuid().is_root() {
        Backend::Overlay
    } else {
        Backend::Copy
    };
    assemble_with(layers, dest, prefer)
}

/// [`assemble`] with the backend to try first.
pub fn assemble_with(
    layers: &[PathBuf],
    dest: &Path,
    prefer: Backend,
) -> Result<Backend, RootfsError> {
    if fs::symlink_metadata(dest).is_ok() {
        overlay::ensure_mounted(dest).map_err(io_err(dest))?;
        return Ok(backend_of(dest));
    }
    if let Some(missing) = layers.iter().find(|layer| !layer.is_dir()) {
        return Err(RootfsError::MissingLayer(missing.clone()));
    }
    if prefer == Backend::Overlay {
        match overlay::assemble(layers, dest) {
            Ok(()) => return Ok(Backend::Overlay),
            Err(e) => tracing::warn!(
                rootfs = %dest.display(), error = %e,
                "overlayfs unavailable for this rootfs; copying the layers instead"
            ),
        }
    }
    assemble_copy(layers, dest).map(|()| Backend::Copy)
}

/// Which backend the existing rootfs at `dest` uses.
pub fn backend_of(dest: &Path) -> Backend {
    if overlay::state_dir(dest).is_dir() {
        Backend::Overlay
    } else {
        Backend::Copy
    }
}

pub use overlay::ensure_mounted;
pub use sweep::{mounts_under, unmount_all_under};

fn assemble_copy(layers: &[PathBuf], dest: &Path) -> Result<(), RootfsError> {
    let tmp = create_temp_dir(dest).map_err(io_err(dest))?;
    let mut merge = Merge {
        dir_modes: BTreeMap::new(),
        as_root: nix::unistd::geteuid().is_root(),
    };
    let result = layers
        .iter()
        .try_for_each(|layer| merge.merge_dir(layer, &tmp))
        .and_then(|()| merge.apply_dir_modes(&tmp))
        .and_then(|()| commit_dir(&tmp, dest).map_err(io_err(dest)));
    if result.is_err() {
        if let Err(e) = remove_tree(&tmp) {
            tracing::warn!(path = %tmp.display(), error = %e, "could not remove a failed rootfs");
        }
        // A concurrent assembly of the same image won the rename.
        if fs::symlink_metadata(dest).is_ok() {
            return Ok(());
        }
    }
    result
}

/// Removes an assembled rootfs (unmounting an overlay one, with its
/// state); removing an absent one is not an error.
pub fn remove(dest: &Path) -> Result<(), RootfsError> {
    overlay::remove(dest).map_err(io_err(dest))?;
    discard_dir(dest).map_err(io_err(dest))
}

/// Removes every rootfs in `dir` (unmounting overlay ones first); for tools
/// and tests cleaning up after an agent that is gone. Returns how many.
pub fn remove_all(dir: &Path) -> Result<usize, RootfsError> {
    let all = rootfs_dirs(dir)?;
    for path in &all {
        remove(path)?;
    }
    Ok(all.len())
}

/// The root filesystems in `dir` (not their `.overlay` state dirs); none
/// if `dir` does not exist.
fn rootfs_dirs(dir: &Path) -> Result<Vec<PathBuf>, RootfsError> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for entry in entries {
        let path = entry.map_err(io_err(dir))?.path();
        let is_state = path.extension().is_some_and(|e| e == "overlay");
        if !is_state && path.is_dir() {
            out.push(path);
        }
    }
    Ok(out)
}

/// Unmounts every overlay rootfs in `dir`, keeping their state (the agent
/// mounts them again when it next starts a service); for
/// `petrel-agent stop-services`. Returns how many were mounted.
pub fn unmount_all(dir: &Path) -> Result<usize, RootfsError> {
    let mut unmounted = 0;
    for path in rootfs_dirs(dir)? {
        if overlay::unmount(&path).map_err(io_err(&path))? {
            unmounted += 1;
        }
    }
    Ok(unmounted)
}

/// Removes the unfinished trees a crash may have left in `dir` (the parent
/// of the rootfs directories); returns how many. Call at startup.
pub fn remove_stale(dir: &Path) -> Result<usize, RootfsError> {
    match remove_stale_temps(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(0),
        other => other.map_err(io_err(dir)),
    }
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> RootfsError + '_ {
    move |source| RootfsError::Io {
        path: path.to_path_buf(),
        source,
    }
}

struct Merge {
    /// Final directory modes, applied at the end so that read-only
    /// directories can still be filled.
    dir_modes: BTreeMap<PathBuf, u32>,
    as_root: bool,
}

impl Merge {
    /// Merges the layer directory `src` into the real directory `dst`.
    fn merge_dir(&mut self, src: &Path, dst: &Path) -> Result<(), RootfsError> {
        let names = read_names(src)?;
        if names.iter().any(|name| name == OPAQUE) {
            for lower in read_names(dst)? {
                remove_any(&dst.join(lower))?;
            }
        }
        for hidden in names.iter().filter_map(|name| whiteout_target(name)) {
            remove_any(&dst.join(hidden))?;
        }
        for name in names
            .iter()
            .filter(|name| !name.as_bytes().starts_with(WHITEOUT))
        {
            self.merge_entry(&src.join(name), &dst.join(name))?;
        }
        Ok(())
    }

    fn merge_entry(&mut self, src: &Path, dst: &Path) -> Result<(), RootfsError> {
        let meta = fs::symlink_metadata(src).map_err(io_err(src))?;
        let kind = meta.file_type();
        if kind.is_dir() {
            // An upper directory replaces a lower non-directory (a symlink
            // included, which is removed, not followed).
            if !fs::symlink_metadata(dst).is_ok_and(|m| m.is_dir()) {
                remove_any(dst)?;
                fs::DirBuilder::new()
                    .mode(0o700)
                    .create(dst)
                    .map_err(io_err(dst))?;
            }
            self.dir_modes
                .insert(dst.to_path_buf(), meta.mode() & 0o7777);
            self.set_owner(dst, &meta)?;
            return self.merge_dir(src, dst);
        }
        remove_any(dst)?;
        if kind.is_file() {
            copy_file(src, dst)?;
        } else if kind.is_symlink() {
            let target = fs::read_link(src).map_err(io_err(src))?;
            symlink(target, dst).map_err(io_err(dst))?;
        } else if kind.is_fifo() {
            nix::unistd::mkfifo(dst, nix::sys::stat::Mode::S_IRUSR)
                .map_err(|e| io_err(dst)(e.into()))?;
        } else {
            return Err(RootfsError::Unsupported(src.to_path_buf()));
        }
        self.set_owner(dst, &meta)?;
        if !kind.is_symlink() {
            fs::set_permissions(dst, Permissions::from_mode(meta.mode() & 0o7777))
                .map_err(io_err(dst))?;
        }
        Ok(())
    }

    fn set_owner(&self, dst: &Path, meta: &Metadata) -> Result<(), RootfsError> {
        if !self.as_root {
            return Ok(());
        }
        lchown(dst, Some(meta.uid()), Some(meta.gid())).map_err(io_err(dst))
    }

    /// Walks the merged tree without following links, children before
    /// parents; directories removed by whiteouts are never visited.
    fn apply_dir_modes(&self, dir: &Path) -> Result<(), RootfsError> {
        for entry in fs::read_dir(dir).map_err(io_err(dir))? {
            let entry = entry.map_err(io_err(dir))?;
            if entry.file_type().map_err(io_err(dir))?.is_dir() {
                self.apply_dir_modes(&entry.path())?;
            }
        }
        match self.dir_modes.get(dir) {
            Some(mode) => {
                fs::set_permissions(dir, Permissions::from_mode(*mode)).map_err(io_err(dir))
            }
            None => Ok(()),
        }
    }
}

/// The names in `dir`, sorted; none if it does not exist.
fn read_names(dir: &Path) -> Result<Vec<OsString>, RootfsError> {
    let entries = match fs::read_dir(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        other => other.map_err(io_err(dir))?,
    };
    let mut names = entries
        .map(|e| e.map(|e| e.file_name()))
        .collect::<io::Result<Vec<_>>>()
        .map_err(io_err(dir))?;
    names.sort();
    Ok(names)
}

/// The name a `.wh.NAME` whiteout hides; `None` for other names, the opaque
/// marker and names that would hide the directory itself.
fn whiteout_target(name: &OsStr) -> Option<&OsStr> {
    let hidden = name.as_bytes().strip_prefix(WHITEOUT)?;
    let valid = !matches!(hidden, b"" | b"." | b"..") && name != OPAQUE;
    valid.then(|| OsStr::from_bytes(hidden))
}

/// Removes whatever is at `path` (a tree, a file or a link, never what a
/// link points to); absent is fine.
fn remove_any(path: &Path) -> Result<(), RootfsError> {
    let removed = match fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
        Ok(meta) if meta.is_dir() => remove_tree(path),
        Ok(_) => fs::remove_file(path),
    };
    removed.map_err(io_err(path))
}

fn copy_file(src: &Path, dst: &Path) -> Result<(), RootfsError> {
    let mut from = File::open(src).map_err(io_err(src))?;
    let mut options = OpenOptions::new();
    let mut to = options
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(dst)
        .map_err(io_err(dst))?;
    io::copy(&mut from, &mut to).map_err(io_err(dst))?;
    Ok(())
}

#[cfg(test)]
mod tests;
