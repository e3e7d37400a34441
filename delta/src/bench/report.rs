//! The bench's output: per pair, each patch's size and ratio to the full
//! compressed layer with its encode and decode cost; then geometric means
//! of those ratios; then the verdict line comparing the default (smallest
//! method per pair, as `diff` ships) with the best external tool measured
//! in the same run. As aligned text, or one JSON document.

use super::external::{Tool, Tools};
use super::measure::{Outcome, PairResult};
use super::spawner::Run;
use anyhow::Result;
use petrel_delta::Method;
use serde_json::{json, Value};
use std::io::Write;
use std::path::Path;

const MB: f64 = 1_000_000.0;

pub struct Report<'a> {
    pub dir: &'a Path,
    pub methods: &'a [Method],
    pub tools: &'a Tools,
    pub pairs: &'a [PairResult],
    /// Pairs that could not be measured at all: name and reason.
    pub failed_pairs: &'a [(String, String)],
    /// The measuring helper's own peak RSS: the most any figure is inflated.
    pub helper_peak: u64,
}

/// A geometric mean of patch/full over `pairs` pairs.
#[derive(Debug, Clone, Copy)]
struct Geo {
    mean: f64,
    pairs: usize,
}

fn geomean(ratios: impl Iterator<Item = f64>) -> Option<Geo> {
    let (sum, pairs) = ratios.fold((0.0, 0), |(s, n), r| (s + r.ln(), n + 1));
    (pairs > 0).then(|| Geo {
        mean: (sum / pairs as f64).exp(),
        pairs,
    })
}

fn ratio(size: u64, full: u64) -> f64 {
    size as f64 / full.max(1) as f64
}

impl Report<'_> {
    fn method_geo(&self, method: Method) -> Option<Geo> {
        geomean(self.pairs.iter().filter_map(|p| {
            let run = p.methods.iter().find(|(m, _)| *m == method)?.1.ran()?;
            Some(ratio(run.size, p.full))
        }))
    }

    fn default_geo(&self) -> Option<Geo> {
        geomean(
            self.pairs
                .iter()
                .filter_map(|p| p.default_choice().map(|(_, size)| ratio(size, p.full))),
        )
    }

    fn tool_geo(&self, tool: Tool) -> Option<Geo> {
        geomean(self.pairs.iter().filter_map(|p| {
            let run = p.tools.iter().find(|t| t.tool == tool)?;
            Some(ratio(run.size, p.full))
        }))
    }

    /// The external tool with the lowest mean over every pair.
    fn best_tool(&self) -> Option<(Tool, Geo)> {
        self.tools
            .available
            .iter()
            .filter_map(|t| self.tool_geo(*t).map(|g| (*t, g)))
            .filter(|(_, g)| g.pairs == self.pairs.len())
            .min_by(|a, b| a.1.mean.total_cmp(&b.1.mean))
    }

    pub fn write_text(&self, out: &mut impl Write) -> Result<()> {
        self.text_preamble(out)?;
        for pair in self.pairs {
            self.text_pair(out, pair)?;
        }
        self.text_summary(out)
    }

    fn text_preamble(&self, out: &mut impl Write) -> Result<()> {
        writeln!(
            out,
            "petrel-delta bench of {}: {} pairs",
            self.dir.display(),
            self.pairs.len()
        )?;
        writeln!(
            out,
            "full = new.tar as zstd -19 --long=27; /full = patch bytes / full bytes"
        )?;
        writeln!(
            out,
            "times = wall clock of a fresh child process; MB = its peak RSS (wait4 ru_maxrss; \
             includes up to {:.1} MB of the measuring helper)",
            self.helper_peak as f64 / MB
        )?;
        writeln!(
            out,
            "budget = share of the device decoder's old-layer read budget the apply used; \
             enc includes diff's verifying apply"
        )?;
        for (tool, program) in &self.tools.missing {
            writeln!(
                out,
                "skipped external tool {}: {program} not on PATH",
                tool.name()
            )?;
        }
        Ok(())
    }

    fn text_pair(&self, out: &mut impl Write, p: &PairResult) -> Result<()> {
        writeln!(
            out,
            "\n{}: old {} B, new {} B, full {} B",
            p.name, p.old_size, p.new_size, p.full
        )?;
        writeln!(
            out,
            "  {:<24} {:>10} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7}",
            "patch", "bytes", "/full", "enc s", "enc MB", "dec s", "dec MB", "budget"
        )?;
        for (method, outcome) in &p.methods {
            match outcome {
                Outcome::Ran(r) => row(
                    out,
                    method.name(),
                    r.size,
                    p.full,
                    Some(&r.encode),
                    Some(&r.decode),
                    r.budget_used,
                )?,
                Outcome::Skipped(why) => writeln!(out, "  {:<24} skipped: {why}", method.name())?,
                Outcome::Failed(why) => writeln!(out, "  {:<24} FAILED: {why}", method.name())?,
            }
        }
        if let Some((method, size)) = p.default_choice() {
            row(
                out,
                &format!("default ({method})"),
                size,
                p.full,
                None,
                None,
                None,
            )?;
        }
        for t in &p.tools {
            row(
                out,
                t.tool.name(),
                t.size,
                p.full,
                Some(&t.encode),
                None,
                None,
            )?;
        }
        Ok(())
    }

    /// Every failure, method or pair, one per line (empty if none).
    pub fn failures(&self) -> Vec<String> {
        let methods = self.pairs.iter().flat_map(|p| {
            p.methods.iter().filter_map(move |(m, o)| match o {
                Outcome::Failed(why) => Some(format!("{} {m}: {why}", p.name)),
                _ => None,
            })
        });
        let pairs = self
            .failed_pairs
            .iter()
            .map(|(name, why)| format!("{name}: {why}"));
        methods.chain(pairs).collect()
    }

    fn text_summary(&self, out: &mut impl Write) -> Result<()> {
        for (name, why) in self.failed_pairs {
            writeln!(out, "\n{name}: FAILED, not measured: {why}")?;
        }
        let failures = self.failures();
        if !failures.is_empty() {
            writeln!(
                out,
                "\n{} FAILURES (left out of the means):",
                failures.len()
            )?;
            for f in &failures {
                writeln!(out, "  {}", f.lines().next().unwrap_or_default())?;
            }
        }
        let n = self.pairs.len();
        writeln!(out, "\ngeometric mean of patch / full over {n} pairs")?;
        let line = |out: &mut dyn Write, name: &str, geo: Option<Geo>| -> Result<()> {
            match geo {
                Some(g) if g.pairs == n => writeln!(out, "  {name:<24} {:.4}", g.mean)?,
                Some(g) => writeln!(
                    out,
                    "  {name:<24} {:.4} (over {} of {n} pairs: not comparable)",
                    g.mean, g.pairs
                )?,
                None => writeln!(out, "  {name:<24} -")?,
            }
            Ok(())
        };
        for m in self.methods {
            line(out, m.name(), self.method_geo(*m))?;
        }
        line(out, "default", self.default_geo())?;
        for t in &self.tools.available {
            line(out, t.name(), self.tool_geo(*t))?;
        }
        writeln!(out, "{}", self.verdict())?;
        Ok(())
    }

    /// The last line: default vs the best external tool, as a ratio.
    fn verdict(&self) -> String {
        match (self.default_geo(), self.best_tool()) {
            (Some(d), Some((tool, t))) => format!(
                "default {:.4} vs best external tool ({}) {:.4}: ratio {:.4} ({})",
                d.mean,
                tool.name(),
                t.mean,
                d.mean / t.mean,
                if d.mean <= t.mean {
                    "default is at most the best tool"
                } else {
                    "default is larger"
                }
            ),
            (Some(d), None) => format!(
                "default {:.4}: no external tool measured to compare with",
                d.mean
            ),
            (None, _) => "no default: no method produced a patch".to_string(),
        }
    }

    pub fn write_json(&self, out: &mut impl Write) -> Result<()> {
        let geo =
            |g: Option<Geo>| g.map_or(Value::Null, |g| json!({"ratio": g.mean, "pairs": g.pairs}));
        let doc = json!({
            "dir": self.dir,
            "full": "zstd -19 --long=27",
            "pairs": self.pairs.iter().map(pair_json).collect::<Vec<_>>(),
            "geomean": {
                "methods": self.methods.iter().map(|m| (m.name().to_string(), geo(self.method_geo(*m)))).collect::<serde_json::Map<_, _>>(),
                "default": geo(self.default_geo()),
                "external": self.tools.available.iter().map(|t| (t.name().to_string(), geo(self.tool_geo(*t)))).collect::<serde_json::Map<_, _>>(),
            },
            "comparison": match (self.default_geo(), self.best_tool()) {
                (Some(d), Some((tool, t))) => json!({
                    "default": d.mean, "best_external_tool": tool.name(),
                    "best_external": t.mean, "ratio": d.mean / t.mean,
                }),
                _ => Value::Null,
            },
            "failed_pairs": self.failed_pairs.iter().map(|(name, why)| json!({"name": name, "failed": why})).collect::<Vec<_>>(),
            "failures": self.failures(),
            "external_missing": self.tools.missing.iter().map(|(t, p)| json!({"tool": t.name(), "program": p})).collect::<Vec<_>>(),
            "helper_peak_rss": self.helper_peak,
        });
        serde_json::to_writer_pretty(&mut *out, &doc)?;
        writeln!(out)?;
        Ok(())
    }
}

/// One table row; `-` where a cost was not measured.
fn row(
    out: &mut impl Write,
    name: &str,
    size: u64,
    full: u64,
    encode: Option<&Run>,
    decode: Option<&Run>,
    budget_used: Option<f64>,
) -> Result<()> {
    let cost = |r: Option<&Run>| match r {
        Some(r) => format!(
            "{:>7.2} {:>7.1}",
            r.wall.as_secs_f64(),
            r.peak_rss as f64 / MB
        ),
        None => format!("{:>7} {:>7}", "-", "-"),
    };
    writeln!(
        out,
        "  {name:<24} {size:>10} {:>7.4} {} {} {:>7}",
        ratio(size, full),
        cost(encode),
        cost(decode),
        budget_used.map_or("-".to_string(), |p| format!("{p:.1}%"))
    )?;
    Ok(())
}

fn run_json(r: &Run) -> Value {
    json!({"wall_s": r.wall.as_secs_f64(), "peak_rss": r.peak_rss, "status": r.status})
}

fn pair_json(p: &PairResult) -> Value {
    let methods: Vec<Value> = p
        .methods
        .iter()
        .map(|(m, outcome)| match outcome {
            Outcome::Ran(r) => json!({
                "method": m.name(), "size": r.size, "ratio": ratio(r.size, p.full),
                "encode": run_json(&r.encode), "decode": run_json(&r.decode),
                "old_read_budget_used_pct": r.budget_used,
            }),
            Outcome::Skipped(why) => json!({"method": m.name(), "skipped": why}),
            Outcome::Failed(why) => json!({"method": m.name(), "failed": why}),
        })
        .collect();
    let default = p.default_choice().map_or(
        Value::Null,
        |(m, size)| json!({"method": m.name(), "size": size, "ratio": ratio(size, p.full)}),
    );
    let external: Vec<Value> = p
        .tools
        .iter()
        .map(|t| json!({"tool": t.tool.name(), "size": t.size, "ratio": ratio(t.size, p.full), "encode": run_json(&t.encode)}))
        .collect();
    json!({
        "name": p.name, "old_size": p.old_size, "new_size": p.new_size, "full": p.full,
        "methods": methods, "default": default, "external": external,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geometric_mean_counts_its_pairs_and_is_none_when_empty() {
        let g = geomean([0.1, 0.4].into_iter()).unwrap();
        assert!((g.mean - 0.2).abs() < 1e-12, "{g:?}");
        assert_eq!(g.pairs, 2);
        assert!(geomean(std::iter::empty()).is_none());
    }
}
