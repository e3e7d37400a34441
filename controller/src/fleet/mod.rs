//! The controller's MQTT session. Publishes every device's desired state
//! (retained, QoS 1) and ingests what devices report; asks devices for
//! service log tails ([`logs`]), whose replies go to the request waiting
//! for them, not to the store.
//!
//! Brokers lose retained messages on restart (rumqttd keeps them in memory)
//! and rumqttc does not resubscribe, so on every ConnAck the session
//! resubscribes and re-publishes all desired states from the store.

pub mod logs;
pub mod publisher;

use crate::keys::Keyring;
use crate::metrics::Metrics;
use crate::monitor::Monitor;
use crate::store::{Presence, Store};
use logs::{LogsError, PendingLogs};
use petrel_protocol::topics::{self, Channel};
use petrel_protocol::{
    decode, encode, BrokerUrl, Event, Limits, LogReply, PublicKey, Reported, Status,
};
use publisher::Publisher;
use rumqttc::{AsyncClient, Event as MqttEvent, MqttOptions, Packet, Publish, QoS};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

/// Handle used by the HTTP API to publish desired states.
#[derive(Clone)]
pub struct Fleet {
    client: AsyncClient,
    keys: Arc<RwLock<Keyring>>,
    publisher: Publisher,
    monitor: Monitor,
    /// Log requests waiting for their reply.
    pending_logs: PendingLogs,
}

/// Largest packet the controller's session reads without dropping the
/// connection (brokers bound what they relay: rumqttd at 2 MiB here).
const MAX_INCOMING_PACKET: usize = 64 * 1024 * 1024;

/// Every stored desired state is re-signed and re-published this often,
/// so none reaches its expiry while it stands.
const REFRESH: Duration = Duration::from_secs(24 * 3600);

impl Fleet {
    /// Publishes `device`'s stored desired state, signed and valid for
    /// [`crate::keys::VALIDITY_MS`], retained, in the background
    /// ([`publisher`]); with none stored, clears the retained message.
    pub fn publish(&self, device: &str) {
        self.publisher.device(device);
        self.monitor.index.touch(device);
    }

    /// Rotates the signing key (endorsed by the current one) and
    /// re-publishes every desired state signed by the new key, with the
    /// endorsement that lets agents trust it.
    pub fn rotate_key(&self, store: &Store) -> Result<PublicKey, String> {
        let public = {
            let mut keys = self.keys.write().unwrap_or_else(PoisonError::into_inner);
            keys.rotate(None).map_err(|e| e.to_string())?
        };
        republish(self, store);
        Ok(public)
    }

    /// A key prepared for a root-endorsed rotation (its public half).
    pub fn prepare_next_key(&self) -> Result<PublicKey, String> {
        let keys = self.keys.read().unwrap_or_else(PoisonError::into_inner);
        keys.prepare_next().map_err(|e| e.to_string())
    }

    /// Installs the prepared key with an offline root's endorsement and
    /// re-publishes every desired state signed by it.
    pub fn install_endorsed_key(
        &self,
        store: &Store,
        endorsement: petrel_protocol::Endorsement,
    ) -> Result<PublicKey, String> {
        let public = {
            let mut keys = self.keys.write().unwrap_or_else(PoisonError::into_inner);
            keys.install_endorsed(endorsement)
                .map_err(|e| e.to_string())?
        };
        republish(self, store);
        Ok(public)
    }

    /// Asks `device` for the last `tail` lines of `service` and waits up
    /// to `timeout` for its answer (an offline device never answers: the
    /// request is not retained).
    pub async fn request_logs(
        &self,
        device: &str,
        service: &str,
        tail: u32,
        timeout: Duration,
    ) -> Result<LogReply, LogsError> {
        let (request, mut ticket) = self.pending_logs.open(device, service, tail)?;
        let topic = topics::topic(device, Channel::LogsRequest);
        let timed_out = || LogsError::Timeout {
            device: device.to_string(),
            secs: timeout.as_secs(),
        };
        // one deadline for both: the publish waits when the session's
        // queue is full
        let deadline = tokio::time::Instant::now() + timeout;
        let publish = self
            .client
            .publish(topic, QoS::AtLeastOnce, false, encode(&request));
        tokio::time::timeout_at(deadline, publish)
            .await
            .map_err(|_| timed_out())?
            .map_err(|e| LogsError::Publish(e.to_string()))?;
        match tokio::time::timeout_at(deadline, &mut ticket.reply).await {
            Ok(Ok(reply)) => Ok(reply),
            _ => Err(timed_out()),
        }
    }

    /// The current public key (what agents pin).
    pub fn public_key(&self) -> PublicKey {
        self.keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .public()
    }
}

/// What the session feeds besides the store.
pub struct Observers {
    pub rollouts: crate::rollouts::Rollouts,
    pub monitor: Monitor,
    pub metrics: Metrics,
}

/// Connects to the broker and spawns the session loop (and the daily
/// refresh of every desired state's signature).
pub fn start(
    broker: &BrokerUrl,
    tls: Option<petrel_tls::rustls::ClientConfig>,
    store: Store,
    limits: Limits,
    keys: Keyring,
    observers: Observers,
) -> Fleet {
    let mut opts = MqttOptions::new("petrel-controller", broker.host.clone(), broker.port);
    if let Some(tls) = tls {
        let tls = rumqttc::TlsConfiguration::Rustls(Arc::new(tls));
        opts.set_transport(rumqttc::Transport::tls_with_config(tls));
    }
    if let Some(user) = &broker.username {
        opts.set_credentials(user.clone(), broker.password.clone().unwrap_or_default());
    }
    opts.set_keep_alive(Duration::from_secs(10));
    // A persistent session under a fixed identity: what devices publish
    // while the controller is away (stopped, restarting, its link down) is
    // queued by the broker for it instead of being acked to nobody
    // (Mosquitto: up to its max_queued_messages). The embedded broker
    // lives and dies with the controller; devices keep their events in an
    // outbox until the broker has them.
    opts.set_clean_session(false);
    // Incoming: far above what devices may send, so one oversized message
    // (retained, it would come back on every reconnect) is dropped by
    // `ingest` instead of failing the connection. Outgoing: the limit.
    opts.set_max_packet_size(MAX_INCOMING_PACKET, limits.max_message_bytes + 4096);
    let (client, eventloop) = AsyncClient::new(opts, 1024);
    let keys = Arc::new(RwLock::new(keys));
    let fleet = Fleet {
        publisher: Publisher::start(client.clone(), keys.clone(), store.clone()),
        client,
        keys,
        monitor: observers.monitor.clone(),
        pending_logs: PendingLogs::default(),
    };
    let (ingest_tx, ingest_rx) = tokio::sync::mpsc::unbounded_channel();
    let metrics = observers.metrics.clone();
    tokio::spawn(run(
        eventloop,
        fleet.clone(),
        store.clone(),
        ingest_tx,
        limits,
        metrics,
    ));
    tokio::spawn(ingest_batches(ingest_rx, store.clone(), limits, observers));
    let refresher = fleet.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(REFRESH);
        tick.tick().await; // the first tick is now: on_connect publishes
        loop {
            tick.tick().await;
            republish(&refresher, &store);
        }
    });
    fleet
}

/// The broker session: it only polls, so the controller's own publishes
/// and pings never wait for the store; device messages go to
/// [`ingest_batches`].
async fn run(
    mut eventloop: rumqttc::EventLoop,
    fleet: Fleet,
    store: Store,
    ingest: tokio::sync::mpsc::UnboundedSender<Publish>,
    limits: Limits,
    metrics: Metrics,
) {
    let (msgs_in, msgs_out) = (
        metrics.mqtt_messages.with_label_values(&["in"]),
        metrics.mqtt_messages.with_label_values(&["out"]),
    );
    let mut backoff = Duration::from_millis(100);
    loop {
        match eventloop.poll().await {
            Ok(MqttEvent::Incoming(Packet::ConnAck(_))) => {
                backoff = Duration::from_millis(100);
                tracing::info!("controller connected to broker");
                let fleet = fleet.clone();
                let store = store.clone();
                // resubscribe and re-publish without blocking the poll loop
                tokio::spawn(async move { on_connect(&fleet, &store).await });
            }
            Ok(MqttEvent::Incoming(Packet::Publish(p))) => {
                msgs_in.inc();
                match topics::parse(&p.topic) {
                    Some((id, Channel::Logs)) => deliver_logs(&fleet.pending_logs, id, &p, limits),
                    _ => {
                        let _ = ingest.send(p);
                    }
                }
            }
            Ok(MqttEvent::Outgoing(rumqttc::Outgoing::Publish(_))) => msgs_out.inc(),
            Ok(_) => {}
            Err(e) => {
                // the simulator counts these lines in its report
                tracing::warn!(error = %e, "broker connection lost; retrying in {backoff:?}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

async fn on_connect(fleet: &Fleet, store: &Store) {
    for ch in [
        Channel::Reported,
        Channel::Events,
        Channel::Status,
        Channel::Logs,
    ] {
        let filter = topics::all_devices(ch);
        if let Err(e) = fleet.client.subscribe(filter, QoS::AtLeastOnce).await {
            tracing::warn!(error = %e, "subscribe failed");
        }
    }
    republish(fleet, store);
}

/// Re-signs and re-publishes every stored desired state (same generation:
/// devices take it silently, refreshing expiry and learning a new key).
fn republish(fleet: &Fleet, store: &Store) {
    match store.desired_ids() {
        Ok(ids) => ids.iter().for_each(|id| fleet.publish(id)),
        Err(e) => tracing::error!(error = %e, "cannot read desired states"),
    }
}

/// A device's log reply, to the request waiting for it (decoded and
/// checked like every device message; small, so done on the poll loop).
fn deliver_logs(pending: &PendingLogs, id: &str, p: &Publish, limits: Limits) {
    if pending.is_empty() {
        return; // nobody asked: not even decoded
    }
    let delivered = from_device(id, &p.payload, limits, |r: &LogReply| &r.device_id)
        .map(|reply| pending.deliver(id, reply));
    match delivered {
        Ok(true) => {}
        Ok(false) => tracing::debug!(device = id, "log reply nobody waits for dropped"),
        Err(e) => tracing::warn!(device = id, error = %e, "rejected log reply"),
    }
}

/// Messages recorded between two flushes at most.
const INGEST_BATCH: usize = 2048;

/// Records device messages in batches: every message waiting is written,
/// then one flush, off the async workers; then the rollouts hear which
/// devices changed. Under a report storm one flush serves many messages.
async fn ingest_batches(
    mut rx: tokio::sync::mpsc::UnboundedReceiver<Publish>,
    store: Store,
    limits: Limits,
    observers: Observers,
) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        crate::drain_waiting(&mut rx, &mut batch, INGEST_BATCH);
        let store = store.clone();
        let monitor = observers.monitor.clone();
        let changed = tokio::task::spawn_blocking(move || {
            let mut changed: Vec<String> = Vec::new();
            let mut seen = std::collections::HashSet::new();
            for p in &batch {
                if let Some(device) = ingest(&store, &monitor, p, limits) {
                    if seen.insert(device.clone()) {
                        changed.push(device);
                    }
                }
            }
            if let Err(e) = store.flush() {
                tracing::error!(error = %e, "cannot flush device messages");
            }
            changed
        })
        .await
        .unwrap_or_default();
        for device in changed {
            observers.rollouts.observed(&device);
        }
    }
}

/// Device messages dropped for their size since start.
static DROPPED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Device messages dropped for their size since the controller started.
pub fn dropped_messages() -> u64 {
    DROPPED.load(std::sync::atomic::Ordering::Relaxed)
}

/// Applies one message from a device. A device may only speak for itself:
/// the id inside the payload must match the id in the topic.
/// Stores what a device sent; returns the device if its report or
/// presence changed (for the rollouts).
fn ingest(store: &Store, monitor: &Monitor, p: &Publish, limits: Limits) -> Option<String> {
    let (id, channel) = topics::parse(&p.topic)?;
    if p.payload.is_empty() {
        return None;
    }
    if p.payload.len() > limits.max_message_bytes {
        let n = DROPPED.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        tracing::warn!(device = id, topic = %p.topic, bytes = p.payload.len(), limit = limits.max_message_bytes, dropped_so_far = n, "dropped an oversized device message");
        return None;
    }
    let payload = &p.payload[..];
    // A retained message (sent again at each resubscription) is the
    // device's last word, not a sign of life now.
    let seen = Seen {
        store,
        monitor,
        id,
        retained: p.retain,
    };
    let result = match channel {
        Channel::Reported => from_device(id, payload, limits, |r: &Reported| &r.device_id)
            .and_then(|r| {
                seen.alive();
                store.record_reported(&r).map_err(|e| e.to_string())?;
                monitor.reported(&r, crate::now_ms());
                Ok(())
            }),
        Channel::Events => {
            from_device(id, payload, limits, |e: &Event| &e.device_id).and_then(|e| {
                seen.alive();
                monitor.index.touch(id);
                store.record_event(&e).map_err(|e| e.to_string())
            })
        }
        Channel::Status => from_device(id, payload, limits, |s: &Status| &s.device_id)
            .map(|s| seen.status(s.online)),
        // written by the controller, or routed before ingest (`logs`)
        Channel::Desired | Channel::LogsRequest | Channel::Logs => Ok(()),
    };
    match result {
        Err(e) => {
            tracing::warn!(device = id, topic = %p.topic, error = %e, "rejected device message");
            None
        }
        Ok(()) if matches!(channel, Channel::Reported | Channel::Status) => Some(id.to_string()),
        Ok(()) => None,
    }
}

/// Decodes a device's message and checks it names the device of its topic.
fn from_device<T: serde::de::DeserializeOwned>(
    topic_id: &str,
    payload: &[u8],
    limits: Limits,
    device_of: impl Fn(&T) -> &String,
) -> Result<T, String> {
    let msg: T = decode(payload, limits).map_err(|e| e.to_string())?;
    same_device(topic_id, device_of(&msg))?;
    Ok(msg)
}

fn same_device(topic_id: &str, payload_id: &str) -> Result<(), String> {
    if topic_id == payload_id {
        Ok(())
    } else {
        Err(format!(
            "payload names device {payload_id:?}, topic {topic_id:?}"
        ))
    }
}

/// Where a device message records the device's presence.
struct Seen<'a> {
    store: &'a Store,
    monitor: &'a Monitor,
    id: &'a str,
    retained: bool,
}

impl Seen<'_> {
    /// The device spoke (a report, an event): online, seen now. A
    /// retained report says nothing of now and is skipped.
    fn alive(&self) {
        if !self.retained {
            self.record(true, crate::now_ms());
        }
    }

    /// The device's status. A retained one keeps the time the device was
    /// last seen (else a controller restart would show long-gone devices
    /// as just seen, and restart their offline alerts).
    fn status(&self, online: bool) {
        let last_seen_ms = match self.store.presence(self.id) {
            Ok(Some(p)) if self.retained => p.last_seen_ms,
            _ => crate::now_ms(),
        };
        self.record(online, last_seen_ms);
    }

    fn record(&self, online: bool, last_seen_ms: u64) {
        let (store, id) = (self.store, self.id);
        let p = Presence {
            online,
            last_seen_ms,
        };
        if let Err(e) = store.record_presence(id, &p) {
            tracing::error!(device = id, error = %e, "cannot record presence");
        }
        self.monitor.presence(id, &p);
    }
}
