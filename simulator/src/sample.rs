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
