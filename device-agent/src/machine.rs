//! The update lifecycle as a sans-IO state machine: `handle(input)` changes
//! the state and returns the actions to perform; the driver persists the
//! new state first (the first action is always `Persist` when it changed),
//! then performs the rest and feeds results back as inputs.
//!
//! Crash safety rule: every action is idempotent and the phase is persisted
//! before it runs, so after a crash [`Machine::resume`] re-issues the action
//! of the persisted phase and the update continues where it was.

use petrel_protocol::lifecycle::Step;
use petrel_protocol::policy::{lock_decision, LockDecision};
use petrel_protocol::{Desired, EventKind, Phase, ReleaseManifest, ReleaseRef};
use serde::{Deserialize, Serialize};

/// A release installed and started on the device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    pub generation: u64,
    pub release: Option<ReleaseManifest>,
    /// Runtime instance names of its services.
    pub instances: Vec<String>,
}

/// The update being applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    pub generation: u64,
    pub release: Option<ReleaseManifest>,
    /// When the swap may happen (`None`: as soon as installed).
    #[serde(default)]
    pub window: Option<petrel_protocol::window::Window>,
    /// How long an update lock may defer the swap (see `Desired`).
    #[serde(default)]
    pub lock_override_after_s: Option<u64>,
    #[serde(default)]
    pub budget: Option<petrel_protocol::policy::DataBudget>,
    /// Since when, and by whom, the swap is deferred (phase `deferred`).
    #[serde(default)]
    pub deferred: Option<Deferral>,
}

/// An update lock holding the swap back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deferral {
    pub since_ms: u64,
    pub holder: String,
}

/// Everything the agent persists about its lifecycle.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentState {
    /// Highest desired generation accepted (anti-replay).
    pub desired_generation: u64,
    pub current: Option<Applied>,
    /// The release before `current`, kept installed for rollback.
    #[serde(default)]
    pub previous: Option<Applied>,
    pub target: Option<Target>,
    pub phase: Phase,
    pub last_error: Option<String>,
    /// `current` was rebuilt from the runtime after a store loss: its
    /// manifest is unknown until the controller's desired state of its
    /// generation names it (see [`crate::recover`]).
    #[serde(default)]
    pub recovered: bool,
    /// Bytes the last update downloaded (reported).
    #[serde(default)]
    pub update_bytes: Option<u64>,
}

impl AgentState {
    pub fn current_ref(&self) -> Option<ReleaseRef> {
        self.current
            .as_ref()?
            .release
            .as_ref()
            .map(|r| r.reference())
    }
    pub fn target_ref(&self) -> Option<ReleaseRef> {
        self.target
            .as_ref()?
            .release
            .as_ref()
            .map(|r| r.reference())
    }

    /// Releases whose files the device keeps: current and previous (the
    /// delta bases, and what a rollback needs).
    pub fn held(&self) -> Vec<ReleaseManifest> {
        [&self.current, &self.previous]
            .into_iter()
            .flatten()
            .filter_map(|a| a.release.clone())
            .collect()
    }
}

/// What the machine is told.
#[derive(Debug, Clone)]
pub enum Input {
    Desired(Desired),
    /// A desired-state message that failed to decode or validate.
    Rejected(String),
    Downloaded {
        generation: u64,
        /// Bytes the download took over the network.
        bytes: u64,
    },
    /// `lock`: who holds an update lock, if anyone does.
    Installed {
        generation: u64,
        now_ms: u64,
        lock: Option<String>,
    },
    /// Time passed (a held swap may start when its window opens, a
    /// deferred one when its lock is released).
    Tick {
        now_ms: u64,
        lock: Option<String>,
    },
    Started {
        generation: u64,
        instances: Vec<String>,
    },
    Failed {
        generation: u64,
        reason: String,
    },
    /// The swapped-in release did not start or is unhealthy.
    Unhealthy {
        generation: u64,
        reason: String,
    },
    /// The running release crash-loops within its post-update watch.
    CrashLoop {
        generation: u64,
        service: String,
        restarts: u32,
        within_s: u64,
    },
    /// After an unhealthy swap, the previous release runs again.
    Restored {
        generation: u64,
    },
}

/// What the driver must do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Write the state durably (always before the side effects below).
    Persist,
    /// Publish the full reported state.
    Report,
    Emit(EventKind, String),
    /// Fetch every layer of the release the device lacks.
    Download(Target),
    /// Unpack layers and assemble root filesystems.
    Install(Target),
    /// Stop `from`'s instances, start the target's; roll back on failure.
    Swap {
        from: Option<Applied>,
        to: Target,
    },
    /// Stop the failed target's instances, start `restore`'s again.
    RollBack {
        failed: Target,
        restore: Option<Applied>,
    },
    /// Remove layers, copies and root filesystems no held release needs.
    Collect(Vec<ReleaseManifest>),
    /// Stop the download or install under way: its target was dropped.
    Cancel,
    /// Make the runtime match `current` (stop what it does not own, start
    /// what is missing), as at start-up.
    Reconcile,
    /// Start the post-update watch of the release just swapped in.
    Watch(Applied),
}

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

    /// Update-lock rule: an application holding its lock defers the swap
    /// (phase `deferred`, with the holder) until it lets go, or until the
    /// operator's override time has passed.
    fn swap_unless_locked(&mut self, step: Step, now_ms: u64, lock: Option<String>) -> Vec<Action> {
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
    fn defer(&mut self, now_ms: u64, holder: String) -> Vec<Action> {
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
        ]
    }
}

#[cfg(test)]
mod lock_tests;
#[cfg(test)]
pub(crate) mod tests;
