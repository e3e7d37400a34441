//! What the store keeps about the fleet beyond each device's own state:
//! operator labels per device, and rollouts (kept as the rollout module
//! defines them, written whole on every step).

use super::{all, get, Store, StoreError};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::BTreeMap;

impl Store {
    /// A device's labels (none if never labelled).
    pub fn labels(&self, device_id: &str) -> Result<BTreeMap<String, String>, StoreError> {
        Ok(get(&self.labels, device_id)?.unwrap_or_default())
    }

    pub fn set_labels(
        &self,
        device_id: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<(), StoreError> {
        self.put(&self.labels, device_id, labels)
    }

    pub fn put_group<T: Serialize>(&self, name: &str, group: &T) -> Result<(), StoreError> {
        self.put(&self.groups, name, group)
    }

    pub fn groups<T: DeserializeOwned>(&self) -> Result<Vec<T>, StoreError> {
        all(&self.groups)
    }

    pub fn delete_group(&self, name: &str) -> Result<bool, StoreError> {
        let gone = self.groups.remove(name)?.is_some();
        self.db.flush()?;
        Ok(gone)
    }

    pub fn put_rollout<T: Serialize>(&self, id: &str, record: &T) -> Result<(), StoreError> {
        self.put(&self.rollouts, id, record)
    }

    pub fn rollout<T: DeserializeOwned>(&self, id: &str) -> Result<Option<T>, StoreError> {
        get(&self.rollouts, id)
    }

    pub fn rollouts<T: DeserializeOwned>(&self) -> Result<Vec<T>, StoreError> {
        all(&self.rollouts)
    }
}
