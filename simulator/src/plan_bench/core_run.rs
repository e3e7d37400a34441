//! The controller's rollout core on a real store, driven by simulated
//! device reports; and the whole-record write it replaced.

use super::{manifest, report, rollout, Run};
use anyhow::Context as _;
use petrel_controller::rollouts::core::Core;
use petrel_controller::rollouts::RolloutRecord;
use petrel_controller::store::Store;
use petrel_protocol::rollout::Action;
use petrel_protocol::Phase;
use std::time::{Duration, Instant};

/// The core, writing after every `batch` reports. The core's calls are
/// timed, and apart the desired-state writes of the starts; the devices'
/// report writes are not.
pub fn run(devices: usize, rounds: u32, batch: usize) -> anyhow::Result<Run> {
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path())?;
    for i in 0..devices {
        let d = format!("dev-{i:06}");
        store.put_reported(&report(&d, 0, Phase::Running, "1"))?;
    }
    let mut core = Core::default();
    let mut timed = Duration::ZERO;
    let mut t = Tally::default();
    let (mut reports, mut now) = (0u64, 0u64);
    let mut clock = Instant::now();
    core.insert(RolloutRecord::new(rollout(devices)));
    core.tick(now);
    let mut pending = settle(&mut core, &store, &mut t, now)?;
    let mut since_write = 0usize;
    while !pending.is_empty() {
        now += 1000;
        let mut reported = Vec::new();
        for round in 0..=rounds {
            for (d, g) in &pending {
                let (phase, current) = match round == rounds {
                    true => (Phase::Running, "2"),
                    false => (Phase::Downloading, "1"),
                };
                timed += clock.elapsed();
                store.put_reported(&report(d, *g, phase, current))?;
                clock = Instant::now();
                core.observed(&store, d, now);
                reports += 1;
                since_write += 1;
                if since_write >= batch {
                    since_write = 0;
                    reported.extend(settle(&mut core, &store, &mut t, now)?);
                }
            }
        }
        reported.extend(settle(&mut core, &store, &mut t, now)?);
        pending = reported;
    }
    timed += clock.elapsed();
    let done = core.get("bench").map(|r| r.rollout.tallies.clone());
    let succeeded: u32 = done.iter().flatten().map(|t| t.succeeded).sum();
    anyhow::ensure!(
        succeeded as usize == devices,
        "{succeeded} of {devices} succeeded"
    );
    Ok(Run {
        reports,
        took: timed.saturating_sub(t.performing),
        writes: t.writes,
        performing: t.performing,
    })
}

/// What settling counted.
#[derive(Default)]
struct Tally {
    writes: u64,
    performing: Duration,
}

/// Stores what changed, then performs the starts as the driver does (a
/// desired state written per device, its generation recorded); returns
/// the devices started with their generations.
fn settle(
    core: &mut Core,
    store: &Store,
    t: &mut Tally,
    now: u64,
) -> anyhow::Result<Vec<(String, u64)>> {
    let mut started = Vec::new();
    loop {
        t.writes += u64::from(core.store(store)?);
        let actions = core.take_actions();
        if actions.is_empty() {
            return Ok(started);
        }
        for (id, action) in actions {
            if let Action::Deploy { device } = action {
                let clock = Instant::now();
                let d = store.set_desired(&device, Some(manifest("2")), Default::default(), now)?;
                t.performing += clock.elapsed();
                let rec = core.get_mut(&id).context("the rollout is gone")?;
                rec.deployed(&device, d.generation);
                started.push((device, d.generation));
            }
        }
    }
}

/// One write of the whole finished record (members inline) with its
/// flush, as the driver did per acting step; the mean of a few.
pub fn whole_record_write(devices: usize) -> anyhow::Result<(Duration, usize)> {
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path())?;
    let mut rec = RolloutRecord::new(rollout(devices));
    for d in rec.rollout.members.keys().cloned().collect::<Vec<_>>() {
        rec.generations.insert(d, 1);
    }
    const SAMPLES: u32 = 10;
    let mut bytes = 0;
    let started = Instant::now();
    for _ in 0..SAMPLES {
        let whole = serde_json::to_vec(&rec)?;
        bytes = whole.len();
        store.write_rollouts(&[("bench".to_string(), whole)], &[])?;
    }
    Ok((started.elapsed() / SAMPLES, bytes))
}
