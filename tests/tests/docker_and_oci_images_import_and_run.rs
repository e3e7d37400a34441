//! Images made by a real Docker Engine (`docker import` + a legacy
//! `docker build` layer on top, then `docker save`) and the same image
//! converted to an OCI archive by skopeo are imported with `petrel image
//! import` and run on a device: layer order and image config carry over.
//! Needs a Docker Engine (no registry: images are built offline); the test
//! says so and passes trivially where `docker info` fails.

use petrel_simulator::sample;
use petrel_tests::*;
use std::path::Path;
use std::process::Command;

fn sh(cmd: &str) -> anyhow::Result<()> {
    let out = Command::new("sh").args(["-c", cmd]).output()?;
    anyhow::ensure!(
        out.status.success(),
        "`{cmd}` failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// Fresh heartbeats of `version` under the agent's root filesystems.
fn fresh_heartbeats(data_dir: &Path, version: &str) -> usize {
    let Ok(dir) = std::fs::read_dir(data_dir.join("rootfs")) else {
        return 0;
    };
    dir.flatten()
        .filter(|e| {
            let Some(b) = sample::read_heartbeat(&e.path()) else {
                return false;
            };
            b.version == version
                && sample::heartbeat_writer(&e.path(), &b).is_some()
                && petrel_controller::now_ms().saturating_sub(b.time_ms) < 2000
        })
        .count()
}

fn import(ctl: &Controller, file: &Path, name: &str) -> anyhow::Result<()> {
    let out = Command::new(bin("petrel"))
        .args(["--controller", &ctl.url(), "image", "import"])
        .arg(file)
        .args(["--name", name, "--tag", "2"])
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "import {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn docker_save_and_oci_archives_import_and_run_on_a_device() -> anyhow::Result<()> {
    if !docker_available() {
        eprintln!("no Docker Engine here (`docker info` failed): docker-save import not exercised");
        return Ok(());
    }
    let tmp = tempfile::tempdir()?;
    let t = tmp.path();
    let tag = format!("petrel-e2e-app:{}", std::process::id());
    petrel_simulator::sample::app_dir(
        &petrel_simulator::sample::sample_app_binary()?,
        "base-1",
        &t.join("rootfs"),
    )?;
    // a different size: the fuse-overlayfs naive diff misses same-size,
    // same-mtime rewrites
    std::fs::create_dir_all(t.join("ctx"))?;
    std::fs::write(t.join("ctx/version.txt"), "2\n")?;
    std::fs::write(
        t.join("ctx/Dockerfile"),
        format!("FROM {tag}-base\nCOPY version.txt /app/version.txt\nENV GREETING=from-docker\n"),
    )?;
    let r = t.display();
    sh(&format!("tar -C {r}/rootfs -c . | docker import --change 'ENTRYPOINT [\"/app/sample-app\"]' --change 'WORKDIR /app' - {tag}-base"))?;
    let built = sh(&format!(
        "DOCKER_BUILDKIT=0 docker build -q -t {tag} {r}/ctx && docker save -o {r}/image.tar {tag}"
    ));
    let _ = sh(&format!("docker rmi -f {tag} {tag}-base"));
    built?;

    let ctl = Controller::start(&t.join("ctl"))?;
    let agent = Agent::start(t, "d-1", &ctl.broker_url(), &ctl.url())?;
    import(&ctl, &t.join("image.tar"), "docker-app")?;
    let mut services = "services:\n  from-docker:\n    image: docker-app:2\n".to_string();
    let mut expected = 1;
    if Command::new("skopeo")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        sh(&format!(
            "skopeo copy -q docker-archive:{r}/image.tar oci-archive:{r}/image-oci.tar"
        ))?;
        import(&ctl, &t.join("image-oci.tar"), "oci-app")?;
        services += "  from-oci:\n    image: oci-app:2\n";
        expected = 2;
    } else {
        eprintln!("skopeo not installed: OCI archive import not exercised here");
    }
    let client = ctl.client();
    let images = client.images().await?;
    let docker_img = images
        .iter()
        .find(|i| i.name == "docker-app")
        .expect("imported");
    assert_eq!(docker_img.layers.len(), 2, "base layer + COPY layer");
    assert_eq!(docker_img.config.entrypoint, ["/app/sample-app"]);
    assert!(docker_img
        .config
        .env
        .iter()
        .any(|e| e == "GREETING=from-docker"));

    client.create_release("imported", "2", &services).await?;
    client
        .deploy("imported@2", std::slice::from_ref(&agent.id))
        .await?;
    wait_for(CONVERGE, "imported@2 to run", || async {
        let v = client
            .devices()
            .await
            .ok()?
            .into_iter()
            .find(|d| d.id == agent.id)?;
        v.converged().then_some(())
    })
    .await?;
    // the upper layer's version.txt (2) wins over the base layer's (1)
    wait_for(CONVERGE, "every imported service's heartbeat", || async {
        (fresh_heartbeats(&agent.data_dir, "2") == expected).then_some(())
    })
    .await?;
    Ok(())
}
