//! Bad input never breaks a device: malformed JSON, an unknown schema, an
//! oversized message, a blob with the wrong digest, a truncated blob, and
//! layers with `../` or absolute paths are each rejected with a clear
//! error event, nothing is half-applied, and the current release keeps
//! running. Desired states the controller did not sign (or that expired)
//! are refused too, whatever generation they claim. The controller itself
//! refuses to register an image with a hostile layer (its import audit runs
//! the devices' rules), so the hostile layers reach the device in desired
//! states signed with the controller's key but published around it, as a
//! compromised controller would send them.

use anyhow::Context;
use petrel_protocol::topics::{topic, Channel};
use petrel_protocol::{
    Desired, Envelope, EventKind, ImageConfig, LayerDescriptor, Phase, ReleaseManifest, SCHEMA,
};
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

/// Registers nothing: the controller must refuse an image whose layer
/// devices would refuse, naming the entry. Returns the uploaded layer.
async fn controller_refuses_hostile_image(
    ctl: &Controller,
    entry: &str,
) -> anyhow::Result<petrel_protocol::LayerDescriptor> {
    let client = ctl.client();
    let layer = client.upload_layer(hostile_tar(entry)).await?;
    let err = client
        .put_image("hostile", "1", vec![layer.clone()], ImageConfig::default())
        .await
        .expect_err("the controller registered an image devices would refuse");
    let text = err.to_string();
    assert!(
        text.contains("devices would refuse") && text.contains(entry),
        "{text}"
    );
    Ok(layer)
}

/// Publishes, around the controller, a desired state whose one service
/// runs `base` with its layers replaced by `layer`.
async fn forge_desired(
    ctl: &Controller,
    agent: &Agent,
    base: &ReleaseManifest,
    version: &str,
    layer: LayerDescriptor,
) -> anyhow::Result<()> {
    let mut release = base.clone();
    release.version = version.into();
    for service in release.services.values_mut() {
        service.image.layers = vec![layer.clone()];
    }
    let views = ctl.client().devices().await?;
    let view = views.iter().find(|v| v.id == agent.id).expect("listed");
    let generation = view.desired_generation.max(view.accepted_generation) + 1;
    let desired = desired_state(agent, generation, Some(release), HOUR);
    // signed with the controller's own key: a compromised controller
    let envelope = ctl.signing_key()?.sign_desired(&desired, &[]);
    let payload = petrel_protocol::encode(&envelope);
    publish_raw(ctl.mqtt_port, &topic(&agent.id, Channel::Desired), payload).await
}

const HOUR: i64 = 3_600_000;

/// A desired state for `agent`, expiring `valid_ms` from now (negative:
/// already expired).
fn desired_state(
    agent: &Agent,
    generation: u64,
    release: Option<ReleaseManifest>,
    valid_ms: i64,
) -> Desired {
    let now = petrel_controller::now_ms();
    Desired {
        schema: SCHEMA,
        device_id: agent.id.clone(),
        generation,
        release,
        issued_at_ms: now,
        expires_at_ms: Some(now.saturating_add_signed(valid_ms)),
        window: None,
        lock_override_after_s: None,
        budget: None,
    }
}

fn blob_file(ctl: &Controller, digest: &petrel_protocol::Digest) -> std::path::PathBuf {
    ctl.dir.join("data/blobs/sha256").join(digest.hex())
}

/// What a bad input must cause, and the release that keeps running.
struct Expect<'a> {
    kind: EventKind,
    needle: &'a str,
    /// The version and pid of the app that must survive.
    running: (&'a str, u32),
}

/// Runs `trigger` (a publish, a deploy) and checks the device answered
/// with `expect.kind` naming `expect.needle` while its release kept
/// running untouched.
async fn expect_failure(
    ctl: &Controller,
    agent: &Agent,
    trigger: impl std::future::Future<Output = anyhow::Result<()>>,
    expect: Expect<'_>,
) -> anyhow::Result<()> {
    let client = ctl.client();
    let seq = last_seq(&client, &agent.id).await;
    trigger.await?;
    let event = wait_event(&client, &agent.id, expect.kind, seq)
        .await
        .with_context(|| format!("agent log:\n{}", agent.log_tail(30)))?;
    let (version, pid) = expect.running;
    assert!(
        event.message.contains(expect.needle),
        "event {:?} should mention {:?}",
        event.message,
        expect.needle
    );
    assert!(pid_alive(pid), "the app died after: {}", event.message);
    assert_eq!(running_app(&agent.data_dir, version).await?, pid);
    let views = client.devices().await?;
    let view = views
        .iter()
        .find(|v| v.id == agent.id)
        .expect("device listed");
    assert_eq!(
        view.current.as_ref().map(|c| c.version.as_str()),
        Some(version)
    );
    if expect.kind == EventKind::UpdateFailed {
        let view = wait_for(CONVERGE, "a failed report", || async {
            client
                .devices()
                .await
                .ok()?
                .into_iter()
                .find(|v| v.id == agent.id && v.phase == Phase::Failed)
        })
        .await?;
        assert!(view
            .last_error
            .as_deref()
            .unwrap_or("")
            .contains(expect.needle));
    }
    Ok(())
}

async fn deploy(
    client: &petrel_controller::client::Client,
    release: &str,
    device: &str,
) -> anyhow::Result<()> {
    client.deploy(release, &[device.to_string()]).await?;
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
    let rejected = |needle| Expect {
        kind: EventKind::DesiredRejected,
        needle,
        running: ("1", v1_pid),
    };
    let port = ctl.mqtt_port;
    let publish = |payload: Vec<u8>| publish_raw(port, &desired_topic, payload);
    let malformed = publish(b"{not json".to_vec());
    expect_failure(&ctl, &agent, malformed, rejected("malformed JSON")).await?;
    let schema = publish(br#"{"schema":99,"payload":"{}"}"#.to_vec());
    expect_failure(
        &ctl,
        &agent,
        schema,
        rejected("unsupported schema version 99"),
    )
    .await?;
    let oversized = publish(vec![b' '; 1536 * 1024]);
    expect_failure(&ctl, &agent, oversized, rejected("exceeds the limit")).await?;
    // JSON nested 100,000 deep (under the size limit): an error, not a
    // stack overflow
    let nested = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let nested = publish(nested.into_bytes());
    expect_failure(&ctl, &agent, nested, rejected("malformed JSON")).await?;

    let failed = |needle, running| Expect {
        kind: EventKind::UpdateFailed,
        needle,
        running,
    };
    // a blob whose bytes do not match its digest
    // (a data layer sharing nothing with v1: no delta, the blob is fetched)
    let v3 = two_layer_release(&client, tmp.path(), "bad", "v3", "3", &noise(256 << 10, 3)).await?;
    let blob = blob_file(&ctl, &v3[0].digest);
    let mut bytes = std::fs::read(&blob)?;
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&blob, &bytes)?;
    let deploy3 = deploy(&client, "demo@3", &agent.id);
    let corrupt = failed("failed verification", ("1", v1_pid));
    expect_failure(&ctl, &agent, deploy3, corrupt).await?;

    // a blob truncated on the server
    let v4 = two_layer_release(&client, tmp.path(), "bad", "v4", "4", &noise(256 << 10, 4)).await?;
    let blob = blob_file(&ctl, &v4[0].digest);
    let len = std::fs::metadata(&blob)?.len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&blob)?
        .set_len(len / 2)?;
    let deploy4 = deploy(&client, "demo@4", &agent.id);
    let truncated = failed("truncated", ("1", v1_pid));
    expect_failure(&ctl, &agent, deploy4, truncated).await?;

    // a blob server sending more bytes than the manifest declares
    let v5 =
        two_layer_release(&client, tmp.path(), "bad", "v5", "5", &noise(256 << 10, 50)).await?;
    let blob = blob_file(&ctl, &v5[0].digest);
    let mut grown = std::fs::OpenOptions::new().append(true).open(&blob)?;
    std::io::Write::write_all(&mut grown, &noise(64 << 10, 55))?;
    let deploy5 = deploy(&client, "demo@5", &agent.id);
    let longer = failed("expected at most", ("1", v1_pid));
    expect_failure(&ctl, &agent, deploy5, longer).await?;

    // desired states the controller did not sign, or that expired: a forged
    // high generation is refused, so it cannot lock the device out
    let desired_topic = topic(&agent.id, Channel::Desired);
    let forged = desired_state(&agent, 1_000_000, None, HOUR);
    let unsigned = petrel_protocol::encode(&Envelope::wrap(&forged));
    let stranger = petrel_protocol::SigningKey::from_seed([7; 32]).sign_desired(&forged, &[]);
    let expired = desired_state(&agent, 1_000_000, None, -1);
    let expired = ctl.signing_key()?.sign_desired(&expired, &[]);
    for (payload, why) in [
        (unsigned, "unsigned desired state"),
        (petrel_protocol::encode(&stranger), "does not trust"),
        (petrel_protocol::encode(&expired), "expired"),
    ] {
        let sent = publish_raw(ctl.mqtt_port, &desired_topic, payload);
        expect_failure(&ctl, &agent, sent, rejected(why)).await?;
    }

    // and the device still updates normally afterwards
    assert!(agent.is_alive(), "{}", agent.log());
    sample_image(&client, tmp.path(), "v7", "7", &[]).await?;
    sample_release(&client, "7", "v7").await?;
    deploy(&client, "demo@7", &agent.id).await?;
    wait_converged(&client, &agent.id, "7").await?;
    let v7_pid = running_app(&agent.data_dir, "7").await?;
    assert!(!pid_alive(v1_pid));
    let v7 = client.release("demo", "7").await?;

    // layers with `../` and absolute paths: refused by the controller, and
    // by the device when a desired state carries them anyway
    let rootfs_before = rootfs_count(&agent.data_dir);
    for (version, entry) in [("8", "../escaped-file"), ("9", "/abs-file")] {
        let layer = controller_refuses_hostile_image(&ctl, entry).await?;
        let forged = forge_desired(&ctl, &agent, &v7, version, layer);
        expect_failure(&ctl, &agent, forged, failed(entry, ("7", v7_pid))).await?;
    }
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
    assert!(agent.is_alive(), "{}", agent.log());
    Ok(())
}
