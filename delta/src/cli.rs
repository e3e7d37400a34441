//! The `petrel-delta` command line: one [`Command`] variant and one
//! function per subcommand (`bench` lives in its own module).
//! Errors become `anyhow` here and nowhere in the library.

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use petrel_delta::{apply, diff, read_header, EncodeOptions, Method, HEADER_LEN};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Instant;

#[derive(Debug, Parser)]
#[command(
    name = "petrel-delta",
    version,
    about = "Binary deltas between container layer tars"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Encode a patch that turns OLD into NEW.
    Diff(DiffArgs),
    /// Apply PATCH to OLD, writing NEW (only if the result verifies).
    Apply(ApplyArgs),
    /// Print a patch's header.
    Info(InfoArgs),
    /// Measure every method on a corpus of NAME/old.tar, NAME/new.tar pairs
    /// (and bsdiff, xdelta3, zstd --patch-from where installed).
    Bench(crate::bench::BenchArgs),
    /// Internal to `bench`: runs commands read from stdin, reports their
    /// wall time and peak RSS.
    #[command(hide = true)]
    BenchSpawner,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    pub old: PathBuf,
    pub new: PathBuf,
    pub patch: PathBuf,
    /// `best` tries every method and keeps the smallest.
    #[arg(long, default_value = "best")]
    pub method: MethodChoice,
    /// zstd compression level.
    #[arg(long)]
    pub level: Option<i32>,
    /// Largest old layer (bytes) for which zstd-ref is tried.
    #[arg(long)]
    pub max_ref_prefix: Option<u64>,
    /// Memory (MiB) the methods may take at once beyond the two layers:
    /// past it they run one after another.
    #[arg(long)]
    pub max_memory_mib: Option<u64>,
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    pub old: PathBuf,
    pub patch: PathBuf,
    pub new: PathBuf,
}

#[derive(Debug, Args)]
pub struct InfoArgs {
    pub patch: PathBuf,
}

/// `best` or one method by name.
#[derive(Debug, Clone, Copy)]
pub enum MethodChoice {
    Best,
    Only(Method),
}

impl FromStr for MethodChoice {
    type Err = petrel_delta::DeltaError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "best" => Ok(MethodChoice::Best),
            _ => s.parse().map(MethodChoice::Only),
        }
    }
}

/// The whole chain of `e`, one cause per line. Printed by `main` instead
/// of anyhow's `Debug` form, which turns into a backtrace dump when
/// `RUST_BACKTRACE` is set (as a bench child inherits it).
pub fn error_report(e: &anyhow::Error) -> String {
    let mut out = format!("error: {e}\n");
    for cause in e.chain().skip(1) {
        out.push_str(&format!("  caused by: {cause}\n"));
    }
    out
}

/// Runs one subcommand.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Diff(args) => run_diff(&args),
        Command::Apply(args) => run_apply(&args),
        Command::Info(args) => run_info(&args),
        Command::Bench(args) => crate::bench::run(&args),
        Command::BenchSpawner => crate::bench::serve_spawner(),
    }
}

fn run_diff(args: &DiffArgs) -> Result<()> {
    let mut opts = EncodeOptions::default();
    if let MethodChoice::Only(m) = args.method {
        opts.methods = vec![m];
    }
    if let Some(level) = args.level {
        opts.zstd_level = level;
    }
    if let Some(max) = args.max_ref_prefix {
        opts.max_ref_prefix = max;
    }
    opts.max_memory = args.max_memory_mib.map(|m| m << 20);
    let report = diff(&args.old, &args.new, &args.patch, &opts)
        .with_context(|| format!("diffing {} -> {}", args.old.display(), args.new.display()))?;
    let new_size = file_len(&args.new)?;
    for (method, size, time) in &report.tried {
        println!(
            "tried  {method:<12} {size:>12} bytes  {:>8.2} s",
            time.as_secs_f64()
        );
    }
    for m in opts
        .methods
        .iter()
        .filter(|m| !report.tried.iter().any(|t| t.0 == **m))
    {
        println!("skipped {m}: not applicable to layers of this size");
    }
    for (m, why) in &report.rejected {
        println!("rejected {m}: its patch failed the verifying apply: {why}");
    }
    println!(
        "chosen {:<12} {:>12} bytes  new layer {new_size} bytes  ratio {:.4}",
        report.chosen,
        report.patch_size,
        report.patch_size as f64 / new_size.max(1) as f64
    );
    Ok(())
}

fn run_apply(args: &ApplyArgs) -> Result<()> {
    let start = Instant::now();
    let dir = parent_dir(&args.new);
    let tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
    let mut out = BufWriter::new(tmp);
    let report = apply(&args.old, &args.patch, &mut out).with_context(|| {
        format!(
            "applying {} to {}",
            args.patch.display(),
            args.old.display()
        )
    })?;
    // Only a verified result reaches NEW; on error the temp file is deleted on drop.
    let tmp = out.into_inner().context("flushing the new layer")?;
    tmp.as_file().sync_all().context("syncing the new layer")?;
    tmp.persist(&args.new)
        .with_context(|| format!("renaming into {}", args.new.display()))?;
    println!(
        "applied {} : {} bytes, {} in {:.2} s",
        report.header.method,
        report.bytes_written,
        report.header.to,
        start.elapsed().as_secs_f64()
    );
    if let Some(r) = report.old_reads {
        println!(
            "old-layer reads: {} preads, {} bytes, {} units of a {} budget ({:.1}%)",
            r.preads,
            r.bytes,
            r.units,
            r.budget,
            100.0 * r.units as f64 / r.budget.max(1) as f64
        );
    }
    Ok(())
}

fn run_info(args: &InfoArgs) -> Result<()> {
    let mut file =
        File::open(&args.patch).with_context(|| format!("opening {}", args.patch.display()))?;
    let header =
        read_header(&mut file).with_context(|| format!("reading {}", args.patch.display()))?;
    let payload = file_len(&args.patch)?.saturating_sub(HEADER_LEN as u64);
    let mut out = std::io::stdout().lock();
    writeln!(out, "version    {}", header.version)?;
    writeln!(out, "method     {}", header.method)?;
    writeln!(
        out,
        "from       {} ({} bytes)",
        header.from, header.from_size
    )?;
    writeln!(out, "to         {} ({} bytes)", header.to, header.to_size)?;
    writeln!(out, "payload    {payload} bytes")?;
    Ok(())
}

fn file_len(path: &Path) -> Result<u64> {
    Ok(std::fs::metadata(path)
        .with_context(|| format!("reading {}", path.display()))?
        .len())
}

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}
