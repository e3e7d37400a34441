//! Runtime confinement end to end: a release whose compose file sets
//! `user: "4242:4343"` reaches a device, and the service process the
//! native runtime starts runs as that uid/gid, with no capabilities,
//! `no_new_privs` and a seccomp filter, as the kernel reports it.

use petrel_tests::*;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread")]
async fn a_compose_user_runs_the_service_unprivileged_under_no_new_privs_and_seccomp(
) -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let ctl = Controller::start(&tmp.path().join("ctl"))?;
    let client = ctl.client();
    let agent = Agent::start(tmp.path(), "conf-1", &ctl.broker_url(), &ctl.url())?;
    sample_image(&client, tmp.path(), "v1", "1", &[]).await?;
    let compose = "services:\n  app:\n    image: sample-app:v1\n    user: \"4242:4343\"\n    restart: always\n";
    client.create_release("demo", "1", compose).await?;
    let bad = client
        .create_release("demo", "2", &compose.replace("4242:4343", "root;rm -rf"))
        .await
        .expect_err("a malformed user is refused at create");
    assert!(bad.to_string().contains("is not uid"), "{bad}");
    client
        .deploy("demo@1", std::slice::from_ref(&agent.id))
        .await?;
    wait_converged(&client, &agent.id, "1").await?;
    let status = wait_for(Duration::from_secs(20), "the service process", || async {
        let rootfs = std::fs::read_dir(agent.data_dir.join("rootfs")).ok()?;
        rootfs
            .flatten()
            .flat_map(|e| petrel_simulator::sample::processes_in(&e.path()))
            .filter_map(|p| std::fs::read_to_string(format!("/proc/{}/status", p.pid)).ok())
            .find(|s| s.starts_with("Name:\tsample-app"))
    })
    .await?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
            .unwrap_or_default()
    };
    assert_eq!(field("Uid:"), "4242 4242 4242 4242", "{status}");
    assert_eq!(field("Gid:"), "4343 4343 4343 4343", "{status}");
    assert_eq!(field("CapEff:"), "0000000000000000", "{status}");
    assert_eq!(field("NoNewPrivs:"), "1", "{status}");
    assert_eq!(field("Seccomp:"), "2", "{status}");
    Ok(())
}
