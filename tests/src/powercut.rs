//! Power cuts for a real agent process, without device-mapper.
//!
//! A SIGKILL loses nothing the agent wrote: the kernel's page cache keeps
//! every write, synced or not. A power cut loses what was not synced, and
//! that is where an update can be lost or half applied (a journal entry
//! that outlives the files it names, a rename that never reached the
//! disk). Test machines have no dm-flakey to drop unsynced writes, so the
//! agent runs under an LD_PRELOAD shim (`tests/powercut/shim.c`) that logs
//! every change to its data dir, with the bytes and entries each change
//! replaced, and every sync. After the kill, [`PowerCut::cut`] reboots the
//! device as far as the test can (the apps die, the mounts go) and
//! [`replay`] undoes whatever a strict filesystem would not have kept
//! (the model is in [`replay`]'s module).
//!
//! Layout:
//! - [`log`]: the shim's log, parsed.
//! - [`replay`]: the power-cut model applied to the data dir.

pub mod log;
pub mod replay;
#[cfg(test)]
mod tests;

pub use replay::{Replay, Reverted};

use crate::Agent;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The shim's source.
pub fn shim_source() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("powercut/shim.c")
}

/// Compiles the shim into `dir`; the library's path.
pub fn build_shim(dir: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let lib = dir.join("libpowercut.so");
    let out = Command::new("cc")
        .args(["-shared", "-fPIC", "-pthread", "-O2", "-o"])
        .arg(&lib)
        .arg(shim_source())
        .arg("-ldl")
        .output()
        .context("running cc (the power-cut shim needs a C compiler)")?;
    if !out.status.success() {
        bail!("cc: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(lib)
}

/// One power-cut round: the shim's log, pre-images and stash for an
/// agent's data dir.
pub struct PowerCut {
    pub root: PathBuf,
    dir: PathBuf,
    lib: PathBuf,
}

impl PowerCut {
    /// A round logging under `dir` (on the data dir's filesystem: the stash
    /// hard-links into it), the shim compiled there. The filesystem is
    /// synced first: the log starts from a durable state.
    pub fn new(dir: &Path, root: &Path) -> Result<PowerCut> {
        let lib = build_shim(dir)?;
        std::fs::create_dir_all(dir.join("stash"))?;
        let fifo = dir.join("cut.fifo");
        if std::fs::symlink_metadata(&fifo).is_err() {
            let made = Command::new("mkfifo")
                .arg(&fifo)
                .status()
                .context("mkfifo")?;
            if !made.success() {
                bail!("mkfifo {}: {made}", fifo.display());
            }
        }
        Command::new("sync")
            .arg("-f")
            .arg(root)
            .status()
            .context("sync")?;
        Ok(PowerCut {
            root: root.canonicalize()?,
            dir: dir.to_path_buf(),
            lib,
        })
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join("ops.log")
    }

    /// The FIFO on which the shim takes requests to cut the power.
    fn fifo_path(&self) -> PathBuf {
        self.dir.join("cut.fifo")
    }

    /// The environment that runs a process under the shim; with `kill_at`
    /// (`<letter>:<text>[:<n>]`, see the shim) it cuts its own power there.
    pub fn env(&self, kill_at: Option<&str>) -> Vec<(String, String)> {
        let path = |p: &Path| p.display().to_string();
        let mut env = vec![
            ("LD_PRELOAD".into(), path(&self.lib)),
            ("POWERCUT_ROOT".into(), path(&self.root)),
            ("POWERCUT_LOG".into(), path(&self.log_path())),
            ("POWERCUT_STASH".into(), path(&self.dir.join("stash"))),
            ("POWERCUT_CUT".into(), path(&self.fifo_path())),
        ];
        if let Some(at) = kill_at {
            env.push(("POWERCUT_KILL".into(), at.into()));
        }
        env
    }

    /// The log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Whether the shim cut the power itself (its `K` line).
    pub fn shim_cut(&self) -> bool {
        self.log().lines().any(|l| l.starts_with("K "))
    }

    /// The power goes: the agent is killed (if the shim has not killed it
    /// already), its apps die, the data dir's mounts go, and what was not
    /// durable is undone. The agent then starts without the shim.
    ///
    /// The shim kills the agent itself, between two of its logged
    /// operations: a SIGKILL from here could land while a removal is in
    /// the kernel, which then happens unlogged (the replay found a renamed
    /// tree gone that it was to rename back).
    pub fn cut(&self, agent: &mut Agent) -> Result<Replay> {
        self.ask_shim_to_cut(agent)?;
        agent.kill9();
        agent.env.clear();
        kill_processes_under(&self.root)?;
        petrel_runtime::rootfs::unmount_all_under(&self.root)?;
        self.replay()
    }

    /// Asks the agent's shim to cut the power and waits for the agent to
    /// die; nothing to do if no shim listens (it cut the power already,
    /// or the agent runs without it).
    fn ask_shim_to_cut(&self, agent: &mut Agent) -> Result<()> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let fifo = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(self.fifo_path());
        let mut fifo = match fifo {
            Ok(f) => f,
            // ENXIO: no reader, no shim waiting
            Err(e) if e.raw_os_error() == Some(libc::ENXIO) => return Ok(()),
            Err(e) => return Err(e).context("opening the shim's cut FIFO"),
        };
        fifo.write_all(b"!").context("asking the shim to cut")?;
        drop(fifo);
        let deadline = Instant::now() + Duration::from_secs(20);
        while agent.is_alive() {
            if Instant::now() > deadline {
                bail!("the agent outlived the cut its shim was asked for");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    }

    /// Undoes what the log shows was not durable (the processes that wrote
    /// it must be gone).
    pub fn replay(&self) -> Result<Replay> {
        let entries = log::parse(&self.log())?;
        let pre = self.log_path().with_extension("log.pre");
        replay::replay(&self.root, &entries, &pre, &self.dir.join("stash"))
    }
}

/// SIGKILLs every process whose root or working directory lies under
/// `dir` (the agent's services, chrooted into its root filesystems), and
/// waits until they are gone.
pub fn kill_processes_under(dir: &Path) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let pids = processes_under(dir);
        if pids.is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("processes {pids:?} under {} outlive SIGKILL", dir.display());
        }
        for pid in &pids {
            let _ = Command::new("kill")
                .stderr(std::process::Stdio::null())
                .args(["-KILL", &pid.to_string()])
                .status();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn processes_under(dir: &Path) -> Vec<u32> {
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    procs
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let zombie = stat
                .rsplit_once(')')
                .is_some_and(|(_, s)| s.trim_start().starts_with('Z'));
            let link = |what: &str| std::fs::read_link(format!("/proc/{pid}/{what}")).ok();
            !zombie
                && [link("root"), link("cwd")]
                    .into_iter()
                    .flatten()
                    .any(|p| p.starts_with(dir))
        })
        .collect()
}
