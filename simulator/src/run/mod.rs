//! `petrel-sim run SCENARIO.toml --report DIR`: a scenario played against
//! a real controller process. The releases are built and uploaded, the
//! fleet of virtual devices connects through the fault layer, the first
//! release is installed everywhere, then the last is rolled out while the
//! scenario's faults hit the fleet; the run is sampled every second and
//! ends when the rollout is over and every device runs what it should (or
//! at the timeout). What it measured becomes the report.
//!
//! - [`controller`]: the controller process and its CPU and memory.
//! - [`images`]: the made-up application image of each release.
//! - [`mosquitto`]: the external broker, for runs on that path.
//! - [`fleet`]: the virtual devices one process holds, their links, the
//!   faults.
//! - [`shards`]: fleets split over several simulator processes.
//! - [`devices`]: the fleet as the run drives it, here or in shards.
//! - [`sampler`]: the once-a-second sample and the live progress line.

pub mod controller;
pub mod devices;
pub mod fleet;
pub mod images;
pub mod mosquitto;
pub mod rates;
pub mod sampler;
pub mod shards;

use crate::report::{Report, Setup};
use crate::scenario::{BrokerKind, Scenario};
use anyhow::{bail, Context, Result};
use controller::ControllerProcess;
use petrel_controller::client::Client;
use petrel_controller::http::rollouts::CreateRollout;
use petrel_protocol::rollout::Breach;
use petrel_protocol::ImageConfig;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub struct RunOptions {
    pub report_dir: PathBuf,
    /// Print a progress line every few seconds.
    pub live: bool,
    /// Devices one simulator process holds; a larger fleet is split over
    /// shard processes ([`devices::PER_PROCESS`] by default).
    pub per_process: usize,
}

impl RunOptions {
    /// The defaults: progress lines, [`devices::PER_PROCESS`].
    pub fn new(report_dir: PathBuf) -> RunOptions {
        RunOptions {
            report_dir,
            live: true,
            per_process: devices::PER_PROCESS,
        }
    }
}

/// Runs `scenario`; writes and returns its report.
pub async fn run(scenario: &Scenario, opts: &RunOptions) -> Result<Report> {
    let work = tempfile::tempdir().context("creating a work dir")?;
    std::fs::create_dir_all(&opts.report_dir)
        .with_context(|| format!("creating {}", opts.report_dir.display()))?;
    let mosquitto = match scenario.broker {
        BrokerKind::Embedded => None,
        BrokerKind::Mosquitto => Some(mosquitto::MosquittoProcess::start(
            &work.path().join("mosquitto"),
        )?),
    };
    let external = mosquitto.as_ref().map(|m| m.addr);
    let ctl = ControllerProcess::start(&work.path().join("controller"), external).await?;
    let result = play(scenario, opts, &ctl, work.path()).await;
    // the agents' root filesystems stay mounted after their devices stop
    // (as on a device); left, they fill the machine's mount table
    let unmounted = petrel_runtime::rootfs::unmount_all_under(work.path());
    let log = work.path().join("controller/controller.log");
    let _ = std::fs::copy(&log, opts.report_dir.join("controller.log"));
    ctl.stop();
    let mut report = result?;
    unmounted.context("unmounting the virtual devices' root filesystems")?;
    let left = petrel_runtime::rootfs::mounts_under(work.path())?;
    if let Some(m) = left.first() {
        bail!(
            "{} mounts left under the run's directory, e.g. {}",
            left.len(),
            m.display()
        );
    }
    report.controller_link_losses = std::fs::read_to_string(&log)
        .map(|text| text.matches("broker connection lost").count())
        .unwrap_or(0);
    report.broker = scenario.broker;
    report.external_broker = mosquitto.as_ref().map(|m| m.usage());
    report.write(&opts.report_dir)?;
    Ok(report)
}

async fn play(
    s: &Scenario,
    opts: &RunOptions,
    ctl: &ControllerProcess,
    work: &Path,
) -> Result<Report> {
    let client = &ctl.client;
    let image_bytes = build_releases(s, client, work).await?;
    let up = ctl.upstream();
    let mut fleet = devices::Devices::start(s, &up, work, opts.per_process).await?;
    fleet.live = opts.live;
    let started = Instant::now();
    fleet
        .wait_online(client, Duration::from_secs(s.timeout_s))
        .await?;
    let connect_s = started.elapsed().as_secs_f64();
    fleet.label(s, client).await?;
    let first = format!("sim@{}", s.releases[0].version);
    let t = Instant::now();
    client.deploy(&first, &fleet.ids()).await?;
    fleet
        .wait_converged(client, &first, Duration::from_secs(s.timeout_s))
        .await
        .context("installing the first release")?;
    let install_s = t.elapsed().as_secs_f64();
    let last = s
        .releases
        .last()
        .map(|r| r.version.clone())
        .unwrap_or_default();
    let mut sampler = sampler::Sampler::new(s, &mut fleet, ctl, opts.live).await?;
    let probe = rates::Probe::start(client.clone(), sampler.started());
    let rollout_id = start_rollout(s, client, &fleet, &last).await?;
    sampler
        .run(s, &mut fleet, client, rollout_id.as_deref())
        .await?;
    let readings = probe.finish().await;
    fleet.shut_down().await;
    let setup = Setup {
        connect_s,
        install_s,
        image_bytes,
        release: format!("sim@{last}"),
        rollout: rollout_id,
        processes: fleet.processes(),
    };
    let mut report = sampler.finish(s, setup);
    report.request_peaks = Some(rates::peaks(&readings, 0.0));
    for r in &mut report.controller_restarts {
        r.peaks_after = Some(rates::peaks(&readings, r.killed_at_s + r.down_s));
    }
    Ok(report)
}

/// Builds and uploads every release's image; the compressed size of each.
async fn build_releases(s: &Scenario, client: &Client, work: &Path) -> Result<Vec<u64>> {
    let mut sizes = Vec::new();
    for (k, r) in s.releases.iter().enumerate() {
        let dir = work.join(format!("image-{k}"));
        images::write(&s.image, s.seed, k, &dir)?;
        let tag = format!("v{}", r.version);
        let config = ImageConfig {
            entrypoint: vec!["/app/run".into()],
            working_dir: Some("/app".into()),
            ..Default::default()
        };
        let image = client.build_image(&dir, "app", &tag, config).await?.image;
        sizes.push(image.layers.iter().map(|l| l.size).sum());
        let compose = format!("services:\n  app:\n    image: app:{tag}\n    restart: always\n");
        client.create_release("sim", &r.version, &compose).await?;
    }
    Ok(sizes)
}

/// Starts the rollout of the last release (or a plain deploy); its id.
async fn start_rollout(
    s: &Scenario,
    client: &Client,
    fleet: &devices::Devices,
    version: &str,
) -> Result<Option<String>> {
    let release = format!("sim@{version}");
    let r = &s.rollout;
    if r.plain {
        client.deploy(&release, &fleet.ids()).await?;
        return Ok(None);
    }
    let req = CreateRollout {
        id: Some("sim".into()),
        release,
        selector: String::new(),
        group: None,
        waves: r.waves.clone(),
        canary: r
            .canary
            .iter()
            .map(|i| crate::virtual_device::device_id(*i))
            .collect(),
        per_minute: r.per_minute,
        rate_growth_percent: 0,
        success_percent: r.success_percent,
        soak_s: r.soak_s,
        max_failed_percent: r.max_failed_percent,
        min_failed: r.min_failed,
        on_breach: Some(match r.on_breach.as_str() {
            "pause" => Breach::Pause,
            _ => Breach::Abort,
        }),
        device_timeout_s: r.device_timeout_s,
        retries: r.retries,
    };
    let rec = client.create_rollout(&req).await?;
    if rec.rollout.members.len() != s.devices {
        bail!(
            "the rollout took {} devices of {}",
            rec.rollout.members.len(),
            s.devices
        );
    }
    Ok(Some(rec.rollout.id))
}
