//! An agent killed with SIGKILL mid-download resumes where it stopped: the
//! update converges and the layer is not downloaded twice. A restarted
//! agent knows what it runs: its app keeps running (adopted, same pid) and
//! nothing is downloaded again.

use petrel_tests::*;
use std::time::Duration;

fn partial_bytes(data_dir: &std::path::Path) -> u64 {
    std::fs::read_dir(data_dir.join("downloads"))
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn agent_resumes_download_after_sigkill_without_fetching_twice() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let ctl = Controller::start(&tmp.path().join("ctl"))?;
    let client = ctl.client();
    // 4 MB/s towards the agent: the 16 MB layer takes ~4 s
    let proxy = Proxy::start(format!("127.0.0.1:{}", ctl.http_port), 4 * 1024 * 1024).await?;
    let mut agent = Agent::start(tmp.path(), "k-1", &ctl.broker_url(), &proxy.url())?;
    let devices = vec![agent.id.clone()];

    let v1 = sample_image(&client, tmp.path(), "v1", "1", &[]).await?;
    sample_release(&client, "1", "v1").await?;
    client.deploy("demo@1", &devices).await?;
    wait_converged(&client, &agent.id, "1").await?;
    let v1_pid = running_app(&agent.data_dir, "1").await?;

    let v2 = sample_image(
        &client,
        tmp.path(),
        "v2",
        "2",
        &[("payload.bin", noise(16 << 20, 0x9E3779B97F4A7C15))],
    )
    .await?;
    let blob = v2.layers[0].size;
    sample_release(&client, "2", "v2").await?;
    let before = proxy.bytes_down();
    client.deploy("demo@2", &devices).await?;

    // progress (bytes done / total) shows in the reported state
    let progress = wait_for(
        Duration::from_secs(60),
        "download progress in the fleet view",
        || async {
            let view = client
                .devices()
                .await
                .ok()?
                .into_iter()
                .find(|d| d.id == "k-1")?;
            let p = view.progress;
            (view.phase == petrel_protocol::Phase::Downloading
                && p.bytes_done > 0
                && p.bytes_total >= p.bytes_done)
                .then_some(p)
        },
    )
    .await?;
    assert!(
        progress.bytes_total > blob / 2,
        "total covers the layer: {progress:?}"
    );

    let dir = agent.data_dir.clone();
    let at_kill = wait_for(
        Duration::from_secs(60),
        "the download to be under way",
        || async {
            let n = partial_bytes(&dir);
            (n > blob / 4).then_some(n)
        },
    )
    .await?;
    agent.kill9();
    assert!(
        at_kill < blob * 9 / 10,
        "killed mid-download ({at_kill} of about {blob})"
    );
    assert!(
        pid_alive(v1_pid),
        "v1 keeps running while the agent is dead"
    );

    agent.restart()?;
    wait_converged(&client, &agent.id, "2").await?;
    let v2_pid = running_app(&agent.data_dir, "2").await?;
    let received = proxy.bytes_down() - before;
    // a delta from v1's layer if the controller made one, else the blob
    let needed = bytes_needed(&ctl, &v1.layers[0].diff_id, &v2.layers[0]).await?;
    // headers of a few requests aside, every byte was fetched once, but
    // for what came after the partial's last sync (at most one interval:
    // after a power cut those bytes may not be what was received)
    let resync = petrel_agent::fetch::partial::SYNC_EVERY;
    assert!(
        received <= needed + resync + 64 * 1024,
        "received {received} bytes for a {needed}-byte layer\n{}",
        agent.log_tail(40)
    );
    assert!(
        received >= needed,
        "everything needed went through the proxy"
    );

    // a restart after convergence downloads nothing and keeps the app up
    let settled = proxy.bytes_down();
    agent.kill9();
    let restarted_at = petrel_controller::now_ms();
    agent.restart()?;
    let view = wait_fresh_report(&client, &agent.id, "2", restarted_at).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        running_app(&agent.data_dir, "2").await?,
        v2_pid,
        "same process still runs"
    );
    assert_eq!(proxy.bytes_down(), settled, "nothing downloaded again");
    assert_eq!(
        view.services[0].pid,
        Some(v2_pid),
        "the running app was adopted, not restarted"
    );
    assert!(agent.is_alive(), "{}", agent.log());
    Ok(())
}

/// A power cut can leave a partial download longer than what reached the
/// disk, its tail zeros or stale blocks. The agent resumes from the length
/// it last synced, so such a tail is cut, never taken for the blob's bytes:
/// the download completes without failing verification.
#[tokio::test(flavor = "multi_thread")]
async fn a_partial_download_with_a_torn_tail_resumes_from_its_last_sync() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let ctl = Controller::start(&tmp.path().join("ctl"))?;
    let client = ctl.client();
    let proxy = Proxy::start(format!("127.0.0.1:{}", ctl.http_port), 4 * 1024 * 1024).await?;
    let mut agent = Agent::start(tmp.path(), "torn-1", &ctl.broker_url(), &proxy.url())?;
    let devices = vec![agent.id.clone()];
    let noise_layer = [("payload.bin", noise(12 << 20, 0xDEADBEEF))];
    sample_image(&client, tmp.path(), "v1", "1", &noise_layer).await?;
    sample_release(&client, "1", "v1").await?;
    client.deploy("demo@1", &devices).await?;
    let dir = agent.data_dir.clone();
    wait_for(
        Duration::from_secs(60),
        "the download to be under way",
        || async { (partial_bytes(&dir) > 3 << 20).then_some(()) },
    )
    .await?;
    agent.kill9();
    // what a power cut may leave: the file longer than what was synced,
    // its tail garbage
    let downloads = agent.data_dir.join("downloads");
    let part = std::fs::read_dir(&downloads)?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "partial"))
        .expect("a partial download");
    let mut f = std::fs::OpenOptions::new().append(true).open(&part)?;
    std::io::Write::write_all(&mut f, &vec![0u8; 3 << 20])?;
    drop(f);

    agent.restart()?;
    wait_converged(&client, &agent.id, "1").await?;
    let log = agent.log();
    assert!(
        !log.contains("failed verification"),
        "the torn tail was taken for data:\n{}",
        agent.log_tail(30)
    );
    Ok(())
}
