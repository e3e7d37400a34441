//! The post-update watch: a release that passes its swap (no health check)
//! and then crash-loops (its service restarting 3 times within
//! `post_update_watch_s`) is rolled back automatically; the device reports
//! `rolled-back` with the restarts in its last error, and the previous
//! release runs again. (A release restarting only once or twice is not a
//! crash loop: see the agent's `watch` and `machine` unit tests.)

use petrel_protocol::{EventKind, Phase};
use petrel_tests::*;

#[tokio::test(flavor = "multi_thread")]
async fn post_update_watch_rolls_back_a_crash_loop() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let ctl = Controller::start(&tmp.path().join("ctl"))?;
    let client = ctl.client();
    let agent = Agent::start_with(
        tmp.path(),
        "w-1",
        &ctl.broker_url(),
        &ctl.url(),
        "post_update_watch_s = 60\n",
    )?;
    run_demo_v1(&client, tmp.path(), &agent).await?;

    // v2 has its own image so its heartbeats say "2", not "1"
    sample_image(&client, tmp.path(), "v2", "2", &[]).await?;
    let compose = "services:\n  app:\n    image: sample-app:v2\n    command: [\"--interval-ms\", \"100\", \"--exit-after-ms\", \"1500\"]\n    restart: always\n    healthcheck:\n      test: [\"NONE\"]\n";
    client.create_release("demo", "2", compose).await?;
    let seq = last_seq(&client, &agent.id).await;
    client
        .deploy("demo@2", std::slice::from_ref(&agent.id))
        .await?;

    // it passes the swap, then crash-loops
    let swapped = wait_event(&client, &agent.id, EventKind::Swapped, seq).await?;
    assert!(swapped.message.contains("demo@2"), "{}", swapped.message);
    let rolled = wait_event(&client, &agent.id, EventKind::RolledBack, seq).await?;
    assert!(
        rolled.message.contains("restarted 3 times"),
        "{}",
        rolled.message
    );
    let view = wait_phase(&client, &agent.id, Phase::RolledBack).await?;
    assert_eq!(view.current.as_ref().map(|c| c.version.as_str()), Some("1"));
    let why = view.last_error.unwrap_or_default();
    assert!(
        why.contains("service app restarted 3 times") && why.contains("crash loop"),
        "{why}"
    );
    let pid = running_app(&agent.data_dir, "1").await?;
    assert!(pid_alive(pid), "demo@1 runs again");
    Ok(())
}
