//! The web dashboard in a real headless browser (Debian's `chromium`,
//! driven over the DevTools protocol): sign-in with a token, the fleet
//! table listing real agents, a deploy advancing on the page without a
//! reload, the search filter, a device's detail page with its events.
//! Screenshots go to `target/test-artifacts/` (or `$PETREL_ARTIFACTS`).

use headless_chrome::protocol::cdp::Page::CaptureScreenshotFormatOption;
use headless_chrome::{Browser, LaunchOptions, Tab};
use petrel_tests::*;
use std::path::PathBuf;
use std::time::{Duration, Instant};

fn chromium() -> anyhow::Result<Browser> {
    let path = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .ok_or_else(|| anyhow::anyhow!("no chromium: apt-get install chromium"))?;
    let options = LaunchOptions::default_builder()
        .path(Some(path))
        .sandbox(false)
        .window_size(Some((1440, 960)))
        .idle_browser_timeout(Duration::from_secs(600))
        .build()
        .map_err(|e| anyhow::anyhow!("chromium options: {e}"))?;
    Browser::new(options)
}

fn artifacts() -> PathBuf {
    std::env::var_os("PETREL_ARTIFACTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/test-artifacts")
        })
}

fn screenshot(tab: &Tab, name: &str) -> anyhow::Result<PathBuf> {
    let png = tab.capture_screenshot(CaptureScreenshotFormatOption::Png, None, None, true)?;
    let dir = artifacts();
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(name);
    std::fs::write(&path, png)?;
    eprintln!("screenshot: {}", path.display());
    Ok(path)
}

/// The value of a JavaScript expression on the page.
fn js(tab: &Tab, expr: &str) -> anyhow::Result<serde_json::Value> {
    Ok(tab
        .evaluate(expr, false)?
        .value
        .unwrap_or(serde_json::Value::Null))
}

/// Waits until `expr` is true on the page.
fn wait_js(tab: &Tab, expr: &str, timeout: Duration) -> anyhow::Result<()> {
    let start = Instant::now();
    loop {
        if js(tab, expr)? == serde_json::Value::Bool(true) {
            return Ok(());
        }
        if start.elapsed() > timeout {
            let body = js(tab, "document.body.innerText")?;
            anyhow::bail!("timed out waiting for `{expr}`; the page shows:\n{body}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

const ROWS: &str = "document.querySelectorAll('#devices tbody tr[data-device]')";

#[tokio::test(flavor = "multi_thread")]
async fn the_dashboard_follows_a_deploy_live_and_shows_a_devices_events() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let mut ctl = Controller::start(&tmp.path().join("ctl"))?;
    let client = ctl.client();
    let agents = [
        Agent::start(tmp.path(), "pi-kitchen", &ctl.broker_url(), &ctl.url())?,
        Agent::start(tmp.path(), "pi-garage", &ctl.broker_url(), &ctl.url())?,
    ];
    wait_for(Duration::from_secs(60), "both agents to report", || async {
        let d = client.devices().await.ok()?;
        (d.iter().filter(|d| d.reported_at_ms > 0).count() == 2).then_some(())
    })
    .await?;
    sample_image(&client, tmp.path(), "v1", "1", &[]).await?;
    sample_release(&client, "1", "v1").await?;

    let browser = chromium()?;
    let tab = browser.new_tab()?;
    tab.set_default_timeout(Duration::from_secs(30));
    // unsigned: the dashboard sends the browser to the sign-in page
    tab.navigate_to(&format!("{}/ui/", ctl.url()))?
        .wait_until_navigated()?;
    tab.wait_for_element("#token")?.click()?;
    tab.type_str("not-a-token")?.press_key("Enter")?;
    tab.wait_for_element("p.error")?;
    tab.wait_for_element("#token")?.click()?;
    tab.type_str(&ctl.admin_token())?.press_key("Enter")?;
    tab.wait_for_element("#devices tbody tr[data-device]")?;
    wait_js(
        &tab,
        &format!("{ROWS}.length === 2"),
        Duration::from_secs(20),
    )?;
    wait_js(
        &tab,
        "document.getElementById('live').classList.contains('on')",
        Duration::from_secs(20),
    )?;
    // a mark on the page: a reload would wipe it
    js(&tab, "window.__unreloaded = true")?;

    let ids: Vec<String> = agents.iter().map(|a| a.id.clone()).collect();
    client.deploy("demo@1", &ids).await?;
    tokio::task::block_in_place(|| {
        wait_js(
            &tab,
            &format!(
                "{ROWS}.length === 2 && [...{ROWS}].every(r => r.querySelector('.b-running') && r.textContent.includes('demo@1'))"
            ),
            Duration::from_secs(120),
        )
    })?;
    assert_eq!(
        js(&tab, "window.__unreloaded === true")?,
        true,
        "the page reloaded"
    );
    assert_eq!(
        js(&tab, "document.getElementById('n-devices').textContent")?,
        "2"
    );
    wait_js(
        &tab,
        "document.querySelector('#summary').textContent.includes('demo@1')",
        Duration::from_secs(20),
    )?;
    screenshot(&tab, "dashboard-fleet.png")?;

    // the search box filters by id, on the server
    tab.wait_for_element("#f-q")?.click()?;
    tab.type_str("garage")?;
    wait_js(
        &tab,
        &format!("{ROWS}.length === 1 && {ROWS}[0].dataset.device === 'pi-garage'"),
        Duration::from_secs(20),
    )?;

    // a device's page lists its events
    js(&tab, "location.hash = '#/device/pi-kitchen'")?;
    wait_js(
        &tab,
        "!!document.querySelector('#events') && document.querySelector('#events').textContent.includes('swapped')",
        Duration::from_secs(20),
    )?;
    wait_js(
        &tab,
        "document.getElementById('current').textContent.includes('demo@1')",
        Duration::from_secs(5),
    )?;
    // the log tail, asked of the device over MQTT
    // (clicked from the page's script: the live view may redraw between
    // a DevTools lookup and its click)
    tab.wait_for_element("[data-logs]")?;
    js(&tab, "document.querySelector('[data-logs]').click()")?;
    wait_js(
        &tab,
        "!!document.querySelector('pre.log') && document.querySelector('pre.log').textContent.includes('sample-app')",
        Duration::from_secs(20),
    )?;
    let shot = screenshot(&tab, "dashboard-device.png")?;
    assert!(
        std::fs::metadata(shot)?.len() > 10_000,
        "screenshot is empty"
    );

    // a rollout in two waves: the first done, the second held by a long
    // soak; paused and resumed from the page
    sample_release(&client, "2", "v1").await?;
    let rollout: petrel_controller::http::rollouts::CreateRollout =
        serde_json::from_value(serde_json::json!({
            "id": "r-demo-2", "release": "demo@2", "waves": "1,2", "soak_s": 600
        }))?;
    client.create_rollout(&rollout).await?;
    js(&tab, "location.hash = '#/rollout/r-demo-2'")?;
    tokio::task::block_in_place(|| {
        wait_js(
            &tab,
            "document.body.innerText.includes('1 succeeded, 0 started, 0 failed, 0 queued') && !!document.querySelector('[data-verb=pause]')",
            Duration::from_secs(120),
        )
    })?;
    js(&tab, "document.querySelector('[data-verb=pause]').click()")?;
    wait_js(
        &tab,
        "!!document.querySelector('.b-paused') && !!document.querySelector('[data-verb=resume]')",
        Duration::from_secs(20),
    )?;
    let phase = client.rollout("r-demo-2").await?.rollout.phase;
    assert!(
        matches!(phase, petrel_protocol::rollout::Phase::Paused { .. }),
        "{phase:?}"
    );
    js(&tab, "document.querySelector('[data-verb=resume]').click()")?;
    wait_js(
        &tab,
        "!document.querySelector('.b-paused') && !!document.querySelector('[data-verb=pause]')",
        Duration::from_secs(20),
    )?;
    screenshot(&tab, "dashboard-rollout.png")?;
    assert_eq!(
        js(&tab, "window.__unreloaded === true")?,
        true,
        "the page reloaded"
    );

    // an open page does not hold the controller's shutdown
    let status = ctl.terminate(Duration::from_secs(20))?;
    assert!(status.success(), "{status}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_change_carrying_only_the_dashboard_cookie_needs_the_dashboards_header(
) -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let ctl = Controller::start(&tmp.path().join("ctl"))?;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let cookie = format!("petrel_token={}", ctl.admin_token());
    let gc = format!("{}/v1/gc", ctl.url());
    // what another page of the same site could send: refused
    let forged = http.post(&gc).header("cookie", &cookie).send().await?;
    assert_eq!(forged.status(), 403);
    assert!(forged.text().await?.contains("x-petrel-dashboard"));
    // the dashboard's own request goes through; reads need no header
    let own = http
        .post(&gc)
        .header("cookie", &cookie)
        .header("x-petrel-dashboard", "1")
        .send()
        .await?;
    assert_eq!(own.status(), 200, "{}", own.text().await?);
    let read = http
        .get(format!("{}/v1/fleet/summary", ctl.url()))
        .header("cookie", &cookie)
        .send()
        .await?;
    assert_eq!(read.status(), 200);
    // anyone may sign out; it clears the cookie
    let out = http.post(format!("{}/ui/logout", ctl.url())).send().await?;
    assert_eq!(out.status(), 303);
    let set = out.headers()["set-cookie"].to_str()?.to_string();
    assert!(
        set.starts_with("petrel_token=;") && set.contains("Max-Age=0"),
        "{set}"
    );
    Ok(())
}
