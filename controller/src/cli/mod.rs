//! The `petrel` operator CLI: a thin layer over [`crate::client::Client`].

//!
//! One file per command family: `image`, `release`, `devices` (the fleet
//! table), `wait` (`deploy --wait`).

mod device;
mod devices;
mod image;
mod release;
mod rollout;
mod security;
mod wait;

pub use device::DeviceCmd;
pub use devices::devices_table;
pub use image::ImageCmd;
pub use release::ReleaseCmd;
pub use rollout::{GroupCmd, RolloutCmd};
pub use security::{BrokerCmd, CaCmd, KeyCmd, TokenCmd};

use crate::client::Client;
use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
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
        #[arg(long)]
        json: bool,
        /// Only devices a selector picks (`group=field,site!=lab`, over
        /// labels, id, platform, hostname, agent_version).
        #[arg(long = "select")]
        selector: Option<String>,
    },
    /// One device: show it, or forget it.
    #[command(subcommand)]
    Device(DeviceCmd),
    /// Show a device's recent events.
    Events {
        device: String,
        #[arg(long)]
        json: bool,
    },
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
    // the local verbs need no controller
    let cli = match cli.command {
        Command::Ca(cmd) => return security::ca_init(cmd),
        Command::Broker(cmd) => return security::broker(cmd),
        Command::Key(KeyCmd::RootInit { out }) => return security::root_init(&out),
        _ => cli,
    };
    let client = Client::with_credentials(&cli.controller, &credentials(&cli)?)?;
    match cli.command {
        Command::Ca(_) | Command::Broker(_) | Command::Key(KeyCmd::RootInit { .. }) => {
            unreachable!("handled above")
        }
        Command::Token(cmd) => security::token(&client, cmd).await,
        Command::Rollout(cmd) => rollout::run(&client, cmd).await,
        Command::Group(cmd) => rollout::group(&client, cmd).await,
        Command::Undeploy { devices } => {
            for d in devices {
                let u = client.undeploy(&d).await?;
                match u.generation {
                    Some(g) => println!("{d}: desired state (generation {g}) cleared; it keeps running what it runs"),
                    None => println!("{d}: had no desired state"),
                }
            }
            Ok(())
        }
        Command::Image(cmd) => image::run(&client, cmd).await,
        Command::Release(cmd) => release::run(&client, cmd).await,
        Command::Deploy {
            release,
            devices,
            allow_new,
            wait,
            timeout,
        } => {
            let deployed = client.deploy_with(&release, &devices, allow_new).await?;
            for d in &deployed {
                println!(
                    "{}: desired {release} (generation {})",
                    d.device, d.generation
                );
            }
            if wait {
                wait::wait_deployed(&client, &deployed, Duration::from_secs(timeout)).await?;
            }
            Ok(())
        }
        Command::Devices { json, selector } => {
            let mut devices = client.devices().await?;
            if let Some(s) = selector {
                let s: petrel_protocol::rollout::Selector = s.parse()?;
                devices.retain(|d| s.matches(&d.facts()));
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&devices)?);
            } else {
                print!("{}", devices_table(&devices, crate::now_ms()));
            }
            Ok(())
        }
        Command::Device(cmd) => device::run(&client, cmd).await,
        Command::Events { device, json } => {
            let events = client.events(&device).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&events)?);
            } else {
                print!("{}", device::events_text(&events));
            }
            Ok(())
        }
        Command::Key(cmd) => security::key(&client, cmd).await,
        Command::Gc => {
            let gc = client.gc().await?;
            println!("{}", gc_line(&gc));
            Ok(())
        }
    }
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

pub(crate) fn phase_name(phase: petrel_protocol::Phase) -> String {
    serde_json::to_value(phase)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default()
}

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

/// 1.5 MB, 820 KB, 12 B.
pub fn human_bytes(n: u64) -> String {
    match n {
        n if n >= 10_000_000 => format!("{} MB", n / 1_000_000),
        n if n >= 1_000_000 => format!("{:.1} MB", n as f64 / 1e6),
        n if n >= 1_000 => format!("{} KB", n / 1_000),
        n => format!("{n} B"),
    }
}

/// Multi-line text (a process's output in an error) on one table line.
pub(crate) fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}
