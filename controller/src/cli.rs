//! The `petrel` operator CLI: a thin layer over [`crate::client::Client`].

use crate::client::Client;
use crate::http::DeviceView;
use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use petrel_protocol::ImageConfig;
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "petrel", about = "Operate a Petrel fleet", version)]
pub struct Cli {
    /// Controller HTTP API.
    #[arg(
        long,
        env = "PETREL_CONTROLLER",
        default_value = "http://127.0.0.1:7700"
    )]
    pub controller: String,
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
    },
    /// Show every device: presence, desired vs current release, phase.
    Devices {
        #[arg(long)]
        json: bool,
    },
    /// Show a device's recent events.
    Events { device: String },
}

#[derive(Subcommand)]
pub enum ImageCmd {
    /// Import a `docker save` or OCI image-layout tarball.
    Import {
        file: PathBuf,
        #[arg(long)]
        name: String,
        #[arg(long)]
        tag: String,
    },
    /// Build a one-layer image from a directory.
    Build {
        dir: PathBuf,
        #[arg(long)]
        name: String,
        #[arg(long)]
        tag: String,
        /// Entrypoint argv, one flag per element.
        #[arg(long = "entrypoint")]
        entrypoint: Vec<String>,
        /// Default command argv, one flag per element.
        #[arg(long = "cmd")]
        cmd: Vec<String>,
        /// KEY=VALUE, repeatable.
        #[arg(long = "env")]
        env: Vec<String>,
        #[arg(long)]
        workdir: Option<String>,
    },
    /// List images.
    List,
}

#[derive(Subcommand)]
pub enum ReleaseCmd {
    /// Create a release from a compose file.
    Create {
        name: String,
        #[arg(long)]
        version: String,
        #[arg(long)]
        compose: PathBuf,
    },
}

pub async fn run(cli: Cli) -> Result<()> {
    let client = Client::new(&cli.controller);
    match cli.command {
        Command::Image(cmd) => image(&client, cmd).await,
        Command::Release(ReleaseCmd::Create {
            name,
            version,
            compose,
        }) => {
            let text = std::fs::read_to_string(&compose)
                .with_context(|| format!("reading {}", compose.display()))?;
            let r = client.create_release(&name, &version, &text).await?;
            println!(
                "release {}@{} created ({} services)",
                r.name,
                r.version,
                r.services.len()
            );
            Ok(())
        }
        Command::Deploy {
            release,
            devices,
            allow_new,
        } => {
            for d in client.deploy_with(&release, &devices, allow_new).await? {
                println!(
                    "{}: desired {release} (generation {})",
                    d.device, d.generation
                );
            }
            Ok(())
        }
        Command::Devices { json } => {
            let devices = client.devices().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&devices)?);
            } else {
                print!("{}", devices_table(&devices, crate::now_ms()));
            }
            Ok(())
        }
        Command::Events { device } => {
            for e in client.events(&device).await? {
                println!(
                    "{:>6} {:?} gen {} {}",
                    e.seq, e.kind, e.generation, e.message
                );
            }
            Ok(())
        }
    }
}

async fn image(client: &Client, cmd: ImageCmd) -> Result<()> {
    let m = match cmd {
        ImageCmd::Import { file, name, tag } => client.import_image(&file, &name, &tag).await?,
        ImageCmd::Build {
            dir,
            name,
            tag,
            entrypoint,
            cmd,
            env,
            workdir,
        } => {
            let config = ImageConfig {
                entrypoint,
                cmd,
                env,
                working_dir: workdir,
                ..Default::default()
            };
            client.build_image(&dir, &name, &tag, config).await?
        }
        ImageCmd::List => {
            for m in client.images().await? {
                println!("{}:{} {} layers {}", m.name, m.tag, m.layers.len(), m.id());
            }
            return Ok(());
        }
    };
    println!(
        "image {}:{} ({} layers, id {})",
        m.name,
        m.tag,
        m.layers.len(),
        m.id()
    );
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

fn opt(r: &Option<petrel_protocol::ReleaseRef>) -> String {
    r.as_ref().map_or("-".into(), |r| r.to_string())
}

/// The `petrel devices` table.
pub fn devices_table(devices: &[DeviceView], now_ms: u64) -> String {
    let mut out = format!(
        "{:<16} {:<8} {:<20} {:<20} {:<12} {:<14} {}\n",
        "DEVICE", "STATUS", "DESIRED", "CURRENT", "PHASE", "PROGRESS", "LAST SEEN"
    );
    for d in devices {
        let progress = if d.progress.bytes_total > 0 {
            format!(
                "{}/{} KB",
                d.progress.bytes_done / 1024,
                d.progress.bytes_total / 1024
            )
        } else {
            "-".into()
        };
        let seen = if d.last_seen_ms == 0 {
            "never".into()
        } else {
            format!("{}s ago", now_ms.saturating_sub(d.last_seen_ms) / 1000)
        };
        out += &format!(
            "{:<16} {:<8} {:<20} {:<20} {:<12} {:<14} {}\n",
            d.id,
            if d.online { "online" } else { "offline" },
            opt(&d.desired),
            opt(&d.current),
            serde_json::to_value(d.phase)
                .ok()
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_default(),
            progress,
            seen
        );
        if let Some(e) = &d.last_error {
            out += &format!("{:<16} error: {e}\n", "");
        }
    }
    out
}
