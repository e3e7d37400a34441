//! The operator CLI over the fleet index, against a real controller and
//! two real agents: `petrel devices --filter` is answered by the
//! controller (phase and `~` included, a bad filter is its 400);
//! `petrel watch --once` draws the fleet (counts, a bar per phase) and
//! prints it as JSON; `petrel alerts` lists the disk-low alert every
//! device raises under an absurd free-disk limit; and every command that
//! prints something prints JSON with `--json`, before or after it.

use petrel_controller::cli::frame::FleetWatch;
use petrel_controller::http::DeviceView;
use petrel_controller::monitor::alerts::Alert;
use petrel_tests::*;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread")]
async fn devices_filter_watch_alerts_and_json_speak_for_a_real_fleet() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    // every device is below 100 TB free: each raises disk-low
    let ctl = Controller::with_args(
        &tmp.path().join("ctl"),
        &["--alert-disk-free-mib", "100000000"],
    )?;
    let client = ctl.client();
    let kitchen = Agent::start(tmp.path(), "kitchen-1", &ctl.broker_url(), &ctl.url())?;
    let porch = Agent::start(tmp.path(), "porch-2", &ctl.broker_url(), &ctl.url())?;
    sample_image(&client, tmp.path(), "v1", "1", &[]).await?;
    sample_release(&client, "1", "v1").await?;
    client
        .deploy("demo@1", &[kitchen.id.clone(), porch.id.clone()])
        .await?;
    wait_converged(&client, &kitchen.id, "1").await?;
    wait_converged(&client, &porch.id, "1").await?;

    // devices --filter: the controller picks, by phase and a part of the id
    let filter = "phase=running,id~kit";
    let text = succeeded(&petrel(&ctl, &["devices", "--filter", filter]));
    assert!(
        text.contains("kitchen-1") && !text.contains("porch-2"),
        "{text}"
    );
    let json = succeeded(&petrel(&ctl, &["devices", "--filter", filter, "--json"]));
    let picked: Vec<DeviceView> = serde_json::from_str(&json)?;
    let ids: Vec<&str> = picked.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(ids, ["kitchen-1"]);
    let json = succeeded(&petrel(
        &ctl,
        &["--json", "devices", "--select", "release=demo@1"],
    ));
    assert_eq!(serde_json::from_str::<Vec<DeviceView>>(&json)?.len(), 2);
    failed_saying(
        &petrel(&ctl, &["devices", "--filter", "a=b=c"]),
        &["400", "is not key=value"],
    );

    // watch --once: the counts and a full running bar
    let frame = succeeded(&petrel(&ctl, &["watch", "--once"]));
    assert!(
        frame.starts_with("fleet: 2 devices, 2 online, 0 offline"),
        "{frame}"
    );
    let running = format!("running  {}  2 (100%)", "█".repeat(20));
    assert!(frame.contains(&running), "{frame}");
    assert!(frame.contains("demo@1"), "{frame}");
    let one = succeeded(&petrel(&ctl, &["watch", "--once", "--filter", "id~porch"]));
    assert!(one.starts_with("fleet: 1 devices, 1 online"), "{one}");
    let json = succeeded(&petrel(&ctl, &["--json", "watch", "--once"]));
    let watched: FleetWatch = serde_json::from_str(&json)?;
    assert_eq!((watched.summary.devices, watched.summary.online), (2, 2));
    assert_eq!(watched.summary.phases.get("running"), Some(&2));

    // alerts: each device's disk-low, as a table and as JSON
    let alerts: Vec<Alert> = wait_for(CONVERGE, "a disk-low alert per device", || async {
        let json = succeeded(&petrel(&ctl, &["alerts", "--active", "--json"]));
        let alerts: Vec<Alert> = serde_json::from_str(&json).ok()?;
        (alerts.len() == 2).then_some(alerts)
    })
    .await?;
    assert!(
        alerts.iter().all(|a| a.kind.name() == "disk-low"),
        "{alerts:?}"
    );
    let table = succeeded(&petrel(&ctl, &["alerts", "--device", "porch-2"]));
    assert!(table.starts_with("DEVICE "), "{table}");
    assert!(
        table.contains("porch-2") && table.contains("disk-low") && table.contains("active"),
        "{table}"
    );
    assert!(!table.contains("kitchen-1"), "{table}");
    let frame = succeeded(&petrel(&ctl, &["watch", "--once"]));
    assert!(frame.contains("alerts: disk-low 2"), "{frame}");

    // --json everywhere: what each command prints parses
    let events = ["events", "kitchen-1"];
    let label = ["device", "label", "porch-2", "site=porch"];
    let group = ["group", "create", "porch", "--select", "site=porch"];
    let commands: Vec<&[&str]> = vec![
        &["image", "list"],
        &["release", "list"],
        &["release", "show", "demo@1"],
        &["devices"],
        &["device", "show", "kitchen-1"],
        &events,
        &label,
        &group,
        &["group", "list"],
        &["key", "show"],
        &["token", "list"],
        &["rollout", "list"],
        &["alerts"],
        &["gc"],
    ];
    for args in commands {
        for json_first in [true, false] {
            let mut cmd = ctl.cli();
            match json_first {
                true => cmd.arg("--json").args(args),
                false => cmd.args(args).arg("--json"),
            };
            let out = succeeded(&cmd.output()?);
            let parsed = serde_json::from_str::<serde_json::Value>(&out);
            assert!(parsed.is_ok(), "petrel {args:?} --json printed:\n{out}");
        }
    }
    // an error with --json: non-zero, the message on stderr
    let out = petrel(&ctl, &["--json", "device", "show", "nobody"]);
    failed_saying(&out, &["unknown device nobody"]);
    assert!(out.stdout.is_empty());

    // watch without --once keeps drawing, a blank line between frames
    let mut child = ctl
        .cli()
        .args(["watch", "--interval", "1"])
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    child.kill()?;
    let out = child.wait_with_output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.matches("fleet: 2 devices").count() >= 2, "{text}");
    assert!(text.contains("\n\nfleet: 2 devices"), "{text}");
    Ok(())
}
