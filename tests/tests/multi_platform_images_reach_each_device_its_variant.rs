//! A multi-platform image (an OCI layout directory with linux/amd64,
//! linux/arm64 and linux/arm/v7 variants and a buildx attestation) is
//! imported whole; each device reports its platform and runs the variant
//! built for it; a device whose platform the image lacks is refused at
//! deploy with an error naming what there is, and nothing is deployed.
//! The variants hold the same x86 binary (this machine runs them all) and
//! differ in their version marker, which the running app reports.

use petrel_protocol::topics::{topic, Channel};
use petrel_protocol::{Desired, EventKind, SCHEMA};
use petrel_simulator::sample;
use petrel_tests::docker::{docker, Cleanup};
use petrel_tests::oci::{oci_layout_dir, PlatformVariant};
use petrel_tests::*;

#[tokio::test(flavor = "multi_thread")]
async fn each_device_runs_the_variant_for_its_platform_and_a_missing_one_is_refused(
) -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let t = tmp.path();
    let bin = sample::sample_app_binary()?;
    let markers = [
        ("linux/amd64", "amd64"),
        ("linux/arm64", "arm64"),
        ("linux/arm/v7", "armv7"),
    ];
    for (_, marker) in markers {
        sample::app_dir(&bin, marker, &t.join(marker))?;
    }
    let variants: Vec<PlatformVariant> = markers
        .iter()
        .map(|(platform, marker)| PlatformVariant {
            platform,
            dir: t.join(marker),
        })
        .collect();
    let layout = oci_layout_dir(&t.join("oci"), &variants, "/app/sample-app")?;

    let ctl = Controller::start(&t.join("ctl"))?;
    let client = ctl.client();
    let out = succeeded(&petrel(
        &ctl,
        &[
            "image",
            "import",
            layout.to_str().unwrap(),
            "--name",
            "multi",
            "--tag",
            "1",
        ],
    ));
    assert!(
        out.contains("platforms linux/amd64, linux/arm64, linux/arm/v7"),
        "{out}"
    );
    let list = succeeded(&petrel(&ctl, &["image", "list"]));
    for (platform, _) in markers {
        assert!(list.contains(platform), "{list}");
    }
    let compose =
        "services:\n  app:\n    image: multi:1\n    command: [\"--interval-ms\", \"100\"]\n";
    client.create_release("multi", "1", compose).await?;

    let agent = |id: &str, platform: Option<&str>| {
        let extra = platform.map_or(String::new(), |p| format!("platform = \"{p}\"\n"));
        Agent::start_with(t, id, &ctl.broker_url(), &ctl.url(), &extra)
    };
    let devices = [
        (agent("pi-64", Some("linux/arm64"))?, "arm64"),
        (agent("pi-v7", Some("linux/arm/v7"))?, "armv7"),
        (agent("gateway", None)?, "amd64"), // this machine: linux/amd64
    ];
    let riscv = agent("rv-1", Some("linux/riscv64"))?;
    // an arm64 device on the docker runtime, where the engine is here
    let docker_pi = format!("pi-dock-{}", std::process::id());
    let _cleanup = Cleanup(docker_pi.clone());
    let docker_agent = match docker_available() {
        true => Some(Agent::start_with(
            t,
            &docker_pi,
            &ctl.broker_url(),
            &ctl.url(),
            "platform = \"linux/arm64\"\nruntime = \"docker\"\n",
        )?),
        false => None,
    };
    for id in ["pi-64", "pi-v7", "gateway", "rv-1"] {
        wait_for(
            CONVERGE,
            &format!("{id} to report its platform"),
            || async { client.device(id).await.ok()?.platform },
        )
        .await?;
    }

    let out = petrel(
        &ctl,
        &["deploy", "multi@1", "--device", "pi-64", "--device", "rv-1"],
    );
    failed_saying(
        &out,
        &[
            "rv-1 (linux/riscv64)",
            "no linux/riscv64 variant",
            "linux/amd64, linux/arm64, linux/arm/v7",
            "nothing was deployed",
        ],
    );
    assert!(
        client.device("pi-64").await?.desired.is_none(),
        "nothing deployed"
    );
    assert!(client.device(&riscv.id).await?.desired.is_none());
    // and the device itself refuses an image built for another platform,
    // should a desired state carry one (published around the controller)
    let amd64 = client
        .release("multi", "1")
        .await?
        .for_platform(Some(&"linux/amd64".parse()?))?;
    let forged = Desired {
        schema: SCHEMA,
        device_id: riscv.id.clone(),
        generation: 1,
        release: Some(amd64),
        issued_at_ms: petrel_controller::now_ms(),
        expires_at_ms: Some(petrel_controller::now_ms() + 3_600_000),
        window: None,
        lock_override_after_s: None,
        budget: None,
    };
    let seq = last_seq(&client, &riscv.id).await;
    // signed with the controller's key: only the platform check stops it
    let payload = petrel_protocol::encode(&ctl.signing_key()?.sign_desired(&forged, &[]));
    publish_raw(ctl.mqtt_port, &topic(&riscv.id, Channel::Desired), payload).await?;
    let event = wait_event(&client, &riscv.id, EventKind::DesiredRejected, seq).await?;
    assert!(
        event
            .message
            .contains("is built for linux/amd64, this device is linux/riscv64"),
        "{}",
        event.message
    );

    let mut ids: Vec<String> = devices.iter().map(|(a, _)| a.id.clone()).collect();
    ids.extend(docker_agent.iter().map(|a| a.id.clone()));
    for id in &ids {
        wait_for(
            CONVERGE,
            &format!("{id} to report its platform"),
            || async { client.device(id).await.ok()?.platform },
        )
        .await?;
    }
    client.deploy("multi@1", &ids).await?;
    for (agent, marker) in &devices {
        wait_converged(&client, &agent.id, "1").await?;
        // the app of this device's variant runs (its marker is its version)
        running_app(&agent.data_dir, marker).await?;
    }
    if let Some(agent) = &docker_agent {
        wait_converged(&client, &agent.id, "1").await?;
        let copied = t.join("version-from-docker");
        docker(&[
            "cp",
            &format!("petrel-{docker_pi}.app-g1:/app/version.txt"),
            &copied.display().to_string(),
        ]);
        assert_eq!(std::fs::read_to_string(&copied)?, "arm64\n");
    } else {
        eprintln!("no Docker Engine here: the docker runtime's variant not exercised");
    }
    Ok(())
}
