//! Alerts: conditions of a device an operator must hear about — offline
//! longer than a limit, a crash-looping service, a disk nearly full —
//! raised once when they start and cleared when they end, stored as fleet
//! events, counted in the metrics and shown on the dashboard.

use super::index::{FleetIndex, Row};
use crate::metrics::Metrics;
use crate::store::{Store, StoreError};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError};

/// What an alert is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AlertKind {
    Offline,
    CrashLoop,
    DiskLow,
}

impl AlertKind {
    pub const ALL: [AlertKind; 3] = [AlertKind::Offline, AlertKind::CrashLoop, AlertKind::DiskLow];

    pub fn name(self) -> &'static str {
        match self {
            AlertKind::Offline => "offline",
            AlertKind::CrashLoop => "crash-loop",
            AlertKind::DiskLow => "disk-low",
        }
    }
}

/// One alert, as stored and shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    pub seq: u64,
    pub device_id: String,
    pub kind: AlertKind,
    pub raised_ms: u64,
    pub message: String,
    /// When the condition ended; `None` while it holds.
    #[serde(default)]
    pub cleared_ms: Option<u64>,
}

/// When conditions become alerts.
#[derive(Debug, Clone, Copy)]
pub struct AlertRules {
    /// A device offline this long (ms) raises `offline`.
    pub offline_after_ms: u64,
    /// Free disk below this (bytes), or below [`DISK_LOW_PERCENT`] of the
    /// disk, raises `disk-low`.
    pub disk_low_bytes: u64,
}

impl Default for AlertRules {
    fn default() -> AlertRules {
        AlertRules {
            offline_after_ms: 10 * 60 * 1000,
            disk_low_bytes: 256 << 20,
        }
    }
}

/// Free disk below this share of the disk raises `disk-low` too.
pub const DISK_LOW_PERCENT: u64 = 5;

/// The conditions that hold for a device's row at `now_ms`, with what to
/// say about each.
pub fn conditions(row: &Row, rules: &AlertRules, now_ms: u64) -> BTreeMap<AlertKind, String> {
    let mut out = BTreeMap::new();
    let away = now_ms.saturating_sub(row.last_seen_ms);
    if !row.online && row.last_seen_ms > 0 && away >= rules.offline_after_ms {
        let away = match away / 1000 {
            s if s < 120 => format!("{s} s"),
            s => format!("{} min", s / 60),
        };
        out.insert(AlertKind::Offline, format!("offline for {away}"));
    }
    if let Some(free) = row.free_disk_bytes {
        let share = row
            .disk_total_bytes
            .map_or(0, |t| t / 100 * DISK_LOW_PERCENT);
        if free < rules.disk_low_bytes || free < share {
            let of = match row.disk_total_bytes {
                Some(t) => format!(" of {} MiB", t >> 20),
                None => String::new(),
            };
            let msg = format!("{} MiB free{of} on the agent's disk", free >> 20);
            out.insert(AlertKind::DiskLow, msg);
        }
    }
    let looping = row.restarts.looping(now_ms);
    if !looping.is_empty() {
        let what: Vec<String> = looping
            .iter()
            .map(|l| match l.exit_code {
                Some(c) => format!(
                    "{} restarted {} times (last exit code {c})",
                    l.service, l.restarts
                ),
                None => format!("{} restarted {} times", l.service, l.restarts),
            })
            .collect();
        let window = super::crash::LOOP_WINDOW_MS / 60_000;
        out.insert(
            AlertKind::CrashLoop,
            format!("crash loop: {} in {window} min", what.join(", ")),
        );
    }
    out
}

/// The alert book: which alerts are active, backed by the store.
#[derive(Clone)]
pub struct Alerts {
    store: Store,
    rules: AlertRules,
    metrics: Metrics,
    active: Arc<Mutex<BTreeMap<(String, AlertKind), Alert>>>,
}

/// Alerts kept in the store (the oldest go first).
const KEPT: usize = 10_000;

impl Alerts {
    /// The book, with the alerts still active in `store`.
    pub fn load(store: &Store, rules: AlertRules, metrics: Metrics) -> Result<Alerts, StoreError> {
        let mut active = BTreeMap::new();
        // all of them: an active alert is never trimmed, however old
        for a in store.all_alerts::<Alert>()? {
            if a.cleared_ms.is_none() {
                active.insert((a.device_id.clone(), a.kind), a);
            }
        }
        Ok(Alerts {
            store: store.clone(),
            rules,
            metrics,
            active: Arc::new(Mutex::new(active)),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<(String, AlertKind), Alert>> {
        self.active.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Raises and clears `id`'s alerts from its row; true if any changed.
    /// Written, not flushed: the caller flushes.
    pub fn check(&self, id: &str, row: &Row, now_ms: u64) -> Result<bool, StoreError> {
        let holding = conditions(row, &self.rules, now_ms);
        self.apply(id, holding, now_ms)
    }

    fn apply(
        &self,
        id: &str,
        holding: BTreeMap<AlertKind, String>,
        now_ms: u64,
    ) -> Result<bool, StoreError> {
        let mut active = self.lock();
        let mut changed = false;
        for kind in AlertKind::ALL {
            let key = (id.to_string(), kind);
            match (holding.get(&kind), active.contains_key(&key)) {
                (Some(message), false) => {
                    let alert = Alert {
                        seq: self.store.next_alert_seq()?,
                        device_id: id.to_string(),
                        kind,
                        raised_ms: now_ms,
                        message: message.clone(),
                        cleared_ms: None,
                    };
                    tracing::warn!(device = id, alert = kind.name(), message = %message, "alert raised");
                    self.store.put_alert(alert.seq, &alert)?;
                    self.metrics
                        .alerts_raised
                        .with_label_values(&[kind.name()])
                        .inc();
                    active.insert(key, alert);
                    changed = true;
                }
                (None, true) => {
                    if let Some(mut alert) = active.remove(&key) {
                        alert.cleared_ms = Some(now_ms);
                        tracing::info!(device = id, alert = kind.name(), "alert cleared");
                        self.store.put_alert(alert.seq, &alert)?;
                        changed = true;
                    }
                }
                _ => {}
            }
        }
        Ok(changed)
    }

    /// Checks every device (offline limits and crash-loop windows pass
    /// with time, not only with messages); the devices whose alerts
    /// changed.
    pub fn sweep(&self, index: &FleetIndex, now_ms: u64) -> Result<Vec<String>, StoreError> {
        let mut due: BTreeSet<String> = self.lock().keys().map(|(id, _)| id.clone()).collect();
        index.each(|id, row| {
            if !conditions(row, &self.rules, now_ms).is_empty() {
                due.insert(id.to_string());
            }
        });
        let mut changed = Vec::new();
        for id in due {
            // decided on the row as it is now, not as it was when the walk
            // passed it (the device may have come back since); a forgotten
            // device's alerts end with it
            let holding = index
                .row(&id)
                .map(|row| conditions(&row, &self.rules, now_ms))
                .unwrap_or_default();
            if self.apply(&id, holding, now_ms)? {
                changed.push(id);
            }
        }
        let active: BTreeSet<u64> = self.lock().values().map(|a| a.seq).collect();
        self.store.trim_alerts(KEPT, &active)?;
        self.store.flush()?;
        Ok(changed)
    }

    /// Active alerts, newest first.
    pub fn active(&self) -> Vec<Alert> {
        let mut v: Vec<Alert> = self.lock().values().cloned().collect();
        v.sort_by_key(|a| std::cmp::Reverse(a.seq));
        v
    }

    /// Active alerts by kind (every kind present).
    pub fn active_counts(&self) -> BTreeMap<&'static str, u64> {
        let mut counts: BTreeMap<&'static str, u64> =
            AlertKind::ALL.iter().map(|k| (k.name(), 0)).collect();
        for (_, kind) in self.lock().keys() {
            *counts.entry(kind.name()).or_default() += 1;
        }
        counts
    }

    /// The latest `limit` alerts, active or cleared, newest first;
    /// only `device`'s if given.
    pub fn recent(&self, device: Option<&str>, limit: usize) -> Result<Vec<Alert>, StoreError> {
        let mut all: Vec<Alert> = self.store.alerts(KEPT)?;
        all.retain(|a| device.is_none_or(|d| a.device_id == d));
        all.truncate(limit);
        Ok(all)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> AlertRules {
        AlertRules {
            offline_after_ms: 60_000,
            disk_low_bytes: 100 << 20,
        }
    }

    #[test]
    fn a_device_offline_past_the_limit_or_short_of_disk_raises_alerts() {
        let row = Row {
            online: false,
            last_seen_ms: 1_000,
            free_disk_bytes: Some(50 << 20),
            ..Row::default()
        };
        assert_eq!(
            conditions(&row, &rules(), 30_000)
                .keys()
                .collect::<Vec<_>>(),
            vec![&AlertKind::DiskLow]
        );
        let later = conditions(&row, &rules(), 61_000);
        assert_eq!(later[&AlertKind::Offline], "offline for 60 s");
        assert!(later[&AlertKind::DiskLow].contains("50 MiB free"));
    }

    #[test]
    fn a_large_disk_nearly_full_by_share_raises_disk_low() {
        let row = Row {
            online: true,
            free_disk_bytes: Some(1 << 30),
            disk_total_bytes: Some(64 << 30),
            ..Row::default()
        };
        let held = conditions(&row, &rules(), 0);
        assert!(
            held[&AlertKind::DiskLow].contains("of 65536 MiB"),
            "{held:?}"
        );
        let roomy = Row {
            free_disk_bytes: Some(10 << 30),
            ..row
        };
        assert!(conditions(&roomy, &rules(), 0).is_empty());
    }
}
