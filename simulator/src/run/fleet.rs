//! The virtual devices one simulator process holds: a slice of the
//! scenario's fleet (all of it, or one shard's part), each device on the
//! link profile its fleet part gives it, behind the fault layer's two
//! proxies; the faults of the timeline applied to the devices the seed
//! picks, as far as they fall in the slice.

use crate::link::{proxy, DeviceLink, Dir, Kind, Links};
use crate::scenario::{FaultKind, Scenario};
use crate::virtual_device::{Endpoints, VirtualDevice};
use anyhow::Result;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::ops::Range;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Where devices reach the controller (its broker and its HTTP API).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Upstream {
    pub mqtt: SocketAddr,
    pub http: SocketAddr,
    /// The controller's public signing key (hex), which devices pin.
    pub key: String,
}

/// What the sampler reads of one device each second.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DeviceStats {
    /// Downloaded over HTTP since the device was made.
    pub http_down_bytes: u64,
    pub power_losses: u32,
    /// Connections the fault layer dropped.
    pub dropped: u64,
    /// Instances of a failing image started (each failed a health check).
    pub failed_starts: u64,
}

/// The slice's devices after one tick of the timeline.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Tick {
    /// By device, in index order.
    pub stats: Vec<DeviceStats>,
    /// A partition or power loss is still under way.
    pub faults_active: bool,
}

pub struct SimFleet {
    devices: Vec<VirtualDevice>,
    links: Arc<Links>,
    range: Range<usize>,
    /// Which of the scenario's faults have fired.
    fired: Vec<bool>,
    /// Faults under way: (device, kind, ends at).
    active: Vec<(usize, FaultKind, Instant)>,
}

impl SimFleet {
    /// Makes the links and proxies of devices `range` and powers them on.
    pub async fn start(
        s: &Scenario,
        range: Range<usize>,
        up: &Upstream,
        work: &Path,
    ) -> Result<SimFleet> {
        let names = s.profile_names();
        let mut links = Vec::new();
        for i in range.clone() {
            let p = s.profile(&names[i]).map_err(anyhow::Error::msg)?;
            links.push(Arc::new(DeviceLink::new(p, s.seed.wrapping_add(i as u64))));
        }
        let links = Arc::new(Links {
            first: range.start,
            devices: links,
        });
        let ends = Endpoints {
            mqtt_port: proxy::start(links.clone(), up.mqtt, Kind::Mqtt).await?,
            http_port: proxy::start(links.clone(), up.http, Kind::Http).await?,
            key: up.key.clone(),
        };
        let mut devices = Vec::new();
        for (k, i) in range.clone().enumerate() {
            let id = crate::virtual_device::device_id(i);
            let dir = work.join("devices").join(id);
            let link = links.devices[k].clone();
            devices.push(VirtualDevice::new(i, dir, &ends, link, s.heartbeat_s));
        }
        let mut fleet = SimFleet {
            devices,
            links,
            range,
            fired: vec![false; s.faults.len()],
            active: Vec::new(),
        };
        for (k, r) in s.releases.iter().enumerate() {
            for i in s.pick(r.fail_percent, 0xfa11 + k as u64) {
                if let Some(d) = fleet.device(i) {
                    d.failing.insert(format!("app:v{}", r.version));
                }
            }
        }
        for d in &mut fleet.devices {
            d.power_on();
        }
        Ok(fleet)
    }

    /// Device `i` (fleet-wide index), if this slice holds it.
    fn device(&mut self, i: usize) -> Option<&mut VirtualDevice> {
        let k = i.checked_sub(self.range.start)?;
        self.devices.get_mut(k)
    }

    /// Applies the faults due at `t` seconds into the rollout, ends the
    /// ones whose time is up, and reads every device's numbers.
    pub fn tick(&mut self, s: &Scenario, t: f64) -> Tick {
        self.apply_faults(s, t);
        Tick {
            stats: self.stats(),
            faults_active: !self.active.is_empty(),
        }
    }

    fn stats(&self) -> Vec<DeviceStats> {
        self.devices
            .iter()
            .zip(&self.links.devices)
            .map(|(d, l)| DeviceStats {
                http_down_bytes: l.counters.get(Kind::Http, Dir::Down),
                power_losses: d.power_losses,
                dropped: l.counters.dropped.load(Ordering::Relaxed),
                failed_starts: d.failed_starts.load(Ordering::Relaxed),
            })
            .collect()
    }

    fn apply_faults(&mut self, s: &Scenario, t: f64) {
        let now = Instant::now();
        for (k, f) in s.faults.iter().enumerate() {
            // the sampler restarts the controller
            if self.fired[k] || t < f.at_s as f64 || f.kind == FaultKind::ControllerRestart {
                continue;
            }
            self.fired[k] = true;
            for i in s.pick(f.share, 0xfa17 + k as u64) {
                let Some(d) = self.device(i) else { continue };
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
    }

    fn end_faults(&mut self, now: Instant) {
        let (over, going): (Vec<_>, Vec<_>) =
            self.active.drain(..).partition(|(_, _, end)| *end <= now);
        self.active = going;
        for (i, kind, _) in over {
            let Some(d) = self.device(i) else { continue };
            match kind {
                FaultKind::Partition => d.link.set_partitioned(false),
                FaultKind::PowerLoss => d.power_on(),
                FaultKind::Drop | FaultKind::ControllerRestart => {}
            }
        }
    }

    /// Ends every fault and stops every device cleanly.
    pub async fn shut_down(&mut self) {
        self.end_faults(Instant::now() + Duration::from_secs(1 << 30));
        for d in &mut self.devices {
            d.shut_down().await;
        }
    }
}
