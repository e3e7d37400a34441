//! Nothing lost while the controller is away (issue 19, point 7): with an
//! external broker, the controller holds a persistent MQTT session (fixed
//! identity, clean session off), so the events a device publishes while
//! the controller is stopped are queued by the broker and reach the fleet
//! history once it is back, each exactly once.

use petrel_tests::*;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread")]
async fn events_published_while_the_controller_is_down_reach_it_once_it_is_back(
) -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let mosquitto = Mosquitto::start(&tmp.path().join("mosquitto"))?;
    let mut ctl = Controller::with_broker(&tmp.path().join("ctl"), Some(mosquitto.url()))?;
    let client = ctl.client();
    let agent = Agent::start(tmp.path(), "away-1", &mosquitto.url(), &ctl.url())?;
    run_demo_v1(&client, tmp.path(), &agent).await?;
    let seen_before = last_seq(&client, &agent.id).await;

    // the same image with another setting: the device needs no download,
    // so it updates while the controller is away
    let compose = "services:\n  app:\n    image: sample-app:v1\n    command: [\"--interval-ms\", \"100\"]\n    restart: always\n    environment:\n      GREETING: away\n";
    client.create_release("demo", "1b", compose).await?;
    client
        .deploy("demo@1b", std::slice::from_ref(&agent.id))
        .await?;
    // (a deploy returns before its desired state is published)
    wait_for(
        Duration::from_secs(30),
        "the device to accept demo@1b",
        || async { agent.log().contains("updating to demo@1b").then_some(()) },
    )
    .await?;
    ctl.kill();
    wait_for(
        Duration::from_secs(60),
        "the device to swap to demo@1b",
        || async { agent.log().contains("now running demo@1b").then_some(()) },
    )
    .await?;
    tokio::time::sleep(Duration::from_secs(3)).await; // heartbeats too

    ctl.restart()?;
    let events = wait_for(
        Duration::from_secs(60),
        "the swap in the fleet history",
        || async {
            let events = client.events(&agent.id).await.ok()?;
            events
                .iter()
                .any(|e| e.message.contains("now running demo@1b"))
                .then_some(events)
        },
    )
    .await?;
    // every event since the controller went away, once, with no gap
    let seqs: Vec<u64> = events
        .iter()
        .map(|e| e.seq)
        .filter(|s| *s > seen_before)
        .collect();
    assert!(seqs.len() >= 2, "{events:?}");
    for pair in seqs.windows(2) {
        assert_eq!(pair[1], pair[0] + 1, "a gap or a repeat in {seqs:?}");
    }
    assert_eq!(seqs.first(), Some(&(seen_before + 1)), "{seqs:?}");
    Ok(())
}
