//! Test fixture: rootfs dirs built offline from the host's `/bin/sh` and
//! `/bin/sleep` plus the shared libraries `ldd` says they need.

use std::fs;
use std::path::{Path, PathBuf};

/// A rootfs with `/bin/sh`, `/bin/sleep`, their libraries, an empty `/srv`
/// and `/petrel-test` holding `marker` (so its image is the caller's own).
pub fn make_rootfs(dir: &Path, name: &str, marker: &str) -> PathBuf {
    let root = dir.join(name);
    for bin in ["/bin/sh", "/bin/sleep"] {
        petrel_runtime::hostbin::copy_with_libs(Path::new(bin), &root).expect("copy host binary");
    }
    fs::create_dir_all(root.join("srv")).expect("create srv");
    fs::write(root.join("petrel-test"), marker).expect("write marker");
    root
}
