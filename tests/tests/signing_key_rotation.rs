//! Signed desired states across a key rotation: `petrel key rotate` makes
//! a new key endorsed by the old one; a running device and one that was
//! offline during two rotations both trust the new key through the chain
//! and take the next release; the rotated-out key can no longer sign for
//! them.

use petrel_protocol::topics::{topic, Channel};
use petrel_protocol::{Desired, EventKind, SCHEMA};
use petrel_tests::*;

#[tokio::test(flavor = "multi_thread")]
async fn devices_follow_a_rotated_key_and_refuse_the_retired_one() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let ctl = Controller::start(&tmp.path().join("ctl"))?;
    let client = ctl.client();
    let online = Agent::start(tmp.path(), "rot-1", &ctl.broker_url(), &ctl.url())?;
    let mut offline = Agent::start(tmp.path(), "rot-2", &ctl.broker_url(), &ctl.url())?;
    let both = [online.id.clone(), offline.id.clone()];
    sample_image(&client, tmp.path(), "v1", "1", &[]).await?;
    sample_release(&client, "1", "v1").await?;
    client.deploy("demo@1", &both).await?;
    for id in &both {
        wait_converged(&client, id, "1").await?;
    }
    let first = ctl.signing_key()?;

    offline.kill9();
    for _ in 0..2 {
        let out = succeeded(&petrel(&ctl, &["key", "rotate"]));
        assert!(out.contains("signing key rotated"), "{out}");
    }
    let shown = succeeded(&petrel(&ctl, &["key", "show"]));
    assert!(!shown.contains(&first.public().to_hex()), "{shown}");
    sample_image(&client, tmp.path(), "v2", "2", &[]).await?;
    sample_release(&client, "2", "v2").await?;
    client.deploy("demo@2", &both).await?;
    wait_converged(&client, &online.id, "2").await?;
    offline.restart()?;
    wait_converged(&client, &offline.id, "2").await?;
    assert!(online.log().contains("trusting rotated controller keys"));

    // the first key, if stolen, signs nothing these devices take
    let view = client.device(&online.id).await?;
    let now = petrel_controller::now_ms();
    let forged = Desired {
        schema: SCHEMA,
        device_id: online.id.clone(),
        generation: view.desired_generation + 100,
        release: None,
        issued_at_ms: now,
        expires_at_ms: Some(now + 3_600_000),
        window: None,
        lock_override_after_s: None,
        budget: None,
    };
    let seq = last_seq(&client, &online.id).await;
    let payload = petrel_protocol::encode(&first.sign_desired(&forged, &[]));
    publish_raw(ctl.mqtt_port, &topic(&online.id, Channel::Desired), payload).await?;
    let event = wait_event(&client, &online.id, EventKind::DesiredRejected, seq).await?;
    assert!(event.message.contains("rotated out"), "{}", event.message);
    // and a restarted agent still knows it (persisted)
    wait_converged(&client, &online.id, "2").await?;
    Ok(())
}

/// The controller's online key may be stolen: the operator's offline root
/// key (pinned by devices, never sent to the controller) endorses a fresh
/// key; devices take the next release signed by it, and refuse the stolen
/// key from then on, even for a higher generation.
#[tokio::test(flavor = "multi_thread")]
async fn an_offline_root_key_replaces_a_stolen_controller_key() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let ctl = Controller::start(&tmp.path().join("ctl"))?;
    let client = ctl.client();
    let root_file = tmp.path().join("offline/root.key");
    let made = succeeded(&petrel(
        &ctl,
        &["key", "root-init", "--out", root_file.to_str().unwrap()],
    ));
    let root_pub = made
        .split_whitespace()
        .last()
        .expect("the public root key is printed")
        .to_string();
    let root_line = format!("root_key = \"{root_pub}\"\n");
    let agent = Agent::start_with(
        tmp.path(),
        "root-1",
        &ctl.broker_url(),
        &ctl.url(),
        &root_line,
    )?;
    sample_image(&client, tmp.path(), "v1", "1", &[]).await?;
    sample_release(&client, "1", "v1").await?;
    client
        .deploy("demo@1", std::slice::from_ref(&agent.id))
        .await?;
    wait_converged(&client, &agent.id, "1").await?;
    let stolen = ctl.signing_key()?;

    let out = succeeded(&petrel(
        &ctl,
        &["key", "rotate", "--root-key", root_file.to_str().unwrap()],
    ));
    assert!(out.contains("endorsed by root key"), "{out}");
    let controller_files = walk(&ctl.dir)?;
    let root_hex = std::fs::read_to_string(&root_file)?;
    assert!(
        controller_files
            .iter()
            .all(|text| !text.contains(root_hex.trim())),
        "the root key reached the controller's files"
    );
    sample_image(&client, tmp.path(), "v2", "2", &[]).await?;
    sample_release(&client, "2", "v2").await?;
    client
        .deploy("demo@2", std::slice::from_ref(&agent.id))
        .await?;
    wait_converged(&client, &agent.id, "2").await?;

    let view = client.device(&agent.id).await?;
    let now = petrel_controller::now_ms();
    let forged = Desired {
        schema: SCHEMA,
        device_id: agent.id.clone(),
        generation: view.desired_generation + 100,
        release: None,
        issued_at_ms: now,
        expires_at_ms: Some(now + 3_600_000),
        window: None,
        lock_override_after_s: None,
        budget: None,
    };
    let seq = last_seq(&client, &agent.id).await;
    let payload = petrel_protocol::encode(&stolen.sign_desired(&forged, &[]));
    publish_raw(ctl.mqtt_port, &topic(&agent.id, Channel::Desired), payload).await?;
    let event = wait_event(&client, &agent.id, EventKind::DesiredRejected, seq).await?;
    assert!(event.message.contains("rotated out"), "{}", event.message);
    wait_converged(&client, &agent.id, "2").await?;
    Ok(())
}

/// The text of every regular file under `dir`.
fn walk(dir: &std::path::Path) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let ty = entry.file_type()?;
        if ty.is_dir() {
            out.extend(walk(&entry.path())?);
        } else if ty.is_file() {
            out.push(String::from_utf8_lossy(&std::fs::read(entry.path())?).into_owned());
        }
    }
    Ok(out)
}
