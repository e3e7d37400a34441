//! The dashboard's reads at fleet scale: a filtered page of devices, the
//! fleet summary and a `/metrics` scrape from the in-memory fleet index,
//! against the baseline of reading every device's view from the store and
//! filtering it (what `petrel devices --select` and any whole-fleet count
//! did before the index). Both measured here, in the same run, on the same
//! store; ratios printed. `PETREL_BENCH_DEVICES` sets the fleet size
//! (default 50,000).

use petrel_controller::http::views::view;
use petrel_controller::metrics::{FleetGauges, Metrics};
use petrel_controller::monitor::index::FleetIndex;
use petrel_controller::store::{Presence, Store};
use petrel_protocol::rollout::Selector;
use petrel_protocol::{Phase, Reported, ServiceState};
use std::time::{Duration, Instant};

const PHASES: [Phase; 5] = [
    Phase::Running,
    Phase::Running,
    Phase::Running,
    Phase::Downloading,
    Phase::Failed,
];

fn fill(store: &Store, n: usize) {
    for i in 0..n {
        let id = format!("dev-{i:06}");
        let r = Reported {
            device_id: id.clone(),
            agent_version: "0.1.0".into(),
            phase: PHASES[i % PHASES.len()],
            current: Some(format!("app@{}", 1 + i % 3).parse().expect("release ref")),
            services: ["web", "db"]
                .iter()
                .map(|s| ServiceState {
                    name: format!("{s}-g1"),
                    state: "running".into(),
                    pid: Some(100),
                    restarts: 0,
                    exit_code: None,
                })
                .collect(),
            updated_at_ms: 1,
            free_disk_bytes: Some(1 << 30),
            ..Reported::default()
        };
        store.record_reported(&r).expect("report");
        let online = i % 7 != 0;
        let p = Presence {
            online,
            last_seen_ms: 1,
        };
        store.record_presence(&id, &p).expect("presence");
        if i % 10 == 0 {
            let labels = [("site".to_string(), format!("site-{}", i % 4))].into();
            store.set_labels(&id, &labels).expect("labels");
        }
    }
    store.flush().expect("flush");
}

/// Best of `runs` timings of `f`.
fn best<T>(runs: usize, mut f: impl FnMut() -> T) -> (Duration, T) {
    let mut out = None;
    let mut fastest = Duration::MAX;
    for _ in 0..runs {
        let t = Instant::now();
        let v = f();
        fastest = fastest.min(t.elapsed());
        out = Some(v);
    }
    (fastest, out.expect("runs > 0"))
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

fn main() {
    let n: usize = std::env::var("PETREL_BENCH_DEVICES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50_000);
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("db")).expect("store");
    let t = Instant::now();
    fill(&store, n);
    println!(
        "fleet of {n} devices written in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    let (load, index) = best(1, || FleetIndex::load(&store).expect("index"));
    println!("index load at start: {}", ms(load));
    let filter: Selector = "phase=running,release=app@2,site=site-2,online=true"
        .parse()
        .expect("filter");
    // baseline: every view from the store, filtered
    let (base, base_ids) = best(3, || {
        let ids = store.device_ids().expect("ids");
        let views: Vec<_> = ids
            .iter()
            .map(|id| view(&store, id).expect("view"))
            .collect();
        let mut facts_ok: Vec<String> = views
            .into_iter()
            .filter(|v| {
                let mut f = v.facts();
                f.insert(
                    "phase".into(),
                    petrel_controller::monitor::index::phase_name(v.phase),
                );
                if let Some(c) = &v.current {
                    f.insert("release".into(), c.to_string());
                }
                f.insert("online".into(), v.online.to_string());
                filter.matches(&f)
            })
            .map(|v| v.id)
            .collect();
        facts_ok.truncate(50);
        facts_ok
    });
    // the index: select a page, then read its 50 views
    let (page, (ids, total)) = best(5, || {
        let (ids, total) = index.select(&filter, 0, 50);
        let views: Vec<_> = ids
            .iter()
            .map(|id| view(&store, id).expect("view"))
            .collect();
        (views.into_iter().map(|v| v.id).collect::<Vec<_>>(), total)
    });
    assert_eq!(ids, base_ids, "the index selects what the store holds");
    let (search, _) = best(5, || {
        index.select(&"id~dev-0499".parse().expect("f"), 0, 50)
    });
    let (summary, s) = best(5, || index.summary());
    let metrics = Metrics::new();
    let (scrape, text) = best(5, || {
        let s = index.summary();
        metrics.set_fleet(&FleetGauges {
            phases: s.phases,
            online: s.online,
            ..FleetGauges::default()
        });
        metrics.render()
    });
    println!(
        "filtered page (50 of {total} matching), baseline store scan: {}",
        ms(base)
    );
    println!(
        "filtered page (50 of {total} matching), fleet index:        {}  ({:.0}x faster)",
        ms(page),
        base.as_secs_f64() / page.as_secs_f64()
    );
    println!(
        "id search page:                                            {}",
        ms(search)
    );
    println!("fleet summary ({} devices, {} online):                   {}  ({:.0}x faster than the scan)", s.devices, s.online, ms(summary), base.as_secs_f64() / summary.as_secs_f64());
    println!(
        "/metrics render with fleet gauges ({} bytes):             {}",
        text.len(),
        ms(scrape)
    );
}
