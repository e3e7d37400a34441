//! Following a rollout once a second (less often on a fleet whose view
//! takes long to read): the fleet as the controller sees
//! it (phases, who runs what), the bytes each device's link delivered,
//! the controller's CPU and memory; the faults of the timeline applied on
//! the way; a progress line for the operator. The run ends when the
//! rollout is over, every device runs what it should and no fault is
//! under way, or at the scenario's timeout.

use super::controller::{ControllerProcess, Usage};
use super::devices::Devices;
use super::fleet::Tick;
use crate::report::{DeviceOutcome, Report, RestartOutcome, Sample, Setup};
use crate::scenario::{FaultKind, Scenario};
use anyhow::Result;
use petrel_controller::client::Client;
use petrel_controller::http::DeviceView;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

pub struct Sampler<'a> {
    ctl: &'a ControllerProcess,
    live: bool,
    started: Instant,
    /// The same moment on the wall clock (devices stamp their reports).
    started_ms: u64,
    /// Link bytes and controller usage when the rollout started.
    base_bytes: Vec<u64>,
    base_usage: Usage,
    samples: Vec<Sample>,
    devices: Vec<DeviceOutcome>,
    /// The rollout's record at the end.
    pub rollout: Option<petrel_controller::rollouts::RolloutRecord>,
    timed_out: bool,
    restarts: Restarts,
}

/// The controller restarts of the timeline under way and done.
#[derive(Default)]
struct Restarts {
    done: Vec<RestartOutcome>,
    /// Killed at (seconds), to be started again at.
    down: Option<(f64, Instant)>,
    /// Since it answered again (wall clock ms, seconds): waiting for every
    /// device to be heard from.
    coming_back: Option<(u64, f64)>,
}

impl<'a> Sampler<'a> {
    /// Reads where the fleet stands just before the rollout starts.
    pub async fn new(
        s: &Scenario,
        fleet: &mut Devices,
        ctl: &'a ControllerProcess,
        live: bool,
    ) -> Result<Self> {
        let devices = fleet
            .ids()
            .into_iter()
            .zip(s.profile_names())
            .map(|(id, profile)| DeviceOutcome {
                id,
                profile,
                ..Default::default()
            })
            .collect();
        // before the rollout no fault is due
        let before = fleet.tick(s, -1.0).await?;
        Ok(Sampler {
            ctl,
            live,
            started: Instant::now(),
            started_ms: petrel_controller::now_ms(),
            base_bytes: before.stats.iter().map(|d| d.http_down_bytes).collect(),
            base_usage: ctl.usage(),
            samples: Vec::new(),
            devices,
            rollout: None,
            timed_out: false,
            restarts: Restarts::default(),
        })
    }

    /// Samples every second (or, on a large fleet, every twice as long as
    /// reading the fleet view took, so the sampling costs the controller
    /// at most about a third of its time) until the run is over.
    pub async fn run(
        &mut self,
        s: &Scenario,
        fleet: &mut Devices,
        client: &Client,
        rollout: Option<&str>,
    ) -> Result<()> {
        let release = format!(
            "sim@{}",
            s.releases.last().map_or("", |r| r.version.as_str())
        );
        let mut restarted = vec![false; s.faults.len()];
        let deadline = self.started + Duration::from_secs(s.timeout_s);
        let mut next = Instant::now();
        let mut shown: Option<Instant> = None;
        loop {
            tokio::time::sleep_until(next.into()).await;
            let began = Instant::now();
            let t = self.started.elapsed().as_secs_f64();
            let tick = fleet.tick(s, t).await?;
            let tick_s = began.elapsed().as_secs_f64();
            self.restart_faults(s, &mut restarted, t).await?;
            // while the controller is down or coming back, no sample; a
            // view that takes long to read (a large fleet mid-burst) does
            // not hold back the faults of the timeline
            let viewing = Instant::now();
            let views = {
                let reading = client.devices();
                tokio::pin!(reading);
                loop {
                    tokio::select! {
                        v = &mut reading => break v,
                        _ = tokio::time::sleep(Duration::from_millis(250)) => {
                            let now = self.started.elapsed().as_secs_f64();
                            self.restart_faults(s, &mut restarted, now).await?;
                        }
                    }
                }
            };
            let view_s = viewing.elapsed().as_secs_f64();
            // (a restart may have begun while the view was read)
            let restarting = self.restarts.down.is_some() || self.restarts.coming_back.is_some();
            next = began + Duration::from_secs(1).max(began.elapsed() * 2);
            let views = match views {
                Ok(v) => v,
                Err(_) if restarting => {
                    if Instant::now() > deadline {
                        self.timed_out = true;
                        break;
                    }
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            self.note_fleet_back(t, &views, s.devices);
            let settled = self.sample(t, &tick, &views, &release);
            if let Some(last) = self.samples.last_mut() {
                (last.view_s, last.tick_s) = (view_s, tick_s);
            }
            let over = match rollout {
                Some(id) => match client.rollout(id).await {
                    Ok(rec) => {
                        let done = rec.finished();
                        self.rollout = Some(rec);
                        done
                    }
                    Err(_) if restarting => false,
                    Err(e) => return Err(e.into()),
                },
                None => true,
            };
            if self.live && shown.is_none_or(|at| at.elapsed() >= Duration::from_secs(5)) {
                shown = Some(Instant::now());
                println!("{}", self.progress());
            }
            let all_fired = s.all_faults_due(t);
            let quiet = !tick.faults_active && self.restarts.down.is_none();
            if over && settled == s.devices && all_fired && quiet {
                break;
            }
            if Instant::now() > deadline {
                self.timed_out = true;
                break;
            }
        }
        Ok(())
    }

    /// Kills the controller when a restart fault is due, and starts it
    /// again when its downtime is over.
    async fn restart_faults(&mut self, s: &Scenario, fired: &mut [bool], t: f64) -> Result<()> {
        for (k, f) in s.faults.iter().enumerate() {
            if f.kind == FaultKind::ControllerRestart && !fired[k] && t >= f.at_s as f64 {
                fired[k] = true;
                self.ctl.kill();
                let up_at = Instant::now() + Duration::from_secs(f.for_s);
                self.restarts.down = Some((t, up_at));
            }
        }
        if let Some((killed_at_s, up_at)) = self.restarts.down {
            if Instant::now() >= up_at {
                self.restarts.down = None;
                self.ctl.respawn().await?;
                let answering = self.started.elapsed().as_secs_f64();
                self.restarts.done.push(RestartOutcome {
                    killed_at_s,
                    down_s: answering - killed_at_s,
                    fleet_back_s: None,
                    peaks_after: None,
                });
                self.restarts.coming_back = Some((petrel_controller::now_ms(), answering));
            }
        }
        Ok(())
    }

    /// After a restart: once every device has been heard from again.
    fn note_fleet_back(&mut self, t: f64, views: &[DeviceView], devices: usize) {
        let Some((since_ms, answering)) = self.restarts.coming_back else {
            return;
        };
        let heard = views.iter().filter(|v| v.last_seen_ms >= since_ms).count();
        if heard >= devices {
            if let Some(last) = self.restarts.done.last_mut() {
                last.fleet_back_s = Some(t - answering);
            }
            self.restarts.coming_back = None;
        }
    }

    /// Records one sample; returns how many devices run what they should.
    fn sample(&mut self, t: f64, tick: &Tick, views: &[DeviceView], release: &str) -> usize {
        let mut phases = BTreeMap::new();
        let by_id: BTreeMap<&str, &DeviceView> = views.iter().map(|v| (v.id.as_str(), v)).collect();
        let (mut settled, mut on_new) = (0, 0);
        for (i, out) in self.devices.iter_mut().enumerate() {
            let Some(v) = by_id.get(out.id.as_str()) else {
                *phases.entry("unknown".to_string()).or_insert(0) += 1;
                continue;
            };
            let phase = serde_json::to_value(v.phase)
                .ok()
                .and_then(|p| p.as_str().map(str::to_string))
                .unwrap_or_default();
            // what the operator sees: a device gone silent is offline
            let shown = if v.online {
                phase.clone()
            } else {
                "offline".into()
            };
            *phases.entry(shown).or_insert(0) += 1;
            let runs_new = v.current.as_ref().is_some_and(|c| c.to_string() == release);
            let aims_new = v.target.as_ref().is_some_and(|c| c.to_string() == release);
            out.sent_new |= runs_new || aims_new;
            let asked = v.desired.as_ref().is_some_and(|d| d.to_string() == release);
            if asked && v.accepted_generation >= v.desired_generation {
                // when the device reported it, if that is earlier than
                // this sample (virtual devices share the machine's clock)
                let stamped = v.reported_at_ms.saturating_sub(self.started_ms) as f64 / 1000.0;
                out.reached_at_s.get_or_insert(stamped.min(t));
            }
            let stats = tick.stats.get(i).cloned().unwrap_or_default();
            out.rolled_back |= phase == "rolled-back" || stats.failed_starts > 0;
            on_new += usize::from(runs_new);
            if v.converged() {
                settled += 1;
                out.settled_at_s.get_or_insert(t);
            } else {
                out.settled_at_s = None;
            }
            out.release = v.current.as_ref().map(|c| c.to_string());
            out.phase = phase;
            let base = self.base_bytes.get(i).copied().unwrap_or_default();
            out.http_down_bytes = stats.http_down_bytes.saturating_sub(base);
            out.power_losses = stats.power_losses;
            out.dropped = stats.dropped;
        }
        let usage = self.ctl.usage();
        self.samples.push(Sample {
            t_s: t,
            phases,
            settled,
            on_new,
            online: views.iter().filter(|v| v.online).count(),
            http_down_bytes: self.devices.iter().map(|d| d.http_down_bytes).sum(),
            controller_cpu_s: usage.cpu_s - self.base_usage.cpu_s,
            controller_at_s: self.started.elapsed().as_secs_f64(),
            controller_rss_bytes: usage.rss_bytes,
            ..Default::default()
        });
        settled
    }

    fn progress(&self) -> String {
        let Some(last) = self.samples.last() else {
            return String::new();
        };
        let phases: Vec<String> = last
            .phases
            .iter()
            .map(|(p, n)| format!("{p} {n}"))
            .collect();
        format!(
            "t={:>4.0}s  on the new release {}/{}  settled {}  online {}  [{}]  {:.1} MB down  controller {:.0} MB",
            last.t_s,
            last.on_new,
            self.devices.len(),
            last.settled,
            last.online,
            phases.join(", "),
            last.http_down_bytes as f64 / 1e6,
            last.controller_rss_bytes as f64 / 1e6,
        )
    }

    /// The report of the run.
    /// When the rollout started: the origin of every time in the report.
    pub fn started(&self) -> Instant {
        self.started
    }

    pub fn finish(self, s: &Scenario, setup: Setup) -> Report {
        let mut report = Report::build(
            s,
            setup,
            self.samples,
            self.devices,
            self.rollout,
            self.timed_out,
        );
        report.controller_restarts = self.restarts.done;
        report
    }
}
