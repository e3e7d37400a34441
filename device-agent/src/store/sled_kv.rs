//! [`Kv`] on sled: the real device's store. An unreadable store is moved
//! aside and a fresh one created (the running release keeps running; the
//! controller's retained desired state brings the device back on track);
//! a store another handle holds is waited for, then refused, never moved.

use super::kv::{Kv, Tree};
use super::StoreError;
use std::path::{Path, PathBuf};

pub struct SledKv {
    db: sled::Db,
    outbox: sled::Tree,
    /// sled's log file, synced after each flush (see [`Kv::flush`]).
    log: std::fs::File,
    /// Where an unreadable store was moved before this one was created.
    pub moved_aside: Option<PathBuf>,
}

impl SledKv {
    pub fn open(dir: &Path) -> Result<SledKv, StoreError> {
        let mut moved_aside = None;
        let db = match open_waiting(dir) {
            Ok(db) => db,
            // held by another agent (or one still closing): never moved aside
            Err(e) if locked(&e) => {
                return Err(StoreError::Open {
                    path: dir.to_path_buf(),
                    source: e,
                })
            }
            Err(e) => {
                let aside = aside_path(dir, unix_secs());
                tracing::error!(path = %dir.display(), aside = %aside.display(), error = %e, "agent store unreadable; moving it aside");
                match std::fs::rename(dir, &aside) {
                    Ok(()) => moved_aside = Some(aside),
                    Err(e) => {
                        tracing::error!(path = %dir.display(), error = %e, "cannot move the agent store aside")
                    }
                }
                sled::open(dir).map_err(|source| StoreError::Open {
                    path: dir.to_path_buf(),
                    source,
                })?
            }
        };
        // sled 0.34 keeps its log in `<dir>/db`
        let log = std::fs::File::open(dir.join("db")).map_err(|e| StoreError::Open {
            path: dir.join("db"),
            source: sled::Error::Io(e),
        })?;
        Ok(SledKv {
            outbox: db.open_tree("outbox")?,
            db,
            log,
            moved_aside,
        })
    }

    fn tree(&self, tree: Tree) -> &sled::Tree {
        match tree {
            Tree::Main => &self.db,
            Tree::Outbox => &self.outbox,
        }
    }
}

/// `<dir>.corrupt-<unix time>`, with a suffix if that is taken (two
/// rebuilds within a second).
fn aside_path(dir: &Path, now: u64) -> PathBuf {
    let name = dir.file_name().unwrap_or_default().to_string_lossy();
    let mut aside = dir.with_file_name(format!("{name}.corrupt-{now}"));
    let mut n = 1;
    while aside.exists() {
        aside = dir.with_file_name(format!("{name}.corrupt-{now}-{n}"));
        n += 1;
    }
    aside
}

fn unix_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Whether sled failed because another handle holds the store's lock.
fn locked(e: &sled::Error) -> bool {
    matches!(e, sled::Error::Io(io) if io.to_string().contains("could not acquire lock"))
}

/// Opens the store, waiting up to 5 s for a handle being closed (sled's
/// flusher lets go of the lock a moment after the last handle drops).
fn open_waiting(dir: &Path) -> Result<sled::Db, sled::Error> {
    let mut tries = 0;
    loop {
        match sled::open(dir) {
            Err(e) if locked(&e) && tries < 50 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            other => return other,
        }
    }
}

impl Kv for SledKv {
    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.tree(tree).get(key)?.map(|v| v.to_vec()))
    }

    fn insert(&self, tree: Tree, key: &[u8], value: Vec<u8>) -> Result<(), StoreError> {
        self.tree(tree).insert(key, value)?;
        Ok(())
    }

    fn remove(&self, tree: Tree, key: &[u8]) -> Result<(), StoreError> {
        self.tree(tree).remove(key)?;
        Ok(())
    }

    fn values(&self, tree: Tree) -> Vec<Vec<u8>> {
        self.tree(tree)
            .iter()
            .values()
            .filter_map(|v| v.ok().map(|v| v.to_vec()))
            .collect()
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        // A flushed record is durable only now: sled's flush ends in
        // sync_file_range, which writes no metadata and flushes no disk
        // cache (no promise the data survives a power cut, says its man
        // page; sled issue #1452), and sled fsyncs only every 500 ms. The
        // power-cut test lost Swapping and Running records the device had
        // already acted on and reported.
        self.log.sync_data().map_err(sled::Error::Io)?;
        Ok(())
    }
}
