//! The `/dev` of a native service (root mode), as Docker gives one: layers
//! never create device nodes (the unpacker records and skips them), so the
//! runtime mounts a fresh tmpfs on the rootfs's `/dev` inside the service's
//! own mount namespace, with:
//! - `null`, `zero`, `full`, `random`, `urandom`, `tty`: the host's nodes,
//!   bind-mounted onto empty files;
//! - `console`: the host's `/dev/null` (services have no terminal);
//! - `pts/` (a new devpts instance, where the kernel allows one) and
//!   `ptmx -> pts/ptmx`;
//! - `shm/`: its own tmpfs, 1777;
//! - `fd`, `stdin`, `stdout`, `stderr`: links into `/proc/self/fd`.
//!
//! [`plan`] runs before fork: it checks the rootfs's `/dev` is a real
//! directory (a symlink there would aim the mounts elsewhere), creates it
//! if missing and turns every path into a C string. [`mount`] runs after
//! fork, in the new mount namespace and before chroot, and only makes
//! syscalls.

use nix::fcntl::{open, OFlag};
use nix::mount::{mount as mount2, MsFlags};
use nix::sys::stat::Mode;
use nix::unistd::{close, mkdir, symlinkat};
use std::ffi::{CStr, CString};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Host device nodes bound into every service's `/dev`.
const NODES: [&str; 6] = ["null", "zero", "full", "random", "urandom", "tty"];
/// Links created in `/dev`: (link name, target).
const LINKS: [(&str, &str); 5] = [
    ("ptmx", "pts/ptmx"),
    ("fd", "/proc/self/fd"),
    ("stdin", "/proc/self/fd/0"),
    ("stdout", "/proc/self/fd/1"),
    ("stderr", "/proc/self/fd/2"),
];

/// One step of building `/dev`, its paths ready for use after fork.
enum Step {
    Tmpfs {
        target: CString,
        flags: MsFlags,
        data: &'static CStr,
    },
    Mkdir(CString),
    Bind {
        source: CString,
        target: CString,
    },
    Symlink {
        target: CString,
        link: CString,
    },
    /// A devpts instance: skipped where the kernel refuses it.
    Devpts(CString),
}

/// The steps of one service's `/dev`.
pub(super) struct DevPlan(Vec<Step>);

fn c(path: &Path) -> Result<CString, String> {
    CString::new(path.as_os_str().as_bytes()).map_err(|e| e.to_string())
}

/// Host side, before fork: the plan for the rootfs at `rootfs`.
pub(super) fn plan(rootfs: &Path) -> Result<DevPlan, String> {
    let dev = rootfs.join("dev");
    match std::fs::symlink_metadata(&dev) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => return Err(format!("{} is not a directory", dev.display())),
        Err(_) => std::fs::create_dir(&dev).map_err(|e| format!("{}: {e}", dev.display()))?,
    }
    let mut steps = vec![Step::Tmpfs {
        target: c(&dev)?,
        flags: MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME,
        data: c"mode=755,size=65536k",
    }];
    for node in NODES {
        steps.push(Step::Bind {
            source: c(&Path::new("/dev").join(node))?,
            target: c(&dev.join(node))?,
        });
    }
    steps.push(Step::Bind {
        source: c"/dev/null".into(),
        target: c(&dev.join("console"))?,
    });
    steps.push(Step::Mkdir(c(&dev.join("pts"))?));
    steps.push(Step::Devpts(c(&dev.join("pts"))?));
    steps.push(Step::Mkdir(c(&dev.join("shm"))?));
    steps.push(Step::Tmpfs {
        target: c(&dev.join("shm"))?,
        flags: MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        data: c"mode=1777,size=65536k",
    });
    for (name, target) in LINKS {
        steps.push(Step::Symlink {
            target: CString::new(target).map_err(|e| e.to_string())?,
            link: c(&dev.join(name))?,
        });
    }
    Ok(DevPlan(steps))
}

/// After fork, in the service's mount namespace: builds `/dev`.
pub(super) fn mount(plan: &DevPlan) -> std::io::Result<()> {
    for step in &plan.0 {
        match step {
            Step::Tmpfs {
                target,
                flags,
                data,
            } => mount2(
                Some(c"tmpfs"),
                target.as_c_str(),
                Some(c"tmpfs"),
                *flags,
                Some(*data),
            )?,
            Step::Mkdir(path) => mkdir(path.as_c_str(), Mode::from_bits_truncate(0o755))?,
            Step::Bind { source, target } => {
                // The bind target must exist: an empty file on the tmpfs.
                let flags = OFlag::O_CREAT | OFlag::O_WRONLY | OFlag::O_CLOEXEC;
                close(open(
                    target.as_c_str(),
                    flags,
                    Mode::from_bits_truncate(0o666),
                )?)?;
                let bind = MsFlags::MS_BIND;
                mount2(
                    Some(source.as_c_str()),
                    target.as_c_str(),
                    None::<&CStr>,
                    bind,
                    None::<&CStr>,
                )?;
            }
            Step::Symlink { target, link } => symlinkat(target.as_c_str(), None, link.as_c_str())?,
            Step::Devpts(path) => {
                let flags = MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC;
                let data = c"newinstance,ptmxmode=0666,mode=0620";
                // Not every kernel or sandbox grants a new devpts; a
                // service without a pty is still a working service.
                let _ = mount2(
                    Some(c"devpts"),
                    path.as_c_str(),
                    Some(c"devpts"),
                    flags,
                    Some(data),
                );
            }
        }
    }
    Ok(())
}
