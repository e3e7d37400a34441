//! Synthetic layer tars for the tar-aware tests, made with the `tar`
//! crate (GNU headers, as `dpkg-deb` writes them; pax records by hand),
//! gzip members made by the `gzip` CLI, and the plumbing to diff and
//! apply them through the crate's public entry points.

use super::super::encoder;
use super::super::ops::{Op, OpReader};
use crate::methods::bsdiff_zstd::control::Control;
use crate::{apply_with_limits, diff, ApplyReport, DeltaError, EncodeOptions, Limits, Method};
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// A tar being built.
pub(super) struct Layer(tar::Builder<Vec<u8>>);

impl Layer {
    pub(super) fn new() -> Layer {
        Layer(tar::Builder::new(Vec::new()))
    }

    /// A regular file with a GNU header (long paths get an `L` block).
    pub(super) fn file(mut self, path: &str, data: &[u8]) -> Layer {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(1_700_000_000);
        self.0.append_data(&mut h, path, data).unwrap();
        self
    }

    /// A regular file whose path is carried by a pax `x` record.
    pub(super) fn pax_file(mut self, path: &str, data: &[u8]) -> Layer {
        let body = format!(" path={path}\n");
        let mut len = body.len() + 1;
        while format!("{len}{body}").len() != len {
            len += 1;
        }
        let record = format!("{len}{body}");
        let mut x = tar::Header::new_ustar();
        x.set_entry_type(tar::EntryType::XHeader);
        x.set_path("PaxHeaders/file").unwrap();
        x.set_size(record.len() as u64);
        x.set_cksum();
        self.0.append(&x, record.as_bytes()).unwrap();
        let mut h = tar::Header::new_ustar();
        h.set_path("pax-short-name").unwrap();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        self.0.append(&h, data).unwrap();
        self
    }

    pub(super) fn dir(mut self, path: &str) -> Layer {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_size(0);
        h.set_mode(0o755);
        self.0.append_data(&mut h, path, &b""[..]).unwrap();
        self
    }

    /// A symbolic (`kind` Symlink) or hard (`Link`) link.
    pub(super) fn link(mut self, kind: tar::EntryType, path: &str, target: &str) -> Layer {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_size(0);
        self.0.append_link(&mut h, path, target).unwrap();
        self
    }

    pub(super) fn finish(self) -> Vec<u8> {
        self.0.into_inner().unwrap()
    }
}

/// `data` as `gzip -9n` compresses it.
pub(super) fn gzip(data: &[u8]) -> Vec<u8> {
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
    assert!(out.status.success());
    out.stdout
}

/// Text-like lines, as in a changelog.
pub(super) fn text(seed: u64, lines: usize) -> Vec<u8> {
    let mut rng = crate::testdata::Rng::new(seed);
    let words = [
        "fix", "security", "update", "the", "upstream", "release", "CVE", "build",
    ];
    let mut out = Vec::new();
    for i in 0..lines {
        out.extend_from_slice(format!("  * entry {i}:").as_bytes());
        for _ in 0..3 + rng.below(8) {
            out.push(b' ');
            out.extend_from_slice(words[rng.below(words.len())].as_bytes());
        }
        out.push(b'\n');
    }
    out
}

/// An old and a new layer on disk and the patch between them.
pub(super) struct Case {
    pub dir: tempfile::TempDir,
    pub old: PathBuf,
    pub new: Vec<u8>,
    pub old_bytes: Vec<u8>,
}

impl Case {
    pub(super) fn new(old: &[u8], new: &[u8]) -> Case {
        let dir = tempfile::tempdir().unwrap();
        let old_path = dir.path().join("old.tar");
        std::fs::write(&old_path, old).unwrap();
        std::fs::write(dir.path().join("new.tar"), new).unwrap();
        Case {
            dir,
            old: old_path,
            new: new.to_vec(),
            old_bytes: old.to_vec(),
        }
    }

    /// Encodes with tar-aware alone; returns the patch bytes.
    pub(super) fn diff(&self) -> Vec<u8> {
        let opts = EncodeOptions {
            methods: vec![Method::TarAware],
            ..EncodeOptions::default()
        };
        let patch = self.dir.path().join("patch");
        diff(&self.old, &self.dir.path().join("new.tar"), &patch, &opts).unwrap();
        std::fs::read(patch).unwrap()
    }

    /// Applies `patch`; returns the result and what was written.
    pub(super) fn apply(&self, patch: &[u8]) -> (Result<ApplyReport, DeltaError>, Vec<u8>) {
        let path = self.dir.path().join("candidate");
        std::fs::write(&path, patch).unwrap();
        let mut out = Vec::new();
        let result = apply_with_limits(&self.old, &path, &mut out, &Limits::default());
        (result, out)
    }

    /// Diffs, applies and checks the result byte for byte; returns the
    /// patch size.
    pub(super) fn round_trip(&self) -> usize {
        let patch = self.diff();
        let (result, out) = self.apply(&patch);
        let report = result.unwrap();
        assert_eq!(report.header.method, Method::TarAware);
        assert!(out == self.new, "the output differs from the new layer");
        patch.len()
    }

    /// The ops the encoder plans for this pair, controls skipped.
    pub(super) fn ops(&self) -> Vec<Op> {
        let raw = encoder::plan(&self.old_bytes, &self.new).unwrap();
        let (old_index, _) = encoder::index_pair(&self.old_bytes, &self.new).unwrap();
        let mut r = &raw.ops[..];
        let mut reader = OpReader::new(old_index.files.len() as u64);
        let mut ops = Vec::new();
        loop {
            let op = reader.read(&mut r).unwrap();
            let steps = match op {
                Op::Skeleton { len } | Op::Bsdiff { new_len: len, .. } => len,
                Op::Gz { plain_len, .. } => plain_len,
                Op::Same { .. } | Op::End => 0,
            };
            let mut written = 0;
            while written < steps {
                let c = Control::read(&mut r).unwrap().unwrap();
                written += c.diff_len + c.extra_len;
            }
            ops.push(op);
            if op == Op::End {
                return ops;
            }
        }
    }
}
