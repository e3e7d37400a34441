//! Petrel controller: holds images, releases and each device's desired
//! state, publishes desired states over MQTT, serves layer blobs over HTTP,
//! and keeps the fleet view from what devices report.
//!
//! Layout:
//! - [`server`]: the `serve` entry point wiring everything together.
//! - [`broker`]: the embedded rumqttd broker (default) on our own runtime.
//! - [`store`]: sled-backed images, releases, desired and reported state.
//! - [`fleet`]: the controller's MQTT session: publishes desired states,
//!   ingests reported/events/status.
//! - [`http`]: the HTTP API and the blob server (Range support).
//! - [`deltas`]: the delta cache behind `GET /v1/deltas/{from}/{to}`.
//! - [`layer_paths`]: file paths of a layer, for choosing a delta base.
//! - [`gc`]: removes blobs, deltas and path lists nothing references.
//! - [`compose`]: the compose subset that defines a release.
//! - [`blobs`], [`images`]: content-addressed layer blobs; image import/build.
//! - [`client`]: typed HTTP client of the API (CLI, simulator, tests).
//! - [`cli`]: the `petrel` operator CLI.

pub mod blobs;
pub mod broker;
pub mod cli;
pub mod client;
pub mod compose;
pub mod deltas;
pub mod fleet;
pub mod gc;
pub mod http;
pub mod images;
pub mod layer_paths;
pub mod server;
pub mod store;
pub mod table;
pub mod watch;

pub use server::{serve, BrokerMode, ServeConfig};

/// Milliseconds since the Unix epoch (the wall clock of the controller).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
