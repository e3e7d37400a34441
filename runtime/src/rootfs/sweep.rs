//! Unmounting every root filesystem under a directory: for whoever owns
//! many data dirs at once and drops them (the fleet simulator's virtual
//! devices each mount overlays; left mounted, a 10,000-device run filled
//! the kernel's table of 100,000 mounts and every later mount or
//! namespaced spawn on the machine failed with ENOSPC).

use nix::mount::{umount2, MntFlags};
use std::io;
use std::path::{Path, PathBuf};

/// The mount points at or under `dir`, deepest first (as the kernel
/// lists them in `/proc/self/mountinfo`).
pub fn mounts_under(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let table = std::fs::read_to_string("/proc/self/mountinfo")?;
    let mut out: Vec<PathBuf> = table
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| PathBuf::from(unescape(p)))
        .filter(|p| p.starts_with(dir))
        .collect();
    out.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    out.dedup();
    Ok(out)
}

/// Detaches every mount at or under `dir`; how many there were.
pub fn unmount_all_under(dir: &Path) -> io::Result<usize> {
    let mounts = mounts_under(dir)?;
    for m in &mounts {
        umount2(m, MntFlags::MNT_DETACH)
            .map_err(|e| io::Error::other(format!("unmounting {}: {e}", m.display())))?;
    }
    Ok(mounts.len())
}

/// `/proc/self/mountinfo` writes space, tab, newline and backslash in
/// paths as three octal digits after a backslash.
fn unescape(p: &str) -> String {
    let bytes = p.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).and_then(|d| {
            let s = std::str::from_utf8(d).ok()?;
            u8::from_str_radix(s, 8).ok()
        });
        match (bytes[i], octal) {
            (b'\\', Some(b)) => {
                out.push(b);
                i += 4;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaped_mount_paths_read_back_as_written() {
        assert_eq!(unescape(r"/tmp/a\040b\011c\134d"), "/tmp/a b\tc\\d");
        assert_eq!(unescape(r"/plain/path"), "/plain/path");
        assert_eq!(unescape(r"/odd\04"), r"/odd\04");
    }

    #[test]
    fn nothing_is_mounted_under_a_fresh_directory() {
        let dir = tempfile::tempdir().unwrap();
        assert!(mounts_under(dir.path()).unwrap().is_empty());
        assert_eq!(unmount_all_under(dir.path()).unwrap(), 0);
    }
}
