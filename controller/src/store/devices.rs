//! Which devices the store knows: every id with a desired state, a report
//! or a presence record, whole or a page at a time. A page reads only its
//! own stretch of each tree's keys, so listing a large fleet page by page
//! costs what the pages hold, not the fleet's size each time.

use super::{Store, StoreError};
use petrel_protocol::ReleaseRef;
use serde::Deserialize;
use std::collections::BTreeSet;
use std::ops::Bound;

/// What a fleet view needs of a desired state: read without building the
/// release manifest (a listing reads thousands of them).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct DesiredHead {
    pub generation: u64,
    /// The release's `name` and `version` (its other fields skipped).
    pub release: Option<ReleaseRef>,
}

impl Store {
    /// The generation and release of `device_id`'s desired state.
    pub fn desired_head(&self, device_id: &str) -> Result<Option<DesiredHead>, StoreError> {
        super::get(&self.desired, device_id)
    }

    /// Every device id known from desired, reported or presence records.
    pub fn device_ids(&self) -> Result<Vec<String>, StoreError> {
        let mut ids = BTreeSet::new();
        for tree in [&self.desired, &self.reported, &self.presence] {
            for k in tree.iter().keys() {
                ids.insert(String::from_utf8_lossy(&k?).into_owned());
            }
        }
        Ok(ids.into_iter().collect())
    }

    /// Whether `id` has a desired state, a report or a presence record.
    pub fn knows_device(&self, id: &str) -> Result<bool, StoreError> {
        for tree in [&self.desired, &self.reported, &self.presence] {
            if tree.contains_key(id)? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Up to `limit` known device ids after `after` (from the first when
    /// `None`), in order.
    pub fn device_ids_page(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        let start = match after {
            Some(a) => Bound::Excluded(a.as_bytes().to_vec()),
            None => Bound::Unbounded,
        };
        // the union's first `limit` ids are each among the first `limit`
        // of some tree
        let mut ids = BTreeSet::new();
        for tree in [&self.desired, &self.reported, &self.presence] {
            let range = tree.range::<Vec<u8>, _>((start.clone(), Bound::Unbounded));
            for k in range.keys().take(limit) {
                ids.insert(String::from_utf8_lossy(&k?).into_owned());
            }
        }
        Ok(ids.into_iter().take(limit).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Presence;

    #[test]
    fn pages_of_device_ids_cover_every_device_once_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let seen = Presence {
            online: true,
            last_seen_ms: 1,
        };
        // known from different trees, interleaved
        for i in (0..25).step_by(2) {
            store.record_presence(&format!("d{i:02}"), &seen).unwrap();
        }
        for i in (1..25).step_by(2) {
            let r = petrel_protocol::Reported {
                device_id: format!("d{i:02}"),
                ..Default::default()
            };
            store.record_reported(&r).unwrap();
        }
        store.record_presence("d03", &seen).unwrap();
        let mut paged = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = store.device_ids_page(after.as_deref(), 4).unwrap();
            assert!(page.len() <= 4);
            let Some(last) = page.last() else { break };
            after = Some(last.clone());
            paged.extend(page);
        }
        assert_eq!(paged, store.device_ids().unwrap());
        assert_eq!(paged.len(), 25);
        assert!(store.knows_device("d24").unwrap());
        assert!(!store.knows_device("d25").unwrap());
    }

    #[test]
    fn a_desired_head_gives_the_generation_and_release_without_the_manifest() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let release = petrel_protocol::ReleaseManifest {
            schema: 1,
            name: "app".into(),
            version: "7".into(),
            services: Default::default(),
        };
        store
            .set_desired("pi", Some(release.clone()), Default::default(), 1)
            .unwrap();
        let second = store
            .set_desired("pi", Some(release), Default::default(), 2)
            .unwrap();
        let head = store.desired_head("pi").unwrap().unwrap();
        assert_eq!(head.generation, second.generation);
        assert_eq!(head.release.unwrap().to_string(), "app@7");
        store
            .set_desired("pi", None, Default::default(), 3)
            .unwrap();
        assert!(store.desired_head("pi").unwrap().unwrap().release.is_none());
        assert!(store.desired_head("other").unwrap().is_none());
    }
}
