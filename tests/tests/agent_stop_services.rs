//! `petrel-agent stop-services`: with the agent stopped, it stops every
//! service the agent started and unmounts their root filesystems; running
//! the agent again brings the release back.

use petrel_tests::*;
use std::process::Command;

/// Mount points under `dir`, from this process's mount table.
fn mounts_under(dir: &std::path::Path) -> Vec<String> {
    let table = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let dir = dir.to_string_lossy().into_owned();
    table
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| m.starts_with(&dir))
        .map(String::from)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn stop_services_stops_the_release_and_unmounts_and_the_agent_brings_it_back(
) -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let ctl = Controller::start(&tmp.path().join("ctl"))?;
    let client = ctl.client();
    let mut agent = Agent::start(tmp.path(), "ss-1", &ctl.broker_url(), &ctl.url())?;
    let pid = run_demo_v1(&client, tmp.path(), &agent).await?;

    agent.kill9(); // its services outlive it, as after a crash
    assert!(pid_alive(pid));
    let out = Command::new(bin("petrel-agent"))
        .arg("stop-services")
        .arg("--config")
        .arg(agent.config_path())
        .output()?;
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("stopped 1 services"), "{said}");
    assert!(!pid_alive(pid), "the app was stopped");
    let rootfs = agent.data_dir.join("rootfs");
    assert_eq!(mounts_under(&rootfs), Vec::<String>::new());

    agent.restart()?;
    let since = petrel_controller::now_ms();
    wait_fresh_report(&client, &agent.id, "1", since).await?;
    let back = running_app(&agent.data_dir, "1").await?;
    assert_ne!(back, pid, "a new process runs the release again");
    Ok(())
}
