//! A deploy to a large fleet: the API answers once every desired state is
//! durable and publishes in the background, and whatever order two quick
//! deploys are published in, the message the broker retains for each
//! device is its latest desired state; the fleet listing pages.

use petrel_protocol::topics::{topic, Channel};
use petrel_protocol::{Desired, Envelope};
use petrel_tests::*;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const DEVICES: usize = 1_000;

/// Each device's desired state as published, read by subscribing to each
/// device's own topic (the retained message first), until `enough` holds
/// for every device's latest.
async fn published(
    port: u16,
    reader: &str,
    devices: &[String],
    enough: impl Fn(&Desired) -> bool,
) -> anyhow::Result<BTreeMap<String, Desired>> {
    let mut opts = MqttOptions::new(reader, "127.0.0.1", port);
    opts.set_max_packet_size(8 << 20, 8 << 20);
    let (client, mut events) = AsyncClient::new(opts, devices.len() + 10);
    for id in devices {
        client
            .subscribe(topic(id, Channel::Desired), QoS::AtLeastOnce)
            .await?;
    }
    let mut seen = BTreeMap::new();
    let read = async {
        while seen.len() < devices.len() || !seen.values().all(&enough) {
            if let Event::Incoming(Packet::Publish(p)) = events.poll().await? {
                let envelope: Envelope = serde_json::from_slice(&p.payload)?;
                let desired: Desired = serde_json::from_str(&envelope.payload)?;
                seen.insert(desired.device_id.clone(), desired);
            }
        }
        anyhow::Ok(())
    };
    tokio::time::timeout(Duration::from_secs(60), read)
        .await
        .map_err(|_| anyhow::anyhow!("not all published in time: {seen:?}"))??;
    Ok(seen)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deploy_to_a_thousand_devices_answers_at_once_and_the_latest_state_is_retained(
) -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let ctl = Controller::start(&tmp.path().join("ctl"))?;
    let client = ctl.client();
    sample_image(&client, tmp.path(), "v1", "1", &[]).await?;
    sample_release(&client, "1", "v1").await?;
    sample_release(&client, "2", "v1").await?;
    let devices: Vec<String> = (0..DEVICES).map(|i| format!("many-{i:04}")).collect();

    let t = Instant::now();
    let first = client.deploy("demo@1", &devices).await?;
    let first_s = t.elapsed().as_secs_f64();
    // the second deploy lands while the first may still be publishing
    let second = client.deploy("demo@2", &devices).await?;
    println!("deploy to {DEVICES} devices answered in {first_s:.2} s");
    assert_eq!(first.len(), DEVICES);
    assert!(second.iter().all(|d| d.generation == 2), "{second:?}");

    // the fleet listing, whole (paged by the client) and a page at a time
    let listed: Vec<String> = client.devices().await?.into_iter().map(|v| v.id).collect();
    assert_eq!(listed, devices, "every device once, in id order");
    let page = client.devices_page(Some("many-0499"), 3).await?;
    let ids: Vec<&str> = page.iter().map(|v| v.id.as_str()).collect();
    assert_eq!(ids, ["many-0500", "many-0501", "many-0502"]);
    assert!(page.iter().all(|v| v.desired_generation == 2), "{page:?}");
    let last = client.devices_page(Some("many-0999"), 3).await?;
    assert!(last.is_empty(), "{last:?}");

    // every 10th device, read back from the broker: once the background
    // publishing is done, a new subscriber is given the latest
    let sample: Vec<String> = devices.iter().step_by(10).cloned().collect();
    let t = Instant::now();
    published(ctl.mqtt_port, "follower", &sample, |d| d.generation == 2).await?;
    println!(
        "both deploys published in {:.2} s",
        t.elapsed().as_secs_f64()
    );
    let got = published(ctl.mqtt_port, "latecomer", &sample, |_| true).await?;
    for id in &sample {
        let d = &got[id];
        let release = d
            .release
            .as_ref()
            .map(|r| format!("{}@{}", r.name, r.version));
        assert_eq!(
            (d.generation, release.as_deref()),
            (2, Some("demo@2")),
            "{id} retains its latest desired state"
        );
    }
    Ok(())
}
