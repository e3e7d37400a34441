//! `petrel-sim bench-rollout`: what planning a large rollout costs. A
//! rollout of N devices (waves 1%, 10%, 50%, 100%) is driven through the
//! pure planner by simulated reports: every started device reports its
//! progress `rounds` times, then succeeds. Measured in one run: the
//! planner's CPU time per report, and, as the baseline the controller pays
//! today, writing the whole rollout record once per step that acts (the
//! driver persists the record whole).

use petrel_protocol::rollout::{parse_waves, step, Breach, Input, Policy, Rollout, Selector};
use petrel_protocol::ReleaseRef;
use std::time::{Duration, Instant};

pub struct PlanBench {
    pub devices: usize,
    pub reports: u64,
    pub acting_steps: u64,
    pub planner: Duration,
    /// One serialization of the whole record, at the end (all members).
    pub record_write: Duration,
    pub record_bytes: usize,
}

fn release(v: &str) -> ReleaseRef {
    ReleaseRef {
        name: "app".into(),
        version: v.into(),
    }
}

/// Runs the planner over `devices` devices, `rounds` progress reports each.
pub fn run(devices: usize, rounds: u32) -> PlanBench {
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
    let mut r = Rollout::new("bench", release("2"), Selector::default(), policy, fleet, 0);
    let (mut reports, mut acting, mut now) = (0u64, 0u64, 0u64);
    let started = Instant::now();
    let mut pending: Vec<String> = Vec::new();
    loop {
        now += 1000;
        for a in step(&mut r, Input::Tick, now) {
            if let petrel_protocol::rollout::Action::Deploy { device } = a {
                pending.push(device);
            }
        }
        if pending.is_empty() {
            break;
        }
        for _ in 0..rounds {
            for d in &pending {
                let p = Input::Progress {
                    device: d.clone(),
                    phase: "downloading".into(),
                };
                reports += 1;
                acting += u64::from(!step(&mut r, p, now).is_empty());
            }
        }
        for d in std::mem::take(&mut pending) {
            reports += 1;
            let done = step(&mut r, Input::Succeeded { device: d }, now);
            // the driver persists every outcome
            acting += 1;
            for a in done {
                if let petrel_protocol::rollout::Action::Deploy { device } = a {
                    pending.push(device);
                }
            }
        }
    }
    let planner = started.elapsed();
    let t = Instant::now();
    let bytes = serde_json::to_vec(&r).map(|b| b.len()).unwrap_or(0);
    PlanBench {
        devices,
        reports,
        acting_steps: acting,
        planner,
        record_write: t.elapsed(),
        record_bytes: bytes,
    }
}

impl PlanBench {
    /// The report: per-report costs, and the share of one core at one
    /// report per device every `interval`.
    pub fn summary(&self, interval: Duration) -> String {
        let per_report = self.planner.as_secs_f64() / self.reports.max(1) as f64;
        let per_round = per_report * self.devices as f64;
        let share = per_round / interval.as_secs_f64() * 100.0;
        let persist_each = self.record_write.as_secs_f64();
        let ratio = persist_each / per_report.max(1e-12);
        format!(
            "{} devices, {} reports, {} acting steps\n\
             planner: {:.2} us per report; one report from every device: {:.1} ms = {:.3}% of a core every {:?}\n\
             baseline (whole record written per acting step, {} KB): {:.1} ms each = {:.0}x a planner step; \
             at one outcome per device per {:?}: {:.0}% of a core",
            self.devices,
            self.reports,
            self.acting_steps,
            per_report * 1e6,
            per_round * 1e3,
            share,
            interval,
            self.record_bytes / 1024,
            persist_each * 1e3,
            ratio,
            interval,
            persist_each * self.devices as f64 / interval.as_secs_f64() * 100.0,
        )
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_device_is_started_once_and_succeeds() {
        let b = super::run(200, 2);
        // 200 devices: 2 progress reports and one success each
        assert_eq!(b.reports, 600);
        assert!(b.record_bytes > 0);
    }
}
