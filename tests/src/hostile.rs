//! An MQTT client that plays a hostile party on a TLS broker: it holds
//! some identity (a real device's certificate, the controller's, or
//! none) and tries what it should not.

use anyhow::Result;
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, QoS, Transport};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// A certificate and key to present (PEM files).
pub struct Holder<'a> {
    pub cert: &'a Path,
    pub key: &'a Path,
}

/// Options for `client_id` on 127.0.0.1:`port` over TLS trusting `ca`.
pub fn options(client_id: &str, port: u16, ca: &Path, who: Option<Holder>) -> Result<MqttOptions> {
    let ca = std::fs::read_to_string(ca)?;
    let pems = match &who {
        Some(h) => Some((
            std::fs::read_to_string(h.cert)?,
            std::fs::read_to_string(h.key)?,
        )),
        None => None,
    };
    let identity = pems.as_ref().map(|(c, k)| (c.as_str(), k.as_str()));
    let tls = petrel_tls::client_config(&ca, identity)?;
    let mut opts = MqttOptions::new(client_id, "127.0.0.1", port);
    opts.set_transport(Transport::tls_with_config(
        rumqttc::TlsConfiguration::Rustls(Arc::new(tls)),
    ));
    opts.set_keep_alive(Duration::from_secs(5));
    opts.set_max_packet_size(8 << 20, 8 << 20);
    Ok(opts)
}

/// Connects; `Err` with the reason if the broker refuses or drops it.
pub async fn connect(opts: MqttOptions) -> Result<(AsyncClient, EventLoop), String> {
    let (client, mut eventloop) = AsyncClient::new(opts, 10);
    let acked = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => return Ok(()),
                Ok(_) => {}
                Err(e) => return Err(e.to_string()),
            }
        }
    })
    .await;
    match acked {
        Ok(Ok(())) => Ok((client, eventloop)),
        Ok(Err(e)) => Err(e),
        Err(_) => Err("no CONNACK within 10 s".into()),
    }
}

/// What a session saw for `wait`: the publishes it received (topic,
/// payload) and whether the broker closed the connection.
pub struct Outcome {
    pub received: Vec<(String, Vec<u8>)>,
    pub closed: Option<String>,
}

/// Polls the session for `wait` (or until the connection drops).
pub async fn watch(eventloop: &mut EventLoop, wait: Duration) -> Outcome {
    let mut out = Outcome {
        received: Vec::new(),
        closed: None,
    };
    let _ = tokio::time::timeout(wait, async {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    out.received.push((p.topic.clone(), p.payload.to_vec()))
                }
                Ok(_) => {}
                Err(e) => {
                    out.closed = Some(e.to_string());
                    return;
                }
            }
        }
    })
    .await;
    out
}

/// Subscribes to `filter` and watches for `wait`.
pub async fn subscribe_and_watch(
    client: &AsyncClient,
    eventloop: &mut EventLoop,
    filter: &str,
    wait: Duration,
) -> Outcome {
    let _ = client.subscribe(filter, QoS::AtLeastOnce).await;
    watch(eventloop, wait).await
}

/// Publishes (retained) and watches for `wait`.
pub async fn publish_and_watch(
    client: &AsyncClient,
    eventloop: &mut EventLoop,
    topic: &str,
    payload: Vec<u8>,
    wait: Duration,
) -> Outcome {
    let _ = client.publish(topic, QoS::AtLeastOnce, true, payload).await;
    watch(eventloop, wait).await
}
