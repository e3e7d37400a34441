//! Finding the workspace's other binaries (the sample app, the agent)
//! beside the running executable, building them when `cargo run` built
//! only `petrel-sim`.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// `target/<profile>/<name>`, built from `package` if missing.
pub fn workspace_binary(package: &str, name: &str) -> Result<PathBuf> {
    let exe = std::env::current_exe().context("locating the current executable")?;
    let mut dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    // test binaries live in target/<profile>/deps
    if dir.ends_with("deps") {
        dir.pop();
    }
    let bin = dir.join(name);
    if !bin.exists() {
        build(&dir, package, name)?;
    }
    if !bin.exists() {
        bail!(
            "{} not found: build it with `cargo build -p {package}`",
            bin.display()
        );
    }
    Ok(bin)
}

/// Builds `name` with the same profile, with the cargo that built this
/// binary (its build lock is released once `cargo run` starts us).
fn build(dir: &Path, package: &str, name: &str) -> Result<()> {
    let cargo = std::env::var_os("CARGO").or_else(|| option_env!("CARGO").map(Into::into));
    let Some(cargo) = cargo else {
        return Ok(());
    };
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
    println!("building {name}...");
    let mut cmd = Command::new(cargo);
    cmd.args([
        "build",
        "-q",
        "-p",
        package,
        "--bin",
        name,
        "--manifest-path",
    ]);
    cmd.arg(manifest);
    if dir.ends_with("release") {
        cmd.arg("--release");
    }
    let status = cmd
        .status()
        .with_context(|| format!("running cargo build for {name}"))?;
    if !status.success() {
        bail!("building {name} failed ({status})");
    }
    Ok(())
}
