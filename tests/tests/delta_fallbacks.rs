//! Delta transfer falls back to the full blob when the delta is unusable:
//! a corrupted cached patch (fails verification on the device) and a pair
//! whose delta is not smaller than the blob (the controller answers 404).
//! Either way the device converges and nothing half-applied is kept.

use petrel_tests::*;
use std::path::Path;

async fn image_with(
    ctl: &Controller,
    tmp: &Path,
    tag: &str,
    version: &str,
    payload: Vec<u8>,
) -> anyhow::Result<petrel_protocol::ImageManifest> {
    let img = sample_image(
        &ctl.client(),
        tmp,
        tag,
        version,
        &[("payload.bin", payload)],
    )
    .await?;
    sample_release(&ctl.client(), version, tag).await?;
    Ok(img)
}

fn patch_files(ctl: &Controller) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(ctl.dir.join("data/deltas"))
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "patch"))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn unusable_deltas_fall_back_to_the_full_blob() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let ctl = Controller::start(&tmp.path().join("ctl"))?;
    let client = ctl.client();
    let agent = Agent::start(tmp.path(), "fb-1", &ctl.broker_url(), &ctl.url())?;
    let devices = vec![agent.id.clone()];
    let mut data = noise(1 << 20, 3);
    image_with(&ctl, tmp.path(), "v1", "1", data.clone()).await?;
    client.deploy("demo@1", &devices).await?;
    wait_converged(&client, &agent.id, "1").await?;

    // v2: a small change; corrupt the cached patch's payload before the
    // device fetches it (deploy generates it ahead of time)
    data[1000..1100].fill(0);
    let v2 = image_with(&ctl, tmp.path(), "v2", "2", data.clone()).await?;
    let v1_layer = client
        .images()
        .await?
        .into_iter()
        .find(|i| i.tag == "v1")
        .expect("v1")
        .layers[0]
        .diff_id
        .clone();
    let url = format!(
        "{}/v1/deltas/{}/{}",
        ctl.url(),
        v1_layer,
        v2.layers[0].diff_id
    );
    let patch_len = ctl
        .get_delta(&url)
        .await?
        .error_for_status()?
        .bytes()
        .await?
        .len();
    let patch = patch_files(&ctl).pop().expect("a cached patch");
    let mut bytes = std::fs::read(&patch)?;
    let last = bytes.len() - 10;
    bytes[last] ^= 0x55;
    std::fs::write(&patch, &bytes)?;
    client.deploy("demo@2", &devices).await?;
    wait_converged(&client, &agent.id, "2").await?;
    running_app(&agent.data_dir, "2").await?;
    assert!(patch_len > 0);
    assert!(
        agent.log().contains("falling back to the full blob"),
        "{}",
        agent.log()
    );

    // v3: a data layer unrelated to the layer at its position in v2: no
    // delta smaller than the blob, 404, full blob
    let v2_layer = v2.layers[0].diff_id.clone();
    let v3 = two_layer_release(&client, tmp.path(), "two", "v3", "3", &noise(1 << 20, 99)).await?;
    let resp = ctl
        .get_delta(&format!(
            "{}/v1/deltas/{}/{}",
            ctl.url(),
            v2_layer,
            v3[0].diff_id
        ))
        .await?;
    assert_eq!(resp.status().as_u16(), 404, "no delta worth sending");
    client.deploy("demo@3", &devices).await?;
    wait_converged(&client, &agent.id, "3").await?;
    running_app(&agent.data_dir, "3").await?;

    // only what the current and previous releases need is kept
    let bases = std::fs::read_dir(agent.data_dir.join("bases"))?.count();
    assert_eq!(bases, 3, "bases of v3 (two layers) and v2 (one) only");
    assert_eq!(
        std::fs::read_dir(agent.data_dir.join("downloads"))?.count(),
        0,
        "no partial left"
    );
    // (Beside each rootfs, an overlay one has its `<id>.overlay` state.)
    let rootfs: Vec<String> = std::fs::read_dir(agent.data_dir.join("rootfs"))?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<Result<_, _>>()?;
    let images = rootfs.iter().filter(|n| n.len() == 64).count();
    assert_eq!(images, 2, "rootfs of v3 and v2 only: {rootfs:?}");
    assert_eq!(
        std::fs::read_dir(agent.data_dir.join("layers"))?.count(),
        3,
        "unpacked layers of v3 and v2 only"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_layer_that_moved_position_finds_its_base_by_shared_paths() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let ctl = Controller::start(&tmp.path().join("ctl"))?;
    let client = ctl.client();
    let agent = Agent::start(tmp.path(), "mv-1", &ctl.broker_url(), &ctl.url())?;
    let devices = vec![agent.id.clone()];
    let mut data = noise(2 << 20, 11);
    let v1 = two_layer_release(&client, tmp.path(), "moved", "v1", "1", &data).await?;
    client.deploy("demo@1", &devices).await?;
    wait_converged(&client, &agent.id, "1").await?;

    // v2 puts a new layer first: the data layer moves from 0 to 1
    data[4096..4200].fill(1);
    let extra = client
        .upload_layer(tar_of_file("etc/extra.conf", b"extra=1\n")?)
        .await?;
    let v2 = two_layer_release(&client, tmp.path(), "moved-tmp", "v2", "2", &data).await?;
    let layers = vec![extra, v2[0].clone(), v2[1].clone()];
    let config = client
        .images()
        .await?
        .into_iter()
        .find(|i| i.name == "moved")
        .expect("v1 image")
        .config;
    client.put_image("moved", "v2", layers, config).await?;
    let compose =
        "services:\n  app:\n    image: moved:v2\n    command: [\"--interval-ms\", \"100\"]\n";
    client.create_release("demo", "2b", compose).await?;
    client.deploy("demo@2b", &devices).await?;
    wait_converged(&client, &agent.id, "2b").await?;
    running_app(&agent.data_dir, "2").await?;
    let log = agent.log();
    let data_delta = format!(
        "layer rebuilt from delta from={} to={}",
        v1[0].diff_id, v2[0].diff_id
    );
    assert!(
        log.contains(&data_delta),
        "the moved data layer came as a delta from its old self:\n{log}"
    );
    // The path list came once, compressed, and is cached on the device.
    let cached = agent
        .data_dir
        .join(format!("layer-paths/{}.json", v2[0].diff_id.hex()));
    let cached: Vec<String> = serde_json::from_slice(&std::fs::read(&cached)?)?;
    assert!(
        cached.iter().any(|p| p.ends_with("data/blob.bin")),
        "{cached:?}"
    );
    let url = format!("{}/v1/layers/{}/paths", ctl.url(), v2[0].diff_id);
    let http = reqwest::Client::new();
    let packed = http
        .get(&url)
        .header("accept-encoding", "zstd")
        .send()
        .await?;
    assert_eq!(packed.headers()["content-encoding"], "zstd");
    let packed = packed.bytes().await?;
    let plain = http.get(&url).send().await?.bytes().await?;
    assert_eq!(zstd::decode_all(&packed[..])?, plain.to_vec());
    Ok(())
}

fn tar_of_file(path: &str, body: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(body.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    b.append_data(&mut h, path, body)?;
    Ok(b.into_inner()?)
}
