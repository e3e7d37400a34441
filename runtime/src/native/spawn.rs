//! Launching one service process from an [`InstanceSpec`].
//!
//! Isolation depends on privileges:
//! - as root, the child chroots into `spec.rootfs` (in a `pre_exec` hook that
//!   makes only async-signal-safe calls) and then changes to the working dir;
//! - otherwise it runs `rootfs/<argv0>` with current dir `rootfs/<working_dir>`
//!   and **no isolation**: the process sees the host filesystem, and absolute
//!   symlinks inside the rootfs point at the host. This mode exists for
//!   development and tests, not for production devices.
//!
//! As root the service then runs as its user (the image's `USER`), with
//! Docker's default capabilities, `no_new_privs` and a seccomp filter
//! ([`super::confine`]); a probe is confined the same way. Otherwise it
//! runs as the agent's user.
//!
//! In both modes the process gets exactly `spec.env` (plus a default `PATH`),
//! stdin from `/dev/null`, stdout and stderr appended to its log, and its own
//! session (`setsid`) so it survives the agent being killed.
//!
//! The rootfs is used as it is, apart from `/proc`, which the namespace's
//! init mounts when the image has the directory, and `/dev`, a tmpfs with
//! the usual nodes (root mode, [`super::devfs`]); nothing is mounted on
//! `/sys`.

use super::confine::Confinement;
use super::process::{self, Running};
use super::record::{io_error, Paths};
use crate::runtime::{InstanceSpec, RuntimeError};
use nix::unistd::{chdir, chroot, geteuid, setsid};
use std::ffi::CString;
use std::fs::{self, File, OpenOptions};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Component, Path, PathBuf};
use std::process::{Command, Stdio};

/// `PATH` given to services whose spec does not set one.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// A log larger than this at spawn time is rotated to `<name>.log.1`.
const LOG_ROTATE_BYTES: u64 = 1024 * 1024;

/// Spawns the service described by `spec`, logging to its log file; the
/// child writes its own pid to the instance's pid file before anything else.
pub(super) async fn spawn(spec: &InstanceSpec, paths: &Paths) -> Result<Running, RuntimeError> {
    let log = &paths.log(&spec.name);
    let pid_file = paths.open_pid_file(&spec.name)?;
    let fail = |reason: String| RuntimeError::Start {
        name: spec.name.clone(),
        reason,
    };
    let (argv0, args) = spec
        .argv
        .split_first()
        .ok_or_else(|| fail("empty argv".into()))?;
    let program = resolve_program(spec, argv0).map_err(fail)?;
    let stdout = open_log(log)?;
    let stderr = stdout
        .try_clone()
        .map_err(io_error("duplicate log file", log))?;
    let mut cmd = Command::new(&program);
    cmd.arg0(argv0)
        .args(args)
        .env_clear()
        .envs(service_env(spec))
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr);
    if geteuid().is_root() {
        chroot_into(&mut cmd, spec, pid_file).map_err(fail)?;
    } else {
        if let Some(user) = spec.user() {
            tracing::warn!(name = %spec.name, user, "not root: the service runs as the agent's user, not its own");
        }
        if !spec.mounts.is_empty() || spec.memory_limit.is_some() || spec.cpu_millis.is_some() {
            return Err(fail(
                "named volumes and resource limits need the agent to run as root".into(),
            ));
        }
        cmd.current_dir(host_path(&spec.rootfs, &working_dir(spec)));
        // SAFETY: write and setsid are async-signal-safe and touch no
        // shared state.
        unsafe {
            cmd.pre_exec(move || {
                write_own_pid(&pid_file)?;
                Ok(setsid().map(drop)?)
            })
        };
    }
    let child = spawn_retrying(tokio::process::Command::from(cmd))
        .await
        .map_err(|e| fail(format!("spawn {}: {e}", program.display())))?;
    let pid = child
        .id()
        .ok_or_else(|| fail("process vanished at spawn".into()))?;
    // Not reaped before we wait for it, so its stat is readable even if it
    // already exited.
    match process::start_time(pid) {
        Some(start) => Ok(Running::child(child, pid, start)),
        None => {
            let mut running = Running::child(child, pid, 0);
            running.kill_leftovers();
            running.wait().await;
            Err(fail(format!("cannot read /proc/{pid}/stat")))
        }
    }
}

/// Runs a probe command with `spec`'s root, environment and working dir;
/// its exit code, or -1 when it outlives `timeout` (it is then killed).
pub(super) async fn run_probe(
    spec: &InstanceSpec,
    argv: &[String],
    timeout: std::time::Duration,
) -> Result<i32, RuntimeError> {
    let probe = InstanceSpec {
        argv: argv.to_vec(),
        ..spec.clone()
    };
    let fail = |reason: String| RuntimeError::Start {
        name: spec.name.clone(),
        reason: format!("probe: {reason}"),
    };
    let (argv0, args) = probe
        .argv
        .split_first()
        .ok_or_else(|| fail("empty argv".into()))?;
    let program = resolve_program(&probe, argv0).map_err(fail)?;
    let mut cmd = Command::new(&program);
    cmd.arg0(argv0)
        .args(args)
        .env_clear()
        .envs(service_env(&probe))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if geteuid().is_root() {
        // A probe is not an instance: its pid goes nowhere.
        let null = OpenOptions::new().write(true).open("/dev/null");
        let null = null.map_err(|e| fail(format!("open /dev/null: {e}")))?;
        chroot_into(&mut cmd, &probe, null).map_err(fail)?;
    } else {
        cmd.current_dir(host_path(&probe.rootfs, &working_dir(&probe)));
    }
    let mut cmd = tokio::process::Command::from(cmd);
    cmd.kill_on_drop(true);
    let mut child = spawn_retrying(cmd)
        .await
        .map_err(|e| fail(format!("spawn {}: {e}", program.display())))?;
    match tokio::time::timeout(timeout, child.wait()).await {
        Ok(Ok(status)) => Ok(status.code().unwrap_or(-1)),
        Ok(Err(e)) => Err(fail(e.to_string())),
        Err(_) => Ok(-1),
    }
}

/// Spawns, retrying briefly on ETXTBSY: a binary just written (a rootfs
/// being assembled) can still be open for writing in a child forked
/// concurrently by another thread, until that child execs.
async fn spawn_retrying(
    mut cmd: tokio::process::Command,
) -> std::io::Result<tokio::process::Child> {
    let mut tries = 0;
    loop {
        match cmd.spawn() {
            Err(e) if e.raw_os_error() == Some(nix::libc::ETXTBSY) && tries < 20 => {
                tries += 1;
                tokio::time::sleep(std::time::Duration::from_millis(25)).await;
            }
            other => return other,
        }
    }
}

/// Root mode: the child gets its own mount, PID, UTS and IPC namespaces
/// (its hostname is the instance name), the named volumes bind-mounted into
/// its root, then chroots and splits into shim, init and service
/// ([`super::pidns`]); the service then confines itself and becomes its
/// user ([`super::confine`]) right before exec. The program path is
/// resolved inside the rootfs.
fn chroot_into(cmd: &mut Command, spec: &InstanceSpec, pid_file: File) -> Result<(), String> {
    let cstring = |bytes: &[u8]| CString::new(bytes).map_err(|e| e.to_string());
    let root = cstring(spec.rootfs.as_os_str().as_bytes())?;
    let dir = cstring(working_dir(spec).as_os_str().as_bytes())?;
    let host = spec.name.clone().into_bytes();
    let own_network = spec.network == petrel_protocol::NetworkMode::None;
    let confinement = Confinement::prepare(spec)?;
    let mounts = super::mounts::prepare(spec)?;
    let dev = super::devfs::plan(&spec.rootfs)?;
    let cgroups = super::cgroups::prepare(super::cgroups::root(), spec)?;
    // SAFETY: only syscalls run after fork (setsid, unshare, mount, mkdir,
    // open, close, symlink, sethostname, chroot, chdir, fork, waitpid,
    // prctl, capget/capset, setgroups, setgid, setuid); every path and
    // the seccomp program were allocated before fork, and errors become
    // io::Error without allocating.
    unsafe {
        cmd.pre_exec(move || {
            write_own_pid(&pid_file)?;
            setsid()?;
            super::cgroups::join(&cgroups)?;
            super::mounts::isolate(&host, &mounts, own_network)?;
            super::devfs::mount(&dev)?;
            chroot(root.as_c_str())?;
            chdir(dir.as_c_str())?;
            super::pidns::split()?;
            confinement.apply()
        })
    };
    Ok(())
}

/// In the child after fork: writes its pid, in decimal, to `file` (opened
/// and emptied before the fork, closed on exec), allocating nothing.
fn write_own_pid(file: &File) -> std::io::Result<()> {
    let mut buf = [0u8; 10];
    let mut at = buf.len();
    let mut pid = std::process::id();
    loop {
        at -= 1;
        buf[at] = b'0' + (pid % 10) as u8;
        pid /= 10;
        if pid == 0 {
            break;
        }
    }
    std::io::Write::write_all(&mut &*file, &buf[at..])
}

/// The service's environment: `spec.env`, plus `PATH` if it sets none.
fn service_env(spec: &InstanceSpec) -> Vec<(String, String)> {
    let mut env = spec.env.clone();
    if !env.iter().any(|(key, _)| key == "PATH") {
        env.push(("PATH".into(), DEFAULT_PATH.into()));
    }
    env
}

/// The program to exec: as root its path inside the rootfs, otherwise its
/// path on the host. Fails if argv0 does not exist in the rootfs.
fn resolve_program(spec: &InstanceSpec, argv0: &str) -> Result<PathBuf, String> {
    // An overlay rootfs is unmounted by a reboot; the agent restarting the
    // current release after one lands here first.
    crate::rootfs::ensure_mounted(&spec.rootfs)
        .map_err(|e| format!("mount rootfs {}: {e}", spec.rootfs.display()))?;
    if !spec.rootfs.is_dir() {
        return Err(format!(
            "rootfs {} is not a directory",
            spec.rootfs.display()
        ));
    }
    if !no_parent_dirs(&working_dir(spec)) {
        return Err("working dir must not contain ..".into());
    }
    let inside = find_in_rootfs(spec, argv0)
        .ok_or_else(|| format!("executable {argv0} not found in {}", spec.rootfs.display()))?;
    if geteuid().is_root() {
        Ok(inside)
    } else {
        Ok(host_path(&spec.rootfs, &inside))
    }
}

/// Absolute in-rootfs path of `argv0`: relative to the working dir if it
/// contains a `/`, else searched in the service's `PATH`.
fn find_in_rootfs(spec: &InstanceSpec, argv0: &str) -> Option<PathBuf> {
    let exists = |inside: &Path| host_path(&spec.rootfs, inside).symlink_metadata().is_ok();
    if argv0.contains('/') {
        let inside = working_dir(spec).join(argv0);
        return (no_parent_dirs(&inside) && exists(&inside)).then_some(inside);
    }
    let env = service_env(spec);
    let path = env
        .iter()
        .rev()
        .find(|(key, _)| key == "PATH")
        .map_or("", |(_, v)| v);
    path.split(':')
        .filter(|dir| dir.starts_with('/'))
        .map(|dir| Path::new(dir).join(argv0))
        .find(|inside| no_parent_dirs(inside) && exists(inside))
}

/// Absolute working dir inside the rootfs (`/` by default).
fn working_dir(spec: &InstanceSpec) -> PathBuf {
    let dir = spec.working_dir.as_deref().unwrap_or("/");
    Path::new("/").join(dir)
}

/// `inside` (absolute, within the rootfs) as a host path.
fn host_path(rootfs: &Path, inside: &Path) -> PathBuf {
    rootfs.join(inside.strip_prefix("/").unwrap_or(inside))
}

/// `..` would let a spec name files outside its rootfs in non-root mode.
fn no_parent_dirs(path: &Path) -> bool {
    !path.components().any(|c| c == Component::ParentDir)
}

/// Opens the log for appending, first rotating it if it grew too large.
fn open_log(log: &Path) -> Result<File, RuntimeError> {
    if fs::metadata(log).is_ok_and(|m| m.len() > LOG_ROTATE_BYTES) {
        let old = log.with_extension("log.1");
        fs::rename(log, &old).map_err(io_error("rotate log to", &old))?;
    }
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(io_error("open log", log))
}
