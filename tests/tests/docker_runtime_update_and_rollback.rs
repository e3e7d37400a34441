//! The `docker` runtime end to end on the real Docker Engine: an agent
//! configured with `runtime = "docker"` updates v1 → v2 (handover) and
//! v2 → a broken v3, which is rolled back to v2, then to v4. Images are
//! loaded into the engine from Petrel's own layers (no registry is
//! reachable), tagged `petrel/<name>:<tag>` with their creation date, and
//! those neither the current nor the previous release needs are removed.
//! Where `docker info` fails the test says so and passes trivially.

use petrel_protocol::{EventKind, Phase};
use petrel_tests::docker::{docker, running, Cleanup};
use petrel_tests::*;

/// The heartbeat file inside the container (images carry no shell, so it
/// is read with `docker cp`).
fn heartbeat_version(device: &str, instance: &str) -> String {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dest = tmp.path().join("hb");
    docker(&[
        "cp",
        &format!("petrel-{device}.{instance}:/app/heartbeat"),
        &dest.display().to_string(),
    ]);
    std::fs::read_to_string(dest).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn docker_runtime_hands_over_to_v2_and_rolls_a_broken_v3_back() -> anyhow::Result<()> {
    if !docker_available() {
        eprintln!("no Docker Engine here (`docker info` failed): docker runtime not exercised");
        return Ok(());
    }
    let device = format!("dock-{}", std::process::id());
    let _cleanup = Cleanup(device.clone());
    let tmp = tempfile::tempdir()?;
    let ctl = Controller::start(&tmp.path().join("ctl"))?;
    let client = ctl.client();
    let mut agent = Agent::start_with(
        tmp.path(),
        &device,
        &ctl.broker_url(),
        &ctl.url(),
        "runtime = \"docker\"\n",
    )?;
    let devices = vec![device.clone()];
    for (v, tag) in [("1", "v1"), ("2", "v2"), ("3", "v3")] {
        sample_image(&client, tmp.path(), tag, v, &[]).await?;
    }
    for (v, tag) in [("1", "v1"), ("2", "v2")] {
        let compose = format!("services:\n  app:\n    image: sample-app:{tag}\n    command: [\"--state-dir\", \"/data\"]\n    volumes: [\"appdata:/data\"]\n    mem_limit: 64m\n    cpus: 0.5\n");
        client.create_release("demo", v, &compose).await?;
    }
    client.deploy("demo@1", &devices).await?;
    wait_converged(&client, &device, "1").await?;
    assert_eq!(running(&device), ["app-g1"]);

    client.deploy("demo@2", &devices).await?;
    wait_converged(&client, &device, "2").await?;
    assert_eq!(
        running(&device),
        ["app-g2"],
        "v1's container is gone after the handover"
    );
    assert!(heartbeat_version(&device, "app-g2").contains("version=2"));
    let limits = docker(&[
        "inspect",
        "-f",
        "{{.HostConfig.Memory}} {{.HostConfig.NanoCpus}}",
        &format!("petrel-{device}.app-g2"),
    ]);
    assert_eq!(
        limits,
        format!("{} 500000000", 64 << 20),
        "resource limits applied"
    );
    let history = std::fs::read_to_string(agent.data_dir.join("volumes/appdata/history"))?;
    assert_eq!(history, "1\n2\n", "the named volume kept v1's state for v2");

    // a restarted agent adopts its labelled container instead of replacing it
    let container = docker(&[
        "ps",
        "-q",
        "--filter",
        &format!("name=petrel-{device}.app-g2"),
    ]);
    agent.kill9();
    let restarted_at = petrel_controller::now_ms();
    agent.restart()?;
    wait_fresh_report(&client, &device, "2", restarted_at).await?;
    let after = docker(&[
        "ps",
        "-q",
        "--filter",
        &format!("name=petrel-{device}.app-g2"),
    ]);
    assert_eq!(after, container, "the same container still runs");
    assert!(!container.is_empty());

    let seq = last_seq(&client, &device).await;
    let compose = "services:\n  app:\n    image: sample-app:v3\n    command: [\"--exit-after-ms\", \"300\"]\n    restart: on-failure\n";
    client.create_release("demo", "3", compose).await?;
    client.deploy("demo@3", &devices).await?;
    let event = wait_event(&client, &device, EventKind::RolledBack, seq).await?;
    assert!(event.message.contains("demo@2"), "{}", event.message);
    let view = wait_phase(&client, &device, Phase::RolledBack).await?;
    assert_eq!(view.current.map(|c| c.version), Some("2".into()));
    assert_eq!(
        running(&device),
        ["app-g2"],
        "exactly v2 runs after the rollback"
    );
    assert!(
        agent.log().contains("rolled back"),
        "{}",
        agent.log_tail(20)
    );

    // images are the engine's own: named and dated as imported
    let tags = |repo: &str| {
        let mut t: Vec<String> = docker(&["images", repo, "--format", "{{.Tag}}"])
            .lines()
            .map(String::from)
            .collect();
        t.sort();
        t
    };
    // the rolled-back release's image goes with the rollback, not at the
    // next successful update
    wait_for(CONVERGE, "v3's image to be removed", || async {
        (tags("petrel/sample-app") == ["v1", "v2"]).then_some(())
    })
    .await?;
    let created = docker(&[
        "image",
        "inspect",
        "-f",
        "{{.Created}}",
        "petrel/sample-app:v2",
    ]);
    assert!(created.starts_with("20"), "created {created:?}");
    // after the next update only the current and previous release's
    // images stay
    sample_image(&client, tmp.path(), "v4", "4", &[]).await?;
    let compose = "services:\n  app:\n    image: sample-app:v4\n";
    client.create_release("demo", "4", compose).await?;
    client.deploy("demo@4", &devices).await?;
    wait_converged(&client, &device, "4").await?;
    wait_for(CONVERGE, "v1's image to be removed", || async {
        (tags("petrel/sample-app") == ["v2", "v4"]).then_some(())
    })
    .await?;
    Ok(())
}
