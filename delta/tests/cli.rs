//! The `petrel-delta` binary end to end: diff → info → apply round-trips
//! byte-exact in a temp dir, and a failed apply leaves no NEW file behind.

mod common;

use common::{cli, edited, random_bytes};
use std::path::Path;

#[test]
fn cli_diff_then_apply_round_trips_byte_exact() {
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name);
    let old = random_bytes(1, 1 << 20);
    let new = edited(&old, 2, 50);
    std::fs::write(p("old.tar"), &old).unwrap();
    std::fs::write(p("new.tar"), &new).unwrap();

    let out = cli(&[Path::new("diff"), &p("old.tar"), &p("new.tar"), &p("patch")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("chosen") && stdout.contains("ratio"),
        "{stdout}"
    );

    let out = cli(&[Path::new("info"), &p("patch")]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("method"));

    let out = cli(&[
        Path::new("apply"),
        &p("old.tar"),
        &p("patch"),
        &p("out.tar"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(std::fs::read(p("out.tar")).unwrap() == new);
}

#[test]
fn cli_apply_to_the_wrong_old_layer_fails_and_leaves_no_output() {
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name);
    let old = random_bytes(3, 100_000);
    std::fs::write(p("old.tar"), &old).unwrap();
    std::fs::write(p("new.tar"), edited(&old, 4, 10)).unwrap();
    std::fs::write(p("other.tar"), random_bytes(5, 100_000)).unwrap();
    let method = Path::new("--method=bsdiff+zstd");
    let out = cli(&[
        Path::new("diff"),
        method,
        &p("old.tar"),
        &p("new.tar"),
        &p("patch"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = cli(&[
        Path::new("apply"),
        &p("other.tar"),
        &p("patch"),
        &p("out.tar"),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("delta was made from"));
    let mut names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["new.tar", "old.tar", "other.tar", "patch"]);
}
