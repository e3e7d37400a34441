//! The report's summary page: the headline numbers in a table and the
//! charts inlined, one self-contained `index.html`.

use super::charts::Charts;
use super::{Convergence, Report};
use anyhow::{Context, Result};
use std::fmt::Write as _;
use std::path::Path;

/// Escapes text for HTML.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn secs(v: Option<f64>) -> String {
    v.map_or("never".into(), |s| format!("{s:.0} s"))
}

fn mb(b: u64) -> String {
    format!("{:.2} MB", b as f64 / 1e6)
}

fn conv_cells(c: &Convergence) -> String {
    [c.p50_s, c.p90_s, c.p99_s, c.p100_s]
        .iter()
        .map(|v| format!("<td>{}</td>", secs(*v)))
        .collect()
}

/// Writes `index.html` into `dir`, the charts read from there.
pub fn write(r: &Report, charts: &Charts, dir: &Path) -> Result<()> {
    let mut h = String::new();
    let _ = write!(
        h,
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Petrel simulation: {name}</title>\
         <style>body{{font-family:sans-serif;margin:2em;max-width:960px}}table{{border-collapse:collapse;margin:1em 0}}\
         td,th{{border:1px solid #ccc;padding:4px 10px;text-align:right}}th{{background:#f3f3f3}}\
         td:first-child,th:first-child{{text-align:left}}</style></head><body>\
         <h1>{name}</h1><p>{devices} virtual devices, seed {seed}; rollout of {release}: <b>{outcome}</b>{late}</p>",
        name = esc(&r.scenario),
        devices = r.devices,
        seed = r.seed,
        release = esc(&r.setup.release),
        outcome = esc(&r.outcome),
        late = if r.timed_out { " (timed out)" } else { "" },
    );
    h += "<h2>Time to settled</h2><table><tr><th>devices</th><th>n</th><th>50%</th><th>90%</th><th>99%</th><th>100%</th></tr>";
    let _ = write!(
        h,
        "<tr><td>all</td><td>{}</td>{}</tr>",
        r.devices,
        conv_cells(&r.convergence)
    );
    let sent = r.per_device.iter().filter(|d| d.sent_new).count();
    let _ = write!(
        h,
        "<tr><td>desired state acknowledged</td><td>{sent}</td>{}</tr>",
        conv_cells(&r.reached)
    );
    for (p, c) in &r.convergence_by_profile {
        let n = r.devices_by_profile.get(p).copied().unwrap_or(0);
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{n}</td>{}</tr>",
            esc(p),
            conv_cells(c)
        );
    }
    h += "</table><h2>Numbers</h2><table>";
    let rows = [
        ("devices on the new release", r.on_new_release.to_string()),
        ("downloaded over HTTP", mb(r.http_down_bytes)),
        (
            "full images for the devices sent the release",
            mb(r.full_image_bytes),
        ),
        ("rollout retries", r.retries.to_string()),
        (
            "connections dropped by the fault layer",
            r.dropped_connections.to_string(),
        ),
        ("power losses", r.power_losses.to_string()),
        (
            "devices that rolled back on their own",
            r.local_rollbacks.to_string(),
        ),
        (
            "fleet rollback: sent back / back",
            format!("{} / {}", r.fleet_rollback_sent, r.fleet_rollback_back),
        ),
        ("stuck devices", r.stuck.to_string()),
        (
            "controller CPU during the rollout",
            format!(
                "{:.1} s (peak {:.0}% of a core)",
                r.controller_cpu_s, r.controller_peak_cpu_percent
            ),
        ),
        ("controller peak memory", mb(r.controller_peak_rss_bytes)),
        (
            "controller lost its broker link",
            r.controller_link_losses.to_string(),
        ),
        ("simulator processes", r.setup.processes.to_string()),
        ("fleet connected in", format!("{:.1} s", r.setup.connect_s)),
        (
            "first release installed in",
            format!("{:.1} s", r.setup.install_s),
        ),
    ];
    for (k, v) in rows {
        let _ = write!(h, "<tr><td>{k}</td><td>{}</td></tr>", esc(&v));
    }
    h += "</table>";
    for (file, title) in &charts.files {
        let path = dir.join(file);
        let svg = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let _ = write!(h, "<h2>{}</h2>{svg}", esc(title));
    }
    h += "<p>Raw data: <a href=\"report.json\">report.json</a></p></body></html>\n";
    let out = dir.join("index.html");
    std::fs::write(&out, h).with_context(|| format!("writing {}", out.display()))
}
