//! `petrel watch`: polls the controller every interval and redraws the
//! fleet frame ([`super::frame`]) in place until Ctrl-C.

use super::frame::{
    render, FleetWatch, RolloutProgress, Updating, UPDATING_LINES, UPDATING_PHASES,
};
use super::phase_name;
use crate::client::{AlertFilter, Client};
use crate::monitor::alerts::AlertKind;
use anyhow::Result;
use std::collections::HashSet;
use std::io::{IsTerminal, Write};
use std::time::Duration;

/// Active alerts read to count a filtered fleet's, at most.
const MAX_ALERTS: usize = 10_000;

/// What `petrel watch` was asked.
pub(super) struct WatchArgs {
    pub filter: Option<String>,
    pub interval: Duration,
    pub once: bool,
    pub json: bool,
}

/// Draws frames until Ctrl-C (or one with `once`). A frame that cannot be
/// read is reported on stderr and tried again next interval, except the
/// first (a bad filter, a controller not there) which is the error.
pub(super) async fn run(client: &Client, args: WatchArgs) -> Result<()> {
    tokio::select! {
        r = frames(client, &args) => r,
        _ = tokio::signal::ctrl_c() => Ok(()),
    }
}

async fn frames(client: &Client, args: &WatchArgs) -> Result<()> {
    // clear-and-home on a terminal; one frame after another otherwise
    let tty = std::io::stdout().is_terminal() && !args.json;
    let mut drawn = 0u64;
    loop {
        match gather(client, args.filter.as_deref()).await {
            Ok(w) => {
                let text = match args.json {
                    true => format!("{}\n", serde_json::to_string_pretty(&w)?),
                    false => render(&w, crate::now_ms()),
                };
                let mut out = std::io::stdout().lock();
                match (tty, drawn) {
                    (true, _) => write!(out, "\x1b[2J\x1b[H")?,
                    (false, 0) => {}
                    (false, _) => writeln!(out)?,
                }
                write!(out, "{text}")?;
                out.flush()?;
                drawn += 1;
            }
            Err(e) if drawn == 0 => return Err(e),
            Err(e) => eprintln!("watch: {e:#}"),
        }
        if args.once {
            return Ok(());
        }
        tokio::time::sleep(args.interval).await;
    }
}

/// One frame's data: the controller's summary when no filter is given,
/// else the counts of the devices the filter selects.
pub(super) async fn gather(client: &Client, filter: Option<&str>) -> Result<FleetWatch> {
    let rollouts = client.rollouts().await?;
    let rollouts = rollouts.iter().filter_map(RolloutProgress::of).collect();
    let Some(filter) = filter else {
        let tick = client.fleet_summary().await?;
        let (mut updating, mut updating_total) = (Vec::new(), 0);
        for phase in UPDATING_PHASES {
            let only = format!("phase={}", phase_name(phase));
            let page = client.fleet_page(&only, 0, UPDATING_LINES).await?;
            updating_total += page.total as u64;
            updating.extend(page.devices.iter().filter_map(Updating::of));
        }
        updating.truncate(UPDATING_LINES);
        return Ok(FleetWatch {
            at_ms: tick.at_ms,
            filter: None,
            summary: tick.summary,
            alerts: tick.alerts,
            rollouts,
            updating,
            updating_total,
        });
    };
    let devices = client.fleet_devices(filter).await?;
    let ids: HashSet<&str> = devices.iter().map(|d| d.id.as_str()).collect();
    let which = AlertFilter {
        active: true,
        limit: Some(MAX_ALERTS),
        device: None,
    };
    let mut alerts: std::collections::BTreeMap<String, u64> = AlertKind::ALL
        .iter()
        .map(|k| (k.name().into(), 0))
        .collect();
    for a in client.alerts(&which).await? {
        if ids.contains(a.device_id.as_str()) {
            *alerts.entry(a.kind.name().into()).or_default() += 1;
        }
    }
    let mut updating: Vec<Updating> = devices.iter().filter_map(Updating::of).collect();
    let updating_total = updating.len() as u64;
    updating.truncate(UPDATING_LINES);
    Ok(FleetWatch {
        at_ms: crate::now_ms(),
        filter: Some(filter.to_string()),
        summary: super::frame::summarize(&devices),
        alerts,
        rollouts,
        updating,
        updating_total,
    })
}
