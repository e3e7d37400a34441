//! The update-lock rule of the machine: an installed release waits in
//! `deferred` while an application holds its update lock.

use super::{Action, Deferral, Machine};
use petrel_protocol::lifecycle::Step;
use petrel_protocol::policy::{lock_decision, LockDecision};
use petrel_protocol::{EventKind, Phase};

impl Machine {
    /// Update-lock rule: an application holding its lock defers the swap
    /// (phase `deferred`, with the holder) until it lets go, or until the
    /// operator's override time has passed.
    pub(super) fn swap_unless_locked(
        &mut self,
        step: Step,
        now_ms: u64,
        lock: Option<String>,
    ) -> Vec<Action> {
        let Some(t) = self.state.target.as_mut() else {
            return vec![];
        };
        let since = t.deferred.as_ref().map(|d| d.since_ms);
        let note = match lock_decision(lock.is_some(), since, t.lock_override_after_s, now_ms) {
            LockDecision::Defer => return self.defer(now_ms, lock.unwrap_or_default()),
            LockDecision::Override => Some(format!(
                "update lock held by {} overridden (lock_override_after_s = {}); swapping",
                lock.unwrap_or_default(),
                t.lock_override_after_s.unwrap_or(0)
            )),
            LockDecision::Swap => since.map(|_| "update lock released; swapping".to_string()),
        };
        t.deferred = None;
        let from = self.state.current.clone();
        let mut actions = self.advance(step, |to| Action::Swap { from, to });
        if let Some(note) = note {
            actions.insert(1, Action::Emit(EventKind::Deferred, note));
        }
        actions
    }

    /// Enters (or stays in) `deferred`, persisting and reporting a new holder.
    pub(super) fn defer(&mut self, now_ms: u64, holder: String) -> Vec<Action> {
        let entering = self.state.phase != Phase::Deferred;
        if entering {
            if let Err(e) = self.step(Step::Defer) {
                return vec![Action::Emit(EventKind::UpdateFailed, e)];
            }
        }
        let Some(t) = self.state.target.as_mut() else {
            return vec![];
        };
        let since_ms = t.deferred.as_ref().map_or(now_ms, |d| d.since_ms);
        if !entering && t.deferred.as_ref().is_some_and(|d| d.holder == holder) {
            return vec![];
        }
        t.deferred = Some(Deferral {
            since_ms,
            holder: holder.clone(),
        });
        let mut actions = vec![Action::Persist, Action::Report];
        if entering {
            let why = format!("installed; the swap waits: update lock held by {holder}");
            actions.push(Action::Emit(EventKind::Deferred, why));
        }
        actions
    }
}
