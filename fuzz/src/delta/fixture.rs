//! The delta harness's layers: a small old tar holding text, binary and a
//! gzip member, and an edited copy (a file changed, the gzip member's text
//! changed, a file removed and one added), built from fixed seeds.

use flate2::{write::GzEncoder, Compression};
use std::io::Write;
use std::process::{Command, Stdio};

pub(super) fn old_layer() -> Vec<u8> {
    layer(&[
        ("etc/app.conf", words(1, 600)),
        ("usr/lib/libapp.so", noise(2, 6000)),
        ("usr/share/doc/app.txt.gz", gzip(&words(3, 5000))),
        ("srv/data.txt", words(4, 3000)),
    ])
}

/// The old layer with a file edited, the gzip member's text edited, a
/// file removed and one added.
pub(super) fn new_layer() -> Vec<u8> {
    let mut lib = noise(2, 6000);
    lib[100..140].fill(0);
    let mut text = words(3, 5000);
    text.splice(2000..2000, *b"a new paragraph ");
    layer(&[
        ("etc/app.conf", words(11, 650)),
        ("usr/lib/libapp.so", lib),
        ("usr/share/doc/app.txt.gz", gzip(&text)),
        ("srv/new.txt", words(5, 800)),
    ])
}

fn layer(files: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    for (path, data) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(1_700_000_000);
        tar.append_data(&mut header, path, &data[..])
            .expect("append to an in-memory tar");
    }
    tar.into_inner().expect("finish an in-memory tar")
}

/// `data` as `gzip -9n` compresses it, whose members tar-aware rebuilds
/// bit-exactly (so the seeds exercise its `Gz` op); flate2's when there is
/// no gzip, which it may not rebuild (then the member is diffed as bytes).
fn gzip(data: &[u8]) -> Vec<u8> {
    gzip_cli(data).unwrap_or_else(|| {
        let mut gz = GzEncoder::new(Vec::new(), Compression::default());
        gz.write_all(data).expect("gzip into memory");
        gz.finish().expect("gzip into memory")
    })
}

fn gzip_cli(data: &[u8]) -> Option<Vec<u8>> {
    let mut child = Command::new("gzip")
        .arg("-9n")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .ok()?;
    let mut stdin = child.stdin.take()?;
    let input = data.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let output = child.wait_with_output().ok()?;
    writer.join().ok()?.ok()?;
    output.status.success().then_some(output.stdout)
}

/// Text-like bytes: words of a fixed pseudo-random vocabulary.
fn words(seed: u64, len: usize) -> Vec<u8> {
    let mut rng = Rng(seed | 1);
    let vocab: Vec<Vec<u8>> = (0..64)
        .map(|_| {
            (0..2 + rng.below(8))
                .map(|_| b'a' + rng.below(26) as u8)
                .collect()
        })
        .collect();
    let mut out = Vec::with_capacity(len + 16);
    while out.len() < len {
        out.extend_from_slice(&vocab[rng.below(vocab.len())]);
        out.push(b' ');
    }
    out.truncate(len);
    out
}

fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut rng = Rng(seed | 1);
    (0..len).map(|_| rng.next() as u8).collect()
}

/// xorshift64: reproducible seeds without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}
