//! An agent whose `controller_url` points nowhere (a typo, a firewall)
//! reaches the broker but cannot download: it stays `downloading`, says
//! why in its reported `last_error`, and logs the problem once, not once
//! per retry.

use petrel_protocol::Phase;
use petrel_tests::*;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_controller_url_shows_as_the_devices_last_error_and_is_logged_once(
) -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let ctl = Controller::start(&tmp.path().join("ctl"))?;
    let client = ctl.client();
    let wrong = format!("http://127.0.0.1:{}", free_port());
    let agent = Agent::start(tmp.path(), "lost-1", &ctl.broker_url(), &wrong)?;
    sample_image(&client, tmp.path(), "v1", "1", &[]).await?;
    sample_release(&client, "1", "v1").await?;
    client
        .deploy("demo@1", std::slice::from_ref(&agent.id))
        .await?;

    let view = wait_for(
        Duration::from_secs(60),
        "the download problem reported",
        || async {
            let views = client.devices().await.ok()?;
            let v = views.into_iter().find(|d| d.id == "lost-1")?;
            let error = v.last_error.clone().unwrap_or_default();
            (v.phase == Phase::Downloading && error.contains("cannot download")).then_some(v)
        },
    )
    .await?;
    let error = view.last_error.unwrap_or_default();
    assert!(error.contains(&wrong), "the error names the URL: {error}");

    // Several retries later, still one warning in the agent's log.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let log = agent.log();
    let warnings = log.matches("download not progressing").count();
    assert_eq!(warnings, 1, "logged once per change:\n{log}");
    Ok(())
}
