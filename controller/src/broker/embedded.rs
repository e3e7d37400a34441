//! The embedded MQTT broker (rumqttd), started on the caller's tokio
//! runtime rather than through `Broker::start()`, which blocks forever.
//!
//! rumqttd keeps retained messages in memory only: whoever owns desired
//! state (the fleet link) re-publishes it on every reconnect.

use rumqttd::protocol::v4::V4;
use rumqttd::{ConnectionSettings, LinkType, Router, RouterConfig, Server, ServerSettings};
use std::net::SocketAddr;

/// Largest MQTT payload the embedded broker accepts (desired states embed
/// full release manifests).
pub const MAX_PAYLOAD: usize = 2 * 1024 * 1024;

/// Starts the broker listening on `listen`; runs until the process exits.
pub fn start_embedded(listen: SocketAddr) -> tokio::task::JoinHandle<()> {
    let router = Router::new(
        0,
        RouterConfig {
            max_connections: super::limits::BROKER_MAX_CONNECTIONS,
            max_outgoing_packet_count: 200,
            // small segments: the sample config allows 1 GB per topic
            max_segment_size: 4 * 1024 * 1024,
            max_segment_count: 4,
            custom_segment: None,
            initialized_filters: None,
            shared_subscriptions_strategy: Default::default(),
        },
    );
    let router_tx = router.spawn();
    let settings = ServerSettings {
        name: "petrel-v4".into(),
        listen,
        tls: None,
        next_connection_delay_ms: 1,
        connections: ConnectionSettings {
            connection_timeout_ms: 60_000,
            max_payload_size: MAX_PAYLOAD,
            max_inflight_count: 100,
            auth: None,
            external_auth: None,
            // the default (false) disconnects a client publishing to a
            // topic nobody subscribed to yet
            dynamic_filters: true,
        },
    };
    let mut server = Server::new(settings, router_tx, V4);
    tokio::spawn(async move {
        if let Err(e) = server.start(LinkType::Remote).await {
            tracing::error!(error = %e, %listen, "embedded broker stopped");
        }
    })
}
