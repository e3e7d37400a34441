//! The agent's durable state: the update lifecycle record, the keys it
//! learned and the event outbox. Every write is flushed before the caller
//! acts on it. The store is written against [`kv::Kv`]: sled on a device
//! ([`sled_kv`], rebuilt if unreadable), memory for virtual devices
//! ([`memory_kv`]).

pub mod kv;
pub mod memory_kv;
pub mod sled_kv;

use crate::machine::AgentState;
use kv::{Kv, Tree};
use petrel_protocol::Event;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("agent store {path}: {source}")]
    Open { path: PathBuf, source: sled::Error },
    #[error("agent store: {0}")]
    Db(#[from] sled::Error),
}

#[derive(Clone)]
pub struct AgentStore {
    kv: Arc<dyn Kv>,
    /// Sequence numbers are read and written under it.
    seq: Arc<Mutex<()>>,
    /// Where an unreadable store was moved when this one was opened.
    moved_aside: Option<PathBuf>,
}

const STATE_KEY: &str = "state";
/// Signing keys learned through endorsements (hex), beside the pinned ones.
const KEYS_KEY: &str = "trusted-keys";
/// Ids of keys rotated out (they endorsed a newer key).
const RETIRED_KEY: &str = "retired-keys";
const SEQ_KEY: &str = "event-seq";

impl AgentStore {
    /// Opens the sled store in `dir`, moving an unreadable one aside.
    pub fn open(dir: &Path) -> Result<AgentStore, StoreError> {
        let kv = sled_kv::SledKv::open(dir)?;
        let moved_aside = kv.moved_aside.clone();
        Ok(AgentStore {
            moved_aside,
            ..AgentStore::on(Arc::new(kv))
        })
    }

    /// The store on any key-value backend.
    pub fn on(kv: Arc<dyn Kv>) -> AgentStore {
        AgentStore {
            kv,
            seq: Arc::default(),
            moved_aside: None,
        }
    }

    /// Where the unreadable store found at opening was moved, if it was.
    pub fn moved_aside(&self) -> Option<&Path> {
        self.moved_aside.as_deref()
    }

    /// Whether a lifecycle record was ever saved (a store lost and
    /// recreated has none).
    pub fn has_state(&self) -> bool {
        matches!(self.kv.get(Tree::Main, STATE_KEY.as_bytes()), Ok(Some(_)))
    }

    /// Makes the next sequence numbers at least `floor` (a rebuilt store
    /// continues above the lost one's numbers, which the controller keeps:
    /// reusing them would overwrite its events).
    pub fn raise_seq(&self, floor: u64) -> Result<(), StoreError> {
        let _one_at_a_time = self
            .seq
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let last = self.last_seq()?;
        if last + 1 < floor {
            let v = (floor - 1).to_be_bytes().to_vec();
            self.kv.insert(Tree::Main, SEQ_KEY.as_bytes(), v)?;
        }
        self.kv.flush()
    }

    fn last_seq(&self) -> Result<u64, StoreError> {
        Ok(self
            .kv
            .get(Tree::Main, SEQ_KEY.as_bytes())?
            .and_then(|b| b.try_into().ok())
            .map(u64::from_be_bytes)
            .unwrap_or(0))
    }

    fn read<T: serde::de::DeserializeOwned>(&self, key: &str) -> Option<T> {
        let v = self.kv.get(Tree::Main, key.as_bytes()).ok().flatten()?;
        serde_json::from_slice(&v).ok()
    }

    fn write<T: serde::Serialize>(&self, key: &str, v: &T) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(v).unwrap_or_default();
        self.kv.insert(Tree::Main, key.as_bytes(), bytes)
    }

    pub fn load_state(&self) -> AgentState {
        self.read(STATE_KEY).unwrap_or_default()
    }

    /// Persists the lifecycle record durably (before its side effects).
    pub fn save_state(&self, s: &AgentState) -> Result<(), StoreError> {
        self.write(STATE_KEY, s)?;
        self.kv.flush()
    }

    /// Keys learned through endorsements (a rotated controller key).
    pub fn learned_keys(&self) -> Vec<petrel_protocol::PublicKey> {
        let hexes: Vec<String> = self.read(KEYS_KEY).unwrap_or_default();
        hexes
            .iter()
            .filter_map(|h| petrel_protocol::PublicKey::from_hex(h).ok())
            .collect()
    }

    /// Ids of the keys rotated out.
    pub fn retired_keys(&self) -> Vec<String> {
        self.read(RETIRED_KEY).unwrap_or_default()
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
        self.write(KEYS_KEY, &hexes)?;
        let mut retired = self.retired_keys();
        for id in &learned.retired {
            if !retired.contains(id) {
                retired.push(id.clone());
            }
        }
        self.write(RETIRED_KEY, &retired)?;
        self.kv.flush()
    }

    /// Next event sequence number (durable, increasing across restarts).
    pub fn next_seq(&self) -> Result<u64, StoreError> {
        let _one_at_a_time = self
            .seq
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let next = self.last_seq()? + 1;
        self.kv
            .insert(Tree::Main, SEQ_KEY.as_bytes(), next.to_be_bytes().to_vec())?;
        Ok(next)
    }

    /// Adds an event to the outbox; it stays until the broker acks it.
    pub fn push_event(&self, e: &Event) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(e).unwrap_or_default();
        self.kv.insert(Tree::Outbox, &e.seq.to_be_bytes(), bytes)?;
        self.kv.flush()
    }

    pub fn ack_event(&self, seq: u64) -> Result<(), StoreError> {
        self.kv.remove(Tree::Outbox, &seq.to_be_bytes())
    }

    pub fn pending_events(&self) -> Vec<Event> {
        self.kv
            .values(Tree::Outbox)
            .iter()
            .filter_map(|v| serde_json::from_slice(v).ok())
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
    fn a_store_still_held_by_a_closing_agent_is_waited_for_not_moved_aside() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let first = AgentStore::open(&path).unwrap();
        let st = AgentState {
            desired_generation: 5,
            ..Default::default()
        };
        first.save_state(&st).unwrap();
        let closing = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(300));
            drop(first);
        });
        let second = AgentStore::open(&path).unwrap();
        closing.join().unwrap();
        assert_eq!(second.load_state().desired_generation, 5);
    }

    #[test]
    fn a_memory_store_outlives_the_agent_that_wrote_it() {
        let kv: Arc<dyn Kv> = Arc::new(memory_kv::MemoryKv::default());
        {
            let s = AgentStore::on(kv.clone());
            let st = AgentState {
                desired_generation: 9,
                ..Default::default()
            };
            s.save_state(&st).unwrap();
            assert_eq!(s.next_seq().unwrap(), 1);
            let e = Event {
                schema: petrel_protocol::SCHEMA,
                device_id: "sim-1".into(),
                seq: 1,
                at_ms: 0,
                kind: petrel_protocol::EventKind::Installed,
                generation: 1,
                digest: None,
                message: String::new(),
            };
            s.push_event(&e).unwrap();
        }
        let s = AgentStore::on(kv);
        assert_eq!(s.load_state().desired_generation, 9);
        assert_eq!(s.next_seq().unwrap(), 2);
        assert_eq!(s.pending_events().len(), 1);
        s.ack_event(1).unwrap();
        assert!(s.pending_events().is_empty());
    }

    #[test]
    fn an_unreadable_store_is_moved_aside_and_recreated() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        std::fs::write(&path, b"not a sled database").unwrap();
        let s = AgentStore::open(&path).unwrap();
        assert_eq!(s.load_state(), AgentState::default());
        assert!(!s.has_state());
        let aside = s.moved_aside().expect("moved aside").to_path_buf();
        let name = aside.file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.starts_with("db.corrupt-"), "{name}");
        assert_eq!(std::fs::read(&aside).unwrap(), b"not a sled database");
    }

    #[test]
    fn a_store_with_garbage_in_its_files_is_moved_aside_and_recreated() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        {
            let s = AgentStore::open(&path).unwrap();
            s.save_state(&AgentState::default()).unwrap();
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
        for f in std::fs::read_dir(&path).unwrap().flatten() {
            if f.path().is_file() {
                std::fs::write(f.path(), vec![0x5a; 4096]).unwrap();
            }
        }
        let s = AgentStore::open(&path).unwrap();
        assert!(s.moved_aside().is_some_and(|p| p.is_dir()));
        assert!(!s.has_state());
    }

    #[test]
    fn a_raised_sequence_continues_above_the_floor_and_never_goes_back() {
        let s = AgentStore::on(Arc::new(memory_kv::MemoryKv::default()));
        s.raise_seq(1_000).unwrap();
        assert_eq!(s.next_seq().unwrap(), 1_000);
        s.raise_seq(10).unwrap();
        assert_eq!(s.next_seq().unwrap(), 1_001);
    }
}
