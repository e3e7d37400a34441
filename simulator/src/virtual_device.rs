//! A virtual device: the real agent (session, lifecycle machine, fetcher,
//! delta apply, swap journal) on a simulated runtime and an in-memory
//! store, reaching the controller through its own fault link. Its files
//! (layers, partial downloads) live in its own directory; its store lives
//! in memory owned here, so a power loss (the agent dropped mid-work)
//! restarts it from exactly what it had persisted.

use crate::link::DeviceLink;
use petrel_agent::config::Config;
use petrel_agent::store::memory_kv::MemoryKv;
use petrel_agent::store::AgentStore;
use petrel_runtime::SimRuntime;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub struct VirtualDevice {
    pub id: String,
    pub index: usize,
    pub link: Arc<DeviceLink>,
    /// `name:tag` of images whose instances fail on this device.
    pub failing: BTreeSet<String>,
    pub power_losses: u32,
    /// Instances of a failing image started (each a health check failed).
    pub failed_starts: Arc<std::sync::atomic::AtomicU64>,
    config: Config,
    kv: Arc<MemoryKv>,
    running: Option<(JoinHandle<()>, watch::Sender<bool>)>,
}

/// Where a virtual device reaches the controller.
pub struct Endpoints {
    pub mqtt_port: u16,
    pub http_port: u16,
    /// The controller's public signing key (hex).
    pub key: String,
}

impl VirtualDevice {
    pub fn new(
        index: usize,
        data_dir: PathBuf,
        ends: &Endpoints,
        link: Arc<DeviceLink>,
        heartbeat_s: u64,
    ) -> VirtualDevice {
        let id = device_id(index);
        let ip = crate::link::address(index);
        let config = Config {
            device_id: id.clone(),
            broker: format!("mqtt://{ip}:{}", ends.mqtt_port),
            controller_url: format!("http://{ip}:{}", ends.http_port),
            data_dir,
            runtime: "sim".into(),
            max_message_bytes: 1 << 20,
            heartbeat_s,
            download_retry_budget_s: petrel_agent::fetch::DEFAULT_RETRY_BUDGET.as_secs(),
            delta_wait_s: petrel_agent::fetch::DEFAULT_DELTA_WAIT.as_secs(),
            post_update_watch_s: 600,
            platform: None,
            controller_key: Some(ends.key.clone()),
            root_key: None,
            accept_unsigned: false,
            ca_file: None,
            cert_file: None,
            key_file: None,
        };
        VirtualDevice {
            id,
            index,
            link,
            failing: BTreeSet::new(),
            power_losses: 0,
            failed_starts: Arc::default(),
            config,
            kv: Arc::new(MemoryKv::default()),
            running: None,
        }
    }

    /// Starts the agent (again, after a power loss: on the same store and
    /// files, with a runtime that knows no instances, as after a reboot).
    pub fn power_on(&mut self) {
        if self.running.is_some() {
            return;
        }
        let (stop, mut rx) = watch::channel(false);
        let cfg = self.config.clone();
        let runtime = SimRuntime::counting(self.failing.clone(), self.failed_starts.clone());
        let store = AgentStore::on(self.kv.clone());
        let id = self.id.clone();
        let task = tokio::spawn(async move {
            let shutdown = async move {
                let _ = rx.wait_for(|s| *s).await;
            };
            if let Err(e) = petrel_agent::run_with_store(cfg, runtime, store, shutdown).await {
                tracing::warn!(device = %id, "virtual device stopped: {e}");
            }
        });
        self.running = Some((task, stop));
    }

    /// Power loss: the agent stops wherever it is, every connection dies.
    pub fn power_off(&mut self) {
        if let Some((task, _)) = self.running.take() {
            task.abort();
            self.power_losses += 1;
        }
        self.link.cut_all();
    }

    pub fn is_on(&self) -> bool {
        self.running.is_some()
    }

    /// Stops the agent cleanly (end of the run).
    pub async fn shut_down(&mut self) {
        if let Some((task, stop)) = self.running.take() {
            let _ = stop.send(true);
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), task).await;
        }
    }
}

/// Device `i`'s id.
pub fn device_id(i: usize) -> String {
    format!("sim-{i:05}")
}
