//! `petrel devices`: the fleet table.

use super::{human_bytes, one_line, phase_name};
use crate::client::Client;
use crate::http::DeviceView;
use anyhow::Result;

fn opt(r: &Option<petrel_protocol::ReleaseRef>) -> String {
    r.as_ref().map_or("-".into(), |r| r.to_string())
}

/// The `petrel devices` table: columns sized to their content, an error
/// line under a device that has one.
pub fn devices_table(devices: &[DeviceView], now_ms: u64) -> String {
    let mut table = crate::table::Table::new(&[
        "DEVICE",
        "STATUS",
        "DESIRED",
        "CURRENT",
        "PHASE",
        "PROGRESS",
        "LAST SEEN",
    ]);
    for d in devices {
        let seen = if d.last_seen_ms == 0 {
            "never".into()
        } else {
            format!("{}s ago", now_ms.saturating_sub(d.last_seen_ms) / 1000)
        };
        table.row(vec![
            d.id.clone(),
            if d.online { "online" } else { "offline" }.into(),
            opt(&d.desired),
            opt(&d.current),
            phase_name(d.phase),
            progress(d),
            seen,
        ]);
        if let Some(holder) = &d.held_by {
            table.note(format!("update lock held by {}", one_line(holder)));
        }
        if let Some(e) = &d.last_error {
            table.note(format!("error: {}", one_line(e)));
        }
    }
    table.render()
}

/// `petrel devices [--filter F]`: the table, or the views as JSON.
pub(super) async fn run(client: &Client, filter: Option<&str>, json: bool) -> Result<()> {
    let devices = match filter {
        Some(f) => client.devices_filtered(f).await?,
        None => client.devices().await?,
    };
    super::emit(json, &devices, || devices_table(&devices, crate::now_ms()))
}

/// Bytes of the download, or what the device is doing when there are none
/// to count: never "-" while an update is under way.
fn progress(d: &DeviceView) -> String {
    use petrel_protocol::Phase;
    let p = &d.progress;
    if p.bytes_total > 0 && d.phase == Phase::Downloading {
        let pct = p.bytes_done.saturating_mul(100) / p.bytes_total;
        return format!("{pct}% of {}", human_bytes(p.bytes_total));
    }
    match d.phase {
        Phase::Downloading => "starting".into(),
        Phase::Installing => "unpacking".into(),
        Phase::Swapping => "swapping".into(),
        Phase::RollingBack => "rolling back".into(),
        Phase::Deferred => "waiting for lock".into(),
        _ => d
            .update_bytes
            .map_or("-".into(), |b| format!("{} used", human_bytes(b))),
    }
}
