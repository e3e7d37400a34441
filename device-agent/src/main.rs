//! `petrel-agent run --config FILE`: the device agent.
use anyhow::Context;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "petrel-agent", version)]
struct Args {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the agent.
    Run {
        #[arg(long)]
        config: PathBuf,
    },
    /// Stop every service the agent started and unmount their root
    /// filesystems (stop the agent itself first, e.g. `systemctl stop
    /// petrel-agent`). Running the agent again brings the release back.
    StopServices {
        #[arg(long)]
        config: PathBuf,
    },
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // the chain once, whatever RUST_BACKTRACE says: an operator's
            // error, not a crash
            eprintln!("error: {}", petrel_protocol::error_text(e.as_ref()));
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let config = match Args::parse().cmd {
        Cmd::Run { config } => config,
        Cmd::StopServices { config } => {
            let cfg = petrel_agent::config::Config::load(&config)?;
            return stop_services(&cfg).await;
        }
    };
    let cfg = petrel_agent::config::Config::load(&config)?;

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    let shutdown = async move {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    };
    if cfg.runtime == "docker" {
        let runtime = petrel_runtime::DockerRuntime::connect(&cfg.device_id)
            .await
            .context("connecting to the Docker Engine")?;
        petrel_agent::run(cfg, runtime, shutdown).await?;
    } else {
        let runtime = petrel_runtime::NativeRuntime::new(cfg.data_dir.join("runtime"))
            .with_context(|| {
                format!("starting the native runtime in {}", cfg.data_dir.display())
            })?;
        petrel_agent::run(cfg, runtime, shutdown).await?;
    }
    Ok(())
}

/// `stop-services`: every instance the runtime knows is stopped, then the
/// native runtime's overlay root filesystems are unmounted.
async fn stop_services(cfg: &petrel_agent::config::Config) -> anyhow::Result<()> {
    let stopped = if cfg.runtime == "docker" {
        let runtime = petrel_runtime::DockerRuntime::connect(&cfg.device_id)
            .await
            .context("connecting to the Docker Engine")?;
        petrel_agent::stop_all(&runtime).await?
    } else {
        let runtime = petrel_runtime::NativeRuntime::new(cfg.data_dir.join("runtime"))
            .with_context(|| format!("opening the native runtime in {}", cfg.data_dir.display()))?;
        petrel_agent::stop_all(&runtime).await?
    };
    let rootfs = cfg.data_dir.join("rootfs");
    let unmounted = petrel_runtime::rootfs::unmount_all(&rootfs)
        .with_context(|| format!("unmounting root filesystems in {}", rootfs.display()))?;
    println!("stopped {stopped} services, unmounted {unmounted} root filesystems");
    Ok(())
}
