//! External-broker mode: the same rollout through a real Mosquitto broker
//! started by the test (interoperability with a third-party broker).

use petrel_tests::*;

#[tokio::test(flavor = "multi_thread")]
async fn release_v1_then_v2_reaches_devices_through_mosquitto() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let mosquitto = Mosquitto::start(&tmp.path().join("mosquitto"))?;
    let ctl = Controller::with_broker(&tmp.path().join("ctl"), Some(mosquitto.url()))?;
    let client = ctl.client();
    let agents: Vec<Agent> = ["m-1", "m-2"]
        .iter()
        .map(|id| Agent::start(tmp.path(), id, &mosquitto.url(), &ctl.url()))
        .collect::<anyhow::Result<_>>()?;
    let devices: Vec<String> = agents.iter().map(|a| a.id.clone()).collect();

    for (version, tag) in [("1", "v1"), ("2", "v2")] {
        sample_image(&client, tmp.path(), tag, version, &[]).await?;
        sample_release(&client, version, tag).await?;
        client.deploy(&format!("demo@{version}"), &devices).await?;
        for a in &agents {
            wait_converged(&client, &a.id, version).await?;
            running_app(&a.data_dir, version).await?;
        }
    }
    Ok(())
}
