//! A scenario file (TOML): the fleet (size, link profiles and their
//! shares, labels), the application's releases (image size, how much each
//! changes, on what share of devices a release fails), the rollout of the
//! last release, and the faults injected on a timeline. Everything random
//! about the fleet follows from `seed`.

use crate::link::Profile;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    #[serde(default)]
    pub seed: u64,
    pub devices: usize,
    /// The rollout must end (every device converged) within this.
    #[serde(default = "default_timeout")]
    pub timeout_s: u64,
    /// Agents' report interval.
    #[serde(default = "default_heartbeat")]
    pub heartbeat_s: u64,
    pub fleet: Vec<FleetPart>,
    #[serde(default)]
    pub profiles: Vec<Profile>,
    #[serde(default)]
    pub image: ImageSpec,
    pub releases: Vec<ReleaseSpec>,
    #[serde(default)]
    pub rollout: RolloutSpec,
    #[serde(default)]
    pub faults: Vec<Fault>,
    /// Where devices and the controller meet.
    #[serde(default)]
    pub broker: BrokerKind,
}

/// The MQTT broker of a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BrokerKind {
    /// The controller's embedded rumqttd, behind its front.
    #[default]
    Embedded,
    /// A Mosquitto process of its own (Debian's `mosquitto`), the
    /// external-broker path of larger fleets.
    Mosquitto,
}

fn default_timeout() -> u64 {
    900
}
fn default_heartbeat() -> u64 {
    30
}

/// A share of the fleet on one link profile.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FleetPart {
    pub profile: String,
    /// Percent of the fleet (the shares must add up to 100).
    pub share: u8,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// The application image every release builds.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ImageSpec {
    /// Uncompressed size.
    #[serde(default = "default_image_kb")]
    pub size_kb: u64,
    /// Share of the image's files each release rewrites.
    #[serde(default = "default_change")]
    pub change_percent: u8,
}

fn default_image_kb() -> u64 {
    256
}
fn default_change() -> u8 {
    10
}

impl Default for ImageSpec {
    fn default() -> ImageSpec {
        ImageSpec {
            size_kb: default_image_kb(),
            change_percent: default_change(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ReleaseSpec {
    pub version: String,
    /// Percent of devices on which this release fails its health check.
    #[serde(default)]
    pub fail_percent: u8,
}

/// How the last release is rolled out (the first is deployed to every
/// device beforehand). `plain = true`: one deploy to every device.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RolloutSpec {
    #[serde(default)]
    pub plain: bool,
    #[serde(default = "default_waves")]
    pub waves: String,
    /// Devices of the canary wave, by index (device `sim-00003`: 3).
    #[serde(default)]
    pub canary: Vec<usize>,
    #[serde(default)]
    pub per_minute: Option<u32>,
    #[serde(default = "default_success")]
    pub success_percent: u8,
    #[serde(default)]
    pub soak_s: u64,
    #[serde(default = "default_max_failed")]
    pub max_failed_percent: u8,
    #[serde(default = "default_min_failed")]
    pub min_failed: u32,
    /// `pause` or `abort`.
    #[serde(default = "default_breach")]
    pub on_breach: String,
    #[serde(default = "default_device_timeout")]
    pub device_timeout_s: u64,
    #[serde(default)]
    pub retries: u32,
}

fn default_waves() -> String {
    "10%,50%,100%".into()
}
fn default_success() -> u8 {
    90
}
fn default_max_failed() -> u8 {
    20
}
fn default_min_failed() -> u32 {
    3
}
fn default_breach() -> String {
    "abort".into()
}
fn default_device_timeout() -> u64 {
    600
}

impl Default for RolloutSpec {
    fn default() -> RolloutSpec {
        toml::from_str("").unwrap_or_else(|_| unreachable!("every field has a default"))
    }
}

/// A fault on the timeline (seconds from the rollout's start).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Fault {
    pub at_s: u64,
    pub kind: FaultKind,
    /// Percent of the fleet hit (picked from the seed); device faults only.
    #[serde(default)]
    pub share: u8,
    /// How long a partition lasts, a device stays off, or the controller
    /// stays down.
    #[serde(default = "default_fault_len")]
    pub for_s: u64,
}

fn default_fault_len() -> u64 {
    30
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    /// Nothing crosses the device's link for `for_s`.
    Partition,
    /// The device is dropped (its agent stops mid-work, its connections
    /// die) and starts again from its persisted state after `for_s`.
    PowerLoss,
    /// Every open connection of the device is cut once.
    Drop,
    /// The controller (and its embedded broker) is killed with SIGKILL
    /// and started again after `for_s` on the same data and ports.
    ControllerRestart,
}

#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("reading scenario {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("scenario {path}: {source}")]
    Parse {
        path: String,
        source: Box<toml::de::Error>,
    },
    #[error("scenario {path}: {reason}")]
    Invalid { path: String, reason: String },
}

impl Scenario {
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
            path: shown.clone(),
            source,
        })?;
        Scenario::parse(&text).map_err(|e| match e {
            ScenarioError::Parse { source, .. } => ScenarioError::Parse {
                path: shown,
                source,
            },
            ScenarioError::Invalid { reason, .. } => ScenarioError::Invalid {
                path: shown,
                reason,
            },
            other => other,
        })
    }

    pub fn parse(text: &str) -> Result<Scenario, ScenarioError> {
        let s: Scenario = toml::from_str(text).map_err(|e| ScenarioError::Parse {
            path: String::new(),
            source: Box::new(e),
        })?;
        s.check().map_err(|reason| ScenarioError::Invalid {
            path: String::new(),
            reason,
        })?;
        Ok(s)
    }

    /// The same scenario with `devices` devices (shares stay percentages).
    pub fn resize(&mut self, devices: usize) -> Result<(), ScenarioError> {
        self.devices = devices;
        self.check().map_err(|reason| ScenarioError::Invalid {
            path: format!("with {devices} devices"),
            reason,
        })
    }

    fn check(&self) -> Result<(), String> {
        if self.devices == 0 {
            return Err("a fleet of 0 devices".into());
        }
        let total: u32 = self.fleet.iter().map(|p| u32::from(p.share)).sum();
        if total != 100 {
            return Err(format!("the fleet shares add up to {total}%, not 100%"));
        }
        for part in &self.fleet {
            self.profile(&part.profile)?;
        }
        if self.releases.len() < 2 {
            return Err(
                "two releases at least: the first is installed, the last rolled out".into(),
            );
        }
        if let Some(c) = self.rollout.canary.iter().find(|c| **c >= self.devices) {
            return Err(format!(
                "canary device {c} is not in a fleet of {}",
                self.devices
            ));
        }
        if !matches!(self.rollout.on_breach.as_str(), "pause" | "abort") {
            return Err(format!(
                "on_breach {:?}: pause or abort",
                self.rollout.on_breach
            ));
        }
        petrel_protocol::rollout::parse_waves(&self.rollout.waves).map_err(|e| e.to_string())?;
        for f in &self.faults {
            let device_fault = f.kind != FaultKind::ControllerRestart;
            if device_fault && !(1..=100).contains(&f.share) {
                return Err(format!(
                    "fault at {} s: share {}%, not 1 to 100",
                    f.at_s, f.share
                ));
            }
        }
        Ok(())
    }

    /// The profile named `name`: the scenario's own, else a built-in one.
    pub fn profile(&self, name: &str) -> Result<Profile, String> {
        self.profiles
            .iter()
            .cloned()
            .chain(Profile::builtin())
            .find(|p| p.name == name)
            .ok_or_else(|| {
                format!("no link profile {name:?} (built in: lan, wifi, lte, nbiot, flaky-2g)")
            })
    }

    /// Each device's fleet part, by index: the shares laid out in order,
    /// then shuffled by the seed.
    pub fn assignment(&self) -> Vec<usize> {
        let mut out = Vec::with_capacity(self.devices);
        for (k, part) in self.fleet.iter().enumerate() {
            let n = self.devices * usize::from(part.share) / 100;
            out.extend(std::iter::repeat_n(k, n));
        }
        let last = self.fleet.len().saturating_sub(1);
        out.resize(self.devices, last);
        out.shuffle(&mut StdRng::seed_from_u64(self.seed));
        out
    }

    /// Each device's link profile name, by index.
    pub fn profile_names(&self) -> Vec<String> {
        self.assignment()
            .into_iter()
            .map(|k| self.fleet[k].profile.clone())
            .collect()
    }

    /// Whether every fault of the timeline is due `t` seconds into the
    /// rollout.
    pub fn all_faults_due(&self, t: f64) -> bool {
        self.faults.iter().all(|f| t >= f.at_s as f64)
    }

    /// `share` percent of the fleet, picked by the seed and `salt`.
    pub fn pick(&self, share: u8, salt: u64) -> Vec<usize> {
        let mut all: Vec<usize> = (0..self.devices).collect();
        all.shuffle(&mut StdRng::seed_from_u64(self.seed ^ salt));
        all.truncate(self.devices * usize::from(share) / 100);
        all.sort_unstable();
        all
    }
}

#[cfg(test)]
mod tests;
