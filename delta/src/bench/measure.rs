//! One pair measured: the full compressed size of the new layer, then
//! each petrel-delta method encoded and decoded by child processes of this
//! binary (`petrel-delta diff --method M`, `petrel-delta apply`), then the
//! external tools.

use super::external::{self, file_len, ToolRun, Tools};
use super::spawner::{Run, Spawner};
use super::Pair;
use anyhow::{ensure, Context, Result};
use petrel_delta::{EncodeOptions, Method};
use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Write};
use std::path::Path;

/// zstd settings of the full layer, as `zstd -19 --long=27`.
const FULL_LEVEL: i32 = 19;
const FULL_WINDOW_LOG: u32 = 27;

/// A petrel-delta method's patch, encode and decode for one pair.
#[derive(Debug, Clone)]
pub struct MethodRun {
    /// Patch file size, header included.
    pub size: u64,
    pub encode: Run,
    pub decode: Run,
}

/// Everything measured on one pair.
#[derive(Debug, Clone)]
pub struct PairResult {
    pub name: String,
    pub old_size: u64,
    pub new_size: u64,
    /// The new layer compressed as `zstd -19 --long=27`.
    pub full: u64,
    /// Each method asked for: its run, or why `diff` would skip it.
    pub methods: Vec<(Method, Result<MethodRun, String>)>,
    pub tools: Vec<ToolRun>,
}

impl PairResult {
    /// What `diff` with these methods would ship: the smallest patch, the
    /// earlier method on a tie.
    pub fn default_choice(&self) -> Option<(Method, u64)> {
        let mut best: Option<(Method, u64)> = None;
        for (method, run) in &self.methods {
            if let Ok(run) = run {
                if !matches!(best, Some((_, size)) if size <= run.size) {
                    best = Some((*method, run.size));
                }
            }
        }
        best
    }
}

/// Measures `pair` with `methods` and the available `tools`.
pub fn pair(
    spawner: &mut Spawner,
    pair: &Pair,
    methods: &[Method],
    tools: &Tools,
    scratch: &Path,
) -> Result<PairResult> {
    let full = full_size(&pair.new)?;
    let mut runs = Vec::new();
    for &method in methods {
        let opts = EncodeOptions::default();
        let run = match opts.applicable_to_files(method, &pair.old, &pair.new) {
            Ok(()) => Ok(method_run(spawner, pair, method, scratch)?),
            Err(reason) => Err(reason.to_string()),
        };
        runs.push((method, run));
    }
    let tools = external::run_all(spawner, tools, pair, scratch)?;
    Ok(PairResult {
        name: pair.name.clone(),
        old_size: pair.old_size,
        new_size: pair.new_size,
        full,
        methods: runs,
        tools,
    })
}

/// Encodes with one method, then decodes that patch, each in a fresh child.
fn method_run(
    spawner: &mut Spawner,
    pair: &Pair,
    method: Method,
    scratch: &Path,
) -> Result<MethodRun> {
    let exe = std::env::current_exe().context("locating the petrel-delta binary")?;
    let patch = scratch.join(format!("{}.{}.ptrl", pair.name, method.id()));
    let out = scratch.join(format!("{}.new.tar", pair.name));
    let method_arg = format!("--method={method}");
    let encode = spawner.run(
        exe.as_os_str(),
        &[
            OsStr::new("diff"),
            OsStr::new(&method_arg),
            pair.old.as_os_str(),
            pair.new.as_os_str(),
            patch.as_os_str(),
        ],
    )?;
    let what = |step: &str, run: &Run| {
        format!(
            "petrel-delta {step} ({method}) on {} exited with status {}",
            pair.name, run.status
        )
    };
    ensure!(encode.status == 0, what("diff", &encode));
    let size = file_len(&patch)?;
    let decode = spawner.run(
        exe.as_os_str(),
        &[
            OsStr::new("apply"),
            pair.old.as_os_str(),
            patch.as_os_str(),
            out.as_os_str(),
        ],
    )?;
    // `apply` writes NEW only once its sha256 matches the patch header.
    ensure!(decode.status == 0, what("apply", &decode));
    for file in [&patch, &out] {
        std::fs::remove_file(file).with_context(|| format!("removing {}", file.display()))?;
    }
    Ok(MethodRun {
        size,
        encode,
        decode,
    })
}

/// Bytes of `new` compressed as `zstd -19 --long=27` (level 19, window
/// 2^27, long-distance matching, content size and checksum in the frame),
/// streaming.
fn full_size(new: &Path) -> Result<u64> {
    let mut file = File::open(new).with_context(|| format!("opening {}", new.display()))?;
    let len = file.metadata()?.len();
    let mut z = zstd::stream::write::Encoder::new(Counter(0), FULL_LEVEL)?;
    z.window_log(FULL_WINDOW_LOG)?;
    z.long_distance_matching(true)?;
    z.include_checksum(true)?;
    z.set_pledged_src_size(Some(len))?;
    io::copy(&mut file, &mut z).with_context(|| format!("compressing {}", new.display()))?;
    Ok(z.finish()?.0)
}

/// A writer that only counts.
struct Counter(u64);

impl Write for Counter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
