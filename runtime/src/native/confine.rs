//! What a native service may do (root mode), applied in the service
//! process as the last step before exec, after the runtime's own mounts,
//! chroot and PID namespace split (which need full root):
//!
//! 1. the capability bounding set is cut to Docker's default set
//!    ([`DEFAULT_CAPS`]) and the ambient set cleared;
//! 2. supplementary groups, gid and uid become the service's user
//!    ([`super::user`]); for a non-root user the kernel then empties the
//!    permitted and effective sets;
//! 3. effective and permitted are limited to the default set (what root
//!    keeps) and inheritable is emptied (so a file's inheritable
//!    capabilities grant nothing, as in Docker since CVE-2022-24769);
//! 4. `PR_SET_NO_NEW_PRIVS`: setuid binaries and file capabilities grant
//!    nothing at exec (Docker's `no-new-privileges`);
//! 5. the default seccomp filter ([`super::seccomp`]).
//!
//! Everything is computed before fork; [`Confinement::apply`] makes raw
//! syscalls only. That is why this uses `prctl`/`capset` through `libc` and
//! not the `caps` crate: `caps` builds `HashSet`s and reads `/proc`, which
//! allocates, and allocating between fork and exec in the multi-threaded
//! agent can deadlock on a lock another thread held at fork.
//!
//! Not done: the network stays the host's (devices use `network_mode:
//! host`; a service that should have none needs a `network_mode` field in
//! the release, not there yet), and there is no AppArmor/SELinux profile.

use super::seccomp::Filter;
use super::user::{self, Credentials};
use crate::runtime::InstanceSpec;
use nix::libc;
use std::io;

/// Docker's default capabilities (moby `oci/caps/defaults.go`), by number:
/// CHOWN, DAC_OVERRIDE, FOWNER, FSETID, KILL, SETGID, SETUID, SETPCAP,
/// NET_BIND_SERVICE, NET_RAW, SYS_CHROOT, MKNOD, AUDIT_WRITE, SETFCAP.
pub(super) const DEFAULT_CAPS: [u32; 14] = [0, 1, 3, 4, 5, 6, 7, 8, 10, 13, 18, 27, 29, 31];

/// [`DEFAULT_CAPS`] as a bit mask (`0xa80425fb`, Docker's `CapBnd`).
pub(super) const fn default_mask() -> u64 {
    let mut mask = 0u64;
    let mut i = 0;
    while i < DEFAULT_CAPS.len() {
        mask |= 1 << DEFAULT_CAPS[i];
        i += 1;
    }
    mask
}

/// `_LINUX_CAPABILITY_VERSION_3`: 64-bit sets as two 32-bit words.
const CAP_VERSION_3: u32 = 0x2008_0522;

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// Everything the service process needs to confine itself after fork.
pub(super) struct Confinement {
    creds: Credentials,
    filter: Option<Filter>,
}

impl Confinement {
    /// Resolves the service's user in its rootfs and compiles the filter.
    /// The error names the user; the caller names the service.
    pub fn prepare(spec: &InstanceSpec) -> Result<Confinement, String> {
        let creds = user::resolve(&spec.rootfs, spec.user()).map_err(|e| e.to_string())?;
        let filter = Filter::default_for_host();
        if filter.is_none() {
            tracing::warn!(name = %spec.name, "no seccomp filter on this kernel or architecture");
        }
        Ok(Confinement { creds, filter })
    }

    /// Confines the calling process. Runs between fork and exec: syscalls
    /// only, no allocation.
    pub fn apply(&self) -> io::Result<()> {
        drop_bounding_set()?;
        // EINVAL: a kernel before 4.3 has no ambient set to clear.
        let clear = libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong;
        ok_or(prctl(libc::PR_CAP_AMBIENT, clear), libc::EINVAL)?;
        let c = &self.creds;
        // SAFETY: `groups` is a live slice of gid_t for the whole call.
        let rc = unsafe { libc::setgroups(c.groups.len(), c.groups.as_ptr()) };
        ok_or(rc, 0)?;
        nix::unistd::setgid(c.gid.into())?;
        nix::unistd::setuid(c.uid.into())?;
        limit_sets()?;
        ok_or(prctl(libc::PR_SET_NO_NEW_PRIVS, 1), 0)?;
        match &self.filter {
            Some(filter) => filter.install(),
            None => Ok(()),
        }
    }
}

/// Drops every capability outside the default set from the bounding set,
/// up to the kernel's last (where `PR_CAPBSET_DROP` says EINVAL).
fn drop_bounding_set() -> io::Result<()> {
    let keep = default_mask();
    for cap in 0..64u32 {
        if keep & (1 << cap) != 0 {
            continue;
        }
        if prctl(libc::PR_CAPBSET_DROP, libc::c_ulong::from(cap)) != 0 {
            return match io::Error::last_os_error().raw_os_error() {
                Some(libc::EINVAL) => Ok(()),
                _ => Err(io::Error::last_os_error()),
            };
        }
    }
    Ok(())
}

/// Effective and permitted become their intersection with the default set,
/// inheritable becomes empty.
fn limit_sets() -> io::Result<()> {
    let mut header = CapHeader {
        version: CAP_VERSION_3,
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    // SAFETY: header and two data words, as version 3 expects.
    let rc = unsafe { libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()) };
    ok_or(rc as libc::c_int, 0)?;
    let mask = default_mask();
    for (word, data) in data.iter_mut().enumerate() {
        let keep = (mask >> (32 * word)) as u32;
        data.permitted &= keep;
        data.effective = data.permitted;
        data.inheritable = 0;
    }
    // SAFETY: as above; capset only lowers the sets here.
    let rc = unsafe { libc::syscall(libc::SYS_capset, &header, data.as_ptr()) };
    ok_or(rc as libc::c_int, 0)
}

fn prctl(option: libc::c_int, arg: libc::c_ulong) -> libc::c_int {
    // SAFETY: the options used here take integer arguments only.
    unsafe { libc::prctl(option, arg, 0 as libc::c_ulong, 0 as libc::c_ulong, 0) }
}

/// `Ok` when `rc` is 0, or -1 with errno `tolerated` (0: none tolerated).
fn ok_or(rc: libc::c_int, tolerated: i32) -> io::Result<()> {
    if rc == 0 {
        return Ok(());
    }
    let err = io::Error::last_os_error();
    match err.raw_os_error() {
        Some(code) if tolerated != 0 && code == tolerated => Ok(()),
        _ => Err(err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_mask_is_dockers() {
        assert_eq!(default_mask(), 0xa804_25fb);
    }
}
