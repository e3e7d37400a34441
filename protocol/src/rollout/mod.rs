//! Fleet rollouts, as pure state and a sans-IO planner: a rollout sends a
//! release to the devices a selector picks, wave by wave, at a bounded
//! rate, checking success and failure thresholds, and rolls back the
//! devices that moved when it aborts. The controller feeds the planner
//! what it observes ([`Input`]) with the time (`now_ms`), persists the
//! rollout, then performs the returned [`Action`]s.
//!
//! A step costs time in proportion to what changed: per-wave tallies are
//! kept as devices change state, the start queue and the deadlines are
//! ordered sets, so no step scans the fleet.

mod members;
mod plan;
pub mod selector;

pub use plan::step;
pub use selector::{validate_label, Selector, SelectorError};

use crate::ReleaseRef;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// The size of a wave, cumulative: `10%` means the first 10% of the
/// selected devices are in this wave or an earlier one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum WaveSize {
    Percent(u8),
    Count(u32),
}

/// What a threshold breach does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Breach {
    Pause,
    Abort,
}

/// How a rollout proceeds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    /// Cumulative wave sizes; the last is normally `100%`.
    pub waves: Vec<WaveSize>,
    /// Named devices forming a wave of their own before the others.
    #[serde(default)]
    pub canary: Vec<String>,
    /// Devices started per minute at most (`None`: no limit).
    #[serde(default)]
    pub per_minute: Option<u32>,
    /// The rate grows by this share each minute (100: it doubles).
    #[serde(default)]
    pub rate_growth_percent: u16,
    /// Share of a wave's devices that must succeed before the next wave.
    pub success_percent: u8,
    /// Time a finished wave must stay healthy before the next starts.
    pub soak_ms: u64,
    /// Failures (failed or stuck, over the devices started) at or above
    /// this share, and at least `min_failed` of them, breach the rollout.
    pub max_failed_percent: u8,
    pub min_failed: u32,
    pub on_breach: Breach,
    /// A device that has not finished this long after its start is stuck.
    pub device_timeout_ms: u64,
    /// Times a failed device is sent the release again before it counts.
    pub retries: u32,
}

/// Where a rollout is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum Phase {
    /// Starting and following the devices of waves up to `wave`.
    Active {
        wave: usize,
    },
    /// Wave `wave` finished well; the next starts after the soak.
    Soaking {
        wave: usize,
        since_ms: u64,
    },
    Paused {
        wave: usize,
        reason: String,
    },
    /// Stopped; the devices that moved were sent back.
    Aborted {
        reason: String,
    },
    Completed,
}

/// One device's part in a rollout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum DeviceState {
    Queued,
    Started {
        since_ms: u64,
        attempt: u32,
    },
    Succeeded,
    Failed {
        reason: String,
    },
    /// No outcome within the device timeout; `phase` is the last seen.
    Stuck {
        phase: String,
    },
    /// Sent back to its previous release by an abort.
    RolledBack,
    /// Left the selector before it was started: not touched again.
    Left,
}

/// A device in a rollout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub wave: usize,
    pub state: DeviceState,
    /// What it ran before (where an abort sends it back).
    pub previous: Option<ReleaseRef>,
    /// The phase it last reported while started.
    #[serde(default)]
    pub last_phase: String,
}

/// Counts of a wave's members by state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    pub queued: u32,
    pub started: u32,
    pub succeeded: u32,
    pub failed: u32,
    pub other: u32,
}

impl Tally {
    /// Members that are or were in play (not left, not queued).
    pub fn moved(&self) -> u32 {
        self.started + self.succeeded + self.failed
    }

    /// Every member of the wave.
    pub fn total(&self) -> u32 {
        self.queued + self.moved() + self.other
    }
}

/// A rollout and everything the planner needs. The start queue and the
/// deadlines are indexes over the members, rebuilt by
/// [`Rollout::reindex`] after loading; members changed since the last
/// [`Rollout::take_dirty`] are tracked, so a store writes only those.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rollout {
    pub id: String,
    pub release: ReleaseRef,
    pub selector: Selector,
    pub policy: Policy,
    pub phase: Phase,
    pub created_ms: u64,
    /// Empty in a rollout's summary (and in its stored head record).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub members: BTreeMap<String, Member>,
    /// Per wave (index = wave).
    pub tallies: Vec<Tally>,
    /// Queued members by (wave, id): the start order.
    #[serde(skip)]
    queue: BTreeSet<(usize, String)>,
    /// Started members by (deadline, id).
    #[serde(skip)]
    deadlines: BTreeSet<(u64, String)>,
    /// Start times within the last minute (rate limit).
    #[serde(default)]
    recent_starts: VecDeque<u64>,
    /// Wave boundaries fixed at creation: cumulative member counts.
    pub bounds: Vec<u32>,
    /// Members whose state changed since the last `take_dirty`.
    #[serde(skip)]
    dirty: BTreeSet<String>,
}

/// What the controller observed or was asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// Time passed.
    Tick,
    /// A device matches the selector (at creation, or it joined later),
    /// running `previous`.
    Joined {
        device: String,
        previous: Option<ReleaseRef>,
    },
    /// A device no longer matches the selector.
    Left {
        device: String,
    },
    /// A started device reported: still `phase`, done, or failed.
    Progress {
        device: String,
        phase: String,
    },
    Succeeded {
        device: String,
    },
    Failed {
        device: String,
        reason: String,
    },
    Pause,
    Resume,
    Abort {
        reason: String,
    },
}

/// What the controller must do, after persisting the rollout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Set the device's desired release to the rollout's.
    Deploy { device: String },
    /// Send the device back to what it ran (`None`: clear its desired
    /// state; it keeps what it runs).
    Revert {
        device: String,
        to: Option<ReleaseRef>,
    },
    /// Tell the operator (rollout events).
    Note(String),
}

/// Why a rollout could not be created.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("a rollout needs at least one wave")]
    NoWaves,
    #[error("wave {0}: {1}")]
    BadWave(usize, String),
    #[error("{0}")]
    Bad(String),
}

impl Policy {
    pub fn validate(&self) -> Result<(), PolicyError> {
        if self.waves.is_empty() {
            return Err(PolicyError::NoWaves);
        }
        for (i, w) in self.waves.iter().enumerate() {
            match w {
                WaveSize::Percent(p) if *p == 0 || *p > 100 => {
                    return Err(PolicyError::BadWave(i + 1, format!("{p}% is not 1-100%")))
                }
                WaveSize::Count(0) => {
                    return Err(PolicyError::BadWave(i + 1, "a wave of 0 devices".into()))
                }
                _ => {}
            }
        }
        if self.success_percent > 100 || self.max_failed_percent > 100 {
            return Err(PolicyError::Bad("percentages are 0-100".into()));
        }
        if self.per_minute == Some(0) {
            return Err(PolicyError::Bad(
                "a rate of 0 devices a minute starts nothing".into(),
            ));
        }
        Ok(())
    }
}

/// Parses `1%,10%,50%,100%` or `5,50,100%`.
pub fn parse_waves(text: &str) -> Result<Vec<WaveSize>, PolicyError> {
    text.split(',')
        .map(str::trim)
        .enumerate()
        .map(|(i, w)| {
            let bad = || PolicyError::BadWave(i + 1, format!("{w:?} is not N% or a count"));
            match w.strip_suffix('%') {
                Some(p) => p.parse().map(WaveSize::Percent).map_err(|_| bad()),
                None => w.parse().map(WaveSize::Count).map_err(|_| bad()),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests;
