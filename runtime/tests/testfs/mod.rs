//! Test fixture: rootfs dirs built offline from the host's `/bin/sh` and
//! `/bin/sleep` plus the shared libraries `ldd` says they need (the
//! approach of the native runtime's private fixture).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A rootfs with `/bin/sh`, `/bin/sleep`, their libraries, an empty `/srv`
/// and `/petrel-test` holding `marker` (so its image is the caller's own).
pub fn make_rootfs(dir: &Path, name: &str, marker: &str) -> PathBuf {
    let root = dir.join(name);
    for bin in ["/bin/sh", "/bin/sleep"] {
        copy_with_libs(Path::new(bin), &root);
    }
    fs::create_dir_all(root.join("srv")).expect("create srv");
    fs::write(root.join("petrel-test"), marker).expect("write marker");
    root
}

fn copy_with_libs(bin: &Path, root: &Path) {
    copy_into(bin, root);
    let out = Command::new("ldd").arg(bin).output().expect("run ldd");
    // A static binary makes ldd fail with nothing to copy: that is fine.
    for lib in parse_ldd(&String::from_utf8_lossy(&out.stdout)) {
        copy_into(&lib, root);
    }
}

/// Library paths of `ldd` output: `name => /path (addr)` lines and the
/// dynamic loader line that starts with `/`.
fn parse_ldd(text: &str) -> Vec<PathBuf> {
    let path = |line: &str| {
        let line = line.trim();
        let rest = line.split_once("=> ").map_or(line, |(_, rest)| rest);
        rest.split_whitespace()
            .next()
            .filter(|p| p.starts_with('/'))
            .map(PathBuf::from)
    };
    text.lines().filter_map(path).collect()
}

/// Copies host file `host` (following symlinks) to the same path in `root`.
fn copy_into(host: &Path, root: &Path) {
    let dest = root.join(host.strip_prefix("/").expect("absolute path"));
    fs::create_dir_all(dest.parent().expect("file has a parent")).expect("create dir");
    fs::copy(host, &dest).unwrap_or_else(|e| panic!("copy {}: {e}", host.display()));
}
