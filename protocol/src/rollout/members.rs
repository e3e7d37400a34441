//! A rollout's members: [`Rollout::new`] fixes the waves and places every
//! device in one; every member state change goes through
//! [`Rollout::set`], which keeps the tallies, the start queue and the
//! deadlines in step (so the planner never scans the fleet).

use super::{DeviceState, Member, Phase, Policy, Rollout, Tally, WaveSize};
use crate::ReleaseRef;
use sha2::{Digest as _, Sha256};
use std::collections::BTreeSet;

impl Rollout {
    /// A rollout of `release` to `devices` (id, release it runs now), its
    /// waves fixed from their number now.
    pub fn new(
        id: &str,
        release: ReleaseRef,
        selector: super::Selector,
        policy: Policy,
        devices: Vec<(String, Option<ReleaseRef>)>,
        now_ms: u64,
    ) -> Rollout {
        let canary = !policy.canary.is_empty();
        let (mut firsts, mut rest): (Vec<_>, Vec<_>) = devices
            .into_iter()
            .partition(|(d, _)| policy.canary.contains(d));
        // a stable spread over the fleet, not the order ids were made in
        rest.sort_by_key(|(d, _)| Sha256::digest(d.as_bytes()));
        firsts.sort_by(|a, b| a.0.cmp(&b.0));
        let bounds = bounds(&policy.waves, rest.len() as u32);
        let offset = usize::from(canary);
        let mut r = Rollout {
            id: id.into(),
            release,
            selector,
            tallies: vec![Tally::default(); bounds.len() + offset],
            bounds,
            policy,
            phase: Phase::Active { wave: 0 },
            created_ms: now_ms,
            members: Default::default(),
            queue: Default::default(),
            deadlines: Default::default(),
            recent_starts: Default::default(),
            dirty: Default::default(),
        };
        for (d, prev) in firsts {
            r.admit(&d, prev, 0);
        }
        for (k, (d, prev)) in rest.into_iter().enumerate() {
            let wave = r.bounds.iter().position(|b| (k as u32) < *b).unwrap_or(0);
            r.admit(&d, prev, wave + offset);
        }
        r
    }

    /// The number of waves (the canary wave included).
    pub fn waves(&self) -> usize {
        self.tallies.len()
    }

    pub(super) fn admit(&mut self, device: &str, previous: Option<ReleaseRef>, wave: usize) {
        let member = Member {
            wave,
            state: DeviceState::Left,
            previous,
            last_phase: String::new(),
        };
        self.members.insert(device.to_string(), member);
        self.tallies[wave].other += 1;
        self.set(device, DeviceState::Queued, 0);
    }

    /// Moves a member to `state`, keeping tallies, queue and deadlines.
    pub(super) fn set(&mut self, device: &str, state: DeviceState, now_ms: u64) {
        let Some(m) = self.members.get_mut(device) else {
            return;
        };
        self.dirty.insert(device.to_string());
        let (wave, old) = (m.wave, std::mem::replace(&mut m.state, state.clone()));
        let tally = &mut self.tallies[wave];
        *slot(tally, &old) -= 1;
        *slot(tally, &state) += 1;
        let key = (wave, device.to_string());
        match &old {
            DeviceState::Queued => {
                self.queue.remove(&key);
            }
            DeviceState::Started { since_ms, .. } => {
                let deadline = since_ms + self.policy.device_timeout_ms;
                self.deadlines.remove(&(deadline, device.to_string()));
            }
            _ => {}
        }
        match &state {
            DeviceState::Queued => {
                self.queue.insert(key);
            }
            DeviceState::Started { .. } => {
                let deadline = now_ms + self.policy.device_timeout_ms;
                self.deadlines.insert((deadline, device.to_string()));
            }
            _ => {}
        }
    }

    /// The members changed since the last call (by the planner, or marked
    /// with [`Rollout::mark_dirty`]): what a store must write.
    pub fn take_dirty(&mut self) -> BTreeSet<String> {
        std::mem::take(&mut self.dirty)
    }

    /// Marks a member changed (the caller changed what it keeps beside it).
    pub fn mark_dirty(&mut self, device: &str) {
        if self.members.contains_key(device) {
            self.dirty.insert(device.to_string());
        }
    }

    /// Rebuilds the tallies, the start queue and the deadlines from the
    /// members (after they were loaded from a store).
    pub fn reindex(&mut self) {
        self.queue.clear();
        self.deadlines.clear();
        for t in &mut self.tallies {
            *t = Tally::default();
        }
        let last = self.tallies.len().saturating_sub(1);
        for (d, m) in self.members.iter_mut() {
            // a record from another version never indexes past the waves
            m.wave = m.wave.min(last);
            let Some(tally) = self.tallies.get_mut(m.wave) else {
                continue;
            };
            *slot(tally, &m.state) += 1;
            match &m.state {
                DeviceState::Queued => {
                    self.queue.insert((m.wave, d.clone()));
                }
                DeviceState::Started { since_ms, .. } => {
                    let deadline = since_ms + self.policy.device_timeout_ms;
                    self.deadlines.insert((deadline, d.clone()));
                }
                _ => {}
            }
        }
    }

    /// Failed (or stuck) members, and members with an outcome, all waves.
    pub fn failures(&self) -> (u32, u32) {
        self.tallies.iter().fold((0, 0), |(f, n), t| {
            (f + t.failed, n + t.failed + t.succeeded)
        })
    }
}

/// The counter of `state` in a tally (`Left` members had a slot of their
/// own before they were admitted: `other`).
fn slot<'a>(t: &'a mut Tally, state: &DeviceState) -> &'a mut u32 {
    match state {
        DeviceState::Queued => &mut t.queued,
        DeviceState::Started { .. } => &mut t.started,
        DeviceState::Succeeded => &mut t.succeeded,
        DeviceState::Failed { .. } | DeviceState::Stuck { .. } => &mut t.failed,
        DeviceState::RolledBack | DeviceState::Left => &mut t.other,
    }
}

/// Cumulative member counts of each wave over `n` devices; the last wave
/// always takes every remaining device.
fn bounds(waves: &[WaveSize], n: u32) -> Vec<u32> {
    let mut last = 0;
    let mut out: Vec<u32> = waves
        .iter()
        .map(|w| {
            let want = match *w {
                WaveSize::Percent(p) => (u64::from(n) * u64::from(p)).div_ceil(100) as u32,
                WaveSize::Count(c) => c,
            };
            last = want.clamp(last, n);
            last
        })
        .collect();
    if let Some(l) = out.last_mut() {
        *l = n;
    }
    out
}
