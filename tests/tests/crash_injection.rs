//! Crash safety: a real agent is killed with SIGKILL at random points of
//! updates and restarted each time; every iteration must end with exactly
//! one whole release running and the journal consistent (the full 200+
//! iteration run is `petrel-sim crash-soak`). Both swap strategies.

use petrel_protocol::SwapStrategy;
use petrel_simulator::soak::{run, SoakOptions};
use std::time::Duration;

async fn soak(strategy: SwapStrategy) -> anyhow::Result<()> {
    let report = run(SoakOptions {
        iterations: 6,
        strategy,
        max_delay: Duration::from_millis(2500),
        downtime_samples: 2,
        agent_bin: Some(petrel_tests::bin("petrel-agent")),
    })
    .await?;
    eprintln!("{strategy:?}: {}", report.summary());
    assert_eq!(report.iterations, 6);
    assert_eq!(report.downtime_ms.len(), 2);
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
