//! External-broker mode, secured: `petrel ca init` makes the fleet CA,
//! `petrel broker mosquitto-config` the Mosquitto configuration (mutual
//! TLS, identity from the certificate, per-device ACL); a real Mosquitto
//! runs it, the controller and provisioned agents connect with their
//! certificates and a release rolls out; a device's log tail is asked and
//! answered through the ACL; a hostile client holding another device's
//! valid certificate reads nothing (its log requests included) and forges
//! nothing.

use petrel_protocol::topics::{topic, Channel};
use petrel_tests::hostile::{self, Holder};
use petrel_tests::*;
use std::process::{Command, Stdio};
use std::time::Duration;

const WATCH: Duration = Duration::from_secs(3);

#[tokio::test(flavor = "multi_thread")]
async fn a_fleet_on_mosquitto_with_the_generated_config_updates_and_refuses_a_hostile_device(
) -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    // Mosquitto reads the CA and CRL as its own user
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755))?;
    let ctl_dir = tmp.path().join("ctl");
    let data = ctl_dir.join("data");
    let petrel = |args: &[&str]| {
        let out = Command::new(bin("petrel"))
            .args(args)
            .output()
            .expect("petrel runs");
        succeeded(&out)
    };
    petrel(&[
        "ca",
        "init",
        "--data",
        data.to_str().unwrap(),
        "--name",
        "localhost",
        "--ip",
        "127.0.0.1",
    ]);
    let port = free_port();
    let conf_dir = tmp.path().join("mosquitto");
    let printed = petrel(&[
        "broker",
        "mosquitto-config",
        "--data",
        data.to_str().unwrap(),
        "--port",
        &port.to_string(),
        "--out",
        conf_dir.to_str().unwrap(),
        "--name",
        "localhost",
        "--ip",
        "127.0.0.1",
    ]);
    assert!(
        printed.contains("require_certificate true")
            && printed.contains("use_identity_as_username true")
    );
    let _mosquitto = MosquittoProcess::start(&conf_dir, port)?;

    let ctl = Controller::secure(&ctl_dir, Some(format!("mqtts://127.0.0.1:{port}")))?;
    let pi1 = Agent::provisioned(tmp.path(), "pi-1", &ctl, "")?;
    let pi2 = Agent::provisioned(tmp.path(), "pi-2", &ctl, "")?;
    let client = ctl.client();
    run_demo_v1(&client, tmp.path(), &pi1).await?;
    wait_for(Duration::from_secs(30), "pi-2 online", || async {
        client.device("pi-2").await.ok().filter(|d| d.online)
    })
    .await?;

    let ca = ctl.ca_path();
    let dir = pi2.data_dir.join("identity");
    let (cert, key) = (dir.join("device.pem"), dir.join("device.key"));
    let as_pi2 = || Holder {
        cert: &cert,
        key: &key,
    };
    // no certificate: refused
    assert!(hostile::connect(hostile::options("x", port, &ca, None)?)
        .await
        .is_err());
    // with pi-2's certificate: nothing of anyone else's is delivered
    let (c, mut ev) = hostile::connect(hostile::options("pi-2", port, &ca, Some(as_pi2()))?)
        .await
        .map_err(anyhow::Error::msg)?;
    let seen = hostile::subscribe_and_watch(&c, &mut ev, "petrel/#", WATCH).await;
    let foreign: Vec<_> = seen
        .received
        .iter()
        .filter(|(t, _)| !t.contains("/pi-2/"))
        .collect();
    assert!(
        foreign.is_empty(),
        "read {:?}",
        foreign.iter().map(|f| &f.0).collect::<Vec<_>>()
    );
    // pi-2 does not see the log requests the controller sends pi-1, and
    // pi-1 answers them through Mosquitto's ACL
    let (c, mut ev) = hostile::connect(hostile::options("pi-2", port, &ca, Some(as_pi2()))?)
        .await
        .map_err(anyhow::Error::msg)?;
    let spy = topic("pi-1", Channel::LogsRequest);
    let (seen, reply) = tokio::join!(
        hostile::subscribe_and_watch(&c, &mut ev, &spy, WATCH),
        async {
            tokio::time::sleep(Duration::from_millis(500)).await;
            client.device_logs("pi-1", "app", 3).await
        }
    );
    let reply = reply?;
    assert!(reply.error.is_none() && !reply.text.is_empty(), "{reply:?}");
    assert!(
        seen.received.is_empty(),
        "pi-2 read pi-1's log requests: {:?}",
        seen.received
    );
    // a forged desired state and a forged report for pi-1 are dropped
    let (c, mut ev) = hostile::connect(hostile::options("pi-2", port, &ca, Some(as_pi2()))?)
        .await
        .map_err(anyhow::Error::msg)?;
    hostile::publish_and_watch(
        &c,
        &mut ev,
        &topic("pi-1", Channel::Desired),
        b"{\"generation\":999999}".to_vec(),
        WATCH,
    )
    .await;
    hostile::publish_and_watch(
        &c,
        &mut ev,
        &topic("pi-1", Channel::Reported),
        b"{}".to_vec(),
        WATCH,
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let view = client.device("pi-1").await?;
    assert!(view.online, "pi-1 was knocked offline");
    assert_eq!(view.current.map(|c| c.version), Some("1".to_string()));
    assert!(
        !pi1.log().contains("999999"),
        "pi-1 received the forged desired state"
    );
    let events = client.events("pi-1").await?;
    assert!(
        events
            .iter()
            .all(|e| !format!("{:?}", e.kind).contains("Rejected")),
        "pi-1 saw a forged message: {events:?}"
    );
    Ok(())
}

/// Mosquitto run with a generated configuration.
struct MosquittoProcess(std::process::Child);

impl MosquittoProcess {
    fn start(conf_dir: &std::path::Path, port: u16) -> anyhow::Result<MosquittoProcess> {
        let exe = ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .unwrap_or("mosquitto");
        let log = std::fs::File::create(conf_dir.join("mosquitto.log"))?;
        let child = Command::new(exe)
            .arg("-c")
            .arg(conf_dir.join("mosquitto.conf"))
            .stdout(log.try_clone()?)
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()?;
        wait_listening(&format!("127.0.0.1:{port}"), Duration::from_secs(10))?;
        Ok(MosquittoProcess(child))
    }
}

impl Drop for MosquittoProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
