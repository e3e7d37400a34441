//! Shared helpers of the integration tests: deterministic layer data and
//! the path of the CLI under test.

#![allow(dead_code)] // each test file uses a subset

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// A tiny xorshift generator: reproducible, no dependency.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// `len` pseudo-random bytes, 8 at a time (fast even in debug builds).
pub fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        out.extend_from_slice(&rng.next().to_le_bytes());
    }
    out.truncate(len);
    out
}

/// `old` with `edits` scattered changed bytes, insertions and deletions.
pub fn edited(old: &[u8], seed: u64, edits: usize) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let mut new = old.to_vec();
    for _ in 0..edits {
        let at = rng.below(new.len());
        match rng.below(3) {
            0 => new[at] ^= 0xff,
            1 => {
                let insert = random_bytes(rng.next(), 1 + rng.below(300));
                new.splice(at..at, insert);
            }
            _ => {
                let end = (at + 1 + rng.below(300)).min(new.len());
                new.drain(at..end);
            }
        }
    }
    new
}

/// Runs the `petrel-delta` binary with `args`.
pub fn cli(args: &[&Path]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_petrel-delta"))
        .args(args)
        .output()
        .expect("the petrel-delta binary runs")
}

/// Runs the CLI under test and returns (exit code, peak RSS in bytes) from wait4.
#[allow(clippy::zombie_processes)] // reaped by wait4, which std cannot do
pub fn run_measured(args: &[&Path]) -> (i32, u64) {
    let child = Command::new(env!("CARGO_BIN_EXE_petrel-delta"))
        .args(args)
        .spawn()
        .unwrap();
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: rusage is plain data that wait4 fills for our own child, which
    // is reaped here (the `Child` handle is never waited on afterwards).
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(reaped, pid, "wait4 failed");
    assert!(libc::WIFEXITED(status), "the CLI did not exit normally");
    // Linux reports ru_maxrss in KiB.
    (libc::WEXITSTATUS(status), usage.ru_maxrss as u64 * 1024)
}

/// `data` as `gzip -9n` compresses it (the CLI, as Debian does).
pub fn gzip_9n(data: &[u8]) -> Vec<u8> {
    let mut child = Command::new("gzip")
        .args(["-9n", "-c"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("gzip is installed");
    let mut stdin = child.stdin.take().unwrap();
    let input = data.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    out.stdout
}
