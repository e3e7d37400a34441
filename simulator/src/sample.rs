//! Building the sample application's image directory: the binary, the
//! shared libraries it links (found with `ldd`), and `version.txt`, laid
//! out so the program runs chrooted inside it.

use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

/// The `petrel-sample-app` binary built beside the running executable.
pub fn sample_app_binary() -> Result<PathBuf> {
    crate::bins::workspace_binary("petrel-simulator", "petrel-sample-app")
}

/// Lays out an image directory for version `version` of the sample app:
/// `/app/sample-app`, `/app/version.txt`, and its libraries.
pub fn app_dir(bin: &Path, version: &str, dest: &Path) -> Result<()> {
    let app = dest.join("app");
    std::fs::create_dir_all(&app).with_context(|| format!("creating {}", app.display()))?;
    std::fs::copy(bin, app.join("sample-app"))
        .with_context(|| format!("copying {}", bin.display()))?;
    std::fs::write(app.join("version.txt"), format!("{version}\n"))?;
    petrel_runtime::hostbin::copy_libs(bin, dest)
        .with_context(|| format!("copying the libraries of {}", bin.display()))?;
    Ok(())
}

/// What a heartbeat file says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heartbeat {
    pub version: String,
    pub pid: u32,
    pub time_ms: u64,
}

/// Reads `<rootfs>/app/heartbeat`.
pub fn read_heartbeat(rootfs: &Path) -> Option<Heartbeat> {
    let text = std::fs::read_to_string(rootfs.join("app/heartbeat")).ok()?;
    let field = |k: &str| {
        text.split_whitespace()
            .find_map(|kv| kv.strip_prefix(k)?.strip_prefix('=').map(str::to_string))
    };
    Some(Heartbeat {
        version: field("version")?,
        pid: field("pid")?.parse().ok()?,
        time_ms: field("time_ms")?.parse().ok()?,
    })
}

/// Host pid of the live process that wrote `beat` under `rootfs`.
///
/// The app writes the pid it sees, which under the native runtime's PID
/// namespace is its pid inside (2, below the runtime's init), the same on
/// every device. So the writer is found on the host: the live process whose
/// innermost pid (last field of `NSpid`) is `beat.pid` and whose root
/// directory, or when it runs unisolated its executable, lies in `rootfs`.
/// `None` if there is none, or more than one (then the heartbeat does not
/// tell which wrote it).
pub fn heartbeat_writer(rootfs: &Path, beat: &Heartbeat) -> Option<u32> {
    let found: Vec<u32> = processes_in(rootfs)
        .into_iter()
        .filter(|p| p.inner_pid == beat.pid)
        .map(|p| p.pid)
        .collect();
    match found[..] {
        [pid] => Some(pid),
        _ => None,
    }
}

/// A live process running from a rootfs, as the host sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootfsProcess {
    pub pid: u32,
    /// Its pid in its innermost PID namespace.
    pub inner_pid: u32,
    pub pgid: u32,
}

/// Every live process whose root directory (or, unisolated, executable)
/// lies in `rootfs`.
pub fn processes_in(rootfs: &Path) -> Vec<RootfsProcess> {
    let Ok(rootfs) = rootfs.canonicalize() else {
        return vec![];
    };
    let Ok(proc_dir) = std::fs::read_dir("/proc") else {
        return vec![];
    };
    let pids = proc_dir
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok());
    pids.filter_map(|pid: u32| {
        let link = |what: &str| std::fs::read_link(format!("/proc/{pid}/{what}")).ok();
        let inside = link("root").is_some_and(|root| root == rootfs)
            || link("exe").is_some_and(|exe| exe.starts_with(&rootfs));
        inside.then_some(())?;
        Some(RootfsProcess {
            pid,
            inner_pid: innermost_pid(pid)?,
            pgid: process_group(pid)?,
        })
    })
    .collect()
}

/// The pid `pid` has in its own (innermost) PID namespace.
fn innermost_pid(pid: u32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find_map(|l| l.strip_prefix("NSpid:"))?;
    line.split_whitespace().last()?.parse().ok()
}

/// Process group of a live (not zombie) process: the native runtime's shim
/// leads the group of a namespaced service, so this links a heartbeat's
/// writer to the pid in the runtime's instance record.
pub fn process_group(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut fields = stat.get(stat.rfind(')')? + 1..)?.split_whitespace();
    let state = fields.next()?;
    let pgid = fields.nth(1)?.parse().ok()?;
    (state != "Z" && state != "X").then_some(pgid)
}
