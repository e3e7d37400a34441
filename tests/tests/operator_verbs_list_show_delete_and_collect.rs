//! The operator's verbs through the real `petrel` CLI against a real
//! controller and agent: releases and images are listed (as tables and
//! `--json`), shown and deleted; a delete is refused while something uses
//! what it would remove; deleting frees the blobs nothing else references;
//! a device is shown and forgotten.

use petrel_controller::http::DeviceView;
use petrel_protocol::{ImageManifest, ReleaseManifest};
use petrel_tests::*;

#[tokio::test(flavor = "multi_thread")]
async fn releases_images_and_devices_are_listed_shown_deleted_and_collected() -> anyhow::Result<()>
{
    let tmp = tempfile::tempdir()?;
    let ctl = Controller::start(&tmp.path().join("ctl"))?;
    let client = ctl.client();
    let agent = Agent::start(tmp.path(), "verbs-1", &ctl.broker_url(), &ctl.url())?;
    run_demo_v1(&client, tmp.path(), &agent).await?;
    // a second image and release no device runs
    let v2 = sample_image(&client, tmp.path(), "v2", "2", &[]).await?;
    sample_release(&client, "2", "v2").await?;

    let list = succeeded(&petrel(&ctl, &["release", "list"]));
    assert!(list.contains("demo@1") && list.contains("demo@2"), "{list}");
    let json = succeeded(&petrel(&ctl, &["release", "list", "--json"]));
    let releases: Vec<ReleaseManifest> = serde_json::from_str(&json)?;
    assert_eq!(releases.len(), 2);
    let show = succeeded(&petrel(&ctl, &["release", "show", "demo@2"]));
    assert!(show.contains("image    sample-app:v2"), "{show}");
    let images: Vec<ImageManifest> =
        serde_json::from_str(&succeeded(&petrel(&ctl, &["image", "list", "--json"])))?;
    assert_eq!(images.len(), 2);

    // refused while in use, naming the user
    let out = petrel(&ctl, &["release", "delete", "demo@1"]);
    failed_saying(&out, &["demo@1 is in use by verbs-1"]);
    let out = petrel(&ctl, &["image", "delete", "sample-app:v2"]);
    failed_saying(&out, &["used by release demo@2"]);
    let out = petrel(&ctl, &["release", "show", "demo@9"]);
    failed_saying(&out, &["demo@9 not found"]);

    // deleting the unused release then its image frees the image's blob
    let blob = ctl
        .dir
        .join("data/blobs/sha256")
        .join(v2.layers[0].digest.hex());
    assert!(blob.exists(), "blob of v2 at {}", blob.display());
    succeeded(&petrel(&ctl, &["release", "delete", "demo@2"]));
    assert!(blob.exists(), "the image still holds its layer");
    let out = succeeded(&petrel(&ctl, &["image", "delete", "sample-app:v2"]));
    assert!(out.contains("removed 1 blobs"), "{out}");
    assert!(!blob.exists());
    let images: Vec<ImageManifest> =
        serde_json::from_str(&succeeded(&petrel(&ctl, &["image", "list", "--json"])))?;
    assert_eq!(images.len(), 1);
    // the running release's blob stays
    let gc = succeeded(&petrel(&ctl, &["gc"]));
    assert!(gc.contains("removed 0 blobs"), "{gc}");

    // one device: shown, then forgotten
    let show = succeeded(&petrel(&ctl, &["device", "show", &agent.id]));
    assert!(
        show.contains("demo@1") && show.contains(": running, pid"),
        "{show}"
    );
    let json = succeeded(&petrel(&ctl, &["device", "show", &agent.id, "--json"]));
    let view: DeviceView = serde_json::from_str(&json)?;
    assert!(view.converged());
    let out = petrel(&ctl, &["device", "show", "nobody"]);
    failed_saying(&out, &["unknown device nobody"]);
    let id = agent.id.clone();
    drop(agent); // kill -9: the broker's last will marks it offline
    wait_for(CONVERGE, "the device to show offline", || async {
        (!client.device(&id).await.ok()?.online).then_some(())
    })
    .await?;
    let out = succeeded(&petrel(&ctl, &["device", "forget", "verbs-1"]));
    assert!(out.contains("device verbs-1 forgotten"), "{out}");
    let devices: Vec<DeviceView> =
        serde_json::from_str(&succeeded(&petrel(&ctl, &["devices", "--json"])))?;
    assert!(devices.iter().all(|d| d.id != "verbs-1"), "{devices:?}");
    // forgotten, so its release can go now
    succeeded(&petrel(&ctl, &["release", "delete", "demo@1"]));
    Ok(())
}
