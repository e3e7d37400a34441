//! The quickstart demo: a controller with its embedded broker and a few
//! agents in temp dirs; the sample app v1 then v2 is built, released and
//! rolled out while the fleet view is printed. Succeeds only if every
//! device ends on v2 with the v2 process really running and v1 stopped.

use crate::fleet::LocalFleet;
use crate::sample;
use anyhow::{bail, Context, Result};
use petrel_controller::cli::devices_table;
use petrel_controller::client::Client;
use petrel_controller::http::DeviceView;
use petrel_protocol::ImageConfig;
use std::path::Path;
use std::time::{Duration, Instant};

const COMPOSE: &str = r#"services:
  app:
    image: sample-app:TAG
    command: ["--interval-ms", "200"]
    environment:
      GREETING: hello from petrel
    restart: always
"#;

pub struct DemoOptions {
    pub devices: usize,
    pub timeout: Duration,
}

/// Runs the demo; `Ok` only if the fleet converged on v2 and it runs.
pub async fn run(opts: DemoOptions) -> Result<()> {
    let tmp = tempfile::tempdir().context("creating a temp dir")?;
    let fleet = LocalFleet::start(tmp.path(), opts.devices).await?;
    println!(
        "controller on https://{} (embedded MQTT broker, mutual TLS, on 127.0.0.1:{}; a throwaway fleet CA, one certificate per device)",
        fleet.http, fleet.mqtt_port
    );
    let result = rollout(&fleet, tmp.path(), opts.timeout).await;
    fleet.shutdown().await;
    result
}

async fn rollout(fleet: &LocalFleet, tmp: &Path, timeout: Duration) -> Result<()> {
    let client = &fleet.client;
    let bin = sample::sample_app_binary()?;
    let ids = fleet.device_ids();
    let mut v1_pids = Vec::new();
    for version in ["1", "2"] {
        let dir = tmp.join(format!("sample-app-v{version}"));
        sample::app_dir(&bin, version, &dir)?;
        let config = ImageConfig {
            entrypoint: vec!["/app/sample-app".into()],
            working_dir: Some("/app".into()),
            ..Default::default()
        };
        let tag = format!("v{version}");
        let image = client
            .build_image(&dir, "sample-app", &tag, config)
            .await?
            .image;
        println!(
            "built image sample-app:{tag} ({} layer, {} bytes compressed)",
            image.layers.len(),
            image.layers[0].size
        );
        client
            .create_release("demo", version, &COMPOSE.replace("TAG", &tag))
            .await?;
        client.deploy(&format!("demo@{version}"), &ids).await?;
        println!(
            "\n== rolling out demo@{version} to {} devices ==",
            ids.len()
        );
        let devices = wait_converged(client, &ids, version, timeout).await?;
        let pids = check_running(fleet, &devices, version).await?;
        if version == "1" {
            v1_pids = pids;
        }
    }
    for pid in v1_pids {
        if Path::new(&format!("/proc/{pid}")).exists() {
            bail!("v1 process {pid} still runs after the update to v2");
        }
    }
    println!("\nOK: every device runs demo@2, the v2 app is alive, v1 is stopped");
    Ok(())
}

async fn wait_converged(
    client: &Client,
    ids: &[String],
    version: &str,
    timeout: Duration,
) -> Result<Vec<DeviceView>> {
    let start = Instant::now();
    let mut last = String::new();
    loop {
        let devices = client.devices().await?;
        let table = devices_table(&devices, petrel_controller::now_ms());
        if table != last {
            println!("[{:>5.1}s]\n{table}", start.elapsed().as_secs_f32());
            last = table;
        }
        let done = ids.iter().all(|id| {
            devices.iter().any(|d| {
                &d.id == id
                    && d.converged()
                    && d.current.as_ref().is_some_and(|c| c.version == version)
            })
        });
        if done {
            return Ok(devices);
        }
        if start.elapsed() > timeout {
            bail!("fleet did not converge on demo@{version} within {timeout:?}:\n{last}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Checks each device's app is alive (fresh heartbeat of the right version
/// from the pid the device reports); returns the pids.
async fn check_running(
    fleet: &LocalFleet,
    devices: &[DeviceView],
    version: &str,
) -> Result<Vec<u32>> {
    let mut pids = Vec::new();
    for agent in &fleet.agents {
        let view = devices
            .iter()
            .find(|d| d.id == agent.id)
            .context("device missing")?;
        let svc = view
            .services
            .first()
            .with_context(|| format!("{} reports no service", agent.id))?;
        let pid = svc
            .pid
            .with_context(|| format!("{} reports no pid", agent.id))?;
        let beat = wait_heartbeat(&agent.data_dir, version, pid)
            .await
            .with_context(|| format!("{}: the v{version} app is not running", agent.id))?;
        println!(
            "{}: app v{} alive, pid {}",
            agent.id, beat.version, beat.pid
        );
        pids.push(pid);
    }
    Ok(pids)
}

async fn wait_heartbeat(data_dir: &Path, version: &str, pid: u32) -> Result<sample::Heartbeat> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let rootfs_dir = data_dir.join("rootfs");
        for entry in std::fs::read_dir(&rootfs_dir)
            .with_context(|| format!("reading {}", rootfs_dir.display()))?
        {
            let rootfs = entry?.path();
            if let Some(b) = sample::read_heartbeat(&rootfs) {
                let fresh = petrel_controller::now_ms().saturating_sub(b.time_ms) < 3000;
                let writer = sample::heartbeat_writer(&rootfs, &b);
                if b.version == version && writer == Some(pid) && fresh {
                    return Ok(b);
                }
            }
        }
        if Instant::now() > deadline {
            bail!("no fresh heartbeat of v{version} from pid {pid}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
