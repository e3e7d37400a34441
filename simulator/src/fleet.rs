//! A controller and in-process agents in temp dirs, on free loopback ports.

use anyhow::{Context, Result};
use petrel_agent::config::Config;
use petrel_controller::client::{Client, Credentials, ProvisionOptions};
use petrel_controller::{BrokerMode, Security, ServeConfig};
use petrel_runtime::{NativeRuntime, Runtime};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use tokio::sync::watch;

/// A free TCP port on loopback (for the embedded broker, which binds its
/// own socket).
pub fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

pub struct LocalFleet {
    pub http: SocketAddr,
    pub mqtt_port: u16,
    /// An admin client of the controller.
    pub client: Client,
    pub agents: Vec<LocalAgent>,
    stop: watch::Sender<bool>,
}

pub struct LocalAgent {
    pub id: String,
    pub data_dir: PathBuf,
    pub runtime: NativeRuntime,
}

async fn stopped(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

/// A controller the simulator started: where to reach it, and the public
/// signing key its agents pin.
pub struct StartedController {
    pub http: SocketAddr,
    pub mqtt_port: u16,
    pub key: String,
    /// An admin client (the first admin token, the fleet CA).
    pub client: Client,
}

impl StartedController {
    /// Waits until the API answers (it starts in the background).
    pub async fn wait_ready(&self) -> Result<()> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            match self.client.signing_key().await {
                Ok(_) => return Ok(()),
                Err(e) if std::time::Instant::now() > deadline => return Err(e.into()),
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
            }
        }
    }

    /// Provisions device `id` through the API (its key, certificate and
    /// agent.toml in `data_dir/identity`), adds `extra` config lines, and
    /// returns its config: mutual TLS to the broker and the blob server.
    pub async fn provision(&self, id: &str, data_dir: &Path, extra: &str) -> Result<Config> {
        self.provision_via(id, data_dir, extra, None).await
    }

    /// [`provision`](Self::provision), the device reaching the blob server
    /// at `controller_url` (a proxy shaping its link) when given.
    pub async fn provision_via(
        &self,
        id: &str,
        data_dir: &Path,
        extra: &str,
        controller_url: Option<String>,
    ) -> Result<Config> {
        let out = data_dir.join("identity");
        let opts = ProvisionOptions {
            out: out.clone(),
            broker: None,
            controller_url,
            agent_data_dir: data_dir.to_path_buf(),
            root_key: None,
        };
        self.client.provision_device(id, &opts).await?;
        let path = out.join("agent.toml");
        let mut toml = std::fs::read_to_string(&path)?;
        toml.push_str(extra);
        std::fs::write(&path, toml)?;
        Ok(Config::load(&path)?)
    }
}

/// Makes, in a controller's data dir before it starts, its signing key
/// and first admin token (the controller loads the same), so this side
/// can pin the key and call the API: (public key hex, admin token).
pub fn controller_secrets(data: &Path) -> Result<(String, String)> {
    let keys = petrel_controller::keys::Keyring::load_or_create(&data.join("keys"))?;
    petrel_controller::auth::Tokens::open(&data.join("auth"))?;
    let token = std::fs::read_to_string(data.join("auth/admin.token"))?;
    Ok((keys.public().to_hex(), token.trim().to_string()))
}

/// Starts a controller with its embedded broker under `root/controller`
/// until `stop` turns true.
pub async fn start_controller(
    root: &Path,
    stop: watch::Receiver<bool>,
) -> Result<StartedController> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let http = listener.local_addr()?;
    let mqtt_port = free_port()?;
    let (key, token) = controller_secrets(&root.join("controller"))?;
    // the fleet's throwaway CA, made before the controller starts so this
    // side can read it
    let pki_dir = root.join("controller/pki");
    if !pki_dir.join("ca.pem").exists() {
        petrel_controller::pki::init(&pki_dir, &petrel_controller::pki::default_names())?;
    }
    let creds = Credentials {
        token: Some(token),
        ca_pem: Some(std::fs::read_to_string(pki_dir.join("ca.pem"))?),
    };
    let client = Client::with_credentials(&format!("https://{http}"), &creds)?;
    let cfg = ServeConfig {
        data_dir: root.join("controller"),
        http: listener,
        broker: BrokerMode::Embedded {
            listen: SocketAddr::from(([127, 0, 0, 1], mqtt_port)),
        },
        limits: Default::default(),
        max_upload_bytes: petrel_controller::DEFAULT_MAX_UPLOAD,
        security: Security::Tls,
        advertise_host: Some("127.0.0.1".into()),
        alerts: Default::default(),
    };
    tokio::spawn(async move {
        if let Err(e) = petrel_controller::serve(cfg, stopped(stop)).await {
            eprintln!("controller stopped: {e}");
        }
    });
    Ok(StartedController {
        http,
        mqtt_port,
        key,
        client,
    })
}

impl LocalFleet {
    /// Starts a controller (embedded broker) and `n` agents under `root`.
    pub async fn start(root: &Path, n: usize) -> Result<LocalFleet> {
        let (stop, rx) = watch::channel(false);
        let controller = start_controller(root, rx.clone()).await?;
        controller.wait_ready().await?;
        let mut agents = Vec::new();
        for i in 1..=n {
            let id = format!("device-{i:02}");
            let data_dir = root.join(&id);
            let config = controller
                .provision(&id, &data_dir, "heartbeat_s = 5\n")
                .await?;
            let runtime = NativeRuntime::new(data_dir.join("runtime")).context("native runtime")?;
            let rt = runtime.clone();
            let shutdown = stopped(rx.clone());
            tokio::spawn(async move {
                if let Err(e) = petrel_agent::run(config, rt, shutdown).await {
                    eprintln!("agent stopped: {e}");
                }
            });
            agents.push(LocalAgent {
                id,
                data_dir,
                runtime,
            });
        }
        Ok(LocalFleet {
            http: controller.http,
            mqtt_port: controller.mqtt_port,
            client: controller.client,
            agents,
            stop,
        })
    }

    pub fn device_ids(&self) -> Vec<String> {
        self.agents.iter().map(|a| a.id.clone()).collect()
    }

    /// Stops the agents and the controller, then every service they ran,
    /// and removes their root filesystems.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        for a in &self.agents {
            for inst in a.runtime.list().await {
                let _ = a.runtime.stop(&inst.name).await;
            }
            // Overlay rootfs mounts would outlive the temp dir.
            let _ = petrel_runtime::rootfs::remove_all(&a.data_dir.join("rootfs"));
        }
    }
}
