//! The fleet summary kept as running counts: every change to a row of the
//! index takes the row's old contribution out and puts the new one in, so
//! a summary (each live tick, each `/metrics` scrape) costs the number of
//! phases and releases, not the number of devices.

use super::index::{phase_name, Row, Summary};
use petrel_protocol::{Phase, ReleaseRef};
use std::collections::HashMap;

/// Devices by presence, phase (`None`: never reported) and release.
#[derive(Debug, Clone, Default)]
pub struct Counts {
    devices: u64,
    online: u64,
    phases: HashMap<Option<Phase>, u64>,
    releases: HashMap<Option<ReleaseRef>, u64>,
}

impl Counts {
    /// Counts `row` in.
    pub fn add(&mut self, row: &Row) {
        self.devices += 1;
        self.online += u64::from(row.online);
        *self.phases.entry(phase_of(row)).or_default() += 1;
        *self.releases.entry(row.current.clone()).or_default() += 1;
    }

    /// Counts `row` out (it was counted in before).
    pub fn remove(&mut self, row: &Row) {
        self.devices = self.devices.saturating_sub(1);
        self.online = self.online.saturating_sub(u64::from(row.online));
        decrement(&mut self.phases, &phase_of(row));
        decrement(&mut self.releases, &row.current);
    }

    /// The counts as the API shows them.
    pub fn summary(&self) -> Summary {
        Summary {
            devices: self.devices,
            online: self.online,
            phases: self
                .phases
                .iter()
                .map(|(p, n)| (p.map_or("never-reported".into(), phase_name), *n))
                .collect(),
            releases: self
                .releases
                .iter()
                .map(|(r, n)| (r.as_ref().map_or("none".into(), ReleaseRef::to_string), *n))
                .collect(),
        }
    }
}

fn phase_of(row: &Row) -> Option<Phase> {
    row.reported.then_some(row.phase)
}

fn decrement<K: std::hash::Hash + Eq>(map: &mut HashMap<K, u64>, key: &K) {
    if let Some(n) = map.get_mut(key) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            map.remove(key);
        }
    }
}
