//! The overlayfs backend: the image's layers from the layer store, stacked
//! read-only under a per-image writable upper directory and mounted at the
//! rootfs path, so assembly copies nothing and services share the layers'
//! page cache.
//!
//! The layer store keeps OCI whiteouts as the plain files the tar held
//! (`.wh.NAME`, `.wh..wh..opq`), which overlayfs does not read. Rather than
//! rewriting layers, assembly derives two kinds of small directories:
//! below each layer that has whiteouts, `whN` with a 0/0 character device
//! for every `.wh.NAME` and the `trusted.overlay.opaque` xattr on every
//! opaque directory, which hides lower layers' entries but not the layer's
//! own; and on top of all, `hide`, which hides the `.wh.*` files themselves.
//!
//! State lives in `<rootfs>.overlay/` (`upper/`, `work/`, the derived
//! directories, and `lower`: the lowerdir list, top first, so the rootfs can
//! be mounted again after a reboot by [`ensure_mounted`]). Assembly of one
//! rootfs is not run concurrently (the agent installs releases one at a time).

use crate::layers::{commit_dir, create_temp_dir, discard_dir, remove_tree, sync_parent};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::stat::{mknod, Mode, SFlag};
use std::ffi::CString;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{lchown, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

const WHITEOUT: &[u8] = b".wh.";
const OPAQUE: &[u8] = b".wh..wh..opq";
/// Mount options beyond this length are refused by the kernel (a page).
const MAX_OPTIONS: usize = 4000;

/// The state directory of the overlay rootfs at `dest`.
pub(super) fn state_dir(dest: &Path) -> PathBuf {
    let mut name = dest.file_name().unwrap_or_default().to_os_string();
    name.push(".overlay");
    dest.with_file_name(name)
}

/// Builds the state of `layers` (base first) and mounts it at `dest`,
/// which must not exist. On error nothing is left behind.
pub(super) fn assemble(layers: &[PathBuf], dest: &Path) -> io::Result<()> {
    let state = state_dir(dest);
    // A crash between committing the state and mounting leaves a state
    // without a rootfs: start over.
    discard_dir(&state)?;
    let tmp = create_temp_dir(&state)?;
    let built = build_state(layers, &tmp, &state).and_then(|()| commit_dir(&tmp, &state));
    if let Err(e) = built {
        let _ = remove_tree(&tmp);
        return Err(e);
    }
    // The mount point is synced into its directory before the install that
    // made it is journaled: a power cut after the swap lost it otherwise,
    // and the release's services could not mount their root again.
    let mounted = fs::create_dir(dest)
        .and_then(|()| sync_parent(dest))
        .and_then(|()| mount_at(dest, &state));
    if let Err(e) = mounted {
        let _ = fs::remove_dir(dest);
        let _ = discard_dir(&state);
        return Err(e);
    }
    Ok(())
}

/// Mounts the overlay rootfs at `dest` again if it has state but is not
/// mounted (after a reboot). A copied rootfs is left alone.
pub fn ensure_mounted(dest: &Path) -> io::Result<()> {
    let state = state_dir(dest);
    if !state.is_dir() || is_mount_point(dest)? {
        return Ok(());
    }
    mount_at(dest, &state)
}

/// Unmounts the overlay rootfs at `dest` if it is mounted, keeping its
/// state (as a reboot would: [`ensure_mounted`] mounts it again). Returns
/// whether it was mounted.
pub fn unmount(dest: &Path) -> io::Result<bool> {
    if dest.is_dir() && state_dir(dest).is_dir() && is_mount_point(dest)? {
        umount2(dest, MntFlags::MNT_DETACH)?;
        return Ok(true);
    }
    Ok(false)
}

/// Unmounts `dest` if something is mounted there (only an overlay rootfs
/// ever is), then deletes it and its overlay state, if any.
pub(super) fn remove(dest: &Path) -> io::Result<()> {
    if dest.is_dir() && is_mount_point(dest)? {
        umount2(dest, MntFlags::MNT_DETACH)?;
    }
    discard_dir(dest)?;
    discard_dir(&state_dir(dest))
}

/// Whether `dir` is the root of a mount (its device differs from its parent's).
fn is_mount_point(dir: &Path) -> io::Result<bool> {
    let Ok(meta) = fs::symlink_metadata(dir) else {
        return Ok(false);
    };
    let parent = fs::metadata(dir.join(".."))?;
    Ok(meta.dev() != parent.dev())
}

fn mount_at(dest: &Path, state: &Path) -> io::Result<()> {
    let text = fs::read_to_string(state.join("lower"))?;
    let lower: Vec<PathBuf> = text.lines().map(|l| state.join(l)).collect();
    let joined = |paths: &[PathBuf]| -> io::Result<String> {
        let mut parts = Vec::new();
        for p in paths {
            let s = p.to_str().filter(|s| !s.contains([':', ',', '\n']));
            parts.push(s.ok_or_else(|| invalid(format!("unusable path {}", p.display())))?);
        }
        Ok(parts.join(":"))
    };
    let options = format!(
        "lowerdir={},upperdir={},workdir={}",
        joined(&lower)?,
        joined(&[state.join("upper")])?,
        joined(&[state.join("work")])?,
    );
    if options.len() > MAX_OPTIONS {
        return Err(invalid("too many layers for one overlay mount".into()));
    }
    mount(
        Some("overlay"),
        dest,
        Some("overlay"),
        MsFlags::empty(),
        Some(options.as_str()),
    )?;
    Ok(())
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

/// Fills `tmp` (to be renamed to `state`) with `upper/`, `work/`, the
/// derived whiteout directories and the `lower` list.
fn build_state(layers: &[PathBuf], tmp: &Path, state: &Path) -> io::Result<()> {
    for dir in ["upper", "work", "hide"] {
        fs::create_dir(tmp.join(dir))?;
    }
    // Bottom first; reversed at the end.
    let mut lower: Vec<PathBuf> = Vec::new();
    let mut any_hidden = false;
    for (k, layer) in layers.iter().enumerate() {
        let wh = format!("wh{k}");
        let mut scan = Scan {
            layers,
            wh: tmp.join(&wh),
            hide: tmp.join("hide"),
            found: false,
        };
        scan.walk(layer, Path::new(""))?;
        // The base layer's whiteouts have nothing below them to hide.
        if scan.found && k > 0 {
            lower.push(PathBuf::from(&wh));
        }
        any_hidden |= scan.found;
        lower.push(layer.canonicalize()?);
    }
    if any_hidden {
        lower.push(PathBuf::from("hide"));
    }
    lower.reverse();
    let mut list = String::new();
    for p in &lower {
        let line = p.to_str().filter(|s| !s.contains('\n'));
        list.push_str(line.ok_or_else(|| invalid(format!("unusable path {}", p.display())))?);
        list.push('\n');
    }
    // Checked now so a layer path the mount cannot take fails assembly
    // (and the copy backend is used) instead of a later remount.
    if list.len() + state.as_os_str().len() * (lower.len() + 2) > MAX_OPTIONS {
        return Err(invalid("too many layers for one overlay mount".into()));
    }
    fs::write(tmp.join("lower"), list)
}

/// One layer's walk for whiteouts.
struct Scan<'a> {
    /// Every layer of the image (for directory modes).
    layers: &'a [PathBuf],
    wh: PathBuf,
    hide: PathBuf,
    found: bool,
}

impl Scan<'_> {
    fn walk(&mut self, layer: &Path, rel: &Path) -> io::Result<()> {
        for entry in fs::read_dir(layer.join(rel))? {
            let entry = entry?;
            let name = entry.file_name();
            let bytes = name.as_bytes();
            if let Some(target) = bytes.strip_prefix(WHITEOUT) {
                self.found = true;
                self.mkdirs_like(&self.hide, rel)?;
                whiteout(&self.hide.join(rel).join(&name))?;
                fs::create_dir_all(self.wh.join(rel))?;
                if bytes == OPAQUE {
                    set_opaque(&self.wh.join(rel))?;
                } else if !target.is_empty() {
                    whiteout(&self.wh.join(rel).join(std::ffi::OsStr::from_bytes(target)))?;
                }
            } else if entry.file_type()?.is_dir() {
                self.walk(layer, &rel.join(&name))?;
            }
        }
        Ok(())
    }

    /// Creates `base/rel` with, for each new directory, the mode and owner
    /// of the topmost layer's directory at that path: in `hide`, on top of
    /// the stack, its directories are the ones the rootfs shows.
    fn mkdirs_like(&self, base: &Path, rel: &Path) -> io::Result<()> {
        let mut path = PathBuf::new();
        for part in rel.components() {
            path.push(part);
            let dir = base.join(&path);
            if dir.is_dir() {
                continue;
            }
            fs::create_dir(&dir)?;
            let source = self.layers.iter().rev().map(|l| l.join(&path));
            if let Some(meta) = source.filter_map(|p| fs::symlink_metadata(p).ok()).next() {
                fs::set_permissions(&dir, fs::Permissions::from_mode(meta.mode() & 0o7777))?;
                lchown(&dir, Some(meta.uid()), Some(meta.gid()))?;
            }
        }
        Ok(())
    }
}

/// An overlayfs whiteout: a character device 0/0.
fn whiteout(path: &Path) -> io::Result<()> {
    mknod(path, SFlag::S_IFCHR, Mode::empty(), 0)?;
    Ok(())
}

fn set_opaque(dir: &Path) -> io::Result<()> {
    let path = CString::new(dir.as_os_str().as_bytes())?;
    let (name, value) = (c"trusted.overlay.opaque", b"y");
    // SAFETY: valid C strings and a value buffer of the given length.
    let rc = unsafe {
        nix::libc::setxattr(
            path.as_ptr(),
            name.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
