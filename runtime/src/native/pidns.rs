//! A PID namespace for each native service (root only), with an init.
//!
//! `unshare(CLONE_NEWPID)` puts only the caller's *children* in the new
//! namespace, and the first of them becomes its pid 1, which the kernel
//! shields from every signal it has no handler for, SIGTERM included. A
//! service run as pid 1 would therefore ignore the agent's SIGTERM. So the
//! spawned child forks twice, the way `docker run --init` does:
//!
//! - the **shim** (the agent's direct child, in the host namespace) is the
//!   process the supervisor waits for and adopts: it ignores termination
//!   signals and exits with the service's status (128 + signal if killed);
//! - the **init** (pid 1 inside) mounts `/proc` if the image has the
//!   directory, reaps orphans, and exits when the service exits, which makes
//!   the kernel kill whatever the service left in the namespace; it dies
//!   with the shim (`PR_SET_PDEATHSIG`);
//! - the **service** (pid 2 inside) returns from the hook and is exec'd.
//!
//! All three share the shim's process group, so the supervisor's `killpg`
//! SIGTERM reaches the service directly (the init ignores it, the shim
//! ignores it on purpose) and SIGKILL ends all three. Everything here runs
//! between fork and exec, so it makes syscalls only and allocates nothing.

use nix::mount::{mount, MsFlags};
use nix::sys::signal::{signal, SigHandler, Signal};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};
use std::path::Path;

/// Signals the shim ignores: they are meant for the service, which gets
/// them through the process group.
const SHIM_IGNORES: [Signal; 4] = [
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGHUP,
    Signal::SIGQUIT,
];

/// Called in the spawned child after `unshare(CLONE_NEWPID)`, chroot and
/// chdir. Returns only in the service process, which then execs.
///
/// # Safety
/// Must run between fork and exec in a single-threaded child.
pub(super) unsafe fn split() -> std::io::Result<()> {
    match fork()? {
        ForkResult::Parent { child } => shim(child),
        ForkResult::Child => {}
    }
    // pid 1 of the namespace.
    // (The shim dying before this line is the one window in which the init
    // could outlive it; the supervisor's group SIGKILL still reaches it.)
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)?;
    if Path::new("/proc").is_dir() {
        // Best effort: the image's own tools may read /proc; the service
        // runs without it when the mount is refused.
        let _ = mount(
            Some("proc"),
            "/proc",
            Some("proc"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            None::<&str>,
        );
    }
    match fork()? {
        ForkResult::Parent { child } => init(child),
        ForkResult::Child => Ok(()),
    }
}

/// The host-side process: waits for the init and mirrors its exit.
fn shim(init: Pid) -> ! {
    close_inherited_fds();
    for sig in SHIM_IGNORES {
        // SAFETY: SIG_IGN installs no handler code.
        let _ = unsafe { signal(sig, SigHandler::SigIgn) };
    }
    loop {
        match waitpid(init, None) {
            Ok(status) => {
                if let Some(code) = exit_code(status) {
                    exit(code)
                }
            }
            Err(nix::errno::Errno::EINTR) => {}
            Err(_) => exit(127),
        }
    }
}

/// pid 1: reaps every child; exits with the service's status.
fn init(service: Pid) -> ! {
    close_inherited_fds();
    loop {
        match waitpid(None::<Pid>, None) {
            Ok(status) if status.pid() == Some(service) => {
                if let Some(code) = exit_code(status) {
                    exit(code)
                }
            }
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(_) => exit(127),
        }
    }
}

/// The shell convention: the exit code, or 128 + the signal number.
fn exit_code(status: WaitStatus) -> Option<i32> {
    match status {
        WaitStatus::Exited(_, code) => Some(code),
        WaitStatus::Signaled(_, sig, _) => Some(128 + sig as i32),
        _ => None,
    }
}

/// Closes every descriptor above stderr: the shim and init never exec, so
/// they must not keep std's exec-status pipe open (the agent's spawn would
/// wait for its EOF forever), nor anything else of the agent's.
fn close_inherited_fds() {
    // SAFETY: close_range only closes descriptors.
    let closed = unsafe { nix::libc::close_range(3, u32::MAX, 0) };
    if closed != 0 {
        for fd in 3..4096 {
            // SAFETY: closing a descriptor that may not exist is harmless.
            unsafe { nix::libc::close(fd) };
        }
    }
}

fn exit(code: i32) -> ! {
    // SAFETY: _exit skips atexit handlers and destructors, which belong to
    // the agent this process was forked from.
    unsafe { nix::libc::_exit(code) }
}

/// Host pid of the service under the shim `shim` (its grandchild), read
/// from `/proc/<pid>/task/<pid>/children`; `None` outside a namespace or
/// once it has gone.
pub(super) fn service_of(shim: u32) -> Option<u32> {
    let init = first_child(shim)?;
    first_child(init)
}

fn first_child(pid: u32) -> Option<u32> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).ok()?;
    text.split_ascii_whitespace().next()?.parse().ok()
}
