//! Running the real `petrel` CLI against a test controller.

use crate::procs::Controller;
use std::process::Output;

/// Runs `petrel --controller URL ARGS...` and returns its output.
pub fn petrel(ctl: &Controller, args: &[&str]) -> Output {
    ctl.cli().args(args).output().expect("the petrel CLI runs")
}

/// Asserts the command failed and its stderr has every needle; returns it.
pub fn failed_saying(out: &Output, needles: &[&str]) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "expected a failure, got: {err}");
    for n in needles {
        assert!(err.contains(n), "missing {n:?} in: {err}");
    }
    err
}

/// Asserts the command succeeded; returns its stdout.
pub fn succeeded(out: &Output) -> String {
    assert!(
        out.status.success(),
        "petrel failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
