//! Which service instances are alive, read from the native runtime's
//! instance records and `/proc` (independently of the agent under test),
//! and a watcher measuring the longest stretch with none alive.

use petrel_runtime::Runtime;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "))
}

/// (instance name, pid) of every recorded instance whose process lives.
pub fn live_instances(records: &Path) -> Vec<(String, u32)> {
    let Ok(dir) = std::fs::read_dir(records) else {
        return vec![];
    };
    let mut out: Vec<(String, u32)> = dir
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
        .filter_map(|e| {
            let v: serde_json::Value =
                serde_json::from_slice(&std::fs::read(e.path()).ok()?).ok()?;
            let pid = u32::try_from(v["pid"].as_u64()?).ok()?;
            let name = v["spec"]["name"].as_str()?.to_string();
            alive(pid).then_some((name, pid))
        })
        .collect();
    out.sort();
    out
}

/// Samples liveness every 5 ms until finished.
pub struct Watcher {
    done: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Duration>,
}

impl Watcher {
    pub fn start(records: PathBuf) -> Watcher {
        let done = Arc::new(AtomicBool::new(false));
        let flag = done.clone();
        let task = tokio::task::spawn_blocking(move || {
            let (mut worst, mut down_since) = (Duration::ZERO, None::<Instant>);
            while !flag.load(Ordering::Relaxed) {
                match (live_instances(&records).is_empty(), down_since) {
                    (true, None) => down_since = Some(Instant::now()),
                    (false, Some(t)) => {
                        worst = worst.max(t.elapsed());
                        down_since = None;
                    }
                    _ => {}
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            down_since.map_or(worst, |t| worst.max(t.elapsed()))
        });
        Watcher { done, task }
    }

    /// The longest stretch with no live instance.
    pub async fn finish(self) -> Duration {
        self.done.store(true, Ordering::Relaxed);
        self.task.await.unwrap_or_default()
    }
}

/// Stops every service a dead agent left running, by adopting them.
pub async fn stop_services(state_dir: &Path) {
    if let Ok(native) = petrel_runtime::NativeRuntime::new(state_dir.to_path_buf()) {
        for inst in native.list().await {
            let _ = native.stop(&inst.name).await;
        }
    }
}
