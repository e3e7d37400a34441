//! Fleets larger than one process can hold (each device costs about three
//! open files in the fault layer, and a process may hold 20,000 here) are
//! split into shards: `petrel-sim shard SPEC` processes, each running a
//! slice of the devices with its own proxies. The run drives them over
//! their standard input and output, one JSON line each way per tick: the
//! time into the rollout down, the slice's [`Tick`] up. Closing a shard's
//! input stops its devices cleanly and ends it.

use super::fleet::{SimFleet, Tick, Upstream};
use crate::scenario::Scenario;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

/// What a shard process is told to run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShardSpec {
    pub scenario: Scenario,
    pub from: usize,
    pub to: usize,
    pub upstream: Upstream,
    /// Where its devices keep their files.
    pub work: PathBuf,
}

/// One tick request.
#[derive(Debug, Serialize, Deserialize)]
struct TickAt {
    t: f64,
}

/// The shard process's side: runs the slice until its input closes.
/// Standard input and output are served by threads of their own: tokio's
/// stdin and stdout use the blocking pool, which the devices' installs
/// keep busy, and a tick answered late stalls the whole run's sampling.
pub async fn serve(spec_file: &Path) -> Result<()> {
    let text = std::fs::read_to_string(spec_file)
        .with_context(|| format!("reading {}", spec_file.display()))?;
    let spec: ShardSpec =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", spec_file.display()))?;
    let s = &spec.scenario;
    let mut fleet = SimFleet::start(s, spec.from..spec.to, &spec.upstream, &spec.work).await?;
    let (lines_tx, mut lines) = tokio::sync::mpsc::channel::<String>(4);
    std::thread::spawn(move || {
        for line in std::io::stdin().lines() {
            let Ok(line) = line else { break };
            if lines_tx.blocking_send(line).is_err() {
                break;
            }
        }
    });
    let (out, replies) = std::sync::mpsc::channel::<Vec<u8>>();
    let writer = std::thread::spawn(move || {
        use std::io::Write;
        let mut stdout = std::io::stdout().lock();
        for reply in replies {
            if stdout
                .write_all(&reply)
                .and_then(|_| stdout.flush())
                .is_err()
            {
                break;
            }
        }
    });
    while let Some(line) = lines.recv().await {
        let at: TickAt = serde_json::from_str(&line).with_context(|| format!("tick {line:?}"))?;
        let mut reply = serde_json::to_vec(&fleet.tick(s, at.t))?;
        reply.push(b'\n');
        if out.send(reply).is_err() {
            break;
        }
    }
    fleet.shut_down().await;
    drop(out);
    let _ = writer.join();
    Ok(())
}

/// The run's side: one shard process.
pub struct Shard {
    child: Child,
    input: Option<ChildStdin>,
    output: Lines<BufReader<ChildStdout>>,
    log: PathBuf,
}

impl Shard {
    /// Starts `petrel-sim shard` on `spec`, its log in `dir`.
    pub fn spawn(spec: &ShardSpec, dir: &Path) -> Result<Shard> {
        let name = format!("shard-{}", spec.from);
        let spec_file = dir.join(format!("{name}.json"));
        std::fs::write(&spec_file, serde_json::to_vec(spec)?)
            .with_context(|| format!("writing {}", spec_file.display()))?;
        let log = dir.join(format!("{name}.log"));
        let err =
            std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let bin = crate::bins::workspace_binary("petrel-simulator", "petrel-sim")?;
        let mut child = Command::new(&bin)
            .arg("shard")
            .arg(&spec_file)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(err)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let (Some(input), Some(output)) = (child.stdin.take(), child.stdout.take()) else {
            bail!("{name}: no pipes to the shard process");
        };
        Ok(Shard {
            child,
            input: Some(input),
            output: BufReader::new(output).lines(),
            log,
        })
    }

    /// Asks for the tick at `t` (answered by [`Shard::read`]).
    pub async fn send(&mut self, t: f64) -> Result<()> {
        let mut line = serde_json::to_vec(&TickAt { t })?;
        line.push(b'\n');
        let input = self.input.as_mut().context("the shard was stopped")?;
        input.write_all(&line).await.with_context(|| self.died())?;
        Ok(())
    }

    /// The shard's answer to the last [`Shard::send`].
    pub async fn read(&mut self) -> Result<Tick> {
        let line = self.output.next_line().await.with_context(|| self.died())?;
        let Some(line) = line else {
            bail!("{}", self.died());
        };
        serde_json::from_str(&line).with_context(|| format!("a shard's tick {line:?}"))
    }

    fn died(&self) -> String {
        format!("a shard process ended; see {}", self.log.display())
    }

    /// Stops its devices cleanly and waits for it (killed after 60 s).
    pub async fn stop(&mut self) {
        drop(self.input.take());
        let waited = tokio::time::timeout(std::time::Duration::from_secs(60), self.child.wait());
        if waited.await.is_err() {
            let _ = self.child.start_kill();
        }
    }
}
