//! The external delta tools the bench compares against, each run only if
//! installed: Debian's `bsdiff` (BSDIFF40, bzip2 streams), `xdelta3 -9`
//! and `zstd -19 --long=27 --patch-from`. Where `bzip2` is installed too,
//! the bsdiff patch is also measured with its three streams re-compressed
//! by zstd -19: the best single tool of the corpus README's reference
//! figures, which the delta bar is stated against.

use super::spawner::{Run, Spawner};
use super::Pair;
use anyhow::{ensure, Context, Result};
use std::ffi::{OsStr, OsString};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// An external way to make a patch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    Bsdiff,
    BsdiffRezstd,
    Xdelta3,
    ZstdPatchFrom,
}

impl Tool {
    pub const ALL: [Tool; 4] = [
        Tool::Bsdiff,
        Tool::BsdiffRezstd,
        Tool::Xdelta3,
        Tool::ZstdPatchFrom,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Tool::Bsdiff => "bsdiff",
            Tool::BsdiffRezstd => "bsdiff streams zstd-19",
            Tool::Xdelta3 => "xdelta3 -9",
            Tool::ZstdPatchFrom => "zstd -19 --patch-from",
        }
    }

    /// The programs it needs on PATH.
    fn programs(self) -> &'static [&'static str] {
        match self {
            Tool::Bsdiff => &["bsdiff"],
            Tool::BsdiffRezstd => &["bsdiff", "bzip2"],
            Tool::Xdelta3 => &["xdelta3"],
            Tool::ZstdPatchFrom => &["zstd"],
        }
    }

    /// The command that writes `patch`, for the tools that are one command.
    fn command(
        self,
        old: &Path,
        new: &Path,
        patch: &Path,
    ) -> Option<(&'static str, Vec<OsString>)> {
        let os = |s: &str| OsString::from(s);
        let (old, new, patch) = (old.into(), new.into(), patch.into());
        match self {
            Tool::Bsdiff => Some(("bsdiff", vec![old, new, patch])),
            Tool::Xdelta3 => Some((
                "xdelta3",
                vec![os("-9"), os("-e"), os("-f"), os("-s"), old, new, patch],
            )),
            Tool::ZstdPatchFrom => {
                let mut from = os("--patch-from=");
                from.push(&old);
                Some((
                    "zstd",
                    vec![
                        os("-qq"),
                        os("-f"),
                        os("-19"),
                        os("--long=27"),
                        from,
                        new,
                        os("-o"),
                        patch,
                    ],
                ))
            }
            Tool::BsdiffRezstd => None,
        }
    }
}

/// Which tools this machine has.
#[derive(Debug, Clone)]
pub struct Tools {
    pub available: Vec<Tool>,
    /// Each missing tool with the first program not found on PATH.
    pub missing: Vec<(Tool, &'static str)>,
}

impl Tools {
    pub fn find() -> Tools {
        let mut tools = Tools {
            available: Vec::new(),
            missing: Vec::new(),
        };
        for tool in Tool::ALL {
            match tool.programs().iter().find(|p| on_path(p).is_none()) {
                None => tools.available.push(tool),
                Some(program) => tools.missing.push((tool, program)),
            }
        }
        tools
    }
}

/// `program`'s path if an executable file of that name is on PATH.
fn on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| {
            p.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// One tool's patch for one pair.
#[derive(Debug, Clone)]
pub struct ToolRun {
    pub tool: Tool,
    pub size: u64,
    /// The encoding process (for re-compressed bsdiff: bsdiff's, plus the
    /// re-compression's time).
    pub encode: Run,
}

/// Runs every available tool on `pair`, writing patches into `scratch`.
pub fn run_all(
    spawner: &mut Spawner,
    tools: &Tools,
    pair: &Pair,
    scratch: &Path,
) -> Result<Vec<ToolRun>> {
    let mut runs = Vec::new();
    for tool in tools.available.iter().copied() {
        let patch = scratch.join(format!("{}.{tool:?}.patch", pair.name));
        let Some((program, args)) = tool.command(&pair.old, &pair.new, &patch) else {
            continue;
        };
        let args: Vec<&OsStr> = args.iter().map(OsString::as_os_str).collect();
        let encode = spawner.run(OsStr::new(program), &args, None)?;
        ensure!(
            encode.status == 0,
            "{} on {} exited with status {}",
            tool.name(),
            pair.name,
            encode.status
        );
        let size = file_len(&patch)?;
        runs.push(ToolRun { tool, size, encode });
        if tool == Tool::Bsdiff && tools.available.contains(&Tool::BsdiffRezstd) {
            let start = Instant::now();
            let size = rezstd_size(&patch, scratch)?;
            let mut encode = encode;
            encode.wall += start.elapsed();
            runs.push(ToolRun {
                tool: Tool::BsdiffRezstd,
                size,
                encode,
            });
        }
        std::fs::remove_file(&patch).with_context(|| format!("removing {}", patch.display()))?;
    }
    Ok(runs)
}

/// Size of a BSDIFF40 patch with its three bzip2 streams (control, diff,
/// extra) re-compressed by zstd level 19, its 32-byte header kept.
fn rezstd_size(patch: &Path, scratch: &Path) -> Result<u64> {
    let bytes = std::fs::read(patch).with_context(|| format!("reading {}", patch.display()))?;
    ensure!(
        bytes.len() >= 32 && bytes.starts_with(b"BSDIFF40"),
        "{} is not a BSDIFF40 patch",
        patch.display()
    );
    let field = |at: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&bytes[at..at + 8]);
        usize::try_from(i64::from_le_bytes(b)).ok()
    };
    let (control, diff) = field(8).zip(field(16)).context("bad BSDIFF40 lengths")?;
    let ends = [32usize, 32 + control, 32 + control + diff, bytes.len()];
    ensure!(
        ends.windows(2).all(|w| w[0] <= w[1]),
        "bad BSDIFF40 lengths"
    );
    let mut total = 32u64;
    for w in ends.windows(2) {
        let raw = bunzip2(&bytes[w[0]..w[1]], scratch)?;
        total += zstd::bulk::compress(&raw, 19)?.len() as u64;
    }
    Ok(total)
}

fn bunzip2(data: &[u8], scratch: &Path) -> Result<Vec<u8>> {
    let file = scratch.join("section.bz2");
    std::fs::write(&file, data).with_context(|| format!("writing {}", file.display()))?;
    let out = Command::new("bzip2").arg("-dc").arg(&file).output()?;
    ensure!(out.status.success(), "bzip2 -dc failed on a bsdiff stream");
    Ok(out.stdout)
}

pub fn file_len(path: &Path) -> Result<u64> {
    Ok(std::fs::metadata(path)
        .with_context(|| format!("reading {}", path.display()))?
        .len())
}
