//! Namespaces and named volumes for native services (root only): the child
//! unshares mount, PID, UTS and IPC namespaces (the PID one takes effect for
//! its children: see `pidns`), makes its mount tree private so
//! nothing propagates back to the host, and bind-mounts each volume into
//! its root before chrooting. Paths are checked and turned into C strings
//! before fork; the part that runs after fork only makes syscalls.

use crate::runtime::InstanceSpec;
use nix::mount::{mount, MsFlags};
use nix::sched::{unshare, CloneFlags};
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path};

/// One bind mount, ready for use after fork.
pub(super) struct Prepared {
    source: CString,
    target: CString,
    read_only: bool,
}

/// Validates the mounts of `spec` and creates their source and target
/// directories (host side, before fork).
pub(super) fn prepare(spec: &InstanceSpec) -> Result<Vec<Prepared>, String> {
    let mut out = Vec::new();
    for m in &spec.mounts {
        let inside = Path::new(&m.target);
        let plain = inside.is_absolute()
            && inside
                .components()
                .skip(1)
                .all(|c| matches!(c, Component::Normal(_)));
        if !plain {
            return Err(format!(
                "volume target {:?} must be an absolute path without ..",
                m.target
            ));
        }
        let target = spec.rootfs.join(inside.strip_prefix("/").unwrap_or(inside));
        // The volume first: a new one is owned like the image's directory,
        // which must not have been created here yet.
        crate::volumes::create_source(&spec.rootfs, &m.source, &m.target)
            .map_err(|e| format!("create volume {}: {e}", m.source.display()))?;
        std::fs::create_dir_all(&target)
            .map_err(|e| format!("create {}: {e}", target.display()))?;
        let c = |p: &Path| CString::new(p.as_os_str().as_bytes()).map_err(|e| e.to_string());
        out.push(Prepared {
            source: c(&m.source)?,
            target: c(&target)?,
            read_only: m.read_only,
        });
    }
    Ok(out)
}

/// After fork: new namespaces, private mounts, the volumes bound in.
pub(super) fn isolate(hostname: &[u8], mounts: &[Prepared]) -> std::io::Result<()> {
    unshare(
        CloneFlags::CLONE_NEWNS
            | CloneFlags::CLONE_NEWPID
            | CloneFlags::CLONE_NEWUTS
            | CloneFlags::CLONE_NEWIPC,
    )?;
    mount(
        None::<&Path>,
        "/",
        None::<&Path>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&Path>,
    )?;
    nix::unistd::sethostname(std::ffi::OsStr::from_bytes(hostname))?;
    for m in mounts {
        mount(
            Some(m.source.as_c_str()),
            m.target.as_c_str(),
            None::<&Path>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&Path>,
        )?;
        if m.read_only {
            let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
            mount(
                None::<&Path>,
                m.target.as_c_str(),
                None::<&Path>,
                flags,
                None::<&Path>,
            )?;
        }
    }
    Ok(())
}
