//! The driver's synchronous core, apart from the task so a benchmark can
//! run it on a real store without a network: the unfinished rollouts, how
//! a device's report or an operator's command becomes planner steps, and
//! writing what the steps changed. Actions wait in the core until
//! [`Core::store`] has written the steps that returned them.

use super::persist::{self, Changes};
use super::{act, RolloutRecord};
use crate::http::views::{view, DeviceView};
use crate::store::{Store, StoreError};
use crate::watch::{outcome, Outcome};
use petrel_protocol::rollout::{step, Action, DeviceState, Input, Phase};
use std::collections::BTreeMap;

/// Every unfinished rollout, and what its steps left to do.
#[derive(Default)]
pub struct Core {
    active: BTreeMap<String, RolloutRecord>,
    /// (rollout id, action), in the order the steps returned them.
    actions: Vec<(String, Action)>,
    changes: Changes,
}

impl Core {
    /// Every unfinished rollout in `store` (a restart resumes them).
    pub fn load(store: &Store) -> Core {
        let mut core = Core::default();
        let heads = persist::summaries(store).unwrap_or_else(|e| {
            tracing::error!("rollouts could not be read: {e}");
            Vec::new()
        });
        for head in heads.iter().filter(|h| !h.finished()) {
            let id = &head.rollout.id;
            match persist::load(store, id) {
                Ok(Some(rec)) => core.insert(rec),
                Ok(None) => {}
                Err(e) => tracing::error!("rollout {id} could not be read: {e}"),
            }
        }
        core
    }

    pub fn insert(&mut self, rec: RolloutRecord) {
        self.active.insert(rec.rollout.id.clone(), rec);
    }

    pub fn get(&self, id: &str) -> Option<&RolloutRecord> {
        self.active.get(id)
    }

    pub fn get_mut(&mut self, id: &str) -> Option<&mut RolloutRecord> {
        self.active.get_mut(id)
    }

    /// Time passed: one step of every rollout (and the rollbacks' deadline).
    pub fn tick(&mut self, now: u64) {
        let ids: Vec<String> = self.active.keys().cloned().collect();
        for id in ids {
            self.plan(&id, Input::Tick, now);
            if let Some(rec) = self.active.get_mut(&id) {
                rec.revert_deadline(now);
            }
        }
    }

    /// One planner step on rollout `id`; notes are recorded at once,
    /// other actions wait until the step is stored.
    pub fn plan(&mut self, id: &str, input: Input, now: u64) {
        let Some(rec) = self.active.get_mut(id) else {
            return;
        };
        let phase = rec.rollout.phase.clone();
        let actions = step(&mut rec.rollout, input, now);
        if !actions.is_empty() || phase != rec.rollout.phase {
            rec.changed = true;
        }
        for a in actions {
            match a {
                Action::Note(text) => act::note(rec, now, text),
                a => self.actions.push((id.to_string(), a)),
            }
        }
    }

    /// What device `device`'s change (report, presence, labels) means to
    /// each rollout.
    pub fn observed(&mut self, store: &Store, device: &str, now: u64) {
        if self.active.is_empty() {
            return;
        }
        let Ok(view) = view(store, device) else {
            return;
        };
        let facts = view.facts();
        let ids: Vec<String> = self.active.keys().cloned().collect();
        for id in ids {
            let Some(rec) = self.active.get_mut(&id) else {
                continue;
            };
            if matches!(rec.rollout.phase, Phase::Aborted { .. }) {
                rec.revert_reported(&view);
                continue;
            }
            let selected = rec.rollout.selector.matches(&facts);
            let input = match rec.rollout.members.get(device).map(|m| &m.state) {
                None | Some(DeviceState::Left) if selected => Some(Input::Joined {
                    device: device.to_string(),
                    previous: view.current.clone(),
                }),
                Some(DeviceState::Queued) if !selected => Some(Input::Left {
                    device: device.to_string(),
                }),
                Some(DeviceState::Started { .. }) => rec
                    .generations
                    .get(device)
                    .map(|g| started_input(&view, device, *g)),
                _ => None,
            };
            if let Some(input) = input {
                self.plan(&id, input, now);
            }
        }
    }

    /// Writes what changed since the last write, in one transaction;
    /// whether anything had. On failure the records and the actions wait
    /// for the next try.
    pub fn store(&mut self, store: &Store) -> Result<bool, StoreError> {
        for rec in self.active.values_mut() {
            self.changes.collect(rec);
        }
        self.changes.write(store)
    }

    /// The actions of stored steps (call after [`Core::store`]).
    pub fn take_actions(&mut self) -> Vec<(String, Action)> {
        std::mem::take(&mut self.actions)
    }

    /// Sends `Deploy` again to members started just before a crash whose
    /// desired state was never recorded.
    pub fn redeploy_unrecorded(&mut self) {
        for (id, rec) in &self.active {
            for (device, m) in &rec.rollout.members {
                if matches!(m.state, DeviceState::Started { .. })
                    && !rec.generations.contains_key(device)
                {
                    let device = device.clone();
                    self.actions.push((id.clone(), Action::Deploy { device }));
                }
            }
        }
    }

    /// Forgets finished rollouts (they stay in the store).
    pub fn retire_finished(&mut self) {
        self.active.retain(|_, rec| !rec.finished());
    }
}

/// A started member's report as planner input.
fn started_input(view: &DeviceView, device: &str, generation: u64) -> Input {
    let device = device.to_string();
    match outcome(view, generation) {
        Outcome::Converged => Input::Succeeded { device },
        Outcome::Failed(reason) => Input::Failed { device, reason },
        Outcome::Superseded(g) => Input::Failed {
            device,
            reason: format!("superseded by generation {g}"),
        },
        Outcome::Pending => Input::Progress {
            device,
            phase: crate::cli::phase_name(view.phase),
        },
    }
}
