//! The controller's Prometheus metrics, in one registry per controller
//! (tests and the simulator run several in a process): what the fleet
//! downloads, what the broker carries, how fast the API answers. Served
//! as the text exposition format on `GET /metrics`.

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};
use std::collections::BTreeMap;

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
    /// Bytes a delta saved against the full blob, per delta sent whole.
    pub delta_saved: IntCounter,
    /// Delta requests by `result`: `hit` (decided on disk) or `miss`.
    pub delta_cache: IntCounterVec,
    /// Time to encode one delta.
    pub delta_encode_seconds: Histogram,
    /// Alerts raised, by `kind`.
    pub alerts_raised: IntCounterVec,
    /// The fleet's state, set at each scrape ([`Metrics::set_fleet`]).
    devices: IntGaugeVec,
    devices_online: IntGauge,
    alerts_active: IntGaugeVec,
    rollout_devices: IntGaugeVec,
    /// Unlabelled; no series with an external broker (not ours to count).
    mqtt_connections: IntGaugeVec,
    /// One scrape at a time: [`Metrics::scrape`] resets and sets gauges.
    scraping: std::sync::Arc<std::sync::Mutex<()>>,
}

/// What a scrape reports of the fleet (read from the fleet index, the
/// alerts and the rollouts by the caller).
#[derive(Debug, Default)]
pub struct FleetGauges {
    pub phases: BTreeMap<String, u64>,
    pub online: u64,
    pub alerts_active: BTreeMap<&'static str, u64>,
    /// (rollout id, wave, state) → devices.
    pub rollout_devices: Vec<((String, usize, &'static str), u64)>,
    /// Device connections the embedded broker holds (None: external).
    pub mqtt_connections: Option<u64>,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        // every metric is defined here, once: a failure is a bug of this
        // file, not of the input
        let register = |name: &str, c: Box<dyn prometheus::core::Collector>| {
            registry
                .register(c)
                .unwrap_or_else(|e| unreachable!("registering {name}: {e}"));
        };
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels)
                .unwrap_or_else(|e| unreachable!("metric {name}: {e}"));
            register(name, Box::new(c.clone()));
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
        let gauge = |name: &str, help: &str, labels: &[&str]| {
            let g = IntGaugeVec::new(Opts::new(name, help), labels)
                .unwrap_or_else(|e| unreachable!("metric {name}: {e}"));
            register(name, Box::new(g.clone()));
            g
        };
        let delta_cache = counter(
            "petrel_delta_cache_requests_total",
            "Delta requests, by result: hit (decided on disk) or miss (encoded or waited for).",
            &["result"],
        );
        let alerts_raised = counter(
            "petrel_alerts_raised_total",
            "Alerts raised, by kind (offline, crash-loop, disk-low).",
            &["kind"],
        );
        let delta_saved = counter(
            "petrel_delta_saved_bytes_total",
            "Bytes deltas saved against their full blobs (deltas sent whole).",
            &[],
        )
        .with_label_values(&[] as &[&str]);
        let devices = gauge(
            "petrel_devices",
            "Devices by phase (never-reported: known but no report yet).",
            &["phase"],
        );
        let devices_online = gauge("petrel_devices_online", "Devices online.", &[])
            .with_label_values(&[] as &[&str]);
        let alerts_active = gauge("petrel_alerts_active", "Alerts active, by kind.", &["kind"]);
        let rollout_devices = gauge(
            "petrel_rollout_devices",
            "Members of each rollout, by wave and state (queued, started, succeeded, failed, other).",
            &["rollout", "wave", "state"],
        );
        let mqtt_connections = gauge(
            "petrel_mqtt_connections",
            "Device connections the embedded broker holds (absent with an external broker).",
            &[],
        );
        let delta_encode_seconds = Histogram::with_opts(
            HistogramOpts::new("petrel_delta_encode_seconds", "Time to encode one delta.").buckets(
                vec![
                    0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
                ],
            ),
        )
        .unwrap_or_else(|e| unreachable!("encode histogram: {e}"));
        register(
            "the encode histogram",
            Box::new(delta_encode_seconds.clone()),
        );
        let http_seconds = HistogramVec::new(
            HistogramOpts::new(
                "petrel_http_request_duration_seconds",
                "API request latency by route and status.",
            ),
            &["route", "status"],
        )
        .unwrap_or_else(|e| unreachable!("http histogram: {e}"));
        register("the http histogram", Box::new(http_seconds.clone()));
        // every series from zero, so a scraper sees them before first use
        for kind in ["blob", "delta"] {
            bytes_served.with_label_values(&[kind]);
        }
        for direction in ["in", "out"] {
            mqtt_messages.with_label_values(&[direction]);
        }
        for result in ["hit", "miss"] {
            delta_cache.with_label_values(&[result]);
        }
        for kind in ["offline", "crash-loop", "disk-low"] {
            alerts_raised.with_label_values(&[kind]);
        }
        Metrics {
            registry,
            bytes_served,
            mqtt_messages,
            http_seconds,
            delta_saved,
            delta_cache,
            delta_encode_seconds,
            alerts_raised,
            devices,
            devices_online,
            alerts_active,
            rollout_devices,
            mqtt_connections,
            scraping: Default::default(),
        }
    }

    /// Sets the fleet gauges and renders, one scrape at a time (two
    /// interleaved would render each other's half-reset gauges).
    pub fn scrape(&self, g: &FleetGauges) -> String {
        let _one = self
            .scraping
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.set_fleet(g);
        self.render()
    }

    /// Sets the fleet gauges (each scrape: series of phases, alerts and
    /// rollouts that are gone disappear).
    pub fn set_fleet(&self, g: &FleetGauges) {
        self.devices.reset();
        for (phase, n) in &g.phases {
            self.devices
                .with_label_values(&[phase.as_str()])
                .set(*n as i64);
        }
        self.devices_online.set(g.online as i64);
        self.alerts_active.reset();
        for (kind, n) in &g.alerts_active {
            self.alerts_active.with_label_values(&[kind]).set(*n as i64);
        }
        self.rollout_devices.reset();
        for ((id, wave, state), n) in &g.rollout_devices {
            let wave = wave.to_string();
            self.rollout_devices
                .with_label_values(&[id.as_str(), wave.as_str(), state])
                .set(*n as i64);
        }
        self.mqtt_connections.reset();
        if let Some(n) = g.mqtt_connections {
            self.mqtt_connections
                .with_label_values(&[] as &[&str])
                .set(n as i64);
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

    /// Every metric family the registry exports, by name.
    fn families(m: &Metrics) -> std::collections::BTreeSet<String> {
        m.registry
            .gather()
            .iter()
            .map(|f| f.name().to_string())
            .collect()
    }

    #[test]
    fn the_example_grafana_dashboard_only_queries_metrics_the_controller_exports() {
        let m = Metrics::new();
        m.set_fleet(&FleetGauges {
            phases: [("running".to_string(), 1)].into(),
            rollout_devices: vec![(("r".into(), 0, "succeeded"), 1)],
            mqtt_connections: Some(1),
            alerts_active: [("offline", 0)].into(),
            online: 1,
        });
        m.http_seconds
            .with_label_values(&["/v1/devices", "200"])
            .observe(0.1);
        let exported = families(&m);
        let dashboard: serde_json::Value =
            serde_json::from_str(include_str!("../../../docs/grafana/petrel-fleet.json"))
                .expect("the dashboard is JSON");
        let panels = dashboard["panels"].as_array().expect("panels");
        assert!(panels.len() >= 10);
        let mut queried = 0;
        for target in panels
            .iter()
            .flat_map(|p| p["targets"].as_array().into_iter().flatten())
        {
            let expr = target["expr"].as_str().unwrap_or_default();
            for word in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
                if !word.starts_with("petrel_") {
                    continue;
                }
                let family = ["_bucket", "_count", "_sum"]
                    .iter()
                    .find_map(|s| word.strip_suffix(s))
                    .unwrap_or(word);
                assert!(
                    exported.contains(family),
                    "{family} in {expr:?} is not exported"
                );
                queried += 1;
            }
        }
        assert!(queried >= 15, "{queried}");
    }
}
