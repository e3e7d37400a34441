//! Crash-injection soak: a real `petrel-agent` process is killed with
//! SIGKILL at a random instant of each update and restarted at once. Every
//! iteration must end with exactly one whole release running (one live
//! instance, of the desired generation, running the desired version) and
//! the journal consistent (reported `running`, current = desired, no
//! target). Before the kills, clean updates measure each strategy's
//! downtime: the longest stretch with no live app process.

use crate::fleet::start_controller;
use crate::sample;
use anyhow::{bail, Context, Result};
use petrel_controller::client::Client;
use petrel_controller::http::DeviceView;
use petrel_protocol::{ImageConfig, SwapStrategy};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::sync::watch;

mod liveness;

pub struct SoakOptions {
    pub iterations: usize,
    pub strategy: SwapStrategy,
    /// Kills land uniformly in `0..max_delay` after a deploy.
    pub max_delay: Duration,
    /// Clean updates measured for downtime before the kills.
    pub downtime_samples: usize,
    pub agent_bin: Option<PathBuf>,
}

#[derive(Debug, Default)]
pub struct SoakReport {
    pub iterations: usize,
    /// Downtime of each clean update, in ms.
    pub downtime_ms: Vec<u64>,
    /// The reported phase the device was last seen in before each kill.
    pub killed_in: std::collections::BTreeMap<String, usize>,
}

impl SoakReport {
    /// Human-readable result: iterations, where kills landed, downtime.
    pub fn summary(&self) -> String {
        let mut d = self.downtime_ms.clone();
        d.sort_unstable();
        let median = d.get(d.len() / 2).copied().unwrap_or(0);
        let max = d.last().copied().unwrap_or(0);
        format!(
            "{} iterations, each ended with exactly one whole release running\nkills landed in phases: {:?}\ndowntime over {} clean updates: median {median} ms, max {max} ms (all: {d:?})",
            self.iterations,
            self.killed_in,
            d.len()
        )
    }
}

struct AgentProcess {
    bin: PathBuf,
    config: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl AgentProcess {
    fn start(&mut self) -> Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
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

    fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Runs the soak; `Err` on the first iteration that breaks the invariant.
pub async fn run(opts: SoakOptions) -> Result<SoakReport> {
    let tmp = tempfile::tempdir()?;
    let root = tmp.path();
    let (stop, stop_rx) = watch::channel(false);
    let controller = start_controller(root, stop_rx).await?;
    controller.wait_ready().await?;
    let data_dir = root.join("device");
    std::fs::create_dir_all(&data_dir)?;
    controller
        .provision("soak-1", &data_dir, "heartbeat_s = 2\n")
        .await?;
    let config = data_dir.join("identity/agent.toml");
    let client = controller.client.clone();
    let bin = match &opts.agent_bin {
        Some(b) => b.clone(),
        None => crate::bins::workspace_binary("petrel-agent", "petrel-agent")?,
    };
    let mut agent = AgentProcess {
        bin,
        config,
        log: data_dir.join("agent.log"),
        child: None,
    };
    agent.start()?;
    let result = soak(&client, root, &data_dir, &mut agent, &opts).await;
    agent.kill9();
    liveness::stop_services(&data_dir.join("runtime")).await;
    let _ = petrel_runtime::rootfs::remove_all(&data_dir.join("rootfs"));
    let _ = stop.send(true);
    result.with_context(|| format!("agent log tail:\n{}", tail(&data_dir.join("agent.log"), 30)))
}

async fn soak(
    client: &Client,
    root: &Path,
    data_dir: &Path,
    agent: &mut AgentProcess,
    opts: &SoakOptions,
) -> Result<SoakReport> {
    prepare_releases(client, root, opts.strategy).await?;
    let mut report = SoakReport::default();
    let mut version = 1;
    deploy_and_wait(client, version).await?;
    for _ in 0..opts.downtime_samples {
        version = 3 - version;
        let watcher = liveness::Watcher::start(data_dir.join("runtime/instances"));
        deploy_and_wait(client, version).await?;
        report
            .downtime_ms
            .push(watcher.finish().await.as_millis() as u64);
    }
    for i in 0..opts.iterations {
        version = 3 - version;
        let deployed = client
            .deploy(&format!("soak@{version}"), &["soak-1".to_string()])
            .await?;
        let delay = rand::random::<u64>() % (opts.max_delay.as_millis() as u64 + 1);
        tokio::time::sleep(Duration::from_millis(delay)).await;
        let phase = device(client)
            .await
            .map(|d| phase_name(&d))
            .unwrap_or_default();
        *report.killed_in.entry(phase).or_default() += 1;
        agent.kill9();
        agent.start()?;
        let generation = deployed.first().map_or(0, |d| d.generation);
        check_one_whole_release(client, data_dir, version, generation)
            .await
            .with_context(|| {
                format!("iteration {i}: killed {delay} ms after deploying soak@{version}")
            })?;
        report.iterations += 1;
    }
    Ok(report)
}

async fn prepare_releases(client: &Client, root: &Path, strategy: SwapStrategy) -> Result<()> {
    let bin = sample::sample_app_binary()?;
    let swap = match strategy {
        SwapStrategy::Handover => "handover",
        SwapStrategy::StopFirst => "stop-first",
    };
    for v in ["1", "2"] {
        let dir = root.join(format!("app-v{v}"));
        sample::app_dir(&bin, v, &dir)?;
        let config = ImageConfig {
            entrypoint: vec!["/app/sample-app".into()],
            working_dir: Some("/app".into()),
            ..Default::default()
        };
        client.build_image(&dir, "soak-app", v, config).await?;
        let compose = format!("services:\n  app:\n    image: soak-app:{v}\n    command: [\"--interval-ms\", \"50\"]\n    x-petrel-swap: {swap}\n    healthcheck:\n      test: [\"RUNNING\", \"1\"]\n");
        client.create_release("soak", v, &compose).await?;
    }
    Ok(())
}

async fn device(client: &Client) -> Option<DeviceView> {
    client
        .devices()
        .await
        .ok()?
        .into_iter()
        .find(|d| d.id == "soak-1")
}

fn phase_name(d: &DeviceView) -> String {
    serde_json::to_value(d.phase)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default()
}

async fn deploy_and_wait(client: &Client, version: u32) -> Result<()> {
    let deployed = client
        .deploy(&format!("soak@{version}"), &["soak-1".to_string()])
        .await?;
    let generation = deployed.first().map_or(0, |d| d.generation);
    wait_converged(client, version, generation).await.map(drop)
}

async fn wait_converged(client: &Client, version: u32, generation: u64) -> Result<DeviceView> {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if let Some(d) = device(client).await {
            let on_version = d
                .current
                .as_ref()
                .is_some_and(|c| c.version == version.to_string());
            if d.converged()
                && on_version
                && d.applied_generation == generation
                && d.services.iter().all(|s| s.state == "running")
            {
                return Ok(d);
            }
            if Instant::now() > deadline {
                bail!("device did not converge on soak@{version} (generation {generation}): {d:?}");
            }
        } else if Instant::now() > deadline {
            bail!("device never reported");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The invariant: once converged, exactly one live instance exists, it is
/// the desired generation's, and its heartbeat says the desired version.
async fn check_one_whole_release(
    client: &Client,
    data_dir: &Path,
    version: u32,
    generation: u64,
) -> Result<()> {
    let view = wait_converged(client, version, generation).await?;
    if view.target.is_some() {
        bail!("journal still has a target after converging: {view:?}");
    }
    let live = liveness::live_instances(&data_dir.join("runtime/instances"));
    let expected = format!("app-g{generation}");
    if live.len() != 1 || live[0].0 != expected {
        bail!("expected exactly {expected} live, found {live:?}");
    }
    let beat = (0..40).find_map(|_| {
        std::thread::sleep(Duration::from_millis(50));
        std::fs::read_dir(data_dir.join("rootfs"))
            .ok()?
            .flatten()
            .find_map(|e| {
                let b = sample::read_heartbeat(&e.path())?;
                let writer = sample::heartbeat_writer(&e.path(), &b)?;
                let in_instance = sample::process_group(writer) == Some(live[0].1);
                (in_instance && b.version == version.to_string()).then_some(b)
            })
    });
    beat.map(drop).with_context(|| {
        let seen: Vec<_> = std::fs::read_dir(data_dir.join("rootfs"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| {
                let beat = sample::read_heartbeat(&e.path());
                (e.file_name(), beat, sample::processes_in(&e.path()))
            })
            .collect();
        format!(
            "live instance {expected} (pid {}) is not running v{version}; \
             rootfs heartbeats and processes: {seen:?}",
            live[0].1
        )
    })
}

fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
