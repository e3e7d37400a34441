//! Safe unpacking of an outer image tarball (`docker save` or OCI layout)
//! into a scratch directory, so layers are read from disk and never held in
//! memory whole.
//!
//! Safety rule (DESIGN "Security": no absolute paths, no `..`, no links
//! escaping the root): every entry name is normalised and refused if it is
//! absolute or climbs out with `..`. Links are never created on disk: they
//! are kept in a table (targets checked to stay inside the archive) and
//! resolved on lookup, so no write or read can pass through a link to
//! somewhere else. Only regular files, directories and links are accepted.

use super::layers::sniff_and_decompress;
use super::ImageError;
use std::collections::HashMap;
use std::fs::{self, File};
use std::io;
use std::path::{Component, Path, PathBuf};
use tar::EntryType;
use tempfile::TempDir;

/// How many links one lookup may follow before it is called a loop.
const MAX_LINK_HOPS: usize = 16;

/// An unpacked outer tarball: files on disk plus a table of its links.
pub(crate) struct Unpacked {
    dir: TempDir,
    /// link name → target, both normalised relative to the archive root.
    links: HashMap<PathBuf, PathBuf>,
    /// The user's name for the archive, for errors while reading it.
    shown: String,
}

/// Unpacks `tarball` (plain, gzip or zstd) into a new temp directory under
/// `scratch`; `shown` names it in errors (the user's file, not the spool).
pub(crate) fn unpack(tarball: &Path, shown: &str, scratch: &Path) -> Result<Unpacked, ImageError> {
    let io_err = |source| ImageError::Io {
        path: scratch.to_path_buf(),
        source,
    };
    let dir = tempfile::Builder::new()
        .prefix("import-")
        .tempdir_in(scratch)
        .map_err(io_err)?;
    let mut unpacked = Unpacked {
        dir,
        links: HashMap::new(),
        shown: shown.to_string(),
    };
    let read_err = |source| ImageError::ReadTarball {
        file: shown.to_string(),
        source,
    };
    let file = File::open(tarball).map_err(read_err)?;
    let stream = sniff_and_decompress(file).map_err(read_err)?;
    let mut archive = tar::Archive::new(stream);
    for entry in archive.entries().map_err(read_err)? {
        unpacked.add(entry.map_err(read_err)?, shown)?;
    }
    Ok(unpacked)
}

impl Unpacked {
    fn add(&mut self, mut entry: tar::Entry<impl io::Read>, shown: &str) -> Result<(), ImageError> {
        let raw = entry.path().map_err(|source| ImageError::ReadTarball {
            file: shown.to_string(),
            source,
        })?;
        let shown = raw.display().to_string();
        let name = normalise(&raw).ok_or_else(|| ImageError::UnsafeEntry {
            entry: shown.clone(),
        })?;
        let kind = entry.header().entry_type();
        if name.as_os_str().is_empty() && kind != EntryType::Directory {
            return Err(ImageError::UnsafeEntry { entry: shown });
        }
        match kind {
            EntryType::Regular | EntryType::Continuous => self.write_file(&name, &mut entry),
            EntryType::Directory => self.make_dir(&name),
            EntryType::Symlink | EntryType::Link => {
                let target = link_target(&entry, &name, kind)
                    .ok_or(ImageError::UnsafeEntry { entry: shown })?;
                self.links.insert(name, target);
                Ok(())
            }
            EntryType::XGlobalHeader => Ok(()),
            _ => Err(ImageError::UnsupportedEntry {
                entry: shown,
                kind: format!("{kind:?}"),
            }),
        }
    }

    fn make_dir(&self, name: &Path) -> Result<(), ImageError> {
        let path = self.dir.path().join(name);
        fs::create_dir_all(&path).map_err(|source| ImageError::Io { path, source })
    }

    fn write_file(&self, name: &Path, data: &mut impl io::Read) -> Result<(), ImageError> {
        if let Some(parent) = name.parent() {
            self.make_dir(parent)?;
        }
        let path = self.dir.path().join(name);
        let mut file = File::create(&path).map_err(|source| ImageError::Io {
            path: path.clone(),
            source,
        })?;
        // Read errors are the archive's (truncated, corrupt compression),
        // write errors the scratch directory's.
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match data.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => {
                    let file = self.shown.clone();
                    return Err(ImageError::ReadTarball { file, source });
                }
            };
            io::Write::write_all(&mut file, &buf[..n]).map_err(|source| ImageError::Io {
                path: path.clone(),
                source,
            })?;
        }
    }

    /// Whether the archive holds a regular file of this name (links followed).
    pub(crate) fn has_file(&self, name: &str) -> bool {
        self.resolve(name).map(|p| p.is_file()).unwrap_or(false)
    }

    /// The on-disk path of an archive member named by the image's own
    /// metadata (outside data: checked like entry names, links followed).
    pub(crate) fn resolve(&self, name: &str) -> Result<PathBuf, ImageError> {
        let unsafe_name = || ImageError::UnsafeEntry { entry: name.into() };
        let mut path = normalise(Path::new(name)).ok_or_else(unsafe_name)?;
        for _ in 0..MAX_LINK_HOPS {
            match self.follow_once(&path) {
                Some(next) => path = next,
                None => return Ok(self.dir.path().join(path)),
            }
        }
        Err(ImageError::LinkLoop { entry: name.into() })
    }

    /// Replaces the longest linked prefix of `path` by its target, if any.
    fn follow_once(&self, path: &Path) -> Option<PathBuf> {
        path.ancestors().find_map(|prefix| {
            let target = self.links.get(prefix)?;
            let rest = path.strip_prefix(prefix).ok()?;
            // `join("")` would add a trailing `/`: keep the target as is.
            Some(match rest.as_os_str().is_empty() {
                true => target.clone(),
                false => target.join(rest),
            })
        })
    }

    /// Opens an archive member; a missing one is [`ImageError::Missing`].
    pub(crate) fn open(&self, name: &str) -> Result<(PathBuf, File), ImageError> {
        let path = self.resolve(name)?;
        match File::open(&path) {
            Ok(file) => Ok((path, file)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Err(ImageError::Missing { entry: name.into() })
            }
            Err(source) => Err(ImageError::Io { path, source }),
        }
    }
}

/// A link's target, normalised relative to the archive root, or `None` if it
/// is absolute or leaves the archive. Symlink targets are relative to the
/// link's directory; hard link targets to the archive root.
fn link_target(entry: &tar::Entry<impl io::Read>, name: &Path, kind: EntryType) -> Option<PathBuf> {
    let target = entry.link_name().ok()??;
    let base = match kind {
        EntryType::Symlink => name.parent().unwrap_or(Path::new("")),
        _ => Path::new(""),
    };
    normalise(&base.join(target))
}

/// Lexically normalises a relative archive path: drops `.`, applies `..`
/// within the path, and returns `None` for absolute paths or any `..` that
/// would climb above the root.
pub(crate) fn normalise(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => out.push(part),
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{raw_entry, tarball, TarEntry};
    use super::*;

    /// Unpacks `entries`; the first value keeps the scratch dir alive.
    fn unpack_entries(entries: &[TarEntry]) -> (tempfile::TempDir, Result<Unpacked, ImageError>) {
        let dir = tempfile::tempdir().unwrap();
        let path = tarball(dir.path(), entries);
        let unpacked = unpack(&path, "probe.tar", dir.path());
        (dir, unpacked)
    }

    #[test]
    fn outer_tarball_entry_with_parent_dir_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("evil.tar");
        fs::write(&path, raw_entry("../evil", b"x")).unwrap();
        let err = unpack(&path, "evil.tar", dir.path())
            .err()
            .expect("accepted ../");
        assert!(matches!(err, ImageError::UnsafeEntry { .. }), "{err}");
        assert!(err.to_string().contains("../evil"), "{err}");
        assert!(!dir.path().join("evil").exists());
    }

    #[test]
    fn outer_tarball_entry_with_absolute_name_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("evil.tar");
        fs::write(&path, raw_entry("/tmp/evil", b"x")).unwrap();
        let err = unpack(&path, "evil.tar", dir.path())
            .err()
            .expect("accepted /tmp/evil");
        assert!(err.to_string().contains("/tmp/evil"), "{err}");
    }

    #[test]
    fn outer_symlink_escaping_the_archive_is_refused() {
        let (_dir, unpacked) = unpack_entries(&[TarEntry::symlink("a/link", "../../etc/passwd")]);
        let err = unpacked.err().expect("accepted escaping link");
        assert!(matches!(err, ImageError::UnsafeEntry { .. }), "{err}");
    }

    #[test]
    fn members_are_found_through_links_but_names_cannot_climb_out() {
        let (_dir, unpacked) = unpack_entries(&[
            TarEntry::file("one/layer.tar", b"layer"),
            TarEntry::symlink("two/layer.tar", "../one/layer.tar"),
            TarEntry::symlink("three", "two"),
        ]);
        let unpacked = unpacked.unwrap();
        for name in ["two/layer.tar", "three/layer.tar", "./one/layer.tar"] {
            let (_, file) = unpacked.open(name).unwrap();
            assert_eq!(io::read_to_string(file).unwrap(), "layer");
        }
        assert!(matches!(
            unpacked.open("missing"),
            Err(ImageError::Missing { .. })
        ));
        assert!(matches!(
            unpacked.resolve("../x"),
            Err(ImageError::UnsafeEntry { .. })
        ));
    }
}
