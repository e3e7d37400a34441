//! `petrel deploy --wait`: what each deployed device has come to, its
//! download rate and ETA, and the lines shown while waiting. Pure: the
//! caller polls the fleet view and passes the time in, so the rules are
//! tested without a controller.

use crate::cli::{human_bytes, one_line, phase_name};
use crate::http::DeviceView;
use petrel_protocol::Phase;
use std::collections::HashMap;

/// Where one device stands with respect to the generation deployed to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Still on its way (or not yet connected).
    Pending,
    /// Runs the deployed release.
    Converged,
    /// Failed or rolled back: the reason.
    Failed(String),
    /// Another deployment replaced ours (its generation).
    Superseded(u64),
}

impl Outcome {
    pub fn done(&self) -> bool {
        !matches!(self, Outcome::Pending)
    }
}

/// The outcome of `generation` on the device `view` shows.
pub fn outcome(view: &DeviceView, generation: u64) -> Outcome {
    if view.desired_generation > generation {
        return Outcome::Superseded(view.desired_generation);
    }
    // Until the device has accepted our generation, what it shows is
    // about an older one.
    if view.accepted_generation < generation {
        return Outcome::Pending;
    }
    match view.phase {
        _ if view.converged() => Outcome::Converged,
        Phase::Failed | Phase::RolledBack => {
            let what = match view.phase {
                Phase::RolledBack => "rolled back",
                _ => "failed",
            };
            let why = view.last_error.as_deref().unwrap_or("no reason reported");
            Outcome::Failed(format!("{what}: {}", one_line(why)))
        }
        _ => Outcome::Pending,
    }
}

/// Download rates per device, smoothed over successive polls.
#[derive(Default)]
pub struct Rates {
    last: HashMap<String, (u64, f64)>,
    rate: HashMap<String, f64>,
}

impl Rates {
    /// Records `bytes_done` of `device` at `now_s` (seconds, any origin)
    /// and returns its rate in bytes per second, once it is known.
    pub fn update(&mut self, device: &str, bytes_done: u64, now_s: f64) -> Option<f64> {
        if let Some((bytes, at)) = self.last.get(device).copied() {
            let dt = now_s - at;
            if dt > 0.0 && bytes_done >= bytes {
                let sample = (bytes_done - bytes) as f64 / dt;
                let smoothed = match self.rate.get(device) {
                    Some(r) => 0.7 * r + 0.3 * sample,
                    None => sample,
                };
                self.rate.insert(device.to_string(), smoothed);
            } else if bytes_done < bytes {
                self.rate.remove(device); // a new download started
            }
        }
        self.last.insert(device.to_string(), (bytes_done, now_s));
        self.rate.get(device).copied()
    }
}

/// One device's line: id, phase, progress with rate and ETA, or outcome.
pub fn line(view: &DeviceView, outcome: &Outcome, rate: Option<f64>) -> String {
    let state = match outcome {
        Outcome::Converged => "done".to_string(),
        Outcome::Failed(why) => why.clone(),
        Outcome::Superseded(g) => format!("superseded by generation {g}"),
        Outcome::Pending if !view.online && view.last_seen_ms == 0 => "not connected yet".into(),
        Outcome::Pending => pending(view, rate),
    };
    format!("{}  {state}", view.id)
}

fn pending(view: &DeviceView, rate: Option<f64>) -> String {
    let phase = phase_name(view.phase);
    let p = &view.progress;
    if view.phase != Phase::Downloading || p.bytes_total == 0 {
        return phase;
    }
    let mut text = format!(
        "{phase} {} of {} ({}%)",
        human_bytes(p.bytes_done),
        human_bytes(p.bytes_total),
        p.bytes_done.saturating_mul(100) / p.bytes_total
    );
    if let Some(r) = rate.filter(|r| *r > 1.0) {
        let left = p.bytes_total.saturating_sub(p.bytes_done) as f64 / r;
        text += &format!(", {}/s, ETA {}", human_bytes(r as u64), eta(left));
    }
    text
}

fn eta(seconds: f64) -> String {
    let s = seconds.round() as u64;
    match s {
        s if s >= 3600 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        s if s >= 60 => format!("{}m{:02}s", s / 60, s % 60),
        s => format!("{s}s"),
    }
}

/// The one-line summary for many devices.
pub fn summary(outcomes: &[Outcome]) -> String {
    let count = |f: fn(&Outcome) -> bool| outcomes.iter().filter(|o| f(o)).count();
    let done = count(|o| *o == Outcome::Converged);
    let failed = count(|o| matches!(o, Outcome::Failed(_) | Outcome::Superseded(_)));
    let total = outcomes.len().max(1);
    let filled = (done + failed) * 30 / total;
    format!(
        "[{}{}] {done}/{} done, {failed} failed, {} in progress",
        "#".repeat(filled),
        ".".repeat(30 - filled),
        outcomes.len(),
        outcomes.len() - done - failed
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use petrel_protocol::{Progress, ReleaseRef};

    fn view(phase: Phase, desired_gen: u64, accepted_gen: u64) -> DeviceView {
        let demo = |v: &str| {
            Some(ReleaseRef {
                name: "demo".into(),
                version: v.into(),
            })
        };
        DeviceView {
            id: "pi-1".into(),
            online: true,
            last_seen_ms: 1,
            desired: demo("2"),
            desired_generation: desired_gen,
            current: if phase == Phase::Running {
                demo("2")
            } else {
                demo("1")
            },
            target: None,
            applied_generation: if phase == Phase::Running {
                accepted_gen
            } else {
                1
            },
            accepted_generation: accepted_gen,
            phase,
            progress: Progress::default(),
            services: Vec::new(),
            last_error: Some("app exited with code 1\nafter 2 s".into()),
            held_by: None,
            update_bytes: None,
            reported_at_ms: 1,
            platform: None,
            agent_version: String::new(),
            hostname: None,
            free_disk_bytes: None,
            health: None,
            labels: Default::default(),
        }
    }

    #[test]
    fn a_device_is_pending_until_it_applies_our_generation_then_done_or_failed() {
        assert_eq!(outcome(&view(Phase::Running, 5, 4), 5), Outcome::Pending);
        assert_eq!(
            outcome(&view(Phase::Downloading, 5, 5), 5),
            Outcome::Pending
        );
        assert_eq!(outcome(&view(Phase::Running, 5, 5), 5), Outcome::Converged);
        let rolled = outcome(&view(Phase::RolledBack, 5, 5), 5);
        assert_eq!(
            rolled,
            Outcome::Failed("rolled back: app exited with code 1 after 2 s".into())
        );
        assert_eq!(
            outcome(&view(Phase::Running, 6, 6), 5),
            Outcome::Superseded(6)
        );
    }

    #[test]
    fn progress_shows_rate_and_eta_once_two_polls_are_known() {
        let mut v = view(Phase::Downloading, 5, 5);
        v.progress = Progress {
            bytes_done: 1_000_000,
            bytes_total: 11_000_000,
        };
        let mut rates = Rates::default();
        assert_eq!(rates.update("pi-1", 1_000_000, 10.0), None);
        let first = line(&v, &Outcome::Pending, None);
        assert_eq!(first, "pi-1  downloading 1.0 MB of 11 MB (9%)");
        v.progress.bytes_done = 3_000_000;
        let rate = rates.update("pi-1", 3_000_000, 12.0);
        assert_eq!(rate, Some(1_000_000.0));
        let text = line(&v, &Outcome::Pending, rate);
        assert_eq!(
            text,
            "pi-1  downloading 3.0 MB of 11 MB (27%), 1.0 MB/s, ETA 8s"
        );
    }

    #[test]
    fn the_summary_counts_and_fills_its_bar() {
        let s = summary(&[
            Outcome::Converged,
            Outcome::Pending,
            Outcome::Failed("x".into()),
        ]);
        assert_eq!(
            s,
            format!(
                "[{}{}] 1/3 done, 1 failed, 1 in progress",
                "#".repeat(20),
                ".".repeat(10)
            )
        );
    }
}
