//! Monitoring end to end with real agents: a known sequence of updates
//! (a full download, then a delta), a crash-looping service and an agent
//! killed with SIGKILL, read back from `/metrics` through a Prometheus
//! text-format parser (`prometheus-parse`) and from `GET /v1/alerts`.

use petrel_tests::*;
use prometheus_parse::{Scrape, Value};
use std::time::Duration;

async fn scrape(ctl: &Controller) -> anyhow::Result<Scrape> {
    let text = ctl
        .get(&format!("{}/metrics", ctl.url()))
        .await?
        .error_for_status()?
        .text()
        .await?;
    Ok(Scrape::parse(text.lines().map(|l| Ok(l.to_string())))?)
}

/// The value of the series `name{labels}` (counter, gauge or untyped).
fn value(s: &Scrape, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    s.samples
        .iter()
        .filter(|x| x.metric == name)
        .find(|x| labels.iter().all(|(k, v)| x.labels.get(k) == Some(*v)))
        .and_then(|x| match x.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => Some(v),
            _ => None,
        })
}

async fn active_alerts(ctl: &Controller) -> Option<Vec<serde_json::Value>> {
    ctl.get(&format!("{}/v1/alerts?active=true", ctl.url()))
        .await
        .ok()?
        .json()
        .await
        .ok()
}

fn has_alert(alerts: &[serde_json::Value], device: &str, kind: &str) -> bool {
    alerts
        .iter()
        .any(|a| a["device_id"] == device && a["kind"] == kind)
}

async fn last_seen(ctl: &Controller, device: &str) -> anyhow::Result<u64> {
    let view: serde_json::Value = ctl
        .get(&format!("{}/v1/devices/{device}", ctl.url()))
        .await?
        .error_for_status()?
        .json()
        .await?;
    view["last_seen_ms"]
        .as_u64()
        .ok_or_else(|| anyhow::anyhow!("no last_seen_ms in {view}"))
}

async fn offline_alerts(ctl: &Controller, device: &str) -> anyhow::Result<Vec<serde_json::Value>> {
    let all: Vec<serde_json::Value> = ctl
        .get(&format!("{}/v1/alerts?device={device}", ctl.url()))
        .await?
        .json()
        .await?;
    Ok(all.into_iter().filter(|a| a["kind"] == "offline").collect())
}

fn monitor_sweep() -> Duration {
    petrel_controller::monitor::SWEEP
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_follow_updates_and_alerts_fire_for_crash_loops_and_lost_devices(
) -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let mut ctl = Controller::with_args(&tmp.path().join("ctl"), &["--alert-offline-secs", "3"])?;
    let client = ctl.client();
    // the agents' own post-update watch is off: a crash loop that starts
    // after the watch (or on an agent without one) is the controller's to
    // report
    let quiet = "post_update_watch_s = 0\n";
    let mut agents = [
        Agent::start_with(tmp.path(), "m-1", &ctl.broker_url(), &ctl.url(), quiet)?,
        Agent::start_with(tmp.path(), "m-2", &ctl.broker_url(), &ctl.url(), quiet)?,
    ];
    let ids: Vec<String> = agents.iter().map(|a| a.id.clone()).collect();

    // 1. v1 in full, then v2 as a delta
    sample_image(&client, tmp.path(), "v1", "1", &[]).await?;
    sample_release(&client, "1", "v1").await?;
    client.deploy("demo@1", &ids).await?;
    for id in &ids {
        wait_converged(&client, id, "1").await?;
    }
    let grown = vec![("data.bin", images::noise(300_000, 7))];
    sample_image(&client, tmp.path(), "v2", "2", &grown).await?;
    sample_release(&client, "2", "v2").await?;
    client.deploy("demo@2", &ids).await?;
    for id in &ids {
        wait_converged(&client, id, "2").await?;
    }
    let m = wait_for(
        Duration::from_secs(20),
        "gauges of the converged fleet",
        || async {
            let m = scrape(&ctl).await.ok()?;
            let running = value(&m, "petrel_devices", &[("phase", "running")]);
            (running == Some(2.0) && value(&m, "petrel_mqtt_connections", &[]) == Some(2.0))
                .then_some(m)
        },
    )
    .await?;
    assert_eq!(value(&m, "petrel_devices_online", &[]), Some(2.0));
    assert!(value(&m, "petrel_bytes_served_total", &[("kind", "blob")]).unwrap() > 0.0);
    let delta = value(&m, "petrel_bytes_served_total", &[("kind", "delta")]).unwrap();
    assert!(delta > 0.0, "no delta bytes counted");
    let hits = value(
        &m,
        "petrel_delta_cache_requests_total",
        &[("result", "hit")],
    )
    .unwrap();
    let misses = value(
        &m,
        "petrel_delta_cache_requests_total",
        &[("result", "miss")],
    )
    .unwrap();
    assert!(
        misses >= 1.0 && hits + misses >= 2.0,
        "hits {hits} misses {misses}"
    );
    assert!(value(&m, "petrel_delta_encode_seconds_count", &[]).unwrap() >= 1.0);
    assert!(value(&m, "petrel_delta_saved_bytes_total", &[]).unwrap() > delta);
    let out = value(&m, "petrel_mqtt_messages_total", &[("direction", "out")]).unwrap();
    assert!(
        out >= 4.0,
        "2 deploys to 2 devices published {out} messages"
    );
    assert!(value(&m, "petrel_mqtt_messages_total", &[("direction", "in")]).unwrap() > 4.0);
    let deploys = value(
        &m,
        "petrel_http_request_duration_seconds_count",
        &[("route", "/v1/deployments"), ("status", "200")],
    );
    assert_eq!(deploys, Some(2.0));
    assert_eq!(
        value(&m, "petrel_alerts_raised_total", &[("kind", "crash-loop")]),
        Some(0.0)
    );

    // 2. a release whose service exits every 1.5 s: it swaps (no health
    // check beyond starting), then loops
    let compose = "services:\n  app:\n    image: sample-app:v2\n    command: [\"--exit-after-ms\", \"1500\"]\n    restart: always\n    healthcheck:\n      test: [\"NONE\"]\n";
    client.create_release("demo", "3", compose).await?;
    client.deploy("demo@3", &ids[..1]).await?;
    let alerts = wait_for(
        Duration::from_secs(90),
        "a crash-loop alert on m-1",
        || async {
            let a = active_alerts(&ctl).await?;
            has_alert(&a, "m-1", "crash-loop").then_some(a)
        },
    )
    .await?;
    let looping = alerts.iter().find(|a| a["kind"] == "crash-loop").unwrap();
    let said = looping["message"].as_str().unwrap_or_default();
    assert!(said.contains("app-g3 restarted"), "{said}");

    // 3. an agent killed: offline past the limit
    agents[1].kill9();
    wait_for(
        Duration::from_secs(60),
        "an offline alert on m-2",
        || async {
            let a = active_alerts(&ctl).await?;
            has_alert(&a, "m-2", "offline").then_some(())
        },
    )
    .await?;
    let m = scrape(&ctl).await?;
    for kind in ["crash-loop", "offline"] {
        assert_eq!(
            value(&m, "petrel_alerts_raised_total", &[("kind", kind)]),
            Some(1.0),
            "{kind}"
        );
        assert_eq!(
            value(&m, "petrel_alerts_active", &[("kind", kind)]),
            Some(1.0)
        );
    }
    assert_eq!(value(&m, "petrel_devices_online", &[]), Some(1.0));

    // a controller restart hears m-2's retained "offline" and last report
    // again: m-2 is not taken for just seen, and its alert stays the one
    // raised (not cleared and raised anew)
    let seen = last_seen(&ctl, "m-2").await?;
    ctl.restart()?;
    tokio::time::sleep(monitor_sweep() + Duration::from_secs(5)).await;
    assert_eq!(last_seen(&ctl, "m-2").await?, seen);
    let offline = offline_alerts(&ctl, "m-2").await?;
    assert_eq!(offline.len(), 1, "{offline:?}");
    assert!(offline[0]["cleared_ms"].is_null(), "{offline:?}");

    // 4. the agent comes back: its offline alert clears, and stays in the
    // history as a fleet event
    agents[1].restart()?;
    wait_for(
        Duration::from_secs(60),
        "m-2's offline alert to clear",
        || async {
            let a = active_alerts(&ctl).await?;
            (!has_alert(&a, "m-2", "offline")).then_some(())
        },
    )
    .await?;
    let history: Vec<serde_json::Value> = ctl
        .get(&format!("{}/v1/alerts?device=m-2", ctl.url()))
        .await?
        .json()
        .await?;
    assert!(
        history
            .iter()
            .any(|a| a["kind"] == "offline" && a["cleared_ms"].as_u64().is_some()),
        "{history:?}"
    );
    Ok(())
}
