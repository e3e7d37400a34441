//! The `petrel` operator CLI: a thin layer over [`crate::client::Client`].

//!
//! One file per command family: `image`, `release`, `devices` (the fleet
//! table), `wait` (`deploy --wait`), `alerts`, `watch` (the live fleet
//! summary, drawn by the pure `frame`). Every command prints its result as
//! JSON with the global `--json`.

mod alerts;
mod device;
mod devices;
pub mod frame;
mod image;
mod release;
mod rollout;
mod security;
mod wait;
mod watch;

pub use alerts::alerts_table;
pub use device::DeviceCmd;
pub use devices::devices_table;
pub use image::ImageCmd;
pub use release::ReleaseCmd;
pub use rollout::{GroupCmd, RolloutCmd};
pub use security::{BrokerCmd, CaCmd, KeyCmd, TokenCmd};

use crate::client::Client;
use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use serde::Serialize;
use std::time::Duration;

#[derive(Parser)]
#[command(name = "petrel", about = "Operate a Petrel fleet", version)]
pub struct Cli {
    /// Controller HTTP API.
    #[arg(
        long,
        env = "PETREL_CONTROLLER",
        default_value = "https://127.0.0.1:7700"
    )]
    pub controller: String,
    /// API token (default: the file ~/.config/petrel/token, if any).
    #[arg(long, env = "PETREL_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// The fleet CA certificate an https:// controller is checked against
    /// (the controller's <data>/pki/ca.pem; default ~/.config/petrel/ca.pem).
    #[arg(long, env = "PETREL_CA")]
    pub ca: Option<std::path::PathBuf>,
    /// Print the command's result as JSON (pretty) instead of text;
    /// accepted before or after the command.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Import or build images.
    #[command(subcommand)]
    Image(ImageCmd),
    /// Define releases.
    #[command(subcommand)]
    Release(ReleaseCmd),
    /// Set the desired release (NAME@VERSION) of devices.
    Deploy {
        /// NAME@VERSION
        #[arg(value_parser = parse_release_ref)]
        release: String,
        #[arg(long = "device", required = true)]
        devices: Vec<String>,
        /// Accept device ids the controller has not seen yet.
        #[arg(long)]
        allow_new: bool,
        /// Swap even while an application holds its update lock.
        #[arg(long)]
        force: bool,
        /// Most bytes the update may download per device (`50MB`, `1GiB`).
        #[arg(long, value_parser = petrel_protocol::policy::parse_bytes)]
        max_bytes: Option<u64>,
        /// `deny`: a device that cannot get a delta fails the update
        /// instead of downloading the full layer (metered links).
        #[arg(long)]
        full_fallback: Option<petrel_protocol::policy::FullFallback>,
        /// Follow the devices until each runs the release (exit 0) or
        /// fails or rolls back (exit 1), showing progress.
        #[arg(long)]
        wait: bool,
        /// With --wait: give up after this many seconds (exit 1).
        #[arg(long, default_value_t = 1800)]
        timeout: u64,
    },
    /// Stop asking devices for anything: their desired state is cleared;
    /// they keep running what they run.
    Undeploy {
        #[arg(required = true)]
        devices: Vec<String>,
    },
    /// Show every device: presence, desired vs current release, phase.
    Devices {
        /// Only the devices a filter selects, chosen by the controller:
        /// comma-separated `key=value`, `key!=value`, `key~text`
        /// (contains), `key` (all must hold), over labels and `id`,
        /// `platform`, `hostname`, `agent_version`, `phase`, `release`
        /// (NAME@VERSION it runs) and `online` (true/false); e.g.
        /// `phase=running,site=north,id~kit`. `--select` is the same.
        #[arg(long, visible_alias = "select")]
        filter: Option<String>,
    },
    /// A live fleet summary redrawn in place: counts, a bar per phase,
    /// releases in use, active alerts, active rollouts wave by wave,
    /// devices updating. Ctrl-C ends it.
    Watch {
        /// Count only the devices this filter selects (as `devices --filter`).
        #[arg(long)]
        filter: Option<String>,
        /// Seconds between redraws.
        #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..))]
        interval: u64,
        /// Print one frame and exit.
        #[arg(long)]
        once: bool,
    },
    /// Alerts (offline, crash-loop, disk-low), newest first.
    Alerts {
        /// Only this device's.
        #[arg(long)]
        device: Option<String>,
        /// Only those whose condition still holds.
        #[arg(long)]
        active: bool,
        /// At most this many (default 100).
        #[arg(long)]
        limit: Option<usize>,
    },
    /// One device: show it, or forget it.
    #[command(subcommand)]
    Device(DeviceCmd),
    /// Show a device's recent events.
    Events { device: String },
    /// The signing key of desired states: show it, or rotate it.
    #[command(subcommand)]
    Key(KeyCmd),
    /// Remove blobs, cached deltas and path lists nothing references
    /// (the controller also does so hourly and after each delete).
    Gc,
    /// The fleet certificate authority (local, on the controller's machine).
    #[command(subcommand)]
    Ca(CaCmd),
    /// Saved selectors, with maintenance windows.
    #[command(subcommand)]
    Group(GroupCmd),
    /// Waves of a release over the devices a selector picks.
    #[command(subcommand)]
    Rollout(RolloutCmd),
    /// API tokens: create (admin), list, delete.
    #[command(subcommand)]
    Token(TokenCmd),
    /// External broker configuration (local).
    #[command(subcommand)]
    Broker(BrokerCmd),
}

/// The CLI's credentials: flags and environment first, then
/// `~/.config/petrel/{token,ca.pem}`.
fn credentials(cli: &Cli) -> Result<crate::client::Credentials> {
    let config_dir =
        std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".config/petrel"));
    let from_config = |name: &str| {
        config_dir
            .as_ref()
            .map(|d| d.join(name))
            .filter(|p| p.exists())
    };
    let token = match &cli.token {
        Some(t) => Some(t.clone()),
        None => match from_config("token") {
            Some(p) => Some(std::fs::read_to_string(&p).with_context(|| p.display().to_string())?),
            None => None,
        },
    };
    let ca_pem = match cli.ca.clone().or_else(|| from_config("ca.pem")) {
        Some(p) => Some(std::fs::read_to_string(&p).with_context(|| format!("reading the fleet CA {}", p.display()))?),
        None if cli.controller.starts_with("https://") => anyhow::bail!("{} is https: give the fleet CA certificate with --ca or PETREL_CA (the controller's <data>/pki/ca.pem)", cli.controller),
        None => None,
    };
    Ok(crate::client::Credentials {
        token: token.map(|t| t.trim().to_string()),
        ca_pem,
    })
}

pub async fn run(cli: Cli) -> Result<()> {
    let json = cli.json;
    // the local verbs need no controller
    let cli = match cli.command {
        Command::Ca(cmd) => return security::ca_init(cmd, json),
        Command::Broker(cmd) => return security::broker(cmd, json),
        Command::Key(KeyCmd::RootInit { out }) => return security::root_init(&out, json),
        _ => cli,
    };
    let client = Client::with_credentials(&cli.controller, &credentials(&cli)?)?;
    match cli.command {
        Command::Ca(_) | Command::Broker(_) | Command::Key(KeyCmd::RootInit { .. }) => {
            unreachable!("handled above")
        }
        Command::Token(cmd) => security::token(&client, cmd, json).await,
        Command::Rollout(cmd) => rollout::run(&client, cmd, json).await,
        Command::Group(cmd) => rollout::group(&client, cmd, json).await,
        Command::Undeploy { devices } => undeploy(&client, &devices, json).await,
        Command::Image(cmd) => image::run(&client, cmd, json).await,
        Command::Release(cmd) => release::run(&client, cmd, json).await,
        Command::Deploy {
            release,
            devices,
            allow_new,
            force,
            max_bytes,
            full_fallback,
            wait,
            timeout,
        } => {
            let budget = (max_bytes.is_some() || full_fallback.is_some()).then(|| {
                petrel_protocol::policy::DataBudget {
                    max_bytes,
                    full_fallback: full_fallback.unwrap_or_default(),
                }
            });
            let req = crate::http::deploy::Deploy {
                release: release.clone(),
                devices,
                allow_new,
                force,
                budget,
            };
            let deployed = client.deploy_with(&req).await?;
            if !json {
                for d in &deployed {
                    let g = d.generation;
                    println!("{}: desired {release} (generation {g})", d.device);
                }
            }
            if wait {
                let timeout = Duration::from_secs(timeout);
                wait::wait_deployed(&client, &deployed, timeout, !json).await?;
            }
            match json {
                true => print_json(&serde_json::json!({ "deployed": deployed, "waited": wait })),
                false => Ok(()),
            }
        }
        Command::Devices { filter } => devices::run(&client, filter.as_deref(), json).await,
        Command::Watch {
            filter,
            interval,
            once,
        } => {
            let args = watch::WatchArgs {
                filter,
                interval: Duration::from_secs(interval),
                once,
                json,
            };
            watch::run(&client, args).await
        }
        Command::Alerts {
            device,
            active,
            limit,
        } => {
            let which = crate::client::AlertFilter {
                device,
                active,
                limit,
            };
            alerts::run(&client, which, json).await
        }
        Command::Device(cmd) => device::run(&client, cmd, json).await,
        Command::Events { device } => {
            let events = client.events(&device).await?;
            emit(json, &events, || device::events_text(&events))
        }
        Command::Key(cmd) => security::key(&client, cmd, json).await,
        Command::Gc => {
            let gc = client.gc().await?;
            emit(json, &gc, || format!("{}\n", gc_line(&gc)))
        }
    }
}

/// `petrel undeploy`: clears each device's desired state.
async fn undeploy(client: &Client, devices: &[String], json: bool) -> Result<()> {
    let mut cleared = Vec::new();
    for d in devices {
        let u = client.undeploy(d).await?;
        if !json {
            match u.generation {
                Some(g) => println!(
                    "{d}: desired state (generation {g}) cleared; it keeps running what it runs"
                ),
                None => println!("{d}: had no desired state"),
            }
        }
        cleared.push(u);
    }
    match json {
        true => print_json(&serde_json::json!({ "ok": true, "undeployed": cleared })),
        false => Ok(()),
    }
}

/// Prints a command's result: pretty JSON with `--json`, else `text`
/// (which ends its own lines).
pub(crate) fn emit<T: Serialize + ?Sized>(
    json: bool,
    value: &T,
    text: impl FnOnce() -> String,
) -> Result<()> {
    match json {
        true => print_json(value),
        false => {
            print!("{}", text());
            Ok(())
        }
    }
}

/// Prints `value` as pretty JSON.
pub(crate) fn print_json<T: Serialize + ?Sized>(value: &T) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// `NAME@VERSION`, checked before the controller is asked, with an error
/// that says what is missing.
fn parse_release_ref(s: &str) -> Result<String, String> {
    match s.split_once('@') {
        None => Err(format!(
            "{s:?} has no version: write NAME@VERSION (e.g. {s}@1.0)"
        )),
        Some((_, "")) => Err(format!("{s:?} has an empty version: write NAME@VERSION")),
        Some(_) => s
            .parse::<petrel_protocol::ReleaseRef>()
            .map(|_| s.to_string())
            .map_err(|e| e.to_string()),
    }
}

pub(crate) use crate::monitor::index::phase_name;

/// `NAME@VERSION` (already checked by [`parse_release_ref`]) in its parts.
fn split_release_ref(s: &str) -> (&str, &str) {
    s.split_once('@').unwrap_or((s, ""))
}

/// What a collection removed, as a sentence.
fn gc_line(gc: &crate::gc::GcReport) -> String {
    format!(
        "removed {} blobs ({}), {} cached deltas ({}), {} path lists",
        gc.blobs,
        human_bytes(gc.blob_bytes),
        gc.deltas,
        human_bytes(gc.delta_bytes),
        gc.path_lists
    )
}

pub use petrel_protocol::policy::human_bytes;

/// Multi-line text (a process's output in an error) on one table line.
pub(crate) fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn json_is_taken_before_or_after_the_command() {
        let before = Cli::try_parse_from(["petrel", "--json", "image", "list"]).unwrap();
        let after = Cli::try_parse_from(["petrel", "rollout", "list", "--json"]).unwrap();
        assert!(before.json && after.json);
    }

    #[test]
    fn select_is_another_name_of_the_devices_filter() {
        let cli = Cli::try_parse_from(["petrel", "devices", "--select", "phase=running"]).unwrap();
        let Command::Devices { filter } = cli.command else {
            panic!("devices expected");
        };
        assert_eq!(filter.as_deref(), Some("phase=running"));
    }
}
