//! [`Kv`] on sled: the real device's store. An unreadable store is moved
//! aside and a fresh one created (the running release keeps running; the
//! controller's retained desired state brings the device back on track).

use super::kv::{Kv, Tree};
use super::StoreError;
use std::path::Path;

pub struct SledKv {
    db: sled::Db,
    outbox: sled::Tree,
}

impl SledKv {
    pub fn open(dir: &Path) -> Result<SledKv, StoreError> {
        let db = match sled::open(dir) {
            Ok(db) => db,
            Err(e) => {
                let aside = dir.with_extension(format!("corrupt-{}", std::process::id()));
                tracing::error!(path = %dir.display(), error = %e, "agent store unreadable; moving it aside");
                let _ = std::fs::rename(dir, &aside);
                sled::open(dir).map_err(|source| StoreError::Open {
                    path: dir.to_path_buf(),
                    source,
                })?
            }
        };
        Ok(SledKv {
            outbox: db.open_tree("outbox")?,
            db,
        })
    }

    fn tree(&self, tree: Tree) -> &sled::Tree {
        match tree {
            Tree::Main => &self.db,
            Tree::Outbox => &self.outbox,
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
        Ok(())
    }
}
