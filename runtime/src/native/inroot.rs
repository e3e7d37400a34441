//! Reading a small file of an image by its path *inside* the rootfs, as a
//! process chrooted there would see it: symlinks are followed relative to
//! the rootfs (an absolute link restarts at its root, `..` stops there), so
//! an image whose `/etc/passwd` links to `/etc/shadow` reads the image's
//! shadow file, never the host's. The file must be a regular file no larger
//! than the given limit (a link to `/dev/zero` must not make us read
//! forever).

use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};

/// Links followed before giving up, as the kernel's `ELOOP` limit.
const MAX_LINKS: usize = 40;

/// The contents of `inside` (absolute, within `root`) as text (invalid
/// UTF-8 replaced), or `None` when it does not exist.
pub(crate) fn read_small(root: &Path, inside: &str, limit: u64) -> io::Result<Option<String>> {
    let Some(host) = resolve(root, inside)? else {
        return Ok(None);
    };
    // Checked before opening too: opening a device or a FIFO can block or
    // have side effects.
    if !host.symlink_metadata()?.is_file() {
        return Err(io::Error::other("not a regular file"));
    }
    let file = match OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
        .open(&host)
    {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    if !file.metadata()?.is_file() {
        return Err(io::Error::other("not a regular file"));
    }
    read_limited(file, limit).map(Some)
}

fn read_limited(file: File, limit: u64) -> io::Result<String> {
    let mut bytes = Vec::new();
    file.take(limit.saturating_add(1)).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(io::Error::other(format!("larger than {limit} bytes")));
    }
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Host path of `inside` with every symlink on the way resolved within
/// `root`; `None` when a component does not exist.
pub(crate) fn resolve(root: &Path, inside: &str) -> io::Result<Option<PathBuf>> {
    let mut done: Vec<OsString> = Vec::new();
    let mut todo: Vec<OsString> = names(Path::new(inside));
    todo.reverse();
    let mut links = 0;
    while let Some(name) = todo.pop() {
        if name == ".." {
            done.pop();
            continue;
        }
        let host = host_path(root, &done).join(&name);
        let meta = match host.symlink_metadata() {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        if !meta.file_type().is_symlink() {
            done.push(name);
            continue;
        }
        links += 1;
        if links > MAX_LINKS {
            return Err(io::Error::other("too many levels of symbolic links"));
        }
        let target = std::fs::read_link(&host)?;
        if target.is_absolute() {
            done.clear();
        }
        todo.extend(names(&target).into_iter().rev());
    }
    Ok(Some(host_path(root, &done)))
}

/// The normal and `..` components of `path`, in order.
fn names(path: &Path) -> Vec<OsString> {
    path.components()
        .filter_map(|c| match c {
            Component::Normal(name) => Some(name.to_os_string()),
            Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .collect()
}

fn host_path(root: &Path, names: &[OsString]) -> PathBuf {
    let mut path = root.to_path_buf();
    path.extend(names);
    path
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn root_with_etc() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("root/etc")).unwrap();
        dir
    }

    #[test]
    fn a_plain_file_is_read_and_a_missing_one_is_none() {
        let dir = root_with_etc();
        let root = dir.path().join("root");
        std::fs::write(root.join("etc/passwd"), "root:x:0:0::/root:/bin/sh\n").unwrap();
        let text = read_small(&root, "/etc/passwd", 1024).unwrap();
        assert_eq!(text.as_deref(), Some("root:x:0:0::/root:/bin/sh\n"));
        assert_eq!(read_small(&root, "/etc/group", 1024).unwrap(), None);
    }

    #[test]
    fn an_absolute_link_is_followed_inside_the_rootfs_not_on_the_host() {
        let dir = root_with_etc();
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("usr/lib")).unwrap();
        std::fs::write(root.join("usr/lib/passwd"), "image").unwrap();
        symlink("/usr/lib/passwd", root.join("etc/passwd")).unwrap();
        let text = read_small(&root, "/etc/passwd", 1024).unwrap();
        assert_eq!(text.as_deref(), Some("image"));
    }

    #[test]
    fn dot_dot_in_a_link_stops_at_the_rootfs() {
        let dir = root_with_etc();
        let root = dir.path().join("root");
        std::fs::write(dir.path().join("secret"), "host").unwrap();
        symlink("../../../secret", root.join("etc/passwd")).unwrap();
        assert_eq!(read_small(&root, "/etc/passwd", 1024).unwrap(), None);
        std::fs::write(root.join("secret"), "image").unwrap();
        let text = read_small(&root, "/etc/passwd", 1024).unwrap();
        assert_eq!(text.as_deref(), Some("image"));
    }

    #[test]
    fn a_link_loop_is_an_error_not_a_hang() {
        let dir = root_with_etc();
        let root = dir.path().join("root");
        symlink("/etc/group", root.join("etc/passwd")).unwrap();
        symlink("/etc/passwd", root.join("etc/group")).unwrap();
        assert!(read_small(&root, "/etc/passwd", 1024).is_err());
    }

    #[test]
    fn a_device_or_an_oversized_file_is_refused() {
        let dir = root_with_etc();
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("dev")).unwrap();
        symlink("/dev/zero", root.join("etc/passwd")).unwrap();
        // Inside the rootfs /dev/zero does not exist: nothing to read.
        assert_eq!(read_small(&root, "/etc/passwd", 1024).unwrap(), None);
        std::fs::write(root.join("etc/group"), vec![b'x'; 2048]).unwrap();
        assert!(read_small(&root, "/etc/group", 1024).is_err());
        std::fs::create_dir_all(root.join("etc/shadow")).unwrap();
        assert!(read_small(&root, "/etc/shadow", 1024).is_err());
    }
}
