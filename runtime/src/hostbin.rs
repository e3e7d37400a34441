//! Making a root filesystem runnable from a host binary, offline: the
//! binary and the shared libraries `ldd` lists (with the dynamic loader),
//! copied to the same paths inside the root. Builds the sample app's image
//! and the test images, where no registry is reachable.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Copies `bin` to the same path under `root`, with its libraries.
pub fn copy_with_libs(bin: &Path, root: &Path) -> io::Result<()> {
    copy_into(bin, root)?;
    copy_libs(bin, root)
}

/// Copies the shared libraries `bin` needs to the same paths under `root`
/// (nothing for a static binary).
pub fn copy_libs(bin: &Path, root: &Path) -> io::Result<()> {
    let out = Command::new("ldd").arg(bin).output()?;
    for lib in parse_ldd(&String::from_utf8_lossy(&out.stdout)) {
        copy_into(&lib, root)?;
    }
    Ok(())
}

/// Library paths of `ldd` output: `name => /path (addr)` lines and the
/// dynamic loader line that starts with `/`.
pub fn parse_ldd(text: &str) -> Vec<PathBuf> {
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
fn copy_into(host: &Path, root: &Path) -> io::Result<()> {
    let rel = host
        .strip_prefix("/")
        .map_err(|_| io::Error::other(format!("{} is not absolute", host.display())))?;
    let dest = root.join(rel);
    if let Some(parent) = dest.parent() {
        fs::create_dir_all(parent)?;
    }
    fs::copy(host, &dest)
        .map_err(|e| io::Error::new(e.kind(), format!("copy {}: {e}", host.display())))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
