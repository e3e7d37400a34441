//! The scenario's fleet as the run sees it: every device in this process,
//! or the fleet split over shard processes when it is larger than one
//! process holds. Either way the run ticks it once a second (faults due,
//! numbers read) and follows it through the controller's API.

use super::fleet::{SimFleet, Tick, Upstream};
use super::shards::{Shard, ShardSpec};
use crate::scenario::Scenario;
use crate::virtual_device::device_id;
use anyhow::{bail, Result};
use petrel_controller::client::Client;
use petrel_controller::http::rollouts::LabelChange;
use petrel_controller::http::DeviceView;
use std::path::Path;
use std::time::{Duration, Instant};

/// Devices one simulator process holds by default (about three open
/// files each in the fault layer, more while downloading).
pub const PER_PROCESS: usize = 2_000;

enum Held {
    Here(SimFleet),
    Shards(Vec<Shard>),
}

pub struct Devices {
    held: Held,
    count: usize,
    /// Print progress while waiting for the fleet.
    pub live: bool,
}

impl Devices {
    /// Powers the fleet on: here if it fits `per_process`, else in
    /// shard processes of at most that many devices.
    pub async fn start(
        s: &Scenario,
        up: &Upstream,
        work: &Path,
        per_process: usize,
    ) -> Result<Devices> {
        let per_process = per_process.max(1);
        let held = if s.devices <= per_process {
            Held::Here(SimFleet::start(s, 0..s.devices, up, work).await?)
        } else {
            let mut shards = Vec::new();
            for from in (0..s.devices).step_by(per_process) {
                let spec = ShardSpec {
                    scenario: s.clone(),
                    from,
                    to: (from + per_process).min(s.devices),
                    upstream: up.clone(),
                    work: work.to_path_buf(),
                };
                shards.push(Shard::spawn(&spec, work)?);
            }
            Held::Shards(shards)
        };
        Ok(Devices {
            held,
            count: s.devices,
            live: false,
        })
    }

    /// How many processes hold the devices.
    pub fn processes(&self) -> usize {
        match &self.held {
            Held::Here(_) => 1,
            Held::Shards(s) => s.len(),
        }
    }

    pub fn ids(&self) -> Vec<String> {
        (0..self.count).map(device_id).collect()
    }

    /// Applies the faults due `t` seconds into the rollout; every
    /// device's numbers, in index order.
    pub async fn tick(&mut self, s: &Scenario, t: f64) -> Result<Tick> {
        let shards = match &mut self.held {
            Held::Here(fleet) => return Ok(fleet.tick(s, t)),
            Held::Shards(shards) => shards,
        };
        for shard in shards.iter_mut() {
            shard.send(t).await?;
        }
        let mut all = Tick::default();
        for shard in shards.iter_mut() {
            let part = shard.read().await?;
            all.stats.extend(part.stats);
            all.faults_active |= part.faults_active;
        }
        Ok(all)
    }

    pub async fn shut_down(&mut self) {
        match &mut self.held {
            Held::Here(fleet) => fleet.shut_down().await,
            Held::Shards(shards) => {
                for s in shards.iter_mut() {
                    s.stop().await;
                }
            }
        }
    }

    /// Waits until the controller has heard from every device (on flaky
    /// links some are always reconnecting, so not all online at once).
    pub async fn wait_online(&self, client: &Client, limit: Duration) -> Result<()> {
        self.wait_all(client, limit, "reported", |v| v.reported_at_ms > 0)
            .await
    }

    /// Waits until every device runs `release` as desired.
    pub async fn wait_converged(
        &self,
        client: &Client,
        release: &str,
        limit: Duration,
    ) -> Result<()> {
        let runs = |v: &DeviceView| v.current.as_ref().is_some_and(|c| c.to_string() == release);
        self.wait_all(client, limit, &format!("run {release}"), |v| {
            v.converged() && runs(v)
        })
        .await
    }

    /// Waits until every device's view passes `done`; the error says how
    /// many devices `what` by the limit.
    async fn wait_all(
        &self,
        client: &Client,
        limit: Duration,
        what: &str,
        done: impl Fn(&DeviceView) -> bool,
    ) -> Result<()> {
        let started = Instant::now();
        let deadline = started + limit;
        let mut shown = started;
        loop {
            let n = client.devices().await?.iter().filter(|v| done(v)).count();
            if n >= self.count {
                return Ok(());
            }
            if self.live && shown.elapsed() >= Duration::from_secs(5) {
                shown = Instant::now();
                let t = started.elapsed().as_secs();
                println!("t={t:>4}s  {n} of {} devices {what}", self.count);
            }
            if Instant::now() > deadline {
                bail!("{n} of {} devices {what} after {limit:?}", self.count);
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Labels each device with its profile and its fleet part's labels.
    pub async fn label(&self, s: &Scenario, client: &Client) -> Result<()> {
        let parts = s.assignment();
        for (i, id) in self.ids().iter().enumerate() {
            let part = &s.fleet[parts[i]];
            let mut set = part.labels.clone();
            set.insert("profile".into(), part.profile.clone());
            let change = LabelChange {
                set,
                remove: vec![],
            };
            client.label_device(id, &change).await?;
        }
        Ok(())
    }
}
