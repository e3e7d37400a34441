//! The fleet index: one small row per device in memory, kept current by
//! what the controller ingests, so the dashboard's filters and counts, the
//! metrics and the alerts read 50,000 devices without touching the store.
//! Every change marks the device; [`FleetIndex::take_changed`] hands the
//! marks to the live stream once per tick.

use super::counts::Counts;
use super::crash::RestartHistory;
use crate::store::{Presence, Store, StoreError};
use petrel_protocol::rollout::Selector;
use petrel_protocol::{Phase, ReleaseRef, Reported};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

/// What the index keeps of one device.
#[derive(Debug, Clone, Default)]
pub struct Row {
    pub phase: Phase,
    /// Whether the device ever reported.
    pub reported: bool,
    pub online: bool,
    pub last_seen_ms: u64,
    pub current: Option<ReleaseRef>,
    pub free_disk_bytes: Option<u64>,
    pub disk_total_bytes: Option<u64>,
    /// Labels and facts a filter sees (see [`filter_facts`]).
    pub facts: BTreeMap<String, String>,
    pub(crate) labels: BTreeMap<String, String>,
    /// The device's own facts (they win over a label of the same name).
    pub(crate) own: BTreeMap<String, String>,
    pub restarts: RestartHistory,
}

/// The fleet at a glance (`GET /v1/fleet/summary`, the live stream).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub devices: u64,
    pub online: u64,
    /// Devices by phase (`never-reported` for those without a report).
    pub phases: BTreeMap<String, u64>,
    /// Devices by the release they run (`none` for no release).
    pub releases: BTreeMap<String, u64>,
}

/// Shared handle on the index.
#[derive(Clone, Default)]
pub struct FleetIndex {
    inner: Arc<RwLock<Inner>>,
    /// Labels of devices not seen yet, for when they are.
    pending_labels: Arc<Mutex<BTreeMap<String, BTreeMap<String, String>>>>,
    changed: Arc<Mutex<BTreeSet<String>>>,
}

/// The rows and their running counts, under one lock.
#[derive(Default)]
struct Inner {
    rows: BTreeMap<String, Row>,
    counts: Counts,
}

impl Inner {
    /// Runs `f` on `id`'s row (created by `new` if missing), keeping the
    /// counts in step.
    fn with_row<T>(
        &mut self,
        id: &str,
        new: impl FnOnce() -> Row,
        f: impl FnOnce(&mut Row) -> T,
    ) -> T {
        let row = match self.rows.get_mut(id) {
            Some(row) => {
                self.counts.remove(row);
                row
            }
            None => self.rows.entry(id.to_string()).or_insert_with(new),
        };
        let out = f(row);
        self.counts.add(row);
        out
    }
}

/// The facts a fleet filter matches: the device's labels, `id`,
/// `platform`, `hostname`, `agent_version` (as rollout selectors see
/// them), plus `phase`, `release` (what it runs) and `online`.
pub fn filter_facts(
    id: &str,
    reported: Option<&Reported>,
    online: bool,
    labels: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut facts = labels.clone();
    facts.insert("id".into(), id.to_string());
    facts.insert("online".into(), online.to_string());
    let Some(r) = reported else {
        facts.insert("phase".into(), "never-reported".into());
        return facts;
    };
    facts.insert("phase".into(), phase_name(r.phase));
    if let Some(c) = &r.current {
        facts.insert("release".into(), c.to_string());
    }
    if let Some(p) = &r.platform {
        facts.insert("platform".into(), p.to_string());
    }
    if let Some(h) = &r.hostname {
        facts.insert("hostname".into(), h.clone());
    }
    if !r.agent_version.is_empty() {
        facts.insert("agent_version".into(), r.agent_version.clone());
    }
    facts
}

/// A phase as the wire writes it (`rolled-back`).
pub fn phase_name(phase: Phase) -> String {
    phase.name().to_string()
}

impl FleetIndex {
    /// The index of every device in `store`.
    pub fn load(store: &Store) -> Result<FleetIndex, StoreError> {
        let index = FleetIndex::default();
        for id in store.device_ids()? {
            let reported = store.reported(&id)?;
            let presence = store.presence(&id)?.unwrap_or_default();
            let labels = store.labels(&id)?;
            let mut row = Row {
                labels,
                ..Row::default()
            };
            row.presence(&presence);
            if let Some(r) = &reported {
                row.report(r, presence.last_seen_ms);
            }
            row.refresh_facts(&id, reported.as_ref());
            let mut inner = index.write();
            inner.counts.add(&row);
            inner.rows.insert(id, row);
        }
        // labels of devices that have not connected yet wait for them
        for id in store.labeled_ids()? {
            if index.row(&id).is_none() {
                let labels = store.labels(&id)?;
                index.pending().insert(id, labels);
            }
        }
        Ok(index)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(PoisonError::into_inner)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Marks a device changed (its desired state, its events).
    pub fn touch(&self, id: &str) {
        self.changed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id.to_string());
    }

    /// Devices changed since the last call.
    pub fn take_changed(&self) -> BTreeSet<String> {
        std::mem::take(&mut *self.changed.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Applies a device's report (received at `now_ms`); the row after it.
    pub fn reported(&self, r: &Reported, now_ms: u64) -> Row {
        let id = &r.device_id;
        let row = self.write().with_row(
            id,
            || self.new_row(id),
            |row| {
                row.report(r, now_ms);
                row.refresh_facts(id, Some(r));
                row.clone()
            },
        );
        self.touch(&r.device_id);
        row
    }

    /// Applies a device's presence; whether it came online or went offline.
    pub fn presence(&self, id: &str, p: &Presence) -> bool {
        let changed = self.write().with_row(
            id,
            || self.new_row(id),
            |row| {
                let changed = row.online != p.online;
                row.presence(p);
                if changed {
                    row.own.insert("online".into(), p.online.to_string());
                    row.facts.insert("online".into(), p.online.to_string());
                }
                changed
            },
        );
        self.touch(id);
        changed
    }

    /// Replaces a device's labels.
    pub fn labels(&self, id: &str, labels: BTreeMap<String, String>) {
        match self.write().rows.get_mut(id) {
            Some(row) => {
                row.labels = labels;
                row.merge_facts();
            }
            None => {
                self.pending().insert(id.to_string(), labels);
            }
        }
        self.touch(id);
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, BTreeMap<String, String>>> {
        self.pending_labels
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// A row for a device seen for the first time, with its labels.
    fn new_row(&self, id: &str) -> Row {
        let mut row = Row::new(id);
        if let Some(labels) = self.pending().remove(id) {
            row.labels = labels;
            row.merge_facts();
        }
        row
    }

    /// Adds a device not seen yet (a row of a device that never reported).
    pub fn ensure(&self, id: &str) {
        let mut inner = self.write();
        if !inner.rows.contains_key(id) {
            inner.with_row(id, || self.new_row(id), |_| ());
        }
    }

    /// Forgets a device.
    pub fn forget(&self, id: &str) {
        {
            let mut inner = self.write();
            if let Some(row) = inner.rows.remove(id) {
                inner.counts.remove(&row);
            }
        }
        self.touch(id);
    }

    /// One device's row.
    pub fn row(&self, id: &str) -> Option<Row> {
        self.read().rows.get(id).cloned()
    }

    /// Calls `f` on every row, in id order (under the read lock: keep it
    /// short).
    pub fn each(&self, mut f: impl FnMut(&str, &Row)) {
        for (id, row) in self.read().rows.iter() {
            f(id, row);
        }
    }

    /// The ids a filter selects, in order: `offset` skipped, at most
    /// `limit`; and how many it selects in all.
    pub fn select(&self, filter: &Selector, offset: usize, limit: usize) -> (Vec<String>, usize) {
        let inner = self.read();
        let mut total = 0;
        let mut page = Vec::new();
        for (id, row) in inner.rows.iter() {
            if filter.matches(&row.facts) {
                if total >= offset && page.len() < limit {
                    page.push(id.clone());
                }
                total += 1;
            }
        }
        (page, total)
    }

    /// Counts by phase, presence and release (kept as the rows change:
    /// see [`super::counts`]).
    pub fn summary(&self) -> Summary {
        self.read().counts.summary()
    }
}

impl Row {
    fn new(id: &str) -> Row {
        let mut row = Row::default();
        row.refresh_facts(id, None);
        row
    }

    fn report(&mut self, r: &Reported, now_ms: u64) {
        self.reported = true;
        self.phase = r.phase;
        self.current = r.current.clone();
        self.free_disk_bytes = r.free_disk_bytes;
        self.disk_total_bytes = r.health.as_ref().and_then(|h| h.disk_total_bytes);
        self.restarts.observe(&r.services, now_ms);
    }

    fn presence(&mut self, p: &Presence) {
        self.online = p.online;
        self.last_seen_ms = p.last_seen_ms;
    }

    fn refresh_facts(&mut self, id: &str, r: Option<&Reported>) {
        self.own = filter_facts(id, r, self.online, &BTreeMap::new());
        self.merge_facts();
    }

    fn merge_facts(&mut self) {
        self.facts = self.labels.clone();
        self.facts.extend(self.own.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(id: &str, phase: Phase, release: Option<&str>) -> Reported {
        Reported {
            device_id: id.into(),
            phase,
            current: release.map(|r| r.parse().unwrap()),
            ..Reported::default()
        }
    }

    #[test]
    fn filters_see_phase_release_presence_and_labels_and_page_in_id_order() {
        let index = FleetIndex::default();
        for i in 0..10 {
            let phase = if i % 2 == 0 {
                Phase::Running
            } else {
                Phase::Downloading
            };
            index.reported(&report(&format!("dev-{i}"), phase, Some("app@1.0")), 1);
        }
        index.presence(
            "dev-4",
            &Presence {
                online: true,
                last_seen_ms: 5,
            },
        );
        index.labels("dev-4", [("site".to_string(), "lab".to_string())].into());
        let running: Selector = "phase=running,release=app@1.0".parse().unwrap();
        let (page, total) = index.select(&running, 1, 2);
        assert_eq!(total, 5);
        assert_eq!(page, vec!["dev-2", "dev-4"]);
        let lab: Selector = "site=lab,online=true,id~v-4".parse().unwrap();
        assert_eq!(index.select(&lab, 0, 10), (vec!["dev-4".to_string()], 1));
        let summary = index.summary();
        assert_eq!(summary.devices, 10);
        assert_eq!(summary.online, 1);
        assert_eq!(summary.phases["running"], 5);
        assert_eq!(summary.releases["app@1.0"], 10);
        assert_eq!(index.take_changed().len(), 10);
        assert!(index.take_changed().is_empty());
    }

    #[test]
    fn a_label_change_replaces_the_old_labels_but_not_the_devices_facts() {
        let index = FleetIndex::default();
        index.reported(&report("d", Phase::Running, None), 1);
        index.labels("d", [("site".to_string(), "a".to_string())].into());
        index.labels("d", [("id".to_string(), "spoof".to_string())].into());
        let row = index.row("d").unwrap();
        assert_eq!(row.facts.get("site"), None);
        assert_eq!(row.facts["id"], "d");
    }

    /// The summary counted afresh from the rows.
    fn recount(index: &FleetIndex) -> Summary {
        let mut counts = Counts::default();
        index.each(|_, row| counts.add(row));
        counts.summary()
    }

    #[test]
    fn the_running_counts_match_a_recount_through_reports_presence_and_forgetting() {
        let index = FleetIndex::default();
        let phases = [Phase::Running, Phase::Downloading, Phase::Failed];
        for step in 0..300u64 {
            let id = format!("d-{}", step % 17);
            match step % 5 {
                0 | 1 => {
                    let release = format!("app@{}", step % 3);
                    let phase = phases[(step % 3) as usize];
                    index.reported(&report(&id, phase, Some(release.as_str())), step);
                }
                2 => {
                    let online = step % 2 == 0;
                    let p = Presence {
                        online,
                        last_seen_ms: step,
                    };
                    index.presence(&id, &p);
                }
                3 => index.ensure(&format!("new-{}", step % 7)),
                _ => index.forget(&id),
            }
            assert_eq!(index.summary(), recount(&index), "after step {step}");
        }
        assert!(index.summary().devices > 0);
    }
}
