//! The agent's durable state in sled: the update lifecycle record and the
//! event outbox. Every write is flushed before the caller acts on it
//! (sled is durable only after `flush()`).
//!
//! The store is rebuildable: if sled cannot open it, it is moved aside and
//! a fresh one is created (the running release keeps running; the
//! controller's retained desired state brings the device back on track).

use crate::machine::AgentState;
use petrel_protocol::Event;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("agent store {path}: {source}")]
    Open { path: PathBuf, source: sled::Error },
    #[error("agent store: {0}")]
    Db(#[from] sled::Error),
}

#[derive(Clone)]
pub struct AgentStore {
    db: sled::Db,
    outbox: sled::Tree,
}

const STATE_KEY: &str = "state";
/// Signing keys learned through endorsements (hex), beside the pinned ones.
const KEYS_KEY: &str = "trusted-keys";
/// Ids of keys rotated out (they endorsed a newer key).
const RETIRED_KEY: &str = "retired-keys";
const SEQ_KEY: &str = "event-seq";

impl AgentStore {
    /// Opens the store, moving an unreadable one aside.
    pub fn open(dir: &Path) -> Result<AgentStore, StoreError> {
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
        Ok(AgentStore {
            outbox: db.open_tree("outbox")?,
            db,
        })
    }

    pub fn load_state(&self) -> AgentState {
        self.db
            .get(STATE_KEY)
            .ok()
            .flatten()
            .and_then(|v| serde_json::from_slice(&v).ok())
            .unwrap_or_default()
    }

    /// Persists the lifecycle record durably (before its side effects).
    pub fn save_state(&self, s: &AgentState) -> Result<(), StoreError> {
        self.db
            .insert(STATE_KEY, serde_json::to_vec(s).unwrap_or_default())?;
        self.db.flush()?;
        Ok(())
    }

    /// Keys learned through endorsements (a rotated controller key).
    pub fn learned_keys(&self) -> Vec<petrel_protocol::PublicKey> {
        let hexes: Vec<String> = self
            .db
            .get(KEYS_KEY)
            .ok()
            .flatten()
            .and_then(|v| serde_json::from_slice(&v).ok())
            .unwrap_or_default();
        hexes
            .iter()
            .filter_map(|h| petrel_protocol::PublicKey::from_hex(h).ok())
            .collect()
    }

    /// Ids of the keys rotated out.
    pub fn retired_keys(&self) -> Vec<String> {
        self.db
            .get(RETIRED_KEY)
            .ok()
            .flatten()
            .and_then(|v| serde_json::from_slice(&v).ok())
            .unwrap_or_default()
    }

    /// Records what a verified envelope taught, durably.
    pub fn learn_keys(
        &self,
        learned: &petrel_protocol::signing::Learned,
    ) -> Result<(), StoreError> {
        let mut keys = self.learned_keys();
        for k in &learned.keys {
            if !keys.contains(k) {
                keys.push(k.clone());
            }
        }
        let hexes: Vec<String> = keys.iter().map(|k| k.to_hex()).collect();
        self.db
            .insert(KEYS_KEY, serde_json::to_vec(&hexes).unwrap_or_default())?;
        let mut retired = self.retired_keys();
        for id in &learned.retired {
            if !retired.contains(id) {
                retired.push(id.clone());
            }
        }
        self.db.insert(
            RETIRED_KEY,
            serde_json::to_vec(&retired).unwrap_or_default(),
        )?;
        self.db.flush()?;
        Ok(())
    }

    /// Next event sequence number (durable, increasing across restarts).
    pub fn next_seq(&self) -> Result<u64, StoreError> {
        let v = self.db.update_and_fetch(SEQ_KEY, |old| {
            let n = old
                .and_then(|b| b.try_into().ok())
                .map(u64::from_be_bytes)
                .unwrap_or(0);
            Some((n + 1).to_be_bytes().to_vec())
        })?;
        Ok(v.and_then(|b| b.as_ref().try_into().ok())
            .map(u64::from_be_bytes)
            .unwrap_or(1))
    }

    /// Adds an event to the outbox; it stays until the broker acks it.
    pub fn push_event(&self, e: &Event) -> Result<(), StoreError> {
        self.outbox.insert(
            e.seq.to_be_bytes(),
            serde_json::to_vec(e).unwrap_or_default(),
        )?;
        self.db.flush()?;
        Ok(())
    }

    pub fn ack_event(&self, seq: u64) -> Result<(), StoreError> {
        self.outbox.remove(seq.to_be_bytes())?;
        Ok(())
    }

    pub fn pending_events(&self) -> Vec<Event> {
        self.outbox
            .iter()
            .values()
            .filter_map(|v| v.ok().and_then(|v| serde_json::from_slice(&v).ok()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_and_sequence_numbers_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        {
            let s = AgentStore::open(&path).unwrap();
            let st = AgentState {
                desired_generation: 7,
                ..Default::default()
            };
            s.save_state(&st).unwrap();
            assert_eq!(s.next_seq().unwrap(), 1);
            assert_eq!(s.next_seq().unwrap(), 2);
        }
        let s = AgentStore::open(&path).unwrap();
        assert_eq!(s.load_state().desired_generation, 7);
        assert_eq!(s.next_seq().unwrap(), 3);
    }

    #[test]
    fn an_unreadable_store_is_moved_aside_and_recreated() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        std::fs::write(&path, b"not a sled database").unwrap();
        let s = AgentStore::open(&path).unwrap();
        assert_eq!(s.load_state(), AgentState::default());
    }
}
