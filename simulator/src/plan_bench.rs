//! `petrel-sim bench-rollout`: what running a large rollout costs the
//! controller. A rollout of N devices (waves 1%, 10%, 50%, 100%) is driven
//! by simulated reports: every started device reports its progress
//! `rounds` times, then that it runs the release. Measured in one run:
//!
//! - the pure planner alone, per report;
//! - the controller's rollout core (`petrel_controller::rollouts::core`)
//!   on a real sled store: each report read back as the device's view,
//!   planned, and what changed written (head and changed members, one
//!   transaction) after every `batch` reports, plus the desired-state
//!   writes of the starts; once with a write after every report (a quiet
//!   controller) and once with the reports of one second per write (the
//!   driver takes all waiting messages between writes);
//! - the baseline: the whole rollout record written (and flushed) once
//!   per step that acts, as the driver did before members had records.
//!
//! The devices' own report writes are not counted: the fleet link pays
//! them with or without a rollout.

use petrel_protocol::rollout::{parse_waves, step, Action, Breach, Input, Policy, Rollout};
use petrel_protocol::{Phase, ReleaseManifest, ReleaseRef, Reported};
use std::time::{Duration, Instant};

/// One measured way of running the rollout.
pub struct Run {
    pub reports: u64,
    pub took: Duration,
    /// Store writes (transactions) made.
    pub writes: u64,
    /// Writing the desired states of the starts (not in `took`).
    pub performing: Duration,
}

pub struct PlanBench {
    pub devices: usize,
    pub interval: Duration,
    pub planner: Run,
    pub core_each: Run,
    pub core_batched: Run,
    pub batch: usize,
    /// Steps that act (a start or an outcome): the baseline writes once each.
    pub acting_steps: u64,
    /// One whole-record write with its flush, averaged.
    pub whole_write: Duration,
    pub whole_bytes: usize,
}

fn release(v: &str) -> ReleaseRef {
    ReleaseRef {
        name: "app".into(),
        version: v.into(),
    }
}

fn rollout(devices: usize) -> Rollout {
    let policy = Policy {
        waves: parse_waves("1%,10%,50%,100%").unwrap_or_default(),
        canary: vec![],
        per_minute: None,
        rate_growth_percent: 0,
        success_percent: 95,
        soak_ms: 0,
        max_failed_percent: 10,
        min_failed: 10,
        on_breach: Breach::Pause,
        device_timeout_ms: 3_600_000,
        retries: 0,
    };
    let fleet = (0..devices)
        .map(|i| (format!("dev-{i:06}"), Some(release("1"))))
        .collect();
    Rollout::new("bench", release("2"), Default::default(), policy, fleet, 0)
}

fn deploys(actions: impl IntoIterator<Item = Action>) -> Vec<String> {
    let mut out = Vec::new();
    for a in actions {
        if let Action::Deploy { device } = a {
            out.push(device);
        }
    }
    out
}

/// The pure planner alone; also counts the steps that act.
fn planner_only(devices: usize, rounds: u32) -> (Run, u64) {
    let mut r = rollout(devices);
    let (mut reports, mut acting, mut now) = (0u64, 0u64, 0u64);
    let started = Instant::now();
    let mut pending = deploys(step(&mut r, Input::Tick, now));
    while !pending.is_empty() {
        acting += pending.len() as u64;
        now += 1000;
        for _ in 0..rounds {
            for d in &pending {
                let p = Input::Progress {
                    device: d.clone(),
                    phase: "downloading".into(),
                };
                reports += 1;
                step(&mut r, p, now);
            }
        }
        let mut next = Vec::new();
        for d in std::mem::take(&mut pending) {
            reports += 1;
            acting += 1;
            next.extend(deploys(step(&mut r, Input::Succeeded { device: d }, now)));
        }
        pending = next;
    }
    let took = started.elapsed();
    (
        Run {
            reports,
            took,
            writes: 0,
            performing: Duration::ZERO,
        },
        acting,
    )
}

mod core_run;

/// Runs every measurement over `devices` devices in one process.
pub fn run(devices: usize, rounds: u32, interval: Duration) -> anyhow::Result<PlanBench> {
    let (planner, acting_steps) = planner_only(devices, rounds);
    let batch = (devices as u64 / interval.as_secs().max(1)).max(1) as usize;
    let core_each = core_run::run(devices, rounds, 1)?;
    let core_batched = core_run::run(devices, rounds, batch)?;
    let (whole_write, whole_bytes) = core_run::whole_record_write(devices)?;
    Ok(PlanBench {
        devices,
        interval,
        planner,
        core_each,
        core_batched,
        batch,
        acting_steps,
        whole_write,
        whole_bytes,
    })
}

impl PlanBench {
    /// Share of one core at one report per device every `interval`.
    fn share(&self, run: &Run) -> f64 {
        let per_report = run.took.as_secs_f64() / run.reports.max(1) as f64;
        per_report * self.devices as f64 / self.interval.as_secs_f64() * 100.0
    }

    pub fn summary(&self) -> String {
        let per = |run: &Run| run.took.as_secs_f64() * 1e6 / run.reports.max(1) as f64;
        let base_total = self.whole_write.as_secs_f64() * self.acting_steps as f64;
        let base_per = base_total * 1e6 / self.planner.reports.max(1) as f64;
        let base_share = base_per / 1e6 * self.devices as f64 / self.interval.as_secs_f64() * 100.0;
        let line = |name: &str, run: &Run| {
            let perform = run.performing.as_secs_f64() * 1e6 / self.devices.max(1) as f64;
            let perform = match run.performing.is_zero() {
                true => String::new(),
                false => format!("; apart, the desired-state writes: {perform:.0} us a start"),
            };
            format!(
                "{name}: {:.2} us a report ({} writes) = {:.3}% of a core, {:.1}x the planner{perform}\n",
                per(run),
                run.writes,
                self.share(run),
                per(run) / per(&self.planner).max(1e-9)
            )
        };
        format!(
            "{} devices, a report from each every {:?}; {} reports, {} acting steps\n{}{}{}\
             baseline, the whole record ({} KB) written per acting step: {:.0} us a write, \
             {:.1} us a report = {:.1}% of a core, {:.1}x the batched core\n",
            self.devices,
            self.interval,
            self.planner.reports,
            self.acting_steps,
            line("planner alone", &self.planner),
            line("core, a write after every report", &self.core_each),
            line(
                &format!("core, a write per {} reports", self.batch),
                &self.core_batched
            ),
            self.whole_bytes / 1024,
            self.whole_write.as_secs_f64() * 1e6,
            base_per,
            base_share,
            base_per / per(&self.core_batched).max(1e-9),
        )
    }
}

/// A release manifest to stand for `version` in desired states.
fn manifest(version: &str) -> ReleaseManifest {
    ReleaseManifest {
        schema: petrel_protocol::SCHEMA,
        name: "app".into(),
        version: version.into(),
        services: Default::default(),
    }
}

/// A device's report: `phase`, having accepted `generation`.
fn report(device: &str, generation: u64, phase: Phase, current: &str) -> Reported {
    Reported {
        schema: petrel_protocol::SCHEMA,
        device_id: device.into(),
        desired_generation: generation,
        applied_generation: if phase == Phase::Running {
            generation
        } else {
            0
        },
        current: Some(release(current)),
        phase,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_device_is_started_once_and_succeeds_in_every_run() {
        let b = super::run(200, 2, std::time::Duration::from_secs(30)).unwrap();
        // 200 devices: 2 progress reports and one success each
        assert_eq!(b.planner.reports, 600);
        assert_eq!(b.core_each.reports, 600);
        assert_eq!(b.core_batched.reports, 600);
        assert_eq!(b.acting_steps, 400);
        assert!(b.core_batched.writes < b.core_each.writes);
        assert!(b.whole_bytes > 0);
    }
}
