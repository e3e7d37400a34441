//! The scenario's fleet: one virtual device per index, each on the link
//! profile its fleet part gives it, behind the fault layer's two proxies;
//! the faults of the timeline applied to the devices the seed picks.

use super::controller::ControllerProcess;
use crate::link::{proxy, DeviceLink, Kind, Links};
use crate::scenario::{FaultKind, Scenario};
use crate::virtual_device::{Endpoints, VirtualDevice};
use anyhow::{bail, Result};
use petrel_controller::client::Client;
use petrel_controller::http::rollouts::LabelChange;
use petrel_controller::http::DeviceView;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct SimFleet {
    pub devices: Vec<VirtualDevice>,
    pub links: Arc<Links>,
    /// Each device's profile name.
    pub profiles: Vec<String>,
    /// Faults under way: (device, kind, ends at).
    active: Vec<(usize, FaultKind, Instant)>,
}

impl SimFleet {
    /// Makes the links and proxies and powers every device on.
    pub async fn start(s: &Scenario, ctl: &ControllerProcess, work: &Path) -> Result<SimFleet> {
        let parts = s.assignment();
        let mut profiles = Vec::new();
        let mut links = Vec::new();
        for (i, part) in parts.iter().enumerate() {
            let p = s
                .profile(&s.fleet[*part].profile)
                .map_err(anyhow::Error::msg)?;
            profiles.push(p.name.clone());
            links.push(Arc::new(DeviceLink::new(p, s.seed.wrapping_add(i as u64))));
        }
        let links = Arc::new(Links { devices: links });
        let ends = Endpoints {
            mqtt_port: proxy::start(links.clone(), ctl.mqtt, Kind::Mqtt).await?,
            http_port: proxy::start(links.clone(), ctl.http, Kind::Http).await?,
            key: ctl.key.clone(),
        };
        let mut devices = Vec::new();
        for i in 0..s.devices {
            let dir = work
                .join("devices")
                .join(crate::virtual_device::device_id(i));
            let link = links.devices[i].clone();
            devices.push(VirtualDevice::new(i, dir, &ends, link, s.heartbeat_s));
        }
        for (k, r) in s.releases.iter().enumerate() {
            for i in s.pick(r.fail_percent, 0xfa11 + k as u64) {
                devices[i].failing.insert(format!("app:v{}", r.version));
            }
        }
        for d in &mut devices {
            d.power_on();
        }
        Ok(SimFleet {
            devices,
            links,
            profiles,
            active: Vec::new(),
        })
    }

    pub fn ids(&self) -> Vec<String> {
        self.devices.iter().map(|d| d.id.clone()).collect()
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
        let deadline = Instant::now() + limit;
        loop {
            let n = client.devices().await?.iter().filter(|v| done(v)).count();
            if n >= self.devices.len() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "{n} of {} devices {what} after {limit:?}",
                    self.devices.len()
                );
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Labels each device with its profile and its fleet part's labels.
    pub async fn label(&self, s: &Scenario, client: &Client) -> Result<()> {
        let parts = s.assignment();
        for (i, d) in self.devices.iter().enumerate() {
            let mut set = s.fleet[parts[i]].labels.clone();
            set.insert("profile".into(), self.profiles[i].clone());
            let change = LabelChange {
                set,
                remove: vec![],
            };
            client.label_device(&d.id, &change).await?;
        }
        Ok(())
    }

    /// Applies the faults due at `t` seconds into the rollout and ends
    /// the ones whose time is up; returns how many started now.
    pub fn apply_faults(&mut self, s: &Scenario, fired: &mut [bool], t: f64) -> usize {
        let now = Instant::now();
        let mut started = 0;
        for (k, f) in s.faults.iter().enumerate() {
            // the sampler restarts the controller
            if fired[k] || t < f.at_s as f64 || f.kind == FaultKind::ControllerRestart {
                continue;
            }
            fired[k] = true;
            for i in s.pick(f.share, 0xfa17 + k as u64) {
                started += 1;
                let d = &mut self.devices[i];
                match f.kind {
                    FaultKind::Partition => d.link.set_partitioned(true),
                    FaultKind::PowerLoss => d.power_off(),
                    FaultKind::Drop => d.link.cut_all(),
                    FaultKind::ControllerRestart => {}
                }
                // a drop is over once done
                if f.kind != FaultKind::Drop {
                    self.active
                        .push((i, f.kind, now + Duration::from_secs(f.for_s)));
                }
            }
        }
        self.end_faults(now);
        started
    }

    fn end_faults(&mut self, now: Instant) {
        let (over, going): (Vec<_>, Vec<_>) =
            self.active.drain(..).partition(|(_, _, end)| *end <= now);
        self.active = going;
        for (i, kind, _) in over {
            let d = &mut self.devices[i];
            match kind {
                FaultKind::Partition => d.link.set_partitioned(false),
                FaultKind::PowerLoss => d.power_on(),
                FaultKind::Drop | FaultKind::ControllerRestart => {}
            }
        }
    }

    /// Whether a fault is still under way.
    pub fn faults_active(&self) -> bool {
        !self.active.is_empty()
    }

    pub async fn shut_down(&mut self) {
        self.end_faults(Instant::now() + Duration::from_secs(1 << 30));
        for d in &mut self.devices {
            d.shut_down().await;
        }
    }
}
