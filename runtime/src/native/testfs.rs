//! Test fixture: a minimal rootfs holding `/bin/sh` and `/bin/sleep` plus
//! the shared libraries `ldd` says they need, copied to the same paths, so
//! test scripts run the same chrooted (as root) and plain (as a user).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Builds `dir/rootfs` and returns its path.
pub(super) fn make_rootfs(dir: &Path) -> PathBuf {
    let root = dir.join("rootfs");
    for bin in ["/bin/sh", "/bin/sleep"] {
        copy_with_libs(Path::new(bin), &root);
    }
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

#[test]
fn ldd_output_yields_libraries_and_the_loader() {
    let text = "\tlinux-vdso.so.1 (0x00007ffd)\n\
                \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f46)\n\
                \t/lib64/ld-linux-x86-64.so.2 (0x00007f46)\n";
    let libs = parse_ldd(text);
    assert_eq!(
        libs,
        [
            PathBuf::from("/lib/x86_64-linux-gnu/libc.so.6"),
            "/lib64/ld-linux-x86-64.so.2".into()
        ]
    );
}
