//! The update lifecycle of a device: phases and every legal move between
//! them, in one match. The agent persists the new phase before it acts.

use serde::{Deserialize, Serialize};

/// Where a device is in applying its desired release.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// Nothing to do: no release, or none asked for yet.
    #[default]
    Idle,
    /// Fetching the layers the device lacks.
    Downloading,
    /// Verifying and unpacking layers, assembling root filesystems.
    Installing,
    /// Installed, held until the device's maintenance window opens.
    Ready,
    /// Installed, held while an application holds its update lock.
    Deferred,
    /// Stopping the old services and starting the new ones.
    Swapping,
    /// The desired release runs.
    Running,
    /// The update failed; the previous release (if any) still runs.
    Failed,
    /// The new release proved unhealthy: going back to the previous one.
    RollingBack,
    /// The new release was unhealthy and the previous one runs again.
    RolledBack,
}

impl Phase {
    /// The phase as the wire writes it (`rolled-back`), for logs and
    /// tables.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Idle => "idle",
            Phase::Downloading => "downloading",
            Phase::Installing => "installing",
            Phase::Ready => "ready",
            Phase::Deferred => "deferred",
            Phase::Swapping => "swapping",
            Phase::Running => "running",
            Phase::Failed => "failed",
            Phase::RollingBack => "rolling-back",
            Phase::RolledBack => "rolled-back",
        }
    }
}

/// The inputs that move the lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// A new desired release was accepted.
    Accept,
    /// Every layer is present and verified.
    Downloaded,
    /// Every layer is unpacked and every rootfs assembled.
    Installed,
    /// Installed outside the maintenance window: wait for it.
    Hold,
    /// The maintenance window opened.
    WindowOpened,
    /// An application holds its update lock: wait for its release.
    Defer,
    /// The update lock was released (or overridden).
    Unlocked,
    /// The new services run.
    Started,
    /// Something failed; the update stops here.
    Fail,
    /// The new release is unhealthy after the swap: undo it.
    Unhealthy,
    /// The running release crash-loops within its post-update watch: undo
    /// it as an unhealthy swap.
    CrashLooped,
    /// The previous release runs again.
    Restored,
}

/// A step that is not allowed from the current phase.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("step {step:?} is not allowed in phase {phase:?}")]
pub struct TransitionError {
    pub phase: Phase,
    pub step: Step,
}

impl Phase {
    /// The phase after `step`, or an error naming the illegal move.
    pub fn next(self, step: Step) -> Result<Phase, TransitionError> {
        use Phase::*;
        match (self, step) {
            // A new target may preempt anything: the old release keeps
            // running until the swap, so nothing is lost by restarting.
            (_, Step::Accept) => Ok(Downloading),
            (Downloading, Step::Downloaded) => Ok(Installing),
            (Installing, Step::Installed) => Ok(Swapping),
            (Installing, Step::Hold) => Ok(Ready),
            (Ready, Step::WindowOpened) => Ok(Swapping),
            (Installing | Ready, Step::Defer) => Ok(Deferred),
            (Deferred, Step::Unlocked) => Ok(Swapping),
            (Swapping, Step::Started) => Ok(Running),
            (Downloading | Installing | Ready | Deferred | Swapping, Step::Fail) => Ok(Failed),
            (Swapping, Step::Unhealthy) => Ok(RollingBack),
            (Running, Step::CrashLooped) => Ok(RollingBack),
            (RollingBack, Step::Restored) => Ok(RolledBack),
            (phase, step) => Err(TransitionError { phase, step }),
        }
    }

    /// Whether an update is under way (a restart must resume it).
    pub fn in_progress(self) -> bool {
        matches!(
            self,
            Phase::Downloading | Phase::Installing | Phase::Swapping | Phase::RollingBack
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_phase_name_is_what_the_wire_writes() {
        for p in [
            Phase::Idle,
            Phase::Downloading,
            Phase::Installing,
            Phase::Ready,
            Phase::Deferred,
            Phase::Swapping,
            Phase::Running,
            Phase::Failed,
            Phase::RollingBack,
            Phase::RolledBack,
        ] {
            assert_eq!(serde_json::to_value(p).unwrap(), p.name());
        }
    }

    #[test]
    fn a_successful_update_walks_every_phase_in_order() {
        let mut p = Phase::Idle;
        for s in [
            Step::Accept,
            Step::Downloaded,
            Step::Installed,
            Step::Started,
        ] {
            p = p.next(s).unwrap();
        }
        assert_eq!(p, Phase::Running);
    }

    #[test]
    fn an_installed_release_waits_in_ready_for_its_window() {
        let p = Phase::Installing.next(Step::Hold).unwrap();
        assert_eq!(p, Phase::Ready);
        assert_eq!(p.next(Step::WindowOpened).unwrap(), Phase::Swapping);
        assert!(Phase::Downloading.next(Step::WindowOpened).is_err());
        assert_eq!(p.next(Step::Accept).unwrap(), Phase::Downloading);
    }

    #[test]
    fn a_held_update_lock_defers_the_swap_until_it_is_released() {
        let p = Phase::Installing.next(Step::Defer).unwrap();
        assert_eq!(p, Phase::Deferred);
        assert_eq!(Phase::Ready.next(Step::Defer).unwrap(), Phase::Deferred);
        assert_eq!(p.next(Step::Unlocked).unwrap(), Phase::Swapping);
        assert_eq!(p.next(Step::Accept).unwrap(), Phase::Downloading);
        assert!(Phase::Downloading.next(Step::Defer).is_err());
        assert!(Phase::Running.next(Step::Unlocked).is_err());
    }

    #[test]
    fn skipping_a_phase_is_refused() {
        assert!(Phase::Downloading.next(Step::Started).is_err());
        assert!(Phase::Running.next(Step::Fail).is_err());
        assert!(Phase::Idle.next(Step::Downloaded).is_err());
    }

    #[test]
    fn an_unhealthy_swap_rolls_back_and_only_from_swapping() {
        let p = Phase::Swapping.next(Step::Unhealthy).unwrap();
        assert_eq!(p, Phase::RollingBack);
        assert_eq!(p.next(Step::Restored).unwrap(), Phase::RolledBack);
        assert!(Phase::Running.next(Step::Unhealthy).is_err());
        assert!(Phase::Swapping.next(Step::Restored).is_err());
    }

    #[test]
    fn a_crash_loop_rolls_back_and_only_from_running() {
        let p = Phase::Running.next(Step::CrashLooped).unwrap();
        assert_eq!(p, Phase::RollingBack);
        assert!(Phase::Swapping.next(Step::CrashLooped).is_err());
        assert!(Phase::RolledBack.next(Step::CrashLooped).is_err());
    }

    #[test]
    fn a_failure_mid_update_ends_in_failed_and_a_new_target_restarts() {
        let p = Phase::Installing.next(Step::Fail).unwrap();
        assert_eq!(p, Phase::Failed);
        assert_eq!(p.next(Step::Accept).unwrap(), Phase::Downloading);
    }
}
