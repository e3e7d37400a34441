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

/// After fork: new namespaces (a network one too when `own_network`,
/// with loopback up), private mounts, the volumes bound in.
pub(super) fn isolate(
    hostname: &[u8],
    mounts: &[Prepared],
    own_network: bool,
) -> std::io::Result<()> {
    let mut flags = CloneFlags::CLONE_NEWNS
        | CloneFlags::CLONE_NEWPID
        | CloneFlags::CLONE_NEWUTS
        | CloneFlags::CLONE_NEWIPC;
    if own_network {
        flags |= CloneFlags::CLONE_NEWNET;
    }
    unshare(flags)?;
    if own_network {
        loopback_up()?;
    }
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

/// Brings `lo` up in a new network namespace (it starts down), with two
/// ioctls and no allocation: this runs between fork and exec.
fn loopback_up() -> std::io::Result<()> {
    use nix::libc;
    // SAFETY: plain syscalls on a zeroed ifreq naming "lo"; the socket is
    // closed on every path.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let mut req: libc::ifreq = std::mem::zeroed();
        req.ifr_name[0] = b'l' as libc::c_char;
        req.ifr_name[1] = b'o' as libc::c_char;
        let mut rc = libc::ioctl(fd, libc::SIOCGIFFLAGS as _, &mut req);
        if rc == 0 {
            req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
            rc = libc::ioctl(fd, libc::SIOCSIFFLAGS as _, &req);
        }
        let err = std::io::Error::last_os_error();
        libc::close(fd);
        match rc {
            0 => Ok(()),
            _ => Err(err),
        }
    }
}
