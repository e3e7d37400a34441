//! Maintenance windows: a device in a group whose window is closed
//! downloads and installs the new release, then holds in `ready` (the old
//! release running); when the group's window is moved to include now, the
//! held device swaps.

use petrel_protocol::Phase;
use petrel_tests::*;
use std::time::Duration;

/// `daily HH:MM-HH:MM UTC` from `from_min` to `to_min` minutes after now.
fn window(from_min: i64, to_min: i64) -> String {
    let now_min = (petrel_controller::now_ms() / 60_000) as i64;
    let at = |m: i64| {
        let m = (now_min + m).rem_euclid(24 * 60);
        format!("{:02}:{:02}", m / 60, m % 60)
    };
    format!("daily {}-{} UTC", at(from_min), at(to_min))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_closed_window_holds_the_swap_in_ready_and_an_open_one_lets_it_through(
) -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let ctl = Controller::start(&tmp.path().join("ctl"))?;
    let client = ctl.client();
    let agent = Agent::start(tmp.path(), "mw-1", &ctl.broker_url(), &ctl.url())?;
    let v1_pid = run_demo_v1(&client, tmp.path(), &agent).await?;
    succeeded(
        &ctl.cli()
            .args(["device", "label", "mw-1", "site=remote"])
            .output()?,
    );
    let closed = window(120, 180);
    let out = ctl
        .cli()
        .args([
            "group",
            "create",
            "remote",
            "--select",
            "site=remote",
            "--window",
            &closed,
        ])
        .output()?;
    assert!(succeeded(&out).contains(&closed));

    sample_image(&client, tmp.path(), "v2", "2", &[]).await?;
    sample_release(&client, "2", "v2").await?;
    client
        .deploy("demo@2", std::slice::from_ref(&agent.id))
        .await?;
    let held = wait_phase(&client, &agent.id, Phase::Ready).await?;
    assert_eq!(held.current.map(|c| c.version), Some("1".into()));
    tokio::time::sleep(Duration::from_secs(3)).await;
    let still = client.device(&agent.id).await?;
    assert_eq!(still.phase, Phase::Ready, "the swap did not wait");
    assert!(pid_alive(v1_pid), "v1 stopped while held");

    let open = window(-60, 60);
    succeeded(
        &ctl.cli()
            .args([
                "group",
                "create",
                "remote",
                "--select",
                "site=remote",
                "--window",
                &open,
            ])
            .output()?,
    );
    wait_converged(&client, &agent.id, "2").await?;
    running_app(&agent.data_dir, "2").await?;
    Ok(())
}
