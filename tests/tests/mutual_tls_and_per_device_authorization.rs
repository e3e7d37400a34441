//! The secure controller (HTTPS, MQTT over mutual TLS through the
//! authorizing front of the embedded broker, operator tokens): devices
//! provisioned with `petrel device provision` update; a hostile client
//! holding another device's valid certificate can neither take over a
//! session, read another device's desired state, forge one, nor forge a
//! report; `petrel device revoke` cuts a device off at once; API calls
//! without the right token get 401/403.

use petrel_protocol::codec::{decode_desired_trusted, Trust};
use petrel_protocol::topics::{topic, Channel};
use petrel_protocol::{Desired, Limits, PublicKey};
use petrel_tests::hostile::{self, Holder};
use petrel_tests::*;
use std::time::Duration;

const WATCH: Duration = Duration::from_secs(3);

#[tokio::test(flavor = "multi_thread")]
async fn provisioned_devices_update_over_mtls_and_a_device_certificate_gets_nothing_else(
) -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let ctl = Controller::secure(&tmp.path().join("ctl"), None)?;
    let pi1 = Agent::provisioned(tmp.path(), "pi-1", &ctl, "")?;
    let pi2 = Agent::provisioned(tmp.path(), "pi-2", &ctl, "")?;
    let client = ctl.client();
    run_demo_v1(&client, tmp.path(), &pi1).await?;
    let ca = ctl.ca_path();
    let pi2_dir = pi2.data_dir.join("identity");
    let (cert, key) = (pi2_dir.join("device.pem"), pi2_dir.join("device.key"));
    let as_pi2 = || Holder {
        cert: &cert,
        key: &key,
    };
    let port = ctl.mqtt_port;

    // no certificate: no connection
    let refused = hostile::connect(hostile::options("x", port, &ca, None)?).await;
    assert!(refused.is_err(), "a client without a certificate connected");

    // pi-2's certificate cannot take over pi-1's session
    let takeover = hostile::connect(hostile::options("pi-1", port, &ca, Some(as_pi2()))?).await;
    let why = takeover.err().expect("pi-2 connected as pi-1");
    assert!(
        why.contains("NotAuthorized") || why.contains("refused"),
        "{why}"
    );

    // nor read pi-1's desired state (closed, nothing delivered)
    let (c, mut ev) = hostile::connect(hostile::options("pi-2", port, &ca, Some(as_pi2()))?)
        .await
        .map_err(anyhow::Error::msg)?;
    let seen =
        hostile::subscribe_and_watch(&c, &mut ev, &topic("pi-1", Channel::Desired), WATCH).await;
    assert!(
        seen.received.is_empty() && seen.closed.is_some(),
        "read another device's desired state"
    );
    // nor read pi-1's log requests, nor answer them; pi-1 answers its own
    for channel in [Channel::LogsRequest, Channel::Logs] {
        let (c, mut ev) = hostile::connect(hostile::options("pi-2", port, &ca, Some(as_pi2()))?)
            .await
            .map_err(anyhow::Error::msg)?;
        let t = topic("pi-1", channel);
        let seen = match channel {
            Channel::LogsRequest => hostile::subscribe_and_watch(&c, &mut ev, &t, WATCH).await,
            _ => hostile::publish_and_watch(&c, &mut ev, &t, b"{}".to_vec(), WATCH).await,
        };
        assert!(
            seen.received.is_empty() && seen.closed.is_some(),
            "pi-2 used pi-1's {channel:?} topic"
        );
    }
    let reply = client.device_logs("pi-1", "app", 3).await?;
    assert!(reply.error.is_none() && !reply.text.is_empty(), "{reply:?}");
    let (c, mut ev) = hostile::connect(hostile::options("pi-2", port, &ca, Some(as_pi2()))?)
        .await
        .map_err(anyhow::Error::msg)?;
    let seen = hostile::subscribe_and_watch(&c, &mut ev, "#", WATCH).await;
    assert!(
        seen.received.is_empty() && seen.closed.is_some(),
        "subscribed to #"
    );

    // nor publish a desired state (retained, high generation) for pi-1
    let forged = br#"{"schema":1,"generation":999999}"#.to_vec();
    let (c, mut ev) = hostile::connect(hostile::options("pi-2", port, &ca, Some(as_pi2()))?)
        .await
        .map_err(anyhow::Error::msg)?;
    let seen =
        hostile::publish_and_watch(&c, &mut ev, &topic("pi-1", Channel::Desired), forged, WATCH)
            .await;
    assert!(seen.closed.is_some(), "a forged desired state was accepted");
    // nor a report in pi-1's name
    let (c, mut ev) = hostile::connect(hostile::options("pi-2", port, &ca, Some(as_pi2()))?)
        .await
        .map_err(anyhow::Error::msg)?;
    let seen = hostile::publish_and_watch(
        &c,
        &mut ev,
        &topic("pi-1", Channel::Reported),
        b"{}".to_vec(),
        WATCH,
    )
    .await;
    assert!(
        seen.closed.is_some(),
        "a report in another device's name was accepted"
    );

    // the retained desired state of pi-1 is still the controller's
    let server = Holder {
        cert: &ctl.dir.join("data/pki/server.pem"),
        key: &ctl.dir.join("data/pki/server.key"),
    };
    let (c, mut ev) = hostile::connect(hostile::options("petrel-check", port, &ca, Some(server))?)
        .await
        .map_err(anyhow::Error::msg)?;
    let seen =
        hostile::subscribe_and_watch(&c, &mut ev, &topic("pi-1", Channel::Desired), WATCH).await;
    let (_, payload) = seen
        .received
        .first()
        .expect("pi-1's retained desired state");
    let signer = PublicKey::from_hex(std::fs::read_to_string(ctl.signing_key_path())?.trim())?;
    let trust = Trust::Keys {
        keys: &[signer],
        roots: &[],
        retired: &[],
        now_ms: petrel_controller::now_ms(),
    };
    let desired: Desired =
        decode_desired_trusted(payload, "pi-1", Limits::default(), trust)?.desired;
    assert!(desired.generation < 999_999);
    let view = client.device("pi-1").await?;
    assert_eq!(view.current.map(|c| c.version), Some("1".to_string()));

    // pi-2's certificate cannot make the controller compute deltas pi-2
    // does not need (pi-1's layers)
    let layer = client.release("demo", "1").await?.layers()[0]
        .diff_id
        .clone();
    let delta = format!("/v1/deltas/{layer}/{layer}");
    assert_eq!(status_with(&ctl, &cert, &key, &delta).await?, 403);
    // nor anything of the operators' API
    assert_eq!(status_with(&ctl, &cert, &key, "/v1/devices").await?, 403);

    // revocation: pi-2 is cut off from the broker and the blob server
    assert!(client.device("pi-2").await?.online);
    let out = ctl.cli().args(["device", "revoke", "pi-2"]).output()?;
    succeeded(&out);
    wait_for(Duration::from_secs(20), "pi-2 to go offline", || async {
        client.device("pi-2").await.ok().filter(|d| !d.online)
    })
    .await?;
    let again = hostile::connect(hostile::options("pi-2", port, &ca, Some(as_pi2()))?).await;
    assert!(again.is_err(), "a revoked certificate connected");
    let blob = format!("/v1/blobs/sha256:{}", "0".repeat(64));
    assert_eq!(status_with(&ctl, &cert, &key, &blob).await?, 403);
    assert!(pi1.log().contains("connected") || client.device("pi-1").await?.online);
    Ok(())
}

/// GET `path` over HTTPS presenting a device certificate.
async fn status_with(
    ctl: &Controller,
    cert: &std::path::Path,
    key: &std::path::Path,
    path: &str,
) -> anyhow::Result<u16> {
    let tls = petrel_tls::client_config(
        &std::fs::read_to_string(ctl.ca_path())?,
        Some((
            &std::fs::read_to_string(cert)?,
            &std::fs::read_to_string(key)?,
        )),
    )?;
    let http = reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .build()?;
    let url = format!("{}{path}", ctl.url());
    Ok(http.get(url).send().await?.status().as_u16())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_api_answers_401_without_a_token_and_403_to_a_role_too_small() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let ctl = Controller::secure(&tmp.path().join("ctl"), None)?;
    let no_token = ctl
        .cli()
        .env_remove("PETREL_TOKEN")
        .arg("devices")
        .output()?;
    failed_saying(&no_token, &["401", "PETREL_TOKEN"]);
    let created = ctl
        .cli()
        .args(["token", "create", "--role", "viewer", "--name", "wall"])
        .output()?;
    let viewer = succeeded(&created).trim().to_string();
    let stored = std::fs::read_to_string(ctl.dir.join("data/auth/tokens.json"))?;
    assert!(!stored.contains(&viewer), "the token is stored in clear");
    let read = ctl
        .cli()
        .env("PETREL_TOKEN", &viewer)
        .arg("devices")
        .output()?;
    succeeded(&read);
    let deploy = ctl
        .cli()
        .env("PETREL_TOKEN", &viewer)
        .args(["deploy", "demo@1", "--device", "pi-1", "--allow-new"])
        .output()?;
    failed_saying(&deploy, &["403", "needs operator"]);
    let rotate = ctl
        .cli()
        .env("PETREL_TOKEN", &viewer)
        .args(["key", "rotate"])
        .output()?;
    failed_saying(&rotate, &["403", "needs admin"]);
    // plaintext to the TLS port is refused, not served
    let plain = reqwest::get(ctl.url().replace("https://", "http://")).await;
    assert!(plain.is_err() || !plain?.status().is_success());
    Ok(())
}
