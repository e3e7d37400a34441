//! Reading the shim's log (the line format is described in
//! `tests/powercut/shim.c`).

use anyhow::{bail, Context, Result};
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;

/// What an entry an unlink or rename removed can be restored from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Victim {
    /// Nothing was replaced.
    None,
    /// Hard-linked into the stash under this name.
    Stashed(String),
    /// An empty directory with this mode.
    EmptyDir(u32),
    /// Replaced, but the shim could not keep it.
    Lost,
}

/// One logged operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Create {
        parent: u64,
        ino: u64,
        dir: bool,
        path: PathBuf,
    },
    Unlink {
        parent: u64,
        victim: Victim,
        path: PathBuf,
    },
    Rmdir {
        parent: u64,
        ino: u64,
        mode: u32,
        path: PathBuf,
    },
    Rename {
        parents: [u64; 2],
        ino: u64,
        victim: Victim,
        from: PathBuf,
        to: PathBuf,
    },
    /// A write or size change: `pre_len` bytes of the pre-image file at
    /// `pre_off` are what the file held at `at` before it.
    Data {
        ino: u64,
        at: u64,
        pre_off: u64,
        pre_len: u64,
        size_before: u64,
    },
    /// An fsync or fdatasync of a file, or (`dir`) of a directory, begun
    /// when the log was `start` bytes long.
    Sync { ino: u64, dir: bool, start: u64 },
    /// syncfs or sync.
    SyncAll { start: u64 },
    /// sync_file_range, the shim's own cut, or anything else kept for the
    /// record only.
    Note,
}

/// A logged operation and the byte offset of its line in the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub offset: u64,
    pub op: Op,
    pub line: String,
}

/// Parses a whole log.
pub fn parse(text: &str) -> Result<Vec<Entry>> {
    let mut offset = 0;
    let mut out = Vec::new();
    for line in text.split_inclusive('\n') {
        if line.ends_with('\n') {
            let op = parse_line(line.trim_end()).with_context(|| format!("log line {line:?}"))?;
            let line = line.trim_end().to_string();
            out.push(Entry { offset, op, line });
        }
        offset += line.len() as u64;
    }
    Ok(out)
}

fn parse_line(line: &str) -> Result<Op> {
    let f: Vec<&str> = line.split(' ').collect();
    let num = |i: usize| -> Result<u64> {
        let s = f.get(i).context("missing field")?;
        s.parse()
            .with_context(|| format!("field {i} is not a number"))
    };
    let path = |i: usize| f.get(i).map(|s| decode(s)).context("missing path");
    Ok(match f[0] {
        "C" => Op::Create {
            parent: num(1)?,
            ino: num(2)?,
            dir: f.get(3) == Some(&"d"),
            path: path(4)?,
        },
        "U" => Op::Unlink {
            parent: num(1)?,
            victim: victim(f.get(3).copied())?,
            path: path(4)?,
        },
        "D" => Op::Rmdir {
            parent: num(1)?,
            ino: num(2)?,
            mode: u32::from_str_radix(f.get(3).context("missing mode")?, 8)?,
            path: path(4)?,
        },
        "R" => Op::Rename {
            parents: [num(1)?, num(2)?],
            ino: num(3)?,
            victim: victim(f.get(4).copied())?,
            from: path(5)?,
            to: path(6)?,
        },
        "W" => Op::Data {
            ino: num(1)?,
            at: num(2)?,
            pre_off: num(4)?,
            pre_len: num(5)?,
            size_before: num(6)?,
        },
        "T" => Op::Data {
            ino: num(1)?,
            at: num(2)?,
            pre_off: num(3)?,
            pre_len: num(4)?,
            size_before: num(5)?,
        },
        "S" => Op::Sync {
            ino: num(1)?,
            dir: false,
            start: num(3)?,
        },
        "Y" => Op::Sync {
            ino: num(1)?,
            dir: true,
            start: num(2)?,
        },
        "A" => Op::SyncAll { start: num(1)? },
        "P" | "K" => Op::Note,
        "X" => bail!("renameat2(RENAME_EXCHANGE) is not modelled"),
        other => bail!("unknown operation {other:?}"),
    })
}

fn victim(field: Option<&str>) -> Result<Victim> {
    Ok(match field.context("missing victim")? {
        "-" => Victim::None,
        s if s.starts_with('@') => Victim::EmptyDir(u32::from_str_radix(&s[1..], 8)?),
        s => Victim::Stashed(s.to_string()),
    })
}

/// Undoes the shim's percent-encoding of a path.
fn decode(s: &str) -> PathBuf {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match (b[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    PathBuf::from(OsString::from_vec(out))
}
