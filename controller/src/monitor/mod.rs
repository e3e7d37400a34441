//! Monitoring: what the controller knows of its fleet at a glance, kept
//! current in memory as devices speak, for the dashboard, the live stream,
//! `/metrics`, `petrel watch` and the alerts.
//!
//! - [`index`]: one row per device (phase, presence, release, facts).
//! - [`crash`]: crash loops from reported restart counts.
//! - [`alerts`]: offline, crash-loop and disk-low alerts, stored.
//!
//! Once a second a ticker hands the devices that changed, with the fleet
//! summary, to every live subscriber ([`Monitor::subscribe`]); every
//! [`SWEEP`] it re-checks the alerts, which also change with time.

pub mod alerts;
pub mod counts;
pub mod crash;
pub mod index;

use crate::store::{Presence, Store, StoreError};
use alerts::{AlertRules, Alerts};
use index::{FleetIndex, Summary};
use petrel_protocol::Reported;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;

/// How often alerts are re-checked against the clock.
pub const SWEEP: Duration = Duration::from_secs(10);
/// How often the live stream speaks when nothing changed.
const QUIET_TICKS: u32 = 15;
/// Changed ids one live tick lists; above, it says `all`.
const MAX_CHANGED: usize = 500;

/// One message of the live stream.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LiveTick {
    pub at_ms: u64,
    pub summary: Summary,
    /// Active alerts by kind.
    pub alerts: BTreeMap<String, u64>,
    /// Devices that changed since the last tick.
    pub changed: Vec<String>,
    /// More changed than listed: refresh everything shown.
    pub all: bool,
}

/// The index, the alerts and the live stream.
#[derive(Clone)]
pub struct Monitor {
    pub index: FleetIndex,
    pub alerts: Alerts,
    live: broadcast::Sender<Arc<LiveTick>>,
    /// Set at shutdown: live streams end, so open browsers do not hold
    /// the server's graceful shutdown forever.
    closed: tokio::sync::watch::Sender<bool>,
}

impl Monitor {
    /// Loads the index and the active alerts from `store`.
    pub fn load(
        store: &Store,
        rules: AlertRules,
        metrics: crate::metrics::Metrics,
    ) -> Result<Monitor, StoreError> {
        Ok(Monitor {
            index: FleetIndex::load(store)?,
            alerts: Alerts::load(store, rules, metrics)?,
            live: broadcast::channel(64).0,
            closed: tokio::sync::watch::channel(false).0,
        })
    }

    /// A device's report was stored: index it and check its alerts
    /// (written, not flushed).
    pub fn reported(&self, r: &Reported, now_ms: u64) {
        let row = self.index.reported(r, now_ms);
        if let Err(e) = self.alerts.check(&r.device_id, &row, now_ms) {
            tracing::error!(device = %r.device_id, error = %e, "cannot record an alert");
        }
    }

    /// A device's presence was stored.
    /// Its alerts are checked only when it came online or went offline:
    /// the same presence again changes no condition (the time an offline
    /// device has been away is the sweep's), and every report is checked
    /// on its own ([`Monitor::reported`]).
    pub fn presence(&self, id: &str, p: &Presence) {
        if !self.index.presence(id, p) {
            return;
        }
        if let Some(row) = self.index.row(id) {
            if let Err(e) = self.alerts.check(id, &row, p.last_seen_ms) {
                tracing::error!(device = id, error = %e, "cannot record an alert");
            }
        }
    }

    /// The live stream: a [`LiveTick`] whenever devices changed, and every
    /// few seconds regardless.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<LiveTick>> {
        self.live.subscribe()
    }

    /// Ends every live stream (the controller is shutting down).
    pub fn close(&self) {
        self.closed.send_replace(true);
    }

    /// Resolves once [`Monitor::close`] was called.
    pub async fn closed(&self) {
        let mut rx = self.closed.subscribe();
        let _ = rx.wait_for(|c| *c).await;
    }

    /// The current tick (for a client that just subscribed).
    pub fn tick_now(&self, changed: Vec<String>, all: bool) -> LiveTick {
        LiveTick {
            at_ms: crate::now_ms(),
            summary: self.index.summary(),
            alerts: self
                .alerts
                .active_counts()
                .into_iter()
                .map(|(k, n)| (k.to_string(), n))
                .collect(),
            changed,
            all,
        }
    }

    /// Runs the ticker and the alert sweep until [`Monitor::close`].
    pub fn spawn(&self) {
        let this = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut quiet = 0u32;
            let mut since_sweep = Duration::ZERO;
            loop {
                // a controller shut down (one of several in a process, as
                // the simulator runs them) stops watching its devices
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = this.closed() => return,
                }
                since_sweep += Duration::from_secs(1);
                if since_sweep >= SWEEP {
                    since_sweep = Duration::ZERO;
                    this.sweep().await;
                }
                let changed = this.index.take_changed();
                quiet += 1;
                if changed.is_empty() && quiet < QUIET_TICKS {
                    continue;
                }
                quiet = 0;
                if this.live.receiver_count() == 0 {
                    continue;
                }
                let all = changed.len() > MAX_CHANGED;
                let listed = changed.into_iter().take(MAX_CHANGED).collect();
                let _ = this.live.send(Arc::new(this.tick_now(listed, all)));
            }
        });
    }

    async fn sweep(&self) {
        let this = self.clone();
        let swept =
            tokio::task::spawn_blocking(move || this.alerts.sweep(&this.index, crate::now_ms()))
                .await;
        match swept {
            Ok(Ok(changed)) => changed.iter().for_each(|id| self.index.touch(id)),
            Ok(Err(e)) => tracing::error!(error = %e, "alert sweep failed"),
            Err(e) => tracing::error!(error = %e, "alert sweep panicked"),
        }
    }
}
