//! `serve`: the controller's entry point. Takes a bound HTTP listener, a
//! data dir and a shutdown future, so tests bind port 0 and run several.

use crate::blobs::BlobStore;
pub use crate::broker::BrokerMode;
use crate::http::tls::{Peer, TlsListener};
use crate::http::{self, Api};
use crate::pki::Pki;
use crate::store::Store;
use petrel_protocol::Limits;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

pub struct ServeConfig {
    pub data_dir: PathBuf,
    pub http: tokio::net::TcpListener,
    pub broker: BrokerMode,
    pub limits: Limits,
    /// Largest upload (layer, image archive) accepted, in bytes.
    pub max_upload_bytes: u64,
    /// TLS everywhere (the default) or, chosen explicitly, plaintext.
    pub security: Security,
    /// The host name devices use for this controller (provisioned
    /// configs); default: the HTTP listen address, or this machine's name
    /// if that is unspecified.
    pub advertise_host: Option<String>,
    /// When device conditions become alerts.
    pub alerts: crate::monitor::alerts::AlertRules,
}

/// Whether the controller speaks TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// HTTPS and MQTT over mutual TLS, with the fleet CA in `<data>/pki`
    /// (created on first start if `petrel ca init` was not run).
    Tls,
    /// Plaintext HTTP and MQTT: anyone on the network can read and forge.
    Insecure,
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
    #[error("loading the fleet index: {0}")]
    Index(String),
    #[error("signing keys: {0}")]
    Keys(String),
    #[error("fleet PKI: {0}")]
    Pki(#[from] crate::pki::PkiError),
    #[error("tokens: {0}")]
    Tokens(#[from] crate::auth::tokens::TokenError),
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
    http::hide_paths_under(&cfg.data_dir);
    let tokens = std::sync::Arc::new(crate::auth::Tokens::open(&cfg.data_dir.join("auth"))?);
    let pki = match cfg.security {
        Security::Tls => Some(load_or_init_pki(&cfg.data_dir.join("pki"))?),
        Security::Insecure => {
            tracing::warn!("INSECURE: plaintext HTTP and MQTT, no device certificates; anyone on the network can read and forge fleet traffic (serve without --insecure for TLS)");
            None
        }
    };
    let store = Store::open(&cfg.data_dir.join("db"))?;
    let blobs = Arc::new(BlobStore::open(cfg.data_dir.join("blobs"))?);
    let http_addr = cfg.http.local_addr().map_err(ServeError::Http)?;
    let host = advertise_host(cfg.advertise_host.as_deref(), http_addr);
    let link = crate::broker::setup(&cfg.broker, pki.as_ref(), &host)
        .await
        .map_err(ServeError::BrokerUrl)?;
    let keys = crate::keys::Keyring::load_or_create(&cfg.data_dir.join("keys"))
        .map_err(|e| ServeError::Keys(e.to_string()))?;
    tracing::info!(key = %keys.public().id(), path = %cfg.data_dir.join("keys/signing.pub").display(), "signing desired states; agents pin this public key");
    let (rollouts, rollout_rx) = crate::rollouts::channel();
    let metrics = crate::metrics::Metrics::new();
    let monitor = {
        let store = store.clone();
        let metrics = metrics.clone();
        tokio::task::spawn_blocking(move || {
            crate::monitor::Monitor::load(&store, cfg.alerts, metrics)
        })
        .await
        .map_err(|e| ServeError::Index(e.to_string()))??
    };
    let observers = crate::fleet::Observers {
        rollouts: rollouts.clone(),
        monitor: monitor.clone(),
        metrics: metrics.clone(),
    };
    let fleet = crate::fleet::start(
        &link.url,
        link.tls,
        store.clone(),
        cfg.limits,
        keys,
        observers,
    );
    let deltas = crate::deltas::DeltaCache::new(
        cfg.data_dir.join("deltas"),
        cfg.data_dir.join("layer-paths"),
        blobs.clone(),
        store.clone(),
    )
    .map_err(|source| ServeError::DataDir {
        path: cfg.data_dir.join("deltas"),
        source,
    })?
    .timed_by(metrics.delta_encode_seconds.clone());
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
        auth: crate::auth::Auth {
            tokens,
            pki: pki.clone(),
        },
        delta_guard: Default::default(),
        metrics,
        monitor: monitor.clone(),
        embedded_broker: matches!(cfg.broker, BrokerMode::Embedded { .. }),
        rollouts,
        advertised: http::security::Advertised {
            broker: link.device_url.clone(),
            controller_url: format!(
                "{}://{}",
                if pki.is_some() { "https" } else { "http" },
                join_host_port(&host, http_addr.port())
            ),
        },
    };
    monitor.spawn();
    spawn_periodic_gc(api.clone());
    crate::rollouts::spawn(api.clone(), rollout_rx);
    tracing::info!(http = %http_addr, broker = %link.url.address(), devices_use = %link.device_url, "controller serving");
    let app = http::router(api).into_make_service_with_connect_info::<Peer>();
    let shutdown = async move {
        shutdown.await;
        monitor.close();
    };
    match pki {
        Some(pki) => {
            let (cert, key) = pki.server_pems()?;
            let config = petrel_tls::server_config(
                pki.ca_pem(),
                &cert,
                &key,
                petrel_tls::ClientAuth::Optional,
            )
            .map_err(crate::pki::PkiError::from)?;
            let acceptor = petrel_tls::tokio_rustls::TlsAcceptor::from(config);
            let listener = TlsListener::new(cfg.http, acceptor).map_err(ServeError::Http)?;
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
        }
        None => {
            axum::serve(cfg.http, app)
                .with_graceful_shutdown(shutdown)
                .await
        }
    }
    .map_err(ServeError::Http)
}

/// The PKI in `dir`, created for this machine's names if there is none.
fn load_or_init_pki(dir: &std::path::Path) -> Result<Pki, ServeError> {
    if !dir.join("ca.pem").exists() {
        let names = crate::pki::default_names();
        tracing::warn!(dir = %dir.display(), dns = ?names.dns, "no fleet CA yet: creating one whose server certificate names only this machine (run `petrel ca init --name HOST --ip ADDR` before the first start for other names)");
        crate::pki::init(dir, &names)?;
    }
    Ok(Pki::load(dir)?)
}

fn advertise_host(configured: Option<&str>, http: std::net::SocketAddr) -> String {
    if let Some(h) = configured {
        return h.to_string();
    }
    if !http.ip().is_unspecified() {
        return http.ip().to_string();
    }
    crate::pki::default_names()
        .dns
        .last()
        .cloned()
        .unwrap_or_else(|| "localhost".into())
}

fn join_host_port(host: &str, port: u16) -> String {
    match host.contains(':') {
        true => format!("[{host}]:{port}"),
        false => format!("{host}:{port}"),
    }
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
