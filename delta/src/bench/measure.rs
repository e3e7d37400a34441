//! One pair measured: the full compressed size of the new layer, then
//! each petrel-delta method encoded and decoded by child processes of this
//! binary (`petrel-delta diff --method M`, `petrel-delta apply`), then the
//! external tools.

use super::external::{self, file_len, ToolRun, Tools};
use super::spawner::{captured, Run, Spawner};
use super::Pair;
use anyhow::{Context, Result};
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
    /// Share of the decoder's old-layer read budget the apply used, as
    /// `petrel-delta apply` printed it (`None` for zstd-ref).
    pub budget_used: Option<f64>,
}

/// Everything measured on one pair.
#[derive(Debug, Clone)]
pub struct PairResult {
    pub name: String,
    pub old_size: u64,
    pub new_size: u64,
    /// The new layer compressed as `zstd -19 --long=27`.
    pub full: u64,
    /// Each method asked for, and what became of it.
    pub methods: Vec<(Method, Outcome)>,
    pub tools: Vec<ToolRun>,
}

/// What became of one method on one pair.
#[derive(Debug, Clone)]
pub enum Outcome {
    Ran(MethodRun),
    /// `diff` would not try it on this pair (the reason).
    Skipped(String),
    /// Its encode or decode failed (the command, status and its stderr):
    /// the bench goes on and exits non-zero at the end.
    Failed(String),
}

impl Outcome {
    pub fn ran(&self) -> Option<&MethodRun> {
        match self {
            Outcome::Ran(run) => Some(run),
            _ => None,
        }
    }
}

impl PairResult {
    /// What `diff` with these methods would ship: the smallest patch, the
    /// earlier method on a tie.
    pub fn default_choice(&self) -> Option<(Method, u64)> {
        let mut best: Option<(Method, u64)> = None;
        for (method, outcome) in &self.methods {
            if let Some(run) = outcome.ran() {
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
        let outcome = match opts.applicable_to_files(method, &pair.old, &pair.new) {
            Ok(()) => match method_run(spawner, pair, method, scratch)? {
                Ok(run) => Outcome::Ran(run),
                Err(failure) => {
                    eprintln!("bench: {failure}");
                    Outcome::Failed(failure)
                }
            },
            Err(reason) => Outcome::Skipped(reason.to_string()),
        };
        runs.push((method, outcome));
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

/// Encodes with one method, then decodes that patch, each in a fresh
/// child. A child that fails is the inner error (what ran, its status and
/// its stderr); the outer one is the bench's own trouble.
fn method_run(
    spawner: &mut Spawner,
    pair: &Pair,
    method: Method,
    scratch: &Path,
) -> Result<Result<MethodRun, String>> {
    let exe = std::env::current_exe().context("locating the petrel-delta binary")?;
    let patch = scratch.join(format!("{}.{}.ptrl", pair.name, method.id()));
    let out = scratch.join(format!("{}.new.tar", pair.name));
    let capture = scratch.join(format!("{}.{}", pair.name, method.id()));
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
        Some(&capture),
    )?;
    let failed = |step: &str, run: &Run| {
        let said = std::fs::read_to_string(captured(&capture, "err")).unwrap_or_default();
        Ok(Err(format!(
            "petrel-delta {step} ({method}) on {} exited with status {}: {}",
            pair.name,
            run.status,
            one_line(&said)
        )))
    };
    if encode.status != 0 {
        return failed("diff", &encode);
    }
    let size = file_len(&patch)?;
    let decode = spawner.run(
        exe.as_os_str(),
        &[
            OsStr::new("apply"),
            pair.old.as_os_str(),
            patch.as_os_str(),
            out.as_os_str(),
        ],
        Some(&capture),
    )?;
    // `apply` writes NEW only once its sha256 matches the patch header.
    if decode.status != 0 {
        return failed("apply", &decode);
    }
    let said = std::fs::read_to_string(captured(&capture, "out")).unwrap_or_default();
    let budget_used = budget_used(&said);
    for file in [&patch, &out] {
        std::fs::remove_file(file).with_context(|| format!("removing {}", file.display()))?;
    }
    Ok(Ok(MethodRun {
        size,
        encode,
        decode,
        budget_used,
    }))
}

/// The percentage in `apply`'s `old-layer reads: … budget (12.3%)` line.
fn budget_used(apply_stdout: &str) -> Option<f64> {
    let line = apply_stdout
        .lines()
        .find(|l| l.starts_with("old-layer reads:"))?;
    let pct = line.rsplit_once('(')?.1.strip_suffix("%)")?;
    pct.parse().ok()
}

/// A child's error report (`error: …` then `  caused by: …` lines, see
/// `cli::error_report`) as one line: the chain joined by `: `.
fn one_line(report: &str) -> String {
    report
        .lines()
        .map(|l| {
            let l = l.trim();
            l.strip_prefix("error: ")
                .or_else(|| l.strip_prefix("caused by: "))
                .unwrap_or(l)
        })
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(": ")
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
