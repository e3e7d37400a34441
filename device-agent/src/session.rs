//! The agent's MQTT session: subscribes to its desired and logs-request
//! topics, announces presence (`online` retained, `offline` as last
//! will), and publishes reports, events and log replies.
//!
//! rumqttc reconnects while polled but does not resubscribe, so every
//! ConnAck resubscribes and re-sends the events still in the persisted
//! outbox (the controller drops duplicates by sequence number).

use crate::store::AgentStore;
use petrel_protocol::topics::{self, Channel};
use petrel_protocol::{encode, Event, LogReply, Reported, Status, SCHEMA};
use rumqttc::{AsyncClient, Event as MqttEvent, LastWill, MqttOptions, Outgoing, Packet, QoS};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

/// What the session tells the driver.
#[derive(Debug)]
pub enum Incoming {
    /// (Re)connected: the driver re-publishes its reported state.
    Connected,
    /// A payload on this device's desired topic.
    Desired(Vec<u8>),
    /// A payload on this device's logs-request topic.
    LogRequest(Vec<u8>),
}

/// Publishing side of the session, shared by the driver's tasks.
#[derive(Clone)]
pub struct Publisher {
    client: AsyncClient,
    device_id: String,
    /// Event seq (or None) of each publish, in the order the event loop
    /// sends them, to map packet ids to outbox entries.
    order: Arc<Mutex<VecDeque<Option<u64>>>>,
}

impl Publisher {
    fn publish(&self, channel: Channel, retain: bool, payload: Vec<u8>, seq: Option<u64>) {
        let topic = topics::topic(&self.device_id, channel);
        let mut order = self.order.lock().unwrap_or_else(|e| e.into_inner());
        match self
            .client
            .try_publish(topic, QoS::AtLeastOnce, retain, payload)
        {
            Ok(()) => order.push_back(seq),
            Err(e) => tracing::warn!(error = %e, "publish queue full; will retry on reconnect"),
        }
    }

    pub fn report(&self, r: &Reported) {
        self.publish(Channel::Reported, true, encode(r), None);
    }

    /// Publishes the answer to a log request (not retained: it is for the
    /// one request waiting for it).
    pub fn logs(&self, reply: &LogReply) {
        self.publish(Channel::Logs, false, encode(reply), None);
    }

    /// Publishes an event already stored in the outbox.
    pub fn event(&self, e: &Event) {
        self.publish(Channel::Events, false, encode(e), Some(e.seq));
    }
}

fn status(device_id: &str, online: bool) -> Vec<u8> {
    encode(&Status {
        schema: SCHEMA,
        device_id: device_id.to_string(),
        online,
    })
}

/// The session's background task, stopped when this is dropped: an agent
/// embedded in a process (the simulator's virtual devices) leaves no
/// connection behind when its future is dropped.
pub struct SessionTask(tokio::task::JoinHandle<()>);

impl Drop for SessionTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Connects (in the background) and returns the publisher, the stream of
/// incoming messages, and the task to hold while the session is wanted.
pub fn start(
    device_id: &str,
    broker: &petrel_protocol::BrokerUrl,
    tls: Option<petrel_tls::rustls::ClientConfig>,
    max_message: usize,
    store: AgentStore,
) -> (Publisher, mpsc::Receiver<Incoming>, SessionTask) {
    // the client id is the device id: with TLS, the broker (front or
    // Mosquitto) holds it to the certificate's identity
    let mut opts = MqttOptions::new(device_id, broker.host.clone(), broker.port);
    if let Some(tls) = tls {
        let tls = rumqttc::TlsConfiguration::Rustls(std::sync::Arc::new(tls));
        opts.set_transport(rumqttc::Transport::tls_with_config(tls));
    }
    if let Some(user) = &broker.username {
        opts.set_credentials(user.clone(), broker.password.clone().unwrap_or_default());
    }
    opts.set_keep_alive(Duration::from_secs(10));
    opts.set_clean_session(true);
    // the transport admits more than the message limit, so an oversized
    // desired state is rejected by `decode` with a clear event rather than
    // by a dropped connection (and a reconnect loop on the retained copy)
    opts.set_max_packet_size(max_message * 4 + 4096, max_message + 4096);
    opts.set_last_will(LastWill::new(
        topics::topic(device_id, Channel::Status),
        status(device_id, false),
        QoS::AtLeastOnce,
        true,
    ));
    let (client, eventloop) = AsyncClient::new(opts, 1024);
    let publisher = Publisher {
        client,
        device_id: device_id.to_string(),
        order: Default::default(),
    };
    let (tx, rx) = mpsc::channel(64);
    let task = tokio::spawn(run(eventloop, publisher.clone(), store, tx));
    (publisher, rx, SessionTask(task))
}

async fn run(
    mut eventloop: rumqttc::EventLoop,
    publisher: Publisher,
    store: AgentStore,
    tx: mpsc::Sender<Incoming>,
) {
    let desired_topic = topics::topic(&publisher.device_id, Channel::Desired);
    let logs_topic = topics::topic(&publisher.device_id, Channel::LogsRequest);
    let mut inflight: HashMap<u16, u64> = HashMap::new();
    let mut attempt = 0;
    loop {
        let ev = eventloop.poll().await;
        match ev {
            Ok(MqttEvent::Incoming(Packet::ConnAck(_))) => {
                attempt = 0;
                inflight.clear();
                publisher
                    .order
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clear();
                on_connect(&publisher, &store, [&desired_topic, &logs_topic]).await;
                if tx.send(Incoming::Connected).await.is_err() {
                    return;
                }
            }
            Ok(MqttEvent::Incoming(Packet::Publish(p))) if p.topic == desired_topic => {
                if tx
                    .send(Incoming::Desired(p.payload.to_vec()))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            Ok(MqttEvent::Incoming(Packet::Publish(p))) if p.topic == logs_topic => {
                if tx
                    .send(Incoming::LogRequest(p.payload.to_vec()))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            Ok(MqttEvent::Outgoing(Outgoing::Publish(pkid))) => {
                let seq = publisher
                    .order
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .pop_front();
                if let Some(Some(seq)) = seq {
                    inflight.insert(pkid, seq);
                }
            }
            Ok(MqttEvent::Incoming(Packet::PubAck(ack))) => {
                if let Some(seq) = inflight.remove(&ack.pkid) {
                    let _ = store.ack_event(seq);
                }
            }
            Ok(_) => {}
            Err(e) => {
                let wait = crate::retry::reconnect_backoff(attempt);
                attempt += 1;
                tracing::debug!(error = %e, "broker unreachable; retrying in {wait:?}");
                tokio::time::sleep(wait).await;
            }
        }
    }
}

async fn on_connect(publisher: &Publisher, store: &AgentStore, subscriptions: [&str; 2]) {
    for topic in subscriptions {
        if let Err(e) = publisher.client.try_subscribe(topic, QoS::AtLeastOnce) {
            tracing::warn!(error = %e, %topic, "subscribe failed");
        }
    }
    publisher.publish(
        Channel::Status,
        true,
        status(&publisher.device_id, true),
        None,
    );
    for e in store.pending_events() {
        publisher.event(&e);
    }
}
