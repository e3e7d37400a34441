//! Store loss keeps the device running (issue 19, point 6): an agent whose
//! store was deleted, or corrupted, while it was down rebuilds its record
//! from what the runtime runs. The app keeps running (same process, not
//! restarted), the device reports its release again once the controller's
//! retained desired state names it, the operator gets a `store-rebuilt`
//! event, and later updates converge as usual.

use petrel_protocol::{Event, EventKind};
use petrel_tests::*;
use std::path::Path;
use std::time::Duration;

/// Overwrites every file of the store with bytes sled cannot read.
fn corrupt(dir: &Path) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir)?.flatten() {
        let path = entry.path();
        if path.is_dir() {
            corrupt(&path)?;
        } else {
            let len = entry.metadata()?.len().max(512) as usize;
            std::fs::write(&path, noise(len, 0xBAD5EED))?;
        }
    }
    Ok(())
}

/// Kills the agent, lets `lose` do its worst to the store, restarts it,
/// and checks the app kept running and is reported again.
async fn lose_the_store_and_restart(
    ctl: &Controller,
    agent: &mut Agent,
    lose: impl FnOnce(&Path) -> anyhow::Result<()>,
) -> anyhow::Result<(u32, Event)> {
    let client = ctl.client();
    let v1_pid = running_app(&agent.data_dir, "1").await?;
    let seq_before = last_seq(&client, &agent.id).await;
    agent.kill9();
    lose(&agent.data_dir.join("db"))?;
    let restarted_at = petrel_controller::now_ms();
    agent.restart()?;
    let view = wait_fresh_report(&client, &agent.id, "1", restarted_at).await?;
    assert_eq!(
        view.services.first().and_then(|s| s.pid),
        Some(v1_pid),
        "the running app was kept, not restarted\n{}",
        agent.log_tail(30)
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(running_app(&agent.data_dir, "1").await?, v1_pid);
    assert!(pid_alive(v1_pid));
    let event = wait_event(&client, &agent.id, EventKind::StoreRebuilt, seq_before).await?;
    assert!(agent.is_alive(), "{}", agent.log_tail(30));
    Ok((v1_pid, event))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deleted_store_is_rebuilt_from_the_running_app_and_updates_go_on() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let ctl = Controller::start(&tmp.path().join("ctl"))?;
    let client = ctl.client();
    let mut agent = Agent::start(tmp.path(), "lost-1", &ctl.broker_url(), &ctl.url())?;
    run_demo_v1(&client, tmp.path(), &agent).await?;

    let (v1_pid, event) = lose_the_store_and_restart(&ctl, &mut agent, |db| {
        std::fs::remove_dir_all(db)?;
        Ok(())
    })
    .await?;
    assert!(event.message.contains("missing"), "{}", event.message);

    sample_image(&client, tmp.path(), "v2", "2", &[]).await?;
    sample_release(&client, "2", "v2").await?;
    client
        .deploy("demo@2", std::slice::from_ref(&agent.id))
        .await?;
    wait_converged(&client, &agent.id, "2").await?;
    let v2_pid = running_app(&agent.data_dir, "2").await?;
    assert_ne!(v2_pid, v1_pid);
    wait_for(Duration::from_secs(10), "v1 to be stopped", || async {
        (!pid_alive(v1_pid)).then_some(())
    })
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_corrupt_store_is_moved_aside_and_the_app_keeps_running() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let ctl = Controller::start(&tmp.path().join("ctl"))?;
    let client = ctl.client();
    let mut agent = Agent::start(tmp.path(), "lost-2", &ctl.broker_url(), &ctl.url())?;
    run_demo_v1(&client, tmp.path(), &agent).await?;

    let (_, event) = lose_the_store_and_restart(&ctl, &mut agent, corrupt).await?;
    assert!(event.message.contains("moved aside"), "{}", event.message);
    let aside: Vec<String> = std::fs::read_dir(&agent.data_dir)?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("db.corrupt-"))
        .collect();
    assert_eq!(aside.len(), 1, "the corrupt store is kept aside: {aside:?}");
    assert!(agent.data_dir.join(&aside[0]).is_dir());
    Ok(())
}
