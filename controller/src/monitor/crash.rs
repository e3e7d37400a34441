//! Crash loops, from the restart counts devices report with every
//! heartbeat: a service whose count rose by [`LOOP_RESTARTS`] or more
//! within [`LOOP_WINDOW_MS`] is crash-looping. Pure: the caller passes the
//! time in.

use petrel_protocol::ServiceState;
use std::collections::{BTreeMap, VecDeque};

/// Restarts within the window that make a crash loop.
pub const LOOP_RESTARTS: u32 = 3;
/// The window: 10 minutes.
pub const LOOP_WINDOW_MS: u64 = 10 * 60 * 1000;

/// Samples kept per service (heartbeats within the window, bounded).
const SAMPLES: usize = 64;

/// Each service's restart count as reported over the window.
#[derive(Debug, Clone, Default)]
pub struct RestartHistory {
    samples: BTreeMap<String, VecDeque<(u64, u32)>>,
    /// Last exit code each service reported.
    exit_codes: BTreeMap<String, i32>,
}

/// A service caught crash-looping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Looping {
    pub service: String,
    pub restarts: u32,
    pub exit_code: Option<i32>,
}

impl RestartHistory {
    /// Records a report's services at `now_ms`. A count lower than the
    /// last one (a new instance after a swap, or an agent restart) starts
    /// the service's history afresh; services gone are forgotten.
    pub fn observe(&mut self, services: &[ServiceState], now_ms: u64) {
        let present = |name: &String| services.iter().any(|s| &s.name == name);
        self.samples.retain(|name, _| present(name));
        self.exit_codes.retain(|name, _| present(name));
        for s in services {
            let samples = self.samples.entry(s.name.clone()).or_default();
            if samples.back().is_some_and(|&(_, n)| s.restarts < n) {
                samples.clear();
            }
            samples.push_back((now_ms, s.restarts));
            if samples.len() > SAMPLES {
                samples.pop_front();
            }
            if let Some(code) = s.exit_code {
                self.exit_codes.insert(s.name.clone(), code);
            }
        }
    }

    /// The services that restarted [`LOOP_RESTARTS`] times or more in the
    /// window ending at `now_ms`.
    pub fn looping(&self, now_ms: u64) -> Vec<Looping> {
        let since = now_ms.saturating_sub(LOOP_WINDOW_MS);
        let mut out = Vec::new();
        for (name, samples) in &self.samples {
            let Some(&(_, last)) = samples.back() else {
                continue;
            };
            // the count just before the window opened is the baseline
            let base = samples
                .iter()
                .rev()
                .find(|(at, _)| *at <= since)
                .or(samples.front())
                .map_or(last, |&(_, n)| n);
            let restarts = last.saturating_sub(base);
            if restarts >= LOOP_RESTARTS {
                out.push(Looping {
                    service: name.clone(),
                    restarts,
                    exit_code: self.exit_codes.get(name).copied(),
                });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(name: &str, restarts: u32) -> ServiceState {
        ServiceState {
            name: name.into(),
            state: "restarting".into(),
            pid: None,
            restarts,
            exit_code: Some(3),
        }
    }

    #[test]
    fn three_restarts_within_ten_minutes_are_a_crash_loop() {
        let mut h = RestartHistory::default();
        h.observe(&[svc("web", 0), svc("db", 5)], 0);
        h.observe(&[svc("web", 2), svc("db", 5)], 60_000);
        assert!(h.looping(60_000).is_empty());
        h.observe(&[svc("web", 3), svc("db", 5)], 120_000);
        let looping = h.looping(120_000);
        assert_eq!(
            looping,
            vec![Looping {
                service: "web".into(),
                restarts: 3,
                exit_code: Some(3)
            }]
        );
    }

    #[test]
    fn restarts_spread_over_more_than_the_window_are_not_a_loop() {
        let mut h = RestartHistory::default();
        for (i, minute) in [0u64, 6, 12, 18].iter().enumerate() {
            h.observe(&[svc("web", i as u32)], minute * 60_000);
        }
        assert!(h.looping(18 * 60_000).is_empty());
        // and a loop ends once the window holds no more restarts
        let mut h = RestartHistory::default();
        h.observe(&[svc("web", 0)], 0);
        h.observe(&[svc("web", 4)], 1_000);
        assert_eq!(h.looping(1_000).len(), 1);
        h.observe(&[svc("web", 4)], LOOP_WINDOW_MS + 2_000);
        assert!(h.looping(LOOP_WINDOW_MS + 2_000).is_empty());
    }

    #[test]
    fn a_new_instance_after_a_swap_starts_its_count_afresh() {
        let mut h = RestartHistory::default();
        h.observe(&[svc("web", 9)], 0);
        h.observe(&[svc("web", 0)], 1_000);
        h.observe(&[svc("web", 1)], 2_000);
        assert!(h.looping(2_000).is_empty());
    }
}
