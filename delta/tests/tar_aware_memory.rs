//! Device footprint bar for tar-aware: peak RSS while applying a tar-aware
//! delta to a 100 MB layer ≤ 64 MB. Runs `petrel-delta diff` and `apply`
//! as child processes and reads the apply's peak RSS from `wait4`.
//!
//! The pair is generated streaming to disk (the test process stays at a
//! few MB: a child's `ru_maxrss` includes the high-water mark of the
//! process it was spawned from, see `apply_memory.rs`) and built so that
//! every large buffer the decoder can have is in use:
//! - the diff stream carries more than its 8 MiB window (three 4 MiB
//!   files with every fourth byte changed: no zero run long enough to be
//!   sent as a length), and so does the extra stream (three 3 MiB random
//!   insertions);
//! - a gzip member of 7 MiB inflated, near the 8 MiB cap, changes, so a
//!   `Gz` op holds the old member, both inflated contents and the rebuilt
//!   member;
//! - the other files are unchanged or slightly edited, 100 MB in all.
//!
//! The ops and recipe streams stay far below their 4 MiB windows (filling
//! one needs about a million control steps); the README's bound adds them
//! at full size.

mod common;

use common::{random_bytes, run_measured, Rng};
use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};

const FILES: usize = 24;
const FILE_LEN: usize = 4 << 20;
const INSERT: usize = 3 << 20;
const LOG_LINES: usize = 120_000;
const BAR_BYTES: u64 = 64_000_000;

/// One ustar member: header, data from `fill`, padding.
fn member(out: &mut impl Write, path: &str, len: usize, fill: impl FnOnce(&mut dyn Write)) {
    let mut h = [0u8; 512];
    h[..path.len()].copy_from_slice(path.as_bytes());
    h[100..108].copy_from_slice(b"0000644\0");
    h[124..135].copy_from_slice(format!("{len:011o}").as_bytes());
    h[156] = b'0';
    h[257..265].copy_from_slice(b"ustar\x0000");
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
    h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
    out.write_all(&h).unwrap();
    let mut counted = Counted(out, 0);
    fill(&mut counted);
    assert_eq!(counted.1, len, "{path}");
    out.write_all(&vec![0u8; len.next_multiple_of(512) - len])
        .unwrap();
}

struct Counted<'a, W: ?Sized>(&'a mut W, usize);

impl<W: Write + ?Sized> Write for Counted<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.0.write(buf)?;
        self.1 += n;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

/// A changelog of `lines` lines, `extra` new ones first, gzipped by
/// `gzip -9n` into `path` (streamed through the CLI).
fn write_gz(path: &Path, extra: usize) {
    let mut child = Command::new("gzip")
        .args(["-9n", "-c"])
        .stdin(Stdio::piped())
        .stdout(File::create(path).unwrap())
        .spawn()
        .expect("gzip is installed");
    let mut stdin = BufWriter::new(child.stdin.take().unwrap());
    let mut rng = Rng::new(77);
    for i in 0..extra {
        writeln!(stdin, "  * new entry {i}: fixes {}", rng.below(1 << 20)).unwrap();
    }
    let mut rng = Rng::new(78);
    for i in 0..LOG_LINES {
        writeln!(
            stdin,
            "  * entry {i}: {} closes: #{}",
            ["fix build", "security update", "new upstream release"][rng.below(3)],
            rng.below(1 << 20)
        )
        .unwrap();
    }
    drop(stdin);
    assert!(child.wait().unwrap().success());
}

/// File `i` of the old layer, and how the new layer changes it.
fn old_file(i: usize) -> Vec<u8> {
    random_bytes(1000 + i as u64, FILE_LEN)
}

fn new_file(i: usize) -> Vec<u8> {
    let mut data = old_file(i);
    match i {
        // Dense edits: a diff byte of 1 at every fourth position.
        0..=2 => data
            .iter_mut()
            .step_by(4)
            .for_each(|b| *b = b.wrapping_add(1)),
        // New data in the middle.
        3..=5 => {
            let at = FILE_LEN / 2;
            data.splice(at..at, random_bytes(2000 + i as u64, INSERT));
        }
        // A few changed bytes.
        6..=11 => (0..4).for_each(|k| data[k * 1_000_003 % FILE_LEN] ^= 0x55),
        _ => {}
    }
    data
}

fn write_tar(path: &Path, gz: &Path, file: impl Fn(usize) -> Vec<u8>) {
    let mut out = BufWriter::new(File::create(path).unwrap());
    for i in 0..FILES {
        let data = file(i);
        member(&mut out, &format!("usr/lib/part{i}.bin"), data.len(), |w| {
            w.write_all(&data).unwrap()
        });
    }
    let gz_len = std::fs::metadata(gz).unwrap().len() as usize;
    member(&mut out, "usr/share/doc/pkg/changelog.gz", gz_len, |w| {
        std::io::copy(&mut File::open(gz).unwrap(), w).unwrap();
    });
    out.write_all(&[0u8; 1024]).unwrap();
    out.flush().unwrap();
}

fn same_files(a: &Path, b: &Path) -> bool {
    let (mut a, mut b) = (File::open(a).unwrap(), File::open(b).unwrap());
    let (mut x, mut y) = (vec![0u8; 1 << 16], vec![0u8; 1 << 16]);
    loop {
        let n = a.read(&mut x).unwrap();
        if n == 0 {
            return b.read(&mut y).unwrap() == 0;
        }
        if b.read_exact(&mut y[..n]).is_err() || x[..n] != y[..n] {
            return false;
        }
    }
}

#[test]
fn applying_a_tar_aware_delta_to_a_100_mb_layer_peaks_under_64_mb_rss() {
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name);
    write_gz(&p("old.gz"), 0);
    write_gz(&p("new.gz"), 2_000);
    write_tar(&p("old.tar"), &p("old.gz"), old_file);
    write_tar(&p("new.tar"), &p("new.gz"), new_file);
    let old_len = std::fs::metadata(p("old.tar")).unwrap().len();
    assert!(old_len > 95_000_000, "old layer of {old_len} bytes");

    let (code, _) = run_measured(&[
        Path::new("diff"),
        Path::new("--method=tar-aware"),
        &p("old.tar"),
        &p("new.tar"),
        &p("patch"),
    ]);
    assert_eq!(code, 0, "diff failed");
    let (code, peak) = run_measured(&[
        Path::new("apply"),
        &p("old.tar"),
        &p("patch"),
        &p("out.tar"),
    ]);
    assert_eq!(code, 0, "apply failed");
    assert!(same_files(&p("out.tar"), &p("new.tar")));
    eprintln!("tar-aware apply to a {old_len} byte old layer: peak RSS at most {peak} bytes");
    assert!(
        peak <= BAR_BYTES,
        "peak RSS {peak} bytes is over {BAR_BYTES}"
    );
}
