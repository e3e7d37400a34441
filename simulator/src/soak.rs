//! Crash-injection soak: a real `petrel-agent` process is killed with
//! SIGKILL during each update and restarted at once. The kills are aimed
//! in turn at every phase an update goes through — downloading,
//! installing, swapping, rolling back (a broken release) and the
//! background collection after a swap — by the lines the agent logs as
//! it journals each phase, and each kill is counted by what the log says
//! the agent was doing. Every iteration must end with exactly one whole
//! release running, the journal settled, and no leftovers once the
//! collection is done. Before the kills, clean updates measure the swap
//! strategy's downtime: the longest stretch with no live app process.

use crate::fleet::start_controller;
use crate::link::{proxy, DeviceLink, Kind, Profile};
use anyhow::{bail, Context, Result};
use checks::Expect;
use petrel_controller::client::Client;
use petrel_protocol::SwapStrategy;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

mod agent;
mod checks;
mod liveness;
mod releases;

use agent::AgentProcess;
use releases::Releases;

pub struct SoakOptions {
    pub iterations: usize,
    pub strategy: SwapStrategy,
    /// Bytes of new content in each release.
    pub payload_bytes: usize,
    /// The device's download bandwidth, kilobits per second.
    pub link_kbps: u64,
    /// Clean updates measured for downtime before the kills.
    pub downtime_samples: usize,
    pub agent_bin: Option<std::path::PathBuf>,
}

impl Default for SoakOptions {
    fn default() -> Self {
        SoakOptions {
            iterations: 10,
            strategy: SwapStrategy::Handover,
            payload_bytes: 4 << 20,
            link_kbps: 32_000,
            downtime_samples: 3,
            agent_bin: None,
        }
    }
}

/// The phases kills are aimed at, in turn, and how long after the phase
/// begins a kill may land (uniformly), in ms.
const TARGETS: [(&str, u64); 5] = [
    ("downloading", 800),
    ("installing", 40),
    ("swapping", 900),
    ("rolling-back", 10),
    ("collecting", 5),
];

#[derive(Debug, Default)]
pub struct SoakReport {
    pub iterations: usize,
    /// Downtime of each clean update, in ms.
    pub downtime_ms: Vec<u64>,
    /// What the agent's log said it was doing at each kill.
    pub killed_in: BTreeMap<String, usize>,
    /// Kills whose aimed-at phase was seen begun, by target.
    pub aimed: BTreeMap<String, usize>,
}

impl SoakReport {
    /// Human-readable result: iterations, where kills landed, downtime.
    pub fn summary(&self) -> String {
        let mut d = self.downtime_ms.clone();
        d.sort_unstable();
        let median = d.get(d.len() / 2).copied().unwrap_or(0);
        let max = d.last().copied().unwrap_or(0);
        format!(
            "{} iterations, each ended with exactly one whole release running and no leftovers\n\
             kills landed in (as the agent's log tells): {:?}\n\
             kills whose target phase was seen begun: {:?}\n\
             downtime over {} clean updates: median {median} ms, max {max} ms (all: {d:?})",
            self.iterations,
            self.killed_in,
            self.aimed,
            d.len()
        )
    }

    /// Kills that landed while `phase` (or, `collecting`, a collection)
    /// was under way.
    pub fn landed_in(&self, phase: &str) -> usize {
        self.killed_in
            .iter()
            .filter(|(label, _)| label.as_str() == phase || label.starts_with(phase))
            .map(|(_, n)| n)
            .sum()
    }
}

/// Runs the soak; `Err` on the first iteration that breaks the invariant.
pub async fn run(opts: SoakOptions) -> Result<SoakReport> {
    let tmp = tempfile::tempdir()?;
    let root = tmp.path();
    let (stop, stop_rx) = watch::channel(false);
    let controller = start_controller(root, stop_rx).await?;
    controller.wait_ready().await?;
    let mut profile = Profile::builtin().remove(0);
    profile.down_kbps = Some(opts.link_kbps);
    let link = Arc::new(DeviceLink::new(profile, 1));
    let port = proxy::start_one(link, controller.http, Kind::Http).await?;
    let data_dir = root.join("device");
    std::fs::create_dir_all(&data_dir)?;
    let url = Some(format!("https://127.0.0.1:{port}"));
    let cfg = "heartbeat_s = 2\n";
    controller
        .provision_via(checks::DEVICE, &data_dir, cfg, url)
        .await?;
    let bin = match &opts.agent_bin {
        Some(b) => b.clone(),
        None => crate::bins::workspace_binary("petrel-agent", "petrel-agent")?,
    };
    let mut agent = AgentProcess {
        bin,
        config: data_dir.join("identity/agent.toml"),
        log: data_dir.join("agent.log"),
        child: None,
    };
    agent.start()?;
    let releases = Releases::new(root, opts.strategy, opts.payload_bytes)?;
    let client = controller.client.clone();
    let result = soak(&client, &data_dir, &mut agent, &releases, &opts).await;
    agent.kill9();
    liveness::stop_services(&data_dir.join("runtime")).await;
    let _ = petrel_runtime::rootfs::remove_all(&data_dir.join("rootfs"));
    let _ = stop.send(true);
    result.with_context(|| {
        let log = checks::tail(&data_dir.join("agent.log"), 40);
        format!("agent log tail:\n{log}")
    })
}

/// One soak: the device's state carried from iteration to iteration.
struct Soak<'a> {
    client: &'a Client,
    data_dir: &'a Path,
    releases: &'a Releases,
    /// The last version deployed, and the good release that runs.
    version: u32,
    good: (u32, u64),
}

async fn soak(
    client: &Client,
    data_dir: &Path,
    agent: &mut AgentProcess,
    releases: &Releases,
    opts: &SoakOptions,
) -> Result<SoakReport> {
    let mut s = Soak {
        client,
        data_dir,
        releases,
        version: 0,
        good: (0, 0),
    };
    let mut report = SoakReport::default();
    s.update(false).await?;
    for _ in 0..opts.downtime_samples {
        let watcher = liveness::Watcher::start(data_dir.join("runtime/instances"));
        s.update(false).await?;
        report
            .downtime_ms
            .push(watcher.finish().await.as_millis() as u64);
    }
    for i in 0..opts.iterations {
        let (target, window) = TARGETS[i % TARGETS.len()];
        s.iteration(agent, target, window, &mut report)
            .await
            .with_context(|| format!("iteration {i} (kill aimed at {target})"))?;
        report.iterations += 1;
    }
    Ok(report)
}

impl Soak<'_> {
    /// Publishes and deploys the next version; its expected outcome.
    async fn deploy(&mut self, broken: bool) -> Result<Expect> {
        self.version += 1;
        let v = self.version;
        self.releases.publish(self.client, v, broken).await?;
        let deployed = self
            .client
            .deploy(&format!("soak@{v}"), &[checks::DEVICE.to_string()])
            .await?;
        let generation = deployed.first().map_or(0, |d| d.generation);
        Ok(if broken {
            Expect {
                version: self.good.0,
                instance_generation: self.good.1,
                deployed: generation,
                broken,
            }
        } else {
            Expect {
                version: v,
                instance_generation: generation,
                deployed: generation,
                broken,
            }
        })
    }

    /// Deploys and waits for the outcome, without a kill.
    async fn update(&mut self, broken: bool) -> Result<()> {
        let expect = self.deploy(broken).await?;
        checks::wait_settled(self.client, expect).await?;
        self.settled(expect).await;
        Ok(())
    }

    /// The device settled on `expect`: the good release moves on, and a
    /// version two releases back is retired.
    async fn settled(&mut self, expect: Expect) {
        if !expect.broken {
            self.good = (expect.version, expect.instance_generation);
        }
        if let Some(old) = self.version.checked_sub(3).filter(|v| *v > 0) {
            self.releases.retire(self.client, old).await;
        }
    }

    async fn iteration(
        &mut self,
        agent: &mut AgentProcess,
        target: &str,
        window: u64,
        report: &mut SoakReport,
    ) -> Result<()> {
        let mark = agent.log_mark();
        let expect = self.deploy(target == "rolling-back").await?;
        if agent.wait_for(target, mark, Duration::from_secs(60)).await {
            *report.aimed.entry(target.to_string()).or_default() += 1;
        }
        let delay = rand::random::<u64>() % (window + 1);
        tokio::time::sleep(Duration::from_millis(delay)).await;
        let doing = agent.doing();
        agent.kill9();
        *report.killed_in.entry(doing.label()).or_default() += 1;
        agent.start()?;
        checks::one_whole_release(self.client, self.data_dir, expect)
            .await
            .with_context(|| format!("killed {delay} ms into {target}, while {doing:?}"))?;
        self.settled(expect).await;
        self.no_leftovers(agent).await
    }

    /// Once the collection after the update is done, nothing is left
    /// beyond the releases kept.
    async fn no_leftovers(&self, agent: &AgentProcess) -> Result<()> {
        let mut found = Vec::new();
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if agent.doing().collecting {
                continue;
            }
            // each soak release is one layer; two releases are kept
            found = checks::leftovers(self.data_dir, 2);
            if found.is_empty() {
                return Ok(());
            }
        }
        bail!("leftovers after the collection: {found:?}")
    }
}
