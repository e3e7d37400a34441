//! `serve`: the controller's entry point. Takes a bound HTTP listener, a
//! data dir and a shutdown future, so tests bind port 0 and run several.

use crate::blobs::BlobStore;
use crate::http::{self, Api};
use crate::store::Store;
use petrel_protocol::{BrokerUrl, Limits};
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

/// Which MQTT broker the controller uses.
#[derive(Debug, Clone)]
pub enum BrokerMode {
    /// Start rumqttd in-process, listening on this address.
    Embedded { listen: SocketAddr },
    /// Use an external broker, `mqtt://host:port`.
    External { url: String },
}

pub struct ServeConfig {
    pub data_dir: PathBuf,
    pub http: tokio::net::TcpListener,
    pub broker: BrokerMode,
    pub limits: Limits,
    /// Largest upload (layer, image archive) accepted, in bytes.
    pub max_upload_bytes: u64,
}

/// Default [`ServeConfig::max_upload_bytes`]: 2 GiB.
pub const DEFAULT_MAX_UPLOAD: u64 = 2 << 30;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot create data dir {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Blobs(#[from] crate::blobs::BlobError),
    #[error("{0}")]
    BrokerUrl(String),
    #[error("http server: {0}")]
    Http(std::io::Error),
    #[error("signing keys: {0}")]
    Keys(String),
}

/// Runs the controller until `shutdown` resolves.
pub async fn serve(
    cfg: ServeConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let tmp_dir = cfg.data_dir.join("tmp");
    for dir in [&cfg.data_dir, &tmp_dir] {
        std::fs::create_dir_all(dir).map_err(|source| ServeError::DataDir {
            path: dir.clone(),
            source,
        })?;
    }
    let store = Store::open(&cfg.data_dir.join("db"))?;
    let blobs = Arc::new(BlobStore::open(cfg.data_dir.join("blobs"))?);
    let broker = match &cfg.broker {
        BrokerMode::Embedded { listen } => {
            crate::broker::start_embedded(*listen);
            let host = if listen.ip().is_unspecified() {
                "127.0.0.1".to_string()
            } else {
                listen.ip().to_string()
            };
            BrokerUrl {
                tls: false,
                host,
                port: listen.port(),
                username: None,
                password: None,
            }
        }
        BrokerMode::External { url } => {
            let parsed = BrokerUrl::parse(url).map_err(|e| ServeError::BrokerUrl(e.to_string()))?;
            if parsed.tls {
                let why = format!("broker {url:?}: mqtts:// (TLS) is not supported yet");
                return Err(ServeError::BrokerUrl(why));
            }
            parsed
        }
    };
    let keys = crate::keys::Keyring::load_or_create(&cfg.data_dir.join("keys"))
        .map_err(|e| ServeError::Keys(e.to_string()))?;
    tracing::info!(key = %keys.public().id(), path = %cfg.data_dir.join("keys/signing.pub").display(), "signing desired states; agents pin this public key");
    let fleet = crate::fleet::start(&broker, store.clone(), cfg.limits, keys);
    let deltas =
        crate::deltas::DeltaCache::new(cfg.data_dir.join("deltas"), blobs.clone(), store.clone())
            .map_err(|source| ServeError::DataDir {
            path: cfg.data_dir.join("deltas"),
            source,
        })?;
    let api = Api {
        store,
        blobs,
        fleet,
        deltas,
        paths_dir: cfg.data_dir.join("layer-paths"),
        tmp_dir,
        deploy_lock: Default::default(),
        gc_lock: Default::default(),
        gc_min_age: http::GC_MIN_AGE,
        limits: cfg.limits,
        max_upload_bytes: cfg.max_upload_bytes,
    };
    spawn_periodic_gc(api.clone());
    tracing::info!(http = ?cfg.http.local_addr().ok(), broker = %broker.address(), "controller serving");
    axum::serve(cfg.http, http::router(api))
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(ServeError::Http)
}

/// Collects garbage at start and then hourly (orphans of interrupted
/// uploads, deltas of layers no image uses any more).
fn spawn_periodic_gc(api: Api) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(3600));
        loop {
            tick.tick().await;
            if let Err(e) = api.collect_garbage(Vec::new()).await {
                tracing::warn!(error = %e.1, "garbage collection failed");
            }
        }
    });
}
