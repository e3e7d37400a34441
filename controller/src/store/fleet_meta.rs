//! What the store keeps about the fleet beyond each device's own state:
//! operator labels per device, saved groups, and rollouts: a head record
//! per rollout and a record per member, in the shapes `rollouts::persist`
//! gives them, written together (one transaction, one flush) so a step
//! costs the members it changed, not the rollout's size.

use super::{all, get, Store, StoreError};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::BTreeMap;

impl Store {
    /// A device's labels (none if never labelled).
    pub fn labels(&self, device_id: &str) -> Result<BTreeMap<String, String>, StoreError> {
        Ok(get(&self.labels, device_id)?.unwrap_or_default())
    }

    /// Every device with labels (labels may be set before a device first
    /// connects).
    pub fn labeled_ids(&self) -> Result<Vec<String>, StoreError> {
        let mut ids = Vec::new();
        for k in self.labels.iter().keys() {
            ids.push(String::from_utf8_lossy(&k?).into_owned());
        }
        Ok(ids)
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

    /// Writes rollout heads and member records (`(rollout, device,
    /// record)`) atomically, with one flush.
    pub fn write_rollouts(
        &self,
        heads: &[(String, Vec<u8>)],
        members: &[(String, String, Vec<u8>)],
    ) -> Result<(), StoreError> {
        use sled::transaction::{ConflictableTransactionError, TransactionError};
        use sled::Transactional as _;
        let (mut hb, mut mb) = (sled::Batch::default(), sled::Batch::default());
        for (id, v) in heads {
            hb.insert(id.as_bytes(), v.as_slice());
        }
        for (id, device, v) in members {
            mb.insert(member_key(id, device), v.as_slice());
        }
        (&self.rollouts, &self.rollout_members)
            .transaction(|(h, m)| {
                h.apply_batch(&hb)?;
                m.apply_batch(&mb)?;
                Ok::<_, ConflictableTransactionError<sled::Error>>(())
            })
            .map_err(|e| match e {
                TransactionError::Abort(e) | TransactionError::Storage(e) => StoreError::Db(e),
            })?;
        self.db.flush()?;
        Ok(())
    }

    pub fn rollout_head<T: DeserializeOwned>(&self, id: &str) -> Result<Option<T>, StoreError> {
        get(&self.rollouts, id)
    }

    pub fn rollout_heads<T: DeserializeOwned>(&self) -> Result<Vec<T>, StoreError> {
        all(&self.rollouts)
    }

    /// The member records of rollout `id`, by device id.
    pub fn rollout_members<T: DeserializeOwned>(
        &self,
        id: &str,
    ) -> Result<Vec<(String, T)>, StoreError> {
        let prefix = member_key(id, "");
        let mut out = Vec::new();
        for kv in self.rollout_members.scan_prefix(&prefix) {
            let (k, v) = kv?;
            let device = String::from_utf8_lossy(&k[prefix.len()..]).into_owned();
            let item = serde_json::from_slice(&v).map_err(|source| StoreError::Corrupt {
                key: format!("{id}/{device}"),
                source,
            })?;
            out.push((device, item));
        }
        Ok(out)
    }
}

/// Rollout and device ids are names without NUL, so the key is unambiguous.
fn member_key(rollout: &str, device: &str) -> Vec<u8> {
    [rollout.as_bytes(), b"\0", device.as_bytes()].concat()
}
