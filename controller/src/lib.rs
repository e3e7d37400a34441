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
//! - [`listen`]: listening sockets with a deep accept queue.
//! - [`metrics`]: the Prometheus metrics.
//! - [`keys`]: the signing key of desired states, its rotation chain.
//! - [`gc`]: removes blobs, deltas and path lists nothing references.
//! - [`compose`]: the compose subset that defines a release.
//! - [`blobs`], [`images`]: content-addressed layer blobs; image import/build.
//! - [`client`]: typed HTTP client of the API (CLI, simulator, tests).
//! - [`cli`]: the `petrel` operator CLI.

pub mod auth;
pub mod blobs;
pub mod broker;
pub mod cli;
pub mod client;
pub mod compose;
pub mod dashboard;
pub mod deltas;
pub mod fleet;
pub mod gc;
pub mod http;
pub mod images;
pub mod keys;
pub mod layer_paths;
pub mod listen;
pub mod metrics;
pub mod monitor;
pub mod pki;
pub mod rollouts;
pub mod server;
pub mod store;
pub mod table;
pub mod watch;

pub use server::{serve, BrokerMode, Security, ServeConfig, DEFAULT_MAX_UPLOAD};

/// Milliseconds since the Unix epoch (the wall clock of the controller).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Adds to `batch` every message already waiting in `rx`, up to `max` in
/// all: the batching of the fleet link's ingest and the rollout driver.
pub(crate) fn drain_waiting<T>(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<T>,
    batch: &mut Vec<T>,
    max: usize,
) {
    while batch.len() < max {
        match rx.try_recv() {
            Ok(msg) => batch.push(msg),
            Err(_) => break,
        }
    }
}

/// The controller's wall clock as RFC 3339 UTC (`2026-12-02T03:59:19Z`),
/// for image creation times.
pub fn now_rfc3339() -> String {
    rfc3339(now_ms() / 1000)
}

/// Unix seconds as RFC 3339 UTC (days to civil date: H. Hinnant's
/// algorithm, valid for every date after 1970).
pub fn rfc3339(secs: u64) -> String {
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn unix_seconds_print_as_rfc3339() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(super::rfc3339(1_796_183_959), "2026-12-02T03:59:19Z");
    }
}
