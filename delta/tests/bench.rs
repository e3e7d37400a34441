//! `petrel-delta bench` end to end on a tiny generated corpus: the report
//! names every pair and method and ends with the geometric means and the
//! verdict line; `--json`, `--only` and `--methods` narrow and reshape it.
//! No timing assertions: only the shape of the output.

mod common;

use common::{cli, edited, random_bytes};
use std::path::Path;
use std::process::Command;

/// Two small pairs, `alpha` and `beta`, plus a directory that is not a pair.
fn corpus() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (i, name) in ["alpha", "beta"].into_iter().enumerate() {
        let pair = dir.path().join(name);
        std::fs::create_dir(&pair).unwrap();
        let old = random_bytes(10 + i as u64, 120_000);
        std::fs::write(pair.join("old.tar"), &old).unwrap();
        std::fs::write(pair.join("new.tar"), edited(&old, 20 + i as u64, 15)).unwrap();
    }
    std::fs::create_dir(dir.path().join("not-a-pair")).unwrap();
    dir
}

fn run_ok(args: &[&Path]) -> String {
    let out = cli(args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn bench_reports_every_pair_method_and_the_geometric_means() {
    let dir = corpus();
    let text = run_ok(&[Path::new("bench"), dir.path()]);
    for needle in [
        "alpha:",
        "beta:",
        "bsdiff+zstd",
        "zstd-ref",
        "default (",
        "geometric mean of patch / full over 2 pairs",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
    assert!(!text.contains("not-a-pair"), "{text}");
    let last = text.lines().last().unwrap();
    assert!(last.starts_with("default "), "last line: {last}");
    for tool in ["bsdiff", "xdelta3 -9", "zstd -19 --patch-from"] {
        // Each external tool is either measured (a row) or named as skipped.
        let measured = text.lines().any(|l| l.starts_with(&format!("  {tool} ")));
        let skipped = text.contains(&format!("skipped external tool {tool}:"));
        assert!(
            measured || skipped,
            "{tool} neither measured nor skipped:\n{text}"
        );
    }
}

#[test]
fn bench_without_the_external_tools_on_path_names_them_as_skipped() {
    let dir = corpus();
    let out = Command::new(env!("CARGO_BIN_EXE_petrel-delta"))
        .args([Path::new("bench"), Path::new("--only=alpha"), dir.path()])
        .env("PATH", dir.path()) // no programs there
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for skipped in [
        "skipped external tool bsdiff: bsdiff not on PATH",
        "skipped external tool xdelta3 -9: xdelta3 not on PATH",
        "skipped external tool zstd -19 --patch-from: zstd not on PATH",
    ] {
        assert!(text.contains(skipped), "missing {skipped:?} in:\n{text}");
    }
    assert!(text.contains("no external tool measured"), "{text}");
}

#[test]
fn bench_json_with_only_and_methods_holds_just_what_was_asked() {
    let dir = corpus();
    let text = run_ok(&[
        Path::new("bench"),
        Path::new("--json"),
        Path::new("--only=beta"),
        Path::new("--methods=bsdiff+zstd"),
        dir.path(),
    ]);
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    let pairs = doc["pairs"].as_array().unwrap();
    assert_eq!(pairs.len(), 1);
    assert_eq!(pairs[0]["name"], "beta");
    let methods = pairs[0]["methods"].as_array().unwrap();
    assert_eq!(methods.len(), 1);
    assert_eq!(methods[0]["method"], "bsdiff+zstd");
    let size = methods[0]["size"].as_u64().unwrap();
    assert!(size > 0 && size < pairs[0]["full"].as_u64().unwrap());
    assert!(methods[0]["decode"]["peak_rss"].as_u64().unwrap() > 0);
    assert_eq!(pairs[0]["default"]["method"], "bsdiff+zstd");
    assert!(doc["geomean"]["default"]["ratio"].as_f64().unwrap() > 0.0);
}

#[test]
fn bench_of_an_unknown_pair_or_an_empty_dir_fails_clearly() {
    let dir = corpus();
    let out = cli(&[Path::new("bench"), Path::new("--only=gamma"), dir.path()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no pair gamma"));
    let empty = tempfile::tempdir().unwrap();
    let out = cli(&[Path::new("bench"), empty.path()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no NAME/old.tar"));
}

#[test]
fn bench_reports_a_failing_method_goes_on_with_the_other_pairs_and_exits_non_zero() {
    let dir = corpus();
    // A pair whose old layer cannot be read (EIO at offset 0): `diff` fails
    // in the bench's child process, as an undecodable patch would.
    let broken = dir.path().join("broken");
    std::fs::create_dir(&broken).unwrap();
    std::os::unix::fs::symlink("/proc/self/mem", broken.join("old.tar")).unwrap();
    std::fs::copy(dir.path().join("alpha/new.tar"), broken.join("new.tar")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_petrel-delta"))
        .args([Path::new("bench"), dir.path()])
        .env("PATH", dir.path()) // no external tools: only our methods
        .env("RUST_BACKTRACE", "1")
        .output()
        .unwrap();
    let (text, err) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(!out.status.success(), "{text}\n{err}");
    // The pairs after the broken one are still measured and summed up.
    for needle in [
        "alpha:",
        "beta:",
        "broken:",
        "FAILED: petrel-delta diff (bsdiff+zstd) on broken exited with status 1",
        "Input/output error",
        "geometric mean of patch / full over 3 pairs",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
    // The child's whole error chain, and no backtrace despite RUST_BACKTRACE.
    assert!(err.contains("of the runs failed"), "{err}");
    assert!(
        err.contains("/proc/self/mem") || err.contains("old.tar"),
        "{err}"
    );
    assert!(!err.contains("Stack backtrace"), "{err}");
}

#[test]
fn a_failing_command_prints_its_whole_error_chain_whatever_rust_backtrace_is() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.tar");
    for backtrace in ["0", "1", "full"] {
        let out = Command::new(env!("CARGO_BIN_EXE_petrel-delta"))
            .args([
                Path::new("apply"),
                &missing,
                &missing,
                &dir.path().join("out"),
            ])
            .env("RUST_BACKTRACE", backtrace)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(err.starts_with("error: applying "), "{err}");
        assert!(
            err.contains("caused by: ") && err.contains("No such file"),
            "{err}"
        );
        assert!(
            !err.contains("backtrace"),
            "RUST_BACKTRACE={backtrace}: {err}"
        );
    }
}
