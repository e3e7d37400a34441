//! Controller + 3 agents on loopback with the embedded broker: v1 then v2
//! reaches every device, the v2 process runs and v1 is stopped; the fleet
//! view (`petrel devices`) shows it.

use petrel_tests::*;

#[tokio::test(flavor = "multi_thread")]
async fn release_v1_then_v2_reaches_every_device_and_v2_really_runs() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let ctl = Controller::start(&tmp.path().join("ctl"))?;
    let client = ctl.client();
    let ids = ["pi-1", "pi-2", "pi-3"];
    let agents: Vec<Agent> = ids
        .iter()
        .map(|id| Agent::start(tmp.path(), id, &ctl.broker_url(), &ctl.url()))
        .collect::<anyhow::Result<_>>()?;
    let devices: Vec<String> = ids.iter().map(|s| s.to_string()).collect();

    // v1 through the operator CLI: `petrel image build DIR` with entrypoint flags
    let dir = tmp.path().join("app-v1");
    petrel_simulator::sample::app_dir(&petrel_simulator::sample::sample_app_binary()?, "1", &dir)?;
    let built = ctl
        .cli()
        .args(["image", "build"])
        .arg(&dir)
        .args([
            "--name",
            "sample-app",
            "--tag",
            "v1",
            "--entrypoint",
            "/app/sample-app",
            "--workdir",
            "/app",
        ])
        .output()?;
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    assert!(String::from_utf8_lossy(&built.stdout).contains("image sample-app:v1 (1 layers"));
    sample_release(&client, "1", "v1").await?;
    client.deploy("demo@1", &devices).await?;
    let mut v1_pids = Vec::new();
    for a in &agents {
        wait_converged(&client, &a.id, "1").await?;
        v1_pids.push(running_app(&a.data_dir, "1").await?);
    }

    sample_image(&client, tmp.path(), "v2", "2", &[]).await?;
    sample_release(&client, "2", "v2").await?;
    client.deploy("demo@2", &devices).await?;
    for a in &agents {
        let view = wait_converged(&client, &a.id, "2").await?;
        let pid = running_app(&a.data_dir, "2").await?;
        assert_eq!(
            view.services[0].pid,
            Some(pid),
            "reported pid is the running v2 app"
        );
        assert!(view.online);
    }
    for pid in v1_pids {
        assert!(!pid_alive(pid), "v1 process {pid} still runs");
    }

    let out = ctl.cli().args(["devices", "--json"]).output()?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout)?;
    assert_eq!(rows.len(), 3);
    assert!(rows
        .iter()
        .all(|r| r["current"]["version"] == "2" && r["online"] == true && r["phase"] == "running"));
    let table = ctl.cli().args(["devices"]).output()?;
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(
        table.contains("pi-2") && table.contains("demo@2") && table.contains("online"),
        "{table}"
    );
    Ok(())
}
