//! The agent under test as a real process, and what its log says it was
//! doing: the journaled phase (`journaled phase phase=…`) and whether a
//! background collection was under way. The soak aims its kills by these
//! lines, which the agent writes before it acts, and labels each kill
//! with them.

use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Written into the log before each start, so a killed process's
/// unfinished collection is not read as the new one's.
const STARTED: &str = "=== crash soak: agent started ===";
const PHASE: &str = "journaled phase";
const COLLECTING: &str = "collecting unused layers";
const COLLECTED: &str = "collected unused layers";

pub struct AgentProcess {
    pub bin: PathBuf,
    pub config: PathBuf,
    pub log: PathBuf,
    pub child: Option<Child>,
}

impl AgentProcess {
    pub fn start(&mut self) -> Result<()> {
        use std::io::Write;
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        writeln!(log, "{STARTED}")?;
        let child = Command::new(&self.bin)
            .args(["run", "--config"])
            .arg(&self.config)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("spawning {}", self.bin.display()))?;
        self.child = Some(child);
        Ok(())
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The log's length: where lines written from now on start.
    pub fn log_mark(&self) -> u64 {
        std::fs::metadata(&self.log).map_or(0, |m| m.len())
    }

    /// What the log says the agent is doing.
    pub fn doing(&self) -> Doing {
        Doing::read(&std::fs::read_to_string(&self.log).unwrap_or_default())
    }

    /// Waits (up to `limit`) until a line after `mark` shows `target`
    /// begun; false if it never did.
    pub async fn wait_for(&self, target: &str, mark: u64, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if lines_since(&self.log, mark)
                .iter()
                .any(|l| begins(l, target))
            {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        false
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Whether `line` says `target` (a phase name, or `collecting`) began.
fn begins(line: &str, target: &str) -> bool {
    match target {
        "collecting" => line.contains(COLLECTING),
        phase => phase_of(line) == Some(phase),
    }
}

fn phase_of(line: &str) -> Option<&str> {
    line.contains(PHASE).then_some(())?;
    let rest = &line[line.find("phase=")? + "phase=".len()..];
    rest.split_whitespace().next().map(|p| p.trim_matches('"'))
}

/// The lines written after `mark`, read from there (the poll runs every
/// 2 ms: the log before it is not read again).
fn lines_since(log: &Path, mark: u64) -> Vec<String> {
    use std::io::{Read, Seek, SeekFrom};
    let mut text = Vec::new();
    if let Ok(mut f) = std::fs::File::open(log) {
        let _ = f
            .seek(SeekFrom::Start(mark))
            .and_then(|_| f.read_to_end(&mut text));
    }
    String::from_utf8_lossy(&text)
        .lines()
        .map(String::from)
        .collect()
}

/// The agent's activity as its log tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Doing {
    /// The last phase journaled (by this or an earlier process).
    pub phase: String,
    /// A collection begun by the current process has not finished.
    pub collecting: bool,
}

impl Doing {
    pub fn read(log: &str) -> Doing {
        let phase = log.lines().rev().find_map(phase_of).unwrap_or("idle");
        let this_run = log.rsplit(STARTED).next().unwrap_or(log);
        let (begun, ended) = (this_run.rfind(COLLECTING), this_run.rfind(COLLECTED));
        Doing {
            phase: phase.to_string(),
            collecting: begun.is_some_and(|b| ended.is_none_or(|e| e < b)),
        }
    }

    /// How a kill at this moment is counted: the phase, or `collecting`.
    pub fn label(&self) -> String {
        if self.collecting {
            format!("collecting ({})", self.phase)
        } else {
            self.phase.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_journaled_phase_and_an_unfinished_collection_are_read_from_the_log() {
        let log = "x INFO petrel_agent::driver: journaled phase phase=downloading\n\
                   x INFO petrel_agent::driver: journaled phase phase=running\n\
                   x INFO petrel_agent::cleaner: collecting unused layers and root filesystems\n";
        let d = Doing::read(log);
        assert_eq!(d.phase, "running");
        assert!(d.collecting);
        assert_eq!(d.label(), "collecting (running)");
    }

    #[test]
    fn a_collection_cut_short_by_a_kill_is_not_the_next_process_s() {
        let log =
            format!("a: journaled phase phase=running\nb: collecting unused layers\n{STARTED}\n");
        let d = Doing::read(&log);
        assert!(!d.collecting);
        assert_eq!(d.label(), "running");
        let done = format!("{log}c: collecting unused layers\nd: collected unused layers\n");
        assert!(!Doing::read(&done).collecting);
    }

    #[test]
    fn a_phase_line_is_recognised_with_or_without_quotes() {
        assert_eq!(
            phase_of("t INFO journaled phase phase=\"rolling-back\""),
            Some("rolling-back")
        );
        assert_eq!(phase_of("t INFO something else phase=running"), None);
        assert!(begins("t INFO journaled phase phase=swapping", "swapping"));
        assert!(!begins(
            "t INFO journaled phase phase=swapping",
            "installing"
        ));
    }
}
