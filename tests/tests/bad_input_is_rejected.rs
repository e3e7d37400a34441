//! Bad input never breaks a device: malformed JSON, an unknown schema, an
//! oversized message, a blob with the wrong digest, a truncated blob, and
//! layers with `../` or absolute paths are each rejected with a clear
//! error event, nothing is half-applied, and the current release keeps
//! running.

use anyhow::Context;
use petrel_protocol::topics::{topic, Channel};
use petrel_protocol::{EventKind, ImageConfig, Phase};
use petrel_tests::*;
use std::path::Path;

fn hostile_tar(name: &str) -> Vec<u8> {
    let mut h = tar::Header::new_gnu();
    let bytes = name.as_bytes();
    h.as_gnu_mut().expect("gnu header").name[..bytes.len()].copy_from_slice(bytes);
    h.set_size(5);
    h.set_mode(0o644);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_cksum();
    let mut out = h.as_bytes().to_vec();
    out.extend_from_slice(b"evil\n");
    out.resize(out.len() + 507 + 1024, 0);
    out
}

async fn hostile_release(ctl: &Controller, version: &str, entry: &str) -> anyhow::Result<()> {
    let client = ctl.client();
    let layer = client.upload_layer(hostile_tar(entry)).await?;
    let config = ImageConfig {
        entrypoint: vec!["/app/sample-app".into()],
        ..Default::default()
    };
    client
        .put_image("hostile", version, vec![layer], config)
        .await?;
    let compose = format!("services:\n  app:\n    image: hostile:{version}\n");
    client.create_release("demo", version, &compose).await?;
    Ok(())
}

fn blob_file(ctl: &Controller, digest: &petrel_protocol::Digest) -> std::path::PathBuf {
    ctl.dir.join("data/blobs/sha256").join(digest.hex())
}

async fn expect_failure(
    ctl: &Controller,
    agent: &Agent,
    version: &str,
    kind: EventKind,
    needle: &str,
    v1_pid: u32,
) -> anyhow::Result<()> {
    let client = ctl.client();
    let seq = last_seq(&client, &agent.id).await;
    if kind == EventKind::UpdateFailed {
        client
            .deploy(&format!("demo@{version}"), std::slice::from_ref(&agent.id))
            .await?;
    }
    let event = wait_event(&client, &agent.id, kind, seq)
        .await
        .with_context(|| format!("agent log:\n{}", agent.log_tail(30)))?;
    assert!(
        event.message.contains(needle),
        "event {:?} should mention {needle:?}",
        event.message
    );
    // the current release still runs, untouched
    assert!(pid_alive(v1_pid), "v1 app died after: {}", event.message);
    assert_eq!(running_app(&agent.data_dir, "1").await?, v1_pid);
    let views = client.devices().await?;
    let view = views
        .iter()
        .find(|v| v.id == agent.id)
        .expect("device listed");
    assert_eq!(view.current.as_ref().map(|c| c.version.as_str()), Some("1"));
    if kind == EventKind::UpdateFailed {
        let view = wait_for(CONVERGE, "a failed report", || async {
            client
                .devices()
                .await
                .ok()?
                .into_iter()
                .find(|v| v.id == agent.id && v.phase == Phase::Failed)
        })
        .await?;
        assert!(view.last_error.as_deref().unwrap_or("").contains(needle));
    }
    Ok(())
}

fn rootfs_count(data_dir: &Path) -> usize {
    std::fs::read_dir(data_dir.join("rootfs"))
        .map(|d| d.count())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_is_rejected_with_clear_events_and_the_current_release_keeps_running(
) -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let ctl = Controller::start(&tmp.path().join("ctl"))?;
    let client = ctl.client();
    let mut agent = Agent::start(tmp.path(), "x-1", &ctl.broker_url(), &ctl.url())?;
    let v1_pid = run_demo_v1(&client, tmp.path(), &agent).await?;
    let desired_topic = topic(&agent.id, Channel::Desired);

    // malformed JSON, unknown schema, oversized message on the desired topic
    publish_raw(ctl.mqtt_port, &desired_topic, b"{not json".to_vec()).await?;
    expect_failure(
        &ctl,
        &agent,
        "1",
        EventKind::DesiredRejected,
        "malformed JSON",
        v1_pid,
    )
    .await?;
    publish_raw(
        ctl.mqtt_port,
        &desired_topic,
        br#"{"schema":99,"payload":"{}"}"#.to_vec(),
    )
    .await?;
    expect_failure(
        &ctl,
        &agent,
        "1",
        EventKind::DesiredRejected,
        "unsupported schema version 99",
        v1_pid,
    )
    .await?;
    publish_raw(ctl.mqtt_port, &desired_topic, vec![b' '; 1536 * 1024]).await?;
    expect_failure(
        &ctl,
        &agent,
        "1",
        EventKind::DesiredRejected,
        "exceeds the limit",
        v1_pid,
    )
    .await?;

    // a blob whose bytes do not match its digest
    // (a data layer sharing nothing with v1: no delta, the blob is fetched)
    let v3 = two_layer_release(&client, tmp.path(), "bad", "v3", "3", &noise(256 << 10, 3)).await?;
    let blob = blob_file(&ctl, &v3[0].digest);
    let mut bytes = std::fs::read(&blob)?;
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&blob, &bytes)?;
    expect_failure(
        &ctl,
        &agent,
        "3",
        EventKind::UpdateFailed,
        "failed verification",
        v1_pid,
    )
    .await?;

    // a blob truncated on the server
    let v4 = two_layer_release(&client, tmp.path(), "bad", "v4", "4", &noise(256 << 10, 4)).await?;
    let blob = blob_file(&ctl, &v4[0].digest);
    let len = std::fs::metadata(&blob)?.len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&blob)?
        .set_len(len / 2)?;
    expect_failure(
        &ctl,
        &agent,
        "4",
        EventKind::UpdateFailed,
        "truncated",
        v1_pid,
    )
    .await?;

    // layers with `../` and absolute paths
    let rootfs_before = rootfs_count(&agent.data_dir);
    hostile_release(&ctl, "5", "../escaped-file").await?;
    expect_failure(
        &ctl,
        &agent,
        "5",
        EventKind::UpdateFailed,
        "../escaped-file",
        v1_pid,
    )
    .await?;
    hostile_release(&ctl, "6", "/abs-file").await?;
    expect_failure(
        &ctl,
        &agent,
        "6",
        EventKind::UpdateFailed,
        "/abs-file",
        v1_pid,
    )
    .await?;
    assert!(
        !agent.data_dir.join("escaped-file").exists()
            && !agent.data_dir.join("layers/../escaped-file").exists()
    );
    assert!(!Path::new("/abs-file").exists());
    assert_eq!(
        rootfs_count(&agent.data_dir),
        rootfs_before,
        "no rootfs was assembled from a rejected layer"
    );

    // and the device still updates normally afterwards
    assert!(agent.is_alive(), "{}", agent.log());
    sample_image(&client, tmp.path(), "v7", "7", &[]).await?;
    sample_release(&client, "7", "v7").await?;
    client
        .deploy("demo@7", std::slice::from_ref(&agent.id))
        .await?;
    wait_converged(&client, &agent.id, "7").await?;
    running_app(&agent.data_dir, "7").await?;
    assert!(!pid_alive(v1_pid));
    Ok(())
}
