//! The fleet-level rollback of an aborted rollout, tracked: every member
//! the abort sent back is followed until its report shows it back on the
//! release it ran (or failing to get there, or silent past the device
//! timeout). The rollout stays active, and its status shows the rollback,
//! until every such member has an outcome.

use super::RolloutRecord;
use crate::http::views::DeviceView;
use crate::watch::{outcome, Outcome};
use petrel_protocol::rollout::Phase;
use serde::{Deserialize, Serialize};

/// Counts of the rollback (kept in the rollout's head record).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rollback {
    pub started_ms: u64,
    /// Members sent back.
    pub sent: u32,
    /// Back on the release they ran (or, having run none, left as they are).
    pub back: u32,
    pub failed: u32,
}

impl Rollback {
    pub fn settled(&self) -> bool {
        self.back + self.failed >= self.sent
    }
}

/// How one member's rollback ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum RevertOutcome {
    Back,
    /// It ran no release before: its desired state was cleared, and it
    /// keeps what it runs.
    Cleared,
    Failed {
        reason: String,
    },
}

impl RolloutRecord {
    /// Member `device` was sent back under `generation` (`cleared`: its
    /// desired state was cleared instead). A pause's supersede is not a
    /// rollback: only the generation it had is forgotten.
    pub fn sent_back(&mut self, device: &str, generation: u64, cleared: bool, now: u64) {
        self.rollout.mark_dirty(device);
        self.generations.remove(device);
        if !matches!(self.rollout.phase, Phase::Aborted { .. }) {
            return;
        }
        self.changed = true;
        let rollback = self.rollback.get_or_insert_with(|| Rollback {
            started_ms: now,
            ..Default::default()
        });
        if self
            .reverted
            .insert(device.to_string(), generation)
            .is_none()
        {
            rollback.sent += 1;
        }
        if cleared {
            self.settle_revert(device, RevertOutcome::Cleared);
        }
    }

    /// What a sent-back member's report says of its rollback.
    pub(super) fn revert_reported(&mut self, view: &DeviceView) {
        let Some(generation) = self.reverted.get(&view.id).copied() else {
            return;
        };
        let result = match outcome(view, generation) {
            Outcome::Pending => return,
            Outcome::Converged => RevertOutcome::Back,
            Outcome::Failed(reason) => RevertOutcome::Failed { reason },
            Outcome::Superseded(g) => RevertOutcome::Failed {
                reason: format!("superseded by generation {g}"),
            },
        };
        self.settle_revert(&view.id, result);
    }

    /// Sent-back members silent past the device timeout have failed.
    pub(super) fn revert_deadline(&mut self, now: u64) {
        let Some(rb) = &self.rollback else { return };
        if rb.settled() || now < rb.started_ms + self.rollout.policy.device_timeout_ms {
            return;
        }
        let silent: Vec<String> = self
            .reverted
            .keys()
            .filter(|d| !self.reverts.contains_key(*d))
            .cloned()
            .collect();
        for d in silent {
            let reason = "no report of its previous release within the device timeout".into();
            self.settle_revert(&d, RevertOutcome::Failed { reason });
        }
    }

    fn settle_revert(&mut self, device: &str, result: RevertOutcome) {
        if self.reverts.contains_key(device) {
            return;
        }
        if let Some(rb) = &mut self.rollback {
            match result {
                RevertOutcome::Failed { .. } => rb.failed += 1,
                _ => rb.back += 1,
            }
        }
        self.reverts.insert(device.to_string(), result);
        self.rollout.mark_dirty(device);
        self.changed = true;
    }

    /// Done: completed, or aborted with every rollback settled.
    pub fn finished(&self) -> bool {
        match self.rollout.phase {
            Phase::Completed => true,
            Phase::Aborted { .. } => self.rollback.as_ref().is_none_or(Rollback::settled),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use petrel_protocol::rollout::{parse_waves, step, Breach, Input, Policy, Rollout};
    use petrel_protocol::ReleaseRef;

    fn rel(v: &str) -> ReleaseRef {
        ReleaseRef {
            name: "app".into(),
            version: v.into(),
        }
    }

    /// An aborted rollout of three started devices, all sent back.
    fn aborted() -> RolloutRecord {
        let policy = Policy {
            waves: parse_waves("100%").unwrap(),
            canary: vec![],
            per_minute: None,
            rate_growth_percent: 0,
            success_percent: 100,
            soak_ms: 0,
            max_failed_percent: 100,
            min_failed: 100,
            on_breach: Breach::Abort,
            device_timeout_ms: 60_000,
            retries: 0,
        };
        let fleet = ["a", "b", "c"].map(|d| (d.to_string(), Some(rel("1"))));
        let r = Rollout::new("r", rel("2"), Default::default(), policy, fleet.into(), 0);
        let mut rec = RolloutRecord::new(r);
        step(&mut rec.rollout, Input::Tick, 0);
        let reason = "operator".into();
        step(&mut rec.rollout, Input::Abort { reason }, 1_000);
        for (g, d) in ["a", "b", "c"].iter().enumerate() {
            rec.sent_back(d, 10 + g as u64, false, 1_000);
        }
        rec
    }

    fn view(id: &str, generation: u64, phase: petrel_protocol::Phase, on: &str) -> DeviceView {
        DeviceView {
            id: id.into(),
            desired: Some(rel("1")),
            desired_generation: generation,
            accepted_generation: generation,
            applied_generation: generation,
            current: Some(rel(on)),
            phase,
            last_error: Some("health check failed".into()),
            ..Default::default()
        }
    }

    #[test]
    fn an_aborted_rollout_stays_until_every_member_sent_back_has_an_outcome() {
        use petrel_protocol::Phase::{Failed, Running};
        let mut rec = aborted();
        assert_eq!(rec.rollback.as_ref().map(|r| r.sent), Some(3));
        assert!(!rec.finished(), "the rollback is under way");
        rec.revert_reported(&view("a", 10, Running, "1"));
        rec.revert_reported(&view("b", 11, Failed, "2"));
        // an older generation's report says nothing of the rollback
        rec.revert_reported(&view("c", 5, Running, "1"));
        let rb = rec.rollback.clone().unwrap();
        assert_eq!((rb.back, rb.failed), (1, 1));
        assert!(!rec.finished());
        rec.revert_deadline(30_000);
        assert!(!rec.finished(), "c still has time");
        rec.revert_deadline(61_000);
        assert!(rec.finished());
        assert_eq!(rec.rollback.map(|r| r.failed), Some(2));
        assert!(matches!(rec.reverts["c"], RevertOutcome::Failed { .. }));
        assert_eq!(rec.reverts["a"], RevertOutcome::Back);
    }

    #[test]
    fn a_pause_supersede_is_not_a_rollback() {
        let mut rec = aborted();
        rec.rollout.phase = petrel_protocol::rollout::Phase::Paused {
            wave: 0,
            reason: "x".into(),
        };
        rec.sent_back("a", 20, false, 2_000);
        assert_eq!(rec.rollback.map(|r| r.sent), Some(3));
        assert_eq!(rec.reverted["a"], 10);
    }
}
