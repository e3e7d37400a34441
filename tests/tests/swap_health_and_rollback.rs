//! The swap on the native runtime: `handover` starts the new release and
//! waits for its health check (HTTP) before stopping the old one; a
//! release that crashes, or runs but fails its health check, is rolled
//! back automatically and reported `rolled-back` with the reason, under
//! both `handover` and `stop-first`; the previous release runs again.
//! The operator's `petrel deploy --wait` follows the first two: exit 0
//! when the device runs the release, 1 with the reason when it rolls back.

use petrel_controller::client::Client;
use petrel_protocol::{EventKind, Phase};
use petrel_tests::*;

/// `petrel deploy RELEASE --device ID --wait` against `ctl`.
fn deploy_wait(ctl: &Controller, release: &str, device: &str) -> std::process::Output {
    ctl.cli()
        .args(["deploy", release, "--device", device])
        .args(["--wait", "--timeout", "180"])
        .output()
        .expect("the petrel CLI runs")
}

/// Release `demo@version` of sample-app:`tag` with extra args and compose
/// lines (health check, swap strategy).
async fn release(
    client: &Client,
    version: &str,
    tag: &str,
    args: &[&str],
    extra: &str,
) -> anyhow::Result<()> {
    let mut argv = vec!["--interval-ms", "100"];
    argv.extend(args);
    let compose = format!("services:\n  app:\n    image: sample-app:{tag}\n    command: {argv:?}\n    restart: on-failure\n{extra}");
    client.create_release("demo", version, &compose).await?;
    Ok(())
}

fn http_check(port: u16) -> String {
    format!("    healthcheck:\n      test: [\"HTTP\", \"http://127.0.0.1:{port}/\"]\n      interval: 1s\n      retries: 3\n")
}

async fn wait_rolled_back(
    client: &Client,
    agent: &Agent,
    after: u64,
    needle: &str,
) -> anyhow::Result<()> {
    let event = wait_event(client, &agent.id, EventKind::RolledBack, after).await?;
    assert!(
        event.message.contains(needle),
        "rollback reason should mention {needle:?}: {}",
        event.message
    );
    let view = wait_phase(client, &agent.id, Phase::RolledBack).await?;
    assert_eq!(view.current.as_ref().map(|c| c.version.as_str()), Some("2"));
    assert!(view.last_error.is_some());
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn unhealthy_releases_roll_back_under_handover_and_stop_first() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let ctl = Controller::start(&tmp.path().join("ctl"))?;
    let client = ctl.client();
    let agent = Agent::start(tmp.path(), "h-1", &ctl.broker_url(), &ctl.url())?;
    let devices = vec![agent.id.clone()];
    for (v, tag) in [("1", "v1"), ("2", "v2"), ("3", "v3")] {
        sample_image(&client, tmp.path(), tag, v, &[]).await?;
    }
    let (p1, p2) = (free_port(), free_port());

    let listen1 = format!("127.0.0.1:{p1}");
    release(&client, "1", "v1", &["--listen", &listen1], &http_check(p1)).await?;
    client.deploy("demo@1", &devices).await?;
    wait_converged(&client, &agent.id, "1").await?;
    let v1_pid = running_app(&agent.data_dir, "1").await?;

    // handover: v2 healthy on its own port, then v1 stops
    let listen2 = format!("127.0.0.1:{p2}");
    release(&client, "2", "v2", &["--listen", &listen2], &http_check(p2)).await?;
    let out = deploy_wait(&ctl, "demo@2", &agent.id);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("all 1 devices run the release"), "{said}");
    wait_converged(&client, &agent.id, "2").await?;
    let v2_pid = running_app(&agent.data_dir, "2").await?;
    assert!(!pid_alive(v1_pid), "v1 stopped after the handover");

    // handover to a release that crashes: rolled back, v2 never stopped
    let seq = last_seq(&client, &agent.id).await;
    release(&client, "3", "v3", &["--exit-after-ms", "300"], "").await?;
    let out = deploy_wait(&ctl, "demo@3", &agent.id);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a rollback is a failure of --wait");
    assert!(
        err.contains("1 of 1 devices did not converge") && err.contains("rolled back"),
        "{err}"
    );
    wait_rolled_back(&client, &agent, seq, "did not stay up").await?;
    // the reason carries the service's last output
    let events = client.events(&agent.id).await?;
    let rolled = events
        .iter()
        .rev()
        .find(|e| e.kind == EventKind::RolledBack)
        .expect("event");
    assert!(
        rolled.message.contains("exiting with failure as asked"),
        "{}",
        rolled.message
    );
    assert_eq!(
        running_app(&agent.data_dir, "2").await?,
        v2_pid,
        "v2 kept running through the failed handover"
    );

    // stop-first to a release that runs but fails its health check
    let seq = last_seq(&client, &agent.id).await;
    let dead_port = free_port();
    let extra = format!("    x-petrel-swap: stop-first\n{}", http_check(dead_port));
    release(&client, "4", "v3", &[], &extra).await?;
    client.deploy("demo@4", &devices).await?;
    wait_rolled_back(&client, &agent, seq, "failed its health check").await?;
    let restored = running_app(&agent.data_dir, "2").await?;
    assert_ne!(
        restored, v2_pid,
        "stop-first stopped v2, the rollback started it again"
    );
    let views = client.devices().await?;
    let view = views.iter().find(|d| d.id == agent.id).expect("listed");
    assert_eq!(
        view.services.len(),
        1,
        "exactly one release runs: {:?}",
        view.services
    );
    assert_eq!(view.services[0].pid, Some(restored));
    Ok(())
}
