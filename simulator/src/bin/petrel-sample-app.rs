//! The sample application of the quickstart: a real program the devices
//! run. It reads its version from `version.txt` in its working directory
//! and writes a heartbeat (`version`, `pid`, time) next to it every
//! `--interval-ms`, so the demo and the tests can see which version runs.
//! `--listen ADDR` serves `GET /` with its version (an HTTP health
//! endpoint); `--exit-after-ms N` makes it exit with status 1 after N ms
//! (a broken release, for rollback scenarios); `--state-dir DIR` appends its
//! version to `DIR/history` at start (state kept in a volume);
//! `--exit-if-file PATH` exits with status 1 at start if PATH exists (a
//! fault local to one device, for fleet rollout scenarios);
//! `--print-lines N` prints `line 1` … `line N` after its start line (output
//! to read back, for the log tail scenarios).

use std::io::{Read, Write};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

struct Args {
    interval: Duration,
    listen: Option<String>,
    exit_after: Option<Duration>,
    state_dir: Option<String>,
    exit_if_file: Option<String>,
    print_lines: u32,
}

fn args() -> Args {
    let mut a = Args {
        interval: Duration::from_millis(200),
        listen: None,
        exit_after: None,
        state_dir: None,
        exit_if_file: None,
        print_lines: 0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next();
        let ms = || {
            value
                .as_deref()
                .and_then(|v| v.parse().ok())
                .map(Duration::from_millis)
        };
        match flag.as_str() {
            "--interval-ms" => a.interval = ms().unwrap_or(a.interval),
            "--exit-after-ms" => a.exit_after = ms(),
            "--listen" => a.listen = value.clone(),
            "--state-dir" => a.state_dir = value.clone(),
            "--exit-if-file" => a.exit_if_file = value.clone(),
            "--print-lines" => {
                a.print_lines = value.as_deref().and_then(|v| v.parse().ok()).unwrap_or(0)
            }
            _ => eprintln!("ignoring unknown argument {flag}"),
        }
    }
    a
}

fn serve(addr: String, version: String) {
    let listener = match std::net::TcpListener::bind(&addr) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("cannot listen on {addr}: {e}");
            std::process::exit(2);
        }
    };
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            let mut buf = [0u8; 1024];
            let _ = conn.read(&mut buf);
            let body = format!("sample-app {version}\n");
            let resp = format!(
                "HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            let _ = conn.write_all(resp.as_bytes());
        }
    });
}

fn main() {
    let args = args();
    let version = std::fs::read_to_string("version.txt").unwrap_or_else(|_| "unknown".into());
    let version = version.trim().to_string();
    if let Some(path) = args.exit_if_file.as_deref() {
        if std::path::Path::new(path).exists() {
            eprintln!("sample-app {version}: {path} exists: exiting with failure as asked");
            std::process::exit(1);
        }
    }
    let greeting = std::env::var("GREETING").unwrap_or_default();
    println!(
        "sample-app {version} started (pid {}) {greeting}",
        std::process::id()
    );
    for i in 1..=args.print_lines {
        println!("line {i}");
    }
    if let Some(dir) = &args.state_dir {
        // a volume's worth of state: every version that ever started here
        let history = std::path::Path::new(dir).join("history");
        let appended = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&history)
            .and_then(|mut f| writeln!(f, "{version}"));
        if let Err(e) = appended {
            eprintln!("cannot record history in {}: {e}", history.display());
        }
    }
    if let Some(addr) = args.listen {
        serve(addr, version.clone());
    }
    let started = Instant::now();
    loop {
        if args.exit_after.is_some_and(|d| started.elapsed() >= d) {
            eprintln!("sample-app {version}: exiting with failure as asked");
            std::process::exit(1);
        }
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
        std::thread::sleep(args.interval);
    }
}
