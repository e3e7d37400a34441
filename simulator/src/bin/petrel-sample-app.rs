//! The sample application of the quickstart: a real program the devices
//! run. It reads its version from `version.txt` in its working directory
//! and writes a heartbeat (`version`, `pid`, time) next to it every
//! `--interval-ms`, so the demo and the tests can see which version runs.

use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn main() {
    let mut interval = Duration::from_millis(200);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--interval-ms" {
            if let Some(ms) = args.next().and_then(|v| v.parse().ok()) {
                interval = Duration::from_millis(ms);
            }
        }
    }
    let version = std::fs::read_to_string("version.txt").unwrap_or_else(|_| "unknown".into());
    let version = version.trim();
    let greeting = std::env::var("GREETING").unwrap_or_default();
    println!(
        "sample-app {version} started (pid {}) {greeting}",
        std::process::id()
    );
    loop {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        let line = format!(
            "version={version} pid={} time_ms={now}\n",
            std::process::id()
        );
        // write-then-rename so readers never see a torn heartbeat
        if let Ok(mut f) = std::fs::File::create("heartbeat.tmp") {
            let _ = f.write_all(line.as_bytes());
            let _ = std::fs::rename("heartbeat.tmp", "heartbeat");
        }
        std::thread::sleep(interval);
    }
}
