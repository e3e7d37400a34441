//! `petrel watch`: the fleet at a glance as one frame of text — counts,
//! a bar per phase and per release, active alerts, active rollouts wave by
//! wave, and the devices updating. Pure: the poller gathers a
//! [`FleetWatch`] and passes the time in, so the rendering is tested from
//! plain data.

use super::{human_bytes, phase_name};
use crate::http::DeviceView;
use crate::monitor::index::Summary;
use crate::rollouts::RolloutRecord;
use petrel_protocol::Phase;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Devices updating listed one line each, at most.
pub const UPDATING_LINES: usize = 10;
/// Width of a bar, in cells.
const BAR: usize = 20;

/// What one frame shows (also what `watch --json` prints).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FleetWatch {
    pub at_ms: u64,
    /// The filter the counts are restricted to, if any.
    pub filter: Option<String>,
    pub summary: Summary,
    /// Active alerts by kind (of the selected devices).
    pub alerts: BTreeMap<String, u64>,
    /// Rollouts neither completed nor aborted.
    pub rollouts: Vec<RolloutProgress>,
    /// Devices downloading, installing or swapping (up to
    /// [`UPDATING_LINES`]).
    pub updating: Vec<Updating>,
    /// Devices updating in all.
    pub updating_total: u64,
}

/// One active rollout: its phase and each wave's tally.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RolloutProgress {
    pub id: String,
    pub release: String,
    pub phase: String,
    pub waves: Vec<WaveProgress>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaveProgress {
    pub succeeded: u32,
    pub failed: u32,
    pub total: u32,
}

/// One device on its way to a release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Updating {
    pub id: String,
    pub phase: String,
    pub bytes_done: u64,
    pub bytes_total: u64,
}

/// The phases a device passes through while updating.
pub const UPDATING_PHASES: [Phase; 3] = [Phase::Downloading, Phase::Installing, Phase::Swapping];

impl RolloutProgress {
    /// An active rollout's progress; `None` once completed or aborted.
    pub fn of(rec: &RolloutRecord) -> Option<RolloutProgress> {
        use petrel_protocol::rollout::Phase as P;
        let r = &rec.rollout;
        if matches!(r.phase, P::Completed | P::Aborted { .. }) {
            return None;
        }
        let waves = r.tallies.iter().map(|t| WaveProgress {
            succeeded: t.succeeded,
            failed: t.failed,
            total: t.total(),
        });
        Some(RolloutProgress {
            id: r.id.clone(),
            release: r.release.to_string(),
            phase: super::rollout::phase_text(&r.phase),
            waves: waves.collect(),
        })
    }
}

impl Updating {
    /// The device, if it is downloading, installing or swapping.
    pub fn of(d: &DeviceView) -> Option<Updating> {
        UPDATING_PHASES.contains(&d.phase).then(|| Updating {
            id: d.id.clone(),
            phase: phase_name(d.phase),
            bytes_done: d.progress.bytes_done,
            bytes_total: d.progress.bytes_total,
        })
    }
}

/// The summary of `devices`, counted as the controller's fleet index
/// counts (`never-reported`, `none`).
pub fn summarize(devices: &[DeviceView]) -> Summary {
    let mut s = Summary::default();
    for d in devices {
        s.devices += 1;
        s.online += u64::from(d.online);
        let phase = match d.reported_at_ms {
            0 => "never-reported".into(),
            _ => phase_name(d.phase),
        };
        *s.phases.entry(phase).or_default() += 1;
        let release = d.current.as_ref().map_or("none".into(), |r| r.to_string());
        *s.releases.entry(release).or_default() += 1;
    }
    s
}

/// `n` of `total` as a bar of [`BAR`] cells; any `n` above zero shows.
pub fn bar(n: u64, total: u64) -> String {
    let filled = match (n, total) {
        (0, _) | (_, 0) => 0,
        (n, t) => ((n.min(t) * BAR as u64 / t) as usize).max(1),
    };
    format!("{}{}", "█".repeat(filled), "░".repeat(BAR - filled))
}

fn percent(n: u64, total: u64) -> u64 {
    (n * 100).checked_div(total).unwrap_or(0)
}

/// Lines `label  bar  count (share%)`, labels padded to the widest.
fn share_lines(counts: &BTreeMap<String, u64>, total: u64) -> String {
    let label = counts.keys().map(|k| k.chars().count()).max().unwrap_or(0);
    let count = counts
        .values()
        .map(|n| n.to_string().len())
        .max()
        .unwrap_or(0);
    let mut rows: Vec<(&String, &u64)> = counts.iter().collect();
    rows.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    rows.iter()
        .map(|(k, n)| {
            format!(
                "  {k:<label$}  {}  {n:>count$} ({}%)\n",
                bar(**n, total),
                percent(**n, total)
            )
        })
        .collect()
}

/// The frame: what `petrel watch` draws each interval.
pub fn render(w: &FleetWatch, now_ms: u64) -> String {
    let s = &w.summary;
    let mut out = format!(
        "fleet: {} devices, {} online, {} offline",
        s.devices,
        s.online,
        s.devices.saturating_sub(s.online)
    );
    if let Some(f) = &w.filter {
        out += &format!("  (filter {f})");
    }
    out += &format!("  at {}\n", crate::rfc3339(now_ms / 1000));
    out += "\nphases\n";
    out += &share_lines(&s.phases, s.devices);
    out += "\nreleases in use\n";
    out += &share_lines(&s.releases, s.devices);
    out += &format!("\nalerts: {}\n", alerts_text(&w.alerts));
    out += &rollouts_text(&w.rollouts);
    out += &updating_text(&w.updating, w.updating_total);
    out
}

fn alerts_text(alerts: &BTreeMap<String, u64>) -> String {
    let active: Vec<String> = alerts
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(k, n)| format!("{k} {n}"))
        .collect();
    match active.is_empty() {
        true => "none active".into(),
        false => active.join(", "),
    }
}

fn rollouts_text(rollouts: &[RolloutProgress]) -> String {
    if rollouts.is_empty() {
        return "rollouts: none active\n".into();
    }
    let mut out = "rollouts\n".to_string();
    for r in rollouts {
        out += &format!("  {}  {}  {}\n", r.id, r.release, r.phase);
        for (i, wave) in r.waves.iter().enumerate() {
            let failed = match wave.failed {
                0 => String::new(),
                n => format!(", {n} failed"),
            };
            out += &format!(
                "    wave {:<2} {}  {}/{} succeeded{failed}\n",
                i + 1,
                bar(wave.succeeded.into(), wave.total.into()),
                wave.succeeded,
                wave.total
            );
        }
    }
    out
}

fn updating_text(updating: &[Updating], total: u64) -> String {
    if total == 0 {
        return "updating: none\n".into();
    }
    let mut out = format!("updating: {total}\n");
    let id = updating
        .iter()
        .map(|u| u.id.chars().count())
        .max()
        .unwrap_or(0);
    for u in updating.iter().take(UPDATING_LINES) {
        let progress = match u.bytes_total {
            0 => String::new(),
            t => format!(
                "  {}  {}% of {}",
                bar(u.bytes_done, t),
                percent(u.bytes_done, t),
                human_bytes(t)
            ),
        };
        let line = format!("  {:<id$}  {:<11}{progress}", u.id, u.phase);
        out += line.trim_end();
        out.push('\n');
    }
    let shown = updating.len().min(UPDATING_LINES) as u64;
    if total > shown {
        out += &format!("  ... and {} more\n", total - shown);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fleet() -> FleetWatch {
        let counts = |pairs: &[(&str, u64)]| -> BTreeMap<String, u64> {
            pairs.iter().map(|(k, n)| (k.to_string(), *n)).collect()
        };
        FleetWatch {
            at_ms: 0,
            filter: None,
            summary: Summary {
                devices: 1000,
                online: 990,
                phases: counts(&[("running", 812), ("downloading", 188)]),
                releases: counts(&[("shop@1.1", 900), ("shop@1.2", 100)]),
            },
            alerts: counts(&[("offline", 10), ("disk-low", 0)]),
            rollouts: vec![RolloutProgress {
                id: "r1".into(),
                release: "shop@1.2".into(),
                phase: "wave 2 running".into(),
                waves: vec![
                    WaveProgress {
                        succeeded: 10,
                        failed: 0,
                        total: 10,
                    },
                    WaveProgress {
                        succeeded: 25,
                        failed: 2,
                        total: 100,
                    },
                ],
            }],
            updating: vec![
                Updating {
                    id: "pi-1".into(),
                    phase: "downloading".into(),
                    bytes_done: 6_000_000,
                    bytes_total: 12_000_000,
                },
                Updating {
                    id: "pi-22".into(),
                    phase: "installing".into(),
                    bytes_done: 0,
                    bytes_total: 0,
                },
            ],
            updating_total: 2,
        }
    }

    #[test]
    fn a_bar_shows_the_share_and_any_device_at_all() {
        assert_eq!(bar(0, 10), "░".repeat(20));
        assert_eq!(bar(10, 10), "█".repeat(20));
        assert_eq!(bar(5, 10), format!("{}{}", "█".repeat(10), "░".repeat(10)));
        assert_eq!(bar(1, 1000), format!("█{}", "░".repeat(19)));
        assert_eq!(bar(3, 0), "░".repeat(20));
    }

    #[test]
    fn the_frame_counts_the_fleet_and_draws_a_bar_per_phase_largest_first() {
        let text = render(&fleet(), 0);
        assert!(
            text.starts_with("fleet: 1000 devices, 990 online, 10 offline  at 1970-01-01"),
            "{text}"
        );
        let running = format!(
            "  running      {}{}  812 (81%)",
            "█".repeat(16),
            "░".repeat(4)
        );
        let downloading = format!(
            "  downloading  {}{}  188 (18%)",
            "█".repeat(3),
            "░".repeat(17)
        );
        let at = |needle: &str| {
            text.find(needle)
                .unwrap_or_else(|| panic!("{needle} in {text}"))
        };
        assert!(at(&running) < at(&downloading));
        assert!(text.contains("  shop@1.1  "), "{text}");
    }

    #[test]
    fn the_frame_lists_active_alerts_rollout_waves_and_updating_devices() {
        let text = render(&fleet(), 0);
        assert!(text.contains("alerts: offline 10\n"), "{text}");
        assert!(text.contains("  r1  shop@1.2  wave 2 running\n"), "{text}");
        assert!(text.contains(&format!("wave 1  {}  10/10 succeeded\n", "█".repeat(20))));
        assert!(text.contains("25/100 succeeded, 2 failed\n"), "{text}");
        assert!(text.contains("updating: 2\n"), "{text}");
        let half = format!("{}{}", "█".repeat(10), "░".repeat(10));
        assert!(
            text.contains(&format!("  pi-1   downloading  {half}  50% of 12 MB\n")),
            "{text}"
        );
        assert!(text.contains("  pi-22  installing\n"), "{text}");
    }

    #[test]
    fn a_quiet_fleet_says_none_and_a_filter_is_named() {
        let mut w = fleet();
        w.alerts.clear();
        w.rollouts.clear();
        w.updating.clear();
        w.updating_total = 0;
        w.filter = Some("site=north".into());
        let text = render(&w, 0);
        assert!(text.contains("(filter site=north)"), "{text}");
        assert!(text.contains("alerts: none active\n"), "{text}");
        assert!(text.contains("rollouts: none active\n"), "{text}");
        assert!(text.ends_with("updating: none\n"), "{text}");
    }

    #[test]
    fn more_updating_devices_than_lines_end_with_how_many_more() {
        let mut w = fleet();
        w.updating_total = 40;
        let text = render(&w, 0);
        assert!(text.ends_with("  ... and 38 more\n"), "{text}");
    }
}
