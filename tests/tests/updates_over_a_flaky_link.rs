//! Updates over an intermittent link: a TCP proxy between the agent and
//! the controller caps bandwidth and cuts every connection every 1.5 s.
//! The update completes, the bytes received stay within 5% of the bytes
//! needed, an unchanged layer costs nothing, and a changed layer travels
//! as a delta far smaller than its blob.

use petrel_tests::*;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread")]
async fn an_update_over_a_link_cut_every_few_seconds_completes_within_five_percent_of_the_bytes_needed(
) -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let ctl = Controller::start(&tmp.path().join("ctl"))?;
    let client = ctl.client();
    let proxy = Proxy::start(format!("127.0.0.1:{}", ctl.http_port), 1024 * 1024).await?;
    proxy.cut_every(Duration::from_millis(1500));
    let agent = Agent::start(tmp.path(), "f-1", &ctl.broker_url(), &proxy.url())?;
    let devices = vec![agent.id.clone()];

    // v1: everything is new, ~6 MB through a link cut every 1.5 s
    let data = noise(4 << 20, 7);
    let v1 = two_layer_release(&client, tmp.path(), "flaky-app", "v1", "1", &data).await?;
    let needed: u64 = v1.iter().map(|l| l.size).sum();
    client.deploy("demo@1", &devices).await?;
    wait_converged(&client, &agent.id, "1").await?;
    running_app(&agent.data_dir, "1").await?;
    let received = proxy.bytes_down();
    eprintln!(
        "v1 over the flaky link: received {received} bytes for {needed} needed ({:.4}x)",
        received as f64 / needed as f64
    );
    assert!(received >= needed, "received {received} < needed {needed}");
    assert!(
        received as f64 <= 1.05 * needed as f64,
        "received {received} bytes for {needed} needed ({:.3}x)",
        received as f64 / needed as f64
    );

    // v2: same data layer (costs nothing), app layer changed: a delta
    let v2 = two_layer_release(&client, tmp.path(), "flaky-app", "v2", "2", &data).await?;
    assert_eq!(v1[0].diff_id, v2[0].diff_id, "the data layer is unchanged");
    client.deploy("demo@2", &devices).await?;
    wait_converged(&client, &agent.id, "2").await?;
    running_app(&agent.data_dir, "2").await?;
    let v2_received = proxy.bytes_down() - received;
    eprintln!(
        "v2: received {v2_received} bytes; app layer blob {} bytes",
        v2[1].size
    );
    let patch = reqwest_len(
        &ctl,
        &format!(
            "{}/v1/deltas/{}/{}",
            ctl.url(),
            v1[1].diff_id,
            v2[1].diff_id
        ),
    )
    .await?;
    assert!(
        patch < v2[1].size / 10,
        "delta of {patch} bytes for a {}-byte layer",
        v2[1].size
    );
    // headers of the few requests aside, only the patch went through
    assert!(
        v2_received <= patch + 16 * 1024,
        "received {v2_received} bytes for a {patch}-byte patch"
    );
    Ok(())
}

/// Length of a GET body, straight from the controller (not via the proxy).
async fn reqwest_len(ctl: &Controller, url: &str) -> anyhow::Result<u64> {
    let resp = ctl.get(url).await?.error_for_status()?;
    Ok(resp.bytes().await?.len() as u64)
}
