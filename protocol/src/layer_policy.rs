//! What a device does with each entry of a layer tar: create it, skip it
//! (device nodes), strip its setuid/setgid bits, or refuse the layer.
//!
//! One set of rules serves both sides, so what `petrel image import`
//! reports is exactly what devices will do: the device's unpacker asks
//! [`LayerAudit::admit`] before it writes an entry, and the controller runs
//! the same audit over every layer it stores. Each layer is unpacked into a
//! fresh directory of its own, so an entry's fate depends only on the
//! entries of the same layer before it, which the audit remembers (one map
//! entry per path).
//!
//! The rules (DESIGN, "Security"): paths are relative without `..`; a
//! relative symlink target stays inside the layer (absolute ones resolve
//! inside the rootfs at run time); nothing is written below a symlink or a
//! file; a non-directory never replaces a directory; a hard link names a
//! regular file earlier in the layer; char/block devices are recorded and
//! not created (the runtime provides `/dev`, as Docker does); FIFOs are
//! kept; every other type is refused.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};

/// The type of a tar entry, as far as the rules care.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    File,
    Dir,
    Symlink,
    HardLink,
    Fifo,
    CharDevice,
    BlockDevice,
    /// Any other type (sparse, socket, vendor extensions), by its name.
    Other(String),
}

impl EntryKind {
    /// From a tar header's typeflag byte (POSIX ustar, GNU: `'0'`/NUL file,
    /// `'1'` hard link, `'2'` symlink, `'3'` char, `'4'` block, `'5'` dir,
    /// `'6'` FIFO, `'7'` contiguous file).
    pub fn from_typeflag(flag: u8) -> EntryKind {
        match flag {
            b'0' | 0 | b'7' => EntryKind::File,
            b'1' => EntryKind::HardLink,
            b'2' => EntryKind::Symlink,
            b'3' => EntryKind::CharDevice,
            b'4' => EntryKind::BlockDevice,
            b'5' => EntryKind::Dir,
            b'6' => EntryKind::Fifo,
            b'S' => EntryKind::Other("GNU sparse file".into()),
            other => EntryKind::Other(format!("typeflag {:?}", other as char)),
        }
    }
}

/// What the device does with an admitted entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Treatment {
    /// Nothing: the root entry (`./`) or a PAX global header.
    Ignore,
    /// Create it at this clean relative path.
    Create(PathBuf),
    /// A device node: counted, not created.
    SkipDevice,
}

/// What a kept entry of the layer is, for the checks of later entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    Dir,
    File,
    Other,
}

/// Counts of what devices will change, with the first few paths of each.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AuditSummary {
    pub entries: u64,
    pub devices_skipped: u64,
    pub setid_stripped: u64,
    pub hard_links: u64,
    pub fifos: u64,
    /// Up to [`SAMPLE_PATHS`] paths of skipped device nodes.
    #[serde(default)]
    pub device_paths: Vec<String>,
    /// Up to [`SAMPLE_PATHS`] paths whose setuid/setgid bits are stripped.
    #[serde(default)]
    pub setid_paths: Vec<String>,
}

/// How many paths of each kind a summary names.
pub const SAMPLE_PATHS: usize = 8;

impl AuditSummary {
    /// Adds another layer's summary (an image's total).
    pub fn absorb(&mut self, other: &AuditSummary) {
        self.entries += other.entries;
        self.devices_skipped += other.devices_skipped;
        self.setid_stripped += other.setid_stripped;
        self.hard_links += other.hard_links;
        self.fifos += other.fifos;
        extend_sample(&mut self.device_paths, &other.device_paths);
        extend_sample(&mut self.setid_paths, &other.setid_paths);
    }

    /// Whether devices change nothing of this layer.
    pub fn is_clean(&self) -> bool {
        self.devices_skipped == 0 && self.setid_stripped == 0
    }
}

fn extend_sample(into: &mut Vec<String>, from: &[String]) {
    let room = SAMPLE_PATHS.saturating_sub(into.len());
    into.extend(from.iter().take(room).cloned());
}

/// The rules applied to one layer, entry by entry, in tar order.
#[derive(Debug, Default)]
pub struct LayerAudit {
    seen: HashMap<PathBuf, Seen>,
    allow_setid: bool,
    summary: AuditSummary,
}

impl LayerAudit {
    /// An audit that strips setuid/setgid bits unless `allow_setid`.
    pub fn new(allow_setid: bool) -> LayerAudit {
        LayerAudit {
            allow_setid,
            ..LayerAudit::default()
        }
    }

    /// Checks one entry; `Err` is why the whole layer is refused.
    pub fn admit(
        &mut self,
        path: &Path,
        kind: &EntryKind,
        link: Option<&Path>,
    ) -> Result<Treatment, String> {
        self.summary.entries += 1;
        let Some(rel) = relative_path(path)? else {
            return Ok(Treatment::Ignore);
        };
        let seen = match kind {
            EntryKind::File => Seen::File,
            EntryKind::Dir => Seen::Dir,
            EntryKind::Symlink => {
                let target = non_empty(link)?;
                if symlink_escapes(&rel, target) {
                    let target = target.display();
                    return Err(format!("symlink target {target} escapes the layer root"));
                }
                Seen::Other
            }
            EntryKind::HardLink => {
                self.check_hard_link(non_empty(link)?)?;
                self.summary.hard_links += 1;
                Seen::File
            }
            EntryKind::Fifo => {
                self.summary.fifos += 1;
                Seen::Other
            }
            EntryKind::CharDevice | EntryKind::BlockDevice => {
                self.summary.devices_skipped += 1;
                sample(&mut self.summary.device_paths, &rel);
                return Ok(Treatment::SkipDevice);
            }
            EntryKind::Other(name) => return Err(format!("unsupported entry type {name}")),
        };
        self.check_place(&rel, seen == Seen::Dir)?;
        self.seen.insert(rel.clone(), seen);
        Ok(Treatment::Create(rel))
    }

    /// The permission bits the device gives an entry of `mode`: setuid and
    /// setgid stripped (and counted) unless allowed. `path` is for the
    /// summary's sample.
    pub fn mode(&mut self, path: &Path, mode: u32) -> u32 {
        let mode = mode & 0o7777;
        if mode & 0o6000 == 0 || self.allow_setid {
            return mode;
        }
        self.summary.setid_stripped += 1;
        sample(&mut self.summary.setid_paths, path);
        mode & !0o6000
    }

    pub fn summary(&self) -> &AuditSummary {
        &self.summary
    }

    /// Parents must be directories (or not yet seen: created implicitly);
    /// a directory is only ever "replaced" by a directory.
    fn check_place(&mut self, rel: &Path, is_dir: bool) -> Result<(), String> {
        for parent in rel.ancestors().skip(1) {
            if parent.as_os_str().is_empty() {
                break;
            }
            match self.seen.get(parent) {
                None | Some(Seen::Dir) => {}
                Some(_) => return Err("a parent is a symlink or not a directory".into()),
            }
        }
        for parent in rel.ancestors().skip(1) {
            if parent.as_os_str().is_empty() {
                break;
            }
            self.seen.entry(parent.to_path_buf()).or_insert(Seen::Dir);
        }
        match self.seen.get(rel) {
            Some(Seen::Dir) if !is_dir => Err("it would replace a directory".into()),
            _ => Ok(()),
        }
    }

    fn check_hard_link(&self, target: &Path) -> Result<(), String> {
        let reject = |why: &str| format!("hard link target {}: {why}", target.display());
        let rel = match relative_path(target) {
            Ok(Some(rel)) => rel,
            Ok(None) => return Err(reject("is the layer root")),
            Err(reason) => return Err(reject(&reason)),
        };
        match self.seen.get(&rel) {
            Some(Seen::File) => Ok(()),
            _ => Err(reject("is not a file unpacked earlier in this layer")),
        }
    }
}

fn sample(into: &mut Vec<String>, path: &Path) {
    if into.len() < SAMPLE_PATHS {
        into.push(path.display().to_string());
    }
}

fn non_empty(link: Option<&Path>) -> Result<&Path, String> {
    link.filter(|l| !l.as_os_str().is_empty())
        .ok_or_else(|| "link without a target".to_string())
}

/// `path` as a clean relative path, `None` for the root itself, or why it
/// is unsafe.
pub fn relative_path(path: &Path) -> Result<Option<PathBuf>, String> {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::Normal(name) => out.push(name),
            Component::CurDir => {}
            Component::ParentDir => return Err("path contains `..`".into()),
            Component::RootDir | Component::Prefix(_) => return Err("path is absolute".into()),
        }
    }
    Ok((!out.as_os_str().is_empty()).then_some(out))
}

/// Whether a relative symlink at `link` (relative to the root) points above
/// the root. Absolute targets are resolved inside the rootfs at run time.
pub fn symlink_escapes(link: &Path, target: &Path) -> bool {
    if target.has_root() {
        return false;
    }
    let mut depth = link.components().count().saturating_sub(1);
    for part in target.components() {
        match part {
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::ParentDir if depth > 0 => depth -= 1,
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => return true,
        }
    }
    false
}

#[cfg(test)]
mod tests;
