//! Petrel device agent: receives the desired release over MQTT, fetches
//! the layers it lacks (resumable, verified), installs them, swaps the
//! running services through a [`petrel_runtime::Runtime`], and reports.
//!
//! Layout:
//! - [`config`]: the TOML config file.
//! - [`machine`]: the sans-IO update lifecycle (inputs → actions).
//! - [`driver`]: performs the machine's actions, persisting first.
//! - [`transfer`]: getting missing layers: delta from the best held base,
//!   else the full blob.
//! - [`patch`]: applying a downloaded delta in bounded memory.
//! - [`apply`]: install (unpack, assemble root filesystems), instance specs.
//! - [`swap`]: handover / stop-first swap and rollback, each idempotent.
//! - [`health`]: waiting for a new instance to prove healthy.
//! - [`watch`]: the post-update watch (a crash loop after the swap rolls
//!   the release back).
//! - [`recover`]: rebuilding the lifecycle record from the runtime after
//!   a store loss.
//! - [`gc`]: removing what neither the current nor the previous release needs.
//! - [`logs`]: answering the controller's requests for a service's log tail.
//! - [`fetch`]: resumable, verified HTTP downloads with backoff.
//! - [`session`]: the MQTT session (desired, log requests in; reports,
//!   events, log replies out).
//! - [`store`]: lifecycle record and event outbox (sled, or memory).

pub mod apply;
pub mod cleaner;
pub mod config;
pub mod disk;
pub mod driver;
pub mod facts;
pub mod fetch;
pub mod gc;
pub mod health;
pub mod locks;
pub mod logs;
pub mod machine;
pub mod patch;
pub mod recover;
pub mod report;
pub mod retry;
pub mod session;
pub mod store;
pub mod swap;
pub mod transfer;
pub mod watch;

use config::Config;
use petrel_runtime::{LayerStore, Runtime};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error(transparent)]
    Fetch(#[from] fetch::FetchError),
    #[error("layer store: {0}")]
    Layers(String),
    #[error("config: {0}")]
    Config(String),
    #[error("stopping service instance {name}: {reason}")]
    Stop { name: String, reason: String },
}

/// Stops every instance `runtime` knows (for `petrel-agent
/// stop-services`); returns how many. Errors name the instance.
pub async fn stop_all<R: Runtime>(runtime: &R) -> Result<usize, AgentError> {
    let instances = runtime.list().await;
    for i in &instances {
        runtime.stop(&i.name).await.map_err(|e| AgentError::Stop {
            name: i.name.clone(),
            reason: e.to_string(),
        })?;
    }
    Ok(instances.len())
}

/// Runs the agent with `runtime` until `shutdown` resolves, its store in
/// sled under the data dir.
pub async fn run<R: Runtime>(
    cfg: Config,
    runtime: R,
    shutdown: impl Future<Output = ()>,
) -> Result<(), AgentError> {
    let store = store::AgentStore::open(&cfg.data_dir.join("db"))?;
    run_with_store(cfg, runtime, store, shutdown).await
}

/// Runs the agent on a given store (a virtual device's, in memory).
pub async fn run_with_store<R: Runtime>(
    cfg: Config,
    runtime: R,
    store: store::AgentStore,
    shutdown: impl Future<Output = ()>,
) -> Result<(), AgentError> {
    let broker = cfg.broker_url().map_err(AgentError::Config)?;
    let tls = cfg.tls().map_err(AgentError::Config)?;
    if !broker.tls || !cfg.controller_url.starts_with("https://") {
        tracing::warn!(broker = %cfg.broker, controller = %cfg.controller_url, "INSECURE: plaintext broker or controller URL; anyone on the network can read this device's traffic (use the mqtts:// and https:// config `petrel device provision` writes)");
    }
    let layers = LayerStore::open(cfg.data_dir.join("layers"))
        .map_err(|e| AgentError::Layers(e.to_string()))?;
    let setid_layers = LayerStore::open(cfg.data_dir.join("layers-setid"))
        .map_err(|e| AgentError::Layers(e.to_string()))?
        .with_limits(petrel_runtime::UnpackLimits {
            allow_setid: true,
            ..Default::default()
        });
    // both stores sit beside rootfs/ (apply::image_layers relies on it)
    let paths = apply::Paths {
        fetcher: fetch::Fetcher::new(&cfg.controller_url, &cfg.data_dir, tls.clone())?
            .with_retry_budget(std::time::Duration::from_secs(cfg.download_retry_budget_s))
            .with_delta_wait(std::time::Duration::from_secs(cfg.delta_wait_s)),
        layers: Arc::new(layers),
        setid_layers: Arc::new(setid_layers),
        rootfs_dir: cfg.data_dir.join("rootfs"),
    };
    let limits = petrel_protocol::Limits {
        max_message_bytes: cfg.max_message_bytes,
    };
    let (publisher, incoming, _session) = session::start(
        &cfg.device_id,
        &broker,
        tls.filter(|_| broker.tls),
        cfg.max_message_bytes,
        store.clone(),
    );
    let mut driver = driver::Driver::new(
        cfg.device_id.clone(),
        store,
        publisher,
        Arc::new(runtime),
        paths,
        limits,
    );
    driver.post_update_watch = Duration::from_secs(cfg.post_update_watch_s);
    driver.platform = cfg
        .platform()
        .unwrap_or_else(|_| petrel_protocol::Platform::host());
    driver.trusted = match cfg.accept_unsigned {
        true => {
            tracing::warn!("accept_unsigned = true: this device runs whatever anyone who can publish on the broker asks (insecure)");
            None
        }
        false => {
            let mut keys = cfg.pinned_keys().map_err(AgentError::Config)?;
            keys.extend(driver.store.learned_keys());
            driver.retired = driver.store.retired_keys();
            driver.roots = cfg
                .root_key_id()
                .map_err(AgentError::Config)?
                .into_iter()
                .collect();
            Some(keys)
        }
    };
    driver
        .run(
            incoming,
            Duration::from_secs(cfg.heartbeat_s.max(1)),
            shutdown,
        )
        .await;
    Ok(())
}
