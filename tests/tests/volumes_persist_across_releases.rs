//! Named volumes on the native runtime: a service's volume is bound into
//! its root, survives the swap to the next release, and keeps what every
//! version wrote; a release naming a host path is refused.

use petrel_tests::*;

#[tokio::test(flavor = "multi_thread")]
async fn a_named_volume_keeps_its_contents_across_releases() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let ctl = Controller::start(&tmp.path().join("ctl"))?;
    let client = ctl.client();
    let agent = Agent::start(tmp.path(), "vol-1", &ctl.broker_url(), &ctl.url())?;
    for (v, tag) in [("1", "v1"), ("2", "v2")] {
        sample_image(&client, tmp.path(), tag, v, &[]).await?;
        let compose = format!("services:\n  app:\n    image: sample-app:{tag}\n    command: [\"--state-dir\", \"/data\"]\n    environment:\n      GREETING: hi\n    volumes: [\"appdata:/data\"]\n");
        client.create_release("demo", v, &compose).await?;
        client
            .deploy(&format!("demo@{v}"), std::slice::from_ref(&agent.id))
            .await?;
        wait_converged(&client, &agent.id, v).await?;
        running_app(&agent.data_dir, v).await?;
    }
    let history = std::fs::read_to_string(agent.data_dir.join("volumes/appdata/history"))?;
    assert_eq!(history, "1\n2\n");

    let bad = "services:\n  app:\n    image: sample-app:v2\n    volumes: [\"/etc:/host-etc\"]\n";
    let err = client
        .create_release("demo", "3", bad)
        .await
        .expect_err("host path refused");
    assert!(err.to_string().contains("host paths"), "{err}");
    Ok(())
}
