//! The disk rule of the machine: an update that cannot fit is parked, the
//! running release untouched, and retried once the disk has room.

use super::{Action, Machine, Parked};
use petrel_protocol::lifecycle::Step;
use petrel_protocol::{EventKind, Phase};

impl Machine {
    /// Disk rule: an update that cannot fit stops before it touches the
    /// running release (`failed`, `insufficient-disk`), and is kept to
    /// retry once the disk has room.
    pub(super) fn on_disk_short(&mut self, need: u64, reason: String) -> Vec<Action> {
        if self.step(Step::Fail).is_err() {
            return vec![];
        }
        self.state.parked = self
            .state
            .target
            .take()
            .map(|target| Parked { target, need });
        self.state.last_error = Some(reason.clone());
        vec![
            Action::Persist,
            Action::Emit(EventKind::InsufficientDisk, reason),
            Action::Report,
        ]
    }

    pub(super) fn on_space_freed(&mut self, generation: u64) -> Vec<Action> {
        let parked = self.state.parked.as_ref().map(|p| p.target.generation);
        if self.state.phase != Phase::Failed || parked != Some(generation) {
            return vec![];
        }
        let Some(p) = self.state.parked.take() else {
            return vec![];
        };
        self.state.target = Some(p.target.clone());
        self.state.last_error = None;
        let _ = self.step(Step::Accept);
        vec![
            Action::Persist,
            Action::Emit(
                EventKind::DesiredAccepted,
                format!(
                    "disk has room again ({} bytes needed); retrying the update",
                    p.need
                ),
            ),
            Action::Report,
            Action::Download(p.target),
        ]
    }
}
