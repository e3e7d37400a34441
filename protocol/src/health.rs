//! Health probes: what a compose-shaped `healthcheck.test` means, and the
//! timing rules (interval, timeout, retries, start period) with defaults.
//! Pure: the agent runs the probes; this module only says what they are.

use crate::manifest::HealthCheck;
use std::time::Duration;

/// One health probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// `["CMD", argv...]`: run argv in the service's environment; exit 0 is healthy.
    Command(Vec<String>),
    /// `["CMD-SHELL", "script"]` (or a plain string): `/bin/sh -c script`.
    Shell(String),
    /// `["HTTP", "http://host:port/path"]`: a 2xx/3xx answer is healthy.
    Http(String),
    /// `["TCP", "host:port"]`: an accepted connection is healthy.
    Tcp(String),
    /// `["RUNNING", "N"]`: healthy once it has run N seconds without a restart.
    Running(u64),
    /// `["NONE"]`: no check beyond "it started".
    None,
}

/// Timing of a health check, defaults applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    pub interval: Duration,
    pub timeout: Duration,
    /// Consecutive failures (after the start period) that make it unhealthy.
    pub retries: u32,
    /// Failures during this period do not count.
    pub start_period: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(5),
            retries: 3,
            start_period: Duration::from_secs(0),
        }
    }
}

/// How long a service without a health check must stay up to count as
/// healthy.
pub const DEFAULT_SETTLE_S: u64 = 2;

impl HealthCheck {
    /// The probe `test` describes, or why it is not one.
    pub fn probe(&self) -> Result<Probe, String> {
        let (kind, rest) = self.test.split_first().ok_or("empty healthcheck test")?;
        let one = |what: &str| match rest {
            [x] => Ok(x.clone()),
            _ => Err(format!("healthcheck {kind} takes one {what}")),
        };
        match kind.as_str() {
            "CMD" if !rest.is_empty() => Ok(Probe::Command(rest.to_vec())),
            "CMD-SHELL" => one("script").map(Probe::Shell),
            "HTTP" => one("url").and_then(|u| {
                u.starts_with("http://")
                    .then_some(Probe::Http(u))
                    .ok_or_else(|| "healthcheck HTTP url must start with http://".into())
            }),
            "TCP" => one("host:port").map(Probe::Tcp),
            "RUNNING" => one("number of seconds")?
                .parse()
                .map(Probe::Running)
                .map_err(|_| "healthcheck RUNNING takes whole seconds".into()),
            "NONE" => Ok(Probe::None),
            _ if self.test.len() == 1 => Ok(Probe::Shell(kind.clone())),
            other => Err(format!(
                "unknown healthcheck kind {other:?} (CMD, CMD-SHELL, HTTP, TCP, RUNNING, NONE)"
            )),
        }
    }

    pub fn timing(&self) -> Timing {
        let d = Timing::default();
        Timing {
            interval: self.interval_s.map_or(d.interval, Duration::from_secs),
            timeout: self.timeout_s.map_or(d.timeout, Duration::from_secs),
            retries: self.retries.unwrap_or(d.retries).max(1),
            start_period: self
                .start_period_s
                .map_or(d.start_period, Duration::from_secs),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hc(test: &[&str]) -> HealthCheck {
        HealthCheck {
            test: test.iter().map(|s| s.to_string()).collect(),
            interval_s: None,
            timeout_s: Some(2),
            retries: None,
            start_period_s: None,
        }
    }

    #[test]
    fn compose_and_petrel_probe_forms_parse() {
        assert_eq!(
            hc(&["CMD", "/bin/check", "-q"]).probe().unwrap(),
            Probe::Command(vec!["/bin/check".into(), "-q".into()])
        );
        assert_eq!(
            hc(&["CMD-SHELL", "test -f /ok"]).probe().unwrap(),
            Probe::Shell("test -f /ok".into())
        );
        assert_eq!(
            hc(&["HTTP", "http://127.0.0.1:8080/h"]).probe().unwrap(),
            Probe::Http("http://127.0.0.1:8080/h".into())
        );
        assert_eq!(
            hc(&["TCP", "127.0.0.1:9"]).probe().unwrap(),
            Probe::Tcp("127.0.0.1:9".into())
        );
        assert_eq!(hc(&["RUNNING", "5"]).probe().unwrap(), Probe::Running(5));
        assert_eq!(hc(&["NONE"]).probe().unwrap(), Probe::None);
        assert_eq!(
            hc(&["curl -f localhost"]).probe().unwrap(),
            Probe::Shell("curl -f localhost".into())
        );
    }

    #[test]
    fn malformed_probes_are_clear_errors() {
        assert!(hc(&[]).probe().is_err());
        assert!(hc(&["HTTP", "ftp://x"]).probe().is_err());
        assert!(hc(&["RUNNING", "soon"]).probe().is_err());
        assert!(hc(&["PING", "x", "y"])
            .probe()
            .unwrap_err()
            .contains("PING"));
    }

    #[test]
    fn timing_defaults_fill_what_is_not_set() {
        let t = hc(&["NONE"]).timing();
        assert_eq!(t.timeout, Duration::from_secs(2));
        assert_eq!(t.interval, Timing::default().interval);
        assert_eq!(t.retries, 3);
    }
}
