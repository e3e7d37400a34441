//! The update lifecycle as a sans-IO state machine: `handle(input)` changes
//! the state and returns the actions to perform; the driver persists the
//! new state first (the first action is always `Persist` when it changed),
//! then performs the rest and feeds results back as inputs.
//!
//! Crash safety rule: every action is idempotent and the phase is persisted
//! before it runs, so after a crash [`Machine::resume`] re-issues the action
//! of the persisted phase and the update continues where it was.

use petrel_protocol::lifecycle::Step;
use petrel_protocol::{Desired, EventKind, Phase};

#[derive(Debug, Default)]
pub struct Machine {
    pub state: AgentState,
}

impl Machine {
    pub fn new(state: AgentState) -> Machine {
        Machine { state }
    }

    /// Actions to re-issue after a restart, from the persisted phase.
    pub fn resume(&self) -> Vec<Action> {
        let Some(t) = self.state.target.clone() else {
            return vec![Action::Report];
        };
        let act = match self.state.phase {
            Phase::Downloading => Action::Download(t),
            Phase::Installing => Action::Install(t),
            Phase::Swapping => Action::Swap {
                from: self.state.current.clone(),
                to: t,
            },
            Phase::RollingBack => Action::RollBack {
                failed: t,
                restore: self.state.current.clone(),
            },
            _ => return vec![Action::Report],
        };
        vec![Action::Report, act]
    }

    fn step(&mut self, step: Step) -> Result<(), String> {
        self.state.phase = self.state.phase.next(step).map_err(|e| e.to_string())?;
        Ok(())
    }

    fn is_target(&self, generation: u64) -> bool {
        self.state.target.as_ref().map(|t| t.generation) == Some(generation)
    }

    /// The release runs and is `generation`'s (a watch of an older one is stale).
    fn is_current(&self, generation: u64) -> bool {
        self.state.phase == Phase::Running
            && self.state.current.as_ref().map(|c| c.generation) == Some(generation)
    }

    pub fn handle(&mut self, input: Input) -> Vec<Action> {
        match input {
            Input::Desired(d) => self.on_desired(d),
            Input::Rejected(reason) => vec![Action::Emit(EventKind::DesiredRejected, reason)],
            Input::Downloaded { generation, bytes } if self.is_target(generation) => {
                self.state.update_bytes = Some(bytes);
                self.advance(Step::Downloaded, Action::Install)
            }
            Input::Installed {
                generation,
                now_ms,
                lock,
            } if self.is_target(generation) => self.on_installed(now_ms, lock),
            Input::Tick { now_ms, lock } => self.on_tick(now_ms, lock),
            Input::Started {
                generation,
                instances,
            } if self.is_target(generation) => self.on_started(instances),
            Input::Failed { generation, reason } if self.is_target(generation) => {
                self.on_failed(reason)
            }
            Input::Unhealthy { generation, reason } if self.is_target(generation) => {
                self.on_unhealthy(reason)
            }
            Input::Restored { generation } if self.is_target(generation) => self.on_restored(),
            Input::DiskShort {
                generation,
                need,
                reason,
            } if self.is_target(generation) => self.on_disk_short(need, reason),
            Input::SpaceFreed { generation } => self.on_space_freed(generation),
            Input::CrashLoop {
                generation,
                service,
                restarts,
                within_s,
            } if self.is_current(generation) => {
                let why = format!(
                    "service {service} restarted {restarts} times within {within_s} s of the swap (crash loop)"
                );
                self.on_crash_loop(why)
            }
            // results of a superseded target are stale: ignore them
            Input::Downloaded { .. }
            | Input::Installed { .. }
            | Input::Started { .. }
            | Input::Failed { .. }
            | Input::Unhealthy { .. }
            | Input::Restored { .. }
            | Input::DiskShort { .. }
            | Input::CrashLoop { .. } => vec![],
        }
    }

    /// Installed: swap now, or hold in `ready` until the window opens.
    fn on_installed(&mut self, now_ms: u64, lock: Option<String>) -> Vec<Action> {
        let window = self.state.target.as_ref().and_then(|t| t.window.clone());
        if let Some(w) = window.filter(|w| !w.contains(now_ms)) {
            if let Err(e) = self.step(Step::Hold) {
                return vec![Action::Emit(EventKind::UpdateFailed, e)];
            }
            let why = format!("installed; the swap waits for the maintenance window {w}");
            return vec![
                Action::Persist,
                Action::Report,
                Action::Emit(EventKind::Installed, why),
            ];
        }
        self.swap_unless_locked(Step::Installed, now_ms, lock)
    }

    /// A held swap starts once its window is open (and, once started, is
    /// not interrupted when the window closes); a deferred one once its
    /// update lock is released or overridden.
    fn on_tick(&mut self, now_ms: u64, lock: Option<String>) -> Vec<Action> {
        let open = self.state.target.as_ref().is_some_and(|t| match &t.window {
            Some(w) => w.contains(now_ms),
            None => true,
        });
        match self.state.phase {
            Phase::Ready if open => self.swap_unless_locked(Step::WindowOpened, now_ms, lock),
            Phase::Deferred => self.swap_unless_locked(Step::Unlocked, now_ms, lock),
            _ => vec![],
        }
    }

    fn advance(&mut self, step: Step, next: impl FnOnce(Target) -> Action) -> Vec<Action> {
        if let Err(e) = self.step(step) {
            return vec![Action::Emit(EventKind::UpdateFailed, e)];
        }
        let Some(t) = self.state.target.clone() else {
            return vec![];
        };
        vec![Action::Persist, Action::Report, next(t)]
    }

    fn on_desired(&mut self, d: Desired) -> Vec<Action> {
        let runs = self.state.current.as_ref().map(|c| c.generation);
        if self.state.recovered && runs == Some(d.generation) {
            return self.adopt_recovered(d);
        }
        let seen = self.state.desired_generation;
        if d.generation == seen {
            return vec![]; // the retained copy, seen again after a reconnect
        }
        if d.generation < seen {
            // anti-replay: never go back to an older desired state
            let why = format!("stale desired generation {} (have {seen})", d.generation);
            return vec![Action::Emit(EventKind::DesiredRejected, why)];
        }
        self.state.desired_generation = d.generation;
        // a rebuilt current's release is unknown: never "the same"
        let same = !self.state.recovered
            && self.state.current.as_ref().map(|c| &c.release) == Some(&d.release);
        if same {
            // already running it: adopt the new generation, and stop any
            // update under way (stop means stop)
            if let Some(c) = self.state.current.as_mut() {
                c.generation = d.generation;
            }
            let dropped = self.state.target.take().is_some();
            self.state.phase = Phase::Running;
            let mut actions = vec![Action::Persist, Action::Report];
            if dropped {
                actions.push(Action::Cancel);
            }
            return actions;
        }
        let target = Target {
            generation: d.generation,
            release: d.release,
            window: d.window,
            lock_override_after_s: d.lock_override_after_s,
            budget: d.budget,
            deferred: None,
        };
        let name = target
            .release
            .as_ref()
            .map_or("nothing".into(), |r| r.reference().to_string());
        self.state.target = Some(target.clone());
        self.state.last_error = None;
        self.state.update_bytes = None;
        self.state.parked = None;
        let _ = self.step(Step::Accept);
        vec![
            Action::Persist,
            Action::Emit(EventKind::DesiredAccepted, format!("updating to {name}")),
            Action::Report,
            Action::Download(target),
        ]
    }

    /// Store-loss rule: the signed desired state of the generation the
    /// rebuilt `current` runs names its release; the running instances are
    /// kept (same processes), leftovers of other generations stopped.
    fn adopt_recovered(&mut self, d: Desired) -> Vec<Action> {
        let name = d
            .release
            .as_ref()
            .map_or("nothing".into(), |r| r.reference().to_string());
        self.state.desired_generation = d.generation;
        self.state.recovered = false;
        if let Some(c) = self.state.current.as_mut() {
            c.release = d.release;
        }
        let why = format!(
            "store rebuilt: generation {} ({name}) runs; keeping it",
            d.generation
        );
        vec![
            Action::Persist,
            Action::Emit(EventKind::DesiredAccepted, why),
            Action::Report,
            Action::Reconcile,
        ]
    }

    fn on_started(&mut self, instances: Vec<String>) -> Vec<Action> {
        if let Err(e) = self.step(Step::Started) {
            return vec![Action::Emit(EventKind::UpdateFailed, e)];
        }
        let Some(t) = self.state.target.take() else {
            return vec![];
        };
        self.state.recovered = false;
        let name = t
            .release
            .as_ref()
            .map_or("nothing".into(), |r| r.reference().to_string());
        let old = self.state.current.replace(Applied {
            generation: t.generation,
            release: t.release,
            instances,
        });
        let new_release = self.state.current.as_ref().map(|c| &c.release);
        if old.as_ref().map(|o| &o.release) != new_release {
            self.state.previous = old;
        }
        let mut actions = vec![
            Action::Persist,
            Action::Emit(EventKind::Swapped, format!("now running {name}")),
            Action::Report,
            Action::Collect(self.state.held()),
        ];
        // only a release with one to go back to is watched
        if let (Some(c), Some(_)) = (&self.state.current, &self.state.previous) {
            actions.push(Action::Watch(c.clone()));
        }
        actions
    }

    /// Post-update watch rule: a release that crash-loops soon after its
    /// swap is rolled back like an unhealthy swap. The failed release
    /// becomes the target and the previous one current again, so the
    /// journal reads as an unhealthy swap's `RollingBack` and a crash
    /// resumes it the same way.
    fn on_crash_loop(&mut self, reason: String) -> Vec<Action> {
        if self.state.previous.is_none() {
            return vec![]; // nothing to go back to (never watched)
        }
        if let Err(e) = self.step(Step::CrashLooped) {
            return vec![Action::Emit(EventKind::UpdateFailed, e)];
        }
        let failed = self.state.current.take().map(|c| Target {
            generation: c.generation,
            release: c.release,
            window: None,
            lock_override_after_s: None,
            budget: None,
            deferred: None,
        });
        self.state.current = self.state.previous.take();
        self.state.target = failed.clone();
        self.state.last_error = Some(reason.clone());
        let Some(failed) = failed else {
            return vec![];
        };
        self.roll_back(failed, reason)
    }

    /// Rollback rule: a release that fails its health check after the swap
    /// is undone automatically; the journal says `RollingBack` before any
    /// instance is touched, so a crash resumes the rollback.
    fn on_unhealthy(&mut self, reason: String) -> Vec<Action> {
        if let Err(e) = self.step(Step::Unhealthy) {
            return vec![Action::Emit(EventKind::UpdateFailed, e)];
        }
        let Some(failed) = self.state.target.clone() else {
            return vec![];
        };
        self.state.last_error = Some(reason.clone());
        self.roll_back(failed, reason)
    }

    /// The actions of a rollback of `failed` to the current release,
    /// whatever caught it (a failed health check, a crash loop).
    fn roll_back(&self, failed: Target, reason: String) -> Vec<Action> {
        vec![
            Action::Persist,
            Action::Emit(EventKind::UpdateFailed, format!("{reason}; rolling back")),
            Action::Report,
            Action::RollBack {
                failed,
                restore: self.state.current.clone(),
            },
        ]
    }

    fn on_restored(&mut self) -> Vec<Action> {
        if let Err(e) = self.step(Step::Restored) {
            return vec![Action::Emit(EventKind::UpdateFailed, e)];
        }
        let failed = self
            .state
            .target_ref()
            .map_or("nothing".into(), |r| r.to_string());
        self.state.target = None;
        let back_to = self
            .state
            .current_ref()
            .map_or("nothing".into(), |r| r.to_string());
        let why = self.state.last_error.clone().unwrap_or_default();
        vec![
            Action::Persist,
            Action::Emit(
                EventKind::RolledBack,
                format!("rolled back from {failed} to {back_to}: {why}"),
            ),
            Action::Report,
            // the failed release's files go now
            Action::Collect(self.state.held()),
        ]
    }

    fn on_failed(&mut self, reason: String) -> Vec<Action> {
        if self.step(Step::Fail).is_err() {
            return vec![];
        }
        self.state.target = None;
        self.state.last_error = Some(reason.clone());
        vec![
            Action::Persist,
            Action::Emit(EventKind::UpdateFailed, reason),
            Action::Report,
            // what the failed update fetched or unpacked goes now
            Action::Collect(self.state.held()),
        ]
    }
}

mod disk_rules;
mod types;
pub use types::*;
mod lock_rules;
#[cfg(test)]
mod lock_tests;

#[cfg(test)]
pub(crate) mod tests;
