//! Waiting for a new service instance to prove healthy: it must keep
//! running (no exit, no restart) and pass its probe (command, shell, HTTP
//! GET, TCP connect, or "running for N seconds") within its retries after
//! the start period. A service without a health check must stay up for
//! [`DEFAULT_SETTLE_S`] seconds.

use petrel_protocol::health::{Probe, Timing, DEFAULT_SETTLE_S};
use petrel_protocol::HealthCheck;
use petrel_runtime::{InstanceSpec, Runtime};
use std::time::{Duration, Instant};

/// `Ok` once healthy; `Err(reason)` when the instance is unhealthy.
pub async fn wait_healthy<R: Runtime>(
    runtime: &R,
    spec: &InstanceSpec,
    check: Option<&HealthCheck>,
) -> Result<(), String> {
    let (probe, timing) = match check {
        Some(c) => (c.probe()?, c.timing()),
        None => (Probe::Running(DEFAULT_SETTLE_S), Timing::default()),
    };
    let started = Instant::now();
    let mut failures = 0;
    loop {
        still_up(runtime, &spec.name, started.elapsed()).await?;
        let healthy = match &probe {
            Probe::None => true,
            Probe::Running(n) => started.elapsed() >= Duration::from_secs(*n),
            other => run_probe(runtime, spec, other, timing.timeout).await,
        };
        if healthy {
            return Ok(());
        }
        let counted =
            started.elapsed() >= timing.start_period && !matches!(probe, Probe::Running(_));
        if counted {
            failures += 1;
            if failures >= timing.retries {
                return Err(format!(
                    "service {} failed its health check {} times ({probe:?})",
                    spec.name, failures
                ));
            }
        }
        let pause = if matches!(probe, Probe::Running(_)) {
            Duration::from_millis(100)
        } else {
            timing.interval
        };
        tokio::time::sleep(pause).await;
    }
}

/// The instance must be running and never have restarted.
async fn still_up<R: Runtime>(runtime: &R, name: &str, up_for: Duration) -> Result<(), String> {
    match runtime.inspect(name).await {
        Some(s) if s.is_running() && s.restarts == 0 => Ok(()),
        Some(s) => Err(format!(
            "service {name} did not stay up: {}",
            what_happened(&s, up_for)
        )),
        None => Err(format!("service {name} vanished after start")),
    }
}

/// A stopped or restarting instance, as a sentence: "it exited with code
/// 0 after 2.1 s", "it restarted 3 times within 1.5 s".
fn what_happened(s: &petrel_runtime::InstanceStatus, up_for: Duration) -> String {
    let after = format!("{:.1} s", up_for.as_secs_f64());
    let code = |c: Option<i32>| c.map_or("no exit code".to_string(), |c| format!("code {c}"));
    match s.state.as_str() {
        _ if s.restarts > 0 && s.is_running() => {
            format!("it restarted {} times within {after}", s.restarts)
        }
        "exited" => format!("it exited with {} after {after}", code(s.exit_code)),
        "restarting" => format!(
            "it exited with {} after {after} and is restarting",
            code(s.exit_code)
        ),
        other => format!("it is {other} after {after}"),
    }
}

async fn run_probe<R: Runtime>(
    runtime: &R,
    spec: &InstanceSpec,
    probe: &Probe,
    timeout: Duration,
) -> bool {
    let result = match probe {
        Probe::Command(argv) => runtime.exec(spec, argv, timeout).await.map(|c| c == 0),
        Probe::Shell(script) => {
            let argv = ["/bin/sh".to_string(), "-c".into(), script.clone()];
            runtime.exec(spec, &argv, timeout).await.map(|c| c == 0)
        }
        Probe::Http(url) => Ok(tokio::time::timeout(timeout, http_ok(url))
            .await
            .unwrap_or(false)),
        Probe::Tcp(addr) => Ok(tokio::time::timeout(
            timeout,
            tokio::net::TcpStream::connect(addr.as_str()),
        )
        .await
        .is_ok_and(|c| c.is_ok())),
        Probe::Running(_) | Probe::None => Ok(true),
    };
    result.unwrap_or_else(|e| {
        tracing::warn!(instance = %spec.name, error = %e, "health probe could not run");
        false
    })
}

/// An HTTP GET: healthy on a 2xx or 3xx answer (redirects not followed).
async fn http_ok(url: &str) -> bool {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build();
    let Ok(client) = client else { return false };
    match client.get(url).send().await {
        Ok(resp) => resp.status().is_success() || resp.status().is_redirection(),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use petrel_runtime::InstanceStatus;

    fn status(state: &str, restarts: u32, exit_code: Option<i32>) -> InstanceStatus {
        InstanceStatus {
            name: "app-g2".into(),
            state: state.into(),
            pid: None,
            restarts,
            exit_code,
        }
    }

    #[test]
    fn an_unhealthy_instance_is_described_in_a_sentence() {
        let t = Duration::from_millis(2_130);
        let said = |s| what_happened(&s, t);
        assert_eq!(
            said(status("exited", 0, Some(0))),
            "it exited with code 0 after 2.1 s"
        );
        assert_eq!(
            said(status("restarting", 1, Some(3))),
            "it exited with code 3 after 2.1 s and is restarting"
        );
        assert_eq!(
            said(status("running", 2, None)),
            "it restarted 2 times within 2.1 s"
        );
        assert_eq!(
            said(status("stopped", 0, None)),
            "it is stopped after 2.1 s"
        );
    }
}
