//! Test fixture: a minimal rootfs holding `/bin/sh` and `/bin/sleep` plus
//! their shared libraries, so test scripts run the same chrooted (as root)
//! and plain (as a user).

use std::path::{Path, PathBuf};

/// Builds `dir/rootfs` and returns its path.
pub(super) fn make_rootfs(dir: &Path) -> PathBuf {
    let root = dir.join("rootfs");
    for bin in ["/bin/sh", "/bin/sleep"] {
        crate::hostbin::copy_with_libs(Path::new(bin), &root).expect("copy host binary");
    }
    root
}
