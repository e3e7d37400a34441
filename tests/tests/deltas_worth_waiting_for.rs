//! Deltas never cost the device data nor the controller its time: a pair
//! whose file lists show no patch could pay off is never encoded (the
//! device gets the full blob at once), and a delta still being encoded is
//! answered "retry after N s" so devices wait for it, even when the
//! controller is killed right after the deploy and restarted.

use petrel_tests::*;
use std::time::Duration;

fn pair_marker(ctl: &Controller, from: &str, to: &str, ext: &str) -> bool {
    std::fs::read_dir(ctl.dir.join("data/deltas"))
        .into_iter()
        .flatten()
        .flatten()
        .any(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.starts_with(&format!("{from}-{to}.")) && name.ends_with(ext)
        })
}

#[tokio::test(flavor = "multi_thread")]
async fn a_delta_that_cannot_pay_off_is_never_encoded_and_the_blob_comes_at_once(
) -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let ctl = Controller::start(&tmp.path().join("ctl"))?;
    let client = ctl.client();
    let agent = Agent::start(tmp.path(), "hp-1", &ctl.broker_url(), &ctl.url())?;
    let devices = vec![agent.id.clone()];
    // v1's data layer: 200 KB; v2's: 16 MB of unrelated bytes
    let v1 = two_layer_release(&client, tmp.path(), "img", "1", "1", &noise(200 << 10, 1)).await?;
    client.deploy("demo@1", &devices).await?;
    wait_converged(&client, &agent.id, "1").await?;
    let v2 = two_layer_release(&client, tmp.path(), "img", "2", "2", &noise(16 << 20, 2)).await?;
    client.deploy("demo@2", &devices).await?;
    let view = wait_converged(&client, &agent.id, "2").await?;

    let (from, to) = (v1[0].diff_id.hex(), v2[0].diff_id.hex());
    assert!(
        !pair_marker(&ctl, from, to, ".patch"),
        "the hopeless pair is never encoded"
    );
    let log = ctl.log();
    assert!(
        log.contains("share too little to pay off"),
        "the controller says why: {log}"
    );
    assert!(
        !log.contains(&format!("delta generated from=sha256:{from}")),
        "no encoding of the pair"
    );
    // the full data layer came, once
    let got = view.update_bytes.unwrap_or(0);
    assert!(
        got >= v2[0].size && got < 2 * v2[0].size,
        "received {got} B for a {} B layer",
        v2[0].size
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn devices_wait_for_a_delta_being_prepared_even_across_a_controller_restart(
) -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let mut ctl = Controller::start(&tmp.path().join("ctl"))?;
    let client = ctl.client();
    let mut agents = Vec::new();
    for i in 0..3 {
        agents.push(Agent::start(
            tmp.path(),
            &format!("wt-{i}"),
            &ctl.broker_url(),
            &ctl.url(),
        )?);
    }
    let devices: Vec<String> = agents.iter().map(|a| a.id.clone()).collect();
    let mut data = noise(16 << 20, 7);
    two_layer_release(&client, tmp.path(), "img", "1", "1", &data).await?;
    client.deploy("demo@1", &devices).await?;
    for d in &devices {
        wait_converged(&client, d, "1").await?;
    }
    // v2 changes a few hundred bytes of the 16 MB data layer: encoding
    // that pair takes the controller seconds
    for at in [1 << 20, 9 << 20, 15 << 20] {
        data[at..at + 100].fill(0x5a);
    }
    let v2 = two_layer_release(&client, tmp.path(), "img", "2", "2", &data).await?;
    client.deploy("demo@2", &devices).await?;
    // killed right after the deploy, mid-encoding, and back
    tokio::time::sleep(Duration::from_millis(300)).await;
    ctl.kill();
    tokio::time::sleep(Duration::from_secs(2)).await;
    ctl.restart()?;

    for d in &devices {
        let view = wait_converged(&ctl.client(), d, "2").await?;
        let got = view.update_bytes.unwrap_or(u64::MAX);
        eprintln!("{d}: received {got} B for a {} B data layer", v2[0].size);
        assert!(
            got < v2[0].size / 4,
            "{d} got the delta, not the {} B blob: received {got} B",
            v2[0].size
        );
    }
    let waited = agents
        .iter()
        .filter(|a| a.log().contains("delta being prepared by the controller"))
        .count();
    assert!(
        waited > 0,
        "devices were told to come back while the delta was encoded"
    );
    let fallbacks = agents
        .iter()
        .filter(|a| a.log().contains("falling back to the full blob"))
        .count();
    assert_eq!(fallbacks, 0, "no device raced to the full blob");
    Ok(())
}
