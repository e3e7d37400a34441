//! The power-cut model applied to a directory after its process died.
//!
//! Strict, as CrashMonkey and ALICE assume of a POSIX filesystem:
//! - a file's data is durable up to its last fsync/fdatasync (or a later
//!   syncfs/sync): what was written after reverts to its pre-images, and
//!   the file to the size it had then;
//! - a directory entry change (create, mkdir, link, symlink, rename,
//!   unlink, rmdir) is durable only once its parent directory (both, for a
//!   rename) was fsynced after it, or a syncfs/sync came after it;
//!   otherwise it is undone, last first;
//! - sync_file_range promises nothing (its man page: no metadata, no disk
//!   cache), so it makes nothing durable.
//!
//! Files are followed by inode, so the data undo finds a file wherever the
//! directory undo left it. A directory is known by its inode and epoch
//! (how many directories with that inode were removed before): a removed
//! directory's inode is soon reused, and a removal undone gives the
//! directory a new one.

use super::log::{Entry, Op, Victim};
use anyhow::{Context, Result};
use std::collections::HashMap;
use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// What a replay undid.
#[derive(Debug, Default)]
pub struct Replay {
    /// Operations in the log.
    pub ops: usize,
    /// Directory entry changes undone, as logged.
    pub entries_undone: Vec<String>,
    /// Writes and size changes undone.
    pub writes_undone: usize,
    /// Files whose data went back.
    pub files_reverted: Vec<Reverted>,
    /// Undo steps that found the tree otherwise than logged (the entry was
    /// gone, or the shim could not stash it): nothing done for them.
    pub skipped: Vec<String>,
}

/// A file whose unsynced writes were undone.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Reverted {
    pub path: PathBuf,
    /// Writes and size changes undone.
    pub writes: usize,
    pub size_before: u64,
    pub size_after: u64,
}

impl Replay {
    /// Operations undone: entry changes and writes.
    pub fn undone(&self) -> usize {
        self.entries_undone.len() + self.writes_undone
    }
}

/// A directory: its inode and epoch.
type Dir = (u64, u32);

/// The sync points of a log (which operations are durable), and the
/// directories each entry change touched.
#[derive(Default)]
struct Durable {
    all: u64,
    files: HashMap<u64, u64>,
    dirs: HashMap<Dir, u64>,
    /// Per entry: its parent directories, and the directory it created,
    /// removed or renamed.
    parents: Vec<Vec<Dir>>,
    own: Vec<Option<Dir>>,
}

impl Durable {
    fn of(entries: &[Entry]) -> Durable {
        let mut d = Durable::default();
        let mut epochs: HashMap<u64, u32> = HashMap::new();
        for e in entries {
            let dir = |ino: &u64| (*ino, epochs.get(ino).copied().unwrap_or(0));
            let (parents, own) = match &e.op {
                Op::Create {
                    parent,
                    ino,
                    dir: d,
                    ..
                } => (vec![dir(parent)], d.then(|| dir(ino))),
                Op::Unlink { parent, .. } => (vec![dir(parent)], None),
                Op::Rmdir { parent, ino, .. } => (vec![dir(parent)], Some(dir(ino))),
                Op::Rename { parents, ino, .. } => {
                    (parents.iter().map(dir).collect(), Some(dir(ino)))
                }
                _ => (Vec::new(), None),
            };
            match e.op {
                Op::SyncAll { start } => d.all = d.all.max(start),
                Op::Sync {
                    ino,
                    dir: true,
                    start,
                } => {
                    let s = d.dirs.entry(dir(&ino)).or_default();
                    *s = (*s).max(start);
                }
                Op::Sync { ino, start, .. } => {
                    let s = d.files.entry(ino).or_default();
                    *s = (*s).max(start);
                }
                Op::Rmdir { ino, .. } => *epochs.entry(ino).or_default() += 1,
                _ => {}
            }
            d.parents.push(parents);
            d.own.push(own);
        }
        d
    }

    fn file(&self, offset: u64, ino: u64) -> bool {
        offset < self.all || self.files.get(&ino).is_some_and(|&s| offset < s)
    }

    fn entry(&self, offset: u64, parents: &[Dir]) -> bool {
        offset < self.all
            || parents
                .iter()
                .all(|p| self.dirs.get(p).is_some_and(|&s| offset < s))
    }
}

/// Where the directories the undo re-created now are.
#[derive(Default)]
struct Remap(HashMap<Dir, u64>);

impl Remap {
    fn ino(&self, dir: Dir) -> u64 {
        self.0.get(&dir).copied().unwrap_or(dir.0)
    }
}

/// Turns `root` into what a power cut would have left, given the shim's
/// log of everything done to it since it was last wholly durable.
pub fn replay(root: &Path, entries: &[Entry], pre: &Path, stash: &Path) -> Result<Replay> {
    let durable = Durable::of(entries);
    let mut out = Replay {
        ops: entries.len(),
        ..Replay::default()
    };
    let mut remap = Remap::default();
    for (i, e) in entries.iter().enumerate().rev() {
        let parents = &durable.parents[i];
        if parents.is_empty() || durable.entry(e.offset, parents) {
            continue;
        }
        let dirs: Vec<u64> = parents.iter().map(|&p| remap.ino(p)).collect();
        let own = durable.own[i];
        match undo_entry(root, &e.op, &dirs, own.map(|d| remap.ino(d)), stash) {
            Ok(Some(new_ino)) => {
                if let (Op::Rmdir { .. }, Some(dir)) = (&e.op, own) {
                    remap.0.insert(dir, new_ino);
                }
                out.entries_undone.push(e.line.clone());
            }
            Ok(None) => out.skipped.push(e.line.clone()),
            Err(err) => out.skipped.push(format!("{}: {err:#}", e.line)),
        }
    }
    let mut writes: HashMap<u64, Vec<&Entry>> = HashMap::new();
    for e in entries {
        if let Op::Data { ino, .. } = e.op {
            if !durable.file(e.offset, ino) {
                writes.entry(ino).or_default().push(e);
            }
        }
    }
    if writes.is_empty() {
        return Ok(out);
    }
    let files = files_by_inode(root)?;
    let mut pre = fs::File::open(pre).with_context(|| format!("opening {}", pre.display()))?;
    for (ino, ops) in writes {
        out.writes_undone += ops.len();
        let Some(path) = files.get(&ino) else {
            continue; // no name left: nothing to read it by after a reboot
        };
        let size_before = fs::metadata(path)?.len();
        let size_after =
            revert(path, &ops, &mut pre).with_context(|| path.display().to_string())?;
        out.files_reverted.push(Reverted {
            path: path.clone(),
            writes: ops.len(),
            size_before,
            size_after,
        });
    }
    out.files_reverted.sort();
    Ok(out)
}

/// Undoes one entry change, its parent directories now at inodes `dirs`
/// (and a directory it created or renamed at `own`); the inode the undo left at the
/// entry's place (0 for none), or `None` if the tree no longer matches the
/// log.
fn undo_entry(
    root: &Path,
    op: &Op,
    dirs: &[u64],
    own: Option<u64>,
    stash: &Path,
) -> Result<Option<u64>> {
    let at = |i: usize, path: &Path| locate(root, dirs[i], path);
    match op {
        Op::Create { ino, dir, path, .. } => {
            let Some(path) = at(0, path) else {
                return Ok(None);
            };
            let ino = own.unwrap_or(*ino);
            match fs::symlink_metadata(&path) {
                Ok(m) if m.ino() == ino && *dir => fs::remove_dir_all(&path)?,
                Ok(m) if m.ino() == ino => fs::remove_file(&path)?,
                _ => return Ok(None),
            }
            Ok(Some(0))
        }
        Op::Unlink { victim, path, .. } => {
            let (Some(path), Victim::Stashed(name)) = (at(0, path), victim) else {
                return Ok(None);
            };
            fs::hard_link(stash.join(name), &path)?;
            Ok(Some(fs::symlink_metadata(&path)?.ino()))
        }
        Op::Rmdir { mode, path, .. } => {
            let Some(path) = at(0, path) else {
                return Ok(None);
            };
            fs::create_dir(&path)?;
            fs::set_permissions(&path, fs::Permissions::from_mode(*mode))?;
            Ok(Some(fs::metadata(&path)?.ino()))
        }
        Op::Rename {
            ino,
            victim,
            from,
            to,
            ..
        } => {
            let (Some(from), Some(to)) = (at(0, from), at(1, to)) else {
                return Ok(None);
            };
            if fs::symlink_metadata(&to).map(|m| m.ino()).ok() != Some(own.unwrap_or(*ino)) {
                return Ok(None);
            }
            fs::rename(&to, &from)?;
            match victim {
                Victim::Stashed(name) => fs::hard_link(stash.join(name), &to)?,
                Victim::EmptyDir(mode) => {
                    fs::create_dir(&to)?;
                    fs::set_permissions(&to, fs::Permissions::from_mode(*mode))?;
                }
                Victim::None => {}
                Victim::Lost => return Ok(None),
            }
            Ok(Some(*ino))
        }
        _ => Ok(Some(0)),
    }
}

/// Where `logged` is now: its name in the directory of inode `parent`,
/// found at the logged place or, if a rename moved it, by a search.
fn locate(root: &Path, parent: u64, logged: &Path) -> Option<PathBuf> {
    let name = logged.file_name()?;
    let hint = logged.parent()?;
    if fs::metadata(hint).is_ok_and(|m| m.ino() == parent) {
        return Some(hint.join(name));
    }
    if fs::metadata(root).is_ok_and(|m| m.ino() == parent) {
        return Some(root.join(name));
    }
    find(root, &|m| m.is_dir() && m.ino() == parent).map(|dir| dir.join(name))
}

fn find(dir: &Path, hit: &dyn Fn(&fs::Metadata) -> bool) -> Option<PathBuf> {
    for entry in fs::read_dir(dir).ok()?.flatten() {
        let Ok(meta) = entry.metadata() else { continue };
        if hit(&meta) {
            return Some(entry.path());
        }
        if meta.is_dir() {
            if let Some(found) = find(&entry.path(), hit) {
                return Some(found);
            }
        }
    }
    None
}

/// Every regular file under `dir` by inode (one name of each).
fn files_by_inode(dir: &Path) -> Result<HashMap<u64, PathBuf>> {
    let mut out = HashMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in fs::read_dir(&d)?.flatten() {
            let meta = entry.metadata()?;
            if meta.is_dir() {
                todo.push(entry.path());
            } else if meta.is_file() {
                out.entry(meta.ino()).or_insert_with(|| entry.path());
            }
        }
    }
    Ok(out)
}

/// Puts back the pre-images of `ops` (one file's undurable writes, in log
/// order), last first, and the size the file had before the first; the
/// size it ends with.
fn revert(path: &Path, ops: &[&Entry], pre: &mut fs::File) -> Result<u64> {
    let mut file = fs::OpenOptions::new().write(true).open(path)?;
    let mut size = None;
    for e in ops.iter().rev() {
        let Op::Data {
            at,
            pre_off,
            pre_len,
            size_before,
            ..
        } = e.op
        else {
            continue;
        };
        let mut bytes = vec![0; pre_len as usize];
        pre.seek(SeekFrom::Start(pre_off))?;
        pre.read_exact(&mut bytes)?;
        file.seek(SeekFrom::Start(at))?;
        file.write_all(&bytes)?;
        size = Some(size_before);
    }
    let size = size.unwrap_or(0);
    file.set_len(size)?;
    Ok(size)
}
