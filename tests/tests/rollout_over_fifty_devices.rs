//! A fleet-scale rollout: 50 in-process agents on one secure controller
//! (mutual TLS, a certificate each). Waves 10%, 50%, 100%; in the second
//! wave 20% of the devices fail (their service exits at start: a fault in
//! their own volume), the failure threshold aborts the rollout, and every
//! device that moved is sent back to demo@1, fleet-wide; the third wave
//! is never touched.

use petrel_controller::http::rollouts::CreateRollout;
use petrel_protocol::rollout::{Breach, DeviceState, Phase};
use petrel_simulator::fleet::LocalFleet;
use petrel_tests::*;
use std::collections::BTreeMap;
use std::time::Duration;

const DEVICES: usize = 50;

fn compose(tag: &str) -> String {
    format!("services:\n  app:\n    image: sample-app:{tag}\n    command: [\"--interval-ms\", \"1000\", \"--exit-if-file\", \"/flags/fail\"]\n    volumes: [\"flags:/flags\"]\n    restart: on-failure\n")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_second_wave_aborts_and_the_moved_devices_roll_back_fleet_wide(
) -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let fleet = LocalFleet::start(tmp.path(), DEVICES).await?;
    let result = scenario(&fleet, tmp.path()).await;
    fleet.shutdown().await;
    result
}

async fn scenario(fleet: &LocalFleet, tmp: &std::path::Path) -> anyhow::Result<()> {
    let client = &fleet.client;
    let ids = fleet.device_ids();
    wait_for(
        Duration::from_secs(60),
        "every device to connect",
        || async {
            let online = client
                .devices()
                .await
                .ok()?
                .iter()
                .filter(|d| d.online)
                .count();
            (online == DEVICES).then_some(())
        },
    )
    .await?;
    sample_image(client, tmp, "v1", "1", &[]).await?;
    client.create_release("demo", "1", &compose("v1")).await?;
    client.deploy("demo@1", &ids).await?;
    for id in &ids {
        wait_converged(client, id, "1").await?;
    }
    let mut before = BTreeMap::new();
    for id in &ids {
        before.insert(id.clone(), client.device(id).await?.desired_generation);
    }
    sample_image(client, tmp, "v2", "2", &[]).await?;
    client.create_release("demo", "2", &compose("v2")).await?;
    let created = client
        .create_rollout(&CreateRollout {
            id: Some("fleet-v2".into()),
            release: "demo@2".into(),
            selector: String::new(),
            group: None,
            waves: "10%,50%,100%".into(),
            canary: vec![],
            per_minute: None,
            rate_growth_percent: 0,
            success_percent: 100,
            soak_s: 5,
            max_failed_percent: 10,
            min_failed: 3,
            on_breach: Some(Breach::Abort),
            device_timeout_s: 300,
            retries: 0,
        })
        .await?;
    // 20% of the second wave carry a fault in their own volume
    let second: Vec<&String> = created
        .rollout
        .members
        .iter()
        .filter(|(_, m)| m.wave == 1)
        .map(|(d, _)| d)
        .collect();
    assert_eq!(second.len(), 20);
    for id in &second[..4] {
        let flags = tmp.join(id).join("volumes/flags");
        std::fs::create_dir_all(&flags)?;
        std::fs::write(flags.join("fail"), b"")?;
    }
    let aborted = wait_for(Duration::from_secs(300), "the rollout to abort", || async {
        let rec = client.rollout("fleet-v2").await.ok()?;
        matches!(rec.rollout.phase, Phase::Aborted { .. }).then_some(rec)
    })
    .await?;
    let moved: Vec<&String> = aborted
        .rollout
        .members
        .iter()
        .filter(|(_, m)| m.state == DeviceState::RolledBack)
        .map(|(d, _)| d)
        .collect();
    let untouched: Vec<&String> = aborted
        .rollout
        .members
        .iter()
        .filter(|(_, m)| m.wave == 2)
        .map(|(d, _)| d)
        .collect();
    assert_eq!(moved.len(), 25, "{:?}", aborted.rollout.tallies);
    assert_eq!(untouched.len(), 25);
    for id in &ids {
        wait_converged(client, id, "1").await?;
    }
    for id in untouched {
        let view = client.device(id).await?;
        assert_eq!(
            view.desired_generation, before[id],
            "{id} of wave 3 was touched"
        );
    }
    Ok(())
}
