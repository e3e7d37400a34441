//! `GET /metrics` of a real controller process, checked by Prometheus's
//! own `promtool check metrics` (Debian's `prometheus` package) and read
//! back after a known sequence: one blob download counts its bytes, and
//! every request lands in the latency histogram under its route pattern.

use petrel_tests::*;
use std::io::Write;
use std::process::{Command, Stdio};

/// The value of the sample `name{labels}` in an exposition.
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_count_a_download_and_pass_promtool() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let ctl = Controller::start(&tmp.path().join("ctl"))?;
    let client = ctl.client();
    let image = sample_image(&client, tmp.path(), "v1", "1", &[]).await?;
    let layer = &image.layers[0];
    let blob = ctl
        .get(&format!("{}/v1/blobs/{}", ctl.url(), layer.digest))
        .await?
        .bytes()
        .await?;
    assert_eq!(blob.len() as u64, layer.size);

    let text = ctl
        .get(&format!("{}/metrics", ctl.url()))
        .await?
        .error_for_status()?
        .text()
        .await?;
    let served = value(&text, "petrel_bytes_served_total{kind=\"blob\"}");
    assert_eq!(served, Some(layer.size as f64), "{text}");
    assert_eq!(
        value(&text, "petrel_bytes_served_total{kind=\"delta\"}"),
        Some(0.0)
    );
    let blob_route =
        "petrel_http_request_duration_seconds_count{route=\"/v1/blobs/{digest}\",status=\"200\"}";
    assert_eq!(value(&text, blob_route), Some(1.0), "{text}");

    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| anyhow::anyhow!("promtool (Debian package prometheus): {e}"))?;
    promtool
        .stdin
        .take()
        .expect("piped")
        .write_all(text.as_bytes())?;
    let out = promtool.wait_with_output()?;
    assert!(
        out.status.success(),
        "promtool: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}
