//! `petrel-sim`: the simulator. `petrel-sim demo` runs the quickstart.
use clap::{Parser, Subcommand};
use std::time::Duration;

#[derive(Parser)]
#[command(name = "petrel-sim", version)]
struct Args {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Controller + agents on embedded defaults; roll the sample app v1 then v2.
    Demo {
        #[arg(long, default_value_t = 3)]
        devices: usize,
        /// Seconds each rollout may take.
        #[arg(long, default_value_t = 120)]
        timeout: u64,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let Cmd::Demo { devices, timeout } = Args::parse().cmd;
    let opts = petrel_simulator::demo::DemoOptions {
        devices,
        timeout: Duration::from_secs(timeout),
    };
    petrel_simulator::demo::run(opts).await
}
