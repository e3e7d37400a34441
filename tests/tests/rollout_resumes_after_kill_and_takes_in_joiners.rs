//! A rollout survives its controller: kill -9 in the middle of a wave
//! plan, restart, and the rollout resumes where it was; a device labelled
//! into the selector afterwards joins and gets the release; in the end
//! every selected device runs it, each having been sent it exactly once.

use petrel_controller::rollouts::RolloutRecord;
use petrel_protocol::rollout::Phase;
use petrel_tests::*;
use std::collections::BTreeMap;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread")]
async fn a_rollout_resumes_after_kill_9_and_a_device_joining_midway_gets_the_release(
) -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let mut ctl = Controller::start(&tmp.path().join("ctl"))?;
    let client = ctl.client();
    let ids: Vec<String> = (1..=5).map(|i| format!("ro-{i}")).collect();
    let mut agents = Vec::new();
    for id in &ids {
        agents.push(Agent::start(tmp.path(), id, &ctl.broker_url(), &ctl.url())?);
    }
    sample_image(&client, tmp.path(), "v1", "1", &[]).await?;
    sample_release(&client, "1", "v1").await?;
    client.deploy("demo@1", &ids).await?;
    for id in &ids {
        wait_converged(&client, id, "1").await?;
    }
    for id in &ids[..4] {
        succeeded(
            &ctl.cli()
                .args(["device", "label", id, "group=field"])
                .output()?,
        );
    }
    let mut before = BTreeMap::new();
    for id in &ids {
        before.insert(id.clone(), client.device(id).await?.desired_generation);
    }
    sample_image(&client, tmp.path(), "v2", "2", &[]).await?;
    sample_release(&client, "2", "v2").await?;
    // through the CLI, by a saved group's name (an unknown one is named)
    let unknown = ctl
        .cli()
        .args(["rollout", "create", "demo@2", "--group", "feild"])
        .output()?;
    assert!(!unknown.status.success());
    let why = String::from_utf8_lossy(&unknown.stderr);
    assert!(why.contains("no group \"feild\""), "{why}");
    succeeded(
        &ctl.cli()
            .args(["group", "create", "field", "--select", "group=field"])
            .output()?,
    );
    let created = ctl
        .cli()
        .args(["rollout", "create", "demo@2", "--group", "field"])
        .args([
            "--id",
            "field-v2",
            "--waves",
            "1,2,100%",
            "--success",
            "100",
        ])
        .args(["--soak", "4", "--max-failed", "50", "--min-failed", "1"])
        .args(["--on-breach", "pause", "--device-timeout", "120", "--json"])
        .output()?;
    succeeded(&created);
    let created: RolloutRecord = serde_json::from_slice(&created.stdout)?;
    assert_eq!(created.rollout.selector.to_string(), "group=field");
    assert_eq!(created.rollout.members.len(), 4);
    // the first wave done: kill -9 while the rollout soaks or runs wave 2
    wait_for(
        Duration::from_secs(60),
        "the first wave to finish",
        || async {
            let rec = client.rollout("field-v2").await.ok()?;
            (rec.rollout.tallies[0].succeeded == 1).then_some(())
        },
    )
    .await?;
    ctl.kill();
    ctl.restart()?;
    let client = ctl.client();
    // ro-5 joins the selector mid-rollout
    succeeded(
        &ctl.cli()
            .args(["device", "label", "ro-5", "group=field"])
            .output()?,
    );
    let done = wait_for(
        Duration::from_secs(120),
        "the rollout to complete",
        || async {
            let rec = client.rollout("field-v2").await.ok()?;
            (rec.rollout.phase == Phase::Completed).then_some(rec)
        },
    )
    .await?;
    assert_eq!(done.rollout.members.len(), 5, "{:?}", done.rollout.members);
    for id in &ids {
        let view = wait_converged(&client, id, "2").await?;
        assert_eq!(
            view.desired_generation,
            before[id] + 1,
            "{id} was sent the release more than once"
        );
    }
    Ok(())
}
