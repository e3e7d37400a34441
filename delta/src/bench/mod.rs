//! `petrel-delta bench DIR`: measures every delta method on a corpus of
//! `NAME/old.tar`, `NAME/new.tar` pairs against the full compressed layer
//! and, where installed, against bsdiff, xdelta3 and `zstd --patch-from`,
//! all in the same run.
//!
//! Layout:
//! - `spawner`: runs commands in a small helper process and measures each
//!   with `wait4` (wall time, peak RSS), so the bench's own memory does not
//!   leak into the figures.
//! - `measure`: one pair — full size, each method's encode and decode in
//!   fresh child processes of this binary.
//! - `external`: the external tools, found on PATH.
//! - `report`: per-pair tables, geometric means and the verdict line, as
//!   text or JSON.

mod external;
mod measure;
mod report;
mod spawner;

pub use spawner::serve as serve_spawner;

use anyhow::{bail, Context, Result};
use clap::Args;
use petrel_delta::Method;
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Directory holding NAME/old.tar and NAME/new.tar pairs.
    pub dir: PathBuf,
    /// Methods to measure, comma-separated (default: all).
    #[arg(long, value_delimiter = ',')]
    pub methods: Option<Vec<Method>>,
    /// Measure only the pair NAME (repeatable).
    #[arg(long, value_name = "NAME")]
    pub only: Vec<String>,
    /// Print one JSON document instead of tables.
    #[arg(long)]
    pub json: bool,
}

/// One layer pair of the corpus.
#[derive(Debug, Clone)]
pub struct Pair {
    pub name: String,
    pub old: PathBuf,
    pub new: PathBuf,
    pub old_size: u64,
    pub new_size: u64,
}

/// Runs the bench and prints its report.
pub fn run(args: &BenchArgs) -> Result<()> {
    // First, while this process is small: see `spawner` for why.
    let mut spawner = spawner::Spawner::start()?;
    let pairs = find_pairs(&args.dir, &args.only)?;
    let methods = args.methods.clone().unwrap_or_else(|| Method::ALL.to_vec());
    let tools = external::Tools::find();
    let scratch = tempfile::tempdir().context("creating a scratch directory")?;
    let mut results = Vec::new();
    let mut failed_pairs = Vec::new();
    for pair in &pairs {
        eprintln!("bench: measuring {}", pair.name);
        // A pair that cannot be measured is reported; the others still are.
        match measure::pair(&mut spawner, pair, &methods, &tools, scratch.path()) {
            Ok(result) => results.push(result),
            Err(e) => {
                eprintln!("bench: {} failed: {e:#}", pair.name);
                failed_pairs.push((pair.name.clone(), format!("{e:#}")));
            }
        }
    }
    let report = report::Report {
        dir: &args.dir,
        methods: &methods,
        tools: &tools,
        pairs: &results,
        failed_pairs: &failed_pairs,
        helper_peak: spawner.helper_peak,
    };
    let mut out = std::io::stdout().lock();
    if args.json {
        report.write_json(&mut out)?;
    } else {
        report.write_text(&mut out)?;
    }
    out.flush()?;
    let failures = report.failures();
    if !failures.is_empty() {
        bail!(
            "{} of the runs failed (see the report):\n{}",
            failures.len(),
            failures.join("\n")
        );
    }
    Ok(())
}

/// The pairs under `dir`, by name; only those named in `only`, if any.
fn find_pairs(dir: &Path, only: &[String]) -> Result<Vec<Pair>> {
    let entries = std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?;
    let mut pairs = Vec::new();
    for entry in entries {
        let path = entry?.path();
        let (old, new) = (path.join("old.tar"), path.join("new.tar"));
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if !old.is_file() || !new.is_file() || !(only.is_empty() || only.iter().any(|o| o == name))
        {
            continue;
        }
        pairs.push(Pair {
            name: name.to_string(),
            old_size: external::file_len(&old)?,
            new_size: external::file_len(&new)?,
            old,
            new,
        });
    }
    pairs.sort_by(|a, b| a.name.cmp(&b.name));
    if let Some(missing) = only.iter().find(|o| !pairs.iter().any(|p| &p.name == *o)) {
        bail!(
            "no pair {missing}/old.tar + {missing}/new.tar in {}",
            dir.display()
        );
    }
    if pairs.is_empty() {
        bail!("no NAME/old.tar + NAME/new.tar pairs in {}", dir.display());
    }
    Ok(pairs)
}
