//! A rollout in waves over labelled devices: the canary succeeds, the
//! next wave starts, two of its devices cannot download (their
//! controller URL is dead) and time out as stuck; the failure threshold
//! aborts the rollout and every device that moved is sent back to the
//! release it ran, while a device outside the selector is never touched.

use petrel_controller::http::rollouts::CreateRollout;
use petrel_protocol::rollout::{Breach, DeviceState, Phase};
use petrel_tests::*;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_wave_aborts_the_rollout_and_moved_devices_roll_back() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let ctl = Controller::start(&tmp.path().join("ctl"))?;
    let client = ctl.client();
    let ids: Vec<String> = (1..=7).map(|i| format!("rb-{i}")).collect();
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
    for id in &ids[..6] {
        let out = ctl
            .cli()
            .args(["device", "label", id, "group=field"])
            .output()?;
        succeeded(&out);
    }
    succeeded(
        &ctl.cli()
            .args(["device", "label", "rb-7", "group=lab"])
            .output()?,
    );
    let lab_generation = client.device("rb-7").await?.desired_generation;
    // the registry: selectors over labels, facts the devices report
    let listed = succeeded(
        &ctl.cli()
            .args(["devices", "--select", "group=field"])
            .output()?,
    );
    assert!(
        listed.contains("rb-6") && !listed.contains("rb-7"),
        "{listed}"
    );
    let shown = succeeded(&ctl.cli().args(["device", "show", "rb-1"]).output()?);
    assert!(
        shown.contains("labels group=field") && shown.contains("free"),
        "{shown}"
    );
    assert!(client.device("rb-1").await?.hostname.is_some());
    // rb-5 and rb-6 lose their way to the blobs
    for agent in &mut agents[4..6] {
        let config = std::fs::read_to_string(agent.config_path())?;
        std::fs::write(
            agent.config_path(),
            config.replace(&ctl.url(), "http://127.0.0.1:9"),
        )?;
        agent.restart()?;
    }
    sample_image(&client, tmp.path(), "v2", "2", &[]).await?;
    sample_release(&client, "2", "v2").await?;

    let rollout = client
        .create_rollout(&CreateRollout {
            id: Some("field-v2".into()),
            release: "demo@2".into(),
            selector: "group=field".into(),
            group: None,
            waves: "100%".into(),
            canary: vec!["rb-1".into()],
            per_minute: None,
            rate_growth_percent: 0,
            success_percent: 100,
            soak_s: 0,
            max_failed_percent: 20,
            min_failed: 1,
            on_breach: Some(Breach::Abort),
            device_timeout_s: 15,
            retries: 0,
        })
        .await?;
    assert_eq!(
        rollout.rollout.members.len(),
        6,
        "the lab device is not selected"
    );
    let done = wait_for(Duration::from_secs(120), "the rollout to abort", || async {
        let rec = client.rollout("field-v2").await.ok()?;
        matches!(rec.rollout.phase, Phase::Aborted { .. }).then_some(rec)
    })
    .await?;
    let sent_back: Vec<&String> = done
        .rollout
        .members
        .iter()
        .filter(|(_, m)| m.state == DeviceState::RolledBack)
        .map(|(d, _)| d)
        .collect();
    assert_eq!(
        sent_back.len(),
        6,
        "every moved device is sent back: {:?}",
        done.rollout.members
    );
    assert!(
        done.notes.iter().any(|n| n.text.contains("stuck")),
        "{}",
        serde_json::to_string_pretty(&done)?
    );
    // the good ones went to v2 and come back to v1; all end on demo@1
    for id in &ids[..4] {
        wait_converged(&client, id, "1").await?;
    }
    for id in &ids[4..6] {
        let view = client.device(id).await?;
        assert_eq!(view.current.map(|c| c.version), Some("1".into()));
    }
    assert_eq!(
        client.device("rb-7").await?.desired_generation,
        lab_generation
    );
    // the rollback is tracked to its end: all six back on demo@1
    let rolled = wait_for(
        Duration::from_secs(60),
        "the rollback to settle",
        || async {
            let rec = client.rollout("field-v2").await.ok()?;
            rec.rollback.clone().filter(|r| r.settled())
        },
    )
    .await?;
    assert_eq!((rolled.sent, rolled.back, rolled.failed), (6, 6, 0));
    let status = succeeded(&ctl.cli().args(["rollout", "status", "field-v2"]).output()?);
    assert!(
        status.contains("aborted") && status.contains("rollback done: 6 sent back"),
        "{status}"
    );
    Ok(())
}
