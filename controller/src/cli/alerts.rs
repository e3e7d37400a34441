//! `petrel alerts`: the alerts table.

use super::one_line;
use crate::client::{AlertFilter, Client};
use crate::monitor::alerts::Alert;
use anyhow::Result;

pub(super) async fn run(client: &Client, which: AlertFilter, json: bool) -> Result<()> {
    let alerts = client.alerts(&which).await?;
    super::emit(json, &alerts, || alerts_table(&alerts, crate::now_ms()))
}

/// One row per alert: device, kind, message, when raised, active or
/// when cleared.
pub fn alerts_table(alerts: &[Alert], now_ms: u64) -> String {
    if alerts.is_empty() {
        return "no alerts\n".into();
    }
    let mut table = crate::table::Table::new(&["DEVICE", "ALERT", "MESSAGE", "RAISED", "STATE"]);
    for a in alerts {
        let state = match a.cleared_ms {
            None => "active".to_string(),
            Some(t) => format!("cleared {}", ago(now_ms, t)),
        };
        table.row(vec![
            a.device_id.clone(),
            a.kind.name().into(),
            one_line(&a.message),
            ago(now_ms, a.raised_ms),
            state,
        ]);
    }
    table.render()
}

/// `12s ago`, `5m ago`, `3h ago`, `2d ago`.
pub fn ago(now_ms: u64, at_ms: u64) -> String {
    let s = now_ms.saturating_sub(at_ms) / 1000;
    match s {
        s if s < 60 => format!("{s}s ago"),
        s if s < 3_600 => format!("{}m ago", s / 60),
        s if s < 86_400 => format!("{}h ago", s / 3_600),
        s => format!("{}d ago", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitor::alerts::AlertKind;

    fn alert(device: &str, kind: AlertKind, raised_ms: u64, cleared_ms: Option<u64>) -> Alert {
        Alert {
            seq: 1,
            device_id: device.into(),
            kind,
            raised_ms,
            message: "free disk 12 MB\nof 32 GB".into(),
            cleared_ms,
        }
    }

    #[test]
    fn the_table_shows_each_alert_with_its_age_and_state() {
        let now = 10 * 86_400_000;
        let text = alerts_table(
            &[
                alert("pi-kitchen-1", AlertKind::DiskLow, now - 90_000, None),
                alert(
                    "pi-2",
                    AlertKind::CrashLoop,
                    now - 7_200_000,
                    Some(now - 5_000),
                ),
            ],
            now,
        );
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(
            lines[0].starts_with("DEVICE        ALERT       MESSAGE"),
            "{text}"
        );
        assert!(
            lines[1]
                .starts_with("pi-kitchen-1  disk-low    free disk 12 MB of 32 GB  1m ago  active"),
            "{text}"
        );
        assert!(lines[2].ends_with("2h ago  cleared 5s ago"), "{text}");
        let at = |l: &str, w: &str| l.find(w).unwrap();
        assert_eq!(at(lines[0], "STATE"), at(lines[1], "active"));
    }

    #[test]
    fn no_alerts_says_so() {
        assert_eq!(alerts_table(&[], 0), "no alerts\n");
    }

    #[test]
    fn ages_read_in_the_largest_whole_unit() {
        assert_eq!(ago(59_000, 0), "59s ago");
        assert_eq!(ago(3_599_000, 0), "59m ago");
        assert_eq!(ago(7_200_000, 0), "2h ago");
        assert_eq!(ago(3 * 86_400_000, 0), "3d ago");
        assert_eq!(ago(0, 5_000), "0s ago");
    }
}
