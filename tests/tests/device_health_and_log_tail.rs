//! Device health beyond the swap, against a real controller, its embedded
//! broker and a real agent on the native runtime: every report carries
//! the host's health (uptime, memory, load, disk), shown by `petrel device
//! show`; `petrel device logs ID SERVICE --tail N` asks the device over
//! MQTT for the last lines its service printed; an unknown service is an
//! error naming it and the services that exist; a device that cannot
//! answer (its agent killed) is a timeout within a bounded time, not a
//! hang; a viewer token may not read logs.

use petrel_controller::auth::Role;
use petrel_controller::http::DeviceView;
use petrel_protocol::LogReply;
use petrel_tests::*;
use std::time::{Duration, Instant};

/// The sample app prints `line 1` … `line LINES` once started.
const LINES: u32 = 12;

#[tokio::test(flavor = "multi_thread")]
async fn a_running_device_shows_its_health_and_tails_its_services_output() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let ctl = Controller::start(&tmp.path().join("ctl"))?;
    let client = ctl.client();
    let agent = Agent::start(tmp.path(), "health-1", &ctl.broker_url(), &ctl.url())?;
    sample_image(&client, tmp.path(), "v1", "1", &[]).await?;
    let compose = format!("services:\n  app:\n    image: sample-app:v1\n    command: [\"--interval-ms\", \"100\", \"--print-lines\", \"{LINES}\"]\n    restart: always\n");
    client.create_release("demo", "1", &compose).await?;
    client
        .deploy("demo@1", std::slice::from_ref(&agent.id))
        .await?;
    wait_converged(&client, &agent.id, "1").await?;

    // (a) health with plausible values, as JSON and as text
    let json = succeeded(&petrel(&ctl, &["device", "show", &agent.id, "--json"]));
    let view: DeviceView = serde_json::from_str(&json)?;
    let health = view.health.expect("the device view carries health");
    assert!(health.uptime_s > 0, "{health:?}");
    assert!(health.mem_total_bytes > 0, "{health:?}");
    assert!(
        health.mem_available_bytes <= health.mem_total_bytes,
        "{health:?}"
    );
    let free = view.free_disk_bytes.expect("free disk");
    assert!(free <= health.disk_total_bytes.expect("disk total"));
    let show = succeeded(&petrel(&ctl, &["device", "show", &agent.id]));
    for needle in ["up ", "memory ", " used of ", "load ", "disk ", " free of "] {
        assert!(show.contains(needle), "missing {needle:?} in:\n{show}");
    }

    // (b) exactly the last 5 lines the service printed
    let expected: Vec<String> = (LINES - 4..=LINES).map(|i| format!("line {i}")).collect();
    let expected = expected.join("\n") + "\n";
    let tail5 = || petrel(&ctl, &["device", "logs", &agent.id, "app", "--tail", "5"]);
    let got = wait_for(
        Duration::from_secs(10),
        "the app's last 5 lines",
        || async {
            let out = tail5();
            (out.status.success() && out.stdout == expected.as_bytes()).then_some(())
        },
    )
    .await;
    let last = tail5();
    assert!(
        got.is_ok(),
        "got {:?} {:?}",
        String::from_utf8_lossy(&last.stdout),
        String::from_utf8_lossy(&last.stderr)
    );
    let json = succeeded(&petrel(
        &ctl,
        &["device", "logs", &agent.id, "app", "--tail", "2", "--json"],
    ));
    let reply: LogReply = serde_json::from_str(&json)?;
    assert_eq!(
        reply.text,
        format!("line {}\nline {LINES}", LINES - 1),
        "{reply:?}"
    );
    assert!(!reply.truncated && reply.error.is_none());

    // (c) an unknown service, named with the ones that exist
    let out = petrel(&ctl, &["device", "logs", &agent.id, "nope"]);
    failed_saying(&out, &["no service \"nope\"", "its services: app", "404"]);
    // bad requests are refused by the controller, unknown devices are 404
    failed_saying(
        &petrel(&ctl, &["device", "logs", &agent.id, "app", "--tail", "0"]),
        &["400", "tail must be 1 to 1000"],
    );
    failed_saying(
        &petrel(&ctl, &["device", "logs", "nobody", "app"]),
        &["404", "unknown device nobody"],
    );
    // a viewer may see the device, not its services' output
    let viewer = client.create_token(Role::Viewer, "wall").await?.token;
    let out = ctl
        .cli()
        .env("PETREL_TOKEN", &viewer)
        .args(["device", "logs", &agent.id, "app"])
        .output()?;
    failed_saying(&out, &["403", "needs operator"]);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn asking_a_killed_agent_for_logs_fails_with_a_timeout_not_a_hang() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let ctl = Controller::start(&tmp.path().join("ctl"))?;
    let client = ctl.client();
    let mut agent = Agent::start(tmp.path(), "gone-1", &ctl.broker_url(), &ctl.url())?;
    wait_for(CONVERGE, "the device to report", || async {
        client.device("gone-1").await.ok().filter(|d| d.online)
    })
    .await?;
    agent.kill9();
    let asked = Instant::now();
    let out = petrel(&ctl, &["device", "logs", "gone-1", "app", "--tail", "5"]);
    let took = asked.elapsed();
    failed_saying(&out, &["504", "device gone-1 did not answer within 10 s"]);
    assert!(took < Duration::from_secs(20), "took {took:?}");
    Ok(())
}
