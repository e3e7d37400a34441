//! What the machine keeps (its persisted state), is told (inputs) and
//! asks for (actions).

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
    /// An update stopped for want of disk, retried once `need` bytes are
    /// free (phase `failed` meanwhile).
    #[serde(default)]
    pub parked: Option<Parked>,
}

/// An update waiting for disk space.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Parked {
    pub target: Target,
    pub need: u64,
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
    /// The update cannot fit on disk (preflight, or ENOSPC mid-way).
    DiskShort {
        generation: u64,
        need: u64,
        reason: String,
    },
    /// The disk has room again for the parked update of `generation`.
    SpaceFreed {
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
