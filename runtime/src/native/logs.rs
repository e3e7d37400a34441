//! Service logs: reading their tail, and rotating them while services run
//! (copy to `<name>.log.1`, then truncate: services write with O_APPEND,
//! so they carry on at the start of the emptied file, as logrotate's
//! `copytruncate` does; lines written between copy and truncate are lost).

use std::fs::{self, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::time::Duration;

/// Logs larger than this are rotated (one previous file is kept).
pub const ROTATE_BYTES: u64 = 1024 * 1024;

/// How often running services' logs are checked.
pub const SWEEP: Duration = Duration::from_secs(15);

/// Rotates every `*.log` in `dir` larger than `limit`; returns how many.
pub(super) fn rotate_all(dir: &Path, limit: u64) -> usize {
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    let mut n = 0;
    for e in entries.flatten() {
        let path = e.path();
        let big = e.metadata().is_ok_and(|m| m.len() > limit);
        if big && path.extension().is_some_and(|x| x == "log") && rotate(&path).is_ok() {
            n += 1;
        }
    }
    n
}

fn rotate(log: &Path) -> std::io::Result<()> {
    fs::copy(log, log.with_extension("log.1"))?;
    OpenOptions::new().write(true).open(log)?.set_len(0)
}

/// The last `lines` lines of a log (reading at most its last 256 KiB).
pub(super) fn tail(log: &Path, lines: usize) -> std::io::Result<String> {
    let mut f = fs::File::open(log)?;
    let len = f.metadata()?.len();
    f.seek(SeekFrom::Start(len.saturating_sub(256 * 1024)))?;
    let mut buf = Vec::new();
    f.read_to_end(&mut buf)?;
    let text = String::from_utf8_lossy(&buf);
    let all: Vec<&str> = text.lines().collect();
    Ok(all[all.len().saturating_sub(lines)..].join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_log_growing_past_the_limit_is_rotated_while_its_writer_keeps_appending() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("svc.log");
        let mut writer = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("open");
        writer.write_all(&vec![b'a'; 2000]).expect("write");
        assert_eq!(rotate_all(dir.path(), 1000), 1);
        writer.write_all(b"after\n").expect("write after");
        assert_eq!(fs::read_to_string(&log).expect("log"), "after\n");
        assert_eq!(
            fs::metadata(log.with_extension("log.1"))
                .expect("old")
                .len(),
            2000
        );
        assert_eq!(rotate_all(dir.path(), 1000), 0, "small logs stay");
    }

    #[test]
    fn tail_returns_the_last_lines() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("x.log");
        fs::write(&log, "1\n2\n3\n4\n").expect("write");
        assert_eq!(tail(&log, 2).expect("tail"), "3\n4");
    }
}
