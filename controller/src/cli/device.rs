//! `petrel device show|forget` and the text of `petrel events`.

use super::devices_table;
use crate::client::Client;
use anyhow::Result;
use clap::Subcommand;
use petrel_protocol::Event;

#[derive(Subcommand)]
pub enum DeviceCmd {
    /// Show one device: its row, services, last error and recent events.
    Show {
        id: String,
        #[arg(long)]
        json: bool,
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

pub(super) async fn run(client: &Client, cmd: DeviceCmd) -> Result<()> {
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
            super::security::provision(client, &id, opts).await?;
        }
        DeviceCmd::Label { id, pairs, remove } => {
            super::rollout::label(client, &id, &pairs, remove).await?;
        }
        DeviceCmd::Revoke { id } => {
            let r = client.revoke_device(&id).await?;
            println!("device {id}: revoked certificate serial(s) {}; its connections are refused from now on", r.serials.join(", "));
        }
        DeviceCmd::Show { id, json } => {
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
                view.free_disk_bytes.map_or("?".into(), super::human_bytes),
                if labels.is_empty() {
                    "-".into()
                } else {
                    labels.join(",")
                }
            );
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
            let note = match last.online {
                true => " (it is online: it will show up again with its next report)",
                false => "",
            };
            println!("device {id} forgotten{note}");
        }
    }
    Ok(())
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
