//! The default seccomp filter of native services: a deny list that makes
//! the syscalls Docker's default profile refuses to unprivileged containers
//! fail with `EPERM` (kernel modules, kexec, reboot, swap, mounts and
//! namespaces, keyrings, bpf, perf, userfaultfd, clock setting,
//! `open_by_handle_at`, ...), `clone` with any namespace flag too, and
//! `clone3` with `ENOSYS` (it hides its flags from the filter; glibc then
//! falls back to `clone`).
//!
//! Decisions:
//! - **A deny list, not Docker's allow list.** Most of these calls already
//!   need a capability the service no longer has (see `confine`); the
//!   filter removes kernel attack surface that is reachable without one
//!   (keyrings, bpf, perf, userfaultfd, user namespaces). An allow list of
//!   ~350 calls must track every new syscall a libc starts to use, and a
//!   miss breaks a service on a device in the field.
//! - **Hand-written classic BPF, no crate.** The filter is ~120
//!   instructions of one shape; `seccompiler` builds one architecture per
//!   filter and knows neither i386 nor arm, while a 64-bit kernel also
//!   accepts 32-bit syscalls (an armhf image on a 64-bit Raspberry Pi OS,
//!   or `int 0x80` from any x86_64 process): a filter that ignored them
//!   could be bypassed. So each filter checks the native and the compat
//!   architecture, each with its own numbers ([`tables`]); x32 calls and
//!   unknown architectures are refused outright.
//! - Built before fork (it allocates); installed after fork by one
//!   `prctl`, the last step before exec, so the runtime's own mounts and
//!   `setuid` are not filtered. Needs `no_new_privs` (set just before).
//! - Architectures other than x86_64, aarch64, arm and x86, and kernels
//!   without seccomp, get no filter (with a warning at spawn).

#[cfg(any(
    target_arch = "x86_64",
    target_arch = "x86",
    target_arch = "aarch64",
    target_arch = "arm"
))]
mod tables;

use nix::libc::{self, sock_filter, sock_fprog};
use std::io;

/// `struct seccomp_data` offsets: syscall number, `AUDIT_ARCH_*`, and the
/// low 32 bits of the first argument (all four architectures are
/// little-endian).
const NR: u32 = 0;
const ARCH: u32 = 4;
const ARG0_LOW: u32 = 16;
/// Namespace flags of `clone` (`CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC
/// | NEWUSER | NEWPID | NEWNET`), the mask of Docker's profile.
const CLONE_NAMESPACES: u32 = 0x7E02_0000;
/// Set in the syscall number of an x32-ABI call on x86_64.
#[cfg(target_arch = "x86_64")]
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// The rules for one architecture.
#[allow(dead_code)] // unused on architectures without a filter
struct Arch {
    /// `AUDIT_ARCH_*` value the kernel reports in `seccomp_data.arch`.
    audit: u32,
    denied: &'static [(&'static str, u32)],
    clone: u32,
    clone3: u32,
    /// Refuse x32-ABI numbers (x86_64 only).
    x32: bool,
}

/// A compiled filter program, ready to install after fork.
pub(super) struct Filter(Vec<sock_filter>);

impl Filter {
    /// The default filter for this machine; `None` where the architecture
    /// has no tables or the kernel has no seccomp.
    pub fn default_for_host() -> Option<Filter> {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        if !status.lines().any(|l| l.starts_with("Seccomp:")) {
            return None;
        }
        let arches = host_arches();
        (!arches.is_empty()).then(|| build(&arches))
    }

    /// Number of BPF instructions.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Installs the filter on the calling thread and its future children.
    /// Allocates nothing: safe between fork and exec.
    pub fn install(&self) -> io::Result<()> {
        let prog = sock_fprog {
            len: self.0.len() as u16,
            filter: self.0.as_ptr().cast_mut(),
        };
        // SAFETY: `prog` points at our instructions, which outlive the
        // call; the kernel copies them.
        let rc = unsafe {
            libc::prctl(
                libc::PR_SET_SECCOMP,
                libc::SECCOMP_MODE_FILTER as libc::c_ulong,
                &prog as *const sock_fprog,
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }
}

#[cfg(target_arch = "x86_64")]
fn host_arches() -> Vec<Arch> {
    let (clone, clone3) = tables::X86_64_CLONE;
    let (clone32, clone3_32) = tables::I386_CLONE;
    vec![
        Arch {
            audit: 0xC000_003E,
            denied: tables::X86_64,
            clone,
            clone3,
            x32: true,
        },
        Arch {
            audit: 0x4000_0003,
            denied: tables::I386,
            clone: clone32,
            clone3: clone3_32,
            x32: false,
        },
    ]
}

#[cfg(target_arch = "aarch64")]
fn host_arches() -> Vec<Arch> {
    let (clone, clone3) = tables::AARCH64_CLONE;
    let (clone32, clone3_32) = tables::ARM_CLONE;
    vec![
        Arch {
            audit: 0xC000_00B7,
            denied: tables::AARCH64,
            clone,
            clone3,
            x32: false,
        },
        Arch {
            audit: 0x4000_0028,
            denied: tables::ARM,
            clone: clone32,
            clone3: clone3_32,
            x32: false,
        },
    ]
}

#[cfg(target_arch = "arm")]
fn host_arches() -> Vec<Arch> {
    let (clone, clone3) = tables::ARM_CLONE;
    let denied = tables::ARM;
    vec![Arch {
        audit: 0x4000_0028,
        denied,
        clone,
        clone3,
        x32: false,
    }]
}

#[cfg(target_arch = "x86")]
fn host_arches() -> Vec<Arch> {
    let (clone, clone3) = tables::I386_CLONE;
    let denied = tables::I386;
    vec![Arch {
        audit: 0x4000_0003,
        denied,
        clone,
        clone3,
        x32: false,
    }]
}

#[cfg(not(any(
    target_arch = "x86_64",
    target_arch = "x86",
    target_arch = "aarch64",
    target_arch = "arm"
)))]
fn host_arches() -> Vec<Arch> {
    Vec::new()
}

fn stmt(code: u32, k: u32) -> sock_filter {
    sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u32, k: u32, jt: u8, jf: u8) -> sock_filter {
    sock_filter {
        code: code as u16,
        jt,
        jf,
        k,
    }
}

fn load(offset: u32) -> sock_filter {
    stmt(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, offset)
}

fn ret(action: u32) -> sock_filter {
    stmt(libc::BPF_RET | libc::BPF_K, action)
}

fn errno(code: i32) -> u32 {
    libc::SECCOMP_RET_ERRNO | (code as u32 & libc::SECCOMP_RET_DATA)
}

/// `if acc == k { return action }`: two instructions.
fn deny_if(k: u32, action: u32) -> [sock_filter; 2] {
    let eq = libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K;
    [jump(eq, k, 0, 1), ret(action)]
}

/// The program: load the architecture, then one block per known one,
/// then refuse every call of any other architecture.
fn build(arches: &[Arch]) -> Filter {
    let mut prog = vec![load(ARCH)];
    for arch in arches {
        let block = block(arch);
        // A block is ~110 instructions: far below the 255 a jump can skip.
        let skip = u8::try_from(block.len()).unwrap_or(u8::MAX);
        prog.push(jump(
            libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K,
            arch.audit,
            0,
            skip,
        ));
        prog.extend(block);
    }
    prog.push(ret(errno(libc::EPERM)));
    Filter(prog)
}

/// The rules of one architecture, entered with its number matched.
fn block(arch: &Arch) -> Vec<sock_filter> {
    let eperm = errno(libc::EPERM);
    let mut out = vec![load(NR)];
    #[cfg(target_arch = "x86_64")]
    if arch.x32 {
        let ge = libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K;
        out.extend([jump(ge, X32_SYSCALL_BIT, 0, 1), ret(eperm)]);
    }
    for &(_, nr) in arch.denied {
        out.extend(deny_if(nr, eperm));
    }
    out.extend(deny_if(arch.clone3, errno(libc::ENOSYS)));
    let eq = libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K;
    let set = libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K;
    out.extend([
        jump(eq, arch.clone, 0, 3),
        load(ARG0_LOW),
        jump(set, CLONE_NAMESPACES, 0, 1),
        ret(eperm),
    ]);
    out.push(ret(libc::SECCOMP_RET_ALLOW));
    out
}

#[cfg(test)]
mod tests;
