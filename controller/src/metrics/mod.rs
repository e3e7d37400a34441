//! The controller's Prometheus metrics, in one registry per controller
//! (tests and the simulator run several in a process): what the fleet
//! downloads, what the broker carries, how fast the API answers. Served
//! as the text exposition format on `GET /metrics`.

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, TextEncoder};

/// Every metric the controller keeps.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// Bytes sent to devices, by `kind` (`blob`, `delta`).
    pub bytes_served: IntCounterVec,
    /// MQTT messages, by `direction` (`in`, `out`).
    pub mqtt_messages: IntCounterVec,
    /// API latency, by `route` (its pattern) and `status`.
    pub http_seconds: HistogramVec,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels)
                .unwrap_or_else(|e| unreachable!("metric {name}: {e}"));
            registry
                .register(Box::new(c.clone()))
                .unwrap_or_else(|e| unreachable!("registering {name}: {e}"));
            c
        };
        let bytes_served = counter(
            "petrel_bytes_served_total",
            "Bytes sent to devices, by kind (blob, delta).",
            &["kind"],
        );
        let mqtt_messages = counter(
            "petrel_mqtt_messages_total",
            "MQTT messages the controller received (in) and published (out).",
            &["direction"],
        );
        let http_seconds = HistogramVec::new(
            HistogramOpts::new(
                "petrel_http_request_duration_seconds",
                "API request latency by route and status.",
            ),
            &["route", "status"],
        )
        .unwrap_or_else(|e| unreachable!("http histogram: {e}"));
        registry
            .register(Box::new(http_seconds.clone()))
            .unwrap_or_else(|e| unreachable!("registering the http histogram: {e}"));
        // every series from zero, so a scraper sees them before first use
        for kind in ["blob", "delta"] {
            bytes_served.with_label_values(&[kind]);
        }
        for direction in ["in", "out"] {
            mqtt_messages.with_label_values(&[direction]);
        }
        Metrics {
            registry,
            bytes_served,
            mqtt_messages,
            http_seconds,
        }
    }

    /// The text exposition format of every metric.
    pub fn render(&self) -> String {
        TextEncoder::new()
            .encode_to_string(&self.registry.gather())
            .unwrap_or_else(|e| format!("# encoding failed: {e}\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counted_bytes_and_latencies_appear_in_the_exposition() {
        let m = Metrics::new();
        m.bytes_served.with_label_values(&["delta"]).inc_by(700);
        m.bytes_served.with_label_values(&["blob"]).inc_by(5);
        m.http_seconds
            .with_label_values(&["/v1/devices", "200"])
            .observe(0.02);
        let text = m.render();
        assert!(
            text.contains("petrel_bytes_served_total{kind=\"delta\"} 700"),
            "{text}"
        );
        assert!(text.contains(
            "petrel_http_request_duration_seconds_count{route=\"/v1/devices\",status=\"200\"} 1"
        ));
    }
}
