//! Clean-up that does not wait for the next successful update: the files
//! of a release that was rolled back go at once (layers, layer copies,
//! root filesystem), and what a killed agent left behind (an abandoned
//! root filesystem, a partial download) goes when it starts again, while
//! the running release keeps running.

use petrel_protocol::EventKind;
use petrel_tests::*;
use std::path::Path;
use std::time::Duration;

/// The names in each directory the agent collects, sorted.
fn listing(data: &Path) -> Vec<Vec<String>> {
    ["rootfs", "bases", "layers", "downloads"]
        .iter()
        .map(|d| {
            let mut names: Vec<String> = std::fs::read_dir(data.join(d))
                .map(|rd| {
                    rd.flatten()
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect()
                })
                .unwrap_or_default();
            names.sort();
            names
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rolled_back_release_and_a_crashs_leftovers_are_collected_without_a_new_update(
) -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let ctl = Controller::start(&tmp.path().join("ctl"))?;
    let client = ctl.client();
    let mut agent = Agent::start(tmp.path(), "gc-1", &ctl.broker_url(), &ctl.url())?;
    let v1 = run_demo_v1(&client, tmp.path(), &agent).await?;
    let clean = listing(&agent.data_dir);

    // a release that crashes at once: rolled back; its files go with it
    sample_image(
        &client,
        tmp.path(),
        "v2",
        "2",
        &[("more.txt", b"v2".to_vec())],
    )
    .await?;
    let compose = "services:\n  app:\n    image: sample-app:v2\n    command: [\"--exit-after-ms\", \"300\"]\n    restart: on-failure\n";
    client.create_release("demo", "2", compose).await?;
    let seq = last_seq(&client, &agent.id).await;
    client
        .deploy("demo@2", std::slice::from_ref(&agent.id))
        .await?;
    wait_event(&client, &agent.id, EventKind::RolledBack, seq).await?;
    wait_for(
        Duration::from_secs(30),
        "the failed release's files to go",
        || async { (listing(&agent.data_dir) == clean).then_some(()) },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}: {:?} vs {clean:?}", listing(&agent.data_dir)))?;

    // a crash leaves an abandoned root filesystem and a partial download
    agent.kill9();
    let junk_root = agent.data_dir.join("rootfs/0123abcd");
    std::fs::create_dir_all(junk_root.join("usr/lib"))?;
    std::fs::write(junk_root.join("usr/lib/big.so"), vec![0u8; 1 << 20])?;
    std::fs::write(agent.data_dir.join("downloads/blob-dead.partial"), b"half")?;
    agent.restart()?;
    wait_for(
        Duration::from_secs(30),
        "the leftovers to go at start-up",
        || async { (listing(&agent.data_dir) == clean).then_some(()) },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}: {:?} vs {clean:?}", listing(&agent.data_dir)))?;
    assert!(pid_alive(v1), "the running release was touched");
    let view = client.device(&agent.id).await?;
    assert_eq!(view.current.map(|c| c.version).as_deref(), Some("1"));
    Ok(())
}
