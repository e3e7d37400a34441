//! Crash safety: a real agent is killed with SIGKILL during updates, the
//! kills aimed in turn at downloading, installing, swapping, rolling back
//! and the collection after a swap, and restarted each time; every
//! iteration must end with exactly one whole release running, the journal
//! settled and no leftovers (the 1,000-iteration run is `petrel-sim
//! crash-soak`). Both swap strategies.

use petrel_protocol::SwapStrategy;
use petrel_simulator::soak::{run, SoakOptions};

async fn soak(strategy: SwapStrategy) -> anyhow::Result<()> {
    let report = run(SoakOptions {
        iterations: 10,
        strategy,
        payload_bytes: 2 << 20,
        link_kbps: 16_000,
        downtime_samples: 2,
        agent_bin: Some(petrel_tests::bin("petrel-agent")),
    })
    .await?;
    eprintln!("{strategy:?}: {}", report.summary());
    assert_eq!(report.iterations, 10);
    assert_eq!(report.downtime_ms.len(), 2);
    // every target phase was reached before its kill: the kills are spread
    for target in [
        "downloading",
        "installing",
        "swapping",
        "rolling-back",
        "collecting",
    ] {
        assert_eq!(report.aimed.get(target), Some(&2), "{target}: {report:?}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_at_random_points_of_handover_updates_always_recovers_one_whole_release(
) -> anyhow::Result<()> {
    soak(SwapStrategy::Handover).await
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_at_random_points_of_stop_first_updates_always_recovers_one_whole_release(
) -> anyhow::Result<()> {
    soak(SwapStrategy::StopFirst).await
}
