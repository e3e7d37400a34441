//! The key-value interface the agent's store is written against, so the
//! same store code runs on sled (a real device) or in memory (thousands of
//! virtual devices in one simulator process).

use super::StoreError;

/// The store's two key spaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tree {
    /// The lifecycle record, keys, counters.
    Main,
    /// Events waiting for the broker's acknowledgement, by sequence number.
    Outbox,
}

/// A durable, ordered key-value store.
pub trait Kv: Send + Sync + 'static {
    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
    fn insert(&self, tree: Tree, key: &[u8], value: Vec<u8>) -> Result<(), StoreError>;
    fn remove(&self, tree: Tree, key: &[u8]) -> Result<(), StoreError>;
    /// Every value of `tree`, in key order.
    fn values(&self, tree: Tree) -> Vec<Vec<u8>>;
    /// Makes every write so far durable.
    fn flush(&self) -> Result<(), StoreError>;
}
