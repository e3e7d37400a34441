//! What a scenario run measured, and the files it leaves: `report.json`,
//! SVG charts (devices by phase over time, bytes over time, convergence
//! per link profile) and `index.html` embedding them with the summary.
//!
//! - [`charts`]: the SVG charts (plotters).
//! - [`html`]: the summary page.

pub mod charts;
pub mod html;

use crate::scenario::Scenario;
use anyhow::{Context, Result};
use petrel_controller::rollouts::RolloutRecord;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// One second of the run.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Sample {
    pub t_s: f64,
    /// Devices by the phase they last reported.
    pub phases: BTreeMap<String, usize>,
    /// Devices running what the controller wants them to.
    pub settled: usize,
    pub on_new: usize,
    pub online: usize,
    /// Downloaded over HTTP (layers, deltas) since the rollout started.
    pub http_down_bytes: u64,
    pub controller_cpu_s: f64,
    /// When the controller's usage was read (seconds into the rollout).
    pub controller_at_s: f64,
    pub controller_rss_bytes: u64,
    /// How long reading the fleet view and ticking the devices took
    /// (a slow sample shows which side lagged).
    #[serde(default)]
    pub view_s: f64,
    #[serde(default)]
    pub tick_s: f64,
}

/// One device at the end.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DeviceOutcome {
    pub id: String,
    pub profile: String,
    pub release: Option<String>,
    pub phase: String,
    /// From when on it ran what it should (seconds into the rollout).
    pub settled_at_s: Option<f64>,
    /// It was sent (or ran) the new release at some point.
    pub sent_new: bool,
    /// When it first acknowledged the new release as its desired state
    /// (seconds into the rollout).
    #[serde(default)]
    pub reached_at_s: Option<f64>,
    /// It rolled back on its own at some point (failed health check).
    pub rolled_back: bool,
    pub http_down_bytes: u64,
    pub power_losses: u32,
    /// Connections the fault layer dropped.
    pub dropped: u64,
}

/// What happened before the measured rollout.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Setup {
    pub connect_s: f64,
    pub install_s: f64,
    /// Compressed size of each release's image.
    pub image_bytes: Vec<u64>,
    pub release: String,
    pub rollout: Option<String>,
    /// Simulator processes that held the devices (1, or the shards).
    #[serde(default)]
    pub processes: usize,
}

/// Time until a share of the fleet had settled for good, seconds.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Convergence {
    pub p50_s: Option<f64>,
    pub p90_s: Option<f64>,
    pub p99_s: Option<f64>,
    pub p100_s: Option<f64>,
}

impl Convergence {
    fn of(mut times: Vec<Option<f64>>) -> Convergence {
        let n = times.len();
        times.sort_by(|a, b| match (a, b) {
            (Some(x), Some(y)) => x.total_cmp(y),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => std::cmp::Ordering::Equal,
        });
        let at = |p: usize| {
            times
                .get((n * p).div_ceil(100).max(1) - 1)
                .copied()
                .flatten()
        };
        Convergence {
            p50_s: at(50),
            p90_s: at(90),
            p99_s: at(99),
            p100_s: at(100),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Report {
    pub scenario: String,
    pub seed: u64,
    pub devices: usize,
    pub setup: Setup,
    pub timed_out: bool,
    /// The rollout's phase at the end (`completed`, `aborted`, ...).
    pub outcome: String,
    pub convergence: Convergence,
    /// Time until the new release's desired state had reached (been
    /// acknowledged by) a share of the devices it was sent to.
    #[serde(default)]
    pub reached: Convergence,
    pub convergence_by_profile: BTreeMap<String, Convergence>,
    pub devices_by_profile: BTreeMap<String, usize>,
    /// Devices on the new release at the end.
    pub on_new_release: usize,
    pub http_down_bytes: u64,
    /// The new image's compressed size times the devices sent it.
    pub full_image_bytes: u64,
    pub retries: usize,
    pub dropped_connections: u64,
    pub power_losses: u64,
    /// Devices that rolled back on their own (failed health check).
    pub local_rollbacks: usize,
    /// Devices the rollout sent back fleet-wide, and how many got back.
    pub fleet_rollback_sent: u32,
    pub fleet_rollback_back: u32,
    pub stuck: usize,
    pub controller_cpu_s: f64,
    pub controller_peak_cpu_percent: f64,
    pub controller_peak_rss_bytes: u64,
    /// The controller restarts of the timeline and how the fleet came back.
    #[serde(default)]
    pub controller_restarts: Vec<RestartOutcome>,
    /// The highest request rates at the controller over the run (device
    /// downloads and MQTT messages in, per second, from its `/metrics`).
    #[serde(default)]
    pub request_peaks: Option<crate::run::rates::Peaks>,
    /// Times the controller lost its own broker link (from its log).
    #[serde(default)]
    pub controller_link_losses: usize,
    #[serde(default)]
    pub broker: crate::scenario::BrokerKind,
    /// The external broker's own CPU and memory (Mosquitto runs).
    #[serde(default)]
    pub external_broker: Option<crate::run::mosquitto::BrokerUsage>,
    pub samples: Vec<Sample>,
    pub per_device: Vec<DeviceOutcome>,
}

/// One controller restart (kill -9, then started again).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RestartOutcome {
    /// When it was killed, seconds from the rollout's start.
    pub killed_at_s: f64,
    /// From the kill until its API answered again.
    pub down_s: f64,
    /// From the API answering until every device had been heard from
    /// again (reconnected and reported); `None`: not within the run.
    pub fleet_back_s: Option<f64>,
    /// The highest request rates at the controller once it answered again.
    #[serde(default)]
    pub peaks_after: Option<crate::run::rates::Peaks>,
}

impl Report {
    pub fn build(
        s: &Scenario,
        setup: Setup,
        samples: Vec<Sample>,
        devices: Vec<DeviceOutcome>,
        rollout: Option<RolloutRecord>,
        timed_out: bool,
    ) -> Report {
        let mut by_profile: BTreeMap<String, Vec<Option<f64>>> = BTreeMap::new();
        for d in &devices {
            by_profile
                .entry(d.profile.clone())
                .or_default()
                .push(d.settled_at_s);
        }
        let new_image = setup.image_bytes.last().copied().unwrap_or(0);
        let sent_new = devices.iter().filter(|d| d.sent_new).count() as u64;
        let (outcome, retries, stuck, rb) = rollout_facts(rollout.as_ref());
        Report {
            scenario: s.name.clone(),
            seed: s.seed,
            devices: devices.len(),
            timed_out,
            outcome,
            convergence: Convergence::of(devices.iter().map(|d| d.settled_at_s).collect()),
            reached: Convergence::of(
                devices
                    .iter()
                    .filter(|d| d.sent_new)
                    .map(|d| d.reached_at_s)
                    .collect(),
            ),
            devices_by_profile: by_profile
                .iter()
                .map(|(p, v)| (p.clone(), v.len()))
                .collect(),
            convergence_by_profile: by_profile
                .into_iter()
                .map(|(p, v)| (p, Convergence::of(v)))
                .collect(),
            on_new_release: devices
                .iter()
                .filter(|d| d.release.as_deref() == Some(setup.release.as_str()))
                .count(),
            http_down_bytes: devices.iter().map(|d| d.http_down_bytes).sum(),
            full_image_bytes: new_image * sent_new,
            retries,
            dropped_connections: devices.iter().map(|d| d.dropped).sum(),
            power_losses: devices.iter().map(|d| u64::from(d.power_losses)).sum(),
            local_rollbacks: devices.iter().filter(|d| d.rolled_back).count(),
            fleet_rollback_sent: rb.0,
            fleet_rollback_back: rb.1,
            stuck,
            controller_cpu_s: samples.last().map_or(0.0, |x| x.controller_cpu_s),
            controller_peak_cpu_percent: peak_cpu(&samples),
            controller_peak_rss_bytes: samples
                .iter()
                .map(|x| x.controller_rss_bytes)
                .max()
                .unwrap_or(0),
            controller_restarts: Vec::new(),
            request_peaks: None,
            controller_link_losses: 0,
            broker: s.broker,
            external_broker: None,
            setup,
            samples,
            per_device: devices,
        }
    }

    fn more_lines(&self) -> String {
        let each: Vec<String> = self
            .controller_restarts
            .iter()
            .map(|r| {
                let back = r.fleet_back_s.map_or("never".into(), |b| format!("{b:.0} s"));
                let peaks = r.peaks_after.map_or(String::new(), |p| {
                    format!(
                        ", then at most {:.0} downloads/s and {:.0} MQTT messages/s",
                        p.downloads_per_s, p.mqtt_in_per_s
                    )
                });
                format!(
                    "killed at {:.0} s, answering {:.0} s later, every device back {back} after that{peaks}",
                    r.killed_at_s, r.down_s
                )
            })
            .collect();
        let mut line = String::new();
        if let Some(b) = &self.external_broker {
            line += &format!(
                "\nbroker ({:?}): {:.1} s CPU, peak {:.0} MB",
                self.broker,
                b.cpu_s,
                b.peak_rss_bytes as f64 / 1e6
            );
        }
        if !each.is_empty() {
            line += &format!("\ncontroller restarts: {}", each.join("; "));
        }
        if let Some(p) = self.request_peaks {
            line += &format!(
                "\nrequests at the controller: at most {:.0} downloads/s, {:.0} MQTT messages/s",
                p.downloads_per_s, p.mqtt_in_per_s
            );
        }
        line
    }

    /// The headline numbers, for the terminal.
    pub fn summary(&self) -> String {
        let c = &self.convergence;
        let s = |v: Option<f64>| v.map_or("never".into(), |v| format!("{v:.0}s"));
        format!(
            "{}: {} devices in {} simulator process(es), rollout {}{}\n\
             setup: connected in {:.0}s, first release installed in {:.0}s\n\
             reached: 50% {}, 100% {}; settled: 50% {}, 90% {}, 99% {}, 100% {}; {} on {}\n\
             downloaded {:.2} MB (full images: {:.2} MB); retries {}, dropped connections {}, power losses {}\n\
             rolled back on their own {}, sent back {} (back {}), stuck {}\n\
             controller: {:.1} s CPU, peak {:.0}% of a core, peak {:.0} MB, lost its broker link {} times{}",
            self.scenario,
            self.devices,
            self.setup.processes,
            self.outcome,
            if self.timed_out { " (timed out)" } else { "" },
            self.setup.connect_s,
            self.setup.install_s,
            s(self.reached.p50_s),
            s(self.reached.p100_s),
            s(c.p50_s),
            s(c.p90_s),
            s(c.p99_s),
            s(c.p100_s),
            self.on_new_release,
            self.setup.release,
            self.http_down_bytes as f64 / 1e6,
            self.full_image_bytes as f64 / 1e6,
            self.retries,
            self.dropped_connections,
            self.power_losses,
            self.local_rollbacks,
            self.fleet_rollback_sent,
            self.fleet_rollback_back,
            self.stuck,
            self.controller_cpu_s,
            self.controller_peak_cpu_percent,
            self.controller_peak_rss_bytes as f64 / 1e6,
            self.controller_link_losses,
            self.more_lines(),
        )
    }

    /// Writes `report.json`, the charts and `index.html` into `dir`.
    pub fn write(&self, dir: &Path) -> Result<()> {
        let json = serde_json::to_vec_pretty(self)?;
        let path = dir.join("report.json");
        std::fs::write(&path, json).with_context(|| format!("writing {}", path.display()))?;
        let charts = charts::draw(self, dir)?;
        html::write(self, &charts, dir)
    }
}

/// The rollout's end phase, retries, stuck devices, (sent back, back).
fn rollout_facts(rec: Option<&RolloutRecord>) -> (String, usize, usize, (u32, u32)) {
    use petrel_protocol::rollout::{DeviceState, Phase};
    let Some(rec) = rec else {
        return ("plain deploy".into(), 0, 0, (0, 0));
    };
    let outcome = match &rec.rollout.phase {
        Phase::Completed => "completed".to_string(),
        Phase::Aborted { reason } => format!("aborted: {reason}"),
        Phase::Paused { reason, .. } => format!("paused: {reason}"),
        Phase::Active { wave } | Phase::Soaking { wave, .. } => {
            format!("unfinished at wave {}", wave + 1)
        }
    };
    let retries = rec
        .notes
        .iter()
        .filter(|n| n.text.contains("; retry"))
        .count();
    let stuck = rec
        .rollout
        .members
        .values()
        .filter(|m| matches!(m.state, DeviceState::Stuck { .. }))
        .count();
    let rb = rec.rollback.as_ref().map_or((0, 0), |r| (r.sent, r.back));
    (outcome, retries, stuck, rb)
}

/// The highest CPU share of one core between two samples, percent.
fn peak_cpu(samples: &[Sample]) -> f64 {
    samples
        .windows(2)
        .map(|w| {
            let dt = (w[1].controller_at_s - w[0].controller_at_s).max(0.2);
            (w[1].controller_cpu_s - w[0].controller_cpu_s) / dt * 100.0
        })
        .fold(0.0, f64::max)
}

#[cfg(test)]
mod tests;
