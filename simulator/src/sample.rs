//! Building the sample application's image directory: the binary, the
//! shared libraries it links (found with `ldd`), and `version.txt`, laid
//! out so the program runs chrooted inside it.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The `petrel-sample-app` binary built beside the running executable.
pub fn sample_app_binary() -> Result<PathBuf> {
    let exe = std::env::current_exe().context("locating the current executable")?;
    let mut dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    // test binaries live in target/<profile>/deps
    if dir.ends_with("deps") {
        dir.pop();
    }
    let bin = dir.join("petrel-sample-app");
    if !bin.exists() {
        build_sample_app(&dir)?;
    }
    if !bin.exists() {
        bail!(
            "{} not found: build it with `cargo build -p petrel-simulator`",
            bin.display()
        );
    }
    Ok(bin)
}

/// `cargo run --bin petrel-sim` builds only that binary: build the sample
/// app with the same profile, with the cargo that built this binary (its
/// build lock is released once `cargo run` starts us).
fn build_sample_app(dir: &Path) -> Result<()> {
    let cargo = std::env::var_os("CARGO").or_else(|| option_env!("CARGO").map(Into::into));
    let Some(cargo) = cargo else {
        return Ok(());
    };
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    println!("building the sample app (petrel-sample-app)...");
    let mut cmd = Command::new(cargo);
    cmd.args([
        "build",
        "-q",
        "--bin",
        "petrel-sample-app",
        "--manifest-path",
    ]);
    cmd.arg(manifest);
    if dir.ends_with("release") {
        cmd.arg("--release");
    }
    let status = cmd
        .status()
        .context("running cargo build for the sample app")?;
    if !status.success() {
        bail!("building petrel-sample-app failed ({status})");
    }
    Ok(())
}

/// Shared libraries (and the dynamic loader) `bin` needs, from `ldd`.
fn shared_libs(bin: &Path) -> Result<Vec<PathBuf>> {
    let out = Command::new("ldd")
        .arg(bin)
        .output()
        .context("running ldd")?;
    let text = String::from_utf8_lossy(&out.stdout);
    if text.contains("not a dynamic executable") || text.contains("statically linked") {
        return Ok(vec![]);
    }
    let libs = text
        .lines()
        .filter_map(|l| {
            let path = match l.split_once("=>") {
                Some((_, rest)) => rest.split_whitespace().next()?,
                None => l.split_whitespace().next()?,
            };
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect();
    Ok(libs)
}

/// Lays out an image directory for version `version` of the sample app:
/// `/app/sample-app`, `/app/version.txt`, and its libraries.
pub fn app_dir(bin: &Path, version: &str, dest: &Path) -> Result<()> {
    let app = dest.join("app");
    std::fs::create_dir_all(&app).with_context(|| format!("creating {}", app.display()))?;
    std::fs::copy(bin, app.join("sample-app"))
        .with_context(|| format!("copying {}", bin.display()))?;
    std::fs::write(app.join("version.txt"), format!("{version}\n"))?;
    for lib in shared_libs(bin)? {
        let rel = lib.strip_prefix("/").unwrap_or(&lib);
        let target = dest.join(rel);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        // copy the file the (possibly symlinked) path resolves to
        std::fs::copy(&lib, &target).with_context(|| format!("copying {}", lib.display()))?;
    }
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
