//! Memory and CPU limits for native services through cgroups, v2 (the
//! unified hierarchy, as on Raspberry Pi OS) or v1 (separate `memory` and
//! `cpu` hierarchies). Each limited instance gets `petrel/<name>` groups;
//! the limits are written before fork, and the child joins its groups
//! after fork by writing `0` to each `cgroup.procs` (only syscalls).

use crate::runtime::InstanceSpec;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// CFS period for CPU limits (100 ms, the kernel's default).
const PERIOD_US: u64 = 100_000;

/// Which cgroup layout the machine has under `root`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    V2,
    V1,
}

fn layout(root: &Path) -> Option<Layout> {
    if root.join("cgroup.controllers").exists() {
        Some(Layout::V2)
    } else if root.join("memory").is_dir() && root.join("cpu").is_dir() {
        Some(Layout::V1)
    } else {
        None
    }
}

/// The groups of an instance: (dir, limit files to write).
fn groups(
    root: &Path,
    layout: Layout,
    spec: &InstanceSpec,
) -> Vec<(PathBuf, Vec<(&'static str, String)>)> {
    let quota = spec.cpu_millis.map(|m| u64::from(m) * PERIOD_US / 1000);
    match layout {
        Layout::V2 => {
            let mut files = Vec::new();
            if let Some(mem) = spec.memory_limit {
                files.push(("memory.max", mem.to_string()));
            }
            if let Some(q) = quota {
                files.push(("cpu.max", format!("{q} {PERIOD_US}")));
            }
            vec![(root.join("petrel").join(&spec.name), files)]
        }
        Layout::V1 => {
            let mut out = Vec::new();
            if let Some(mem) = spec.memory_limit {
                out.push((
                    root.join("memory/petrel").join(&spec.name),
                    vec![("memory.limit_in_bytes", mem.to_string())],
                ));
            }
            if let Some(q) = quota {
                let files = vec![
                    ("cpu.cfs_period_us", PERIOD_US.to_string()),
                    ("cpu.cfs_quota_us", q.to_string()),
                ];
                out.push((root.join("cpu/petrel").join(&spec.name), files));
            }
            out
        }
    }
}

/// Creates the instance's groups with their limits (before fork); returns
/// the `cgroup.procs` files the child must join. No limits, no groups.
pub(super) fn prepare(root: &Path, spec: &InstanceSpec) -> Result<Vec<CString>, String> {
    if spec.memory_limit.is_none() && spec.cpu_millis.is_none() {
        return Ok(vec![]);
    }
    let layout = layout(root).ok_or_else(|| {
        format!(
            "resource limits need cgroups, none found under {}",
            root.display()
        )
    })?;
    if layout == Layout::V2 {
        enable_v2_controllers(root)?;
    }
    let mut procs = Vec::new();
    for (dir, files) in groups(root, layout, spec) {
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("create cgroup {}: {e}", dir.display()))?;
        for (file, value) in files {
            let path = dir.join(file);
            std::fs::write(&path, &value)
                .map_err(|e| format!("write {value} to {}: {e}", path.display()))?;
        }
        let p = dir.join("cgroup.procs");
        procs.push(CString::new(p.as_os_str().as_bytes()).map_err(|e| e.to_string())?);
    }
    Ok(procs)
}

/// v2 only delegates controllers a parent enables for its children.
fn enable_v2_controllers(root: &Path) -> Result<(), String> {
    let petrel = root.join("petrel");
    std::fs::create_dir_all(&petrel)
        .map_err(|e| format!("create cgroup {}: {e}", petrel.display()))?;
    for dir in [root, petrel.as_path()] {
        let control = dir.join("cgroup.subtree_control");
        std::fs::write(&control, "+memory +cpu")
            .map_err(|e| format!("enable controllers in {}: {e}", control.display()))?;
    }
    Ok(())
}

/// After fork: moves the calling process into each group.
pub(super) fn join(procs: &[CString]) -> std::io::Result<()> {
    use nix::fcntl::{open, OFlag};
    use nix::sys::stat::Mode;
    for p in procs {
        let fd = open(
            p.as_c_str(),
            OFlag::O_WRONLY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        let written = nix::unistd::write(unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) }, b"0");
        let _ = nix::unistd::close(fd);
        written?;
    }
    Ok(())
}

/// Removes an instance's (now empty) groups; best effort.
pub(super) fn remove(root: &Path, name: &str) {
    for dir in [
        root.join("petrel").join(name),
        root.join("memory/petrel").join(name),
        root.join("cpu/petrel").join(name),
    ] {
        let _ = std::fs::remove_dir(dir);
    }
}

/// Where cgroups are mounted.
pub(super) fn root() -> &'static Path {
    Path::new("/sys/fs/cgroup")
}
