//! Root filesystem assembly: an image's layers, base first, merged into one
//! directory tree for its services to run in.
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

/// Builds `dest` from `layers` (base first), unless `dest` exists already.
pub fn assemble(layers: &[PathBuf], dest: &Path) -> Result<(), RootfsError> {
    if fs::symlink_metadata(dest).is_ok() {
        return Ok(());
    }
    if let Some(missing) = layers.iter().find(|layer| !layer.is_dir()) {
        return Err(RootfsError::MissingLayer(missing.clone()));
    }
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

/// Removes an assembled rootfs; removing an absent one is not an error.
pub fn remove(dest: &Path) -> Result<(), RootfsError> {
    discard_dir(dest).map_err(io_err(dest))
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
mod tests {
    use super::*;
    use tempfile::TempDir;

    /// Creates `path` under `root`: a directory if it ends in `/`, a symlink
    /// if `spec` starts with `-> `, else a file holding `spec`.
    fn put(root: &Path, path: &str, spec: &str) {
        let full = root.join(path);
        fs::create_dir_all(if path.ends_with('/') {
            &full
        } else {
            full.parent().unwrap()
        })
        .unwrap();
        match spec.strip_prefix("-> ") {
            _ if path.ends_with('/') => {}
            Some(target) => symlink(target, &full).unwrap(),
            None => fs::write(&full, spec).unwrap(),
        }
    }

    /// Builds one layer directory per list of `(path, spec)` under `dir`.
    fn layers(dir: &Path, specs: &[&[(&str, &str)]]) -> Vec<PathBuf> {
        let mut paths = Vec::new();
        for (i, spec) in specs.iter().enumerate() {
            let layer = dir.join(format!("layer{i}"));
            fs::create_dir_all(&layer).unwrap();
            spec.iter().for_each(|(path, spec)| put(&layer, path, spec));
            paths.push(layer);
        }
        paths
    }

    fn read(root: &Path, path: &str) -> Option<String> {
        fs::read_to_string(root.join(path)).ok()
    }

    fn assembled(specs: &[&[(&str, &str)]]) -> (TempDir, PathBuf) {
        let dir = TempDir::new().unwrap();
        let dest = dir.path().join("rootfs");
        assemble(&layers(dir.path(), specs), &dest).unwrap();
        (dir, dest)
    }

    #[test]
    fn upper_layers_override_lower_files_and_keep_modes() {
        let dir = TempDir::new().unwrap();
        let lower: &[(&str, &str)] = &[("a", "1"), ("d/x", "x"), ("d/y", "y")];
        let paths = layers(dir.path(), &[lower, &[("a", "2"), ("d/z", "z")]]);
        let set_mode = |path: &str, mode| {
            fs::set_permissions(paths[1].join(path), Permissions::from_mode(mode))
        };
        let as_root = nix::unistd::geteuid().is_root();
        if as_root {
            lchown(paths[1].join("d/z"), Some(1000), Some(1000)).unwrap();
        }
        set_mode("d/z", 0o4750).unwrap();
        set_mode("d", 0o510).unwrap();
        let root = dir.path().join("rootfs");
        assemble(&paths, &root).unwrap();
        let found = ["a", "d/x", "d/y", "d/z"].map(|p| read(&root, p));
        assert_eq!(found, ["2", "x", "y", "z"].map(|s| Some(s.to_string())));
        let mode = |path: &str| fs::metadata(root.join(path)).unwrap().mode() & 0o7777;
        assert_eq!(
            (mode("d/z"), mode("d"), mode("d/x")),
            (0o4750, 0o510, 0o644)
        );
        assert!(!as_root || fs::metadata(root.join("d/z")).unwrap().uid() == 1000);
    }

    #[test]
    fn whiteouts_delete_lower_entries_and_are_not_copied() {
        let lower: &[(&str, &str)] = &[
            ("a/keep", "k"),
            ("a/gone", "g"),
            ("dir/x/y", "y"),
            ("same", "old"),
        ];
        let upper: &[(&str, &str)] = &[
            ("a/.wh.gone", ""),
            (".wh.dir", ""),
            (".wh.same", ""),
            ("same", "new"),
        ];
        let (_dir, root) = assembled(&[lower, upper]);
        assert_eq!(read(&root, "a/keep").as_deref(), Some("k"));
        assert!(!root.join("a/gone").exists() && !root.join("dir").exists());
        assert_eq!(read(&root, "same").as_deref(), Some("new"));
        assert!(!root.join("a/.wh.gone").exists() && !root.join(".wh.dir").exists());
    }

    #[test]
    fn an_opaque_directory_hides_lower_contents_but_keeps_its_own() {
        let lower: &[(&str, &str)] = &[("etc/old", "o"), ("etc/sub/deep", "d"), ("other", "x")];
        let upper: &[(&str, &str)] = &[("etc/.wh..wh..opq", ""), ("etc/new", "n")];
        let (_dir, root) = assembled(&[lower, upper]);
        let names: Vec<_> = read_names(&root.join("etc")).unwrap();
        assert_eq!(names, ["new"]);
        assert_eq!(read(&root, "other").as_deref(), Some("x"));
    }

    #[test]
    fn symlinks_are_copied_as_links_and_never_followed() {
        let outside = TempDir::new().unwrap();
        let out = outside.path().to_str().unwrap().to_string();
        let lower: &[(&str, &str)] = &[
            ("etc-link", "-> /etc"),
            ("rel", "-> a/f"),
            ("dangling", "-> nowhere"),
        ];
        let esc = format!("-> {out}");
        let upper: &[(&str, &str)] = &[("esc", &esc)];
        let top: &[(&str, &str)] = &[("esc/x", "written"), ("rel", "-> other")];
        let (_dir, root) = assembled(&[lower, upper, top]);
        assert_eq!(
            fs::read_link(root.join("etc-link")).unwrap(),
            Path::new("/etc")
        );
        assert_eq!(
            fs::read_link(root.join("dangling")).unwrap(),
            Path::new("nowhere")
        );
        assert_eq!(fs::read_link(root.join("rel")).unwrap(), Path::new("other"));
        assert!(fs::symlink_metadata(root.join("esc")).unwrap().is_dir());
        assert_eq!(read(&root, "esc/x").as_deref(), Some("written"));
        assert_eq!(fs::read_dir(outside.path()).unwrap().count(), 0);
    }

    #[test]
    fn writes_to_the_rootfs_never_reach_the_layer() {
        let (dir, root) = assembled(&[&[("bin/app", "v1")]]);
        let layer_file = dir.path().join("layer0/bin/app");
        let ino = |path: &Path| fs::metadata(path).unwrap().ino();
        assert_ne!(ino(&layer_file), ino(&root.join("bin/app")));
        fs::write(root.join("bin/app"), "changed").unwrap();
        assert_eq!(
            read(&dir.path().join("layer0"), "bin/app").as_deref(),
            Some("v1")
        );
    }

    #[test]
    fn an_existing_rootfs_is_kept_and_remove_deletes_it() {
        let (dir, root) = assembled(&[&[("a", "1")]]);
        let other = layers(&dir.path().join("more"), &[&[("a", "2")]]);
        assemble(&other, &root).unwrap();
        assert_eq!(read(&root, "a").as_deref(), Some("1"));
        remove(&root).unwrap();
        assert!(!root.exists());
        remove(&root).unwrap();
        assert_eq!(remove_stale(dir.path()).unwrap(), 0);
    }

    #[test]
    fn a_missing_layer_is_an_error_and_leaves_nothing_behind() {
        let dir = TempDir::new().unwrap();
        let dest = dir.path().join("out/rootfs");
        let err = assemble(&[dir.path().join("absent")], &dest).unwrap_err();
        assert!(matches!(err, RootfsError::MissingLayer(_)), "{err}");
        assert!(!dir.path().join("out").exists());
    }
}
