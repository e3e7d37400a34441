//! Fresh directories for the harnesses that need files. On tmpfs
//! (`/dev/shm`) when there is one: the unpacker syncs what it writes, and a
//! sync there costs nothing.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use tempfile::TempDir;

fn base() -> PathBuf {
    let shm = Path::new("/dev/shm");
    match shm.is_dir() {
        true => shm.to_path_buf(),
        false => std::env::temp_dir(),
    }
}

/// A fresh directory, removed when dropped.
pub(crate) fn tempdir() -> TempDir {
    tempfile::Builder::new()
        .prefix("petrel-fuzz-")
        .tempdir_in(base())
        .expect("create a scratch directory")
}

/// A directory for the whole life of this process, `petrel-fuzz-NAME-PID`.
/// libFuzzer exits without dropping statics, so instead of being removed
/// at exit, those of processes no longer running are removed here.
pub(crate) fn process_dir(name: &str) -> PathBuf {
    let prefix = format!("petrel-fuzz-{name}-");
    for entry in fs::read_dir(base()).into_iter().flatten().flatten() {
        let file_name = entry.file_name();
        let pid = file_name.to_str().and_then(|n| n.strip_prefix(&prefix));
        let running = pid.is_some_and(|pid| Path::new("/proc").join(pid).exists());
        if pid.is_some() && !running {
            _ = fs::remove_dir_all(entry.path());
        }
    }
    let dir = base().join(format!("{prefix}{}", std::process::id()));
    fs::create_dir_all(&dir).expect("create the process's scratch directory");
    dir
}

/// Removes a tree whose directories may be read-only (an unpacked layer
/// keeps its modes): makes every directory writable first, never
/// following a symlink.
pub(crate) fn remove(dir: TempDir) {
    make_writable(dir.path());
    dir.close().expect("remove a scratch directory");
}

fn make_writable(dir: &Path) {
    let is_dir = fs::symlink_metadata(dir).is_ok_and(|m| m.is_dir());
    if !is_dir {
        return;
    }
    _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o700));
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        make_writable(&entry.path());
    }
}
