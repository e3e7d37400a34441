//! The request rate at the controller, once a second, from its `/metrics`:
//! device downloads (blobs, deltas, path lists) and MQTT messages in. The
//! thundering-herd figure: after a controller outage, how high the rate
//! of the fleet coming back peaks (the agents spread their reconnects and
//! retries with jittered backoff, so it should stay bounded).

use petrel_controller::client::Client;
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

/// Counter totals read at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Totals {
    pub t_s: f64,
    pub downloads: u64,
    pub mqtt_in: u64,
}

/// Peak per-second rates, over the run and after each restart.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Peaks {
    pub downloads_per_s: f64,
    pub mqtt_in_per_s: f64,
}

/// Reads the two totals out of a metrics text.
pub fn totals(text: &str, t_s: f64) -> Totals {
    let mut out = Totals {
        t_s,
        ..Default::default()
    };
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((name, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(v) = value.parse::<f64>() else {
            continue;
        };
        let device_route = ["/v1/blobs/", "/v1/deltas/", "/paths\""]
            .iter()
            .any(|r| name.contains(r));
        if name.starts_with("petrel_http_request_duration_seconds_count{") && device_route {
            out.downloads += v as u64;
        } else if name.starts_with("petrel_mqtt_messages_total{") && name.contains("\"in\"") {
            out.mqtt_in += v as u64;
        }
    }
    out
}

/// The highest per-second rates between consecutive readings at or after
/// `from_s`. A counter that went down was reset (a restarted controller):
/// its new value is what came since.
pub fn peaks(readings: &[Totals], from_s: f64) -> Peaks {
    let rate = |now: u64, before: u64, dt: f64| {
        let d = if now >= before { now - before } else { now };
        d as f64 / dt.max(0.001)
    };
    let mut p = Peaks::default();
    for w in readings.windows(2).filter(|w| w[0].t_s >= from_s) {
        let dt = w[1].t_s - w[0].t_s;
        p.downloads_per_s = p
            .downloads_per_s
            .max(rate(w[1].downloads, w[0].downloads, dt));
        p.mqtt_in_per_s = p.mqtt_in_per_s.max(rate(w[1].mqtt_in, w[0].mqtt_in, dt));
    }
    p
}

/// Reads the controller's metrics every second until stopped; a reading
/// that fails (the controller is down) is skipped.
pub struct Probe {
    task: JoinHandle<Vec<Totals>>,
    stop: tokio::sync::watch::Sender<bool>,
}

impl Probe {
    pub fn start(client: Client, started: Instant) -> Probe {
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(async move {
            let mut readings = Vec::new();
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tokio::select! {
                    _ = stopped.changed() => break,
                    _ = tick.tick() => {
                        if let Ok(text) = client.metrics_text().await {
                            readings.push(totals(&text, started.elapsed().as_secs_f64()));
                        }
                    }
                }
            }
            readings
        });
        Probe { task, stop }
    }

    /// Stops reading; every reading taken.
    pub async fn finish(self) -> Vec<Totals> {
        let _ = self.stop.send(true);
        self.task.await.unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_downloads_and_mqtt_messages_in_are_summed_from_the_text() {
        let text = "# HELP x\n\
petrel_http_request_duration_seconds_count{route=\"/v1/blobs/{digest}\",status=\"200\"} 7\n\
petrel_http_request_duration_seconds_count{route=\"/v1/deltas/{from}/{to}\",status=\"206\"} 3\n\
petrel_http_request_duration_seconds_count{route=\"/v1/layers/{diff_id}/paths\",status=\"200\"} 1\n\
petrel_http_request_duration_seconds_count{route=\"/v1/devices\",status=\"200\"} 500\n\
petrel_mqtt_messages_total{direction=\"in\"} 40\n\
petrel_mqtt_messages_total{direction=\"out\"} 9\n";
        let t = totals(text, 2.0);
        assert_eq!((t.downloads, t.mqtt_in), (11, 40));
    }

    #[test]
    fn the_peak_rate_survives_a_counter_reset() {
        let r = |t_s, downloads, mqtt_in| Totals {
            t_s,
            downloads,
            mqtt_in,
        };
        let readings = [
            r(0.0, 100, 10),
            r(1.0, 150, 20),
            r(2.0, 30, 5),
            r(4.0, 90, 45),
        ];
        let all = peaks(&readings, 0.0);
        assert_eq!(all.downloads_per_s, 50.0);
        assert_eq!(all.mqtt_in_per_s, 20.0);
        // after the restart (t = 2): 60 in 2 s and 40 in 2 s
        let after = peaks(&readings, 2.0);
        assert_eq!((after.downloads_per_s, after.mqtt_in_per_s), (30.0, 20.0));
    }
}
