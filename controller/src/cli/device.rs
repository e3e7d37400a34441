//! `petrel device show|logs|forget` and the text of `petrel events`.

use super::{devices_table, human_bytes};
use crate::client::Client;
use anyhow::Result;
use clap::Subcommand;
use petrel_protocol::{DeviceHealth, Event};

#[derive(Subcommand)]
pub enum DeviceCmd {
    /// Show one device: its row, services, last error and recent events.
    Show { id: String },
    /// Print the last lines of a service's output, asked of the device
    /// (it must be online: the controller waits 10 s for its answer).
    Logs {
        id: String,
        service: String,
        /// How many lines (1-1000).
        #[arg(long, default_value_t = 100)]
        tail: u32,
    },
    /// Forget a device (decommissioned, or a typo): its desired state,
    /// report and events go, and its retained desired state is cleared.
    Forget { id: String },
    /// Make a device's key here, have the controller certify it, and
    /// write key, certificate, CA and a ready agent.toml into --out.
    Provision {
        id: String,
        #[arg(long)]
        out: std::path::PathBuf,
        /// Broker URL for the device (default: what the controller advertises).
        #[arg(long)]
        broker: Option<String>,
        /// Controller URL for the device (default: what it advertises).
        #[arg(long)]
        controller_url: Option<String>,
        /// The agent's data directory on the device.
        #[arg(long, default_value = "/var/lib/petrel-agent")]
        agent_data_dir: std::path::PathBuf,
        /// An offline root public key (`petrel key root-init`) the device
        /// also pins, so a root-endorsed key replaces a stolen one.
        #[arg(long)]
        root_key: Option<String>,
    },
    /// Revoke every certificate of a device: its connections are refused
    /// from now on (MQTT and HTTPS).
    Revoke { id: String },
    /// Set labels (`key=value ...`) or remove them (`--remove key`).
    Label {
        id: String,
        pairs: Vec<String>,
        #[arg(long)]
        remove: Vec<String>,
    },
}

/// Events shown under `device show`.
const RECENT_EVENTS: usize = 10;

pub(super) async fn run(client: &Client, cmd: DeviceCmd, json: bool) -> Result<()> {
    match cmd {
        DeviceCmd::Provision {
            id,
            out,
            broker,
            controller_url,
            agent_data_dir,
            root_key,
        } => {
            let opts = crate::client::ProvisionOptions {
                out,
                broker,
                controller_url,
                agent_data_dir,
                root_key,
            };
            super::security::provision(client, &id, opts, json).await?;
        }
        DeviceCmd::Label { id, pairs, remove } => {
            super::rollout::label(client, &id, &pairs, remove, json).await?;
        }
        DeviceCmd::Revoke { id } => {
            let r = client.revoke_device(&id).await?;
            super::emit(json, &r, || {
                format!("device {id}: revoked certificate serial(s) {}; its connections are refused from now on\n", r.serials.join(", "))
            })?;
        }
        DeviceCmd::Logs { id, service, tail } => {
            let reply = client.device_logs(&id, &service, tail).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&reply)?);
                return Ok(());
            }
            if reply.truncated {
                eprintln!("(older lines left out: the reply holds what fits in one message)");
            }
            if !reply.text.is_empty() {
                let text = reply.text.trim_end_matches('\n');
                match std::io::IsTerminal::is_terminal(&std::io::stdout()) {
                    true => println!("{}", printable(text)),
                    false => println!("{text}"),
                }
            }
        }
        DeviceCmd::Show { id } => {
            let view = client.device(&id).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&view)?);
                return Ok(());
            }
            print!(
                "{}",
                devices_table(std::slice::from_ref(&view), crate::now_ms())
            );
            let labels: Vec<String> = view
                .labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            println!(
                "  host {}, agent {}, {} free, labels {}",
                view.hostname.as_deref().unwrap_or("?"),
                if view.agent_version.is_empty() {
                    "?"
                } else {
                    &view.agent_version
                },
                view.free_disk_bytes.map_or("?".into(), human_bytes),
                if labels.is_empty() {
                    "-".into()
                } else {
                    labels.join(",")
                }
            );
            if let Some(h) = &view.health {
                println!("  {}", health_text(h, view.free_disk_bytes));
            }
            if let Some(b) = view.update_bytes {
                println!("  last update downloaded {}", human_bytes(b));
            }
            for s in &view.services {
                let pid = s.pid.map_or("-".into(), |p| p.to_string());
                let exit = s
                    .exit_code
                    .map_or(String::new(), |c| format!(", exit code {c}"));
                println!(
                    "  service {}: {}, pid {pid}, {} restarts{exit}",
                    s.name, s.state, s.restarts
                );
            }
            let events = client.events(&id).await?;
            let recent = &events[events.len().saturating_sub(RECENT_EVENTS)..];
            if !recent.is_empty() {
                println!("recent events:");
                print!("{}", events_text(recent));
            }
        }
        DeviceCmd::Forget { id } => {
            let last = client.forget_device(&id).await?;
            if json {
                let forgot = serde_json::json!({ "ok": true, "forgotten": id, "last": last });
                return super::print_json(&forgot);
            }
            let note = match last.online {
                true => " (it is online: it will show up again with its next report)",
                false => "",
            };
            println!("device {id} forgotten{note}");
        }
    }
    Ok(())
}

/// One line of a device's health: uptime, memory, load and disk.
pub(super) fn health_text(h: &DeviceHealth, free_disk: Option<u64>) -> String {
    let load = |x: u32| format!("{}.{:02}", x / 100, x % 100);
    let used = h.mem_total_bytes.saturating_sub(h.mem_available_bytes);
    let disk = match (free_disk, h.disk_total_bytes) {
        (Some(f), Some(t)) => format!("{} free of {}", human_bytes(f), human_bytes(t)),
        (Some(f), None) => format!("{} free", human_bytes(f)),
        (None, Some(t)) => format!("? free of {}", human_bytes(t)),
        (None, None) => "?".into(),
    };
    format!(
        "up {} (agent {}), memory {} used of {}, load {} {} {}, disk {disk}",
        duration_text(h.uptime_s),
        duration_text(h.agent_uptime_s),
        human_bytes(used),
        human_bytes(h.mem_total_bytes),
        load(h.load1_x100),
        load(h.load5_x100),
        load(h.load15_x100),
    )
}

/// `3d 4h`, `2h 5m`, `7m 3s`, `12s`.
fn duration_text(s: u64) -> String {
    let (d, h, m) = (s / 86_400, s / 3_600 % 24, s / 60 % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, m) => format!("{m}m {}s", s % 60),
        (0, h, m) => format!("{h}h {m}m"),
        (d, h, _) => format!("{d}d {h}h"),
    }
}

/// `petrel events`: one block per event; a service's output in a message
/// may span lines, indented under it so each event stays one block.
pub(super) fn events_text(events: &[Event]) -> String {
    let mut out = String::new();
    for e in events {
        let message = e.message.trim_end().replace('\n', "\n                ");
        out += &format!("{:>6} {:?} gen {} {message}\n", e.seq, e.kind, e.generation);
    }
    out
}

/// A device's text made safe for a terminal: control characters other
/// than newlines and tabs (escape sequences that could retitle the window,
/// write the clipboard or redraw the screen) shown as `\u{..}`.
pub(crate) fn printable(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\n' | '\t' => c.to_string(),
            c if c.is_control() => c.escape_unicode().to_string(),
            c => c.to_string(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_reads_as_uptime_memory_load_and_disk() {
        let h = DeviceHealth {
            uptime_s: 3 * 86_400 + 4 * 3_600 + 59,
            agent_uptime_s: 125,
            mem_total_bytes: 4_000_000_000,
            mem_available_bytes: 1_000_000_000,
            load1_x100: 25,
            load5_x100: 150,
            load15_x100: 1200,
            disk_total_bytes: Some(32_000_000_000),
        };
        assert_eq!(
            health_text(&h, Some(8_000_000_000)),
            "up 3d 4h (agent 2m 5s), memory 3000 MB used of 4000 MB, load 0.25 1.50 12.00, disk 8000 MB free of 32000 MB"
        );
        assert!(health_text(&h, None).ends_with("disk ? free of 32000 MB"));
    }

    #[test]
    fn escape_sequences_from_a_device_are_shown_not_run() {
        let shown = printable("ok\tline\n\u{1b}]52;c;aGk=\u{7}done");
        assert_eq!(shown, "ok\tline\n\\u{1b}]52;c;aGk=\\u{7}done");
    }
}
