//! Defensive unpacking of one layer blob (a zstd-compressed tar from outside
//! the device) into a directory, verified against its `diff_id`.
//!
//! Every entry is checked before anything is written, by the rules of
//! `petrel_protocol::layer_policy` (DESIGN, "Security"), which the
//! controller also runs when an image is imported, so an import reports
//! exactly what devices will skip, strip or refuse. `tar`'s own `unpack_in`
//! is not used: it skips bad entries silently and still creates escaping
//! symlinks (DESIGN, "Known behaviour of the chosen crates"). On top of the
//! policy, the filesystem is checked as it is written:
//! - nothing is written through a symlink: every parent of an entry must be
//!   a real directory of the tree, whatever is already at the path is removed
//!   first and files are created with `O_EXCL`;
//! - a hard link's source must be a regular file in the tree;
//! - character and block devices are recorded and skipped, as Docker does
//!   for layers made from a rootfs tarball: the runtime provides `/dev`;
//! - [`UnpackLimits`] caps the stream, each file and the number of entries.
//!
//! Modes are kept (masked to `0o7777`) except the setuid and setgid bits,
//! which are stripped (and counted) unless [`UnpackLimits::allow_setid`];
//! owners are kept only when running as root; mtimes are not kept. Known gap: `tar` buffers GNU
//! long-name and PAX records in memory, bounded only by the stream limit;
//! blobs reach this point only once their digest has been checked. OCI whiteouts (`.wh.*`) are plain
//! empty files here: [`crate::rootfs`] interprets them.
//!
//! The tree is built in a temporary sibling of `dest`; the whole stream,
//! trailing bytes included, is hashed; only if the digest matches is the tree
//! synced and renamed to `dest`. On any error the temporary tree is removed.

use crate::layers::{commit_dir, create_temp_dir, remove_tree};
use petrel_protocol::Digest;

use std::collections::BTreeMap;
use std::fmt::Display;
use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{lchown, symlink, DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

mod guard;
mod types;

use guard::HashingReader;
use petrel_protocol::layer_policy::{relative_path, EntryKind, LayerAudit, Treatment};
pub use types::{UnpackError, UnpackLimits, UnpackStats};

/// Unpacks `blob` into `dest` with the default [`UnpackLimits`].
pub fn unpack_layer(
    blob: &Path,
    expected_diff_id: &Digest,
    dest: &Path,
) -> Result<UnpackStats, UnpackError> {
    unpack_layer_with(blob, expected_diff_id, dest, UnpackLimits::default())
}

/// Unpacks `blob` into `dest` (which must not exist) if its uncompressed tar
/// hashes to `expected_diff_id`; otherwise leaves nothing behind.
pub fn unpack_layer_with(
    blob: &Path,
    expected_diff_id: &Digest,
    dest: &Path,
    limits: UnpackLimits,
) -> Result<UnpackStats, UnpackError> {
    let io_err = |source| UnpackError::Io {
        blob: blob.into(),
        path: dest.into(),
        source,
    };
    if fs::symlink_metadata(dest).is_ok() {
        let exists = io::Error::new(io::ErrorKind::AlreadyExists, "destination exists");
        return Err(io_err(exists));
    }
    let root = create_temp_dir(dest).map_err(io_err)?;
    let mut unpacker = Unpacker {
        blob,
        root,
        limits,
        stats: UnpackStats::default(),
        dir_modes: BTreeMap::new(),
        as_root: nix::unistd::geteuid().is_root(),
        audit: LayerAudit::new(limits.allow_setid),
        entry: PathBuf::new(),
    };
    let result = unpacker.run(expected_diff_id);
    let result = result.and_then(|stats| {
        commit_dir(&unpacker.root, dest)
            .map(|()| stats)
            .map_err(io_err)
    });
    if result.is_err() {
        if let Err(e) = remove_tree(&unpacker.root) {
            tracing::warn!(path = %unpacker.root.display(), error = %e, "could not remove a failed unpack");
        }
    }
    result
}

/// What a validated entry will become; decided before anything is written.
enum Plan {
    File(u64),
    Dir,
    Symlink(PathBuf),
    HardLink(PathBuf),
    Fifo,
}

struct Unpacker<'a> {
    blob: &'a Path,
    /// The temporary tree being filled.
    root: PathBuf,
    limits: UnpackLimits,
    stats: UnpackStats,
    /// Directory modes, applied at the end so read-only dirs can be filled.
    dir_modes: BTreeMap<PathBuf, u32>,
    as_root: bool,
    /// The shared entry rules (protocol's `layer_policy`), also run by the
    /// controller when an image is imported.
    audit: LayerAudit,
    /// The current entry's path as the tar spells it, for error messages.
    entry: PathBuf,
}

impl Unpacker<'_> {
    fn run(&mut self, expected: &Digest) -> Result<UnpackStats, UnpackError> {
        let file = File::open(self.blob).map_err(|e| self.io(self.blob, e))?;
        let decoder = zstd::stream::read::Decoder::new(file).map_err(|e| self.corrupt(e))?;
        let mut archive =
            tar::Archive::new(HashingReader::new(decoder, self.limits.max_total_bytes));
        let unpacked = self.unpack_entries(&mut archive);
        let mut reader = archive.into_inner();
        // Drain what follows the end-of-archive marker: the diff_id covers it.
        let drained = unpacked
            .and_then(|()| io::copy(&mut reader, &mut io::sink()).map_err(|e| self.corrupt(e)));
        if reader.over_limit {
            return Err(self.too_large(
                "the uncompressed stream".into(),
                self.limits.max_total_bytes,
            ));
        }
        drained?;
        let actual = Digest::from_hasher(reader.hasher);
        if actual != *expected {
            let (blob, expected) = (self.blob.into(), expected.clone());
            return Err(UnpackError::DigestMismatch {
                blob,
                expected,
                actual,
            });
        }
        self.apply_dir_modes()?;
        let summary = self.audit.summary();
        self.stats.devices_skipped = summary.devices_skipped;
        self.stats.setid_stripped = summary.setid_stripped;
        Ok(self.stats)
    }

    fn unpack_entries<R: Read>(
        &mut self,
        archive: &mut tar::Archive<R>,
    ) -> Result<(), UnpackError> {
        for entry in archive.entries().map_err(|e| self.corrupt(e))? {
            let mut entry = entry.map_err(|e| self.corrupt(format_args!("bad tar header: {e}")))?;
            self.stats.entries += 1;
            if self.stats.entries > self.limits.max_entries {
                return Err(self.too_large("the entry count".into(), self.limits.max_entries));
            }
            self.unpack_entry(&mut entry)?;
            self.entry = PathBuf::new();
        }
        Ok(())
    }

    fn unpack_entry<R: Read>(&mut self, entry: &mut tar::Entry<R>) -> Result<(), UnpackError> {
        if entry.header().entry_type().is_pax_global_extensions() {
            return Ok(());
        }
        self.entry = entry
            .path()
            .map_err(|e| self.corrupt(format_args!("bad entry path: {e}")))?
            .into_owned();
        let kind = EntryKind::from_typeflag(entry.header().entry_type().as_byte());
        let link = match kind {
            EntryKind::Symlink | EntryKind::HardLink => {
                entry.link_name().map_err(|e| self.corrupt(e))?
            }
            _ => None,
        };
        let rel = match self.audit.admit(&self.entry, &kind, link.as_deref()) {
            Ok(Treatment::Create(rel)) => rel,
            Ok(Treatment::Ignore | Treatment::SkipDevice) => return Ok(()),
            Err(reason) => return Err(self.unsafe_entry(reason)),
        };
        let plan = self.plan(entry, &kind, link.as_deref())?;
        let mode = self.mode(entry, &rel)?;
        let path = self.prepare(&rel, matches!(plan, Plan::Dir))?;
        let to_io = |e| self.io(&path, e);
        match &plan {
            Plan::File(size) => self.write_file(entry, &path, *size)?,
            Plan::Dir if path.is_dir() => {}
            Plan::Dir => fs::DirBuilder::new()
                .mode(0o700)
                .create(&path)
                .map_err(to_io)?,
            Plan::Symlink(target) => symlink(target, &path).map_err(to_io)?,
            Plan::HardLink(source) => return fs::hard_link(source, &path).map_err(to_io),
            Plan::Fifo => nix::unistd::mkfifo(&path, nix::sys::stat::Mode::S_IRUSR)
                .map_err(|e| to_io(e.into()))?,
        }
        self.set_owner(entry, &path)?;
        match plan {
            Plan::Dir => _ = self.dir_modes.insert(path, mode),
            Plan::File(_) | Plan::Fifo => fs::set_permissions(&path, Permissions::from_mode(mode))
                .map_err(|e| self.io(&path, e))?,
            Plan::Symlink(_) | Plan::HardLink(_) => {}
        }
        Ok(())
    }

    /// The entry's permission bits as the shared policy gives them
    /// (setuid/setgid stripped unless the limits allow them).
    fn mode<R: Read>(&mut self, entry: &tar::Entry<R>, rel: &Path) -> Result<u32, UnpackError> {
        let mode = entry.header().mode().map_err(|e| self.corrupt(e))?;
        Ok(self.audit.mode(rel, mode))
    }

    /// What an entry the policy admitted becomes; checks its size and, for
    /// a hard link, that the tree really holds its source. Writes nothing.
    fn plan<R: Read>(
        &self,
        entry: &tar::Entry<R>,
        kind: &EntryKind,
        link: Option<&Path>,
    ) -> Result<Plan, UnpackError> {
        let target = || link.map(Path::to_path_buf).unwrap_or_default();
        match kind {
            EntryKind::File => self.check_size(entry.size()).map(Plan::File),
            EntryKind::Dir => Ok(Plan::Dir),
            EntryKind::Symlink => Ok(Plan::Symlink(target())),
            EntryKind::HardLink => self.hard_link_source(&target()).map(Plan::HardLink),
            EntryKind::Fifo => Ok(Plan::Fifo),
            other => Err(self.unsafe_entry(format!("entry type {other:?} admitted by mistake"))),
        }
    }

    fn check_size(&self, size: u64) -> Result<u64, UnpackError> {
        if size > self.limits.max_entry_bytes {
            let what = format!("entry {} of {size} bytes", self.entry.display());
            return Err(self.too_large(what, self.limits.max_entry_bytes));
        }
        if self.stats.bytes.saturating_add(size) > self.limits.max_total_bytes {
            return Err(self.too_large("the total file size".into(), self.limits.max_total_bytes));
        }
        Ok(size)
    }

    /// A hard link's source: a regular file already in the tree, reached
    /// through real directories only.
    fn hard_link_source(&self, target: &Path) -> Result<PathBuf, UnpackError> {
        let reject =
            |why: &str| self.unsafe_entry(format!("hard link target {}: {why}", target.display()));
        let rel = match relative_path(target) {
            Ok(Some(rel)) => rel,
            Ok(None) => return Err(reject("is the layer root")),
            Err(reason) => return Err(reject(&reason)),
        };
        let mut path = self.root.clone();
        let mut parts = rel.components().peekable();
        while let Some(part) = parts.next() {
            path.push(part);
            let ok = match fs::symlink_metadata(&path) {
                Ok(meta) if parts.peek().is_some() => meta.is_dir(),
                Ok(meta) => meta.is_file(),
                Err(_) => false,
            };
            if !ok {
                return Err(reject("is not a file unpacked earlier in this layer"));
            }
        }
        Ok(path)
    }

    /// Makes `rel` creatable without following any link: parents must be
    /// real directories (missing ones are created) and whatever is at `rel`
    /// is removed, unless both it and the entry are directories.
    fn prepare(&mut self, rel: &Path, is_dir: bool) -> Result<PathBuf, UnpackError> {
        let mut path = self.root.clone();
        let mut parts = rel.components().peekable();
        while let Some(part) = parts.next() {
            path.push(part);
            let last = parts.peek().is_none();
            // Directories are never replaced, so a recorded one is still real.
            if !last && self.dir_modes.contains_key(&path) {
                continue;
            }
            let meta = match fs::symlink_metadata(&path) {
                Ok(meta) => Some(meta),
                Err(e) if e.kind() == io::ErrorKind::NotFound => None,
                Err(e) => return Err(self.io(&path, e)),
            };
            match meta {
                None if last => {}
                None => {
                    fs::DirBuilder::new()
                        .mode(0o700)
                        .create(&path)
                        .map_err(|e| self.io(&path, e))?;
                    self.dir_modes.insert(path.clone(), 0o755);
                }
                Some(meta) if meta.is_dir() && (is_dir || !last) => {}
                Some(meta) if meta.is_dir() => {
                    return Err(self.unsafe_entry("it would replace a directory"))
                }
                Some(_) if last => fs::remove_file(&path).map_err(|e| self.io(&path, e))?,
                Some(_) => {
                    return Err(self.unsafe_entry("a parent is a symlink or not a directory"))
                }
            }
        }
        Ok(path)
    }

    fn write_file<R: Read>(
        &mut self,
        entry: &mut tar::Entry<R>,
        path: &Path,
        size: u64,
    ) -> Result<(), UnpackError> {
        let mut options = OpenOptions::new();
        let mut file = options
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| self.io(path, e))?;
        let mut buf = [0u8; 32 * 1024];
        let mut written = 0u64;
        loop {
            let n = match entry.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.corrupt(e)),
            };
            file.write_all(&buf[..n]).map_err(|e| self.io(path, e))?;
            written += n as u64;
        }
        if written != size {
            return Err(self.corrupt(format_args!("truncated after {written} of {size} bytes")));
        }
        self.stats.bytes += written;
        Ok(())
    }

    /// Keeps the entry's owner when running as root. An owner field that is
    /// blank (as `tar::Header::new_gnu` leaves it) or unparsable means root.
    fn set_owner<R: Read>(&self, entry: &tar::Entry<R>, path: &Path) -> Result<(), UnpackError> {
        if !self.as_root {
            return Ok(());
        }
        let id = |v: io::Result<u64>| v.ok().and_then(|v| u32::try_from(v).ok()).unwrap_or(0);
        let (uid, gid) = (id(entry.header().uid()), id(entry.header().gid()));
        lchown(path, Some(uid), Some(gid)).map_err(|e| self.io(path, e))
    }

    /// Children before parents, so a read-only parent is sealed last.
    fn apply_dir_modes(&self) -> Result<(), UnpackError> {
        for (path, mode) in self.dir_modes.iter().rev() {
            if fs::symlink_metadata(path).is_ok_and(|m| m.is_dir()) {
                fs::set_permissions(path, Permissions::from_mode(*mode))
                    .map_err(|e| self.io(path, e))?;
            }
        }
        Ok(())
    }

    fn io(&self, path: &Path, source: io::Error) -> UnpackError {
        UnpackError::Io {
            blob: self.blob.into(),
            path: path.into(),
            source,
        }
    }

    fn corrupt(&self, reason: impl Display) -> UnpackError {
        let reason = match self.entry.as_os_str().is_empty() {
            true => reason.to_string(),
            false => format!("entry {}: {reason}", self.entry.display()),
        };
        UnpackError::Corrupt {
            blob: self.blob.into(),
            reason,
        }
    }

    fn unsafe_entry(&self, reason: impl Into<String>) -> UnpackError {
        let (blob, entry) = (self.blob.into(), self.entry.clone());
        UnpackError::UnsafeEntry {
            blob,
            entry,
            reason: reason.into(),
        }
    }

    fn too_large(&self, what: String, limit: u64) -> UnpackError {
        UnpackError::TooLarge {
            blob: self.blob.into(),
            what,
            limit,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
