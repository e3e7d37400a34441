//! The supervision task of one instance: waits for its process to exit and
//! restarts it as `spec.restart` says, with exponential backoff, until the
//! policy gives up or a stop is requested.
//!
//! Only this task touches the process (wait, signal, reap), so stopping is a
//! request sent over a watch channel (carrying the grace period) followed by
//! awaiting the task. Every new pid is persisted before it is reported, so a
//! restarted agent can adopt it.

use super::process::Running;
use super::record::{Paths, Record};
use super::spawn::spawn;
use crate::runtime::{InstanceSpec, InstanceStatus};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::watch;

pub(super) const RUNNING: &str = "running";
pub(super) const RESTARTING: &str = "restarting";
pub(super) const EXITED: &str = "exited";
pub(super) const STOPPED: &str = "stopped";

/// First restart delay; doubled after each restart up to [`BACKOFF_MAX`].
const BACKOFF_INITIAL: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// A process that ran this long resets the backoff: it was healthy.
const BACKOFF_RESET_AFTER: Duration = Duration::from_secs(10);

/// Status shared between the supervisor and `inspect`/`list`.
pub(super) type SharedStatus = Arc<Mutex<InstanceStatus>>;

/// Stop requests: `Some(grace)` once the instance must stop.
pub(super) type StopReceiver = watch::Receiver<Option<Duration>>;

pub(super) struct Supervisor {
    pub spec: InstanceSpec,
    pub paths: Paths,
    pub status: SharedStatus,
    pub stop: StopReceiver,
}

impl Supervisor {
    /// Supervises `current`, or starts by respawning if it is `None`.
    pub async fn run(mut self, mut current: Option<Running>) {
        let mut backoff = Backoff::default();
        loop {
            let mut running = match current.take() {
                Some(running) => running,
                None => match self.respawn(&mut backoff).await {
                    Some(running) => running,
                    None => return,
                },
            };
            let code = tokio::select! {
                code = running.wait() => code,
                grace = stop_requested(&mut self.stop) => {
                    running.terminate(grace).await;
                    return self.update(|s| set_state(s, STOPPED, None));
                }
            };
            running.kill_leftovers();
            if running.since.elapsed() >= BACKOFF_RESET_AFTER {
                backoff = Backoff::default();
            }
            if !self.after_exit(code) {
                return;
            }
        }
    }

    /// Records an exit; returns whether the policy restarts the service.
    fn after_exit(&self, code: Option<i32>) -> bool {
        let restart = self.spec.restart.restarts_after(code == Some(0));
        tracing::info!(name = %self.spec.name, ?code, restart, "service exited");
        if restart {
            self.update(|s| set_state(s, RESTARTING, code));
        } else {
            self.exited(code);
        }
        restart
    }

    /// Waits out the backoff and spawns again, retrying failed spawns while
    /// the policy allows restarts after a failure.
    async fn respawn(&mut self, backoff: &mut Backoff) -> Option<Running> {
        loop {
            tokio::select! {
                () = tokio::time::sleep(backoff.next_delay()) => {}
                _ = stop_requested(&mut self.stop) => {
                    self.update(|s| set_state(s, STOPPED, None));
                    return None;
                }
            }
            self.update(|s| s.restarts += 1);
            match spawn(&self.spec, &self.paths).await {
                Ok(running) => {
                    self.persist(Some(&running));
                    self.update(|s| set_running(s, running.service_pid));
                    return Some(running);
                }
                Err(e) => tracing::warn!(name = %self.spec.name, error = %e, "restart failed"),
            }
            if !self.spec.restart.restarts_after(false) {
                self.exited(None);
                return None;
            }
        }
    }

    fn exited(&self, code: Option<i32>) {
        self.update(|s| set_state(s, EXITED, code));
        self.persist(None);
    }

    /// Persists the current pid (or none) with the status counters.
    fn persist(&self, running: Option<&Running>) {
        let status = self.snapshot();
        let record = Record {
            spec: self.spec.clone(),
            pid: running.map(|r| r.pid),
            start_time: running.map(|r| r.start_time),
            restarts: status.restarts,
            exit_code: status.exit_code,
        };
        if let Err(e) = self.paths.write_record(&record) {
            tracing::warn!(name = %self.spec.name, error = %e, "cannot persist instance record");
        }
    }

    fn snapshot(&self) -> InstanceStatus {
        snapshot(&self.status)
    }

    fn update(&self, change: impl FnOnce(&mut InstanceStatus)) {
        update(&self.status, change);
    }
}

pub(super) fn snapshot(status: &SharedStatus) -> InstanceStatus {
    status
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone()
}

pub(super) fn update(status: &SharedStatus, change: impl FnOnce(&mut InstanceStatus)) {
    change(&mut status.lock().unwrap_or_else(PoisonError::into_inner));
}

pub(super) fn set_running(status: &mut InstanceStatus, pid: u32) {
    status.state = RUNNING.into();
    status.pid = Some(pid);
    status.exit_code = None;
}

pub(super) fn set_state(status: &mut InstanceStatus, state: &str, code: Option<i32>) {
    status.state = state.into();
    status.pid = None;
    status.exit_code = code;
}

/// Resolves with the grace period once a stop is requested; never resolves
/// if the sender is gone (the runtime was dropped: services outlive it).
async fn stop_requested(stop: &mut StopReceiver) -> Duration {
    loop {
        if let Some(grace) = *stop.borrow_and_update() {
            return grace;
        }
        if stop.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// Exponential restart delay: 100 ms doubling to 10 s.
struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            next: BACKOFF_INITIAL,
        }
    }
}

impl Backoff {
    fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (delay * 2).min(BACKOFF_MAX);
        delay
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_100ms_up_to_10s() {
        let mut backoff = Backoff::default();
        let delays: Vec<_> = (0..10).map(|_| backoff.next_delay().as_millis()).collect();
        assert_eq!(
            delays,
            [100, 200, 400, 800, 1600, 3200, 6400, 10_000, 10_000, 10_000]
        );
    }
}
