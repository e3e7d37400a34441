//! Images made by a real Docker Engine (`docker import` of a rootfs tarball
//! holding device nodes in /dev and a setuid binary, as debootstrap, Yocto
//! and Buildroot trees do, + a legacy `docker build` layer on top, then
//! `docker save`) are imported with `petrel image import` in every form
//! users have them: the docker-save archive, gzip'd, unpacked into a
//! directory, and (with skopeo) as an OCI archive and an OCI layout
//! directory. The import reports the device nodes and setuid bits devices
//! will not keep; every form runs on a device: layer order and image
//! config carry over, /dev is the runtime's. Needs a Docker Engine (no
//! registry: images are built offline); the test says so and passes
//! trivially where `docker info` fails.

use petrel_simulator::sample;
use petrel_tests::docker::{docker, running, Cleanup};
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

/// Imports `file` as `name:2` and returns what the CLI printed; `nodes`:
/// whether the base layer holds device nodes (made only as root).
fn import(ctl: &Controller, file: &Path, name: &str, nodes: bool) -> anyhow::Result<String> {
    let out = ctl
        .cli()
        .args(["image", "import"])
        .arg(file)
        .args(["--name", name, "--tag", "2"])
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "import {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8_lossy(&out.stdout).into_owned();
    // every form reports what devices will change in the base layer
    let reported_nodes =
        printed.contains("2 device nodes will not be created") && printed.contains("dev/null");
    assert_eq!(reported_nodes, nodes, "{name}: {printed}");
    assert!(
        printed.contains("1 setuid/setgid bits will be stripped")
            && printed.contains("bin/su-probe"),
        "{name}: {printed}"
    );
    Ok(printed)
}

fn has_skopeo() -> bool {
    Command::new("skopeo")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
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
    // what a rootfs tarball holds: device nodes, a setuid program
    std::fs::create_dir_all(t.join("rootfs/dev"))?;
    std::fs::create_dir_all(t.join("rootfs/bin"))?;
    std::fs::write(t.join("rootfs/bin/su-probe"), "#!/bin/sh\n")?;
    let r = t.display();
    sh(&format!("chmod 4755 {r}/rootfs/bin/su-probe"))?;
    let nodes = sh(&format!(
        "mknod {r}/rootfs/dev/null c 1 3 && mknod {r}/rootfs/dev/full c 1 7"
    ))
    .is_ok();
    if !nodes {
        eprintln!("not root: no device nodes in the test rootfs");
    }
    // a different size: the fuse-overlayfs naive diff misses same-size,
    // same-mtime rewrites
    std::fs::create_dir_all(t.join("ctx"))?;
    std::fs::write(t.join("ctx/version.txt"), "2\n")?;
    std::fs::write(
        t.join("ctx/Dockerfile"),
        format!("FROM {tag}-base\nCOPY version.txt /app/version.txt\nENV GREETING=from-docker\n"),
    )?;
    sh(&format!("tar -C {r}/rootfs -c . | docker import --change 'ENTRYPOINT [\"/app/sample-app\"]' --change 'WORKDIR /app' - {tag}-base"))?;
    let built = sh(&format!(
        "DOCKER_BUILDKIT=0 docker build -q -t {tag} {r}/ctx && docker save -o {r}/image.tar {tag}"
    ));
    let _ = sh(&format!("docker rmi -f {tag} {tag}-base"));
    built?;

    let ctl = Controller::start(&t.join("ctl"))?;
    let agent = Agent::start(t, "d-1", &ctl.broker_url(), &ctl.url())?;
    // the same images on the docker runtime
    let docker_device = format!("imp-{}", std::process::id());
    let _cleanup = Cleanup(docker_device.clone());
    let docker_agent = Agent::start_with(
        t,
        &docker_device,
        &ctl.broker_url(),
        &ctl.url(),
        "runtime = \"docker\"\n",
    )?;
    // the archive, gzip'd, and unpacked into a directory
    sh(&format!(
        "gzip -k {r}/image.tar && mkdir {r}/image-dir && tar -C {r}/image-dir -xf {r}/image.tar"
    ))?;
    let mut forms = vec![
        ("docker-app", "image.tar"),
        ("gz-app", "image.tar.gz"),
        ("dir-app", "image-dir"),
    ];
    if has_skopeo() {
        sh(&format!(
            "skopeo copy -q docker-archive:{r}/image.tar oci-archive:{r}/image-oci.tar && skopeo copy -q docker-archive:{r}/image.tar oci:{r}/oci-dir:app"
        ))?;
        forms.push(("oci-app", "image-oci.tar"));
        forms.push(("ocidir-app", "oci-dir"));
    } else {
        eprintln!("skopeo not installed: OCI archive and layout import not exercised here");
    }
    let mut services = "services:\n".to_string();
    for (name, file) in &forms {
        import(&ctl, &t.join(file), name, nodes)?;
        services += &format!("  {name}:\n    image: {name}:2\n");
    }
    // one more service of the same image keeps its setuid bits (opt-in)
    services += "  kept-setid:\n    image: docker-app:2\n    x-petrel-allow-setid: true\n";
    let expected = forms.len() + 1;
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
    let both = [agent.id.clone(), docker_agent.id.clone()];
    client.deploy("imported@2", &both).await?;
    for id in &both {
        wait_converged(&client, id, "2").await?;
    }
    let containers = running(&docker_device);
    assert_eq!(containers.len(), expected, "{containers:?}");
    // every form is the same two layers: the engine holds them once, and
    // each load after the first sent only what the engine lacked
    let layers_of = |tag: &str| docker(&["image", "inspect", "-f", "{{json .RootFS.Layers}}", tag]);
    let first = layers_of(&format!("petrel/{}:2", forms[0].0));
    assert!(first.contains("sha256:"), "{first}");
    for (name, _) in &forms[1..] {
        assert_eq!(layers_of(&format!("petrel/{name}:2")), first, "{name}");
    }
    let log = docker_agent.log();
    assert!(
        !log.contains("loading them all"),
        "the engine needed a held layer"
    );
    assert!(
        log.matches("held=2").count() >= forms.len() - 1,
        "{}",
        docker_agent.log_tail(40)
    );
    // the upper layer's version.txt (2) wins over the base layer's (1)
    wait_for(CONVERGE, "every imported service's heartbeat", || async {
        (fresh_heartbeats(&agent.data_dir, "2") == expected).then_some(())
    })
    .await?;
    // the layer's device nodes were not created; the setuid bit is gone
    // except where the service allowed it
    let mut kept = 0;
    for rootfs in std::fs::read_dir(agent.data_dir.join("rootfs"))?.flatten() {
        let probe = rootfs.path().join("bin/su-probe");
        if let Ok(meta) = std::fs::metadata(&probe) {
            use std::os::unix::fs::PermissionsExt;
            let setid = rootfs.file_name().to_string_lossy().ends_with("-setid");
            kept += usize::from(setid);
            let mode = if setid { 0o4755 } else { 0o755 };
            assert_eq!(
                meta.permissions().mode() & 0o7777,
                mode,
                "{}",
                probe.display()
            );
        }
        let null = rootfs.path().join("dev/null");
        if let Ok(meta) = std::fs::symlink_metadata(&null) {
            use std::os::unix::fs::FileTypeExt;
            assert!(
                !meta.file_type().is_char_device(),
                "{} came from the layer",
                null.display()
            );
        }
    }
    assert_eq!(kept, 1, "the opted-in service has its own root filesystem");
    // and in the engine: its own image, the bit kept
    let copied = t.join("su-probe-from-docker");
    docker(&[
        "cp",
        &format!("petrel-{docker_device}.kept-setid-g1:/bin/su-probe"),
        &copied.display().to_string(),
    ]);
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(&copied)?.permissions().mode() & 0o7777;
    assert_eq!(mode, 0o4755, "the docker image kept the bit");
    Ok(())
}
