//! The broker (embedded in the controller) restarts while agents are
//! connected: agents reconnect, resubscribe and still converge, and desired
//! states are re-published from the controller's store (rumqttd keeps
//! retained messages in memory only).

use petrel_tests::*;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread")]
async fn agents_reconnect_after_a_broker_restart_and_still_converge() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let mut ctl = Controller::start(&tmp.path().join("ctl"))?;
    let client = ctl.client();
    let agents: Vec<Agent> = ["b-1", "b-2"]
        .iter()
        .map(|id| Agent::start(tmp.path(), id, &ctl.broker_url(), &ctl.url()))
        .collect::<anyhow::Result<_>>()?;
    let mut devices: Vec<String> = agents.iter().map(|a| a.id.clone()).collect();

    sample_image(&client, tmp.path(), "v1", "1", &[]).await?;
    sample_release(&client, "1", "v1").await?;
    // b-3 has no agent yet: its desired state must survive the restart
    devices.push("b-3".into());
    client.deploy("demo@1", &devices).await?;
    for a in &agents {
        wait_converged(&client, &a.id, "1").await?;
    }

    ctl.kill();
    tokio::time::sleep(Duration::from_secs(1)).await;
    ctl.restart()?;
    let restarted_at = petrel_controller::now_ms();

    for a in &agents {
        // a fresh report proves the agent reconnected to the new broker
        wait_fresh_report(&client, &a.id, "1", restarted_at).await?;
    }
    let late = Agent::start(tmp.path(), "b-3", &ctl.broker_url(), &ctl.url())?;
    wait_converged(&client, &late.id, "1").await?;

    sample_image(&client, tmp.path(), "v2", "2", &[]).await?;
    sample_release(&client, "2", "v2").await?;
    client.deploy("demo@2", &devices).await?;
    for a in agents.iter().chain([&late]) {
        wait_converged(&client, &a.id, "2").await?;
        running_app(&a.data_dir, "2").await?;
    }
    let views = client.devices().await?;
    assert!(
        views.iter().all(|v| v.online),
        "every device shows online: {views:?}"
    );
    Ok(())
}
