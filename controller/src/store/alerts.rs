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

    /// Writes alert `seq` (not flushed), keeping the latest `kept`.
    pub fn put_alert<T: Serialize>(
        &self,
        seq: u64,
        alert: &T,
        kept: usize,
    ) -> Result<(), StoreError> {
        let value = serde_json::to_vec(alert).unwrap_or_default();
        self.alerts.insert(seq.to_be_bytes(), value)?;
        let excess = self.alerts.len().saturating_sub(kept);
        for key in self.alerts.iter().keys().take(excess) {
            self.alerts.remove(key?)?;
        }
        Ok(())
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
