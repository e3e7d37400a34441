//! Building an image from a directory: one deterministic layer tar.
//!
//! Determinism rule: the same directory contents always give the same tar
//! bytes, hence the same `diff_id` (and the same zstd blob), so rebuilding
//! an unchanged directory ships nothing new. Entries are sorted by path
//! (component-wise, so a directory comes before its contents), owner is
//! 0:0 with no user/group names, mtime is 0, permission bits (incl.
//! setuid/setgid/sticky) are kept, symlinks are stored as symlinks (targets
//! verbatim), directories are included, names are relative. Hard links are
//! stored as separate regular files; xattrs are not kept; sockets, fifos and
//! device nodes are refused.

use super::{manifest, ImageError};
use crate::blobs::BlobStore;
use petrel_protocol::{validate_name, ImageConfig, ImageManifest};
use std::fs::{self, File, Metadata};
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use tar::{EntryType, Header};

/// Builds image `name:tag` of one layer holding `dir`, stored in `blobs`.
pub fn build_from_dir(
    dir: &Path,
    name: &str,
    tag: &str,
    config: ImageConfig,
    blobs: &BlobStore,
) -> Result<ImageManifest, ImageError> {
    validate_name(name, 128)?;
    validate_name(tag, 128)?;
    let mut writer = blobs.layer_writer()?;
    tar_dir(dir, &mut writer)?;
    let layer = writer.finish(None)?;
    let variant = super::Variant {
        layers: vec![layer],
        config,
        platform: None,
    };
    Ok(manifest(name, tag, variant))
}

/// Writes the deterministic tar of `dir` (see the module doc) to `out`.
pub fn tar_dir(dir: &Path, out: impl Write) -> Result<(), ImageError> {
    let mut builder = tar::Builder::new(out);
    for rel in sorted_entries(dir)? {
        append(&mut builder, dir, &rel)?;
    }
    builder.into_inner().map_err(|source| ImageError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    Ok(())
}

/// Every path under `dir` (not following symlinks), relative, sorted.
fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>, ImageError> {
    let mut found = Vec::new();
    let mut pending = vec![PathBuf::new()];
    while let Some(rel) = pending.pop() {
        let path = dir.join(&rel);
        let read = fs::read_dir(&path).map_err(|source| ImageError::Io {
            path: path.clone(),
            source,
        })?;
        for entry in read {
            let entry = entry.map_err(|source| ImageError::Io {
                path: path.clone(),
                source,
            })?;
            let child = rel.join(entry.file_name());
            let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
            if is_dir {
                pending.push(child.clone());
            }
            found.push(child);
        }
    }
    found.sort();
    Ok(found)
}

fn append(
    builder: &mut tar::Builder<impl Write>,
    dir: &Path,
    rel: &Path,
) -> Result<(), ImageError> {
    let path = dir.join(rel);
    let io_err = |source| ImageError::Io {
        path: path.clone(),
        source,
    };
    let meta = fs::symlink_metadata(&path).map_err(io_err)?;
    let mut header = base_header(&meta);
    let kind = meta.file_type();
    if kind.is_dir() {
        header.set_entry_type(EntryType::Directory);
        builder
            .append_data(&mut header, rel, io::empty())
            .map_err(io_err)
    } else if kind.is_symlink() {
        let target = fs::read_link(&path).map_err(io_err)?;
        header.set_entry_type(EntryType::Symlink);
        builder
            .append_link(&mut header, rel, target)
            .map_err(io_err)
    } else if kind.is_file() {
        let file = File::open(&path).map_err(io_err)?;
        header.set_entry_type(EntryType::Regular);
        header.set_size(meta.len());
        builder
            .append_data(&mut header, rel, Exact::new(file, meta.len()))
            .map_err(io_err)
    } else {
        Err(ImageError::UnsupportedFile {
            path,
            reason: "not a regular file, directory or symlink",
        })
    }
}

/// A header with everything but the permission bits fixed.
fn base_header(meta: &Metadata) -> Header {
    let mut header = Header::new_gnu();
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header.set_size(0);
    header.set_mode(meta.permissions().mode() & 0o7777);
    header
}

/// Reads exactly `left` bytes and fails if the file is shorter or longer,
/// so a file changing while it is archived cannot corrupt the tar.
struct Exact<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Exact<R> {
    fn new(inner: R, len: u64) -> Self {
        Exact { inner, left: len }
    }
}

impl<R: Read> Read for Exact<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let changed = || {
            io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "file changed size while being archived",
            )
        };
        if self.left == 0 {
            return match self.inner.read(&mut [0u8; 1])? {
                0 => Ok(0),
                _ => Err(changed()),
            };
        }
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 && want > 0 {
            return Err(changed());
        }
        self.left -= n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::store;
    use super::*;
    use std::os::unix::fs::symlink;

    fn sample_dir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("b/c")).unwrap();
        fs::write(root.join("b/c/z.txt"), b"zzz").unwrap();
        fs::write(root.join("a.sh"), b"#!/bin/sh\necho hi\n").unwrap();
        fs::set_permissions(root.join("a.sh"), fs::Permissions::from_mode(0o755)).unwrap();
        fs::write(root.join("b/secret"), b"s").unwrap();
        fs::set_permissions(root.join("b/secret"), fs::Permissions::from_mode(0o600)).unwrap();
        symlink("/etc/hostname", root.join("b/link")).unwrap();
        dir
    }

    #[test]
    fn building_the_same_dir_twice_gives_the_same_diff_id_and_digest() {
        let (_store_dir, blobs) = store();
        let dir = sample_dir();
        let first = build_from_dir(dir.path(), "app", "1", ImageConfig::default(), &blobs).unwrap();
        // Touch every file: mtimes must not matter.
        let later = std::time::SystemTime::now() + std::time::Duration::from_secs(3600);
        File::options()
            .write(true)
            .open(dir.path().join("a.sh"))
            .unwrap()
            .set_modified(later)
            .unwrap();
        let second =
            build_from_dir(dir.path(), "app", "2", ImageConfig::default(), &blobs).unwrap();
        assert_eq!(first.layers, second.layers);
        assert_eq!(first.layers.len(), 1);
    }

    #[test]
    fn built_layer_round_trips_with_sorted_entries_modes_and_contents() {
        let (_store_dir, blobs) = store();
        let dir = sample_dir();
        let image = build_from_dir(dir.path(), "app", "1", ImageConfig::default(), &blobs).unwrap();
        let tar = zstd::decode_all(blobs.open_blob(&image.layers[0].digest).unwrap()).unwrap();
        assert_eq!(petrel_protocol::Digest::of(&tar), image.layers[0].diff_id);
        let mut archive = tar::Archive::new(&tar[..]);
        let mut seen = Vec::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let h = entry.header().clone();
            assert_eq!(
                (h.uid().unwrap(), h.gid().unwrap(), h.mtime().unwrap()),
                (0, 0, 0)
            );
            let name = entry.path().unwrap().display().to_string();
            let mut body = Vec::new();
            entry.read_to_end(&mut body).unwrap();
            let link = entry.link_name().unwrap().map(|l| l.display().to_string());
            seen.push((name, h.entry_type(), h.mode().unwrap(), body, link));
        }
        let names: Vec<&str> = seen.iter().map(|s| s.0.as_str()).collect();
        assert_eq!(
            names,
            ["a.sh", "b", "b/c", "b/c/z.txt", "b/link", "b/secret"]
        );
        assert_eq!(seen[0].2, 0o755);
        assert_eq!(seen[0].3, b"#!/bin/sh\necho hi\n");
        assert_eq!(seen[1].1, EntryType::Directory);
        assert_eq!(seen[3].3, b"zzz");
        assert_eq!(seen[4].1, EntryType::Symlink);
        assert_eq!(seen[4].4.as_deref(), Some("/etc/hostname"));
        assert_eq!(seen[5].2, 0o600);
    }

    #[test]
    fn tar_dir_output_is_the_stored_layer() {
        let (_store_dir, blobs) = store();
        let dir = sample_dir();
        let mut tar = Vec::new();
        tar_dir(dir.path(), &mut tar).unwrap();
        let image = build_from_dir(dir.path(), "app", "1", ImageConfig::default(), &blobs).unwrap();
        assert_eq!(petrel_protocol::Digest::of(&tar), image.layers[0].diff_id);
    }

    #[test]
    fn file_changing_size_while_archived_is_an_error() {
        let mut short = Exact::new(&b"ab"[..], 3);
        assert!(io::copy(&mut short, &mut io::sink()).is_err());
        let mut long = Exact::new(&b"abcd"[..], 3);
        assert!(io::copy(&mut long, &mut io::sink()).is_err());
        let mut exact = Exact::new(&b"abc"[..], 3);
        assert_eq!(io::copy(&mut exact, &mut io::sink()).unwrap(), 3);
    }
}
