//! `petrel-sim`: the simulator. `petrel-sim demo` runs the quickstart;
//! `petrel-sim run SCENARIO.toml --report DIR` rehearses a rollout.
use clap::{Parser, Subcommand};
use petrel_protocol::SwapStrategy;
use std::time::Duration;

#[derive(Parser)]
#[command(name = "petrel-sim", version)]
struct Args {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Rehearse a rollout: a scenario's virtual fleet over simulated
    /// links against a real controller; a JSON report, charts and an HTML
    /// page in DIR.
    Run {
        scenario: std::path::PathBuf,
        #[arg(long)]
        report: std::path::PathBuf,
        /// No progress lines.
        #[arg(long)]
        quiet: bool,
        /// Play the scenario with this many devices instead of its own
        /// number (the fleet mix and fault shares stay as percentages).
        #[arg(long)]
        devices: Option<usize>,
        /// Play it on this broker instead of the scenario's own
        /// (`embedded` or `mosquitto`).
        #[arg(long)]
        broker: Option<String>,
        /// Devices one simulator process holds; a larger fleet is split
        /// over shard processes of this size (each device costs about
        /// three open files in the fault layer).
        #[arg(long, default_value_t = petrel_simulator::run::devices::PER_PROCESS)]
        per_process: usize,
    },
    /// A slice of a run's fleet in a process of its own (started by
    /// `run`, driven over standard input and output).
    #[command(hide = true)]
    Shard { spec: std::path::PathBuf },
    /// Controller + agents on embedded defaults; roll the sample app v1 then v2.
    Demo {
        #[arg(long, default_value_t = 3)]
        devices: usize,
        /// Seconds each rollout may take.
        #[arg(long, default_value_t = 120)]
        timeout: u64,
    },
    /// Kill a real agent with SIGKILL at random points of updates; check
    /// every iteration ends with exactly one whole release; report downtime.
    CrashSoak {
        #[arg(long, default_value_t = 200)]
        iterations: usize,
        /// handover, stop-first, or both (each runs --iterations)
        #[arg(long, default_value = "both")]
        strategy: String,
        /// Bytes of new content in each release, in KiB.
        #[arg(long, default_value_t = 4096)]
        payload_kib: usize,
        /// The device's download bandwidth, kbit/s.
        #[arg(long, default_value_t = 32_000)]
        link_kbps: u64,
        /// Clean updates measured for downtime first.
        #[arg(long, default_value_t = 10)]
        downtime_samples: usize,
    },
    /// The cost of running a large rollout (the planner, then the
    /// controller's rollout core on a real store, simulated reports),
    /// against writing the whole rollout record per step.
    BenchRollout {
        #[arg(long, default_value_t = 50_000)]
        devices: usize,
        /// Progress reports per device before it succeeds.
        #[arg(long, default_value_t = 3)]
        rounds: u32,
        /// Seconds between a device's reports.
        #[arg(long, default_value_t = 30)]
        interval: u64,
    },
}

/// Threads for the virtual devices' blocking work (unpacking, syncing
/// files). With tokio's default of 512 per process, thousands of devices
/// installing at once ran the machine's load average past 400, starved
/// the agents' MQTT keep-alives and took the controller's CPU.
const BLOCKING_THREADS: usize = 16;

fn main() -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(BLOCKING_THREADS)
        .build()?
        .block_on(run())
}

async fn run() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,rumqttd=off,petrel_agent=error".into()),
        )
        // standard output carries progress lines and a shard's ticks
        .with_writer(std::io::stderr)
        .init();
    match Args::parse().cmd {
        Cmd::Run {
            scenario,
            report,
            quiet,
            devices,
            broker,
            per_process,
        } => {
            let mut s = petrel_simulator::scenario::Scenario::load(&scenario)?;
            if let Some(n) = devices {
                s.resize(n)?;
            }
            if let Some(b) = broker {
                s.broker = match b.as_str() {
                    "embedded" => petrel_simulator::scenario::BrokerKind::Embedded,
                    "mosquitto" => petrel_simulator::scenario::BrokerKind::Mosquitto,
                    other => anyhow::bail!("--broker {other:?}: embedded or mosquitto"),
                };
            }
            let opts = petrel_simulator::run::RunOptions {
                live: !quiet,
                per_process,
                ..petrel_simulator::run::RunOptions::new(report.clone())
            };
            let r = petrel_simulator::run::run(&s, &opts).await?;
            println!("{}", r.summary());
            println!("report: {}", report.join("index.html").display());
            if r.timed_out {
                anyhow::bail!("the rollout did not end within {} s", s.timeout_s);
            }
            Ok(())
        }
        Cmd::Shard { spec } => petrel_simulator::run::shards::serve(&spec).await,
        Cmd::BenchRollout {
            devices,
            rounds,
            interval,
        } => {
            let b =
                petrel_simulator::plan_bench::run(devices, rounds, Duration::from_secs(interval))?;
            println!("{}", b.summary());
            Ok(())
        }
        Cmd::Demo { devices, timeout } => {
            let opts = petrel_simulator::demo::DemoOptions {
                devices,
                timeout: Duration::from_secs(timeout),
            };
            petrel_simulator::demo::run(opts).await
        }
        Cmd::CrashSoak {
            iterations,
            strategy,
            payload_kib,
            link_kbps,
            downtime_samples,
        } => {
            let strategies = match strategy.as_str() {
                "both" => vec![SwapStrategy::Handover, SwapStrategy::StopFirst],
                one => vec![
                    serde_json::from_value(serde_json::Value::String(one.into())).map_err(
                        |_| {
                            anyhow::anyhow!("unknown strategy {one:?} (handover, stop-first, both)")
                        },
                    )?,
                ],
            };
            for strategy in strategies {
                let opts = petrel_simulator::soak::SoakOptions {
                    iterations,
                    strategy,
                    payload_bytes: payload_kib << 10,
                    link_kbps,
                    downtime_samples,
                    agent_bin: None,
                };
                let report = petrel_simulator::soak::run(opts).await?;
                println!("{strategy:?}: {}", report.summary());
            }
            Ok(())
        }
    }
}
