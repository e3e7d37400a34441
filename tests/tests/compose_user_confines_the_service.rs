//! Runtime confinement end to end: a release whose compose file sets
//! `user: "4242:4343"` and `network_mode: none` reaches a device, and the
//! service process the native runtime starts runs as that uid/gid, with no
//! capabilities, `no_new_privs`, a seccomp filter and a network namespace
//! holding only loopback, as the kernel reports it.

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
    let compose = "services:\n  app:\n    image: sample-app:v1\n    user: \"4242:4343\"\n    network_mode: none\n    restart: always\n";
    client.create_release("demo", "1", compose).await?;
    let bad = client
        .create_release("demo", "2", &compose.replace("4242:4343", "root;rm -rf"))
        .await
        .expect_err("a malformed user is refused at create");
    assert!(bad.to_string().contains("is not uid"), "{bad}");
    let bridge = client
        .create_release("demo", "2", &compose.replace("none", "bridge"))
        .await
        .expect_err("a bridge network is refused at create");
    assert!(
        bridge.to_string().contains("network_mode \"bridge\""),
        "{bridge}"
    );
    client
        .deploy("demo@1", std::slice::from_ref(&agent.id))
        .await?;
    wait_converged(&client, &agent.id, "1").await?;
    let (pid, status) = wait_for(Duration::from_secs(20), "the service process", || async {
        let rootfs = std::fs::read_dir(agent.data_dir.join("rootfs")).ok()?;
        rootfs
            .flatten()
            .flat_map(|e| petrel_simulator::sample::processes_in(&e.path()))
            .filter_map(|p| {
                let status = std::fs::read_to_string(format!("/proc/{}/status", p.pid)).ok()?;
                Some((p.pid, status))
            })
            .find(|(_, s)| s.starts_with("Name:\tsample-app"))
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
    let netns = |pid: &str| std::fs::read_link(format!("/proc/{pid}/ns/net")).ok();
    assert_ne!(
        netns(&pid.to_string()),
        netns("self"),
        "the service shares the host network"
    );
    let devices = std::fs::read_to_string(format!("/proc/{pid}/net/dev"))?;
    let names: Vec<&str> = devices
        .lines()
        .skip(2)
        .filter_map(|l| l.split(':').next().map(str::trim))
        .collect();
    assert_eq!(names, ["lo"], "{devices}");
    // and loopback is up (it has its local address)
    let fib = std::fs::read_to_string(format!("/proc/{pid}/net/fib_trie"))?;
    assert!(fib.contains("127.0.0.1"), "loopback is down: {fib}");
    Ok(())
}
