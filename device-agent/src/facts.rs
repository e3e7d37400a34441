//! Facts about the device the agent reports for the controller's
//! registry: its host name and the free space where it keeps its data.

use std::path::Path;

/// The kernel's host name.
pub fn hostname() -> Option<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    Some(name.trim().to_string()).filter(|n| !n.is_empty())
}

/// Bytes available to the agent on the filesystem holding `dir`.
// the conversions matter on 32-bit targets (armv7), where they widen
#[allow(clippy::useless_conversion)]
pub fn free_bytes(dir: &Path) -> Option<u64> {
    let s = nix::sys::statvfs::statvfs(dir).ok()?;
    Some(u64::from(s.blocks_available()).saturating_mul(u64::from(s.fragment_size())))
}

#[cfg(test)]
mod tests {
    #[test]
    fn this_machine_has_a_name_and_free_space() {
        assert!(super::hostname().is_some());
        assert!(super::free_bytes(std::path::Path::new("/")).unwrap_or(0) > 0);
    }
}
