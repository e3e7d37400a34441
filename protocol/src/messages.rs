//! The messages of the MQTT wire contract (see DESIGN.md, "Wire contract").

use crate::{Digest, Phase, ReleaseManifest, ReleaseRef, SCHEMA};
use serde::{Deserialize, Serialize};

/// Signed envelope around a desired state. `payload` is the JSON of a
/// [`Desired`], kept as a string so a signature covers exact bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    pub schema: u32,
    pub payload: String,
    /// ed25519 signature of `payload` (hex), see [`crate::signing`].
    #[serde(default)]
    pub signature: Option<String>,
    /// Id of the signing key.
    #[serde(default)]
    pub key_id: Option<String>,
    /// The chain from older (or offline root) keys to the signing key.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub endorsements: Vec<crate::signing::Endorsement>,
}

impl Envelope {
    /// An unsigned envelope: accepted only by agents told to accept
    /// unsigned desired states (insecure).
    pub fn wrap(desired: &Desired) -> Envelope {
        Envelope {
            schema: SCHEMA,
            payload: serde_json::to_string(desired).unwrap_or_default(),
            signature: None,
            key_id: None,
            endorsements: Vec::new(),
        }
    }
}

/// What a device should run. `generation` only grows; a device ignores a
/// desired state older than the one it has accepted (anti-replay).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Desired {
    pub schema: u32,
    pub device_id: String,
    pub generation: u64,
    /// `None` means: run nothing.
    pub release: Option<ReleaseManifest>,
    pub issued_at_ms: u64,
    /// After this, the message is refused (a signed desired state cannot
    /// be replayed forever); the controller refreshes it while it stands.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at_ms: Option<u64>,
    /// When the device may swap (it downloads and installs any time, then
    /// holds in `ready`); `None`: at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<crate::window::Window>,
    /// How long an application's update lock may defer the swap before
    /// the device swaps anyway (0: locks are ignored); `None`: it waits
    /// for the lock's release however long that takes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock_override_after_s: Option<u64>,
    /// What the update may download (`None`: no limit, full blobs allowed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<crate::policy::DataBudget>,
}

/// Bytes of the update in progress.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    pub bytes_done: u64,
    pub bytes_total: u64,
}

/// Runtime state of one service on a device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceState {
    pub name: String,
    /// `running`, `restarting`, `exited` or `stopped`.
    pub state: String,
    #[serde(default)]
    pub pid: Option<u32>,
    #[serde(default)]
    pub restarts: u32,
    #[serde(default)]
    pub exit_code: Option<i32>,
}

/// A device's full current state (retained on its `reported` topic).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reported {
    pub schema: u32,
    pub device_id: String,
    pub agent_version: String,
    /// Highest desired generation the device has accepted.
    pub desired_generation: u64,
    /// Generation of the release that runs now.
    pub applied_generation: u64,
    pub current: Option<ReleaseRef>,
    /// The release being installed, while an update is under way.
    #[serde(default)]
    pub target: Option<ReleaseRef>,
    pub phase: Phase,
    #[serde(default)]
    pub progress: Progress,
    #[serde(default)]
    pub services: Vec<ServiceState>,
    #[serde(default)]
    pub last_error: Option<String>,
    /// In `deferred`: who holds the update lock (service, lock file, and
    /// what the file says).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_by: Option<String>,
    /// Bytes the last (or current) update downloaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_bytes: Option<u64>,
    pub updated_at_ms: u64,
    /// What the device runs images for (`linux/arm64` …); agents before
    /// multi-platform support send none.
    #[serde(default)]
    pub platform: Option<crate::Platform>,
    /// The device's host name (registry fact; selectors see `hostname`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Free bytes where the agent keeps its data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub free_disk_bytes: Option<u64>,
    /// How the host fares (uptime, memory, load, disk); agents before
    /// health reporting send none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<DeviceHealth>,
}

/// The host's vital signs, sent with every report. Integers only (load
/// averages in hundredths), so reports stay comparable with `Eq`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DeviceHealth {
    /// Seconds since the host booted (`/proc/uptime`).
    pub uptime_s: u64,
    /// Seconds since the agent process started.
    pub agent_uptime_s: u64,
    /// `MemTotal` and `MemAvailable` of `/proc/meminfo`, in bytes.
    pub mem_total_bytes: u64,
    pub mem_available_bytes: u64,
    /// Load averages over 1, 5 and 15 minutes, times 100 (`/proc/loadavg`:
    /// 0.25 is 25).
    pub load1_x100: u32,
    pub load5_x100: u32,
    pub load15_x100: u32,
    /// Size of the filesystem where the agent keeps its data (its free
    /// bytes are [`Reported::free_disk_bytes`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disk_total_bytes: Option<u64>,
}

/// What happened, for the `events` topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EventKind {
    DesiredAccepted,
    DesiredRejected,
    DownloadStarted,
    LayerVerified,
    LayerRejected,
    Installed,
    Swapped,
    UpdateFailed,
    RolledBack,
    ServiceExited,
    AgentStarted,
    /// The swap waits: an application holds its update lock.
    Deferred,
    /// The update needs more disk than the device can free.
    InsufficientDisk,
    /// The agent's store was lost (missing, or unreadable and moved
    /// aside) and rebuilt from what the runtime runs.
    StoreRebuilt,
}

/// One progress or lifecycle event. `seq` is per device and increasing,
/// so the controller can drop duplicates of re-sent events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub schema: u32,
    pub device_id: String,
    pub seq: u64,
    pub at_ms: u64,
    pub kind: EventKind,
    #[serde(default)]
    pub generation: u64,
    #[serde(default)]
    pub digest: Option<Digest>,
    pub message: String,
}

/// Online / offline presence (retained; `offline` is the last will).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    pub schema: u32,
    pub device_id: String,
    pub online: bool,
}
