//! Child processes measured by `wait4`: wall time and peak RSS.
//!
//! Linux caveat: a child's `ru_maxrss` includes the high-water RSS of the
//! address space it was exec'd from. Rust spawns with `posix_spawn`
//! (vfork), so that is the *spawning* process's peak — for the bench
//! parent, which holds whole layers while compressing them, hundreds of
//! MB. So the bench starts, before it allocates anything large, a helper
//! (`petrel-delta bench-spawner`, this module's [`serve`]) that does
//! nothing but spawn the measured commands and `wait4` them; every figure
//! is then inflated by at most the helper's own peak RSS (a few MB), which
//! the helper reports with each result and the bench prints.
//!
//! Protocol on the helper's stdin/stdout, one request per line: a path
//! `P` whose `P.out` and `P.err` receive the child's stdout and stderr
//! (empty: discard stdout, stderr to the helper's own), then the program
//! and its arguments, joined by NUL bytes; the reply is
//! `status child_peak_kib wall_ns helper_peak_kib`, status being the exit
//! code, or 128 + the signal number.

use anyhow::{bail, ensure, Context, Result};
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

/// One measured run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    /// Exit code, or 128 + signal.
    pub status: i32,
    pub wall: Duration,
    /// Peak RSS of the child in bytes (an upper bound, see the module docs).
    pub peak_rss: u64,
}

/// The bench's handle on its helper process.
pub struct Spawner {
    child: Child,
    /// `None` only while dropping.
    requests: Option<BufWriter<ChildStdin>>,
    replies: BufReader<ChildStdout>,
    /// Highest peak RSS the helper reported for itself, in bytes.
    pub helper_peak: u64,
}

impl Spawner {
    /// Starts the helper: call this before allocating anything large.
    pub fn start() -> Result<Spawner> {
        let exe = std::env::current_exe().context("locating the petrel-delta binary")?;
        let mut child = Command::new(&exe)
            .arg("bench-spawner")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {} bench-spawner", exe.display()))?;
        let requests = Some(BufWriter::new(child.stdin.take().context("helper stdin")?));
        let replies = BufReader::new(child.stdout.take().context("helper stdout")?);
        Ok(Spawner {
            child,
            requests,
            replies,
            helper_peak: 0,
        })
    }

    /// Runs `program args…` to completion in the helper and measures it;
    /// with `capture` = `P`, its stdout and stderr go to `P.out` and `P.err`
    /// (created or truncated); see [`captured`].
    pub fn run(&mut self, program: &OsStr, args: &[&OsStr], capture: Option<&Path>) -> Result<Run> {
        let mut line = Vec::new();
        let capture = capture.map_or(OsStr::new(""), Path::as_os_str);
        for (i, word) in [capture, program]
            .into_iter()
            .chain(args.iter().copied())
            .enumerate()
        {
            let bytes = word.as_bytes();
            ensure!(
                !bytes.contains(&b'\n') && !bytes.contains(&0),
                "argument {word:?} holds a newline or NUL byte"
            );
            if i > 0 {
                line.push(0);
            }
            line.extend_from_slice(bytes);
        }
        line.push(b'\n');
        let requests = self.requests.as_mut().context("the helper is gone")?;
        requests.write_all(&line)?;
        requests
            .flush()
            .context("sending a command to the helper")?;
        let mut reply = String::new();
        self.replies.read_line(&mut reply)?;
        let fields: Vec<u64> = reply
            .split_whitespace()
            .map(str::parse)
            .collect::<Result<_, _>>()
            .with_context(|| format!("bad reply from the helper: {reply:?}"))?;
        let [status, peak_kib, wall_ns, helper_kib] = fields[..] else {
            bail!("bad reply from the helper: {reply:?}");
        };
        self.helper_peak = self.helper_peak.max(helper_kib * 1024);
        Ok(Run {
            status: i32::try_from(status).unwrap_or(i32::MAX),
            wall: Duration::from_nanos(wall_ns),
            peak_rss: peak_kib * 1024,
        })
    }
}

impl Drop for Spawner {
    fn drop(&mut self) {
        // Closing its stdin ends the helper's loop; then reap it.
        if let Some(mut requests) = self.requests.take() {
            let _ = requests.flush();
        }
        let _ = self.child.wait();
    }
}

/// The helper's main loop: one measured child per request line, until EOF.
pub fn serve() -> Result<()> {
    let stdin = std::io::stdin().lock();
    let mut out = std::io::stdout().lock();
    for line in stdin.split(b'\n') {
        let line = line.context("reading a request")?;
        let mut words = line
            .split(|b| *b == 0)
            .map(|w| OsString::from_vec(w.to_vec()));
        let capture = words.next().context("empty request")?;
        let program = words.next().context("request without a program")?;
        let args: Vec<OsString> = words.collect();
        let (stdout, stderr) = if capture.is_empty() {
            (Stdio::null(), Stdio::inherit())
        } else {
            let create = |ext: &str| -> Result<Stdio> {
                let path = captured(Path::new(&capture), ext);
                let file =
                    File::create(&path).with_context(|| format!("creating {}", path.display()))?;
                Ok(file.into())
            };
            (create("out")?, create("err")?)
        };
        let start = Instant::now();
        let child = Command::new(&program)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn();
        let (status, peak_kib) = match child {
            Ok(child) => wait_measured(child)?,
            Err(e) => {
                eprintln!("bench-spawner: cannot run {program:?}: {e}");
                (127, 0)
            }
        };
        let wall = start.elapsed().as_nanos();
        writeln!(out, "{status} {peak_kib} {wall} {}", own_peak_kib())?;
        out.flush()?;
    }
    Ok(())
}

/// Where a captured child's stream `ext` (`out` or `err`) went.
pub fn captured(capture: &Path, ext: &str) -> std::path::PathBuf {
    let mut name = capture.as_os_str().to_owned();
    name.push(".");
    name.push(ext);
    name.into()
}

/// Reaps `child` with `wait4`; returns (status, peak RSS in KiB).
#[allow(clippy::zombie_processes)] // reaped by wait4, which std cannot do
fn wait_measured(child: Child) -> Result<(i32, u64)> {
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: rusage is plain data that wait4 fills for our own child, which
    // is reaped here (the `Child` handle is never waited on afterwards).
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if reaped == pid {
            break;
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            return Err(err).context("wait4");
        }
    }
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        128 + libc::WTERMSIG(status)
    };
    // Linux reports ru_maxrss in KiB.
    Ok((code, usage.ru_maxrss as u64))
}

/// This process's own peak RSS in KiB.
fn own_peak_kib() -> u64 {
    // SAFETY: getrusage only fills the plain-data struct we pass.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let ok = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } == 0;
    if ok {
        usage.ru_maxrss as u64
    } else {
        0
    }
}
