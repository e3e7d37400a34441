//! The operator's first mistakes, through the real `petrel` CLI against a
//! real controller: each is refused with a message that says what is
//! wrong, and nothing is deployed.

use petrel_tests::{failed_saying, petrel, Controller};

#[tokio::test(flavor = "multi_thread")]
async fn deploy_without_a_version_to_an_unknown_device_or_events_of_nobody_are_clear_errors(
) -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let ctl = Controller::start(&tmp.path().join("ctl"))?;
    let dir = tmp.path().join("app");
    std::fs::create_dir_all(dir.join("app"))?;
    std::fs::write(dir.join("app/run"), "#!/bin/sh\nsleep 1000\n")?;
    let build = [
        "image",
        "build",
        dir.to_str().unwrap(),
        "--name",
        "app",
        "--tag",
        "1",
        "--entrypoint",
        "/app/run",
    ];
    assert!(petrel(&ctl, &build).status.success());
    let compose = tmp.path().join("compose.yml");
    std::fs::write(&compose, "services:\n  app:\n    image: app:1\n")?;
    let create = ["release", "create", "demo", "--version", "1", "--compose"];
    let mut create: Vec<&str> = create.to_vec();
    create.push(compose.to_str().unwrap());
    assert!(petrel(&ctl, &create).status.success());

    // An image without a tag is `latest`; the error names the tags there are.
    std::fs::write(&compose, "services:\n  app:\n    image: app\n")?;
    let mut create2: Vec<&str> = create.clone();
    create2[4] = "2";
    let out = petrel(&ctl, &create2);
    failed_saying(&out, &["app:latest", "app has the tags 1"]);

    let out = petrel(&ctl, &["deploy", "demo", "--device", "pi-1"]);
    failed_saying(&out, &["\"demo\" has no version", "NAME@VERSION"]);

    let out = petrel(&ctl, &["deploy", "demo@1", "--device", "pi-typo"]);
    failed_saying(&out, &["unknown device pi-typo", "--allow-new"]);
    let devices = ctl.client().devices().await?;
    assert!(devices.is_empty(), "nothing deployed: {devices:?}");

    let out = petrel(&ctl, &["events", "nobody"]);
    failed_saying(&out, &["unknown device nobody"]);

    // A device provisioned but not yet connected: allowed when asked.
    let out = petrel(
        &ctl,
        &["deploy", "demo@1", "--device", "pi-new", "--allow-new"],
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        said.contains("pi-new: desired demo@1 (generation 1)"),
        "{said}"
    );
    assert!(petrel(&ctl, &["events", "pi-new"]).status.success());

    let missing = tmp.path().join("no-such-image.tar");
    let out = petrel(
        &ctl,
        &[
            "image",
            "import",
            missing.to_str().unwrap(),
            "--name",
            "x",
            "--tag",
            "1",
        ],
    );
    let err = failed_saying(&out, &["no-such-image.tar"]);
    assert_eq!(
        err.matches("No such file").count(),
        1,
        "the missing file is reported once: {err}"
    );
    Ok(())
}
