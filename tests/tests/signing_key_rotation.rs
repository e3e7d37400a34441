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
