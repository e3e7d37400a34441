//! Fleet alerts (see `crate::monitor::alerts`), by sequence number: the
//! store keeps their records without knowing their type.

use super::{Store, StoreError};
use serde::de::DeserializeOwned;
use serde::Serialize;

impl Store {
    /// A fresh alert sequence number (increasing across restarts).
    pub fn next_alert_seq(&self) -> Result<u64, StoreError> {
        Ok(self.db.generate_id()?)
    }

    /// Writes alert `seq` (not flushed).
    pub fn put_alert<T: Serialize>(&self, seq: u64, alert: &T) -> Result<(), StoreError> {
        let value = serde_json::to_vec(alert).unwrap_or_default();
        self.alerts.insert(seq.to_be_bytes(), value)?;
        Ok(())
    }

    /// Removes the oldest alerts beyond the latest `kept`, never those in
    /// `keep` (the active ones); how many went.
    pub fn trim_alerts(
        &self,
        kept: usize,
        keep: &std::collections::BTreeSet<u64>,
    ) -> Result<usize, StoreError> {
        // sled counts a tree by walking it: once per sweep, not per alert
        let excess = self.alerts.len().saturating_sub(kept);
        let mut removed = 0;
        for key in self.alerts.iter().keys() {
            if removed >= excess {
                break;
            }
            let key = key?;
            let seq = <[u8; 8]>::try_from(key.as_ref()).map(u64::from_be_bytes);
            if seq.is_ok_and(|s| keep.contains(&s)) {
                continue;
            }
            self.alerts.remove(key)?;
            removed += 1;
        }
        Ok(removed)
    }

    /// Every stored alert, oldest first (unreadable records skipped).
    pub fn all_alerts<T: DeserializeOwned>(&self) -> Result<Vec<T>, StoreError> {
        let mut out = Vec::new();
        for v in self.alerts.iter().values() {
            if let Ok(a) = serde_json::from_slice(&v?) {
                out.push(a);
            }
        }
        Ok(out)
    }

    /// The latest `limit` alerts, newest first; unreadable records are
    /// skipped.
    pub fn alerts<T: DeserializeOwned>(&self, limit: usize) -> Result<Vec<T>, StoreError> {
        let mut out = Vec::new();
        for v in self.alerts.iter().values().rev().take(limit) {
            if let Ok(a) = serde_json::from_slice(&v?) {
                out.push(a);
            }
        }
        Ok(out)
    }
}
