//! A service's main process as the supervisor sees it: either our own child
//! (waited with `waitpid`) or a process adopted from a previous agent (not
//! our child, so watched by polling `/proc/<pid>`).
//!
//! Every service runs in its own session and process group (pgid = pid), so
//! signals go to the whole group: helpers the service started die with it.

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::time::{Duration, Instant};
use tokio::process::Child;

/// How often an adopted process is checked for liveness.
const ADOPTED_POLL: Duration = Duration::from_millis(250);

enum Handle {
    Child(Child),
    Adopted,
}

/// A running service process.
pub(super) struct Running {
    handle: Handle,
    pub pid: u32,
    /// Host pid of the service itself: the shim's grandchild when the
    /// service runs in its own PID namespace, else `pid`. What is reported.
    pub service_pid: u32,
    /// Field 22 of `/proc/<pid>/stat`: tells this process from a recycled pid.
    pub start_time: u64,
    /// When supervision of this process began (for the backoff reset).
    pub since: Instant,
}

impl Running {
    pub fn child(child: Child, pid: u32, start_time: u64) -> Running {
        let handle = Handle::Child(child);
        Running {
            handle,
            pid,
            service_pid: super::pidns::service_of(pid).unwrap_or(pid),
            start_time,
            since: Instant::now(),
        }
    }

    pub fn adopted(pid: u32, start_time: u64) -> Running {
        let handle = Handle::Adopted;
        Running {
            handle,
            pid,
            service_pid: super::pidns::service_of(pid).unwrap_or(pid),
            start_time,
            since: Instant::now(),
        }
    }

    /// Waits for the process to exit and returns its exit code (128 + signal
    /// number when killed by a signal). The code of an adopted process is
    /// unknown (`None`). Cancel-safe.
    pub async fn wait(&mut self) -> Option<i32> {
        match &mut self.handle {
            Handle::Child(child) => match child.wait().await {
                Ok(status) => status.code().or(status.signal().map(|s| 128 + s)),
                Err(e) => {
                    tracing::warn!(pid = self.pid, error = %e, "waiting for service process failed");
                    None
                }
            },
            Handle::Adopted => {
                while is_alive(self.pid, self.start_time) {
                    tokio::time::sleep(ADOPTED_POLL).await;
                }
                None
            }
        }
    }

    /// SIGTERM to the group, SIGKILL after `grace`, then waits for the exit.
    pub async fn terminate(&mut self, grace: Duration) -> Option<i32> {
        self.signal_group(Signal::SIGTERM);
        let exited = tokio::time::timeout(grace, self.wait()).await.ok();
        // Escalation if the grace ran out; otherwise it removes whatever the
        // group left behind.
        self.signal_group(Signal::SIGKILL);
        match exited {
            Some(code) => code,
            None => self.wait().await,
        }
    }

    /// Kills what is left of the group after its leader exited: like a
    /// container whose init exits, a service does not leave helpers behind.
    pub fn kill_leftovers(&self) {
        self.signal_group(Signal::SIGKILL);
    }

    fn signal_group(&self, signal: Signal) {
        signal_group(self.pid, signal);
    }
}

/// Sends `signal` to the process group led by `pgid`.
fn signal_group(pgid: u32, signal: Signal) {
    // pid 0 or 1 would signal our own group or init: never do that.
    let Ok(pgid) = i32::try_from(pgid) else {
        return;
    };
    if pgid > 1 {
        if let Err(e) = killpg(Pid::from_raw(pgid), signal) {
            tracing::debug!(pgid, ?signal, error = %e, "signalling service group");
        }
    }
}

/// Whether `pid` is a service process started from `rootfs`: a session
/// leader (every service is spawned with `setsid`) whose root directory is
/// the rootfs (root mode, chrooted) or whose working dir lies in it.
pub(super) fn runs_from(pid: u32, rootfs: &std::path::Path) -> bool {
    let Ok(rootfs) = rootfs.canonicalize() else {
        return false;
    };
    let link = |what: &str| fs::read_link(format!("/proc/{pid}/{what}")).ok();
    let inside = link("root").is_some_and(|r| r == rootfs)
        || link("cwd").is_some_and(|c| c.starts_with(&rootfs));
    let leader = nix::unistd::getsid(Some(Pid::from_raw(pid as i32)))
        .is_ok_and(|sid| sid.as_raw() as u32 == pid);
    inside && leader
}

/// SIGKILL to the process group led by `pid` (never our own group or init).
pub(super) fn kill_group(pid: u32) {
    signal_group(pid, Signal::SIGKILL);
}

/// Start time (field 22 of `/proc/<pid>/stat`) of a process, zombie or not.
pub(super) fn start_time(pid: u32) -> Option<u64> {
    stat(pid).map(|(_, start)| start)
}

/// Whether `pid` is still the process that started at `start_time` and has
/// not exited (a zombie has exited; its parent just has not reaped it yet).
pub(super) fn is_alive(pid: u32, start_time: u64) -> bool {
    stat(pid).is_some_and(|(state, start)| start == start_time && !matches!(state, 'Z' | 'X'))
}

fn stat(pid: u32) -> Option<(char, u64)> {
    parse_stat(&fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// State (field 3) and start time (field 22) of a `/proc/<pid>/stat` line.
/// The command name (field 2) may contain spaces and parentheses, so fields
/// are counted from its last `)`.
fn parse_stat(text: &str) -> Option<(char, u64)> {
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace();
    let state = fields.next()?.chars().next()?;
    let start = fields.nth(22 - 4)?.parse().ok()?;
    Some((state, start))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_last_parenthesis() {
        let line = "42 (a) b) (c) S 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 \
                    200 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 3 0 0";
        assert_eq!(parse_stat(line), Some(('S', 987654)));
    }

    #[test]
    fn truncated_stat_lines_are_not_parsed() {
        assert_eq!(parse_stat("42 (x) S 1 2 3"), None);
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn our_own_process_is_alive_and_a_wrong_start_time_is_not() {
        let pid = std::process::id();
        let start = start_time(pid).expect("own stat is readable");
        assert!(is_alive(pid, start));
        assert!(!is_alive(pid, start + 1));
    }
}
