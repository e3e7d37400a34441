//! Stop means stop: aborting a rollout while a device is downloading
//! (over a slow link) supersedes its desired state, so the download stops
//! within seconds and the device goes on running its release; `petrel
//! undeploy` then clears its desired state and it keeps running.

use petrel_controller::http::rollouts::CreateRollout;
use petrel_protocol::rollout::Breach;
use petrel_protocol::Phase;
use petrel_tests::*;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread")]
async fn an_abort_stops_a_download_in_progress_and_undeploy_leaves_the_device_running(
) -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let ctl = Controller::start(&tmp.path().join("ctl"))?;
    let client = ctl.client();
    // 512 KB/s towards the device: the 8 MB of v2 take ~16 s
    let proxy = Proxy::start(format!("127.0.0.1:{}", ctl.http_port), 512 * 1024).await?;
    let agent = Agent::start(tmp.path(), "stop-1", &ctl.broker_url(), &proxy.url())?;
    let devices = vec![agent.id.clone()];
    sample_image(&client, tmp.path(), "v1", "1", &[]).await?;
    sample_release(&client, "1", "v1").await?;
    client.deploy("demo@1", &devices).await?;
    wait_converged(&client, &agent.id, "1").await?;
    let v1_pid = running_app(&agent.data_dir, "1").await?;
    sample_image(
        &client,
        tmp.path(),
        "v2",
        "2",
        &[("payload.bin", noise(8 << 20, 77))],
    )
    .await?;
    sample_release(&client, "2", "v2").await?;
    client
        .create_rollout(&CreateRollout {
            id: Some("slow".into()),
            release: "demo@2".into(),
            selector: String::new(),
            group: None,
            waves: "100%".into(),
            canary: vec![],
            per_minute: None,
            rate_growth_percent: 0,
            success_percent: 100,
            soak_s: 0,
            max_failed_percent: 100,
            min_failed: 1,
            on_breach: Some(Breach::Pause),
            device_timeout_s: 300,
            retries: 0,
        })
        .await?;
    wait_phase(&client, &agent.id, Phase::Downloading).await?;
    let stopped_at = Instant::now();
    succeeded(
        &ctl.cli()
            .args(["rollout", "abort", "slow", "--reason", "test"])
            .output()?,
    );
    let view = wait_converged(&client, &agent.id, "1").await?;
    let took = stopped_at.elapsed();
    assert!(
        took < Duration::from_secs(15),
        "the device stopped after {took:?}"
    );
    assert!(view.target.is_none());
    let bytes_then = proxy.bytes_down();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        proxy.bytes_down() - bytes_then < 256 * 1024,
        "the download went on after the abort"
    );
    assert!(pid_alive(v1_pid), "v1 stopped");

    let out = succeeded(&ctl.cli().args(["undeploy", &agent.id]).output()?);
    assert!(out.contains("cleared"), "{out}");
    let view = client.device(&agent.id).await?;
    assert!(view.desired.is_none());
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(pid_alive(v1_pid), "undeploy stopped the app");
    assert_eq!(
        client.device(&agent.id).await?.current.map(|c| c.version),
        Some("1".into())
    );
    Ok(())
}
