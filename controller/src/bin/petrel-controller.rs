//! `petrel-controller serve`: the fleet controller server.
use anyhow::Context;
use clap::{Parser, Subcommand};
use petrel_controller::{serve, BrokerMode, Security, ServeConfig};
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "petrel-controller", version)]
struct Args {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the controller.
    Serve {
        /// Data directory (store, blobs).
        #[arg(long)]
        data: PathBuf,
        /// HTTP API and blob server address.
        #[arg(long, default_value = "127.0.0.1:7700")]
        http: SocketAddr,
        /// Embedded broker address (ignored with --broker); default
        /// 127.0.0.1:8883, or 127.0.0.1:1883 with --insecure.
        #[arg(long)]
        mqtt_listen: Option<SocketAddr>,
        /// Use an external MQTT broker (mqtts://HOST:PORT; see `petrel
        /// broker mosquitto-config`) instead of the embedded one.
        #[arg(long)]
        broker: Option<String>,
        /// Plaintext HTTP and MQTT, no device certificates: for a lab only.
        #[arg(long)]
        insecure: bool,
        /// The host name devices use for this controller (written into
        /// provisioned agent configs).
        #[arg(long)]
        advertise: Option<String>,
        /// Largest upload (layer or image archive) accepted, in bytes.
        #[arg(long, default_value_t = petrel_controller::DEFAULT_MAX_UPLOAD)]
        max_upload_bytes: u64,
        /// Raise an `offline` alert for a device away this many seconds.
        #[arg(long, default_value_t = 600)]
        alert_offline_secs: u64,
        /// Raise a `disk-low` alert below this many MiB free on a device.
        #[arg(long, default_value_t = 256)]
        alert_disk_free_mib: u64,
    },
}

/// Threads for blocking work (the file reads behind every download, store
/// flushes, imports, delta encodes). Tokio's default of 512 let thousands
/// of concurrent downloads start hundreds of threads that then queued on
/// the pool's one lock, the async workers with them: at 5,000 devices the
/// fleet simulator saw the API stall 6-12 s with the CPU idle.
const BLOCKING_THREADS: usize = 32;

fn main() -> std::process::ExitCode {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(BLOCKING_THREADS)
        .build();
    match runtime {
        Ok(rt) => rt.block_on(serve_main()),
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn serve_main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // the chain once, whatever RUST_BACKTRACE says
            eprintln!("error: {}", petrel_protocol::error_text(e.as_ref()));
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,rumqttd=warn".into()),
        )
        .init();
    let Cmd::Serve {
        data,
        http,
        mqtt_listen,
        broker,
        max_upload_bytes,
        insecure,
        advertise,
        alert_offline_secs,
        alert_disk_free_mib,
    } = Args::parse().cmd;
    let mqtt_listen = mqtt_listen.unwrap_or_else(|| {
        let port = if insecure { 1883 } else { 8883 };
        SocketAddr::from(([127, 0, 0, 1], port))
    });
    let listener = petrel_controller::listen::bind(http)
        .await
        .with_context(|| format!("binding HTTP on {http}"))?;
    let broker = match broker {
        Some(url) => BrokerMode::External { url },
        None => BrokerMode::Embedded {
            listen: mqtt_listen,
        },
    };
    let cfg = ServeConfig {
        data_dir: data,
        http: listener,
        broker,
        limits: Default::default(),
        max_upload_bytes,
        security: if insecure {
            Security::Insecure
        } else {
            Security::Tls
        },
        advertise_host: advertise,
        alerts: petrel_controller::monitor::alerts::AlertRules {
            offline_after_ms: alert_offline_secs.saturating_mul(1000),
            disk_low_bytes: alert_disk_free_mib.saturating_mul(1 << 20),
        },
    };
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    let shutdown = async move {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    };
    serve(cfg, shutdown).await?;
    Ok(())
}
