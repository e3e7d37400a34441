//! Scenario helpers: the sample app images and releases, waiting for a
//! device to converge, and checking which app version really runs.

use anyhow::{bail, Context, Result};
use petrel_controller::client::Client;
use petrel_controller::http::DeviceView;
use petrel_protocol::{Event, EventKind, ImageConfig, ImageManifest};
use petrel_simulator::sample;
use std::future::Future;
use std::path::Path;
use std::time::{Duration, Instant};

/// Default wait for a rollout step in tests.
pub const CONVERGE: Duration = Duration::from_secs(90);

/// Polls `f` until it yields `Some`, or fails after `timeout` with `what`.
pub async fn wait_for<T, F, Fut>(timeout: Duration, what: &str, mut f: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return Ok(v);
        }
        if Instant::now() > deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Builds sample-app:`tag` whose version file says `version`; `extra`
/// files (path, bytes) are added to the image.
pub async fn sample_image(
    client: &Client,
    tmp: &Path,
    tag: &str,
    version: &str,
    extra: &[(&str, Vec<u8>)],
) -> Result<ImageManifest> {
    let dir = tmp.join(format!("img-{tag}"));
    sample::app_dir(&sample::sample_app_binary()?, version, &dir)?;
    for (path, bytes) in extra {
        std::fs::write(dir.join(path), bytes)?;
    }
    let config = ImageConfig {
        entrypoint: vec!["/app/sample-app".into()],
        working_dir: Some("/app".into()),
        ..Default::default()
    };
    Ok(client
        .build_image(&dir, "sample-app", tag, config)
        .await?
        .image)
}

/// Creates release `demo@version` running sample-app:`tag`.
pub async fn sample_release(client: &Client, version: &str, tag: &str) -> Result<()> {
    let compose = format!("services:\n  app:\n    image: sample-app:{tag}\n    command: [\"--interval-ms\", \"100\"]\n    restart: always\n");
    client.create_release("demo", version, &compose).await?;
    Ok(())
}

/// The common start of a scenario: the sample app's `demo@1` built,
/// deployed to `agent` and running; returns the app's host pid.
pub async fn run_demo_v1(client: &Client, tmp: &Path, agent: &crate::Agent) -> Result<u32> {
    sample_image(client, tmp, "v1", "1", &[]).await?;
    sample_release(client, "1", "v1").await?;
    client
        .deploy("demo@1", std::slice::from_ref(&agent.id))
        .await?;
    wait_converged(client, &agent.id, "1").await?;
    running_app(&agent.data_dir, "1").await
}

/// Waits until `device` reports `demo@version` running as desired.
pub async fn wait_converged(client: &Client, device: &str, version: &str) -> Result<DeviceView> {
    wait_for(
        CONVERGE,
        &format!("{device} to run demo@{version}"),
        || async {
            let devices = client.devices().await.ok()?;
            devices.into_iter().find(|d| {
                d.id == device
                    && d.converged()
                    && d.current.as_ref().is_some_and(|c| c.version == version)
                    && d.services.iter().all(|s| s.state == "running")
            })
        },
    )
    .await
}

/// Waits until `device` reports again after `since_ms`, converged on
/// `demo@version`.
pub async fn wait_fresh_report(
    client: &Client,
    device: &str,
    version: &str,
    since_ms: u64,
) -> Result<DeviceView> {
    wait_for(
        CONVERGE,
        &format!("a fresh report from {device}"),
        || async {
            let view = wait_converged(client, device, version).await.ok()?;
            (view.reported_at_ms > since_ms).then_some(view)
        },
    )
    .await
}

/// Waits for an event of `kind` from `device` newer than `after_seq`.
pub async fn wait_event(
    client: &Client,
    device: &str,
    kind: EventKind,
    after_seq: u64,
) -> Result<Event> {
    wait_for(
        CONVERGE,
        &format!("{kind:?} event from {device}"),
        || async {
            let events = client.events(device).await.ok()?;
            events
                .into_iter()
                .find(|e| e.kind == kind && e.seq > after_seq)
        },
    )
    .await
}

/// Highest event seq the controller holds for `device`.
pub async fn last_seq(client: &Client, device: &str) -> u64 {
    client
        .events(device)
        .await
        .ok()
        .and_then(|e| e.last().map(|e| e.seq))
        .unwrap_or(0)
}

/// The host pid of the app of `version` on this device, from its fresh
/// heartbeat in the agent's rootfs dir (proof that it really runs).
pub async fn running_app(data_dir: &Path, version: &str) -> Result<u32> {
    let dir = data_dir.join("rootfs");
    wait_for(
        Duration::from_secs(10),
        &format!("a fresh v{version} heartbeat under {}", dir.display()),
        || async {
            for entry in std::fs::read_dir(&dir).ok()?.flatten() {
                if let Some(b) = sample::read_heartbeat(&entry.path()) {
                    let fresh = petrel_controller::now_ms().saturating_sub(b.time_ms) < 2000;
                    if b.version == version && fresh {
                        if let Some(pid) = sample::heartbeat_writer(&entry.path(), &b) {
                            return Some(pid);
                        }
                    }
                }
            }
            None
        },
    )
    .await
    .context("the app does not run")
}

pub fn pid_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
}

/// Publishes `payload` retained on `topic` as a raw MQTT client would
/// (to inject hostile desired states), waiting for the broker's ack.
pub async fn publish_raw(port: u16, topic: &str, payload: Vec<u8>) -> Result<()> {
    let mut opts = rumqttc::MqttOptions::new(
        format!("test-injector-{}", std::process::id()),
        "127.0.0.1",
        port,
    );
    opts.set_max_packet_size(8 << 20, 8 << 20);
    let (client, mut eventloop) = rumqttc::AsyncClient::new(opts, 10);
    client
        .publish(topic, rumqttc::QoS::AtLeastOnce, true, payload)
        .await?;
    let acked = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match eventloop.poll().await {
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::PubAck(_))) => return Ok(()),
                Ok(_) => {}
                Err(e) => return Err(anyhow::anyhow!("injector: {e}")),
            }
        }
    })
    .await;
    let _ = client.disconnect().await;
    acked.context("broker did not ack the injected message")?
}

/// Bytes a device must download to go from layer `from` to `to`: the
/// cached delta if the controller has one, else the full blob.
pub async fn bytes_needed(
    ctl: &crate::Controller,
    from: &petrel_protocol::Digest,
    to: &petrel_protocol::LayerDescriptor,
) -> Result<u64> {
    let resp = ctl
        .get(&format!("{}/v1/deltas/{from}/{}", ctl.url(), to.diff_id))
        .await?;
    if resp.status().as_u16() == 404 {
        return Ok(to.size);
    }
    Ok(resp.error_for_status()?.bytes().await?.len() as u64)
}

/// Waits until `device` reports `phase`.
pub async fn wait_phase(
    client: &Client,
    device: &str,
    phase: petrel_protocol::Phase,
) -> Result<DeviceView> {
    wait_for(
        CONVERGE,
        &format!("{device} to report {phase:?}"),
        || async {
            client
                .devices()
                .await
                .ok()?
                .into_iter()
                .find(|d| d.id == device && d.phase == phase)
        },
    )
    .await
}
