//! [`Kv`] in memory, for virtual devices: what it holds outlives the
//! agent that wrote it as long as the simulator keeps the handle, so a
//! "power loss" (the agent dropped mid-work and started again on the same
//! handle) resumes from exactly what was written, as on a real disk.

use super::kv::{Kv, Tree};
use super::StoreError;
use std::collections::BTreeMap;
use std::sync::Mutex;

type Map = BTreeMap<Vec<u8>, Vec<u8>>;

#[derive(Default)]
pub struct MemoryKv {
    trees: Mutex<[Map; 2]>,
}

fn index(tree: Tree) -> usize {
    match tree {
        Tree::Main => 0,
        Tree::Outbox => 1,
    }
}

impl MemoryKv {
    fn with<T>(&self, f: impl FnOnce(&mut [Map; 2]) -> T) -> T {
        let mut trees = self
            .trees
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut trees)
    }
}

impl Kv for MemoryKv {
    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.with(|t| t[index(tree)].get(key).cloned()))
    }

    fn insert(&self, tree: Tree, key: &[u8], value: Vec<u8>) -> Result<(), StoreError> {
        self.with(|t| t[index(tree)].insert(key.to_vec(), value));
        Ok(())
    }

    fn remove(&self, tree: Tree, key: &[u8]) -> Result<(), StoreError> {
        self.with(|t| t[index(tree)].remove(key));
        Ok(())
    }

    fn values(&self, tree: Tree) -> Vec<Vec<u8>> {
        self.with(|t| t[index(tree)].values().cloned().collect())
    }

    fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }
}
