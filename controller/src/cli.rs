//! The `petrel` operator CLI: a thin layer over [`crate::client::Client`].

use crate::client::Client;
use crate::http::{Deployed, DeviceView};
use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use petrel_protocol::ImageConfig;
use std::path::PathBuf;
use std::time::Duration;

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
        /// Follow the devices until each runs the release (exit 0) or
        /// fails or rolls back (exit 1), showing progress.
        #[arg(long)]
        wait: bool,
        /// With --wait: give up after this many seconds (exit 1).
        #[arg(long, default_value_t = 1800)]
        timeout: u64,
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
                wait_deployed(&client, &deployed, Duration::from_secs(timeout)).await?;
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
                // A service's output in a message may span lines: they
                // are indented under the message so each event stays one
                // block.
                let message = e.message.trim_end().replace('\n', "\n                ");
                println!("{:>6} {:?} gen {} {message}", e.seq, e.kind, e.generation);
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
            let mut table = crate::table::Table::new(&["IMAGE", "LAYERS", "SIZE", "ID"]);
            for m in client.images().await? {
                let size: u64 = m.layers.iter().map(|l| l.size).sum();
                table.row(vec![
                    format!("{}:{}", m.name, m.tag),
                    m.layers.len().to_string(),
                    human_bytes(size),
                    m.id().to_string(),
                ]);
            }
            print!("{}", table.render());
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

/// Devices shown one line each up to this many; a summary bar beyond.
const WAIT_LINES: usize = 20;

/// `deploy --wait`: polls the fleet view until every deployed device has
/// converged, failed or been superseded; redraws its lines in place on a
/// terminal, prints changes only otherwise.
async fn wait_deployed(client: &Client, deployed: &[Deployed], timeout: Duration) -> Result<()> {
    use crate::watch::{line, outcome, summary, Outcome, Rates};
    use std::io::{IsTerminal, Write};
    let start = std::time::Instant::now();
    let tty = std::io::stdout().is_terminal();
    let mut rates = Rates::default();
    let (mut drawn, mut last_text) = (0usize, Vec::<String>::new());
    loop {
        let views = match client.devices().await {
            Ok(v) => v,
            Err(e) if start.elapsed() < timeout => {
                eprintln!("waiting: {e}");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let now_s = start.elapsed().as_secs_f64();
        let mut outcomes = Vec::new();
        let mut lines = Vec::new();
        for d in deployed {
            let Some(view) = views.iter().find(|v| v.id == d.device) else {
                outcomes.push(Outcome::Pending);
                lines.push(format!("{}  not connected yet", d.device));
                continue;
            };
            let o = outcome(view, d.generation);
            let rate = rates.update(&view.id, view.progress.bytes_done, now_s);
            lines.push(line(view, &o, rate));
            outcomes.push(o);
        }
        if deployed.len() > WAIT_LINES {
            lines = vec![summary(&outcomes)];
        }
        let mut out = std::io::stdout().lock();
        if tty {
            // Back to the top of what was drawn last time, clearing it.
            for _ in 0..drawn {
                write!(out, "\x1b[1A\x1b[2K")?;
            }
            lines.iter().try_for_each(|l| writeln!(out, "{l}"))?;
            drawn = lines.len();
        } else {
            let changed = |l: &&String| !last_text.contains(l) && !l.contains(" of ");
            lines
                .iter()
                .filter(changed)
                .try_for_each(|l| writeln!(out, "{l}"))?;
            last_text = lines.clone();
        }
        out.flush()?;
        drop(out);
        if outcomes.iter().all(Outcome::done) {
            return wait_verdict(deployed, &outcomes);
        }
        if start.elapsed() >= timeout {
            let left: Vec<&str> = deployed
                .iter()
                .zip(&outcomes)
                .filter(|(_, o)| !o.done())
                .map(|(d, _)| d.device.as_str())
                .collect();
            bail!(
                "timed out after {} s; not done: {}",
                timeout.as_secs(),
                left.join(", ")
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Ok if every device converged; else an error naming each that did not.
fn wait_verdict(deployed: &[Deployed], outcomes: &[crate::watch::Outcome]) -> Result<()> {
    use crate::watch::Outcome;
    let bad: Vec<String> = deployed
        .iter()
        .zip(outcomes)
        .filter_map(|(d, o)| match o {
            Outcome::Failed(why) => Some(format!("{}: {why}", d.device)),
            Outcome::Superseded(g) => Some(format!("{}: superseded by generation {g}", d.device)),
            _ => None,
        })
        .collect();
    if bad.is_empty() {
        println!("all {} devices run the release", deployed.len());
        return Ok(());
    }
    bail!(
        "{} of {} devices did not converge:\n  {}",
        bad.len(),
        deployed.len(),
        bad.join("\n  ")
    )
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
        if let Some(e) = &d.last_error {
            table.note(format!("error: {}", one_line(e)));
        }
    }
    table.render()
}

pub(crate) fn phase_name(phase: petrel_protocol::Phase) -> String {
    serde_json::to_value(phase)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default()
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
        _ => "-".into(),
    }
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
